//! Constant folding before code generation: an operator, pure built-in, array or object
//! literal whose operands are all constants is evaluated once, at compile time, with the interpreter's own functions, so the
//! result is the one the interpreter would compute for every message.
//!
//! Pure means the result depends on the arguments (and the statement's SQL version) only: no
//! message context (`topic()`, `clientid()`, `timestamp()`...), no randomness, no lookups.
//! `lpad`/`rpad` are left to run time because their output size is the argument's to choose. A
//! call that fails or panics at compile time is left in place, so it fails at run time exactly
//! as the interpreter's would.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::context::{MessageContext, MqttProperties, NoHost, Payload};
use crate::functions::{self, Builtin, CallEnv};
use crate::interp;
use crate::ir::{Expr, Item, Query, Statement};
use crate::value::{SqlVersion, Value};

/// The statement with every constant subexpression replaced by its value.
pub fn fold_statement(stmt: &Statement) -> Statement {
    let mut out = stmt.clone();
    let v = stmt.version;
    for (_, e) in &mut out.vars {
        fold(e, v);
    }
    fold_query(&mut out.query, v);
    out
}

fn fold_query(q: &mut Query, v: SqlVersion) {
    if let Some(s) = &mut q.source {
        fold(s, v);
    }
    if let Some(c) = &mut q.condition {
        fold(c, v);
    }
    for item in &mut q.items {
        if let Item::Named { expr, .. } | Item::Dotted { expr, .. } = item {
            fold(expr, v);
        }
    }
}

fn is_pure(b: Builtin) -> bool {
    use Builtin as B;
    !matches!(
        b,
        B::AccountId
            | B::ClientId
            | B::Principal
            | B::SourceIp
            | B::TraceId
            | B::Topic
            | B::Timestamp
            | B::GetMqttProperty
            | B::GetUserProperties
            | B::NewUuid
            | B::Rand
            | B::AwsLambda
            | B::GetRegistryData
            | B::GetSecret
            | B::GetThingShadow
            | B::Lpad
            | B::Rpad
    )
}

fn constant(e: &Expr) -> Option<&Value> {
    match e {
        Expr::Const(v) => Some(v),
        _ => None,
    }
}

/// Folds `e` in place, children first.
fn fold(e: &mut Expr, v: SqlVersion) {
    match e {
        Expr::Const(_) | Expr::Doc | Expr::Attr(_) | Expr::Var(_) => return,
        Expr::Member(inner, _) | Expr::Not(inner) | Expr::Neg(inner) | Expr::Cast(inner, _) => fold(inner, v),
        Expr::Binary(_, l, r) => {
            fold(l, v);
            fold(r, v);
        }
        Expr::Call(_, args) | Expr::Array(args) => args.iter_mut().for_each(|a| fold(a, v)),
        Expr::Case { operand, arms, otherwise } => {
            fold(operand, v);
            for (w, t) in arms {
                fold(w, v);
                fold(t, v);
            }
            if let Some(o) = otherwise {
                fold(o, v);
            }
        }
        Expr::Object(entries) => entries.iter_mut().for_each(|(_, x)| fold(x, v)),
        Expr::Nested(q) => {
            fold_query(q, v);
            return;
        }
    }
    if let Some(value) = evaluate_constant(e, v) {
        *e = Expr::Const(value);
    }
}

/// The value of an operator or pure call over constants, when it has one.
fn evaluate_constant(e: &Expr, v: SqlVersion) -> Option<Value> {
    Some(match e {
        Expr::Member(inner, name) => constant(inner)?.member(name),
        Expr::Not(inner) => constant(inner)?.to_bool().map_or(Value::Undefined, |b| Value::Bool(!b)),
        Expr::Neg(inner) => interp::negate(constant(inner)?),
        Expr::Cast(inner, ty) => functions::cast(constant(inner)?, *ty, v),
        Expr::Binary(op, l, r) => interp::binary(*op, constant(l)?, constant(r)?, v),
        Expr::Array(items) => {
            let items: Vec<&Value> = items.iter().map(constant).collect::<Option<_>>()?;
            Value::Array(items.into_iter().filter(|v| !v.is_undefined()).cloned().collect())
        }
        Expr::Object(entries) => {
            let mut o = crate::value::Object::default();
            for (k, e) in entries {
                let v = constant(e)?;
                if !v.is_undefined() {
                    o.insert(k.clone(), v.clone());
                }
            }
            Value::Object(o)
        }
        Expr::Call(builtin, args) if is_pure(*builtin) => {
            let args: Vec<Value> = args.iter().map(|a| constant(a).cloned()).collect::<Option<_>>()?;
            call_at_compile_time(*builtin, &args, v)?
        }
        _ => return None,
    })
}

fn call_at_compile_time(builtin: Builtin, args: &[Value], version: SqlVersion) -> Option<Value> {
    // Pure functions read nothing of the message; this one only satisfies the signature.
    let payload = Payload::new(b"");
    let props = MqttProperties::default();
    let ctx = MessageContext::new("", &payload, &props);
    let env = CallEnv { ctx: &ctx, host: &NoHost, version };
    catch_unwind(AssertUnwindSafe(|| functions::call(builtin, args, &env, None))).ok()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile;

    fn folded_items(sql: &str) -> Vec<Expr> {
        let stmt = fold_statement(&compile(sql, SqlVersion::V2016_03_23).unwrap());
        stmt.query
            .items
            .into_iter()
            .filter_map(|i| match i {
                Item::Named { expr, .. } => Some(expr),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn pure_calls_and_operators_over_constants_become_constants() {
        let items = folded_items("SELECT upper('a') AS u, 1 + 2 * 3 AS n, sha1('x') AS h, a + 1 AS keep FROM 't'");
        assert!(matches!(&items[0], Expr::Const(Value::String(s)) if s == "A"));
        assert!(matches!(&items[1], Expr::Const(Value::Int(7))));
        assert!(matches!(&items[2], Expr::Const(Value::String(_))));
        assert!(matches!(&items[3], Expr::Binary(..)));
    }

    #[test]
    fn context_random_and_unbounded_calls_stay_calls() {
        let items = folded_items("SELECT topic() AS t, rand() AS r, lpad('a', 3) AS p, newuuid() AS id FROM 't'");
        assert!(items.iter().all(|e| matches!(e, Expr::Call(..))));
    }
}
