//! The Cranelift JIT: checked statements compiled to native functions that call the
//! `extern "C"` helpers of [`runtime`] for strings, JSON access and built-ins.
//!
//! One [`JitModule`] holds the code of one loaded rule-set version; dropping it frees the code.
//! The interpreter stays the reference and the fallback: a statement Cranelift cannot compile
//! runs on it, and [`JitModule::explanation`] says which statements do and why.

mod codegen;
mod fold;
mod runtime;

use cranelift_codegen::ir::{types, AbiParam};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Module};

use crate::context::{Host, MessageContext};
use crate::functions::CallEnv;
use crate::interp::{self, EvalError, Output};
use crate::ir::Statement;

use codegen::Pool;
use runtime::Env;

type CompiledFn = unsafe extern "C" fn(*mut Env<'_, '_>, *const crate::Value, usize) -> i64;

/// How a statement runs, for `ferrite rules check --explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Explanation {
    /// Native code throughout: WHERE, SELECT items, SET variables and nested SELECTs, with
    /// built-ins, JSON access and string work done by helper calls.
    Compiled,
    /// The whole statement runs on the interpreter, for the reason given (Cranelift could not
    /// compile it, or this machine has no Cranelift backend).
    Interpreted(String),
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Explanation::Compiled => f.write_str("fully compiled"),
            Explanation::Interpreted(why) => write!(f, "interpreted: {why}"),
        }
    }
}

struct Entry {
    statement: Statement,
    function: Option<(CompiledFn, usize)>,
    explanation: Explanation,
}

/// The native code of one rule-set version. Statements are addressed by their index in the
/// order they were given to [`JitModule::compile`].
pub struct JitModule {
    entries: Vec<Entry>,
    module: Option<JITModule>,
    _pool: Pool,
}

// SAFETY: after `finalize_definitions` the module's code and the pool are immutable; compiled
// functions keep all per-call state in the `Env` and frame they are given, so any number of
// threads may call them at once. The `JITModule` itself is touched again only in `Drop`.
unsafe impl Send for JitModule {}
unsafe impl Sync for JitModule {}

impl std::fmt::Debug for JitModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitModule").field("statements", &self.entries.len()).finish()
    }
}

impl Drop for JitModule {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: `&mut self` means no evaluation is running, and the function pointers
            // die with `self.entries`.
            unsafe { m.free_memory() };
        }
    }
}

fn new_module() -> Result<JITModule, String> {
    let mut flags = settings::builder();
    for (name, value) in [("use_colocated_libcalls", "false"), ("is_pic", "false"), ("opt_level", "speed")] {
        flags.set(name, value).map_err(|e| e.to_string())?;
    }
    let isa = cranelift_native::builder()
        .map_err(|e| format!("this machine is not supported by Cranelift: {e}"))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| e.to_string())?;
    Ok(JITModule::new(JITBuilder::with_isa(isa, default_libcall_names())))
}

impl JitModule {
    /// Compiles every statement of a rule set into one module. A statement that cannot be
    /// compiled is kept for the interpreter, with the reason in its explanation.
    pub fn compile<'s>(statements: impl IntoIterator<Item = &'s Statement>) -> JitModule {
        let statements: Vec<Statement> = statements.into_iter().cloned().collect();
        if statements.is_empty() {
            // Nothing to compile: no Cranelift module (an empty rule set is the node's default).
            return JitModule { entries: Vec::new(), module: None, _pool: Pool::default() };
        }
        let mut module = match new_module() {
            Ok(m) => m,
            Err(why) => return JitModule::interpreted(statements, &why),
        };
        let mut pool = Pool::default();
        let mut ctx = module.make_context();
        let mut fctx = FunctionBuilderContext::new();
        let ptr = module.target_config().pointer_type();
        let mut ids = Vec::with_capacity(statements.len());
        let mut nested_sites = Vec::new();
        for stmt in &statements {
            let mut pending = Vec::new();
            let define = |ctx: &mut cranelift_codegen::Context, module: &mut JITModule| {
                let defined = match module.declare_anonymous_function(&ctx.func.signature) {
                    Ok(id) => module.define_function(id, ctx).map(|()| id),
                    Err(e) => Err(e),
                };
                defined.map_err(|e| format!("Cranelift could not compile it: {e}"))
            };
            ctx.func.signature.params.extend([AbiParam::new(ptr), AbiParam::new(ptr), AbiParam::new(ptr)]);
            ctx.func.signature.returns.push(AbiParam::new(types::I64));
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let folded = fold::fold_statement(stmt);
            let compiled = codegen::compile_statement(&mut b, module.target_config(), &folded, &mut pool, &mut pending);
            b.finalize(module.target_config());
            let mut result = define(&mut ctx, &mut module).map(|id| (id, compiled));
            module.clear_context(&mut ctx);
            // Nested SELECTs get functions of their own (theirs may add more).
            while let Some(nested) = pending.pop() {
                ctx.func.signature.params.extend((0..5).map(|_| AbiParam::new(ptr)));
                ctx.func.signature.returns.push(AbiParam::new(types::I64));
                let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
                let compiled =
                    codegen::compile_nested(&mut b, module.target_config(), &nested, &mut pool, &mut pending);
                b.finalize(module.target_config());
                match define(&mut ctx, &mut module) {
                    Ok(id) => nested_sites.push((nested.site, id, compiled.slots)),
                    Err(e) => result = Err(e),
                }
                module.clear_context(&mut ctx);
            }
            ids.push(result);
        }
        if let Err(e) = module.finalize_definitions() {
            return JitModule::interpreted(statements, &format!("Cranelift could not finish the module: {e}"));
        }
        for (site, id, slots) in nested_sites {
            // SAFETY: `site` points into `pool`, which is alive and not otherwise borrowed.
            let site = unsafe { &*site };
            site.function.store(module.get_finalized_function(id) as usize, std::sync::atomic::Ordering::Relaxed);
            site.slots.store(slots, std::sync::atomic::Ordering::Relaxed);
        }
        let entries = statements
            .into_iter()
            .zip(ids)
            .map(|(statement, id)| match id {
                Ok((id, compiled)) => {
                    let code = module.get_finalized_function(id);
                    // SAFETY: the function was built with exactly this signature.
                    let f: CompiledFn = unsafe { std::mem::transmute::<*const u8, CompiledFn>(code) };
                    Entry { statement, function: Some((f, compiled.slots)), explanation: Explanation::Compiled }
                }
                Err(why) => Entry { statement, function: None, explanation: Explanation::Interpreted(why) },
            })
            .collect();
        JitModule { entries, module: Some(module), _pool: pool }
    }

    /// A module that runs every statement on the interpreter, for the reason given.
    fn interpreted(statements: Vec<Statement>, why: &str) -> JitModule {
        let entries = statements
            .into_iter()
            .map(|statement| Entry {
                statement,
                function: None,
                explanation: Explanation::Interpreted(why.to_string()),
            })
            .collect();
        JitModule { entries, module: None, _pool: Pool::default() }
    }

    /// How many statements the module holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Does it hold none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How statement `index` runs.
    pub fn explanation(&self, index: usize) -> &Explanation {
        &self.entries[index].explanation
    }

    /// Evaluates statement `index` against a message: the same result as
    /// [`interp::evaluate`] on that statement, computed by native code.
    pub fn evaluate(
        &self,
        index: usize,
        ctx: &MessageContext<'_>,
        host: &dyn Host,
    ) -> Result<Option<Output>, EvalError> {
        let entry = &self.entries[index];
        let Some((f, slots)) = entry.function else { return interp::evaluate(&entry.statement, ctx, host) };
        let doc = ctx.payload.document();
        let mut env = Env {
            call: CallEnv { ctx, host, version: entry.statement.version },
            raw: ctx.payload.raw(),
            error: None,
            output: None,
            object: None,
            text: String::new(),
        };
        // SAFETY: `f` was compiled from `entry.statement` by this module, which is alive; `env`
        // and `doc` outlive the call; `slots` is the frame size it was compiled with.
        let status = unsafe { f(&mut env, doc, slots) };
        match status {
            0 => Ok(None),
            1 => Ok(env.output),
            _ => Err(env.error.unwrap_or_else(|| EvalError::new("compiled rule failed without a message"))),
        }
    }
}

/// Compiles one statement on its own (the CLI's `--engine jit`).
pub fn compile_one(stmt: &Statement) -> JitModule {
    JitModule::compile(std::iter::once(stmt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{MqttProperties, NoHost, Payload};
    use crate::{compile, SqlVersion};

    fn run(sql: &str, payload: &str) -> (Explanation, Result<Option<Output>, EvalError>) {
        let stmt = compile(sql, SqlVersion::V2016_03_23).expect("compiles");
        let m = compile_one(&stmt);
        let payload = Payload::new(payload.as_bytes());
        let props = MqttProperties::default();
        let ctx = MessageContext::new("sensors/1/data", &payload, &props);
        (m.explanation(0).clone(), m.evaluate(0, &ctx, &NoHost))
    }

    fn text(r: Result<Option<Output>, EvalError>) -> String {
        match r.expect("evaluates") {
            Some(o) => String::from_utf8(o.to_bytes(SqlVersion::V2016_03_23)).unwrap(),
            None => "<filtered>".into(),
        }
    }

    #[test]
    fn reference_rule_is_fully_compiled_and_renders_directly() {
        let sql = "SELECT temp, deviceId FROM 'sensors/+/data' WHERE temp > 50";
        let (how, out) = run(sql, r#"{"deviceId":"d1","temp":61.5}"#);
        assert_eq!(how, Explanation::Compiled);
        assert!(matches!(out, Ok(Some(Output::Text(_)))));
        assert_eq!(text(out), r#"{"temp":61.5,"deviceId":"d1"}"#);
        assert_eq!(text(run(sql, r#"{"deviceId":"d1","temp":40}"#).1), "<filtered>");
        assert_eq!(text(run(sql, r#"{"deviceId":"d1"}"#).1), "<filtered>");
    }

    #[test]
    fn nested_selects_compile_to_functions_of_their_own() {
        let (how, out) = run(
            "SELECT (SELECT VALUE v FROM a WHERE v > 1) AS big, (SELECT v, (SELECT VALUE w FROM ws) AS w FROM a) AS all FROM 't'",
            r#"{"a":[{"v":1,"ws":[{"w":5}]},{"v":2}]}"#,
        );
        assert_eq!(how, Explanation::Compiled);
        assert_eq!(text(out), r#"{"big":[2],"all":[{"v":1,"w":[5]},{"v":2}]}"#);
    }

    #[test]
    fn helper_errors_end_the_evaluation_with_the_error() {
        let (how, out) = run("SELECT get_thing_shadow('t', 'r') AS s FROM 't'", "{}");
        assert_eq!(how, Explanation::Compiled);
        assert!(out.unwrap_err().message.contains("no shadow store"));
    }

    #[test]
    fn case_and_logic_and_arithmetic_compile() {
        let sql = "SELECT CASE k WHEN 'a' THEN 1 WHEN 'b' THEN x + 1 ELSE -x END AS c, NOT (x > 2 AND y) AS n, \
                   x * 2 AS d, [x, {'o': y}] AS arr, upper(k) AS u FROM 't'";
        let (how, out) = run(sql, r#"{"k":"b","x":3,"y":true}"#);
        assert_eq!(how, Explanation::Compiled);
        assert_eq!(text(out), r#"{"c":4,"n":false,"d":6,"arr":[3,{"o":true}],"u":"B"}"#);
    }

    #[test]
    fn dropping_a_module_frees_its_code() {
        for _ in 0..50 {
            let stmt = compile("SELECT a + 1 AS b FROM 't'", SqlVersion::V2016_03_23).unwrap();
            drop(compile_one(&stmt));
        }
    }
}
