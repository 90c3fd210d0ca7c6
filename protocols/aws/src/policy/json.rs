//! A small, strict JSON parser whose tree remembers where every value came from.
//!
//! Policy errors must point at the offending key or value, which general-purpose JSON crates do
//! not expose, so this module keeps the byte offset of every value and object key.
//!
//! Choices:
//! * Duplicate object keys are **rejected** (error at the second occurrence). IAM documents do
//!   not say which duplicate wins, and an ambiguous permission document is a security hazard, so
//!   refusing it is the only choice that cannot silently widen access.
//! * Nesting deeper than [`MAX_DEPTH`] is rejected so hostile input cannot exhaust the stack.
//! * Input is RFC 8259 JSON: no comments, no trailing commas, no lone surrogates in `\u` escapes,
//!   no raw control characters inside strings.

use std::fmt;

/// Deepest array/object nesting accepted; a valid policy needs at most 5 levels.
pub const MAX_DEPTH: usize = 32;

/// A parsed JSON value together with the byte offset of its first character in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Byte offset of the value's first character (the opening quote for strings).
    pub offset: usize,
    /// The value itself.
    pub value: Value,
}

/// A JSON value; strings are already unescaped, numbers keep their source text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, kept as its exact source text so no precision is lost before the caller decides.
    Number(String),
    /// A string with escapes resolved.
    String(String),
    /// An array.
    Array(Vec<Node>),
    /// An object; members keep their source order.
    Object(Vec<Member>),
}

/// One `"key": value` pair of an object, with the key's own position.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The unescaped key.
    pub key: String,
    /// Byte offset of the key's opening quote.
    pub key_offset: usize,
    /// The member's value.
    pub value: Node,
}

/// A syntax error with the byte offset where it was detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset into the source text.
    pub offset: usize,
    /// Human-readable description.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for JsonError {}

impl Value {
    /// Short name of the JSON type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

/// Parses a complete JSON text (one value, optional surrounding whitespace).
pub fn parse(text: &str) -> Result<Node, JsonError> {
    let mut p = Parser { src: text, bytes: text.as_bytes(), pos: 0 };
    p.skip_ws();
    let node = p.value(0)?;
    p.skip_ws();
    if p.pos < p.bytes.len() {
        return Err(p.err_at(p.pos, "unexpected characters after the JSON value"));
    }
    Ok(node)
}

/// Converts a byte offset into a 1-based `(line, column)`; columns count characters, not bytes.
///
/// Offsets past the end (or inside a multi-byte character) are clamped, so this never panics.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let mut line: u32 = 1;
    let mut col: u32 = 1;
    for (i, c) in text.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line = line.saturating_add(1);
            col = 1;
        } else {
            col = col.saturating_add(1);
        }
    }
    (line, col)
}

/// Maps a byte index inside an unescaped string back to a byte offset in the JSON source.
///
/// `quote_offset` is the offset of the string's opening quote (as stored in [`Node::offset`]) and
/// `decoded_index` a byte index into the unescaped content. Used to point errors at a character
/// inside a string even when escapes precede it. Falls back to `quote_offset` on any mismatch.
pub fn source_offset_in_string(text: &str, quote_offset: usize, decoded_index: usize) -> usize {
    let Some(rest) = text.get(quote_offset..) else { return quote_offset };
    let mut chars = rest.char_indices();
    if !matches!(chars.next(), Some((_, '"'))) {
        return quote_offset;
    }
    let mut decoded = 0usize;
    while let Some((i, c)) = chars.next() {
        if decoded >= decoded_index || c == '"' {
            return quote_offset + i;
        }
        if c == '\\' {
            match chars.next() {
                Some((_, 'u')) => {
                    let mut code = 0u32;
                    for _ in 0..4 {
                        let d = chars.next().and_then(|(_, h)| h.to_digit(16)).unwrap_or(0);
                        code = code * 16 + d;
                    }
                    if (0xD800..0xDC00).contains(&code) {
                        // A surrogate pair: skip the `\uXXXX` of the low half; together they are 4 bytes.
                        for _ in 0..6 {
                            chars.next();
                        }
                        decoded += 4;
                    } else {
                        decoded += char::from_u32(code).map_or(3, char::len_utf8);
                    }
                }
                Some(_) => decoded += 1,
                None => return quote_offset,
            }
        } else {
            decoded += c.len_utf8();
        }
    }
    quote_offset
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err_at(&self, offset: usize, message: impl Into<String>) -> JsonError {
        JsonError { offset, message: message.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn describe_here(&self) -> String {
        match self.src.get(self.pos..).and_then(|s| s.chars().next()) {
            Some(c) => format!("unexpected character {c:?}"),
            None => "unexpected end of input".to_string(),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, JsonError> {
        let offset = self.pos;
        let value = match self.peek() {
            Some(b'{') => self.object(depth)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Value::String(self.string()?),
            Some(b't') => self.literal("true", Value::Bool(true))?,
            Some(b'f') => self.literal("false", Value::Bool(false))?,
            Some(b'n') => self.literal("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(self.err_at(offset, format!("expected a JSON value, found {}", self.describe_here()))),
        };
        Ok(Node { offset, value })
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.err_at(self.pos, format!("invalid literal, expected `{word}`")))
        }
    }

    fn enter(&self, depth: usize) -> Result<usize, JsonError> {
        if depth >= MAX_DEPTH {
            Err(self.err_at(self.pos, format!("JSON nested deeper than {MAX_DEPTH} levels")))
        } else {
            Ok(depth + 1)
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        let depth = self.enter(depth)?;
        self.pos += 1; // '{'
        let mut members: Vec<Member> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            let key_offset = self.pos;
            if self.peek() != Some(b'"') {
                return Err(
                    self.err_at(key_offset, format!("expected an object key string, found {}", self.describe_here()))
                );
            }
            let key = self.string()?;
            if members.iter().any(|m| m.key == key) {
                return Err(self.err_at(key_offset, format!("duplicate key {key:?}")));
            }
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(
                    self.err_at(self.pos, format!("expected ':' after object key, found {}", self.describe_here()))
                );
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth)?;
            members.push(Member { key, key_offset, value });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.err_at(self.pos, format!("expected ',' or '}}', found {}", self.describe_here()))),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        let depth = self.enter(depth)?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err_at(self.pos, format!("expected ',' or ']', found {}", self.describe_here()))),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let start = self.pos;
        let mut code = 0u32;
        for _ in 0..4 {
            let digit = self.peek().and_then(|b| (b as char).to_digit(16));
            match digit {
                Some(d) => {
                    code = code * 16 + d;
                    self.pos += 1;
                }
                None => return Err(self.err_at(start, "invalid \\u escape: expected 4 hex digits")),
            }
        }
        Ok(code)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        let start = self.pos;
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let Some(rest) = self.src.get(self.pos..) else {
                return Err(self.err_at(start, "invalid string position"));
            };
            let Some(c) = rest.chars().next() else {
                return Err(self.err_at(start, "unterminated string"));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => {
                    let esc_at = self.pos;
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.err_at(start, "unterminated string"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(self.err_at(esc_at, "unpaired surrogate in \\u escape"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err_at(esc_at, "unpaired surrogate in \\u escape"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            match char::from_u32(code) {
                                Some(ch) => out.push(ch),
                                None => return Err(self.err_at(esc_at, "unpaired surrogate in \\u escape")),
                            }
                        }
                        _ => return Err(self.err_at(esc_at, "invalid escape sequence")),
                    }
                }
                c if (c as u32) < 0x20 => {
                    return Err(self.err_at(self.pos, "control character must be escaped inside a string"));
                }
                c => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err_at(start, "invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err_at(start, "invalid number: expected digits after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err_at(start, "invalid number: expected exponent digits"));
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or_default();
        Ok(Value::Number(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_values_with_offsets() {
        let text = r#"{"a": [1, true, null, "x\"y"], "b": {}}"#;
        let node = parse(text).unwrap();
        let Value::Object(members) = &node.value else { panic!("not an object") };
        assert_eq!(members[0].key, "a");
        assert_eq!(members[0].key_offset, 1);
        let Value::Array(items) = &members[0].value.value else { panic!("not an array") };
        assert_eq!(items[0].value, Value::Number("1".into()));
        assert_eq!(items[0].offset, 7);
        assert_eq!(items[3].value, Value::String("x\"y".into()));
        assert_eq!(members[1].key_offset, 31);
    }

    #[test]
    fn rejects_duplicate_keys_at_second_key() {
        let err = parse(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert_eq!(err.offset, 9);
        assert!(err.message.contains("duplicate"));
    }

    #[test]
    fn rejects_trailing_garbage_and_commas() {
        assert!(parse("{} x").is_err());
        assert!(parse("[1,]").is_err());
        assert!(parse(r#"{"a":1,}"#).is_err());
        assert!(parse("").is_err());
        assert!(parse("01").is_err());
        assert!(parse("1.").is_err());
        assert!(parse("\"\\ud800\"").is_err());
        assert!(parse("\"a\nb\"").is_err());
    }

    #[test]
    fn unicode_escapes_and_surrogates() {
        let node = parse(r#""\u00e9\ud83d\ude00""#).unwrap();
        assert_eq!(node.value, Value::String("é😀".into()));
    }

    #[test]
    fn depth_limit() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().message.contains("deeper"));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn line_col_counts_chars() {
        let text = "ab\nçd\"x";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        // 'ç' is two bytes; '"' sits at byte 6 and is the 3rd char of line 2.
        assert_eq!(line_col(text, 6), (2, 3));
        assert_eq!(line_col(text, 999), (2, 5));
    }

    #[test]
    fn source_offsets_inside_strings() {
        let text = r#"  "a\"b${x""#;
        // decoded: a"b${x ; '$' is decoded byte 3, source byte 7
        assert_eq!(source_offset_in_string(text, 2, 3), 7);
        let text = r#""\u00e9${""#;
        assert_eq!(source_offset_in_string(text, 0, 2), 7);
        assert_eq!(source_offset_in_string(text, 50, 2), 50);
    }
}
