//! Policy variables (`${iot:ClientId}`, `${iot:Connection.Thing.ThingName}`, …) and the request
//! context values they, and condition keys, resolve to.
//!
//! Substitution produces wildcard [`Token`]s rather than a string: characters that come from the
//! connection (a client id containing `*`, say) and the escapes `${*}`, `${?}`, `${$}` are pushed
//! as literal characters, so they can never act as wildcards.
//!
//! **Unresolvable variables.** AWS IoT's thing-policy examples say of
//! `topic/${iot:Connection.Thing.Attributes[attributeName]}/*`: "If the device certificate is not
//! associated with the thing, this variable won't be resolved and will result in an access denied
//! error", and IAM warns "If AWS cannot resolve a variable this might cause the entire statement
//! to be invalid". IAM also states that multivalued context keys cannot be used as policy
//! variables. So a template whose variable is absent, or has several values, resolves to `None`;
//! callers treat such a `Resource` entry or condition value as matching nothing.
//!
//! **Policy language version.** IAM: "If you do not include a Version element, the value defaults
//! to 2008-10-17 … variables such as `${aws:username}` aren't recognized as variables and are
//! instead treated as literal strings". [`Template::parse`] takes that switch.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::context::Context;
use super::matcher::{self, Token};

/// A request-context key or policy variable, resolved once at parse time so evaluation does no
/// string comparisons on names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    /// `iot:ClientId`: the MQTT client id of the connection.
    ClientId,
    /// `iot:Connection.Thing.ThingName`: name of the thing attached to the connection's principal.
    ThingName,
    /// `iot:Connection.Thing.ThingTypeName`: that thing's type, if it has one.
    ThingTypeName,
    /// `iot:Connection.Thing.Attributes[NAME]`: one attribute of that thing.
    ThingAttribute(String),
    /// `iot:Connection.Thing.IsAttached`: `"true"` when a thing is attached, else `"false"`.
    IsAttached,
    /// `iot:Certificate.<part>`: a client-certificate field, keyed by `<part>` (e.g. `Subject.CommonName`).
    Certificate(String),
    /// `aws:SourceIp`: the client's IP address.
    SourceIp,
    /// `aws:CurrentTime`: evaluation time as ISO 8601 (`2024-01-31T12:00:00Z`).
    CurrentTime,
    /// `aws:EpochTime`: evaluation time in seconds since the Unix epoch.
    EpochTime,
    /// Any other key, looked up in [`Context::extra`] (e.g. `iot:DomainName`, MQTT 5 keys).
    Other(String),
}

const ATTRIBUTES_PREFIX: &str = "iot:Connection.Thing.Attributes[";
const CERTIFICATE_PREFIX: &str = "iot:Certificate.";

fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

impl Variable {
    /// Classifies a key name. Well-known names are matched case-insensitively, as IAM treats
    /// context key names ("Context key names are not case-sensitive").
    pub fn from_name(name: &str) -> Variable {
        const FIXED: [(&str, Variable); 7] = [
            ("iot:ClientId", Variable::ClientId),
            ("iot:Connection.Thing.ThingName", Variable::ThingName),
            ("iot:Connection.Thing.ThingTypeName", Variable::ThingTypeName),
            ("iot:Connection.Thing.IsAttached", Variable::IsAttached),
            ("aws:SourceIp", Variable::SourceIp),
            ("aws:CurrentTime", Variable::CurrentTime),
            ("aws:EpochTime", Variable::EpochTime),
        ];
        for (fixed, var) in FIXED.iter() {
            if name.eq_ignore_ascii_case(fixed) {
                return var.clone();
            }
        }
        if let Some(rest) = strip_prefix_ignore_case(name, ATTRIBUTES_PREFIX) {
            if let Some(attr) = rest.strip_suffix(']') {
                if !attr.is_empty() {
                    return Variable::ThingAttribute(attr.to_string());
                }
            }
        }
        if let Some(rest) = strip_prefix_ignore_case(name, CERTIFICATE_PREFIX) {
            if !rest.is_empty() {
                return Variable::Certificate(rest.to_string());
            }
        }
        Variable::Other(name.to_string())
    }

    /// Looks the key up in the request context.
    pub fn lookup<'c>(&self, ctx: &'c Context<'_>) -> Values<'c> {
        match self {
            Variable::ClientId => Values::One(Cow::Borrowed(ctx.client_id)),
            Variable::ThingName => ctx.thing.as_ref().map_or(Values::Absent, |t| Values::One(Cow::Borrowed(t.name))),
            Variable::ThingTypeName => {
                ctx.thing.as_ref().and_then(|t| t.type_name).map_or(Values::Absent, |n| Values::One(Cow::Borrowed(n)))
            }
            Variable::ThingAttribute(name) => ctx
                .thing
                .as_ref()
                .and_then(|t| t.attributes.get(name.as_str()))
                .map_or(Values::Absent, |v| Values::One(Cow::Borrowed(v.as_str()))),
            Variable::IsAttached => Values::One(Cow::Borrowed(if ctx.thing.is_some() { "true" } else { "false" })),
            Variable::Certificate(part) => ctx.certificate.map_or(Values::Absent, |c| multi(lookup_map(c, part))),
            Variable::SourceIp => ctx.source_ip.map_or(Values::Absent, |ip| Values::One(Cow::Owned(ip.to_string()))),
            Variable::CurrentTime => Values::One(Cow::Owned(format_iso8601(ctx.now_epoch_s))),
            Variable::EpochTime => Values::One(Cow::Owned(ctx.now_epoch_s.to_string())),
            Variable::Other(name) => multi(lookup_map(ctx.extra, name)),
        }
    }
}

fn lookup_map<'m>(map: &'m BTreeMap<String, Vec<String>>, key: &str) -> Option<&'m [String]> {
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)).map(Vec::as_slice)
}

fn multi(values: Option<&[String]>) -> Values<'_> {
    match values {
        None | Some([]) => Values::Absent,
        Some(list) => Values::Many(list),
    }
}

/// The value(s) a context key has for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Values<'c> {
    /// The key is not present in the request context.
    Absent,
    /// Exactly one value.
    One(Cow<'c, str>),
    /// One or more values (certificate fields and `extra` keys may be multivalued).
    Many(&'c [String]),
}

impl Values<'_> {
    /// Whether the key is missing from the request context.
    pub fn is_absent(&self) -> bool {
        matches!(self, Values::Absent)
    }

    /// All values, in order (empty when absent).
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let (one, many): (Option<&str>, &[String]) = match self {
            Values::Absent => (None, &[]),
            Values::One(v) => (Some(v.as_ref()), &[]),
            Values::Many(list) => (None, list),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }

    /// The value when there is exactly one; `None` when absent or multivalued (IAM does not
    /// allow multivalued keys as policy variables).
    pub fn single(&self) -> Option<&str> {
        match self {
            Values::One(v) => Some(v.as_ref()),
            Values::Many([v]) => Some(v.as_str()),
            _ => None,
        }
    }
}

/// Where and why a template failed to parse (`index` is a byte index into the unescaped string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte index of the offending `$` in the (JSON-unescaped) string.
    pub index: usize,
    /// Human-readable description.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Token(Token),
    Var(Variable),
}

/// A resource or condition-value string with its wildcards and policy variables pre-parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The string as written in the policy (after JSON unescaping).
    pub source: String,
    parts: Vec<Part>,
    /// Precomputed pattern and text when the template has no variables (the common case), so
    /// evaluating it allocates nothing.
    static_tokens: Option<Vec<Token>>,
    static_text: Option<String>,
}

fn token_char(tok: Token) -> char {
    match tok {
        Token::Char(c) => c,
        Token::Star => '*',
        Token::Question => '?',
    }
}

impl Template {
    /// Parses `source`. With `variables` false (policy language 2008-10-17) `${…}` is plain text.
    ///
    /// Errors: `${` without a closing `}`, an empty `${}`, or whitespace inside the braces (IAM's
    /// "Missing brace in variable", "Empty variable" and "Unsupported space in variable" checks).
    pub fn parse(source: &str, variables: bool) -> Result<Template, TemplateError> {
        let mut parts = Vec::with_capacity(source.len());
        let mut rest = source;
        let mut index = 0usize;
        while let Some(c) = rest.chars().next() {
            if variables && c == '$' && rest.get(1..2) == Some("{") {
                let inner_start = 2;
                let Some(close) = rest.get(inner_start..).and_then(|r| r.find('}')) else {
                    return Err(TemplateError {
                        index,
                        message: "unterminated policy variable: `${` has no closing `}`".to_string(),
                    });
                };
                let name = rest.get(inner_start..inner_start + close).unwrap_or_default();
                if name.is_empty() {
                    return Err(TemplateError { index, message: "empty policy variable `${}`".to_string() });
                }
                parts.push(match name {
                    "*" => Part::Token(Token::Char('*')),
                    "?" => Part::Token(Token::Char('?')),
                    "$" => Part::Token(Token::Char('$')),
                    _ if name.chars().any(|ch| ch.is_whitespace() || ch == '$' || ch == '{') => {
                        return Err(TemplateError {
                            index,
                            message: format!("malformed policy variable `${{{name}}}`"),
                        });
                    }
                    _ => Part::Var(Variable::from_name(name)),
                });
                let consumed = inner_start + close + 1;
                index += consumed;
                rest = rest.get(consumed..).unwrap_or_default();
                continue;
            }
            parts.push(Part::Token(match c {
                '*' => Token::Star,
                '?' => Token::Question,
                c => Token::Char(c),
            }));
            index += c.len_utf8();
            rest = rest.get(c.len_utf8()..).unwrap_or_default();
        }
        let is_static = parts.iter().all(|p| matches!(p, Part::Token(_)));
        let (static_tokens, static_text) = if is_static {
            let toks: Vec<Token> =
                parts.iter().filter_map(|p| if let Part::Token(t) = p { Some(*t) } else { None }).collect();
            let text: String = toks.iter().map(|t| token_char(*t)).collect();
            (Some(toks), Some(text))
        } else {
            (None, None)
        };
        Ok(Template { source: source.to_string(), parts, static_tokens, static_text })
    }

    /// Whether the template contains at least one policy variable.
    pub fn has_variables(&self) -> bool {
        self.static_tokens.is_none()
    }

    /// The variables this template references, in order.
    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.parts.iter().filter_map(|p| if let Part::Var(v) = p { Some(v) } else { None })
    }

    /// Substitutes variables and returns a wildcard pattern (`*`/`?` in the policy text are
    /// wildcards; substituted values and escapes are literal). `None` if a variable is unresolved.
    pub fn resolve_pattern<'t>(&'t self, ctx: &Context<'_>) -> Option<Cow<'t, [Token]>> {
        if let Some(toks) = &self.static_tokens {
            return Some(Cow::Borrowed(toks.as_slice()));
        }
        let mut out = Vec::with_capacity(self.parts.len() + 16);
        for part in &self.parts {
            match part {
                Part::Token(t) => out.push(*t),
                Part::Var(v) => matcher::push_literal(&mut out, v.lookup(ctx).single()?),
            }
        }
        Some(Cow::Owned(out))
    }

    /// Substitutes variables and returns plain text in which every character is literal (for
    /// `StringEquals`-style operators, where `*` has no special meaning). `None` if unresolved.
    pub fn resolve_text<'t>(&'t self, ctx: &Context<'_>) -> Option<Cow<'t, str>> {
        if let Some(text) = &self.static_text {
            return Some(Cow::Borrowed(text.as_str()));
        }
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Token(t) => out.push(token_char(*t)),
                Part::Var(v) => out.push_str(v.lookup(ctx).single()?),
            }
        }
        Some(Cow::Owned(out))
    }
}

/// Days since 1970-01-01 of a calendar date; `None` for a date that does not exist.
pub(crate) fn days_since_epoch(year: i64, month: u32, day: u32) -> Option<i64> {
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    Some(i64::from(date.to_julian_day() - time::macros::date!(1970 - 01 - 01).to_julian_day()))
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`, the form `aws:CurrentTime` takes (a
/// time past year 9999 is written as the last second of 9999).
pub fn format_iso8601(epoch_s: u64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let at = i64::try_from(epoch_s)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::macros::datetime!(9999-12-31 23:59:59 UTC));
    at.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::context::{Context, ThingContext};
    use super::super::matcher::matches_tokens;
    use super::*;

    fn pat(t: &Template, ctx: &Context) -> Option<Vec<Token>> {
        t.resolve_pattern(ctx).map(|c| c.into_owned())
    }

    #[test]
    fn classifies_names_case_insensitively() {
        assert_eq!(Variable::from_name("iot:clientid"), Variable::ClientId);
        assert_eq!(
            Variable::from_name("IOT:Connection.Thing.Attributes[Floor]"),
            Variable::ThingAttribute("Floor".into())
        );
        assert_eq!(
            Variable::from_name("iot:Certificate.Subject.CommonName"),
            Variable::Certificate("Subject.CommonName".into())
        );
        assert_eq!(Variable::from_name("iot:DomainName"), Variable::Other("iot:DomainName".into()));
        assert_eq!(
            Variable::from_name("iot:Connection.Thing.Attributes[]"),
            Variable::Other("iot:Connection.Thing.Attributes[]".into())
        );
    }

    #[test]
    fn client_id_substitution_is_literal() {
        let t = Template::parse("topic/${iot:ClientId}/*", true).unwrap();
        let ctx = Context::new("a*b", 0);
        let p = pat(&t, &ctx).unwrap();
        assert!(matches_tokens(&p, "topic/a*b/x", false));
        assert!(!matches_tokens(&p, "topic/aXXb/x", false));
    }

    #[test]
    fn escapes_are_literal_characters() {
        let t = Template::parse("a${*}b${?}c${$}d", true).unwrap();
        assert!(!t.has_variables());
        let ctx = Context::new("c", 0);
        let p = pat(&t, &ctx).unwrap();
        assert!(matches_tokens(&p, "a*b?c$d", false));
        assert!(!matches_tokens(&p, "axxbycd$d", false));
        assert_eq!(t.resolve_text(&ctx).unwrap(), "a*b?c$d");
    }

    #[test]
    fn version_2008_keeps_variables_literal() {
        let t = Template::parse("topic/${iot:ClientId}", false).unwrap();
        assert!(!t.has_variables());
        assert_eq!(t.resolve_text(&Context::new("c", 0)).unwrap(), "topic/${iot:ClientId}");
        assert!(Template::parse("topic/${oops", false).is_ok());
    }

    #[test]
    fn template_errors_point_at_dollar() {
        assert_eq!(Template::parse("ab${iot:ClientId", true).unwrap_err().index, 2);
        assert_eq!(Template::parse("x${}", true).unwrap_err().index, 1);
        assert_eq!(Template::parse("é${a b}", true).unwrap_err().index, 2);
        assert!(Template::parse("$x {y} $", true).is_ok());
    }

    #[test]
    fn missing_thing_leaves_variable_unresolved() {
        let t = Template::parse("client/${iot:Connection.Thing.ThingName}", true).unwrap();
        assert!(pat(&t, &Context::new("dev1", 0)).is_none());
        let attrs = BTreeMap::new();
        let mut ctx = Context::new("dev1", 0);
        ctx.thing = Some(ThingContext { name: "dev1", type_name: None, attributes: &attrs });
        assert!(matches_tokens(&pat(&t, &ctx).unwrap(), "client/dev1", false));
        let a = Template::parse("${iot:Connection.Thing.Attributes[floor]}", true).unwrap();
        assert!(pat(&a, &ctx).is_none());
        let ty = Template::parse("${iot:Connection.Thing.ThingTypeName}", true).unwrap();
        assert!(pat(&ty, &ctx).is_none());
    }

    #[test]
    fn multivalued_certificate_field_is_not_substituted() {
        let mut cert = BTreeMap::new();
        cert.insert("Subject.CommonName".to_string(), vec!["dev1".to_string()]);
        cert.insert("SubjectAlternativeName.DNSName".to_string(), vec!["a".to_string(), "b".to_string()]);
        let mut ctx = Context::new("x", 0);
        ctx.certificate = Some(&cert);
        let cn = Template::parse("${iot:Certificate.Subject.CommonName}", true).unwrap();
        assert_eq!(cn.resolve_text(&ctx).unwrap(), "dev1");
        let san = Template::parse("${iot:Certificate.SubjectAlternativeName.DNSName}", true).unwrap();
        assert!(san.resolve_text(&ctx).is_none());
    }

    #[test]
    fn time_variables() {
        let ctx = Context::new("x", 1_700_000_000);
        let t = Template::parse("${aws:CurrentTime}|${aws:EpochTime}", true).unwrap();
        assert_eq!(t.resolve_text(&ctx).unwrap(), "2023-11-14T22:13:20Z|1700000000");
        assert_eq!(format_iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(days_since_epoch(1970, 1, 1), Some(0));
        assert_eq!(days_since_epoch(2000, 2, 29), Some(11_016));
        assert_eq!(days_since_epoch(1969, 12, 31), Some(-1));
        assert_eq!(days_since_epoch(2001, 2, 29), None);
        assert_eq!(days_since_epoch(2001, 13, 1), None);
    }
}
