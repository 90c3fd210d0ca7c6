//! Checked IR to Cranelift IR: one native function per statement.
//!
//! The generated function is `fn(env, doc, slot_count) -> status` (status 0: WHERE filtered the
//! message out, 1: `env.output` holds the result, 2: `env.error` holds the error). Values are
//! `*const Value` pointers; Booleans from comparisons, NOT, AND and OR stay truth codes in
//! registers until something needs them as values. Attribute paths are read once, at entry, and
//! shared by every use (they cannot fail and have no effects). A nested SELECT becomes a function
//! of its own, `fn(env, element, slot_count, vars, out) -> status`, that [`rt::jit_nested`] runs
//! once per element.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Block, BlockArg, InstBuilder, MemFlagsData, Signature, StackSlotData, StackSlotKind, Type,
    Value as ClValue,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::FunctionBuilder;

use super::runtime::{self as rt, CallSite, NumConst};
use crate::functions::Builtin;
use crate::ir::{BinOp, Expr, Item, Query, Statement};
use crate::num::Dec;
use crate::value::Value;

/// Values compiled code refers to by address (constants, member names, call sites); boxed so
/// their addresses stay put, and kept as long as the module.
#[derive(Default)]
pub struct Pool {
    items: Vec<Box<dyn std::any::Any>>,
}

// SAFETY: the pool is written only while compiling; afterwards compiled code and helpers only
// read it, from any thread, and every item kept is itself Send + Sync (see `keep`).
unsafe impl Send for Pool {}
unsafe impl Sync for Pool {}

impl Pool {
    /// Keeps `item` and returns its address for compiled code.
    fn keep<T: Send + Sync + 'static>(&mut self, item: T) -> i64 {
        let b = Box::new(item);
        let address = &*b as *const T as i64;
        self.items.push(b);
        address
    }
}

/// An operand while compiling: a pointer to a value, or a truth code (0 false, 1 true,
/// 2 Undefined) for Booleans that have not been needed as values yet.
#[derive(Clone, Copy)]
enum Operand {
    Ptr(ClValue),
    Code(ClValue),
}

const VALUE_SIZE: u32 = std::mem::size_of::<Value>() as u32;
const VALUE_ALIGN_SHIFT: u8 = std::mem::align_of::<Value>().trailing_zeros() as u8;

/// A nested SELECT waiting for its own function: compiled after the function that uses it,
/// into the same module.
pub struct PendingNested {
    /// Where the finished function's address goes.
    pub site: *const rt::NestedSite,
    /// The nested query.
    pub query: Query,
    /// How many SET variables it sees.
    pub vars: usize,
}

/// What compiling a function tells its caller.
pub struct Compiled {
    /// How many frame slots the function must be told it has (its third argument).
    pub slots: usize,
}

/// The entry block's work common to statement and nested functions: frame slots initialised,
/// an exit block that drops them and returns its status argument.
struct Frame {
    slots_ss: cranelift_codegen::ir::StackSlot,
    slots: ClValue,
    nslots: ClValue,
    exit: Block,
}

fn begin(b: &mut FunctionBuilder<'_>, ptr: Type) -> (Vec<ClValue>, Frame) {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let params = b.block_params(entry).to_vec();
    // Sized once the body is known (see `end`).
    let slots_ss = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 0, VALUE_ALIGN_SHIFT));
    let slots = b.ins().stack_addr(ptr, slots_ss, 0);
    let exit = b.create_block();
    b.append_block_param(exit, types::I64);
    let nslots = params[2];
    let frame = Frame { slots_ss, slots, nslots, exit };
    let sig = b.import_signature(helper_sig(ptr, 2, false));
    let callee = b.ins().iconst(ptr, rt::jit_init_slots as *const u8 as i64);
    b.ins().call_indirect(sig, callee, &[slots, nslots]);
    (params, frame)
}

fn end(b: &mut FunctionBuilder<'_>, ptr: Type, frame: &Frame, used_slots: u32) -> Compiled {
    b.switch_to_block(frame.exit);
    b.seal_block(frame.exit);
    let status = b.block_params(frame.exit)[0];
    let sig = b.import_signature(helper_sig(ptr, 2, false));
    let callee = b.ins().iconst(ptr, rt::jit_drop_slots as *const u8 as i64);
    b.ins().call_indirect(sig, callee, &[frame.slots, frame.nslots]);
    b.ins().return_(&[status]);
    b.func.sized_stack_slots[frame.slots_ss].size = used_slots.max(1) * VALUE_SIZE;
    Compiled { slots: used_slots as usize }
}

/// Compiles one statement into `b`'s function: `fn(env, doc, slot_count) -> status`.
pub fn compile_statement(
    b: &mut FunctionBuilder<'_>,
    config: TargetFrontendConfig,
    stmt: &Statement,
    pool: &mut Pool,
    pending: &mut Vec<PendingNested>,
) -> Compiled {
    let ptr = config.pointer_type();
    let (params, frame) = begin(b, ptr);
    let vars_ss = b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        (stmt.vars.len().max(1) * 8) as u32,
        3,
    ));
    let vars_area = b.ins().stack_addr(ptr, vars_ss, 0);
    let mut g = Gen::new(b, ptr, &params, &frame, vars_area, RawSource::Payload, pool, pending);
    let mut exprs: Vec<&Expr> = stmt.vars.iter().map(|(_, e)| e).collect();
    exprs.extend(query_exprs(&stmt.query));
    g.hoist_paths(&exprs);
    for (_, e) in &stmt.vars {
        let v = g.expr(e);
        let p = g.ptr_of(v);
        let off = (g.vars.len() * 8) as i32;
        g.b.ins().store(MemFlagsData::trusted(), p, g.vars_area, off);
        g.vars.push(p);
    }
    g.condition(stmt.query.condition.as_ref());
    g.output(stmt);
    let used = g.nslots;
    end(b, ptr, &frame, used)
}

/// Compiles a nested SELECT's element function into `b`'s function:
/// `fn(env, element, slot_count, vars, out) -> status` (0: no value, 1: `*out` holds it,
/// 2: error).
pub fn compile_nested(
    b: &mut FunctionBuilder<'_>,
    config: TargetFrontendConfig,
    nested: &PendingNested,
    pool: &mut Pool,
    pending: &mut Vec<PendingNested>,
) -> Compiled {
    let ptr = config.pointer_type();
    let (params, frame) = begin(b, ptr);
    let (vars_area, out) = (params[3], params[4]);
    let mut g = Gen::new(b, ptr, &params, &frame, vars_area, RawSource::DocJson, pool, pending);
    for i in 0..nested.vars {
        let p = g.b.ins().load(ptr, MemFlagsData::trusted(), vars_area, (i * 8) as i32);
        g.vars.push(p);
    }
    let q = &nested.query;
    g.hoist_paths(&query_exprs(q));
    g.condition(q.condition.as_ref());
    if q.value {
        let v = match q.items.first() {
            Some(Item::Named { expr, .. } | Item::Dotted { expr, .. }) => {
                let v = g.expr(expr);
                g.ptr_of(v)
            }
            Some(Item::Star) => g.doc,
            None => g.const_ptr(&rt::UNDEFINED),
        };
        g.call_void("nested_put", rt::jit_nested_put as *const u8, &[out, v]);
    } else {
        let obj = g.new_slot();
        let cap = g.imm(q.items.len() as i64);
        let obj = g.call("object_new", rt::jit_object_new as *const u8, &[obj, cap]);
        for item in &q.items {
            match item {
                Item::Star => g.call_void("object_star", rt::jit_object_star as *const u8, &[obj, g.doc]),
                Item::Named { name, expr } => {
                    let v = g.expr(expr);
                    let v = g.ptr_of(v);
                    let key = g.pool.keep(name.clone());
                    let key = g.imm(key);
                    g.call_void("object_put", rt::jit_object_put as *const u8, &[obj, key, v]);
                }
                Item::Dotted { path, expr } => {
                    let v = g.expr(expr);
                    let v = g.ptr_of(v);
                    let p = g.pool.keep(path.clone());
                    let p = g.imm(p);
                    g.call_void("object_put_path", rt::jit_object_put_path as *const u8, &[obj, p, v]);
                }
            }
        }
        g.call_void("nested_take", rt::jit_nested_take as *const u8, &[out, obj]);
    }
    g.finish(1);
    let used = g.nslots;
    end(b, ptr, &frame, used)
}

/// The expressions of a query evaluated in its own scope (not its source).
fn query_exprs(q: &Query) -> Vec<&Expr> {
    let mut out: Vec<&Expr> = q.condition.iter().collect();
    for item in &q.items {
        if let Item::Named { expr, .. } | Item::Dotted { expr, .. } = item {
            out.push(expr);
        }
    }
    out
}

/// Where `encode(*, ...)` finds its bytes in a scope.
#[derive(Clone, Copy)]
enum RawSource {
    /// The outer statement: the payload as published.
    Payload,
    /// A nested SELECT: its element as JSON text.
    DocJson,
}

fn helper_sig(ptr: Type, params: usize, returns: bool) -> Signature {
    let mut sig = Signature::new(CallConv::SystemV);
    for _ in 0..params {
        sig.params.push(AbiParam::new(ptr));
    }
    if returns {
        sig.returns.push(AbiParam::new(ptr));
    }
    sig
}

struct Gen<'g, 'b> {
    b: &'g mut FunctionBuilder<'b>,
    ptr: Type,
    env: ClValue,
    doc: ClValue,
    slots: ClValue,
    vars_area: ClValue,
    nslots: u32,
    paths: HashMap<Vec<String>, ClValue>,
    vars: Vec<ClValue>,
    exit: Block,
    pool: &'g mut Pool,
    pending: &'g mut Vec<PendingNested>,
    raw: RawSource,
    sigs: HashMap<(usize, bool), cranelift_codegen::ir::SigRef>,
}

/// The attribute path an expression reads (`a`, `a.b.c`), when it is one.
fn attr_path(e: &Expr) -> Option<Vec<String>> {
    match e {
        Expr::Attr(name) => Some(vec![name.clone()]),
        Expr::Member(inner, name) => {
            let mut p = attr_path(inner)?;
            p.push(name.clone());
            Some(p)
        }
        _ => None,
    }
}

fn collect_paths(e: &Expr, out: &mut Vec<Vec<String>>) {
    if let Some(p) = attr_path(e) {
        if !out.contains(&p) {
            out.push(p);
        }
        return;
    }
    match e {
        Expr::Const(_) | Expr::Doc | Expr::Attr(_) | Expr::Var(_) | Expr::Nested(_) => {}
        Expr::Member(e, _) | Expr::Not(e) | Expr::Neg(e) | Expr::Cast(e, _) => collect_paths(e, out),
        Expr::Binary(_, l, r) => {
            collect_paths(l, out);
            collect_paths(r, out);
        }
        Expr::Call(_, args) | Expr::Array(args) => args.iter().for_each(|a| collect_paths(a, out)),
        Expr::Case { operand, arms, otherwise } => {
            collect_paths(operand, out);
            for (w, t) in arms {
                collect_paths(w, out);
                collect_paths(t, out);
            }
            if let Some(o) = otherwise {
                collect_paths(o, out);
            }
        }
        Expr::Object(entries) => entries.iter().for_each(|(_, e)| collect_paths(e, out)),
    }
}

impl<'g, 'b> Gen<'g, 'b> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        b: &'g mut FunctionBuilder<'b>,
        ptr: Type,
        params: &[ClValue],
        frame: &Frame,
        vars_area: ClValue,
        raw: RawSource,
        pool: &'g mut Pool,
        pending: &'g mut Vec<PendingNested>,
    ) -> Self {
        Gen {
            b,
            ptr,
            env: params[0],
            doc: params[1],
            slots: frame.slots,
            vars_area,
            nslots: 0,
            paths: HashMap::new(),
            vars: Vec::new(),
            exit: frame.exit,
            pool,
            pending,
            raw,
            sigs: HashMap::new(),
        }
    }

    /// WHERE: continues when the condition is exactly true, else leaves with status 0.
    fn condition(&mut self, cond: Option<&Expr>) {
        let Some(cond) = cond else { return };
        let c = self.expr(cond);
        let is_true = match c {
            Operand::Code(code) => self.b.ins().icmp_imm_s(IntCC::Equal, code, rt::CODE_TRUE),
            Operand::Ptr(p) => {
                let t = self.call("is_true", rt::jit_is_true as *const u8, &[p]);
                self.b.ins().icmp_imm_s(IntCC::NotEqual, t, 0)
            }
        };
        let pass = self.b.create_block();
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.ins().brif(is_true, pass, &[], self.exit, &[BlockArg::Value(zero)]);
        self.b.switch_to_block(pass);
        self.b.seal_block(pass);
    }

    fn sig(&mut self, params: usize, returns: bool) -> cranelift_codegen::ir::SigRef {
        if let Some(s) = self.sigs.get(&(params, returns)) {
            return *s;
        }
        let s = self.b.import_signature(helper_sig(self.ptr, params, returns));
        self.sigs.insert((params, returns), s);
        s
    }

    fn call(&mut self, _name: &str, f: *const u8, args: &[ClValue]) -> ClValue {
        let sig = self.sig(args.len(), true);
        let callee = self.b.ins().iconst(self.ptr, f as i64);
        let inst = self.b.ins().call_indirect(sig, callee, args);
        self.b.inst_results(inst)[0]
    }

    fn call_void(&mut self, _name: &str, f: *const u8, args: &[ClValue]) {
        let sig = self.sig(args.len(), false);
        let callee = self.b.ins().iconst(self.ptr, f as i64);
        self.b.ins().call_indirect(sig, callee, args);
    }

    fn imm(&mut self, v: i64) -> ClValue {
        self.b.ins().iconst(self.ptr, v)
    }

    fn new_slot(&mut self) -> ClValue {
        let off = self.nslots * VALUE_SIZE;
        self.nslots += 1;
        self.b.ins().iadd_imm_s(self.slots, off as i64)
    }

    /// Jumps to the exit with status 2 when a helper returned null.
    fn check(&mut self, p: ClValue) {
        let ok = self.b.create_block();
        let is_null = self.b.ins().icmp_imm_s(IntCC::Equal, p, 0);
        let two = self.b.ins().iconst(types::I64, 2);
        self.b.ins().brif(is_null, self.exit, &[BlockArg::Value(two)], ok, &[]);
        self.b.switch_to_block(ok);
        self.b.seal_block(ok);
    }

    fn hoist_paths(&mut self, exprs: &[&Expr]) {
        let mut paths = Vec::new();
        for e in exprs {
            collect_paths(e, &mut paths);
        }
        // Shorter paths first, so `a.b` reuses the pointer of `a`.
        paths.sort_by_key(Vec::len);
        for path in paths {
            let parent = if path.len() > 1 { self.paths.get(&path[..path.len() - 1]).copied() } else { None };
            let mut p = self.doc;
            let start = match parent {
                Some(pp) => {
                    p = pp;
                    path.len() - 1
                }
                None => 0,
            };
            for name in &path[start..] {
                let key = self.pool.keep(name.clone());
                let key = self.imm(key);
                p = self.call("member", rt::jit_member as *const u8, &[p, key]);
            }
            self.paths.insert(path, p);
        }
    }

    fn const_ptr(&mut self, v: &'static Value) -> ClValue {
        self.imm(v as *const Value as i64)
    }

    /// An operand as a value pointer (truth codes become the static Booleans or Undefined).
    fn ptr_of(&mut self, o: Operand) -> ClValue {
        match o {
            Operand::Ptr(p) => p,
            Operand::Code(c) => {
                let f = self.const_ptr(&rt::FALSE);
                let t = self.const_ptr(&rt::TRUE);
                let u = self.const_ptr(&rt::UNDEFINED);
                let is_false = self.b.ins().icmp_imm_s(IntCC::Equal, c, rt::CODE_FALSE);
                let is_true = self.b.ins().icmp_imm_s(IntCC::Equal, c, rt::CODE_TRUE);
                let tu = self.b.ins().select(is_true, t, u);
                self.b.ins().select(is_false, f, tu)
            }
        }
    }

    /// An operand as a truth code (standard conversion to Boolean).
    fn code_of(&mut self, o: Operand) -> ClValue {
        match o {
            Operand::Code(c) => c,
            Operand::Ptr(p) => self.call("to_bool", rt::jit_to_bool as *const u8, &[p]),
        }
    }

    fn expr(&mut self, e: &Expr) -> Operand {
        if let Some(path) = attr_path(e) {
            if let Some(p) = self.paths.get(&path) {
                return Operand::Ptr(*p);
            }
        }
        match e {
            Expr::Const(Value::Bool(b)) => {
                Operand::Code(self.b.ins().iconst(types::I64, if *b { rt::CODE_TRUE } else { rt::CODE_FALSE }))
            }
            Expr::Const(v) => {
                let p = self.pool.keep(v.clone());
                Operand::Ptr(self.imm(p))
            }
            Expr::Doc => Operand::Ptr(self.doc),
            Expr::Attr(name) => {
                let key = self.pool.keep(name.clone());
                let key = self.imm(key);
                Operand::Ptr(self.call("member", rt::jit_member as *const u8, &[self.doc, key]))
            }
            Expr::Member(inner, name) => {
                let base = self.expr(inner);
                let base = self.ptr_of(base);
                let key = self.pool.keep(name.clone());
                let key = self.imm(key);
                Operand::Ptr(self.call("member", rt::jit_member as *const u8, &[base, key]))
            }
            Expr::Var(slot) => Operand::Ptr(self.vars.get(*slot).copied().unwrap_or_else(|| {
                // The checker only lets a variable read earlier ones.
                self.imm(&rt::UNDEFINED as *const Value as i64)
            })),
            Expr::Not(inner) => {
                let c = self.expr(inner);
                let c = self.code_of(c);
                let undefined = self.b.ins().icmp_imm_s(IntCC::Equal, c, rt::CODE_UNDEFINED);
                let flipped = self.b.ins().bxor_imm_s(c, 1);
                let two = self.b.ins().iconst(types::I64, rt::CODE_UNDEFINED);
                Operand::Code(self.b.ins().select(undefined, two, flipped))
            }
            Expr::Neg(inner) => {
                let v = self.expr(inner);
                let v = self.ptr_of(v);
                let out = self.new_slot();
                Operand::Ptr(self.call("negate", rt::jit_negate as *const u8, &[v, out]))
            }
            Expr::Binary(op @ (BinOp::And | BinOp::Or), l, r) => {
                let l = self.expr(l);
                let l = self.code_of(l);
                let r = self.expr(r);
                let r = self.code_of(r);
                let lu = self.b.ins().icmp_imm_s(IntCC::Equal, l, rt::CODE_UNDEFINED);
                let ru = self.b.ins().icmp_imm_s(IntCC::Equal, r, rt::CODE_UNDEFINED);
                let undefined = self.b.ins().bor(lu, ru);
                let v = if *op == BinOp::And { self.b.ins().band(l, r) } else { self.b.ins().bor(l, r) };
                let two = self.b.ins().iconst(types::I64, rt::CODE_UNDEFINED);
                Operand::Code(self.b.ins().select(undefined, two, v))
            }
            Expr::Binary(op @ (BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge), l, r) => {
                self.compare(*op, l, r)
            }
            Expr::Binary(op, l, r) => {
                let l = self.expr(l);
                let l = self.ptr_of(l);
                let r = self.expr(r);
                let r = self.ptr_of(r);
                let out = self.new_slot();
                let opn = self.imm(rt::op_number(*op));
                Operand::Ptr(self.call("arith", rt::jit_arith as *const u8, &[self.env, opn, l, r, out]))
            }
            Expr::Call(builtin, args) => self.call_builtin(*builtin, args),
            Expr::Cast(inner, ty) => {
                let v = self.expr(inner);
                let v = self.ptr_of(v);
                let out = self.new_slot();
                let ty = self.imm(rt::cast_number(*ty));
                Operand::Ptr(self.call("cast", rt::jit_cast as *const u8, &[self.env, v, ty, out]))
            }
            Expr::Case { operand, arms, otherwise } => self.case(operand, arms, otherwise.as_deref()),
            Expr::Object(entries) => {
                let out = self.new_slot();
                let cap = self.imm(entries.len() as i64);
                let obj = self.call("object_new", rt::jit_object_new as *const u8, &[out, cap]);
                for (k, e) in entries {
                    let v = self.expr(e);
                    let v = self.ptr_of(v);
                    let key = self.pool.keep(k.clone());
                    let key = self.imm(key);
                    self.call_void("object_put", rt::jit_object_put as *const u8, &[obj, key, v]);
                }
                Operand::Ptr(obj)
            }
            Expr::Array(items) => {
                let out = self.new_slot();
                let cap = self.imm(items.len() as i64);
                let arr = self.call("array_new", rt::jit_array_new as *const u8, &[out, cap]);
                for e in items {
                    let v = self.expr(e);
                    let v = self.ptr_of(v);
                    self.call_void("array_push", rt::jit_array_push as *const u8, &[arr, v]);
                }
                Operand::Ptr(arr)
            }
            Expr::Nested(q) => {
                let source = match &q.source {
                    Some(e) => {
                        let v = self.expr(e);
                        self.ptr_of(v)
                    }
                    None => self.const_ptr(&rt::UNDEFINED),
                };
                let site = self.pool.keep(rt::NestedSite::default());
                self.pending.push(PendingNested {
                    site: site as *const rt::NestedSite,
                    query: (**q).clone(),
                    vars: self.vars.len(),
                });
                let site = self.imm(site);
                let out = self.new_slot();
                let p =
                    self.call("nested", rt::jit_nested as *const u8, &[self.env, site, source, self.vars_area, out]);
                self.check(p);
                Operand::Ptr(p)
            }
        }
    }

    fn compare(&mut self, op: BinOp, l: &Expr, r: &Expr) -> Operand {
        // A comparison with an Int constant converts the constant once, here.
        let flipped = |op: BinOp| match op {
            BinOp::Lt => BinOp::Gt,
            BinOp::Le => BinOp::Ge,
            BinOp::Gt => BinOp::Lt,
            BinOp::Ge => BinOp::Le,
            other => other,
        };
        let (op, l, r) = match (l, r) {
            (Expr::Const(Value::Int(_)), other) if !matches!(other, Expr::Const(_)) => (flipped(op), r, l),
            _ => (op, l, r),
        };
        let opn = self.imm(rt::op_number(op));
        if let Expr::Const(Value::Int(c)) = r {
            let lv = self.expr(l);
            let lv = self.ptr_of(lv);
            let n = self.pool.keep(NumConst { int: *c, dec: Dec::from_i128(*c) });
            let n = self.imm(n);
            return Operand::Code(self.call("compare_int", rt::jit_compare_int_const as *const u8, &[opn, lv, n]));
        }
        let lv = self.expr(l);
        let lv = self.ptr_of(lv);
        let rv = self.expr(r);
        let rv = self.ptr_of(rv);
        Operand::Code(self.call("compare", rt::jit_compare as *const u8, &[opn, lv, rv]))
    }

    fn call_builtin(&mut self, builtin: Builtin, args: &[Expr]) -> Operand {
        let raw = match (builtin, args.first(), self.raw) {
            (Builtin::Encode, Some(Expr::Doc), RawSource::Payload) => rt::RAW_PAYLOAD,
            (Builtin::Encode, Some(Expr::Doc), RawSource::DocJson) => rt::RAW_DOC_JSON,
            _ => rt::RAW_NONE,
        };
        let mut ptrs = Vec::with_capacity(args.len());
        for a in args {
            let v = self.expr(a);
            ptrs.push(self.ptr_of(v));
        }
        // The arguments as a slice of bitwise copies in a stack area of their own.
        let area = self.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (args.len().max(1) as u32) * VALUE_SIZE,
            VALUE_ALIGN_SHIFT,
        ));
        let base = self.b.ins().stack_addr(self.ptr, area, 0);
        for (i, p) in ptrs.iter().enumerate() {
            for word in 0..(VALUE_SIZE / 8) as i32 {
                let w = self.b.ins().load(types::I64, MemFlagsData::trusted(), *p, word * 8);
                self.b.ins().store(MemFlagsData::trusted(), w, base, i as i32 * VALUE_SIZE as i32 + word * 8);
            }
        }
        let site = self.pool.keep(CallSite { builtin, raw });
        let site = self.imm(site);
        let n = self.imm(args.len() as i64);
        let out = self.new_slot();
        let p = self.call("call", rt::jit_call as *const u8, &[self.env, site, base, n, out]);
        self.check(p);
        Operand::Ptr(p)
    }

    fn case(&mut self, operand: &Expr, arms: &[(Expr, Expr)], otherwise: Option<&Expr>) -> Operand {
        let v = self.expr(operand);
        let v = self.ptr_of(v);
        let merge = self.b.create_block();
        let result = self.b.append_block_param(merge, self.ptr);
        let undefined = self.call("is_undefined", rt::jit_is_undefined as *const u8, &[v]);
        let undef_ptr = self.const_ptr(&rt::UNDEFINED);
        let next = self.b.create_block();
        self.b.ins().brif(undefined, merge, &[BlockArg::Value(undef_ptr)], next, &[]);
        self.b.switch_to_block(next);
        self.b.seal_block(next);
        for (when, then) in arms {
            let w = self.expr(when);
            let w = self.ptr_of(w);
            let hit = self.call("case_matches", rt::jit_case_matches as *const u8, &[v, w]);
            let then_block = self.b.create_block();
            let else_block = self.b.create_block();
            self.b.ins().brif(hit, then_block, &[], else_block, &[]);
            self.b.switch_to_block(then_block);
            self.b.seal_block(then_block);
            let t = self.expr(then);
            let t = self.ptr_of(t);
            self.b.ins().jump(merge, &[BlockArg::Value(t)]);
            self.b.switch_to_block(else_block);
            self.b.seal_block(else_block);
        }
        let o = match otherwise {
            Some(o) => {
                let o = self.expr(o);
                self.ptr_of(o)
            }
            None => self.const_ptr(&rt::UNDEFINED),
        };
        self.b.ins().jump(merge, &[BlockArg::Value(o)]);
        self.b.switch_to_block(merge);
        self.b.seal_block(merge);
        Operand::Ptr(result)
    }

    fn finish(&mut self, status: i64) {
        let s = self.b.ins().iconst(types::I64, status);
        self.b.ins().jump(self.exit, &[BlockArg::Value(s)]);
    }

    fn output(&mut self, stmt: &Statement) {
        let q = &stmt.query;
        if q.value {
            match q.items.first() {
                Some(Item::Named { expr, .. } | Item::Dotted { expr, .. }) => {
                    let v = self.expr(expr);
                    let v = self.ptr_of(v);
                    let failed = self.call("out_value", rt::jit_out_value as *const u8, &[self.env, v]);
                    // 0 -> status 1 (output), 1 -> status 2 (error).
                    let status = self.b.ins().iadd_imm_s(failed, 1);
                    self.b.ins().jump(self.exit, &[BlockArg::Value(status)]);
                }
                _ => {
                    let u = self.const_ptr(&rt::UNDEFINED);
                    self.call("out_value", rt::jit_out_value as *const u8, &[self.env, u]);
                    self.finish(1);
                }
            }
            return;
        }
        if matches!(q.items.as_slice(), [Item::Star]) {
            self.call_void("out_star", rt::jit_out_star as *const u8, &[self.env, self.doc]);
            self.finish(1);
            return;
        }
        let mut names: Vec<&str> = Vec::new();
        let direct = q.items.iter().all(|i| match i {
            Item::Named { name, .. } if !names.contains(&name.as_str()) => {
                names.push(name);
                true
            }
            _ => false,
        });
        if direct {
            self.call_void("text_begin", rt::jit_text_begin as *const u8, &[self.env]);
            for item in &q.items {
                if let Item::Named { name, expr } = item {
                    let v = self.expr(expr);
                    let v = self.ptr_of(v);
                    let key = self.pool.keep(rt::member_prefix(name));
                    let key = self.imm(key);
                    self.call_void("text_member", rt::jit_text_member as *const u8, &[self.env, key, v]);
                }
            }
            self.call_void("text_end", rt::jit_text_end as *const u8, &[self.env]);
        } else {
            self.call_void("object_out_begin", rt::jit_object_out_begin as *const u8, &[self.env]);
            for item in &q.items {
                match item {
                    Item::Star => {
                        self.call_void("object_out_star", rt::jit_object_out_star as *const u8, &[self.env, self.doc])
                    }
                    Item::Named { name, expr } => {
                        let v = self.expr(expr);
                        let v = self.ptr_of(v);
                        let key = self.pool.keep(name.clone());
                        let key = self.imm(key);
                        self.call_void("object_out_named", rt::jit_object_out_named as *const u8, &[self.env, key, v]);
                    }
                    Item::Dotted { path, expr } => {
                        let v = self.expr(expr);
                        let v = self.ptr_of(v);
                        let p = self.pool.keep(path.clone());
                        let p = self.imm(p);
                        self.call_void("object_out_dotted", rt::jit_object_out_dotted as *const u8, &[self.env, p, v]);
                    }
                }
            }
            self.call_void("object_out_end", rt::jit_object_out_end as *const u8, &[self.env]);
        }
        self.finish(1);
    }
}
