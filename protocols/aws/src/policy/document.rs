//! Parsing and validation of AWS IoT Core policy documents.
//!
//! Rejects what `CreatePolicy` would reject with `MalformedPolicyException`, and reports the line
//! and column of the offending key or value so users can fix their documents.
//!
//! Accepted grammar (IAM grammar restricted to what AWS IoT identity policies use):
//! * top level: object with `Statement` (required), `Version` (`"2012-10-17"` or `"2008-10-17"`,
//!   optional) and `Id` (string, optional — part of the IAM grammar); anything else is an error;
//! * `Statement`: one statement object or a non-empty array of them;
//! * statement: `Effect` (`"Allow"`/`"Deny"`, exact case), exactly one of `Action`/`NotAction`,
//!   exactly one of `Resource`/`NotResource` (string or non-empty array of strings), optional
//!   `Sid` (string) and `Condition`; `Principal` and any other key are errors (IoT policies are
//!   identity policies);
//! * size: at most [`MAX_POLICY_CHARS`] characters excluding whitespace (the `CreatePolicy` API:
//!   "policyDocument must have a minimum length of 1, with a maximum length of 2048, excluding
//!   whitespace"). Every Unicode whitespace character is excluded, inside strings too.

use std::fmt;

use super::conditions::{self, Condition, Operator};
use super::json::{self, Member, Node, Value};
use super::matcher::{self, Token};
use super::variables::{Template, Variable};

/// Maximum policy size in characters, whitespace excluded, as AWS IoT's `CreatePolicy` enforces.
pub const MAX_POLICY_CHARS: usize = 2048;

/// A validation or syntax error with a 1-based position (column counted in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for PolicyError {}

/// Whether a statement grants or refuses the access it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants access unless some statement denies it.
    Allow,
    /// Refuses access; overrides every `Allow`.
    Deny,
}

/// A policy action pattern such as `iot:Publish` or `iot:*`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionPattern {
    /// The pattern as written.
    pub source: String,
    tokens: Vec<Token>,
}

impl ActionPattern {
    /// Compiles an action pattern (`*` and `?` are wildcards; no policy variables in actions).
    pub fn new(source: &str) -> ActionPattern {
        ActionPattern { source: source.to_string(), tokens: matcher::compile(source) }
    }

    /// Case-insensitive match of an action name.
    pub fn matches(&self, action: &str) -> bool {
        matcher::action_matches(&self.tokens, action)
    }
}

/// The `Action` or `NotAction` element of a statement.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionSet {
    /// `true` for `NotAction`: the statement covers every action *not* listed.
    pub negated: bool,
    /// The listed patterns.
    pub patterns: Vec<ActionPattern>,
}

impl ActionSet {
    /// Whether the statement applies to `action`.
    pub fn matches(&self, action: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(action)) != self.negated
    }
}

/// The `Resource` or `NotResource` element of a statement.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSet {
    /// `true` for `NotResource`: the statement covers every resource *not* listed.
    pub negated: bool,
    /// The listed resource templates (wildcards plus policy variables).
    pub templates: Vec<Template>,
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Optional statement id.
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    /// Actions covered.
    pub actions: ActionSet,
    /// Resources covered.
    pub resources: ResourceSet,
    /// Conditions, all of which must hold (flattened `operator → key → values`).
    pub conditions: Vec<Condition>,
}

/// Policy-language version from the `Version` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyVersion {
    /// `2012-10-17`: policy variables are substituted.
    V2012_10_17,
    /// `2008-10-17`, also the default when `Version` is absent: `${…}` is literal text.
    V2008_10_17,
}

/// A parsed, validated policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    /// The language version in effect.
    pub version: PolicyVersion,
    /// The statements, in document order.
    pub statements: Vec<Statement>,
}

impl std::str::FromStr for PolicyDocument {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

struct Ctx<'t> {
    text: &'t str,
    variables: bool,
}

impl Ctx<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> PolicyError {
        let (line, column) = json::line_col(self.text, offset);
        PolicyError { line, column, message: message.into() }
    }
}

/// Parses and validates a policy document.
pub fn parse(text: &str) -> Result<PolicyDocument, PolicyError> {
    let size = text.chars().filter(|c| !c.is_whitespace()).count();
    if size > MAX_POLICY_CHARS {
        return Err(PolicyError {
            line: 1,
            column: 1,
            message: format!("policy document is longer than {MAX_POLICY_CHARS} characters (whitespace excluded)"),
        });
    }
    let root = json::parse(text).map_err(|e| {
        let (line, column) = json::line_col(text, e.offset);
        PolicyError { line, column, message: format!("invalid JSON: {}", e.message) }
    })?;
    let mut cx = Ctx { text, variables: false };
    let Value::Object(members) = &root.value else {
        return Err(
            cx.err(root.offset, format!("policy document must be a JSON object, found {}", root.value.type_name()))
        );
    };

    let mut version = PolicyVersion::V2008_10_17;
    let mut statement_node: Option<&Node> = None;
    for m in members {
        match m.key.as_str() {
            "Version" => {
                version = match &m.value.value {
                    Value::String(v) if v == "2012-10-17" => PolicyVersion::V2012_10_17,
                    Value::String(v) if v == "2008-10-17" => PolicyVersion::V2008_10_17,
                    other => {
                        return Err(cx.err(
                            m.value.offset,
                            format!(
                                "unsupported Version {}; expected \"2012-10-17\" or \"2008-10-17\"",
                                describe(other)
                            ),
                        ))
                    }
                }
            }
            "Statement" => statement_node = Some(&m.value),
            "Id" => expect_string(&cx, &m.value, "Id").map(|_| ())?,
            other => return Err(cx.err(m.key_offset, format!("unknown policy element {other:?}"))),
        }
    }
    cx.variables = version == PolicyVersion::V2012_10_17;
    let Some(statement_node) = statement_node else {
        return Err(cx.err(root.offset, "policy document has no \"Statement\" element"));
    };
    let statements = match &statement_node.value {
        Value::Object(members) => vec![parse_statement(&cx, statement_node.offset, members)?],
        Value::Array(items) if items.is_empty() => {
            return Err(cx.err(statement_node.offset, "\"Statement\" must not be empty"));
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let Value::Object(members) = &item.value else {
                    return Err(cx.err(
                        item.offset,
                        format!("each statement must be an object, found {}", item.value.type_name()),
                    ));
                };
                out.push(parse_statement(&cx, item.offset, members)?);
            }
            out
        }
        other => {
            return Err(cx.err(
                statement_node.offset,
                format!("\"Statement\" must be an object or an array of objects, found {}", other.type_name()),
            ))
        }
    };
    Ok(PolicyDocument { version, statements })
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.type_name().to_string(),
    }
}

fn expect_string<'n>(cx: &Ctx<'_>, node: &'n Node, what: &str) -> Result<&'n str, PolicyError> {
    match &node.value {
        Value::String(s) => Ok(s),
        other => Err(cx.err(node.offset, format!("\"{what}\" must be a string, found {}", other.type_name()))),
    }
}

/// A string or non-empty array of strings, each with the offset of its opening quote.
fn string_list<'n>(cx: &Ctx<'_>, node: &'n Node, what: &str) -> Result<Vec<(&'n str, usize)>, PolicyError> {
    match &node.value {
        Value::String(s) => Ok(vec![(s.as_str(), node.offset)]),
        Value::Array(items) if items.is_empty() => Err(cx.err(node.offset, format!("\"{what}\" must not be empty"))),
        Value::Array(items) => items
            .iter()
            .map(|item| match &item.value {
                Value::String(s) => Ok((s.as_str(), item.offset)),
                other => {
                    Err(cx.err(item.offset, format!("\"{what}\" entries must be strings, found {}", other.type_name())))
                }
            })
            .collect(),
        other => Err(cx.err(
            node.offset,
            format!("\"{what}\" must be a string or an array of strings, found {}", other.type_name()),
        )),
    }
}

fn parse_statement(cx: &Ctx<'_>, offset: usize, members: &[Member]) -> Result<Statement, PolicyError> {
    let mut sid = None;
    let mut effect = None;
    let mut actions: Option<(&Member, bool)> = None;
    let mut resources: Option<(&Member, bool)> = None;
    let mut condition = None;
    for m in members {
        match m.key.as_str() {
            "Sid" => sid = Some(expect_string(cx, &m.value, "Sid")?.to_string()),
            "Effect" => {
                effect = Some(match &m.value.value {
                    Value::String(s) if s == "Allow" => Effect::Allow,
                    Value::String(s) if s == "Deny" => Effect::Deny,
                    other => {
                        return Err(cx.err(
                            m.value.offset,
                            format!("invalid Effect {}; expected \"Allow\" or \"Deny\"", describe(other)),
                        ))
                    }
                })
            }
            "Action" | "NotAction" => {
                if let Some((prev, _)) = actions {
                    return Err(cx.err(m.key_offset, format!("statement has both {:?} and {:?}", prev.key, m.key)));
                }
                actions = Some((m, m.key == "NotAction"));
            }
            "Resource" | "NotResource" => {
                if let Some((prev, _)) = resources {
                    return Err(cx.err(m.key_offset, format!("statement has both {:?} and {:?}", prev.key, m.key)));
                }
                resources = Some((m, m.key == "NotResource"));
            }
            "Condition" => condition = Some(&m.value),
            other => return Err(cx.err(m.key_offset, format!("unknown statement element {other:?}"))),
        }
    }
    let Some(effect) = effect else { return Err(cx.err(offset, "statement has no \"Effect\"")) };
    let Some((action_member, action_negated)) = actions else {
        return Err(cx.err(offset, "statement has no \"Action\" or \"NotAction\""));
    };
    let Some((resource_member, resource_negated)) = resources else {
        return Err(cx.err(offset, "statement has no \"Resource\" or \"NotResource\""));
    };
    let patterns = string_list(cx, &action_member.value, &action_member.key)?
        .into_iter()
        .map(|(s, _)| ActionPattern::new(s))
        .collect();
    let mut templates = Vec::new();
    for (s, at) in string_list(cx, &resource_member.value, &resource_member.key)? {
        templates.push(template(cx, s, at)?);
    }
    let conditions = match condition {
        Some(node) => parse_conditions(cx, node)?,
        None => Vec::new(),
    };
    Ok(Statement {
        sid,
        effect,
        actions: ActionSet { negated: action_negated, patterns },
        resources: ResourceSet { negated: resource_negated, templates },
        conditions,
    })
}

fn template(cx: &Ctx<'_>, s: &str, quote_offset: usize) -> Result<Template, PolicyError> {
    Template::parse(s, cx.variables)
        .map_err(|e| cx.err(json::source_offset_in_string(cx.text, quote_offset, e.index), e.message))
}

fn parse_conditions(cx: &Ctx<'_>, node: &Node) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(operators) = &node.value else {
        return Err(cx.err(node.offset, format!("\"Condition\" must be an object, found {}", node.value.type_name())));
    };
    let mut out = Vec::new();
    for op_member in operators {
        let Some(operator) = Operator::parse(&op_member.key) else {
            return Err(cx.err(op_member.key_offset, format!("unknown condition operator {:?}", op_member.key)));
        };
        let Value::Object(keys) = &op_member.value.value else {
            return Err(cx.err(
                op_member.value.offset,
                format!(
                    "condition operator {operator} must map to an object of keys, found {}",
                    op_member.value.value.type_name()
                ),
            ));
        };
        if keys.is_empty() {
            return Err(cx.err(op_member.value.offset, format!("condition operator {operator} has no keys")));
        }
        for key_member in keys {
            if key_member.key.is_empty() {
                return Err(cx.err(key_member.key_offset, "condition key must not be empty"));
            }
            let scalars: Vec<&Node> = match &key_member.value.value {
                Value::Array(items) => items.iter().collect(),
                _ => vec![&key_member.value],
            };
            let mut values = Vec::with_capacity(scalars.len());
            for v in scalars {
                let (raw, is_string) = match &v.value {
                    Value::String(s) => (s.clone(), true),
                    Value::Number(n) => (n.clone(), false),
                    Value::Bool(b) => (b.to_string(), false),
                    other => {
                        return Err(cx.err(
                            v.offset,
                            format!(
                                "condition values must be strings, numbers or booleans, found {}",
                                other.type_name()
                            ),
                        ))
                    }
                };
                let parsed = conditions::parse_value(&operator, &raw, cx.variables).map_err(|e| {
                    let at = match e.index {
                        Some(i) if is_string => json::source_offset_in_string(cx.text, v.offset, i),
                        _ => v.offset,
                    };
                    cx.err(at, e.message)
                })?;
                values.push(parsed);
            }
            out.push(Condition {
                operator,
                key: key_member.key.clone(),
                variable: Variable::from_name(&key_member.key),
                values,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> PolicyError {
        parse(text).unwrap_err()
    }

    /// Line/column of the first occurrence of `needle` in `text` (1-based, chars).
    fn pos_of(text: &str, needle: &str) -> (u32, u32) {
        json::line_col(text, text.find(needle).unwrap())
    }

    #[test]
    fn minimal_policy() {
        let doc = parse(r#"{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#).unwrap();
        assert_eq!(doc.version, PolicyVersion::V2008_10_17);
        assert_eq!(doc.statements.len(), 1);
        assert!(doc.statements[0].actions.matches("iot:Publish"));
    }

    #[test]
    fn effect_typo_points_at_value() {
        let text = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\n    \"Effect\": \"Alow\",\n    \"Action\": \"iot:Connect\",\n    \"Resource\": \"*\"\n  }]\n}";
        let e = err(text);
        assert_eq!((e.line, e.column), pos_of(text, "\"Alow\""));
        assert_eq!((e.line, e.column), (4, 15));
        assert!(e.to_string().starts_with("line 4, column 15: invalid Effect \"Alow\""));
    }

    #[test]
    fn syntax_error_position() {
        let text = "{\n  \"Statement\": [\n    {\"Effect\": \"Allow\" \"Action\": \"x\"}\n  ]\n}";
        let e = err(text);
        assert_eq!((e.line, e.column), (3, 24));
        assert!(e.message.starts_with("invalid JSON"));
        let e = err("{\"Statement\": [}");
        assert_eq!((e.line, e.column), (1, 16));
    }

    #[test]
    fn structural_errors() {
        assert!(err("[]").message.contains("must be a JSON object"));
        assert!(err("{}").message.contains("no \"Statement\""));
        assert!(err(r#"{"Statement":[]}"#).message.contains("must not be empty"));
        assert!(err(r#"{"Statement":"x"}"#).message.contains("object or an array"));
        assert!(err(r#"{"Statement":[1]}"#).message.contains("must be an object"));
        let text = r#"{"Version":"2012-10-18","Statement":[]}"#;
        assert_eq!(err(text).column, 12);
        let text = r#"{"Statement":{"Effect":"Allow","Action":"a","Resource":"*"},"Extra":1}"#;
        let e = err(text);
        assert_eq!((e.line, e.column), pos_of(text, "\"Extra\""));
        assert!(parse(r#"{"Id":"x","Statement":{"Effect":"Deny","Action":"a","Resource":"*"}}"#).is_ok());
    }

    #[test]
    fn statement_errors() {
        let base = |body: &str| format!(r#"{{"Statement":[{{{body}}}]}}"#);
        assert!(err(&base(r#""Action":"a","Resource":"*""#)).message.contains("no \"Effect\""));
        assert!(err(&base(r#""Effect":"Allow","Resource":"*""#)).message.contains("no \"Action\""));
        assert!(err(&base(r#""Effect":"Allow","Action":"a""#)).message.contains("no \"Resource\""));
        assert!(err(&base(r#""Effect":"allow","Action":"a","Resource":"*""#)).message.contains("invalid Effect"));
        let text = base(r#""Effect":"Allow","Action":"a","NotAction":"b","Resource":"*""#);
        let e = err(&text);
        assert_eq!((e.line, e.column), pos_of(&text, "\"NotAction\""));
        let text = base(r#""Effect":"Allow","Action":"a","Resource":"*","NotResource":"b""#);
        assert!(err(&text).message.contains("both"));
        let text = base(r#""Effect":"Allow","Action":"a","Resource":"*","Principal":"*""#);
        let e = err(&text);
        assert_eq!((e.line, e.column), pos_of(&text, "\"Principal\""));
        let text = base(r#""Effect":"Allow","Action":["a",3],"Resource":"*""#);
        let e = err(&text);
        assert_eq!((e.line, e.column), pos_of(&text, "3]"));
        assert!(err(&base(r#""Effect":"Allow","Action":[],"Resource":"*""#)).message.contains("empty"));
        assert!(err(&base(r#""Effect":"Allow","Action":"a","Resource":{}"#)).message.contains("string or an array"));
        assert!(err(&base(r#""Sid":1,"Effect":"Allow","Action":"a","Resource":"*""#)).message.contains("Sid"));
    }

    #[test]
    fn variable_errors_point_inside_string() {
        let text = "{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"a\",\n\"Resource\":\"topic/\\u0041/${iot:ClientId\"}}";
        let e = err(text);
        assert_eq!((e.line, e.column), pos_of(text, "${iot"));
        assert!(e.message.contains("unterminated"));
        // Under the default 2008-10-17 language the same text is literal and valid.
        let text = "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"a\",\"Resource\":\"topic/${iot:ClientId\"}}";
        assert!(parse(text).is_ok());
    }

    #[test]
    fn condition_errors() {
        let base = |cond: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"a","Resource":"*","Condition":{cond}}}}}"#
            )
        };
        let text = base(r#"{"StringEqualz":{"iot:ClientId":"a"}}"#);
        let e = err(&text);
        assert_eq!((e.line, e.column), pos_of(&text, "\"StringEqualz\""));
        assert!(e.message.contains("unknown condition operator"));
        assert!(err(&base(r#"[]"#)).message.contains("must be an object"));
        assert!(err(&base(r#"{"StringEquals":"a"}"#)).message.contains("object of keys"));
        assert!(err(&base(r#"{"StringEquals":{}}"#)).message.contains("no keys"));
        let text = base(r#"{"StringEquals":{"k":[{"x":1}]}}"#);
        assert_eq!(err(&text).column, pos_of(&text, "{\"x\"").1);
        let text = base(r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/99"}}"#);
        let e = err(&text);
        assert_eq!(e.column, pos_of(&text, "\"10.0").1);
        assert!(e.message.contains("CIDR"));
        let text = base(r#"{"NumericLessThan":{"k":true}}"#);
        assert_eq!(err(&text).column, pos_of(&text, "true").1);
        let text = base(r#"{"StringLike":{"k":"ab${x"}}"#);
        assert_eq!(err(&text).column, pos_of(&text, "${x").1);
        let ok = parse(&base(r#"{"NumericLessThan":{"k":5},"Bool":{"b":true},"StringEquals":{"n":[1,"x"]}}"#)).unwrap();
        assert_eq!(ok.statements[0].conditions.len(), 3);
    }

    #[test]
    fn size_limit_excludes_whitespace() {
        let pad = "a".repeat(MAX_POLICY_CHARS);
        let text = format!(r#"{{"Statement":{{"Effect":"Allow","Action":"{pad}","Resource":"*"}}}}"#);
        let e = err(&text);
        assert_eq!((e.line, e.column), (1, 1));
        assert_eq!(e.message, "policy document is longer than 2048 characters (whitespace excluded)");
        let body = r#"{"Statement":{"Effect":"Allow","Action":"a","Resource":"*"}}"#;
        let spaced = format!("{}{body}", " \n\t".repeat(5000));
        assert!(parse(&spaced).is_ok());
        let exact_pad = "a".repeat(MAX_POLICY_CHARS - body.len() + 1);
        let exact = body.replace("\"a\"", &format!("\"{exact_pad}\""));
        assert_eq!(exact.chars().count(), MAX_POLICY_CHARS);
        assert!(parse(&exact).is_ok());
    }

    #[test]
    fn duplicate_keys_rejected() {
        let text = r#"{"Statement":{"Effect":"Allow","Effect":"Deny","Action":"a","Resource":"*"}}"#;
        let e = err(text);
        assert_eq!(e.column, 32);
        assert!(e.message.contains("duplicate"));
    }
}
