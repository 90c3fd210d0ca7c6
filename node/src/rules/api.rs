//! Topic rules created through the AWS API (`CreateTopicRule`, `ReplaceTopicRule`, ...): the
//! stored record in AWS's `TopicRulePayload` shape, its translation into a checked
//! [`Rule`], and the commands the `meta` group applies to the set of them.
//!
//! A rule from the API is checked by the same code as a rule file: its payload becomes one
//! `CREATE RULE` definition. The SQL is compiled on its own first, so its errors point into
//! the SQL as the user wrote it (line:col), and nothing in it can reach the generated
//! rule text beyond the statement.

use std::collections::BTreeMap;

use ferrite_cluster::{Batch, StoreError, Table};
use ferrite_rules::{Rule, SqlVersion};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry::things::invalid;
use ferrite_aws::AwsError;

/// The SQL version AWS's API gives a rule that names none.
pub const API_DEFAULT_SQL_VERSION: &str = "2015-10-08";

/// A rule created through the API, as `GetTopicRule` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRule {
    /// `^[a-zA-Z0-9_]+$`, 1 to 128 characters.
    pub rule_name: String,
    /// The IoT SQL statement.
    pub sql: String,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seconds since the epoch when it was created.
    pub created_at: u64,
    /// AWS `Action` objects (`{"republish": {...}}`, `{"http": {...}}`), as given.
    pub actions: Vec<Value>,
    /// Disabled rules are kept and listed but never run.
    pub rule_disabled: bool,
    /// `2015-10-08`, `2016-03-23` or `beta`.
    pub aws_iot_sql_version: String,
    /// The action that runs when another fails for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_action: Option<Value>,
}

/// A change to the API-created rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// `CreateTopicRule` (`replace: false`) or `ReplaceTopicRule` (`replace: true`, which keeps
    /// the creation time).
    Put { rule: TopicRule, replace: bool },
    /// `DeleteTopicRule`.
    Delete { name: String },
    /// `EnableTopicRule` / `DisableTopicRule`.
    SetEnabled { name: String, enabled: bool },
}

fn key(name: &str) -> Vec<u8> {
    let mut k = b"rule\0".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn error(status: u16, error_type: &'static str, message: impl Into<String>) -> AwsError {
    AwsError { status, error_type, message: message.into() }
}

/// AWS's answer for a rule that does not exist (the model lists no ResourceNotFoundException
/// for topic rules; AWS answers UnauthorizedException).
pub fn no_such_rule(name: &str) -> AwsError {
    error(401, "UnauthorizedException", format!("Rule {name} does not exist"))
}

/// Is `name` a valid rule name (`^[a-zA-Z0-9_]+$`, at most 128 characters).
pub fn is_rule_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The API-created rules: the state the `meta` group applies [`Command`]s to.
#[derive(Debug, Default)]
pub struct TopicRules {
    rules: RwLock<BTreeMap<String, TopicRule>>,
}

impl TopicRules {
    /// Loads the stored rules.
    pub fn load(store: &impl ferrite_cluster::ReadRows) -> Result<TopicRules, StoreError> {
        let mut rules = BTreeMap::new();
        for (_, v) in store.scan_prefix(Table::Registry, b"rule\0")? {
            if let Ok(r) = serde_json::from_slice::<TopicRule>(&v) {
                rules.insert(r.rule_name.clone(), r);
            }
        }
        Ok(TopicRules { rules: RwLock::new(rules) })
    }

    /// Takes over `other`'s rules (a restored snapshot).
    pub fn replace(&self, other: TopicRules) {
        *self.rules.write() = other.rules.into_inner();
    }

    /// Applies one committed command; the record goes into `writes`. The rule was checked by
    /// its proposer ([`check`]); here only existence decides.
    pub fn apply(&self, command: Command, writes: &mut Batch) -> Result<(), AwsError> {
        let mut rules = self.rules.write();
        match command {
            Command::Put { mut rule, replace } => {
                match (rules.get(&rule.rule_name), replace) {
                    (Some(_), false) => {
                        return Err(error(
                            409,
                            "ResourceAlreadyExistsException",
                            format!("Rule {} already exists", rule.rule_name),
                        ))
                    }
                    (None, true) => return Err(no_such_rule(&rule.rule_name)),
                    (Some(old), true) => rule.created_at = old.created_at,
                    (None, false) => {}
                }
                writes.put(Table::Registry, key(&rule.rule_name), serde_json::to_vec(&rule).unwrap_or_default());
                rules.insert(rule.rule_name.clone(), rule);
            }
            Command::Delete { name } => {
                rules.remove(&name).ok_or_else(|| no_such_rule(&name))?;
                writes.delete(Table::Registry, key(&name));
            }
            Command::SetEnabled { name, enabled } => {
                let rule = rules.get_mut(&name).ok_or_else(|| no_such_rule(&name))?;
                rule.rule_disabled = !enabled;
                writes.put(Table::Registry, key(&name), serde_json::to_vec(&*rule).unwrap_or_default());
            }
        }
        Ok(())
    }

    /// One rule.
    pub fn get(&self, name: &str) -> Option<TopicRule> {
        self.rules.read().get(name).cloned()
    }

    /// Every rule, in name order.
    pub fn all(&self) -> Vec<TopicRule> {
        self.rules.read().values().cloned().collect()
    }
}

/// `'text'` in rule-file syntax.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn str_member<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    obj.get(name).and_then(Value::as_str)
}

/// `[{"key": k, "value": v}]` as a rule-file map `{'k': 'v'}`.
fn pairs_to_map(list: Option<&Value>) -> Result<Option<String>, AwsError> {
    let Some(list) = list else { return Ok(None) };
    let items = list.as_array().ok_or_else(|| invalid("headers must be a list of {key, value}"))?;
    let mut out = Vec::new();
    for item in items {
        let (Some(k), Some(v)) = (str_member(item, "key"), str_member(item, "value")) else {
            return Err(invalid("every header needs a key and a value"));
        };
        out.push(format!("{}: {}", quoted(k), quoted(v)));
    }
    Ok(Some(format!("{{{}}}", out.join(", "))))
}

/// One AWS `Action` object as a rule-file action.
fn action_text(action: &Value) -> Result<String, AwsError> {
    let obj = action
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| invalid("Each action must name exactly one action type, such as {\"republish\": {...}}"))?;
    let (kind, spec) = obj.iter().next().expect("one member");
    let mut params: Vec<String> = Vec::new();
    match kind.as_str() {
        "republish" => {
            let topic = str_member(spec, "topic").ok_or_else(|| invalid("republish needs a topic"))?;
            params.push(format!("topic = {}", quoted(topic)));
            if let Some(q) = spec.get("qos") {
                let q = q.as_u64().filter(|q| *q <= 1).ok_or_else(|| invalid("republish qos must be 0 or 1"))?;
                params.push(format!("qos = {q}"));
            }
            if let Some(h) = spec.get("headers") {
                for name in ["payloadFormatIndicator", "contentType", "responseTopic", "correlationData"] {
                    if let Some(v) = str_member(h, name) {
                        params.push(format!("{name} = {}", quoted(v)));
                    }
                }
                if let Some(v) = str_member(h, "messageExpiry") {
                    let secs: u32 = v
                        .parse()
                        .map_err(|_| invalid(format!("messageExpiry {v:?} must be a whole number of seconds")))?;
                    params.push(format!("messageExpiry = {secs}"));
                }
                if let Some(map) = pairs_to_map(h.get("userProperties"))? {
                    params.push(format!("userProperties = {map}"));
                }
            }
        }
        "http" => {
            let url = str_member(spec, "url").ok_or_else(|| invalid("http needs a url"))?;
            params.push(format!("url = {}", quoted(url)));
            if let Some(map) = pairs_to_map(spec.get("headers"))? {
                params.push(format!("headers = {map}"));
            }
        }
        other => {
            return Err(invalid(format!(
                "Ferrite does not run the {other} action: rules created through the API can use republish \
                 and http (rule files can also use file and log); use http to reach your own service"
            )))
        }
    }
    Ok(format!("{kind}({})", params.join(", ")))
}

/// Checks a rule payload the way `CreateTopicRule` does and returns the rule to run:
/// SqlParseException (with the line:col in the SQL) for a statement that does not compile,
/// InvalidRequestException for an unknown SQL version or an action Ferrite cannot run.
pub fn check(rule: &TopicRule) -> Result<Rule, AwsError> {
    if !is_rule_name(&rule.rule_name) {
        return Err(invalid(format!("Invalid rule name {:?}: use 1 to 128 of a-z, A-Z, 0-9 and _", rule.rule_name)));
    }
    let version = SqlVersion::parse(&rule.aws_iot_sql_version).ok_or_else(|| {
        invalid(format!("Unknown awsIotSqlVersion {:?}: use 2015-10-08, 2016-03-23 or beta", rule.aws_iot_sql_version))
    })?;
    if let Err(diagnostics) = ferrite_rules::compile(&rule.sql, version) {
        let d = &diagnostics[0];
        let (line, col) = d.line_col(&rule.sql);
        let help = d.help.as_deref().map(|h| format!(" ({h})")).unwrap_or_default();
        return Err(error(400, "SqlParseException", format!("Line {line}:{col}: {}{help}", d.message)));
    }
    let mut actions = rule.actions.iter().map(action_text).collect::<Result<Vec<_>, _>>()?;
    let no_actions = actions.is_empty();
    if no_actions {
        // The rule-file grammar needs one action; a rule with none runs nothing.
        actions.push("log(level = 'trace')".into());
    }
    let mut text = format!(
        "CREATE RULE {} SQL VERSION '{}' {}",
        rule.rule_name,
        version.as_str(),
        if rule.rule_disabled { "DISABLED" } else { "ENABLED" }
    );
    if let Some(d) = &rule.description {
        text.push_str(&format!(" DESCRIPTION {}", quoted(d)));
    }
    text.push_str(&format!(" AS\n{}\nDO {}", rule.sql, actions.join(",\n  ")));
    if let Some(e) = &rule.error_action {
        text.push_str(&format!("\nON ERROR {}", action_text(e)?));
    }
    text.push_str(";\n");
    let origin = format!("api:{}", rule.rule_name);
    let mut loaded = ferrite_rules::load_rule_file(&origin, &text).map_err(|e| {
        let first = e.diagnostics.first().map_or_else(String::new, |d| d.message.clone());
        invalid(format!("Invalid action: {first}"))
    })?;
    let mut checked = loaded.pop().ok_or_else(|| invalid("The rule did not load"))?;
    checked.origin = origin;
    if no_actions {
        checked.actions.clear();
    }
    Ok(checked)
}

/// Runs the API-created rules on `engine` in place of the ones it ran. A stored rule that no
/// longer checks (it cannot normally happen: rules are checked before they are proposed) is
/// logged and left out.
pub fn install(engine: &super::RuleEngine, stored: &TopicRules) {
    let rules = stored
        .all()
        .iter()
        .filter_map(|r| {
            check(r)
                .map_err(
                    |e| tracing::error!(rule = %r.rule_name, error = %e.message, "stored topic rule does not check"),
                )
                .ok()
        })
        .collect();
    engine.replace_api_rules(rules);
}

/// The AWS `Action` objects for a rule-file rule's actions, where AWS has a shape for them
/// (republish, http); file and log actions have none and are left out.
pub fn aws_actions(rule: &Rule) -> Vec<Value> {
    use ferrite_rules::{ActionKind, Param};
    let template = |a: &ferrite_rules::Action, name: &str| match a.param(name) {
        Some(Param::Template(t)) => Some(t.source.clone()),
        _ => None,
    };
    let pairs = |a: &ferrite_rules::Action, name: &str| match a.param(name) {
        Some(Param::Map(m)) => {
            Some(m.iter().map(|(k, t)| serde_json::json!({ "key": k, "value": t.source })).collect::<Vec<_>>())
        }
        _ => None,
    };
    rule.actions
        .iter()
        .filter_map(|a| match a.kind {
            ActionKind::Republish => {
                let mut spec = serde_json::json!({ "topic": template(a, "topic")? });
                if let Some(Param::Int(q)) = a.param("qos") {
                    spec["qos"] = serde_json::json!(q);
                }
                Some(serde_json::json!({ "republish": spec }))
            }
            ActionKind::Http => {
                let mut spec = serde_json::json!({ "url": template(a, "url")? });
                if let Some(h) = pairs(a, "headers") {
                    spec["headers"] = Value::Array(h);
                }
                Some(serde_json::json!({ "http": spec }))
            }
            ActionKind::File | ActionKind::Log => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(sql: &str, actions: Vec<Value>) -> TopicRule {
        TopicRule {
            rule_name: "r1".into(),
            sql: sql.into(),
            description: Some("it's a test".into()),
            created_at: 1,
            actions,
            rule_disabled: false,
            aws_iot_sql_version: API_DEFAULT_SQL_VERSION.into(),
            error_action: None,
        }
    }

    #[test]
    fn a_republish_rule_checks_and_keeps_its_templates() {
        let r = rule(
            "SELECT temp FROM 'sensors/+' WHERE temp > 50",
            vec![json!({"republish": {"roleArn": "arn:aws:iam::1:role/x", "topic": "alerts/${topic(2)}", "qos": 1,
                "headers": {"contentType": "application/json", "userProperties": [{"key": "k", "value": "it's"}]}}})],
        );
        let checked = check(&r).unwrap();
        assert_eq!(checked.name, "r1");
        assert_eq!(checked.description.as_deref(), Some("it's a test"));
        assert_eq!(checked.statement.topic_filter.as_deref(), Some("sensors/+"));
        assert_eq!(aws_actions(&checked), vec![json!({"republish": {"topic": "alerts/${topic(2)}", "qos": 1}})]);
    }

    #[test]
    fn sql_errors_point_into_the_sql() {
        let e = check(&rule("SELECT temp\nFROM 'a' WHERE temp >", vec![])).unwrap_err();
        assert_eq!(e.error_type, "SqlParseException");
        assert!(e.message.starts_with("Line 2:"), "{}", e.message);
    }

    #[test]
    fn sql_cannot_smuggle_actions_into_the_generated_rule() {
        let e = check(&rule("SELECT * FROM 'a' DO log()", vec![])).unwrap_err();
        assert_eq!(e.error_type, "SqlParseException");
    }

    #[test]
    fn aws_only_actions_and_bad_names_are_refused() {
        let e = check(&rule("SELECT * FROM 'a'", vec![json!({"lambda": {"functionArn": "x"}})])).unwrap_err();
        assert_eq!((e.status, e.error_type), (400, "InvalidRequestException"));
        assert!(e.message.contains("lambda"));
        let mut bad = rule("SELECT * FROM 'a'", vec![]);
        bad.rule_name = "has-dash".into();
        assert_eq!(check(&bad).unwrap_err().error_type, "InvalidRequestException");
    }

    #[test]
    fn a_rule_without_actions_runs_none() {
        assert!(check(&rule("SELECT * FROM 'a'", vec![])).unwrap().actions.is_empty());
    }

    #[test]
    fn commands_follow_aws_existence_rules() {
        let rules = TopicRules::default();
        let mut w = Batch::new();
        let r = rule("SELECT * FROM 'a'", vec![]);
        rules.apply(Command::Put { rule: r.clone(), replace: false }, &mut w).unwrap();
        let again = rules.apply(Command::Put { rule: r.clone(), replace: false }, &mut w).unwrap_err();
        assert_eq!(again.error_type, "ResourceAlreadyExistsException");
        let mut newer = r.clone();
        newer.created_at = 99;
        newer.sql = "SELECT 1 FROM 'b'".into();
        rules.apply(Command::Put { rule: newer, replace: true }, &mut w).unwrap();
        assert_eq!(rules.get("r1").unwrap().created_at, 1, "replace keeps the creation time");
        rules.apply(Command::SetEnabled { name: "r1".into(), enabled: false }, &mut w).unwrap();
        assert!(rules.get("r1").unwrap().rule_disabled);
        rules.apply(Command::Delete { name: "r1".into() }, &mut w).unwrap();
        let gone = rules.apply(Command::Delete { name: "r1".into() }, &mut w).unwrap_err();
        assert_eq!((gone.status, gone.error_type), (401, "UnauthorizedException"));
    }
}
