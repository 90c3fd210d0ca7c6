//! IAM condition operators as AWS IoT Core applies them in a statement's `Condition` block.
//!
//! Semantics follow the IAM reference ("Conditions with multiple context keys or values"):
//! * several operators in one block, and several keys under one operator, are ANDed;
//! * several values for one key are ORed — except for negated operators (`StringNotEquals`,
//!   `NotIpAddress`, …) where they are NORed ("evaluated using a logical NOR");
//! * "If the key that you specify in a policy condition is not present in the request context,
//!   the values do not match and the condition is *false*. If the policy condition requires that
//!   the key is *not* matched, such as `StringNotLike` or `ArnNotLike`, and the right key is not
//!   present, the condition is *true*. This logic applies to all condition operators except
//!   `...IfExists` and `Null` check";
//! * `…IfExists`: a missing key makes the condition true; a present key is checked normally;
//! * `Null`: `"true"` holds when the key is absent, `"false"` when it is present;
//! * `ForAllValues:` holds when every request value matches some policy value (vacuously true
//!   when the key is missing or empty); `ForAnyValue:` when at least one does (false if missing).
//!   With a negated base operator, "matches" is replaced by "matches none of the policy values".
//! * Without a set qualifier a multivalued key behaves like `ForAnyValue` for positive operators
//!   and as the exact negation of that for negated operators (no request value matches).
//!
//! Policy variables are substituted in values of the String and Bool operators only; the IAM
//! reference lists them as unsupported for Numeric, Date and IP-address operators, so those
//! values are parsed (and validated) once, at policy-parse time.

use std::fmt;
use std::net::IpAddr;

use super::context::Context;
use super::matcher::matches_tokens;
use super::variables::{days_since_epoch, Template, Variable};

/// `ForAnyValue:` / `ForAllValues:` set qualifier for multivalued keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    /// At least one request value must satisfy the operator.
    ForAnyValue,
    /// Every request value must satisfy the operator (true when there are none).
    ForAllValues,
}

macro_rules! base_operators {
    ($($name:ident => $family:ident, $negated:expr;)*) => {
        /// The comparison an operator performs, without qualifier or `IfExists`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum BaseOperator {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                $name,
            )*
        }

        impl BaseOperator {
            const ALL: &'static [BaseOperator] = &[$(BaseOperator::$name),*];

            /// The operator's name as written in policies.
            pub fn name(self) -> &'static str {
                match self { $(BaseOperator::$name => stringify!($name),)* }
            }

            /// Whether the operator is a negated match (`…Not…`), which flips missing-key handling
            /// and combines multiple values with NOR.
            pub fn is_negated(self) -> bool {
                match self { $(BaseOperator::$name => $negated,)* }
            }

            fn family(self) -> Family {
                match self { $(BaseOperator::$name => Family::$family,)* }
            }
        }
    };
}

base_operators! {
    StringEquals => Str, false;
    StringNotEquals => Str, true;
    StringEqualsIgnoreCase => Str, false;
    StringNotEqualsIgnoreCase => Str, true;
    StringLike => Str, false;
    StringNotLike => Str, true;
    NumericEquals => Numeric, false;
    NumericNotEquals => Numeric, true;
    NumericLessThan => Numeric, false;
    NumericLessThanEquals => Numeric, false;
    NumericGreaterThan => Numeric, false;
    NumericGreaterThanEquals => Numeric, false;
    DateEquals => Date, false;
    DateNotEquals => Date, true;
    DateLessThan => Date, false;
    DateLessThanEquals => Date, false;
    DateGreaterThan => Date, false;
    DateGreaterThanEquals => Date, false;
    Bool => Bool, false;
    IpAddress => Ip, false;
    NotIpAddress => Ip, true;
    Null => Null, false;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Str,
    Numeric,
    Date,
    Bool,
    Ip,
    Null,
}

/// A full condition operator such as `ForAnyValue:StringLikeIfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    /// Optional set qualifier.
    pub qualifier: Option<SetQualifier>,
    /// The comparison itself.
    pub base: BaseOperator,
    /// `…IfExists` suffix: a missing key makes the condition true.
    pub if_exists: bool,
}

impl Operator {
    /// Parses an operator name; `None` for anything IAM does not define (names are
    /// case-sensitive, and `Null` takes neither a qualifier nor `IfExists`).
    pub fn parse(name: &str) -> Option<Operator> {
        let (qualifier, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), r)
        } else {
            (None, name)
        };
        let (if_exists, base_name) = match rest.strip_suffix("IfExists") {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let base = BaseOperator::ALL.iter().copied().find(|b| b.name() == base_name)?;
        if base == BaseOperator::Null && (if_exists || qualifier.is_some()) {
            return None;
        }
        Some(Operator { qualifier, base, if_exists })
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.qualifier {
            Some(SetQualifier::ForAnyValue) => f.write_str("ForAnyValue:")?,
            Some(SetQualifier::ForAllValues) => f.write_str("ForAllValues:")?,
            None => {}
        }
        f.write_str(self.base.name())?;
        if self.if_exists {
            f.write_str("IfExists")?;
        }
        Ok(())
    }
}

/// An IPv4 or IPv6 network in CIDR notation (a bare address means a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address as written.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `203.0.113.0/24`, `2001:DB8::/32` or a bare address.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok()?
            }
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Whether `ip` lies inside the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let Some(host_bits) = 32u32.checked_sub(u32::from(self.prefix)) else { return false };
                let mask = u32::MAX.checked_shl(host_bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let Some(host_bits) = 128u32.checked_sub(u32::from(self.prefix)) else { return false };
                let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// One policy-side value of a condition, pre-parsed according to its operator family.
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionValue {
    /// String/Bool operators: text with wildcards and policy variables.
    Text(Template),
    /// Numeric operators.
    Number(f64),
    /// Date operators: milliseconds since the Unix epoch.
    Date(i64),
    /// IP-address operators.
    Cidr(Cidr),
    /// `Null` operator: `true` means "key must be absent".
    Null(bool),
}

/// One `operator: { key: values }` entry; a statement holds these in a flat, ANDed list.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The operator.
    pub operator: Operator,
    /// The context key as written in the policy.
    pub key: String,
    /// The key, classified.
    pub variable: Variable,
    /// Policy values (ORed, or NORed for negated operators).
    pub values: Vec<ConditionValue>,
}

/// Why a condition value was rejected: `index` is a byte index into the value string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// Byte index into the (unescaped) value string; `None` when the whole value is at fault.
    pub index: Option<usize>,
    /// Human-readable description.
    pub message: String,
}

fn is_number_text(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
}

fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if !is_number_text(s) {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Converts a policy value (a JSON string, or the text of a JSON number/boolean) for `operator`.
/// `variables` is false under policy language 2008-10-17, where `${…}` is literal text.
pub fn parse_value(operator: &Operator, raw: &str, variables: bool) -> Result<ConditionValue, ValueError> {
    let whole = |what: &str| ValueError { index: None, message: format!("{what} for operator {operator}: {raw:?}") };
    match operator.base.family() {
        Family::Str => Template::parse(raw, variables)
            .map(ConditionValue::Text)
            .map_err(|e| ValueError { index: Some(e.index), message: e.message }),
        Family::Bool => {
            let t =
                Template::parse(raw, variables).map_err(|e| ValueError { index: Some(e.index), message: e.message })?;
            if !t.has_variables() && !raw.eq_ignore_ascii_case("true") && !raw.eq_ignore_ascii_case("false") {
                return Err(whole("expected \"true\" or \"false\""));
            }
            Ok(ConditionValue::Text(t))
        }
        Family::Numeric => parse_number(raw).map(ConditionValue::Number).ok_or_else(|| whole("invalid number")),
        Family::Date => parse_date(raw)
            .map(ConditionValue::Date)
            .ok_or_else(|| whole("invalid date (ISO 8601 or epoch seconds expected)")),
        Family::Ip => Cidr::parse(raw).map(ConditionValue::Cidr).ok_or_else(|| whole("invalid IP address or CIDR")),
        Family::Null => {
            if raw.eq_ignore_ascii_case("true") {
                Ok(ConditionValue::Null(true))
            } else if raw.eq_ignore_ascii_case("false") {
                Ok(ConditionValue::Null(false))
            } else {
                Err(whole("expected \"true\" or \"false\""))
            }
        }
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

impl Condition {
    /// Evaluates the condition against the request context.
    pub fn evaluate(&self, ctx: &Context<'_>) -> bool {
        let request = self.variable.lookup(ctx);
        let base = self.operator.base;
        if base == BaseOperator::Null {
            let present = !request.is_absent();
            return self
                .values
                .iter()
                .any(|v| matches!(v, ConditionValue::Null(must_be_absent) if *must_be_absent != present));
        }
        if request.is_absent() {
            if self.operator.if_exists {
                return true;
            }
            return match self.operator.qualifier {
                Some(SetQualifier::ForAllValues) => true,
                Some(SetQualifier::ForAnyValue) => false,
                None => base.is_negated(),
            };
        }
        let negated = base.is_negated();
        let positive = |request_value: &str| self.values.iter().any(|v| positive_match(base, v, request_value, ctx));
        match self.operator.qualifier {
            None => request.iter().any(positive) != negated,
            Some(SetQualifier::ForAnyValue) => request.iter().any(|r| positive(r) != negated),
            Some(SetQualifier::ForAllValues) => request.iter().all(|r| positive(r) != negated),
        }
    }
}

/// The non-negated comparison of one request value with one policy value.
fn positive_match(base: BaseOperator, policy: &ConditionValue, request: &str, ctx: &Context<'_>) -> bool {
    use BaseOperator as B;
    match (base, policy) {
        (B::StringEquals | B::StringNotEquals, ConditionValue::Text(t)) => {
            t.resolve_text(ctx).is_some_and(|v| v == request)
        }
        (B::StringEqualsIgnoreCase | B::StringNotEqualsIgnoreCase, ConditionValue::Text(t)) => {
            t.resolve_text(ctx).is_some_and(|v| eq_ignore_case(&v, request))
        }
        (B::StringLike | B::StringNotLike, ConditionValue::Text(t)) => {
            t.resolve_pattern(ctx).is_some_and(|p| matches_tokens(&p, request, false))
        }
        (B::Bool, ConditionValue::Text(t)) => t.resolve_text(ctx).is_some_and(|v| v.eq_ignore_ascii_case(request)),
        (_, ConditionValue::Number(p)) => parse_number(request).is_some_and(|r| match base {
            B::NumericEquals | B::NumericNotEquals => r == *p,
            B::NumericLessThan => r < *p,
            B::NumericLessThanEquals => r <= *p,
            B::NumericGreaterThan => r > *p,
            B::NumericGreaterThanEquals => r >= *p,
            _ => false,
        }),
        (_, ConditionValue::Date(p)) => parse_date(request).is_some_and(|r| match base {
            B::DateEquals | B::DateNotEquals => r == *p,
            B::DateLessThan => r < *p,
            B::DateLessThanEquals => r <= *p,
            B::DateGreaterThan => r > *p,
            B::DateGreaterThanEquals => r >= *p,
            _ => false,
        }),
        (B::IpAddress | B::NotIpAddress, ConditionValue::Cidr(c)) => {
            request.trim().parse::<IpAddr>().is_ok_and(|ip| c.contains(ip))
        }
        _ => false,
    }
}

struct Cursor<'s> {
    s: &'s [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<i64> {
        let mut v = 0i64;
        for _ in 0..n {
            let b = *self.s.get(self.i)?;
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(b - b'0');
            self.i += 1;
        }
        Some(v)
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
}

/// Parses an IAM date value into milliseconds since the Unix epoch.
///
/// Accepts epoch seconds (`1700000000`, optionally fractional) and ISO 8601 in the forms
/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]]` with an optional `Z`, `±HH`, `±HHMM` or `±HH:MM`
/// offset (no offset means UTC).
pub fn parse_date(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let secs: i64 = int.parse().ok()?;
        let mut ms = 0i64;
        for (i, b) in frac.bytes().take(3).enumerate() {
            if !b.is_ascii_digit() {
                return None;
            }
            ms += i64::from(b - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return secs.checked_mul(1000)?.checked_add(ms);
    }
    let mut c = Cursor { s: text.as_bytes(), i: 0 };
    let year = c.digits(4)?;
    if !c.eat(b'-') {
        return None;
    }
    let month = u32::try_from(c.digits(2)?).ok()?;
    if !c.eat(b'-') {
        return None;
    }
    let day = u32::try_from(c.digits(2)?).ok()?;
    let mut seconds = days_since_epoch(year, month, day)? * 86_400;
    let mut millis = 0i64;
    if c.eat(b'T') || c.eat(b't') {
        let hour = c.digits(2)?;
        if !c.eat(b':') {
            return None;
        }
        let minute = c.digits(2)?;
        let mut second = 0;
        if c.eat(b':') {
            second = c.digits(2)?;
            if c.eat(b'.') {
                let start = c.i;
                let mut scale = 100;
                while let Some(b) = c.peek().filter(u8::is_ascii_digit) {
                    millis += i64::from(b - b'0') * scale;
                    scale /= 10;
                    c.i += 1;
                }
                if c.i == start {
                    return None;
                }
            }
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        seconds += hour * 3600 + minute * 60 + second;
        match c.peek() {
            None => {}
            Some(b'Z' | b'z') => c.i += 1,
            Some(sign @ (b'+' | b'-')) => {
                c.i += 1;
                let oh = c.digits(2)?;
                let om = if c.peek().is_none() {
                    0
                } else {
                    c.eat(b':');
                    c.digits(2)?
                };
                if oh > 23 || om > 59 {
                    return None;
                }
                let offset = oh * 3600 + om * 60;
                seconds += if sign == b'+' { -offset } else { offset };
            }
            Some(_) => return None,
        }
    }
    if c.i != c.s.len() {
        return None;
    }
    seconds.checked_mul(1000)?.checked_add(millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cond(op: &str, key: &str, values: &[&str]) -> Condition {
        let operator = Operator::parse(op).unwrap();
        Condition {
            operator,
            key: key.to_string(),
            variable: Variable::from_name(key),
            values: values.iter().map(|v| parse_value(&operator, v, true).unwrap()).collect(),
        }
    }

    fn extra_ctx(extra: &BTreeMap<String, Vec<String>>) -> Context<'_> {
        let mut ctx = Context::new("client-1", 1_700_000_000);
        ctx.extra = extra;
        ctx
    }

    #[test]
    fn operator_names() {
        assert_eq!(
            Operator::parse("ForAnyValue:StringLikeIfExists").unwrap().to_string(),
            "ForAnyValue:StringLikeIfExists"
        );
        assert!(Operator::parse("StringEqualz").is_none());
        assert!(Operator::parse("NullIfExists").is_none());
        assert!(Operator::parse("ForAllValues:Null").is_none());
        assert!(Operator::parse("stringequals").is_none());
        assert!(Operator::parse("IfExists").is_none());
    }

    #[test]
    fn string_operators() {
        let ctx = Context::new("Sensor-1", 0);
        assert!(cond("StringEquals", "iot:ClientId", &["Sensor-1"]).evaluate(&ctx));
        assert!(!cond("StringEquals", "iot:ClientId", &["sensor-1"]).evaluate(&ctx));
        assert!(cond("StringEqualsIgnoreCase", "iot:ClientId", &["sensor-1"]).evaluate(&ctx));
        assert!(cond("StringNotEqualsIgnoreCase", "iot:ClientId", &["other"]).evaluate(&ctx));
        assert!(cond("StringLike", "iot:ClientId", &["Sensor-?"]).evaluate(&ctx));
        assert!(!cond("StringLike", "iot:ClientId", &["sensor-*"]).evaluate(&ctx));
        assert!(cond("StringNotLike", "iot:ClientId", &["x*"]).evaluate(&ctx));
        // StringEquals has no wildcards.
        assert!(!cond("StringEquals", "iot:ClientId", &["Sensor-*"]).evaluate(&ctx));
    }

    #[test]
    fn multiple_values_or_and_negated_nor() {
        let ctx = Context::new("b", 0);
        assert!(cond("StringEquals", "iot:ClientId", &["a", "b"]).evaluate(&ctx));
        assert!(!cond("StringNotEquals", "iot:ClientId", &["a", "b"]).evaluate(&ctx));
        assert!(cond("StringNotEquals", "iot:ClientId", &["a", "c"]).evaluate(&ctx));
    }

    #[test]
    fn missing_key_rules() {
        let ctx = Context::new("c", 0);
        let key = "iot:Connection.Thing.ThingName";
        assert!(!cond("StringEquals", key, &["x"]).evaluate(&ctx));
        assert!(cond("StringNotEquals", key, &["x"]).evaluate(&ctx));
        assert!(cond("StringEqualsIfExists", key, &["x"]).evaluate(&ctx));
        assert!(cond("ForAllValues:StringEquals", key, &["x"]).evaluate(&ctx));
        assert!(!cond("ForAnyValue:StringEquals", key, &["x"]).evaluate(&ctx));
        assert!(cond("Null", key, &["true"]).evaluate(&ctx));
        assert!(!cond("Null", key, &["false"]).evaluate(&ctx));
        assert!(cond("Null", "iot:ClientId", &["false"]).evaluate(&ctx));
        assert!(!cond("NumericLessThan", "x:n", &["5"]).evaluate(&ctx));
        assert!(cond("NotIpAddress", "aws:SourceIp", &["10.0.0.0/8"]).evaluate(&ctx));
    }

    #[test]
    fn set_qualifiers_on_multivalued_keys() {
        let mut extra = BTreeMap::new();
        extra
            .insert("iot:ConnectAttributes".to_string(), vec!["LastWill".to_string(), "PersistentConnect".to_string()]);
        let ctx = extra_ctx(&extra);
        let k = "iot:ConnectAttributes";
        assert!(!cond("ForAllValues:StringEquals", k, &["LastWill"]).evaluate(&ctx));
        assert!(cond("ForAllValues:StringEquals", k, &["LastWill", "PersistentConnect"]).evaluate(&ctx));
        assert!(cond("ForAnyValue:StringEquals", k, &["LastWill"]).evaluate(&ctx));
        assert!(!cond("ForAnyValue:StringEquals", k, &["Nope"]).evaluate(&ctx));
        assert!(cond("ForAnyValue:StringNotEquals", k, &["LastWill"]).evaluate(&ctx));
        assert!(!cond("ForAllValues:StringNotEquals", k, &["LastWill"]).evaluate(&ctx));
        // No qualifier: positive = any match, negated = none match.
        assert!(cond("StringEquals", k, &["LastWill"]).evaluate(&ctx));
        assert!(!cond("StringNotEquals", k, &["LastWill"]).evaluate(&ctx));
        let empty: BTreeMap<String, Vec<String>> = BTreeMap::new();
        assert!(cond("ForAllValues:StringEquals", k, &["LastWill"]).evaluate(&extra_ctx(&empty)));
    }

    #[test]
    fn numeric_and_bool() {
        let mut extra = BTreeMap::new();
        extra.insert("mqtt:qos".to_string(), vec!["1".to_string()]);
        extra.insert("flag".to_string(), vec!["TRUE".to_string()]);
        let ctx = extra_ctx(&extra);
        assert!(cond("NumericEquals", "mqtt:qos", &["1.0"]).evaluate(&ctx));
        assert!(cond("NumericLessThan", "mqtt:qos", &["2"]).evaluate(&ctx));
        assert!(cond("NumericLessThanEquals", "mqtt:qos", &["1"]).evaluate(&ctx));
        assert!(!cond("NumericGreaterThan", "mqtt:qos", &["1"]).evaluate(&ctx));
        assert!(cond("NumericGreaterThanEquals", "mqtt:qos", &["1"]).evaluate(&ctx));
        assert!(cond("NumericNotEquals", "mqtt:qos", &["0", "2"]).evaluate(&ctx));
        assert!(cond("Bool", "flag", &["true"]).evaluate(&ctx));
        assert!(parse_value(&Operator::parse("NumericEquals").unwrap(), "abc", true).is_err());
        assert!(parse_value(&Operator::parse("NumericEquals").unwrap(), "inf", true).is_err());
        assert!(parse_value(&Operator::parse("Bool").unwrap(), "yes", true).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_date("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_date("1970-01-01T00:00:00.250Z"), Some(250));
        assert_eq!(parse_date("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_date("1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("2023-01-01T25:00:00Z"), None);
        assert_eq!(parse_date("2023-01-01Tjunk"), None);
        let ctx = Context::new("c", 1_700_000_000);
        assert!(cond("DateGreaterThan", "aws:CurrentTime", &["2023-01-01T00:00:00Z"]).evaluate(&ctx));
        assert!(cond("DateLessThan", "aws:CurrentTime", &["2024-01-01"]).evaluate(&ctx));
        assert!(cond("DateEquals", "aws:EpochTime", &["1700000000"]).evaluate(&ctx));
        assert!(cond("DateLessThanEquals", "aws:EpochTime", &["2023-11-14T22:13:20Z"]).evaluate(&ctx));
        assert!(!cond("DateGreaterThanEquals", "aws:EpochTime", &["2023-11-14T22:13:21Z"]).evaluate(&ctx));
        assert!(cond("DateNotEquals", "aws:EpochTime", &["1"]).evaluate(&ctx));
    }

    #[test]
    fn ip_addresses() {
        let mut ctx = Context::new("c", 0);
        ctx.source_ip = Some("203.0.113.7".parse().unwrap());
        assert!(cond("IpAddress", "aws:SourceIp", &["203.0.113.0/24"]).evaluate(&ctx));
        assert!(!cond("IpAddress", "aws:SourceIp", &["203.0.114.0/24"]).evaluate(&ctx));
        assert!(cond("IpAddress", "aws:SourceIp", &["0.0.0.0/0"]).evaluate(&ctx));
        assert!(cond("IpAddress", "aws:SourceIp", &["203.0.113.7"]).evaluate(&ctx));
        assert!(cond("NotIpAddress", "aws:SourceIp", &["10.0.0.0/8", "2001:db8::/32"]).evaluate(&ctx));
        ctx.source_ip = Some("::ffff:203.0.113.7".parse().unwrap());
        assert!(cond("IpAddress", "aws:SourceIp", &["203.0.113.0/24"]).evaluate(&ctx));
        ctx.source_ip = Some("2001:db8::1".parse().unwrap());
        assert!(cond("IpAddress", "aws:SourceIp", &["2001:DB8::/32"]).evaluate(&ctx));
        assert!(!cond("IpAddress", "aws:SourceIp", &["203.0.113.0/24"]).evaluate(&ctx));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0/").is_none());
        assert!(Cidr::parse("10.0.0.0/+8").is_none());
        assert!(Cidr::parse("::/129").is_none());
        // Hand-built out-of-range prefixes never match (and never panic).
        let bogus = Cidr { addr: "10.0.0.0".parse().unwrap(), prefix: 200 };
        assert!(!bogus.contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn variables_in_condition_values() {
        let attrs = BTreeMap::new();
        let mut ctx = Context::new("dev-7", 0);
        let c = cond("StringEquals", "iot:ClientId", &["${iot:Connection.Thing.ThingName}"]);
        assert!(!c.evaluate(&ctx));
        // Unresolved value matches nothing, so the negated form holds.
        assert!(cond("StringNotEquals", "iot:ClientId", &["${iot:Connection.Thing.ThingName}"]).evaluate(&ctx));
        ctx.thing = Some(super::super::context::ThingContext { name: "dev-7", type_name: None, attributes: &attrs });
        assert!(c.evaluate(&ctx));
        assert!(cond("Bool", "iot:Connection.Thing.IsAttached", &["true"]).evaluate(&ctx));
        assert!(cond("StringLike", "iot:ClientId", &["dev-${*}"]).evaluate(&Context::new("dev-*", 0)));
        assert!(!cond("StringLike", "iot:ClientId", &["dev-${*}"]).evaluate(&ctx));
    }
}
