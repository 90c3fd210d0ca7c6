//! The request documents of the jobs data plane, shared by MQTT and HTTP: parsed from JSON
//! into typed requests, with AWS's error for each malformed field.

use std::collections::BTreeMap;

use serde_json::Value;

use super::execution::DeviceUpdate;
use super::model::{check_step_timeout, ExecutionStatus};

/// A malformed request: (MQTT code, message).
pub type Malformed = (&'static str, String);

fn bad(message: impl Into<String>) -> Malformed {
    ("InvalidRequest", message.into())
}

/// The body as a JSON object (an empty body is `{}`); not JSON is `InvalidJson`.
pub fn object(payload: &[u8]) -> Result<serde_json::Map<String, Value>, Malformed> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(("InvalidJson", "The request payload must be a JSON object".into())),
        Err(e) => Err(("InvalidJson", format!("The request payload is not valid JSON: {e}"))),
    }
}

/// The `clientToken` to echo, if any.
pub fn client_token(m: &serde_json::Map<String, Value>) -> Option<String> {
    m.get("clientToken").and_then(Value::as_str).map(str::to_string)
}

/// A whole number given as a number or a string of digits.
fn number(m: &serde_json::Map<String, Value>, field: &str) -> Result<Option<i64>, Malformed> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| bad(format!("{field} must be a whole number"))),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad(format!("{field} must be a whole number"))),
        Some(_) => Err(bad(format!("{field} must be a whole number"))),
    }
}

fn unsigned(m: &serde_json::Map<String, Value>, field: &str) -> Result<Option<u64>, Malformed> {
    match number(m, field)? {
        Some(n) if n < 0 => Err(bad(format!("{field} must not be negative"))),
        n => Ok(n.map(|n| n as u64)),
    }
}

fn flag(m: &serde_json::Map<String, Value>, field: &str, default: bool) -> Result<bool, Malformed> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("{field} must be true or false"))),
    }
}

/// `statusDetails`: names and values, both strings.
pub fn status_details(m: &serde_json::Map<String, Value>) -> Result<Option<BTreeMap<String, String>>, Malformed> {
    match m.get("statusDetails") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => {
            let mut out = BTreeMap::new();
            for (k, v) in o {
                let Value::String(s) = v else {
                    return Err(bad(format!("statusDetails.{k} must be a string")));
                };
                out.insert(k.clone(), s.clone());
            }
            if out.len() > 10 {
                return Err(bad("statusDetails holds at most 10 names"));
            }
            Ok(Some(out))
        }
        Some(_) => Err(bad("statusDetails must be an object of strings")),
    }
}

/// `stepTimeoutInMinutes`, checked.
pub fn step_timeout(m: &serde_json::Map<String, Value>) -> Result<Option<i64>, Malformed> {
    let t = number(m, "stepTimeoutInMinutes")?;
    check_step_timeout(t).map_err(|e| bad(e.message))?;
    Ok(t)
}

/// StartNextPendingJobExecution's fields.
pub struct StartNext {
    /// `statusDetails`.
    pub status_details: Option<BTreeMap<String, String>>,
    /// `stepTimeoutInMinutes`.
    pub step_timeout_minutes: Option<i64>,
}

/// Parses StartNextPendingJobExecution.
pub fn start_next(m: &serde_json::Map<String, Value>) -> Result<StartNext, Malformed> {
    Ok(StartNext { status_details: status_details(m)?, step_timeout_minutes: step_timeout(m)? })
}

/// DescribeJobExecution's fields: `executionNumber`, `includeJobDocument` (default true).
pub fn describe(m: &serde_json::Map<String, Value>) -> Result<(Option<u64>, bool), Malformed> {
    Ok((unsigned(m, "executionNumber")?, flag(m, "includeJobDocument", true)?))
}

/// UpdateJobExecution's fields.
pub struct Update {
    /// The change.
    pub update: DeviceUpdate,
    /// Answer with the execution's state.
    pub include_state: bool,
    /// Answer with the job document.
    pub include_document: bool,
}

/// Parses UpdateJobExecution.
pub fn update(m: &serde_json::Map<String, Value>) -> Result<Update, Malformed> {
    let status = match m.get("status") {
        Some(Value::String(s)) => ExecutionStatus::parse(s).ok_or_else(|| {
            bad(format!("status {s:?} is not one of QUEUED, IN_PROGRESS, SUCCEEDED, FAILED, REJECTED"))
        })?,
        Some(_) => return Err(bad("status must be a string")),
        None => return Err(bad("status is required")),
    };
    Ok(Update {
        update: DeviceUpdate {
            status,
            status_details: status_details(m)?,
            expected_version: unsigned(m, "expectedVersion")?,
            execution_number: unsigned(m, "executionNumber")?,
            step_timeout_minutes: step_timeout(m)?,
        },
        include_state: flag(m, "includeJobExecutionState", false)?,
        include_document: flag(m, "includeJobDocument", false)?,
    })
}

/// The MQTT code of an API error.
pub fn mqtt_code(error_type: &str) -> &'static str {
    match error_type {
        "InvalidStateTransitionException" => "InvalidStateTransition",
        "VersionConflictException" => "VersionMismatch",
        "ResourceNotFoundException" => "ResourceNotFound",
        "InvalidRequestException" => "InvalidRequest",
        "ThrottlingException" => "RequestThrottled",
        "TerminalStateException" => "TerminalStateReached",
        _ => "InternalError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(s: &str) -> serde_json::Map<String, Value> {
        object(s.as_bytes()).unwrap()
    }

    #[test]
    fn updates_parse_with_aws_defaults_and_errors() {
        let u = update(&obj(r#"{"status":"IN_PROGRESS","expectedVersion":"2","statusDetails":{"p":"50%"}}"#)).unwrap();
        assert_eq!(u.update.status, ExecutionStatus::InProgress);
        assert_eq!(u.update.expected_version, Some(2));
        assert!(!u.include_state && !u.include_document);
        assert_eq!(update(&obj("{}")).err().unwrap().0, "InvalidRequest");
        assert_eq!(update(&obj(r#"{"status":"DONE"}"#)).err().unwrap().0, "InvalidRequest");
        assert_eq!(update(&obj(r#"{"status":"FAILED","statusDetails":{"n":1}}"#)).err().unwrap().0, "InvalidRequest");
        assert_eq!(object(b"{nope").err().unwrap().0, "InvalidJson");
        assert_eq!(describe(&obj("{}")).unwrap(), (None, true));
    }
}
