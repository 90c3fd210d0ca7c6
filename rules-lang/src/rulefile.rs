//! Rule files: `CREATE RULE name [options] AS SELECT ... DO action(...), ... [ON ERROR action(...)];`
//! checked into [`Rule`]s. A file (or a set of files) with any error yields no rules at all.

use std::collections::HashMap;

use crate::check::check_statement;
use crate::diag::{render_all, Diagnostic, Span};
use crate::ir::Statement;
use crate::syntax::ast::{ActionDef, ParamValue, RuleDef};
use crate::syntax::parse_rule_file;
use crate::template::{parse_template, SourceMap, Template};
use crate::value::SqlVersion;

/// The SQL version a rule gets when it does not say (AWS's API defaults to 2015-10-08; rule files
/// default to the recommended version).
pub const DEFAULT_SQL_VERSION: SqlVersion = SqlVersion::V2016_03_23;

/// Longest rule name AWS allows.
pub const MAX_RULE_NAME: usize = 128;

/// The actions Ferrite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// Publish the output to an MQTT topic.
    Republish,
    /// POST the output to a URL.
    Http,
    /// Append the output as NDJSON to a file.
    File,
    /// Write the output to the node's log.
    Log,
}

impl ActionKind {
    /// The name used in rule files.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Republish => "republish",
            ActionKind::Http => "http",
            ActionKind::File => "file",
            ActionKind::Log => "log",
        }
    }
}

/// A checked action parameter.
#[derive(Debug, Clone)]
pub enum Param {
    /// A string, possibly with `${...}` templates.
    Template(Template),
    /// A whole number.
    Int(i64),
    /// true / false.
    Bool(bool),
    /// Named templates (headers, user properties).
    Map(Vec<(String, Template)>),
}

/// One checked action.
#[derive(Debug, Clone)]
pub struct Action {
    /// What it does.
    pub kind: ActionKind,
    /// Its parameters, by name, in the order written.
    pub params: Vec<(String, Param)>,
}

impl Action {
    /// Adds the top-level payload members its templates read; `None` when one reads the whole
    /// document.
    pub fn top_level_keys(&self, out: &mut Vec<String>) -> Option<()> {
        let templates = self.params.iter().flat_map(|(_, p)| match p {
            Param::Template(t) => vec![t],
            Param::Map(m) => m.iter().map(|(_, t)| t).collect(),
            Param::Int(_) | Param::Bool(_) => vec![],
        });
        for t in templates {
            for part in &t.parts {
                if let crate::template::Part::Expr(e) = part {
                    e.top_level_keys(out)?;
                }
            }
        }
        Some(())
    }

    /// A parameter by name.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }
}

/// A checked rule, ready to run.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Disabled rules are loaded and listed but never run.
    pub enabled: bool,
    /// The SQL statement as written.
    pub sql: String,
    /// The checked statement.
    pub statement: Statement,
    /// What to do with the output.
    pub actions: Vec<Action>,
    /// What to run when an action fails for good.
    pub error_action: Option<Action>,
    /// The file it came from and its line, for messages.
    pub origin: String,
}

impl Rule {
    /// The top-level payload members the rule reads, in its statement and in its actions'
    /// templates; `None` when it needs the whole document.
    pub fn projection(&self) -> Option<crate::projection::Projection> {
        let statement = self.statement.projection()?;
        let mut keys: Vec<String> = statement.keys().map(str::to_string).collect();
        for a in self.actions.iter().chain(&self.error_action) {
            a.top_level_keys(&mut keys)?;
        }
        Some(crate::projection::Projection::new(keys))
    }
}

/// Errors of one file, renderable like rustc's.
#[derive(Debug, Clone)]
pub struct FileErrors {
    /// The file name as given.
    pub file: String,
    /// Its text.
    pub source: String,
    /// What is wrong with it.
    pub diagnostics: Vec<Diagnostic>,
}

impl FileErrors {
    /// All diagnostics rendered with file:line:col, the line and a caret.
    pub fn render(&self) -> String {
        render_all(&self.diagnostics, &self.file, &self.source)
    }
}

enum Kind {
    Template,
    Int(i64, i64),
    Bool,
    Choice(&'static [&'static str]),
    TemplateMap,
}

struct ParamSpec {
    name: &'static str,
    kind: Kind,
    required: bool,
}

const fn p(name: &'static str, kind: Kind, required: bool) -> ParamSpec {
    ParamSpec { name, kind, required }
}

const REPUBLISH_PARAMS: &[ParamSpec] = &[
    p("topic", Kind::Template, true),
    p("qos", Kind::Int(0, 2), false),
    p("retain", Kind::Bool, false),
    p("contentType", Kind::Template, false),
    p("payloadFormatIndicator", Kind::Choice(&["UTF8_DATA", "UNSPECIFIED_BYTES"]), false),
    p("responseTopic", Kind::Template, false),
    p("correlationData", Kind::Template, false),
    p("messageExpiry", Kind::Int(0, u32::MAX as i64), false),
    p("userProperties", Kind::TemplateMap, false),
    p("queueSize", Kind::Int(1, 1_000_000), false),
    p("maxRetries", Kind::Int(0, 100), false),
];

const HTTP_PARAMS: &[ParamSpec] = &[
    p("url", Kind::Template, true),
    p("headers", Kind::TemplateMap, false),
    p("timeoutMs", Kind::Int(1, 600_000), false),
    p("queueSize", Kind::Int(1, 1_000_000), false),
    p("maxRetries", Kind::Int(0, 100), false),
];

const FILE_PARAMS: &[ParamSpec] = &[
    p("path", Kind::Template, true),
    p("maxBytes", Kind::Int(1024, i64::MAX), false),
    p("maxFiles", Kind::Int(1, 1000), false),
    p("queueSize", Kind::Int(1, 1_000_000), false),
    p("maxRetries", Kind::Int(0, 100), false),
];

const LOG_PARAMS: &[ParamSpec] = &[
    p("level", Kind::Choice(&["trace", "debug", "info", "warn", "error"]), false),
    p("message", Kind::Template, false),
];

fn schema(kind: ActionKind) -> &'static [ParamSpec] {
    match kind {
        ActionKind::Republish => REPUBLISH_PARAMS,
        ActionKind::Http => HTTP_PARAMS,
        ActionKind::File => FILE_PARAMS,
        ActionKind::Log => LOG_PARAMS,
    }
}

/// AWS actions that need an AWS service, with what to use instead.
const AWS_ONLY_ACTIONS: &[&str] = &[
    "lambda",
    "dynamoDB",
    "dynamoDBv2",
    "s3",
    "sqs",
    "sns",
    "kinesis",
    "firehose",
    "kafka",
    "timestream",
    "cloudwatchMetric",
    "cloudwatchAlarm",
    "cloudwatchLogs",
    "iotEvents",
    "iotAnalytics",
    "iotSiteWise",
    "stepFunctions",
    "elasticsearch",
    "openSearch",
    "salesforce",
    "location",
];

/// Checks one rule file. Every error in the file is reported; none of its rules is returned
/// unless there are none.
pub fn load_rule_file(file: &str, source: &str) -> Result<Vec<Rule>, FileErrors> {
    let fail = |diagnostics: Vec<Diagnostic>| FileErrors { file: file.into(), source: source.into(), diagnostics };
    let defs = parse_rule_file(source).map_err(|d| fail(vec![d]))?;
    let mut rules = vec![];
    let mut diags = vec![];
    let mut seen: HashMap<String, Span> = HashMap::new();
    for def in &defs {
        if let Some(first) = seen.get(&def.name) {
            let (line, _) = crate::diag::line_col(source, first.start);
            diags.push(
                Diagnostic::new(def.name_span, format!("rule `{}` is defined twice", def.name))
                    .with_help(format!("the first definition is on line {line}; rule names must be unique")),
            );
        }
        seen.insert(def.name.clone(), def.name_span);
        match check_rule(file, source, def) {
            Ok(rule) => rules.push(rule),
            Err(mut d) => diags.append(&mut d),
        }
    }
    if diags.is_empty() {
        Ok(rules)
    } else {
        diags.sort_by_key(|d| d.span.start);
        Err(fail(diags))
    }
}

/// Checks several files as one set: each must be valid, and rule names must be unique across
/// them. Either every rule loads or none does.
pub fn load_rule_files(files: &[(String, String)]) -> Result<Vec<Rule>, Vec<FileErrors>> {
    let mut rules: Vec<Rule> = vec![];
    let mut errors = vec![];
    let mut owner: HashMap<String, String> = HashMap::new();
    for (file, source) in files {
        match load_rule_file(file, source) {
            Ok(loaded) => {
                let mut dups = vec![];
                for rule in loaded {
                    if let Some(other) = owner.get(&rule.name) {
                        let span = find_rule_name(source, &rule.name);
                        dups.push(
                            Diagnostic::new(span, format!("rule `{}` is also defined in {other}", rule.name))
                                .with_help("rule names must be unique across all loaded files"),
                        );
                    } else {
                        owner.insert(rule.name.clone(), rule.origin.clone());
                        rules.push(rule);
                    }
                }
                if !dups.is_empty() {
                    errors.push(FileErrors { file: file.clone(), source: source.clone(), diagnostics: dups });
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

fn find_rule_name(source: &str, name: &str) -> Span {
    match parse_rule_file(source) {
        Ok(defs) => defs.iter().find(|d| d.name == name).map_or(Span::default(), |d| d.name_span),
        Err(_) => Span::default(),
    }
}

fn check_rule(file: &str, source: &str, def: &RuleDef) -> Result<Rule, Vec<Diagnostic>> {
    let mut diags = vec![];
    if def.name.len() > MAX_RULE_NAME {
        diags.push(Diagnostic::new(def.name_span, format!("rule name is longer than {MAX_RULE_NAME} characters")));
    }
    let version = match &def.sql_version {
        None => DEFAULT_SQL_VERSION,
        Some((v, span)) => SqlVersion::parse(v).unwrap_or_else(|| {
            diags.push(
                Diagnostic::new(*span, format!("unknown SQL version '{v}'"))
                    .with_help("use '2016-03-23' (recommended), '2015-10-08' or 'beta'"),
            );
            DEFAULT_SQL_VERSION
        }),
    };
    let statement = match check_statement(&def.select, version) {
        Ok(s) => Some(s),
        Err(mut d) => {
            diags.append(&mut d);
            None
        }
    };
    let mut actions = vec![];
    if let Some(stmt) = &statement {
        for a in &def.actions {
            match check_action(source, a, stmt) {
                Ok(action) => actions.push(action),
                Err(mut d) => diags.append(&mut d),
            }
        }
    }
    let error_action = match (&def.error_action, &statement) {
        (Some(a), Some(stmt)) => match check_action(source, a, stmt) {
            Ok(action) => Some(action),
            Err(mut d) => {
                diags.append(&mut d);
                None
            }
        },
        _ => None,
    };
    match statement {
        Some(statement) if diags.is_empty() => {
            let (line, _) = crate::diag::line_col(source, def.span.start);
            Ok(Rule {
                name: def.name.clone(),
                description: def.description.clone(),
                enabled: def.enabled,
                sql: source[def.select.span.start..def.select.span.end].trim_end().to_string(),
                statement,
                actions,
                error_action,
                origin: format!("{file}:{line}"),
            })
        }
        _ => Err(diags),
    }
}

fn check_action(source: &str, def: &ActionDef, stmt: &Statement) -> Result<Action, Vec<Diagnostic>> {
    let kind = match def.kind.as_str() {
        "republish" => ActionKind::Republish,
        "http" => ActionKind::Http,
        "file" => ActionKind::File,
        "log" => ActionKind::Log,
        other => {
            let help = if AWS_ONLY_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(other)) {
                format!("the `{other}` action needs an AWS service; Ferrite runs republish, http, file and log (use http to reach your own service)")
            } else {
                "Ferrite runs the actions republish, http, file and log".to_string()
            };
            return Err(vec![Diagnostic::new(def.kind_span, format!("unknown action `{other}`")).with_help(help)]);
        }
    };
    let spec = schema(kind);
    let mut diags = vec![];
    let mut params = vec![];
    for param in &def.params {
        let Some(s) = spec.iter().find(|s| s.name == param.name) else {
            let known: Vec<&str> = spec.iter().map(|s| s.name).collect();
            diags.push(
                Diagnostic::new(param.name_span, format!("`{}` has no parameter `{}`", kind.name(), param.name))
                    .with_help(format!("its parameters are: {}", known.join(", "))),
            );
            continue;
        };
        if params.iter().any(|(n, _): &(String, Param)| *n == param.name) {
            diags.push(Diagnostic::new(param.name_span, format!("parameter `{}` is given twice", param.name)));
            continue;
        }
        match check_param(source, s, &param.value, stmt) {
            Ok(v) => params.push((param.name.clone(), v)),
            Err(mut d) => diags.append(&mut d),
        }
    }
    for s in spec.iter().filter(|s| s.required) {
        if !def.params.iter().any(|p| p.name == s.name) {
            diags.push(
                Diagnostic::new(def.kind_span, format!("`{}` needs the parameter `{}`", kind.name(), s.name))
                    .with_help(format!("add `{} = '...'`", s.name)),
            );
        }
    }
    if diags.is_empty() {
        Ok(Action { kind, params })
    } else {
        Err(diags)
    }
}

fn template(source: &str, value: &ParamValue, stmt: &Statement) -> Result<Template, Vec<Diagnostic>> {
    match value {
        ParamValue::Str { text, raw_start, quote, .. } => {
            parse_template(text, SourceMap { source, raw_start: *raw_start, quote: *quote }, stmt)
        }
        other => Err(vec![Diagnostic::new(other.span(), "expected a string")]),
    }
}

fn check_param(source: &str, spec: &ParamSpec, value: &ParamValue, stmt: &Statement) -> Result<Param, Vec<Diagnostic>> {
    match (&spec.kind, value) {
        (Kind::Template, _) => template(source, value, stmt).map(Param::Template),
        (Kind::Int(min, max), ParamValue::Number(text, span)) => match text.parse::<i64>() {
            Ok(n) if (*min..=*max).contains(&n) => Ok(Param::Int(n)),
            _ => {
                Err(vec![Diagnostic::new(*span, format!("`{}` must be a whole number from {min} to {max}", spec.name))])
            }
        },
        (Kind::Bool, ParamValue::Bool(b, _)) => Ok(Param::Bool(*b)),
        (Kind::Choice(choices), ParamValue::Str { text, span, .. }) => {
            if choices.contains(&text.as_str()) {
                Ok(Param::Template(Template {
                    source: text.clone(),
                    parts: vec![crate::template::Part::Text(text.clone())],
                }))
            } else {
                Err(vec![Diagnostic::new(*span, format!("`{}` must be one of: {}", spec.name, choices.join(", ")))])
            }
        }
        (Kind::TemplateMap, ParamValue::Map(entries, _)) => {
            let mut out = vec![];
            let mut diags = vec![];
            for (k, _, v) in entries {
                match template(source, v, stmt) {
                    Ok(t) => out.push((k.clone(), t)),
                    Err(mut d) => diags.append(&mut d),
                }
            }
            if diags.is_empty() {
                Ok(Param::Map(out))
            } else {
                Err(diags)
            }
        }
        (kind, other) => {
            let expected = match kind {
                Kind::Template | Kind::Choice(_) => "a string",
                Kind::Int(..) => "a whole number",
                Kind::Bool => "true or false",
                Kind::TemplateMap => "a map such as {'name': 'value'}",
            };
            Err(vec![Diagnostic::new(other.span(), format!("`{}` must be {expected}", spec.name))])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "CREATE RULE hot\n  DESCRIPTION 'too hot'\nAS SELECT temperature FROM 'd/+/t' WHERE temperature > 30\nDO republish(topic = 'alerts/${topic(2)}', qos = 1),\n   http(url = 'http://127.0.0.1:9/hook', headers = {'x-device': '${topic(2)}'})\nON ERROR log(level = 'warn');\n";

    #[test]
    fn loads_rules_with_actions_and_templates() {
        let rules = load_rule_file("a.sql", GOOD).unwrap();
        assert_eq!(rules[0].name, "hot");
        assert_eq!(rules[0].actions.len(), 2);
        assert_eq!(rules[0].origin, "a.sql:1");
        assert!(matches!(rules[0].actions[0].param("qos"), Some(Param::Int(1))));
    }

    #[test]
    fn a_file_with_one_bad_rule_loads_nothing() {
        let src = format!("{GOOD}CREATE RULE bad AS SELECT lenght(x) FROM 't' DO log();\n");
        let err = load_rule_file("a.sql", &src).unwrap_err();
        assert_eq!(err.diagnostics.len(), 1);
        assert!(err.render().contains("a.sql:7:"), "{}", err.render());
    }

    #[test]
    fn template_errors_point_inside_the_string() {
        let src = "CREATE RULE r AS SELECT * FROM 't' DO republish(topic = 'x/${topc()}');";
        let err = load_rule_file("r.sql", src).unwrap_err();
        let d = &err.diagnostics[0];
        assert_eq!(&src[d.span.start..d.span.end], "topc");
    }

    #[test]
    fn unknown_actions_and_parameters_are_named() {
        let src = "CREATE RULE r AS SELECT * FROM 't' DO s3(bucketName = 'b'), republish(topc = 'x');";
        let err = load_rule_file("r.sql", src).unwrap_err();
        let messages: Vec<_> = err.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            ["unknown action `s3`", "`republish` needs the parameter `topic`", "`republish` has no parameter `topc`"]
        );
    }

    #[test]
    fn duplicate_names_across_files_are_refused() {
        let a = ("a.sql".to_string(), "CREATE RULE r AS SELECT * FROM 't' DO log();".to_string());
        let b = ("b.sql".to_string(), "CREATE RULE r AS SELECT * FROM 'u' DO log();".to_string());
        let errs = load_rule_files(&[a, b]).unwrap_err();
        assert!(errs[0].diagnostics[0].message.contains("also defined in a.sql:1"));
    }
}
