//! The reference interpreter: runs checked IR against one message exactly as AWS IoT's rules
//! engine would. The JIT must agree with it on every input.

use crate::context::{Host, MessageContext};
use crate::functions::{self, Builtin, CallEnv};
use crate::ir::{BinOp, Expr, Item, Query, Statement};
use crate::num::Dec;
use crate::value::{sql_cmp, sql_eq, Num, Object, SqlVersion, Value};

/// Why a rule could not be evaluated (a failed lookup, an output the SQL version cannot produce).
/// Type mismatches are not errors: they give Undefined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    /// What went wrong.
    pub message: String,
}

impl EvalError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> EvalError {
        EvalError { message: message.into() }
    }
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}

/// What a rule produces for a message that passes WHERE.
#[derive(Debug, Clone)]
pub enum Output {
    /// A JSON document (an object, or any value for SELECT VALUE). Undefined serializes as "".
    Json(Value),
    /// `SELECT *` over a payload that is not JSON: the bytes pass through unchanged.
    Raw(Vec<u8>),
    /// A JSON object already rendered as text by compiled code (what `Json` of the same object
    /// would serialize to).
    Text(String),
}

impl Output {
    /// The bytes an action would send.
    pub fn to_bytes(&self, version: SqlVersion) -> Vec<u8> {
        match self {
            Output::Json(v) => v.to_json(version).into_bytes(),
            Output::Raw(b) => b.clone(),
            Output::Text(t) => t.clone().into_bytes(),
        }
    }

    /// The bytes an action would send, without copying text already rendered.
    pub fn into_bytes(self, version: SqlVersion) -> Vec<u8> {
        match self {
            Output::Json(v) => v.to_json(version).into_bytes(),
            Output::Raw(b) => b,
            Output::Text(t) => t.into_bytes(),
        }
    }

    /// The output as a value: JSON text is parsed back, raw bytes are Binary.
    pub fn to_value(&self) -> Value {
        match self {
            Output::Json(v) => v.clone(),
            Output::Raw(b) => Value::Binary(b.clone()),
            Output::Text(t) => crate::value::parse_json(t.as_bytes()).unwrap_or(Value::Undefined),
        }
    }
}

/// Evaluates a statement against a message: `Ok(None)` when WHERE filters it out.
pub fn evaluate(stmt: &Statement, ctx: &MessageContext<'_>, host: &dyn Host) -> Result<Option<Output>, EvalError> {
    let doc = ctx.payload.document();
    let scope = Scope { doc, raw: Some(ctx.payload.raw()) };
    let mut it = Interp::with_variables(stmt, ctx, host, &scope)?;
    if let Some(cond) = &stmt.query.condition {
        if !matches!(it.eval(cond, &scope)?, Value::Bool(true)) {
            return Ok(None);
        }
    }
    let q = &stmt.query;
    if q.value {
        let Some(Item::Named { expr, .. } | Item::Dotted { expr, .. }) = q.items.first() else {
            return Ok(Some(Output::Json(Value::Undefined)));
        };
        let v = it.eval(expr, &scope)?;
        if !stmt.version.is_v2() && matches!(v, Value::Array(_)) {
            return Err(EvalError::new(
                "SQL version 2015-10-08 cannot output an array as the whole result; use SQL version 2016-03-23",
            ));
        }
        return Ok(Some(Output::Json(v)));
    }
    if matches!(q.items.as_slice(), [Item::Star]) {
        return Ok(Some(match doc {
            Value::Binary(b) => Output::Raw(b.clone()),
            other => Output::Json(other.clone()),
        }));
    }
    Ok(Some(Output::Json(Value::Object(it.items(&q.items, &scope)?))))
}

/// Evaluates one expression (a `${...}` template) against a message, with the statement's SET
/// variables available.
pub fn evaluate_expr(
    expr: &Expr,
    stmt: &Statement,
    ctx: &MessageContext<'_>,
    host: &dyn Host,
) -> Result<Value, EvalError> {
    let scope = Scope { doc: ctx.payload.document(), raw: Some(ctx.payload.raw()) };
    Interp::with_variables(stmt, ctx, host, &scope)?.eval(expr, &scope)
}

struct Scope<'s> {
    doc: &'s Value,
    /// The bytes `encode(*, ...)` sees: the payload as published (outer statement only).
    raw: Option<&'s [u8]>,
}

struct Interp<'e, 'a> {
    env: CallEnv<'e, 'a>,
    vars: Vec<Value>,
}

impl<'e, 'a> Interp<'e, 'a> {
    /// An interpreter for `stmt` with its SET variables evaluated, in order, over `scope`.
    fn with_variables(
        stmt: &Statement,
        ctx: &'e MessageContext<'a>,
        host: &'e dyn Host,
        scope: &Scope<'_>,
    ) -> Result<Self, EvalError> {
        let mut it =
            Interp { env: CallEnv { ctx, host, version: stmt.version }, vars: Vec::with_capacity(stmt.vars.len()) };
        for (_, e) in &stmt.vars {
            let v = it.eval(e, scope)?;
            it.vars.push(v);
        }
        Ok(it)
    }

    fn items(&mut self, items: &[Item], scope: &Scope<'_>) -> Result<Object, EvalError> {
        let mut out = Object::default();
        for item in items {
            match item {
                Item::Star => {
                    if let Value::Object(o) = scope.doc {
                        out.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                Item::Named { name, expr } => {
                    let v = self.eval(expr, scope)?;
                    if !v.is_undefined() {
                        out.insert(name.clone(), v);
                    }
                }
                Item::Dotted { path, expr } => {
                    let v = self.eval(expr, scope)?;
                    if !v.is_undefined() {
                        insert_path(&mut out, path, v);
                    }
                }
            }
        }
        Ok(out)
    }

    fn nested(&mut self, q: &Query, scope: &Scope<'_>) -> Result<Value, EvalError> {
        let source = match &q.source {
            Some(e) => self.eval(e, scope)?,
            None => return Ok(Value::Undefined),
        };
        let one = |it: &mut Self, element: &Value| -> Result<Value, EvalError> {
            let inner = Scope { doc: element, raw: None };
            if let Some(cond) = &q.condition {
                if !matches!(it.eval(cond, &inner)?, Value::Bool(true)) {
                    return Ok(Value::Undefined);
                }
            }
            if q.value {
                match q.items.first() {
                    Some(Item::Named { expr, .. } | Item::Dotted { expr, .. }) => it.eval(expr, &inner),
                    Some(Item::Star) => Ok(element.clone()),
                    None => Ok(Value::Undefined),
                }
            } else {
                Ok(Value::Object(it.items(&q.items, &inner)?))
            }
        };
        match &source {
            Value::Array(elements) => {
                let mut out = Vec::with_capacity(elements.len());
                for e in elements {
                    let v = one(self, e)?;
                    if !v.is_undefined() {
                        out.push(v);
                    }
                }
                Ok(Value::Array(out))
            }
            Value::Object(_) => one(self, &source),
            _ => Ok(Value::Undefined),
        }
    }

    fn eval(&mut self, e: &Expr, scope: &Scope<'_>) -> Result<Value, EvalError> {
        Ok(match e {
            Expr::Const(v) => v.clone(),
            Expr::Doc => scope.doc.clone(),
            Expr::Attr(name) => scope.doc.member(name),
            Expr::Var(slot) => self.vars.get(*slot).cloned().unwrap_or_default(),
            Expr::Member(inner, name) => match inner.as_ref() {
                // Avoid cloning a whole sub-document just to read one member of it.
                Expr::Attr(root) => match scope.doc {
                    Value::Object(o) => o.get(root).map_or(Value::Undefined, |v| v.member(name)),
                    _ => Value::Undefined,
                },
                other => self.eval(other, scope)?.member(name),
            },
            Expr::Not(inner) => match self.eval(inner, scope)?.to_bool() {
                Some(b) => Value::Bool(!b),
                None => Value::Undefined,
            },
            Expr::Neg(inner) => negate(&self.eval(inner, scope)?),
            Expr::Binary(op, l, r) => {
                let l = self.eval(l, scope)?;
                let r = self.eval(r, scope)?;
                binary(*op, &l, &r, self.env.version)
            }
            Expr::Call(builtin, args) => {
                let raw = match (builtin, args.first()) {
                    (Builtin::Encode, Some(Expr::Doc)) => match scope.raw {
                        Some(raw) => Some(raw.to_vec()),
                        None => Some(scope.doc.to_json(self.env.version).into_bytes()),
                    },
                    _ => None,
                };
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.eval(a, scope)?);
                }
                functions::call(*builtin, &values, &self.env, raw.as_deref())?
            }
            Expr::Cast(inner, ty) => functions::cast(&self.eval(inner, scope)?, *ty, self.env.version),
            Expr::Case { operand, arms, otherwise } => {
                let v = self.eval(operand, scope)?;
                if v.is_undefined() {
                    return Ok(Value::Undefined);
                }
                for (when, then) in arms {
                    let w = self.eval(when, scope)?;
                    if sql_eq(&v, &w) == Some(true) {
                        return self.eval(then, scope);
                    }
                }
                match otherwise {
                    Some(o) => self.eval(o, scope)?,
                    None => Value::Undefined,
                }
            }
            Expr::Object(entries) => {
                let mut o = Object::default();
                for (k, e) in entries {
                    let v = self.eval(e, scope)?;
                    if !v.is_undefined() {
                        o.insert(k.clone(), v);
                    }
                }
                Value::Object(o)
            }
            Expr::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for e in items {
                    let v = self.eval(e, scope)?;
                    if !v.is_undefined() {
                        out.push(v);
                    }
                }
                Value::Array(out)
            }
            Expr::Nested(q) => self.nested(q, scope)?,
        })
    }
}

/// Puts `v` at `path` inside `out`, turning a non-object on the way into an object.
pub(crate) fn insert_path(out: &mut Object, path: &[String], v: Value) {
    match path {
        [] => {}
        [last] => {
            out.insert(last.clone(), v);
        }
        [first, rest @ ..] => {
            let slot = out.entry(first.clone()).or_insert_with(|| Value::Object(Object::default()));
            if !matches!(slot, Value::Object(_)) {
                *slot = Value::Object(Object::default());
            }
            if let Value::Object(inner) = slot {
                insert_path(inner, rest, v);
            }
        }
    }
}

/// Unary minus: Ints stay Ints, Decimals and numeric strings give Decimals.
pub fn negate(v: &Value) -> Value {
    match v {
        Value::Int(i) => i.checked_neg().map_or_else(|| Value::Decimal(Dec::from_i128(*i).negated()), Value::Int),
        other => other.to_dec().map_or(Value::Undefined, |d| Value::Decimal(d.negated())),
    }
}

/// Every binary operator with AWS's type rules.
pub fn binary(op: BinOp, l: &Value, r: &Value, version: SqlVersion) -> Value {
    match op {
        BinOp::And | BinOp::Or => match (l.to_bool(), r.to_bool()) {
            (Some(a), Some(b)) => Value::Bool(if op == BinOp::And { a && b } else { a || b }),
            _ => Value::Undefined,
        },
        BinOp::Eq => sql_eq(l, r).map_or(Value::Undefined, Value::Bool),
        BinOp::Ne => sql_eq(l, r).map_or(Value::Undefined, |b| Value::Bool(!b)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => match sql_cmp(l, r) {
            Some(o) => Value::Bool(match op {
                BinOp::Lt => o.is_lt(),
                BinOp::Le => o.is_le(),
                BinOp::Gt => o.is_gt(),
                _ => o.is_ge(),
            }),
            None => Value::Undefined,
        },
        BinOp::Add if matches!(l, Value::String(_)) || matches!(r, Value::String(_)) => {
            match (l.to_text(version), r.to_text(version)) {
                (Some(a), Some(b)) => Value::String(a + &b),
                _ => Value::Undefined,
            }
        }
        BinOp::Add => match (l, r) {
            (Value::Int(_) | Value::Decimal(_), Value::Int(_) | Value::Decimal(_)) => arith(op, l, r),
            _ => Value::Undefined,
        },
        BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => arith(op, l, r),
    }
}

/// Arithmetic: Int op Int stays Int (integer division truncates toward zero; overflow moves to
/// Decimal); anything with a Decimal or a numeric string is Decimal; the rest is Undefined.
pub fn arith(op: BinOp, l: &Value, r: &Value) -> Value {
    let (Some(a), Some(b)) = (l.to_num(), r.to_num()) else { return Value::Undefined };
    if let (Num::Int(x), Num::Int(y)) = (a, b) {
        let exact = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div if y == 0 => return Value::Undefined,
            BinOp::Div => x.checked_div(y),
            BinOp::Rem if y == 0 => return Value::Undefined,
            BinOp::Rem => x.checked_rem(y),
            _ => return Value::Undefined,
        };
        if let Some(v) = exact {
            return Value::Int(v);
        }
        if op == BinOp::Div || op == BinOp::Rem {
            return Value::Undefined;
        }
    }
    let (x, y) = (a.to_dec(), b.to_dec());
    let result = match op {
        BinOp::Add => x.checked_add(y),
        BinOp::Sub => x.checked_sub(y),
        BinOp::Mul => x.checked_mul(y),
        BinOp::Div => x.checked_div(y),
        BinOp::Rem => x.checked_rem(y),
        _ => None,
    };
    result.map_or(Value::Undefined, Value::Decimal)
}
