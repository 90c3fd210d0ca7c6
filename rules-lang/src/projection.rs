//! Projected payload parsing: most rules read a handful of top-level members of a payload, so
//! building the whole document is wasted work. [`parse_projected`] checks the whole text exactly as
//! [`parse_json`] does (same grammar, same escapes, same UTF-8 rule, same number range, same
//! nesting limit) but only builds the values of the members a [`Projection`] names.
//!
//! Invariant: `parse_projected(t, p)` is `Err` exactly when `parse_json(t)` is `Err`; when both
//! are Ok and the document is an object, the result holds exactly the full document's entries
//! whose key `p` names, in the same order, with the same values. The scanner never builds what it
//! skips: skipped strings, numbers and containers are validated in place without allocating.

use crate::num::Dec;
use crate::value::{parse_json, JsonError, JsonParser, Object, Value, MAX_JSON_DEPTH};

/// The top-level payload members a set of rules reads (sorted, deduplicated).
///
/// It exists so a rule engine can compute, once per set of rules, which members a payload must
/// have materialized, and hand that to [`parse_projected`] for every message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    /// Sorted by bytes (the order `str` and `[u8]` share), no duplicates.
    keys: Vec<String>,
}

impl Projection {
    /// A projection of the given member names; order and repetitions do not matter, so callers
    /// can collect names straight from rule expressions.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(keys: I) -> Projection {
        let mut keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        keys.sort_unstable();
        keys.dedup();
        Projection { keys }
    }

    /// The member names in sorted order, so callers can show or combine what a rule reads.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(String::as_str)
    }

    /// Does the projection name `key` (compared after escape decoding, as object keys are).
    pub fn contains(&self, key: &str) -> bool {
        self.contains_bytes(key.as_bytes())
    }

    /// The members either projection names: the projection of several rules on one topic.
    pub fn union(&self, other: &Projection) -> Projection {
        let mut keys = Vec::with_capacity(self.keys.len() + other.keys.len());
        let (mut a, mut b) = (self.keys.iter().peekable(), other.keys.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x < y => a.next(),
                (Some(x), Some(y)) if x > y => b.next(),
                (Some(_), Some(_)) => {
                    b.next();
                    a.next()
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            keys.extend(next.cloned());
        }
        Projection { keys }
    }

    /// Lookup by the raw bytes of an escape-free key, so matching allocates nothing.
    fn contains_bytes(&self, key: &[u8]) -> bool {
        // Rules read few members: a scan that compares lengths first beats a binary search.
        if self.keys.len() <= 8 {
            self.keys.iter().any(|k| k.len() == key.len() && k.as_bytes() == key)
        } else {
            self.keys.binary_search_by(|k| k.as_bytes().cmp(key)).is_ok()
        }
    }
}

/// Parses `text` like `parse_json`, keeping only the projected top-level members.
///
/// It exists to make rules that read a few members of large payloads cheap: the text is
/// rejected exactly when [`parse_json`] rejects it (the error's message and offset may differ),
/// but only the projected members of a top-level object are built. A top-level value that is not
/// an object is returned whole, as [`parse_json`] returns it.
pub fn parse_projected(text: &[u8], projection: &Projection) -> Result<Value, JsonError> {
    let mut s = JsonParser::new(text);
    s.ws();
    if s.peek() != Some(b'{') {
        return parse_json(text);
    }
    let object = s.projected_object(projection)?;
    s.ws();
    if s.i != s.b.len() {
        return Err(s.err("trailing characters after the JSON value"));
    }
    Ok(Value::Object(object))
}

/// Numbers at most this long with at most [`FAST_EXPONENT_DIGITS`] exponent digits always parse:
/// integers up to 38 digits fit an i128, and anything else of this size is finite in decimal128
/// (magnitude below 1E+1040; smaller than its least subnormal rounds to zero, which is finite).
const FAST_NUMBER_LEN: usize = 40;
/// See [`FAST_NUMBER_LEN`].
const FAST_EXPONENT_DIGITS: usize = 3;

/// Validating skips over `value.rs`'s JSON reader: the same lexer and grammar as `parse_json`,
/// building nothing.
impl JsonParser<'_> {
    /// The top-level object (the scanner is at its `{`), with only the projected members built.
    fn projected_object(&mut self, projection: &Projection) -> Result<Object, JsonError> {
        self.i += 1;
        let mut out = Object::with_capacity_and_hasher(projection.keys.len().min(16), Default::default());
        self.ws();
        if self.eat(b"}") {
            return Ok(out);
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let key_start = self.i;
            let escaped = self.skip_string()?;
            let key_end = self.i;
            let wanted = if escaped {
                // Rare: decode the key with the real parser and compare its text.
                match parse_json(&self.b[key_start..key_end])? {
                    Value::String(k) => projection.contains(&k).then_some(k),
                    _ => return Err(self.err("expected a string key")),
                }
            } else {
                let raw = &self.b[key_start + 1..key_end - 1];
                if projection.contains_bytes(raw) {
                    // skip_string checked the UTF-8 already; this cannot fail.
                    Some(std::str::from_utf8(raw).map_err(|_| self.err("invalid UTF-8"))?.to_owned())
                } else {
                    None
                }
            };
            self.ws();
            if !self.eat(b":") {
                return Err(self.err("expected `:`"));
            }
            self.ws();
            let value_start = self.i;
            self.skip_value(1)?;
            if let Some(key) = wanted {
                // The span is one complete, valid value whose nesting is within the limit even
                // counted from the top, so parsing it on its own gives the full parse's value.
                let value = parse_json(&self.b[value_start..self.i])?;
                out.insert(key, value);
            }
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"}") {
                return Ok(out);
            }
            return Err(self.err("expected `,` or `}`"));
        }
    }

    /// Validates one value at nesting `depth` (the top-level value is at 0), as parse_json would.
    fn skip_value(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_JSON_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.eat(b"}") {
                    return Ok(());
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.err("expected a string key"));
                    }
                    self.skip_string()?;
                    self.ws();
                    if !self.eat(b":") {
                        return Err(self.err("expected `:`"));
                    }
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"}") {
                        return Ok(());
                    }
                    return Err(self.err("expected `,` or `}`"));
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.eat(b"]") {
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"]") {
                        return Ok(());
                    }
                    return Err(self.err("expected `,` or `]`"));
                }
            }
            Some(b'"') => self.skip_string().map(|_| ()),
            Some(b't') if self.eat(b"true") => Ok(()),
            Some(b'f') if self.eat(b"false") => Ok(()),
            Some(b'n') if self.eat(b"null") => Ok(()),
            Some(b'-' | b'0'..=b'9') => self.skip_number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    /// Validates a number with parse_json's grammar and range: what parse_json would turn into
    /// an Int or a finite Decimal passes, anything else is an error.
    fn skip_number(&mut self) -> Result<(), JsonError> {
        let start = self.i;
        self.eat(b"-");
        let int_start = self.i;
        self.digits();
        let int_len = self.i - int_start;
        if int_len == 0 || (int_len > 1 && self.b[int_start] == b'0') {
            return Err(self.err("invalid number"));
        }
        let mut integral = true;
        if self.eat(b".") {
            integral = false;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        let mut exponent_digits = 0;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integral = false;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            exponent_digits = self.digits();
            if exponent_digits == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if self.i - start <= FAST_NUMBER_LEN && exponent_digits <= FAST_EXPONENT_DIGITS {
            return Ok(());
        }
        // Long or far-exponent numbers: ask the same conversions parse_json uses.
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| self.err("invalid number"))?;
        if (integral && text.parse::<i128>().is_ok()) || Dec::parse(text).is_some() {
            Ok(())
        } else {
            Err(self.err("number out of range"))
        }
    }

    /// Skips ASCII digits and says how many there were.
    fn digits(&mut self) -> usize {
        let start = self.i;
        let mut i = start;
        while i < self.b.len() && self.b[i].is_ascii_digit() {
            i += 1;
        }
        self.i = i;
        i - start
    }

    /// Validates a string (the scanner is at its opening quote) without building it: raw runs
    /// must be UTF-8 without control characters, escapes must decode to a char. Says whether the
    /// string had any escape (its raw bytes are then not its text).
    fn skip_string(&mut self) -> Result<bool, JsonError> {
        self.i += 1;
        let mut escaped = false;
        loop {
            let run_start = self.i;
            let (run_end, non_ascii) = raw_run(self.b, run_start);
            self.i = run_end;
            if non_ascii && std::str::from_utf8(&self.b[run_start..run_end]).is_err() {
                return Err(self.err("invalid UTF-8"));
            }
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1;
                    let c = self.peek().ok_or_else(|| self.err("unterminated escape"))?;
                    self.i += 1;
                    match c {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            self.unicode_escape()?;
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }
}

/// The end of the raw run of string bytes starting at `start` (the index of the first closing
/// quote, backslash or control character, or the end of `b`), and whether the run has any byte
/// above ASCII (only then does it need a UTF-8 check). Works on eight bytes at a time; the last
/// few bytes of the text are padded with quotes, so the end of input stops the run too.
fn raw_run(b: &[u8], start: usize) -> (usize, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The usual SWAR tests: the high bit of a byte is set where that byte is below 0x20 (or
    // zero, after the XOR). A flag can be wrong only above a true one, so the lowest is exact.
    let below = |w: u64, n: u64| w.wrapping_sub(n * ONES) & !w & HIGH;
    let mut i = start;
    let mut high = 0u64;
    loop {
        let w = match b.get(i..i + 8) {
            Some(word) => u64::from_le_bytes(word.try_into().unwrap_or([b'"'; 8])),
            None => {
                let rest = b.get(i..).unwrap_or_default();
                let mut padded = [b'"'; 8];
                padded[..rest.len()].copy_from_slice(rest);
                u64::from_le_bytes(padded)
            }
        };
        let stops = below(w, 0x20) | below(w ^ (u64::from(b'"') * ONES), 1) | below(w ^ (u64::from(b'\\') * ONES), 1);
        if stops == 0 {
            high |= w;
            i += 8;
            continue;
        }
        let n = stops.trailing_zeros() as usize / 8;
        high |= w & ((1u64 << (n * 8)) - 1);
        return (i + n, high & HIGH != 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract: same acceptance as parse_json, and the projected members of its result.
    fn assert_matches_full_parse(text: &str, projection: &Projection) {
        let full = parse_json(text.as_bytes());
        let got = parse_projected(text.as_bytes(), projection);
        match (full, got) {
            (Err(_), Err(_)) => {}
            (Ok(Value::Object(o)), Ok(got)) => {
                let want: Object = o.into_iter().filter(|(k, _)| projection.contains(k)).collect();
                assert_eq!(format!("{got:?}"), format!("{:?}", Value::Object(want)), "{text:?}");
            }
            (Ok(full), Ok(got)) => assert_eq!(format!("{got:?}"), format!("{full:?}"), "{text:?}"),
            (full, got) => panic!("{text:?}: parse_json gave {full:?}, parse_projected gave {got:?}"),
        }
    }

    fn p(keys: &[&str]) -> Projection {
        Projection::new(keys.iter().copied())
    }

    const PAYLOAD: &str = r#"{"deviceId":"sensor-0042","temp":61.5,"humidity":48.25,"pressure":1013.2,"battery":87,"firmware":"2.4.1","location":{"lat":47.6062,"lon":-122.3321},"status":"ok","ts":1700000000123,"tags":["roof","north"]}"#;

    #[test]
    fn keeps_only_projected_members_in_document_order() {
        let v = parse_projected(PAYLOAD.as_bytes(), &p(&["temp", "deviceId", "location", "missing"])).unwrap();
        assert_eq!(
            v.to_json(crate::SqlVersion::V2015_10_08),
            r#"{"deviceId":"sensor-0042","temp":61.5,"location":{"lat":47.6062,"lon":-122.3321}}"#
        );
        assert_matches_full_parse(PAYLOAD, &p(&["temp", "deviceId"]));
    }

    #[test]
    fn empty_projection_still_validates_the_whole_document() {
        assert_eq!(
            parse_projected(PAYLOAD.as_bytes(), &Projection::default()).unwrap().to_json(crate::SqlVersion::Beta),
            "{}"
        );
        assert!(parse_projected(br#"{"a":1,"b":[1,2,}"#, &Projection::default()).is_err());
    }

    #[test]
    fn escaped_keys_match_their_decoded_form() {
        let v = parse_projected(br#"{"te\u006dp":1,"\u00e9t\u00e9":2,"x":3}"#, &p(&["temp", "été"])).unwrap();
        assert_eq!(v.to_json(crate::SqlVersion::Beta), r#"{"temp":1,"été":2}"#);
    }

    #[test]
    fn duplicate_keys_keep_last_value_at_first_position() {
        let text = r#"{"a":1,"b":2,"te\u006dp":3,"a":4,"temp":5}"#;
        let v = parse_projected(text.as_bytes(), &p(&["a", "temp"])).unwrap();
        assert_eq!(v.to_json(crate::SqlVersion::Beta), r#"{"a":4,"temp":5}"#);
        assert_matches_full_parse(text, &p(&["a", "temp"]));
    }

    #[test]
    fn non_object_documents_parse_in_full() {
        for text in [" [1,{\"a\":2}] ", "\"s\"", "12.50", "null", "true"] {
            assert_matches_full_parse(text, &p(&["a"]));
        }
    }

    #[test]
    fn skipped_strings_are_validated_like_parse_json() {
        let cases = [
            "\"\\u0041\"",
            "\"\\u+041\"",
            "\"\\u-041\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud83d\"",
            "\"\\ud83d\\u0041\"",
            "\"\\udc00\"",
            "\"\\u12\"",
            "\"\\x\"",
            "\"a\u{1}b\"",
            "\"tab\there\"",
            "\"é😀\"",
            "\"\\",
            "\"abc",
        ];
        for value in cases {
            assert_matches_full_parse(&format!("{{\"skip\":{value},\"k\":1}}"), &p(&["k"]));
            assert_matches_full_parse(&format!("{{{value}:1,\"k\":1}}"), &p(&["k"]));
        }
        // `u32::from_str_radix` takes a leading `+`, so parse_json accepts `\u+041`; so must we.
        assert!(parse_projected(br#"{"skip":"\u+041","k":1}"#, &p(&["k"])).is_ok());
        assert!(parse_projected(br#"{"skip":"\ud800","k":1}"#, &p(&["k"])).is_err());
        let mut bad_utf8 = br#"{"skip":"ab","k":1}"#.to_vec();
        bad_utf8[10] = 0xff;
        assert!(parse_json(&bad_utf8).is_err());
        assert!(parse_projected(&bad_utf8, &p(&["k"])).is_err());
    }

    #[test]
    fn skipped_numbers_follow_parse_json_grammar_and_range() {
        let long_int = "9".repeat(6200);
        let long_fraction = format!("0.{}", "0".repeat(7000));
        let cases = [
            "0",
            "-0",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "1E-5",
            "-12.5e+3",
            "1e6144",
            "1e6145",
            "9.99e6144",
            "1e9999",
            "1e-9999",
            "1e-99999999999999999999",
            "1e99999999999999999999",
            "170141183460469231731687303715884105727",
            "170141183460469231731687303715884105728",
            "1234567890123456789012345678901234567890123",
            &long_int,
            &long_fraction,
        ];
        assert!(parse_projected(br#"{"skip":1e6144,"k":1}"#, &p(&["k"])).is_ok());
        assert!(parse_projected(br#"{"skip":1e6145,"k":1}"#, &p(&["k"])).is_err());
        for n in cases {
            assert_matches_full_parse(&format!("{{\"skip\":{n},\"k\":1}}"), &p(&["k"]));
            assert_matches_full_parse(&format!("{{\"skip\":[{n}],\"k\":1}}"), &p(&["k"]));
        }
    }

    #[test]
    fn nesting_limit_matches_parse_json() {
        for depth in MAX_JSON_DEPTH - 2..MAX_JSON_DEPTH + 2 {
            for inner in ["", "1", "{}", "{\"a\":1}"] {
                let text = format!("{{\"skip\":{}{inner}{},\"k\":1}}", "[".repeat(depth), "]".repeat(depth));
                assert_matches_full_parse(&text, &p(&["k"]));
                assert_matches_full_parse(&text, &p(&["skip"]));
            }
        }
    }

    #[test]
    fn malformed_structure_is_rejected() {
        for text in [
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{\"a\":1}x",
            "{\"a\":[1,]}",
            "{1:2}",
            "{\"a\":tru}",
            "{\"a\":nul}",
            " { } ",
            "{\"a\":{\"b\":}}",
        ] {
            assert_matches_full_parse(text, &p(&["a"]));
            assert_matches_full_parse(text, &p(&["z"]));
        }
    }

    #[test]
    fn projection_is_sorted_deduplicated_and_unions() {
        let a = p(&["temp", "b", "temp"]);
        assert_eq!(a.keys().collect::<Vec<_>>(), ["b", "temp"]);
        assert!(a.contains("temp") && !a.contains("c"));
        let u = a.union(&p(&["c", "b", "a"]));
        assert_eq!(u.keys().collect::<Vec<_>>(), ["a", "b", "c", "temp"]);
        assert_eq!(u, Projection::new(["a", "b", "c", "temp"]));
    }
}
