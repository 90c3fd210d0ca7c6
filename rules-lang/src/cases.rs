//! Runs case files in the format of the shared IoT SQL corpus (`iot-sql/cases.json`): each case
//! is a statement, a message and the expected output. Used by `ferrite rules test` and the tests.

use crate::context::{MessageContext, MqttProperties, NoHost, Payload, Protocol, DEFAULT_ACCOUNT_ID};
use crate::interp::{evaluate, EvalError, Output};
use crate::ir::Statement;
use crate::jit::JitModule;
use crate::template::{parse_template, SourceMap};
use crate::value::{parse_json, sql_eq, SqlVersion, Value};
use crate::{compile, topic_matches};

/// How one case went.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case id.
    pub id: String,
    /// `Ok(note)` when it passed (the note says how, for instance "expected_alt"), `Err(why)`
    /// when it failed.
    pub outcome: Result<Option<String>, String>,
}

/// Which engine evaluates the cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// The reference interpreter.
    Interp,
    /// The Cranelift JIT.
    Jit,
    /// Both; any disagreement between them (value, Undefined, error) fails the case.
    #[default]
    Both,
}

impl Engine {
    /// Parses `interp`, `jit` or `both`.
    pub fn parse(text: &str) -> Option<Engine> {
        match text {
            "interp" => Some(Engine::Interp),
            "jit" => Some(Engine::Jit),
            "both" => Some(Engine::Both),
            _ => None,
        }
    }
}

/// Reads a case file and runs every case in it on the interpreter.
pub fn run_case_file(text: &str) -> Result<Vec<CaseResult>, String> {
    run_case_file_with(text, Engine::Interp)
}

/// Reads a case file and runs every case in it on the given engine(s).
pub fn run_case_file_with(text: &str, engine: Engine) -> Result<Vec<CaseResult>, String> {
    let doc = parse_json(text.as_bytes()).map_err(|e| format!("the case file is not JSON: {e}"))?;
    let Value::Array(cases) = doc else { return Err("the case file must hold a JSON array of cases".into()) };
    Ok(cases.iter().enumerate().map(|(i, c)| run_case(i, c, engine)).collect())
}

/// An evaluation result in a form two engines can be compared by: the exact output bytes (JSON
/// text or raw), or the error message.
pub fn comparable(
    result: &Result<Option<Output>, EvalError>,
    version: SqlVersion,
) -> Result<Option<(bool, Vec<u8>)>, String> {
    match result {
        Ok(None) => Ok(None),
        Ok(Some(o @ Output::Raw(_))) => Ok(Some((true, o.to_bytes(version)))),
        Ok(Some(o)) => Ok(Some((false, o.to_bytes(version)))),
        Err(e) => Err(e.message.clone()),
    }
}

fn evaluate_on(
    engine: Engine,
    stmt: &Statement,
    ctx: &MessageContext<'_>,
    nondeterministic: bool,
) -> Result<Option<Output>, String> {
    let interp = || evaluate(stmt, ctx, &NoHost);
    let jit = || JitModule::compile(std::iter::once(stmt)).evaluate(0, ctx, &NoHost);
    let result = match engine {
        Engine::Interp => interp(),
        Engine::Jit => jit(),
        Engine::Both => {
            let (a, b) = (interp(), jit());
            if !nondeterministic {
                let (ca, cb) = (comparable(&a, stmt.version), comparable(&b, stmt.version));
                if ca != cb {
                    return Err(format!(
                        "the engines disagree: interp gave {}, jit gave {}",
                        describe_result(&a, stmt.version),
                        describe_result(&b, stmt.version)
                    ));
                }
            }
            b
        }
    };
    let output = result.map_err(|e| format!("evaluation failed: {e}"))?;
    // Directly rendered JSON is checked as the value it denotes.
    Ok(output.map(|o| match o {
        Output::Text(_) => Output::Json(o.to_value()),
        other => other,
    }))
}

fn describe_result(r: &Result<Option<Output>, EvalError>, version: SqlVersion) -> String {
    match r {
        Ok(o) => describe(o, version),
        Err(e) => format!("error {:?}", e.message),
    }
}

fn field<'v>(case: &'v Value, name: &str) -> Option<&'v Value> {
    match case {
        Value::Object(o) => o.get(name),
        _ => None,
    }
}

fn str_field<'v>(case: &'v Value, name: &str) -> Option<&'v str> {
    match field(case, name) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn flag(case: &Value, name: &str) -> bool {
    matches!(field(case, name), Some(Value::Bool(true)))
}

/// Compares an actual result with an expected JSON value: numbers by value (within `approx` when
/// given), objects ignoring key order, arrays in order.
pub fn matches_expected(actual: &Value, expected: &Value, approx: Option<f64>) -> bool {
    match (actual, expected) {
        (Value::Int(_) | Value::Decimal(_), Value::Int(_) | Value::Decimal(_)) => match approx {
            Some(tol) => {
                let (a, e) = (actual.to_dec().map(|d| d.to_f64()), expected.to_dec().map(|d| d.to_f64()));
                matches!((a, e), (Some(a), Some(e)) if (a - e).abs() <= tol)
            }
            None => sql_eq(actual, expected) == Some(true),
        },
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(x, y)| matches_expected(x, y, approx))
        }
        (Value::Object(a), Value::Object(e)) => {
            a.len() == e.len() && a.iter().all(|(k, v)| e.get(k).is_some_and(|w| matches_expected(v, w, approx)))
        }
        _ => sql_eq(actual, expected) == Some(true),
    }
}

fn run_case(index: usize, case: &Value, engine: Engine) -> CaseResult {
    let id = str_field(case, "id").map_or_else(|| format!("#{index}"), str::to_string);
    CaseResult { id, outcome: run_case_inner(case, engine) }
}

fn run_case_inner(case: &Value, engine: Engine) -> Result<Option<String>, String> {
    let sql = str_field(case, "sql").ok_or("the case has no `sql`")?;
    let version_text = str_field(case, "sql_version").unwrap_or("2015-10-08");
    let version = SqlVersion::parse(version_text).ok_or_else(|| format!("unknown sql_version {version_text}"))?;
    let stmt = compile(sql, version).map_err(|d| crate::diag::render_all(&d, "sql", sql))?;
    let raw: Vec<u8> = match (str_field(case, "payload_raw"), field(case, "payload")) {
        (Some(raw), _) => raw.as_bytes().to_vec(),
        (None, Some(Value::Null) | None) => Vec::new(),
        (None, Some(p)) => p.to_json(SqlVersion::V2015_10_08).into_bytes(),
    };
    let full_topic = str_field(case, "topic").unwrap_or("");
    let (topic, basic_ingest) = match full_topic.strip_prefix("$aws/rules/") {
        Some(rest) => (rest.split_once('/').map_or("", |(_, t)| t), true),
        None => (full_topic, false),
    };
    let context = field(case, "context");
    let ctx_str = |name: &str| context.and_then(|c| str_field(c, name));
    let protocol = match ctx_str("protocol") {
        Some(p) if p.eq_ignore_ascii_case("http") => Protocol::Http,
        _ => Protocol::Mqtt,
    };
    let timestamp = context.and_then(|c| field(c, "timestamp")).and_then(|t| t.to_int()).unwrap_or(0) as i64;
    let payload = Payload::new(&raw);
    let properties = MqttProperties::default();
    let ctx = MessageContext {
        topic,
        payload: &payload,
        client_id: ctx_str("clientid"),
        principal: ctx_str("principal"),
        trace_id: ctx_str("traceid"),
        source_ip: ctx_str("sourceip"),
        account_id: ctx_str("accountid").unwrap_or(DEFAULT_ACCOUNT_ID),
        timestamp_ms: if timestamp == 0 { now_ms() } else { timestamp },
        protocol,
        properties: &properties,
    };
    let fired = basic_ingest || stmt.topic_filter.as_deref().is_none_or(|f| topic_matches(f, topic));
    let nondeterministic = flag(case, "nondeterministic");
    let actual = if fired { evaluate_on(engine, &stmt, &ctx, nondeterministic)? } else { None };
    let mut note = None;
    if !nondeterministic {
        let approx = field(case, "approx").and_then(|a| a.to_dec()).map(|d| d.to_f64());
        if let Some(expected_raw) = str_field(case, "expected_raw") {
            match &actual {
                Some(Output::Raw(bytes)) if bytes == expected_raw.as_bytes() => {}
                other => return Err(format!("expected raw output {expected_raw:?}, got {}", describe(other, version))),
            }
        } else {
            let expected = field(case, "expected").ok_or("the case has no `expected`")?;
            let ok = |exp: &Value| match (&actual, exp) {
                (None, Value::Null) => true,
                (Some(Output::Json(v)), e) => !matches!(e, Value::Null) && matches_expected(v, e, approx),
                _ => false,
            };
            if !ok(expected) {
                match field(case, "expected_alt") {
                    Some(alt) if flag(case, "doc_suspect") && ok(alt) => {
                        note = Some("matched expected_alt".to_string())
                    }
                    _ => {
                        return Err(format!(
                            "expected {}, got {}",
                            expected.to_json(SqlVersion::V2015_10_08),
                            describe(&actual, version)
                        ))
                    }
                }
            } else if flag(case, "doc_suspect") {
                note = Some("matched expected".to_string());
            }
        }
    }
    if let Some(Value::Array(checks)) = field(case, "template_checks") {
        for check in checks {
            let text = str_field(check, "template").ok_or("template check without `template`")?;
            let template = parse_template(text, SourceMap { source: text, raw_start: 0, quote: '\u{0}' }, &stmt)
                .map_err(|d| format!("template {text:?}: {}", d[0].message))?;
            let check_ts = field(check, "context").and_then(|c| field(c, "timestamp")).and_then(|t| t.to_int());
            let ctx = MessageContext { timestamp_ms: check_ts.map_or(ctx.timestamp_ms, |t| t as i64), ..ctx };
            let rendered = template.render(&stmt, &ctx, &NoHost).map_err(|e| format!("template {text:?}: {e}"))?;
            if flag(check, "nondeterministic") {
                continue;
            }
            match str_field(check, "expected") {
                Some(exp) if exp == rendered => {}
                Some(exp) => return Err(format!("template {text:?} gave {rendered:?}, expected {exp:?}")),
                None => {}
            }
        }
    }
    Ok(note)
}

fn describe(output: &Option<Output>, version: SqlVersion) -> String {
    match output {
        None => "no output (filtered out)".to_string(),
        Some(Output::Json(v)) => v.to_json(version),
        Some(Output::Raw(b)) => format!("raw {:?}", String::from_utf8_lossy(b)),
        Some(Output::Text(t)) => t.clone(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
