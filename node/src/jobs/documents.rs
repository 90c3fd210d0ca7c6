//! The JSON documents of jobs, in each API's shape: the control plane (`iot`, timestamps
//! in epoch seconds with fractions), the HTTP data plane (`iot-jobs-data`, whole epoch
//! seconds, the document as a string) and the MQTT data plane (whole seconds, the document
//! as JSON when it is JSON).

use serde_json::{json, Map, Value};

use super::execution::seconds_before_timeout;
use super::model::{Execution, ExecutionStatus, Job, JobTemplate};

/// Epoch ms as the control plane's timestamp (seconds, fractional).
pub fn seconds(ms: u64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// Epoch ms as the data planes' whole seconds.
pub fn whole_seconds(ms: u64) -> Value {
    json!(ms / 1000)
}

/// The job document as MQTT carries it: the JSON value when it parses, else the string.
pub fn document_value(document: &str) -> Value {
    serde_json::from_str(document).unwrap_or_else(|_| Value::String(document.to_string()))
}

/// A `JobExecutionSummary` of the data planes (pending lists, `notify`).
pub fn data_summary(e: &Execution) -> Value {
    let mut v = json!({
        "jobId": e.job_id,
        "queuedAt": e.queued_at / 1000,
        "lastUpdatedAt": e.last_updated_at / 1000,
        "versionNumber": e.version_number,
        "executionNumber": e.execution_number,
    });
    if let Some(s) = e.started_at {
        v["startedAt"] = json!(s / 1000);
    }
    v
}

/// A data plane's `JobExecution`; `document` is included when given, as a string for HTTP
/// (`as_json` false) or as JSON for MQTT.
pub fn data_execution(e: &Execution, document: Option<&str>, as_json: bool, now: u64) -> Value {
    let mut v = data_summary(e);
    v["thingName"] = json!(e.thing_name);
    v["status"] = json!(e.status.name());
    v["statusDetails"] = json!(e.status_details);
    if let Some(s) = seconds_before_timeout(e, now) {
        v["approximateSecondsBeforeTimedOut"] = json!(s);
    }
    if let Some(d) = document {
        v["jobDocument"] = if as_json { document_value(d) } else { json!(d) };
    }
    v
}

/// GetPendingJobExecutions' answer (both data planes): `inProgressJobs` and `queuedJobs`.
pub fn pending(in_progress: &[&Execution], queued: &[&Execution]) -> Value {
    let list = |v: &[&Execution]| v.iter().map(|e| data_summary(e)).collect::<Vec<_>>();
    json!({ "inProgressJobs": list(in_progress), "queuedJobs": list(queued) })
}

/// The data planes' `JobExecutionState`.
pub fn execution_state(e: &Execution) -> Value {
    json!({ "status": e.status.name(), "statusDetails": e.status_details, "versionNumber": e.version_number })
}

/// The control plane's `JobExecutionSummary`.
pub fn control_summary(e: &Execution) -> Value {
    let mut v = json!({
        "status": e.status.name(),
        "queuedAt": seconds(e.queued_at),
        "lastUpdatedAt": seconds(e.last_updated_at),
        "executionNumber": e.execution_number,
        "retryAttempt": e.retry_attempt,
    });
    if let Some(s) = e.started_at {
        v["startedAt"] = seconds(s);
    }
    v
}

/// The control plane's `JobExecution` (DescribeJobExecution).
pub fn control_execution(e: &Execution, thing_arn: &str, now: u64) -> Value {
    let mut v = json!({
        "jobId": e.job_id,
        "status": e.status.name(),
        "forceCanceled": e.force_canceled,
        "statusDetails": { "detailsMap": e.status_details },
        "thingArn": thing_arn,
        "queuedAt": seconds(e.queued_at),
        "lastUpdatedAt": seconds(e.last_updated_at),
        "executionNumber": e.execution_number,
        "versionNumber": e.version_number,
    });
    if let Some(s) = e.started_at {
        v["startedAt"] = seconds(s);
    }
    if let Some(s) = seconds_before_timeout(e, now) {
        v["approximateSecondsBeforeTimedOut"] = json!(s);
    }
    v
}

/// `jobProcessDetails` from the executions per status (in the order of
/// `ExecutionStatus::ALL`) and the things not yet notified.
pub fn process_details(counts: &[u64; 8], pending: &[String]) -> Value {
    let n = |s: ExecutionStatus| counts[s.index()];
    let mut v = json!({
        "numberOfCanceledThings": n(ExecutionStatus::Canceled),
        "numberOfSucceededThings": n(ExecutionStatus::Succeeded),
        "numberOfFailedThings": n(ExecutionStatus::Failed),
        "numberOfRejectedThings": n(ExecutionStatus::Rejected),
        "numberOfQueuedThings": n(ExecutionStatus::Queued),
        "numberOfInProgressThings": n(ExecutionStatus::InProgress),
        "numberOfRemovedThings": n(ExecutionStatus::Removed),
        "numberOfTimedOutThings": n(ExecutionStatus::TimedOut),
    });
    if !pending.is_empty() {
        v["processingTargets"] = json!(pending.iter().take(100).collect::<Vec<_>>());
    }
    v
}

/// The control plane's `Job` (DescribeJob), without `jobProcessDetails`.
pub fn job(j: &Job) -> Value {
    let mut v = match serde_json::to_value(&j.config) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    v.insert("jobArn".into(), json!(j.job_arn));
    v.insert("jobId".into(), json!(j.job_id));
    v.insert("targetSelection".into(), json!(j.target_selection));
    v.insert("status".into(), json!(j.status.name()));
    v.insert("forceCanceled".into(), json!(j.force_canceled));
    v.insert("targets".into(), json!(j.targets));
    v.insert("createdAt".into(), seconds(j.created_at));
    v.insert("lastUpdatedAt".into(), seconds(j.last_updated_at));
    v.insert("isConcurrent".into(), json!(false));
    if let Some(c) = j.completed_at {
        v.insert("completedAt".into(), seconds(c));
    }
    for (k, x) in [("reasonCode", &j.reason_code), ("comment", &j.comment), ("jobTemplateArn", &j.job_template_arn)] {
        if let Some(x) = x {
            v.insert(k.into(), json!(x));
        }
    }
    if let Some(p) = &j.document_parameters {
        v.insert("documentParameters".into(), json!(p));
    }
    if let Some(s) = &j.scheduling_config {
        v.insert("schedulingConfig".into(), json!(s));
    }
    Value::Object(v)
}

/// The control plane's `JobSummary` (ListJobs).
pub fn job_summary(j: &Job) -> Value {
    let mut v = json!({
        "jobArn": j.job_arn,
        "jobId": j.job_id,
        "targetSelection": j.target_selection,
        "status": j.status.name(),
        "createdAt": seconds(j.created_at),
        "lastUpdatedAt": seconds(j.last_updated_at),
        "isConcurrent": false,
    });
    if let Some(c) = j.completed_at {
        v["completedAt"] = seconds(c);
    }
    v
}

/// DescribeJobTemplate's answer.
pub fn template(t: &JobTemplate) -> Value {
    let mut v = match serde_json::to_value(&t.config) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    v.insert("jobTemplateArn".into(), json!(t.job_template_arn));
    v.insert("jobTemplateId".into(), json!(t.job_template_id));
    v.insert("createdAt".into(), seconds(t.created_at));
    if let Some(d) = &t.document {
        v.insert("document".into(), json!(d));
    }
    if let Some(d) = &t.document_source {
        v.insert("documentSource".into(), json!(d));
    }
    if !t.maintenance_windows.is_empty() {
        v.insert("maintenanceWindows".into(), json!(t.maintenance_windows));
    }
    Value::Object(v)
}
