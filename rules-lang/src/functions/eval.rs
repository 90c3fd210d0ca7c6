//! What each built-in function computes. Arguments arrive evaluated; a wrong type gives
//! Undefined. Only lookups through the host can fail the evaluation.

use std::cell::RefCell;
use std::collections::HashMap;

use base64::Engine as _;

use super::{datetime, Builtin};
use crate::context::{MessageContext, Protocol, Secret};
use crate::interp::{arith, EvalError};
use crate::ir::{BinOp, CastType};
use crate::num::Dec;
use crate::value::{numeric_string, parse_json, SqlVersion, Value};

/// What a function may read besides its arguments.
pub struct CallEnv<'e, 'a> {
    /// The message.
    pub ctx: &'e MessageContext<'a>,
    /// Lookups.
    pub host: &'e dyn crate::context::Host,
    /// The statement's SQL version.
    pub version: SqlVersion,
}

type R = Result<Value, EvalError>;

fn dbl(f: f64) -> Value {
    Dec::from_f64(f).map_or(Value::Undefined, Value::Decimal)
}

fn unary_f64(v: &Value, f: impl Fn(f64) -> f64) -> Value {
    match v.to_dec() {
        Some(d) => dbl(f(d.to_f64())),
        None => Value::Undefined,
    }
}

fn int_or_dec(d: Dec) -> Value {
    d.to_i128_exact().map_or(Value::Decimal(d), Value::Int)
}

fn text(v: &Value, version: SqlVersion) -> Option<String> {
    v.to_text(version)
}

/// Index-like arguments: Ints, Decimals rounded toward zero and numeric strings; huge values saturate.
fn index(v: &Value) -> Option<i128> {
    match v {
        Value::Int(i) => Some(*i),
        other => {
            let d = other.to_dec()?;
            Some(d.trunc().to_i128_exact().unwrap_or(if d.is_negative() { i128::MIN } else { i128::MAX }))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<String, Option<fancy_regex::Regex>>> = RefCell::new(HashMap::new());
}

fn with_regex<T>(pattern: &str, f: impl FnOnce(&fancy_regex::Regex) -> T) -> Option<T> {
    REGEX_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() > 256 {
            cache.clear();
        }
        let re = cache.entry(pattern.to_string()).or_insert_with(|| fancy_regex::Regex::new(pattern).ok());
        re.as_ref().map(f)
    })
}

/// Java's `$n` group references become `${n}` so that `$1a` means group 1 then `a`; `\$` is a
/// literal dollar.
fn java_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn pad(args: &[Value], version: SqlVersion, left: bool) -> Value {
    let Some(s) = text(&args[0], version) else { return Value::Undefined };
    let Some(n) = index(&args[1]) else { return Value::Undefined };
    let n = n.clamp(0, 1000) as usize;
    let spaces = " ".repeat(n);
    Value::String(if left { spaces + &s } else { s + &spaces })
}

fn bits(args: &[Value], f: impl Fn(i128, i128) -> i128) -> Value {
    match (args[0].to_int(), args[1].to_int()) {
        (Some(a), Some(b)) => Value::Int(f(a, b)),
        _ => Value::Undefined,
    }
}

fn hash<D: md5::Digest>(v: &Value, version: SqlVersion) -> Value {
    match text(v, version) {
        Some(s) => Value::String(hex(&D::digest(s.as_bytes()))),
        None => Value::Undefined,
    }
}

fn decode_base64(v: &Value, version: SqlVersion) -> Value {
    let Some(s) = text(v, version) else { return Value::Undefined };
    let engine = &base64::engine::general_purpose::STANDARD;
    let bytes = match engine.decode(s.trim()) {
        Ok(b) => b,
        Err(_) => match base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.trim().trim_end_matches('=')) {
            Ok(b) => b,
            Err(_) => return Value::Null,
        },
    };
    if let Ok(v) = parse_json(&bytes) {
        return v;
    }
    match String::from_utf8(bytes) {
        Ok(s) => Value::String(s),
        Err(e) => Value::Binary(e.into_bytes()),
    }
}

/// Runs one built-in on evaluated arguments. `raw_doc` is what `*` means for `encode(*, ...)`:
/// the payload bytes as published.
pub fn call(builtin: Builtin, args: &[Value], env: &CallEnv<'_, '_>, raw_doc: Option<&[u8]>) -> R {
    let v = env.version;
    let ctx = env.ctx;
    let a0 = args.first().unwrap_or(&Value::Undefined);
    let a1 = args.get(1).unwrap_or(&Value::Undefined);
    Ok(match builtin {
        Builtin::Abs => match a0 {
            Value::Int(i) => i.checked_abs().map_or_else(|| Value::Decimal(Dec::from_i128(*i).abs()), Value::Int),
            _ => a0.to_dec().map_or(Value::Undefined, |d| Value::Decimal(d.abs())),
        },
        Builtin::AccountId => Value::str(ctx.account_id),
        Builtin::Acos => unary_f64(a0, f64::acos),
        Builtin::Asin => unary_f64(a0, f64::asin),
        Builtin::Atan => unary_f64(a0, f64::atan),
        Builtin::Atan2 => match (a0.to_dec(), a1.to_dec()) {
            (Some(y), Some(x)) => dbl(y.to_f64().atan2(x.to_f64())),
            _ => Value::Undefined,
        },
        Builtin::Cos => unary_f64(a0, f64::cos),
        Builtin::Cosh => unary_f64(a0, f64::cosh),
        Builtin::Sin => unary_f64(a0, f64::sin),
        Builtin::Sinh => unary_f64(a0, f64::sinh),
        Builtin::Tan => unary_f64(a0, f64::tan),
        Builtin::Tanh => unary_f64(a0, f64::tanh),
        Builtin::Exp => unary_f64(a0, f64::exp),
        Builtin::Ln => unary_f64(a0, f64::ln),
        Builtin::Log => unary_f64(a0, f64::log10),
        Builtin::Sqrt => unary_f64(a0, f64::sqrt),
        Builtin::Power => match (a0.to_dec(), a1.to_dec()) {
            (Some(a), Some(b)) => dbl(a.to_f64().powf(b.to_f64())),
            _ => Value::Undefined,
        },
        Builtin::BitAnd => bits(args, |a, b| a & b),
        Builtin::BitOr => bits(args, |a, b| a | b),
        Builtin::BitXor => bits(args, |a, b| a ^ b),
        Builtin::BitNot => a0.to_int().map_or(Value::Undefined, |a| Value::Int(!a)),
        Builtin::Ceil => match a0 {
            Value::Int(i) => Value::Int(*i),
            _ => a0.to_dec().map_or(Value::Undefined, |d| int_or_dec(d.ceil())),
        },
        Builtin::Floor => match a0 {
            Value::Int(i) => Value::Int(*i),
            _ => a0.to_dec().map_or(Value::Undefined, |d| int_or_dec(d.floor())),
        },
        Builtin::Round => match a0 {
            Value::Int(i) => Value::Int(*i),
            _ => a0.to_dec().map_or(Value::Undefined, |d| int_or_dec(d.round_half_up())),
        },
        Builtin::Sign => match a0.to_dec() {
            Some(d) if d.is_zero() => Value::Int(0),
            Some(d) if d.is_negative() => Value::Int(-1),
            Some(_) => Value::Int(1),
            None => Value::Undefined,
        },
        Builtin::Trunc => {
            let places = match index(a1) {
                Some(p) => p.clamp(0, 34) as u32,
                None => return Ok(Value::Undefined),
            };
            match a0 {
                Value::Int(i) => Value::Int(*i),
                _ => a0.to_dec().map_or(Value::Undefined, |d| Value::Decimal(d.trunc_places(places))),
            }
        }
        Builtin::Mod => arith(BinOp::Rem, a0, a1),
        Builtin::Chr => match index(a0).and_then(|n| u32::try_from(n).ok()).and_then(char::from_u32) {
            Some(c) if !matches!(a0, Value::Bool(_)) => Value::String(c.to_string()),
            _ => Value::Undefined,
        },
        Builtin::ClientId => match (ctx.protocol, ctx.client_id) {
            (Protocol::Mqtt, Some(id)) => Value::str(id),
            _ => Value::str("n/a"),
        },
        Builtin::Principal => ctx.principal.map_or(Value::Undefined, Value::str),
        Builtin::TraceId => match (ctx.protocol, ctx.trace_id) {
            (Protocol::Mqtt, Some(id)) => Value::str(id),
            _ => Value::Undefined,
        },
        Builtin::SourceIp => ctx.source_ip.map_or(Value::Undefined, Value::str),
        Builtin::Timestamp => Value::Int(ctx.timestamp_ms as i128),
        Builtin::SqlVersion => Value::str(v.as_str()),
        Builtin::Topic => {
            if args.is_empty() {
                Value::str(ctx.topic)
            } else {
                match index(a0) {
                    Some(n) if n >= 1 => {
                        ctx.topic.split('/').nth((n - 1) as usize).map_or(Value::Undefined, Value::str)
                    }
                    _ => Value::Undefined,
                }
            }
        }
        Builtin::Concat => concat(args, v),
        Builtin::Decode => match text(a1, v).as_deref() {
            Some(s) if s.eq_ignore_ascii_case("base64") => decode_base64(a0, v),
            _ => Value::Undefined,
        },
        Builtin::Encode => {
            let scheme = text(a1, v);
            if !scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("base64")) {
                return Ok(Value::Undefined);
            }
            let engine = &base64::engine::general_purpose::STANDARD;
            match raw_doc {
                Some(raw) => Value::String(engine.encode(raw)),
                None => match a0 {
                    Value::Binary(b) => Value::String(engine.encode(b)),
                    other => text(other, v).map_or(Value::Undefined, |s| Value::String(engine.encode(s))),
                },
            }
        }
        Builtin::EndsWith | Builtin::StartsWith => match (text(a0, v), text(a1, v)) {
            (Some(s), Some(t)) => {
                Value::Bool(if builtin == Builtin::EndsWith { s.ends_with(&t) } else { s.starts_with(&t) })
            }
            _ => Value::Undefined,
        },
        Builtin::Get => match a0 {
            Value::Array(items) => match a1.to_int() {
                Some(i) if i >= 0 => items.get(i as usize).cloned().unwrap_or(Value::Undefined),
                _ => Value::Undefined,
            },
            Value::String(s) => match a1.to_int() {
                Some(i) if i >= 0 => s.chars().nth(i as usize).map_or(Value::Undefined, |c| Value::String(c.into())),
                _ => Value::Undefined,
            },
            Value::Object(o) => match a1 {
                Value::String(k) => o.get(k).cloned().unwrap_or(Value::Undefined),
                _ => Value::Undefined,
            },
            _ => Value::Undefined,
        },
        Builtin::GetOrDefault => match a0 {
            Value::Undefined | Value::Null => a1.clone(),
            other => other.clone(),
        },
        Builtin::GetMqttProperty => {
            let p = ctx.properties;
            match text(a0, v).map(|s| s.to_ascii_lowercase()).as_deref() {
                Some("format_indicator") => Value::str(match p.payload_format_utf8 {
                    Some(true) => "UTF8_DATA",
                    _ => "UNSPECIFIED_BYTES",
                }),
                Some("content_type") => p.content_type.as_deref().map_or(Value::Undefined, Value::str),
                Some("response_topic") => p.response_topic.as_deref().map_or(Value::Undefined, Value::str),
                Some("correlation_data") => p
                    .correlation_data
                    .as_deref()
                    .map_or(Value::Undefined, |d| Value::String(base64::engine::general_purpose::STANDARD.encode(d))),
                _ => Value::Undefined,
            }
        }
        Builtin::GetUserProperties => {
            let props = &ctx.properties.user_properties;
            if args.is_empty() {
                Value::Array(
                    props
                        .iter()
                        .map(|(k, val)| {
                            let mut o = crate::value::Object::default();
                            o.insert("key".into(), Value::str(k));
                            o.insert("value".into(), Value::str(val));
                            Value::Object(o)
                        })
                        .collect(),
                )
            } else {
                let Some(key) = text(a0, v) else { return Ok(Value::Undefined) };
                let values: Vec<Value> = props.iter().filter(|(k, _)| *k == key).map(|(_, v)| Value::str(v)).collect();
                if values.is_empty() {
                    Value::Undefined
                } else {
                    Value::Array(values)
                }
            }
        }
        Builtin::Md2 => hash::<md2::Md2>(a0, v),
        Builtin::Md5 => hash::<md5::Md5>(a0, v),
        Builtin::Sha1 => hash::<sha1::Sha1>(a0, v),
        Builtin::Sha224 => hash::<sha2::Sha224>(a0, v),
        Builtin::Sha256 => hash::<sha2::Sha256>(a0, v),
        Builtin::Sha384 => hash::<sha2::Sha384>(a0, v),
        Builtin::Sha512 => hash::<sha2::Sha512>(a0, v),
        Builtin::IndexOf => match (text(a0, v), text(a1, v)) {
            (Some(s), Some(t)) => Value::Int(s.find(&t).map_or(-1, |byte| s[..byte].chars().count() as i128)),
            _ => Value::Undefined,
        },
        Builtin::IsNull => Value::Bool(matches!(a0, Value::Null)),
        Builtin::IsUndefined => Value::Bool(a0.is_undefined()),
        Builtin::Length => text(a0, v).map_or(Value::Undefined, |s| Value::Int(s.chars().count() as i128)),
        Builtin::NumBytes => text(a0, v).map_or(Value::Undefined, |s| Value::Int(s.len() as i128)),
        Builtin::Lower => text(a0, v).map_or(Value::Undefined, |s| Value::String(s.to_lowercase())),
        Builtin::Upper => text(a0, v).map_or(Value::Undefined, |s| Value::String(s.to_uppercase())),
        Builtin::Lpad => pad(args, v, true),
        Builtin::Rpad => pad(args, v, false),
        Builtin::Ltrim => {
            text(a0, v).map_or(Value::Undefined, |s| Value::String(s.trim_start_matches(is_blank).into()))
        }
        Builtin::Rtrim => text(a0, v).map_or(Value::Undefined, |s| Value::String(s.trim_end_matches(is_blank).into())),
        Builtin::Trim => text(a0, v).map_or(Value::Undefined, |s| Value::String(s.trim_matches(is_blank).into())),
        Builtin::Nanvl => match a0 {
            Value::Undefined | Value::Null => a1.clone(),
            other => other.clone(),
        },
        Builtin::NewUuid => Value::String(uuid_v4()),
        Builtin::Rand => dbl(rand::random::<f64>()),
        Builtin::ParseTime => {
            let zone = match args.get(2) {
                Some(z) => match text(z, v) {
                    Some(z) => z,
                    None => return Ok(Value::Undefined),
                },
                None => "UTC".to_string(),
            };
            match (text(a0, v), a1.to_int().and_then(|ms| i64::try_from(ms).ok())) {
                (Some(pattern), Some(ms)) => {
                    datetime::format_epoch_millis(&pattern, ms, &zone).map_or(Value::Undefined, Value::String)
                }
                _ => Value::Undefined,
            }
        }
        Builtin::TimeToEpoch => match (text(a0, v), text(a1, v)) {
            (Some(s), Some(pattern)) => {
                datetime::parse_to_epoch_millis(&s, &pattern).map_or(Value::Undefined, |ms| Value::Int(ms as i128))
            }
            _ => Value::Undefined,
        },
        Builtin::RegexpMatches => match (text(a0, v), text(a1, v)) {
            (Some(s), Some(re)) => {
                with_regex(&re, |r| r.is_match(&s).unwrap_or(false)).map_or(Value::Undefined, Value::Bool)
            }
            _ => Value::Undefined,
        },
        Builtin::RegexpReplace => match (text(a0, v), text(a1, v), text(&args[2], v)) {
            (Some(s), Some(re), Some(rep)) => {
                let rep = java_replacement(&rep);
                with_regex(&re, |r| r.replace_all(&s, rep.as_str()).into_owned())
                    .map_or(Value::Undefined, Value::String)
            }
            _ => Value::Undefined,
        },
        Builtin::RegexpSubstr => match (text(a0, v), text(a1, v)) {
            (Some(s), Some(re)) => with_regex(&re, |r| match r.find(&s) {
                Ok(Some(m)) => Value::str(m.as_str()),
                _ => Value::str(""),
            })
            .unwrap_or(Value::Undefined),
            _ => Value::Undefined,
        },
        Builtin::Replace => match (text(a0, v), text(a1, v), text(&args[2], v)) {
            // As Java's String.replace: an empty `from` inserts `to` between every character.
            (Some(s), Some(from), Some(to)) => Value::String(s.replace(&from, &to)),
            _ => Value::Undefined,
        },
        Builtin::Substring => {
            let Some(s) = text(a0, v) else { return Ok(Value::Undefined) };
            let len = s.chars().count() as i128;
            let Some(start) = index(a1) else { return Ok(Value::Undefined) };
            let end = match args.get(2) {
                Some(e) => match index(e) {
                    Some(e) => e,
                    None => return Ok(Value::Undefined),
                },
                None => len,
            };
            let (start, end) = (start.clamp(0, len), end.clamp(0, len));
            if start >= end {
                Value::str("")
            } else {
                Value::String(s.chars().skip(start as usize).take((end - start) as usize).collect())
            }
        }
        Builtin::Transform => transform(args, v),
        Builtin::AwsLambda => {
            let function =
                text(a0, v).ok_or_else(|| EvalError::new("aws_lambda: the function name is not a string"))?;
            env.host.call_function(&function, a1).map_err(|e| EvalError::new(format!("aws_lambda: {e}")))?
        }
        Builtin::GetThingShadow => {
            let thing =
                text(a0, v).ok_or_else(|| EvalError::new("get_thing_shadow: the thing name is not a string"))?;
            let shadow = if args.len() == 3 { text(a1, v) } else { None };
            env.host
                .thing_shadow(&thing, shadow.as_deref())
                .map_err(|e| EvalError::new(format!("get_thing_shadow: {e}")))?
                .unwrap_or(Value::Undefined)
        }
        Builtin::GetRegistryData => {
            let (Some(api), Some(thing)) = (text(a0, v), text(a1, v)) else { return Ok(Value::Undefined) };
            env.host
                .registry_data(&api, &thing)
                .map_err(|e| EvalError::new(format!("get_registry_data: {e}")))?
                .unwrap_or(Value::Undefined)
        }
        Builtin::GetSecret => get_secret(args, env)?,
    })
}

fn is_blank(c: char) -> bool {
    c <= ' '
}

fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn concat(args: &[Value], v: SqlVersion) -> Value {
    match args {
        [] => Value::Undefined,
        [Value::Array(a)] => Value::Array(a.clone()),
        [one] => text(one, v).map_or(Value::Undefined, Value::String),
        _ if args.iter().any(|a| a.is_undefined()) => Value::Undefined,
        _ if args.iter().any(|a| matches!(a, Value::Array(_))) => {
            let mut out = vec![];
            for a in args {
                match a {
                    Value::Array(items) => out.extend(items.iter().cloned()),
                    other => out.push(other.clone()),
                }
            }
            Value::Array(out)
        }
        _ => {
            let mut out = String::new();
            for a in args {
                match text(a, v) {
                    Some(s) => out.push_str(&s),
                    None => return Value::Undefined,
                }
            }
            Value::String(out)
        }
    }
}

fn transform(args: &[Value], v: SqlVersion) -> Value {
    let mode = text(&args[0], v);
    if !mode.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("enrichArray")) {
        return Value::Undefined;
    }
    let (Value::Object(extra), Value::Array(items)) = (&args[1], &args[2]) else { return Value::Undefined };
    Value::Array(
        items
            .iter()
            .map(|item| match item {
                Value::Object(o) => {
                    let mut merged = o.clone();
                    for (k, val) in extra {
                        merged.insert(k.clone(), val.clone());
                    }
                    Value::Object(merged)
                }
                other => other.clone(),
            })
            .collect(),
    )
}

fn get_secret(args: &[Value], env: &CallEnv<'_, '_>) -> R {
    let v = env.version;
    let Some(id) = text(&args[0], v) else { return Ok(Value::Undefined) };
    let kind = text(&args[1], v).unwrap_or_default();
    // (id, kind, roleArn) or (id, kind, key, roleArn)
    let key = if args.len() == 4 { text(&args[2], v) } else { None };
    let secret = env.host.secret(&id).map_err(|e| EvalError::new(format!("get_secret: {e}")))?;
    let Some(secret) = secret else { return Ok(Value::Undefined) };
    let engine = &base64::engine::general_purpose::STANDARD;
    Ok(match (kind.as_str(), secret, key) {
        ("SecretString", Secret::String(s), None) => Value::String(s),
        ("SecretString", Secret::String(s), Some(key)) => match parse_json(s.as_bytes()) {
            Ok(Value::Object(o)) => o.get(&key).cloned().unwrap_or(Value::Undefined),
            _ => {
                return Err(EvalError::new(format!(
                    "get_secret: secret `{id}` is not a JSON object, so key `{key}` cannot be read"
                )))
            }
        },
        ("SecretBinary", Secret::Binary(b), None) => Value::String(engine.encode(b)),
        ("SecretBinary", Secret::String(s), None) => Value::String(engine.encode(s)),
        ("SecretBinary", _, Some(key)) => {
            return Err(EvalError::new(format!("get_secret: key `{key}` cannot be read from a binary secret")))
        }
        ("SecretString", Secret::Binary(_), _) => {
            return Err(EvalError::new(format!("get_secret: secret `{id}` is binary; ask for 'SecretBinary'")))
        }
        _ => Value::Undefined,
    })
}

/// `cast(value AS type)`.
pub fn cast(value: &Value, ty: CastType, version: SqlVersion) -> Value {
    match (ty, value) {
        (_, Value::Undefined | Value::Null) => Value::Undefined,
        (CastType::String, other) => text(other, version).map_or(Value::Undefined, Value::String),
        (CastType::Int, Value::Bool(b)) => Value::Int(*b as i128),
        (CastType::Int, Value::Int(i)) => Value::Int(*i),
        (CastType::Int, Value::Decimal(d)) => int_or_dec(d.trunc()),
        (CastType::Int, Value::String(s)) if numeric_string(s) => {
            Dec::parse(s).map_or(Value::Undefined, |d| int_or_dec(d.trunc()))
        }
        (CastType::Double, Value::Bool(b)) => dbl(*b as i32 as f64),
        (CastType::Double, other) => other.to_dec().map_or(Value::Undefined, |d| dbl(d.to_f64())),
        (CastType::Decimal, Value::Bool(b)) => {
            Value::Decimal(Dec::parse(if *b { "1.0" } else { "0.0" }).unwrap_or_else(Dec::zero))
        }
        (CastType::Decimal, other) => other.to_dec().map_or(Value::Undefined, Value::Decimal),
        (CastType::Bool, Value::Bool(b)) => Value::Bool(*b),
        (CastType::Bool, Value::String(_)) => value.to_bool().map_or(Value::Undefined, Value::Bool),
        (CastType::Bool, other) => other.to_dec().map_or(Value::Undefined, |d| Value::Bool(!d.is_zero())),
        _ => Value::Undefined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_replacement_syntax_maps_to_braced_groups() {
        assert_eq!(java_replacement("$1a"), "${1}a");
        assert_eq!(java_replacement("\\$x"), "$$x");
        assert_eq!(java_replacement("cost $"), "cost $$");
    }

    #[test]
    fn uuids_have_version_4_layout() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
