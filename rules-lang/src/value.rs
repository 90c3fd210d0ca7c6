//! The dialect's values and AWS's type rules: Undefined vs Null, Int vs Decimal, the implicit
//! conversion table, `=` semantics, and JSON text in and out.

use std::cmp::Ordering;
use std::fmt::Write as _;

use indexmap::IndexMap;

use crate::num::Dec;

/// JSON objects keep their key order, so `SELECT *, 15 AS speed` appends at the end. Keys are
/// hashed with foldhash, randomly seeded like std's SipHash (payload keys are untrusted) but
/// several times faster on short keys, which is what payloads have.
pub type Object = IndexMap<String, Value, foldhash::fast::RandomState>;

/// A value of the dialect. `Undefined` (a missing attribute or an invalid call) is distinct from
/// `Null` everywhere; it is dropped from objects and arrays when serialized.
#[derive(Debug, Clone, Default)]
pub enum Value {
    /// No value: a missing attribute, or a function or operator applied to the wrong types.
    #[default]
    Undefined,
    /// JSON null.
    Null,
    /// true / false.
    Bool(bool),
    /// A whole number (AWS allows 34 digits; i128 holds 38).
    Int(i128),
    /// A decimal with 34 significant digits.
    Decimal(Dec),
    /// UTF-8 text.
    String(String),
    /// A JSON array.
    Array(Vec<Value>),
    /// A JSON object.
    Object(Object),
    /// A payload that is not JSON, as `*` sees it.
    Binary(Vec<u8>),
}

/// The SQL version a statement runs under: it changes how whole-number decimals render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlVersion {
    /// `2015-10-08`, the original dialect.
    V2015_10_08,
    /// `2016-03-23`, the recommended one and Ferrite's default.
    V2016_03_23,
    /// `beta`: treated as the latest version.
    Beta,
}

impl SqlVersion {
    /// Parses `2015-10-08`, `2016-03-23` or `beta`.
    pub fn parse(text: &str) -> Option<SqlVersion> {
        match text {
            "2015-10-08" => Some(SqlVersion::V2015_10_08),
            "2016-03-23" => Some(SqlVersion::V2016_03_23),
            "beta" => Some(SqlVersion::Beta),
            _ => None,
        }
    }

    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            SqlVersion::V2015_10_08 => "2015-10-08",
            SqlVersion::V2016_03_23 => "2016-03-23",
            SqlVersion::Beta => "beta",
        }
    }

    /// Everything after the first version: literals, nested SELECT, the V2 functions.
    pub fn is_v2(self) -> bool {
        self != SqlVersion::V2015_10_08
    }
}

/// A string converts to a number only when it matches `^-?\d+(\.\d+)?([eE]-?\d+)?$`.
pub fn numeric_string(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && b[i] == b'-' {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// A number in its two kinds, after conversion.
#[derive(Debug, Clone, Copy)]
pub enum Num {
    /// An Int.
    Int(i128),
    /// A Decimal.
    Dec(Dec),
}

impl Num {
    /// As a Decimal.
    pub fn to_dec(self) -> Dec {
        match self {
            Num::Int(i) => Dec::from_i128(i),
            Num::Dec(d) => d,
        }
    }

    /// Back to a value.
    pub fn into_value(self) -> Value {
        match self {
            Num::Int(i) => Value::Int(i),
            Num::Dec(d) => Value::Decimal(d),
        }
    }
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// Is it Undefined.
    pub fn is_undefined(&self) -> bool {
        matches!(self, Value::Undefined)
    }

    /// The type name used in messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Undefined => "Undefined",
            Value::Null => "Null",
            Value::Bool(_) => "Boolean",
            Value::Int(_) => "Int",
            Value::Decimal(_) => "Decimal",
            Value::String(_) => "String",
            Value::Array(_) => "Array",
            Value::Object(_) => "Object",
            Value::Binary(_) => "Binary",
        }
    }

    /// Int or Decimal as they are, or a numeric string as a Decimal; anything else is None.
    pub fn to_num(&self) -> Option<Num> {
        match self {
            Value::Int(i) => Some(Num::Int(*i)),
            Value::Decimal(d) => Some(Num::Dec(*d)),
            Value::String(s) if numeric_string(s) => Dec::parse(s).map(Num::Dec),
            _ => None,
        }
    }

    /// Standard conversion to Decimal.
    pub fn to_dec(&self) -> Option<Dec> {
        self.to_num().map(Num::to_dec)
    }

    /// Standard conversion to Int: Decimals are "rounded down" as AWS's function tables say,
    /// in Java's sense (toward zero, as BigDecimal.intValue); strings are parsed as Decimal then
    /// truncated the same way.
    pub fn to_int(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Decimal(d) => d.trunc().to_i128_exact(),
            Value::String(s) if numeric_string(s) => Dec::parse(s)?.trunc().to_i128_exact(),
            _ => None,
        }
    }

    /// Standard conversion to Boolean: Booleans, and the strings "true"/"false" in any case.
    pub fn to_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// Standard conversion to String: numbers as digits, Booleans as "true"/"false", arrays and
    /// objects as compact JSON; Null and Undefined have no string form.
    pub fn to_text(&self, version: SqlVersion) -> Option<String> {
        match self {
            Value::Undefined | Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Binary(b) => Some(String::from_utf8_lossy(b).into_owned()),
            other => Some(other.to_json(version)),
        }
    }

    /// Serializes as compact JSON. Undefined members and elements are left out; Undefined on its
    /// own is the empty string, as AWS serializes it.
    pub fn to_json(&self, version: SqlVersion) -> String {
        let mut out = String::new();
        write_json(self, version, &mut out);
        out
    }

    /// Member access: the value of `key` in an object, Undefined otherwise.
    pub fn member(&self, key: &str) -> Value {
        match self {
            Value::Object(o) => o.get(key).cloned().unwrap_or(Value::Undefined),
            _ => Value::Undefined,
        }
    }
}

/// Renders a decimal as the given SQL version shows it: 2016-03-23 shows whole numbers as Ints.
pub fn decimal_text(d: Dec, version: SqlVersion) -> String {
    if version.is_v2() && d.is_integral() {
        d.to_reduced_string()
    } else {
        d.to_sci_string()
    }
}

pub(crate) fn write_json(v: &Value, version: SqlVersion, out: &mut String) {
    match v {
        Value::Undefined => {}
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Decimal(d) => out.push_str(&decimal_text(*d, version)),
        Value::String(s) => write_json_string(s, out),
        Value::Binary(b) => {
            use base64::Engine as _;
            write_json_string(&base64::engine::general_purpose::STANDARD.encode(b), out)
        }
        Value::Array(items) => {
            out.push('[');
            let mut first = true;
            for item in items.iter().filter(|v| !v.is_undefined()) {
                if !first {
                    out.push(',');
                }
                first = false;
                write_json(item, version, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            let mut first = true;
            for (k, item) in o.iter().filter(|(_, v)| !v.is_undefined()) {
                if !first {
                    out.push(',');
                }
                first = false;
                write_json_string(k, out);
                out.push(':');
                write_json(item, version, out);
            }
            out.push('}');
        }
    }
}

pub(crate) fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    // Runs without anything to escape are copied whole; escaped bytes are all ASCII, so the
    // run boundaries always fall on character boundaries.
    let mut run_start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run_start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        run_start = i + 1;
    }
    out.push_str(&s[run_start..]);
    out.push('"');
}

/// `=` as AWS defines it: Undefined on either side gives Undefined (`None`); numbers compare by
/// value across Int and Decimal; arrays item by item; objects key by key in any order; values of
/// different types are not equal.
pub fn sql_eq(a: &Value, b: &Value) -> Option<bool> {
    Some(match (a, b) {
        (Value::Undefined, _) | (_, Value::Undefined) => return None,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Int(_) | Value::Decimal(_), Value::Int(_) | Value::Decimal(_)) => {
            a.to_dec()?.numeric_cmp(b.to_dec()?) == Ordering::Equal
        }
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        (Value::Binary(x), Value::Binary(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| sql_eq(p, q) == Some(true))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| sql_eq(v, w) == Some(true)))
        }
        _ => false,
    })
}

/// Ordering for `<`, `<=`, `>`, `>=`: both sides as numbers (numeric strings included), else None.
pub fn sql_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a.to_num()?, b.to_num()?) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (x, y) => Some(x.to_dec().numeric_cmp(y.to_dec())),
    }
}

/// Why a payload is not JSON (it is then treated as binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong.
    pub message: &'static str,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

/// Deepest nesting a payload may have; deeper documents are not treated as JSON.
pub const MAX_JSON_DEPTH: usize = 256;

/// Parses JSON text into a value, keeping every digit of numbers (integers as Int, the rest as
/// Decimal) and the order of object keys; a duplicate key keeps its last value.
pub fn parse_json(text: &[u8]) -> Result<Value, JsonError> {
    let mut p = JsonParser::new(text);
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(p.err("trailing characters after the JSON value"));
    }
    Ok(v)
}

/// The JSON reader: a cursor over the text with the lexical steps (whitespace, literals, `\u`
/// escapes, errors at the cursor). `projection.rs` adds its validating skips to it, so both
/// readers share one lexer.
pub(crate) struct JsonParser<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
}

impl<'a> JsonParser<'a> {
    /// A reader at the start of `text`.
    pub(crate) fn new(text: &'a [u8]) -> JsonParser<'a> {
        JsonParser { b: text, i: 0 }
    }
}

impl JsonParser<'_> {
    pub(crate) fn err(&self, message: &'static str) -> JsonError {
        JsonError { offset: self.i, message }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    // Works on a local index and stores it once: through `&mut self` the compiler otherwise
    // writes `self.i` back on every byte.
    pub(crate) fn ws(&mut self) {
        let mut i = self.i;
        while i < self.b.len() && matches!(self.b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        self.i = i;
    }

    pub(crate) fn eat(&mut self, lit: &[u8]) -> bool {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_JSON_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.b.get(self.i) {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => {
                self.i += 1;
                let mut o = Object::default();
                self.ws();
                if self.eat(b"}") {
                    return Ok(Value::Object(o));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return Err(self.err("expected a string key"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if !self.eat(b":") {
                        return Err(self.err("expected `:`"));
                    }
                    self.ws();
                    let v = self.value(depth + 1)?;
                    o.insert(k, v);
                    self.ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"}") {
                        return Ok(Value::Object(o));
                    }
                    return Err(self.err("expected `,` or `}`"));
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = vec![];
                self.ws();
                if self.eat(b"]") {
                    return Ok(Value::Array(items));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"]") {
                        return Ok(Value::Array(items));
                    }
                    return Err(self.err("expected `,` or `]`"));
                }
            }
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') if self.eat(b"true") => Ok(Value::Bool(true)),
            Some(b'f') if self.eat(b"false") => Ok(Value::Bool(false)),
            Some(b'n') if self.eat(b"null") => Ok(Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.i;
        self.eat(b"-");
        let int_start = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        let int_len = self.i - int_start;
        if int_len == 0 || (int_len > 1 && self.b[int_start] == b'0') {
            return Err(self.err("invalid number"));
        }
        let mut integral = true;
        if self.eat(b".") {
            integral = false;
            let s = self.i;
            while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if self.i == s {
                return Err(self.err("invalid number"));
            }
        }
        if self.i < self.b.len() && matches!(self.b[self.i], b'e' | b'E') {
            integral = false;
            self.i += 1;
            if self.i < self.b.len() && matches!(self.b[self.i], b'+' | b'-') {
                self.i += 1;
            }
            let s = self.i;
            while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if self.i == s {
                return Err(self.err("invalid number"));
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| self.err("invalid number"))?;
        if integral {
            if let Ok(i) = text.parse::<i128>() {
                return Ok(Value::Int(i));
            }
        }
        Dec::parse(text).map(Value::Decimal).ok_or_else(|| self.err("number out of range"))
    }

    /// The character of a `\uXXXX` escape (the `\u` already read), joining a surrogate pair.
    pub(crate) fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !self.eat(b"\\u") {
                return Err(self.err("unpaired surrogate"));
            }
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err("unpaired surrogate"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid \\u escape"))
    }

    pub(crate) fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self.b.get(self.i..self.i + 4).ok_or_else(|| self.err("truncated \\u escape"))?;
        let s = std::str::from_utf8(h).map_err(|_| self.err("invalid \\u escape"))?;
        let v = u32::from_str_radix(s, 16).map_err(|_| self.err("invalid \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.i;
            while self.i < self.b.len() && !matches!(self.b[self.i], b'"' | b'\\') && self.b[self.i] >= 0x20 {
                self.i += 1;
            }
            let run = std::str::from_utf8(&self.b[run_start..self.i]).map_err(|_| self.err("invalid UTF-8"))?;
            out.push_str(run);
            match self.b.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = *self.b.get(self.i).ok_or_else(|| self.err("unterminated escape"))?;
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            out.push(self.unicode_escape()?);
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_keeps_digits_and_order() {
        let text = r#"{"b":1,"a":[1.50,"x\n",null,true],"big":12345678901234567890123456789012,"d":1.2345678901234567890123456789}"#;
        let v = parse_json(text.as_bytes()).unwrap();
        assert_eq!(
            v.to_json(SqlVersion::V2015_10_08),
            r#"{"b":1,"a":[1.50,"x\n",null,true],"big":12345678901234567890123456789012,"d":1.2345678901234567890123456789}"#
        );
    }

    #[test]
    fn json_rejects_garbage_without_panicking() {
        for bad in ["", "{", "[1,", "\"abc", "01", "1.", "{\"a\" 1}", "\u{1}", "[1]x", "\"\\ud800\""] {
            assert!(parse_json(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(MAX_JSON_DEPTH + 10);
        assert!(parse_json(deep.as_bytes()).is_err());
    }

    #[test]
    fn numeric_strings_follow_the_documented_pattern() {
        for ok in ["0", "-1.2", "5E-12", "5e3"] {
            assert!(numeric_string(ok), "{ok}");
        }
        for bad in ["+1", ".5", "1.", "1e", "", "-", "1e+3", " 1"] {
            assert!(!numeric_string(bad), "{bad}");
        }
    }

    #[test]
    fn equality_distinguishes_types_but_not_number_kinds() {
        let one = Value::Int(1);
        assert_eq!(sql_eq(&one, &Value::Decimal(Dec::parse("1.0").unwrap())), Some(true));
        assert_eq!(sql_eq(&one, &Value::str("1")), Some(false));
        assert_eq!(sql_eq(&one, &Value::Undefined), None);
        assert_eq!(sql_eq(&Value::Null, &Value::Null), Some(true));
    }

    #[test]
    fn v2_renders_whole_decimals_as_ints() {
        let ten = Value::Decimal(Dec::parse("10.0").unwrap());
        assert_eq!(ten.to_json(SqlVersion::V2016_03_23), "10");
        assert_eq!(ten.to_json(SqlVersion::V2015_10_08), "10.0");
    }
}
