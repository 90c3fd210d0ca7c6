//! The `extern "C"` helpers compiled rules call, and the per-evaluation state they share.
//!
//! Compiled code works on `*const Value` pointers: into the payload document (attribute reads
//! borrow, never clone), into the module's constant pool, to the static Booleans and Undefined
//! below, or to a frame slot that a helper filled. Frame slots are initialised to Undefined on
//! entry and dropped on exit by [`jit_init_slots`] / [`jit_drop_slots`]; a helper writes each
//! slot at most once per evaluation, so no value is leaked or dropped twice. A helper that fails
//! stores the error in the [`Env`] and returns null; the compiled code then jumps to its exit.

use std::cmp::Ordering;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::AtomicUsize;

use crate::functions::{self, Builtin, CallEnv};
use crate::interp::{self, EvalError, Output};
use std::sync::atomic::Ordering as AtomicOrdering;

use crate::ir::{BinOp, CastType};
use crate::num::Dec;
use crate::value::{sql_cmp, sql_eq, write_json, write_json_string, Num, Object, Value};

/// The function of a nested SELECT, run by [`jit_nested`] once per element. Its address is
/// filled in when the module is finalized, before any compiled code runs.
#[derive(Default)]
pub struct NestedSite {
    /// The compiled element function ([`NestedFn`]), as an address.
    pub function: AtomicUsize,
    /// Its frame size.
    pub slots: AtomicUsize,
}

/// The Undefined every compiled rule points at for a missing value.
pub static UNDEFINED: Value = Value::Undefined;
/// `true`, for comparisons turned back into values.
pub static TRUE: Value = Value::Bool(true);
/// `false`, likewise.
pub static FALSE: Value = Value::Bool(false);

/// Truth codes compiled code passes around instead of Boolean values.
pub const CODE_FALSE: i64 = 0;
/// `true`.
pub const CODE_TRUE: i64 = 1;
/// Undefined (neither true nor false).
pub const CODE_UNDEFINED: i64 = 2;

/// What one evaluation of a compiled statement reads and produces.
pub struct Env<'e, 'a> {
    /// What functions may read.
    pub call: CallEnv<'e, 'a>,
    /// The payload as published, for `encode(*, ...)`.
    pub raw: &'e [u8],
    /// The first error a helper met.
    pub error: Option<EvalError>,
    /// The result, once an output helper has run.
    pub output: Option<Output>,
    /// The object under construction for outputs that need one (`*` with other items, dotted
    /// aliases, repeated names).
    pub object: Option<Object>,
    /// The JSON text under construction for outputs rendered directly.
    pub text: String,
}

/// `encode` gets no raw bytes.
pub const RAW_NONE: u8 = 0;
/// `encode(*, ...)` in the outer statement: the payload as published.
pub const RAW_PAYLOAD: u8 = 1;
/// `encode(*, ...)` in a nested SELECT: its element as JSON text.
pub const RAW_DOC_JSON: u8 = 2;

/// A call site: which built-in, and where `encode(*, ...)` finds its bytes.
pub struct CallSite {
    /// The function.
    pub builtin: Builtin,
    /// One of `RAW_NONE`, `RAW_PAYLOAD`, `RAW_DOC_JSON`.
    pub raw: u8,
}

/// An Int constant together with its Decimal form, converted once at compile time.
pub struct NumConst {
    /// The constant as an Int.
    pub int: i128,
    /// The same number as a Decimal.
    pub dec: Dec,
}

fn code(b: Option<bool>) -> i64 {
    match b {
        Some(true) => CODE_TRUE,
        Some(false) => CODE_FALSE,
        None => CODE_UNDEFINED,
    }
}

fn fail(env: &mut Env<'_, '_>, e: EvalError) -> *const Value {
    env.error.get_or_insert(e);
    ptr::null()
}

/// Runs a helper body, turning a panic into an evaluation error instead of unwinding through
/// compiled frames.
fn guarded(env: &mut Env<'_, '_>, what: &str, f: impl FnOnce(&mut Env<'_, '_>) -> *const Value) -> *const Value {
    match catch_unwind(AssertUnwindSafe(|| f(&mut *env))) {
        Ok(p) => p,
        Err(_) => fail(env, EvalError::new(format!("internal error while evaluating {what}"))),
    }
}

unsafe fn put(out: *mut Value, v: Value) -> *const Value {
    // The slot holds the Undefined it was initialised with: nothing to drop.
    ptr::write(out, v);
    out
}

/// Fills `n` frame slots with Undefined.
pub unsafe extern "C" fn jit_init_slots(slots: *mut Value, n: usize) {
    for i in 0..n {
        ptr::write(slots.add(i), Value::Undefined);
    }
}

/// Drops `n` frame slots.
pub unsafe extern "C" fn jit_drop_slots(slots: *mut Value, n: usize) {
    for i in 0..n {
        ptr::drop_in_place(slots.add(i));
    }
}

/// A member of an object, borrowed; Undefined for anything else.
pub unsafe extern "C" fn jit_member(v: *const Value, key: *const String) -> *const Value {
    match &*v {
        Value::Object(o) => o.get((*key).as_str()).map_or(&UNDEFINED as *const Value, |m| m as *const Value),
        _ => &UNDEFINED,
    }
}

/// Standard conversion to Boolean as a truth code.
pub unsafe extern "C" fn jit_to_bool(v: *const Value) -> i64 {
    code((*v).to_bool())
}

/// Is it exactly `true` (what WHERE requires; the string "true" does not pass).
pub unsafe extern "C" fn jit_is_true(v: *const Value) -> i64 {
    matches!(&*v, Value::Bool(true)) as i64
}

/// Is it Undefined.
pub unsafe extern "C" fn jit_is_undefined(v: *const Value) -> i64 {
    (*v).is_undefined() as i64
}

fn bin_op(op: i64) -> BinOp {
    match op {
        0 => BinOp::Eq,
        1 => BinOp::Ne,
        2 => BinOp::Lt,
        3 => BinOp::Le,
        4 => BinOp::Gt,
        5 => BinOp::Ge,
        6 => BinOp::Add,
        7 => BinOp::Sub,
        8 => BinOp::Mul,
        9 => BinOp::Div,
        _ => BinOp::Rem,
    }
}

/// The number compiled code passes for a comparison or arithmetic operator.
pub fn op_number(op: BinOp) -> i64 {
    match op {
        BinOp::Eq => 0,
        BinOp::Ne => 1,
        BinOp::Lt => 2,
        BinOp::Le => 3,
        BinOp::Gt => 4,
        BinOp::Ge => 5,
        BinOp::Add => 6,
        BinOp::Sub => 7,
        BinOp::Mul => 8,
        BinOp::Div => 9,
        BinOp::Rem => 10,
        BinOp::And | BinOp::Or => unreachable!("AND and OR are compiled inline"),
    }
}

fn ordering_code(op: BinOp, o: Option<Ordering>) -> i64 {
    code(o.map(|o| match op {
        BinOp::Lt => o.is_lt(),
        BinOp::Le => o.is_le(),
        BinOp::Gt => o.is_gt(),
        _ => o.is_ge(),
    }))
}

/// `=`, `<>`, `<`, `<=`, `>`, `>=` on any two values, as a truth code.
pub unsafe extern "C" fn jit_compare(op: i64, l: *const Value, r: *const Value) -> i64 {
    let (l, r) = (&*l, &*r);
    match bin_op(op) {
        BinOp::Eq => code(sql_eq(l, r)),
        BinOp::Ne => code(sql_eq(l, r).map(|b| !b)),
        op => ordering_code(op, sql_cmp(l, r)),
    }
}

/// A comparison of a value (left) with an Int constant (right) whose Decimal form was computed
/// at compile time: the same answers as [`jit_compare`] without converting the constant per
/// message.
pub unsafe extern "C" fn jit_compare_int_const(op: i64, l: *const Value, c: *const NumConst) -> i64 {
    let (l, c) = (&*l, &*c);
    match bin_op(op) {
        op @ (BinOp::Eq | BinOp::Ne) => {
            let eq = match l {
                Value::Undefined => None,
                Value::Int(x) => Some(*x == c.int),
                Value::Decimal(d) => Some(d.numeric_cmp(c.dec) == Ordering::Equal),
                _ => Some(false),
            };
            code(if op == BinOp::Eq { eq } else { eq.map(|b| !b) })
        }
        op => {
            let o = match l.to_num() {
                Some(Num::Int(x)) => Some(x.cmp(&c.int)),
                Some(Num::Dec(d)) => Some(d.numeric_cmp(c.dec)),
                None => None,
            };
            ordering_code(op, o)
        }
    }
}

/// `+ - * / %` with AWS's type rules.
pub unsafe extern "C" fn jit_arith(
    env: *mut Env<'_, '_>,
    op: i64,
    l: *const Value,
    r: *const Value,
    out: *mut Value,
) -> *const Value {
    let version = (*env).call.version;
    let (l, r) = (&*l, &*r);
    let v = match (bin_op(op), l, r) {
        // The common case stays out of the general conversion path.
        (BinOp::Add, Value::Int(x), Value::Int(y)) if x.checked_add(*y).is_some() => Value::Int(x + y),
        (BinOp::Sub, Value::Int(x), Value::Int(y)) if x.checked_sub(*y).is_some() => Value::Int(x - y),
        (op, l, r) => interp::binary(op, l, r, version),
    };
    put(out, v)
}

/// Unary minus.
pub unsafe extern "C" fn jit_negate(v: *const Value, out: *mut Value) -> *const Value {
    put(out, interp::negate(&*v))
}

/// A built-in function call. `args` holds bitwise copies of the argument values, laid out as a
/// slice; they are only read, never dropped (the originals still own their heap data).
pub unsafe extern "C" fn jit_call(
    env: *mut Env<'_, '_>,
    site: *const CallSite,
    args: *const Value,
    n: usize,
    out: *mut Value,
) -> *const Value {
    let env = &mut *env;
    let site = &*site;
    let args: &[Value] = if n == 0 { &[] } else { std::slice::from_raw_parts(args, n) };
    let name = functions::signature(site.builtin).name;
    guarded(env, name, |env| {
        let doc_json;
        let raw = match (site.raw, args.first()) {
            (RAW_PAYLOAD, _) => Some(env.raw),
            (RAW_DOC_JSON, Some(doc)) => {
                doc_json = doc.to_json(env.call.version).into_bytes();
                Some(doc_json.as_slice())
            }
            _ => None,
        };
        match functions::call(site.builtin, args, &env.call, raw) {
            Ok(v) => put(out, v),
            Err(e) => fail(env, e),
        }
    })
}

fn cast_type(ty: i64) -> CastType {
    match ty {
        0 => CastType::String,
        1 => CastType::Int,
        2 => CastType::Double,
        3 => CastType::Decimal,
        _ => CastType::Bool,
    }
}

/// The number compiled code passes for a cast target.
pub fn cast_number(ty: CastType) -> i64 {
    match ty {
        CastType::String => 0,
        CastType::Int => 1,
        CastType::Double => 2,
        CastType::Decimal => 3,
        CastType::Bool => 4,
    }
}

/// `cast(v AS type)`.
pub unsafe extern "C" fn jit_cast(env: *mut Env<'_, '_>, v: *const Value, ty: i64, out: *mut Value) -> *const Value {
    put(out, functions::cast(&*v, cast_type(ty), (*env).call.version))
}

/// Does a CASE operand equal a WHEN value (`=` giving true).
pub unsafe extern "C" fn jit_case_matches(v: *const Value, w: *const Value) -> i64 {
    (sql_eq(&*v, &*w) == Some(true)) as i64
}

/// Starts an object literal in a slot.
pub unsafe extern "C" fn jit_object_new(out: *mut Value, capacity: usize) -> *const Value {
    put(out, Value::Object(Object::with_capacity_and_hasher(capacity, Default::default())))
}

/// Adds a member to an object literal (Undefined members are left out).
pub unsafe extern "C" fn jit_object_put(obj: *mut Value, key: *const String, v: *const Value) {
    if let (Value::Object(o), v) = (&mut *obj, &*v) {
        if !v.is_undefined() {
            o.insert((*key).clone(), v.clone());
        }
    }
}

/// Starts an array literal in a slot.
pub unsafe extern "C" fn jit_array_new(out: *mut Value, capacity: usize) -> *const Value {
    put(out, Value::Array(Vec::with_capacity(capacity)))
}

/// Appends to an array literal (Undefined elements are left out).
pub unsafe extern "C" fn jit_array_push(arr: *mut Value, v: *const Value) {
    if let (Value::Array(a), v) = (&mut *arr, &*v) {
        if !v.is_undefined() {
            a.push(v.clone());
        }
    }
}

/// The compiled function of a nested SELECT's elements:
/// `fn(env, element, slot_count, vars, out) -> status`.
type NestedFn = unsafe extern "C" fn(*mut Env<'_, '_>, *const Value, usize, *const *const Value, *mut Value) -> i64;

/// A nested SELECT over `source`: its element function runs on each element of an array (the
/// results that are not Undefined form the result array) or once on an object.
pub unsafe extern "C" fn jit_nested(
    env: *mut Env<'_, '_>,
    site: *const NestedSite,
    source: *const Value,
    vars: *const *const Value,
    out: *mut Value,
) -> *const Value {
    let site = &*site;
    // SAFETY: the module stored the address of a function with exactly this signature before
    // any compiled code could run.
    let f: NestedFn = std::mem::transmute::<usize, NestedFn>(site.function.load(AtomicOrdering::Relaxed));
    let slots = site.slots.load(AtomicOrdering::Relaxed);
    let run = |element: &Value| -> Option<Value> {
        let mut result = Value::Undefined;
        match f(env, element, slots, vars, &mut result) {
            0 | 1 => Some(result),
            _ => None,
        }
    };
    match &*source {
        Value::Array(elements) => {
            let mut results = Vec::with_capacity(elements.len());
            for e in elements {
                match run(e) {
                    Some(v) if !v.is_undefined() => results.push(v),
                    Some(_) => {}
                    None => return ptr::null(),
                }
            }
            put(out, Value::Array(results))
        }
        object @ Value::Object(_) => match run(object) {
            Some(v) => put(out, v),
            None => ptr::null(),
        },
        _ => &UNDEFINED,
    }
}

/// A nested SELECT VALUE's result for one element (a copy: the element function's frame is
/// about to be dropped).
pub unsafe extern "C" fn jit_nested_put(out: *mut Value, v: *const Value) {
    *out = (*v).clone();
}

/// A nested SELECT's object result for one element, moved out of its frame slot.
pub unsafe extern "C" fn jit_nested_take(out: *mut Value, slot: *mut Value) {
    *out = std::mem::take(&mut *slot);
}

/// `*` in a nested SELECT's items: every member of the element.
pub unsafe extern "C" fn jit_object_star(obj: *mut Value, doc: *const Value) {
    if let (Value::Object(o), Value::Object(d)) = (&mut *obj, &*doc) {
        o.extend(d.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// A dotted alias in a nested SELECT's items.
pub unsafe extern "C" fn jit_object_put_path(obj: *mut Value, path: *const Vec<String>, v: *const Value) {
    if let (Value::Object(o), v) = (&mut *obj, &*v) {
        if !v.is_undefined() {
            interp::insert_path(o, &*path, v.clone());
        }
    }
}

/// `SELECT VALUE v`: the output is `v` itself (SQL 2015-10-08 cannot output an array).
pub unsafe extern "C" fn jit_out_value(env: *mut Env<'_, '_>, v: *const Value) -> i64 {
    let env = &mut *env;
    let v = &*v;
    if !env.call.version.is_v2() && matches!(v, Value::Array(_)) {
        env.error = Some(EvalError::new(
            "SQL version 2015-10-08 cannot output an array as the whole result; use SQL version 2016-03-23",
        ));
        return 1;
    }
    env.output = Some(rendered(v, env.call.version));
    0
}

/// A result value as output: rendered to JSON text at once (no copy of the value), except
/// Undefined and Binary, which keep their own output forms.
fn rendered(v: &Value, version: crate::value::SqlVersion) -> Output {
    match v {
        Value::Undefined | Value::Binary(_) => Output::Json(v.clone()),
        other => {
            let mut text = String::with_capacity(128);
            write_json(other, version, &mut text);
            Output::Text(text)
        }
    }
}

/// `SELECT *` on its own: the document, or the raw bytes when the payload is not JSON.
pub unsafe extern "C" fn jit_out_star(env: *mut Env<'_, '_>, doc: *const Value) {
    let env = &mut *env;
    env.output = Some(match &*doc {
        Value::Binary(b) => Output::Raw(b.clone()),
        other => rendered(other, env.call.version),
    });
}

/// Starts a directly rendered object output.
pub unsafe extern "C" fn jit_text_begin(env: *mut Env<'_, '_>) {
    let env = &mut *env;
    env.text = String::with_capacity(128);
    env.text.push('{');
}

/// Renders one member of a directly rendered output: `key` is the member's `"name":` text,
/// computed at compile time. Undefined members are left out.
pub unsafe extern "C" fn jit_text_member(env: *mut Env<'_, '_>, key: *const String, v: *const Value) {
    let env = &mut *env;
    let v = &*v;
    if v.is_undefined() {
        return;
    }
    if env.text.len() > 1 {
        env.text.push(',');
    }
    env.text.push_str(&*key);
    write_json(v, env.call.version, &mut env.text);
}

/// Finishes a directly rendered output.
pub unsafe extern "C" fn jit_text_end(env: *mut Env<'_, '_>) {
    let env = &mut *env;
    env.text.push('}');
    env.output = Some(Output::Text(std::mem::take(&mut env.text)));
}

/// `"name":` as JSON text, the prefix a directly rendered member starts with.
pub fn member_prefix(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 3);
    write_json_string(name, &mut s);
    s.push(':');
    s
}

/// Starts an object output that needs the general path.
pub unsafe extern "C" fn jit_object_out_begin(env: *mut Env<'_, '_>) {
    (*env).object = Some(Object::default());
}

/// `*` among other items: every member of the document.
pub unsafe extern "C" fn jit_object_out_star(env: *mut Env<'_, '_>, doc: *const Value) {
    if let Value::Object(o) = &*doc {
        (*env).object.get_or_insert_with(Object::default).extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// A named item of an object output.
pub unsafe extern "C" fn jit_object_out_named(env: *mut Env<'_, '_>, name: *const String, v: *const Value) {
    let v = &*v;
    if !v.is_undefined() {
        (*env).object.get_or_insert_with(Object::default).insert((*name).clone(), v.clone());
    }
}

/// An item with a dotted alias.
pub unsafe extern "C" fn jit_object_out_dotted(env: *mut Env<'_, '_>, path: *const Vec<String>, v: *const Value) {
    let v = &*v;
    if !v.is_undefined() {
        interp::insert_path((*env).object.get_or_insert_with(Object::default), &*path, v.clone());
    }
}

/// Finishes an object output.
pub unsafe extern "C" fn jit_object_out_end(env: *mut Env<'_, '_>) {
    let env = &mut *env;
    env.output = Some(Output::Json(Value::Object(env.object.take().unwrap_or_default())));
}
