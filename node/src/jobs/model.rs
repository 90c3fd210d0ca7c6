//! The records of AWS IoT Jobs as Ferrite stores them: jobs, job executions and job
//! templates, with the configuration blocks of CreateJob kept in AWS's JSON shape so that
//! DescribeJob echoes what was sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use ferrite_aws::AwsError;

/// A job's status (`JobStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Executions are being dispatched or run.
    InProgress,
    /// Canceled by CancelJob, its abort configuration or its end time.
    Canceled,
    /// Every execution of a snapshot job reached a terminal status.
    Completed,
    /// Being deleted (never stored: DeleteJob removes the job in the same command).
    DeletionInProgress,
    /// Waiting for its scheduling configuration's start time.
    Scheduled,
}

impl JobStatus {
    /// The name AWS uses.
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::InProgress => "IN_PROGRESS",
            JobStatus::Canceled => "CANCELED",
            JobStatus::Completed => "COMPLETED",
            JobStatus::DeletionInProgress => "DELETION_IN_PROGRESS",
            JobStatus::Scheduled => "SCHEDULED",
        }
    }
}

/// A job execution's status (`JobExecutionStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Waiting for the device.
    #[default]
    Queued,
    /// The device started it.
    InProgress,
    /// The device finished it.
    Succeeded,
    /// The device failed it.
    Failed,
    /// Its in-progress or step timer ran out.
    TimedOut,
    /// The device refused it.
    Rejected,
    /// Its thing left the target group of a continuous job.
    Removed,
    /// Canceled (CancelJob, CancelJobExecution, an abort).
    Canceled,
}

impl ExecutionStatus {
    /// Every status, in AWS's order.
    pub const ALL: [ExecutionStatus; 8] = [
        ExecutionStatus::Queued,
        ExecutionStatus::InProgress,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::TimedOut,
        ExecutionStatus::Rejected,
        ExecutionStatus::Removed,
        ExecutionStatus::Canceled,
    ];

    /// The name AWS uses.
    pub fn name(self) -> &'static str {
        match self {
            ExecutionStatus::Queued => "QUEUED",
            ExecutionStatus::InProgress => "IN_PROGRESS",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Rejected => "REJECTED",
            ExecutionStatus::Removed => "REMOVED",
            ExecutionStatus::Canceled => "CANCELED",
        }
    }

    /// The position in [`ExecutionStatus::ALL`] (the slot of per-status counts).
    pub fn index(self) -> usize {
        ExecutionStatus::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// Parses AWS's name.
    pub fn parse(s: &str) -> Option<ExecutionStatus> {
        ExecutionStatus::ALL.into_iter().find(|x| x.name() == s)
    }

    /// No change follows a terminal status.
    pub fn is_terminal(self) -> bool {
        !matches!(self, ExecutionStatus::Queued | ExecutionStatus::InProgress)
    }
}

/// `SNAPSHOT` (the targets at creation) or `CONTINUOUS` (a group's members as they change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TargetSelection {
    /// The targets as they are when the job is created.
    #[default]
    Snapshot,
    /// Also things that join a target group later; things that leave it leave the job.
    Continuous,
}

/// `exponentialRate.rateIncreaseCriteria`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateIncreaseCriteria {
    /// Raise the rate after this many more things were notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_notified_things: Option<u32>,
    /// Raise the rate after this many more things succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_succeeded_things: Option<u32>,
}

/// `jobExecutionsRolloutConfig.exponentialRate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExponentialRate {
    /// The starting rate, executions per minute.
    pub base_rate_per_minute: u32,
    /// The factor the rate grows by.
    pub increment_factor: f64,
    /// When it grows.
    pub rate_increase_criteria: RateIncreaseCriteria,
}

/// `jobExecutionsRolloutConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutConfig {
    /// At most this many executions per minute (1 to 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_per_minute: Option<u32>,
    /// A rate that grows as things are notified or succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_rate: Option<ExponentialRate>,
}

/// One `abortConfig.criteriaList` entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbortCriteria {
    /// FAILED, REJECTED, TIMED_OUT or ALL (any of the three).
    pub failure_type: String,
    /// CANCEL (the only action AWS has).
    pub action: String,
    /// Cancel once this percentage of executed things failed so.
    pub threshold_percentage: f64,
    /// ... and at least this many things executed.
    pub min_number_of_executed_things: u32,
}

/// `abortConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbortConfig {
    /// The criteria; any one met cancels the job.
    pub criteria_list: Vec<AbortCriteria>,
}

/// `timeoutConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutConfig {
    /// An execution IN_PROGRESS longer than this is TIMED_OUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress_timeout_in_minutes: Option<u64>,
}

/// One `jobExecutionsRetryConfig.criteriaList` entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryCriteria {
    /// FAILED, TIMED_OUT or ALL.
    pub failure_type: String,
    /// Retries after the first attempt (0 to 10).
    pub number_of_retries: u32,
}

/// `jobExecutionsRetryConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfig {
    /// The criteria.
    pub criteria_list: Vec<RetryCriteria>,
}

/// One `schedulingConfig.maintenanceWindows` entry (stored and echoed; see docs/jobs.md).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// A cron expression.
    pub start_time: String,
    /// How long the window lasts.
    pub duration_in_minutes: u32,
}

impl MaintenanceWindow {
    /// Whether `now_ms` is inside this window (an unparsable one never is: windows are
    /// checked when a job or template is created).
    pub fn open_at(&self, now_ms: u64) -> bool {
        super::cron::Cron::parse(&self.start_time)
            .is_ok_and(|c| super::cron::in_window(&c, self.duration_in_minutes, now_ms))
    }
}

/// Checks maintenance windows as AWS does: a cron expression each, 1 to 1430 minutes long.
pub fn check_windows(windows: &[MaintenanceWindow]) -> Result<(), AwsError> {
    for w in windows {
        super::cron::Cron::parse(&w.start_time).map_err(|e| invalid(format!("maintenanceWindows startTime: {e}")))?;
        if !(1..=1430).contains(&w.duration_in_minutes) {
            return Err(invalid(format!(
                "maintenanceWindows durationInMinutes must be 1 to 1430, not {}",
                w.duration_in_minutes
            )));
        }
    }
    Ok(())
}

/// `schedulingConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingConfig {
    /// `YYYY-MM-DDTHH:MM` (UTC): the job is SCHEDULED until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (UTC): what `end_behavior` does then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// STOP_ROLLOUT (default), CANCEL or FORCE_CANCEL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_behavior: Option<String>,
    /// Maintenance windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance_windows: Vec<MaintenanceWindow>,
}

/// The configuration blocks a job is created with (and UpdateJob changes).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobConfig {
    /// `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `jobExecutionsRolloutConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_executions_rollout_config: Option<RolloutConfig>,
    /// `abortConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_config: Option<AbortConfig>,
    /// `timeoutConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_config: Option<TimeoutConfig>,
    /// `jobExecutionsRetryConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_executions_retry_config: Option<RetryConfig>,
    /// `presignedUrlConfig` (stored and echoed: there is no S3 to presign for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presigned_url_config: Option<serde_json::Value>,
}

fn invalid(message: String) -> AwsError {
    AwsError::invalid_request(message)
}

impl JobConfig {
    /// These blocks, each missing one taken from `fallback` (a job over its template, an
    /// UpdateJob over the job).
    pub fn or(self, fallback: JobConfig) -> JobConfig {
        JobConfig {
            description: self.description.or(fallback.description),
            job_executions_rollout_config: self
                .job_executions_rollout_config
                .or(fallback.job_executions_rollout_config),
            abort_config: self.abort_config.or(fallback.abort_config),
            timeout_config: self.timeout_config.or(fallback.timeout_config),
            job_executions_retry_config: self.job_executions_retry_config.or(fallback.job_executions_retry_config),
            presigned_url_config: self.presigned_url_config.or(fallback.presigned_url_config),
        }
    }

    /// Checks every range AWS checks; the first problem is the error.
    pub fn check(&self) -> Result<(), AwsError> {
        if let Some(r) = &self.job_executions_rollout_config {
            if let Some(m) = r.maximum_per_minute {
                if !(1..=1000).contains(&m) {
                    return Err(invalid(format!("maximumPerMinute must be 1 to 1000, not {m}")));
                }
            }
            if let Some(e) = &r.exponential_rate {
                if !(1..=1000).contains(&e.base_rate_per_minute) {
                    return Err(invalid(format!(
                        "baseRatePerMinute must be 1 to 1000, not {}",
                        e.base_rate_per_minute
                    )));
                }
                if !(1.1..=5.0).contains(&e.increment_factor) {
                    return Err(invalid(format!("incrementFactor must be 1.1 to 5, not {}", e.increment_factor)));
                }
                let c = &e.rate_increase_criteria;
                if c.number_of_notified_things.is_none() && c.number_of_succeeded_things.is_none() {
                    return Err(invalid(
                        "rateIncreaseCriteria needs numberOfNotifiedThings or numberOfSucceededThings".into(),
                    ));
                }
                if c.number_of_notified_things == Some(0) || c.number_of_succeeded_things == Some(0) {
                    return Err(invalid("rateIncreaseCriteria's numbers must be at least 1".into()));
                }
            }
        }
        if let Some(a) = &self.abort_config {
            if a.criteria_list.is_empty() {
                return Err(invalid("abortConfig.criteriaList must name at least one criterion".into()));
            }
            for c in &a.criteria_list {
                if !matches!(c.failure_type.as_str(), "FAILED" | "REJECTED" | "TIMED_OUT" | "ALL") {
                    return Err(invalid(format!(
                        "abort failureType must be FAILED, REJECTED, TIMED_OUT or ALL, not {:?}",
                        c.failure_type
                    )));
                }
                if c.action != "CANCEL" {
                    return Err(invalid(format!("abort action must be CANCEL, not {:?}", c.action)));
                }
                if !(0.0..=100.0).contains(&c.threshold_percentage) {
                    return Err(invalid(format!(
                        "thresholdPercentage must be 0 to 100, not {}",
                        c.threshold_percentage
                    )));
                }
                if c.min_number_of_executed_things == 0 {
                    return Err(invalid("minNumberOfExecutedThings must be at least 1".into()));
                }
            }
        }
        if let Some(t) = self.timeout_config.as_ref().and_then(|t| t.in_progress_timeout_in_minutes) {
            if !(1..=10080).contains(&t) {
                return Err(invalid(format!("inProgressTimeoutInMinutes must be 1 to 10080, not {t}")));
            }
        }
        if let Some(r) = &self.job_executions_retry_config {
            for c in &r.criteria_list {
                if !matches!(c.failure_type.as_str(), "FAILED" | "TIMED_OUT" | "ALL") {
                    return Err(invalid(format!(
                        "retry failureType must be FAILED, TIMED_OUT or ALL, not {:?}",
                        c.failure_type
                    )));
                }
                if c.number_of_retries > 10 {
                    return Err(invalid(format!("numberOfRetries must be 0 to 10, not {}", c.number_of_retries)));
                }
            }
        }
        Ok(())
    }
}

/// Checks a step timeout (AWS: 1 to 10080 minutes).
pub fn check_step_timeout(minutes: Option<i64>) -> Result<(), AwsError> {
    match minutes {
        Some(m) if !(1..=10080).contains(&m) => {
            Err(invalid(format!("stepTimeoutInMinutes must be 1 to 10080, not {m}")))
        }
        _ => Ok(()),
    }
}

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// `jobId`.
    pub job_id: String,
    /// `arn:aws:iot:{region}:{account}:job/{jobId}`.
    pub job_arn: String,
    /// Thing and thing-group ARNs.
    pub targets: Vec<String>,
    /// SNAPSHOT or CONTINUOUS.
    pub target_selection: TargetSelection,
    /// The document devices get (parameters substituted).
    pub document: String,
    /// The template's document before substitution, when made from a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_before_substitution: Option<String>,
    /// Where the document was fetched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_source: Option<String>,
    /// The template it was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template_arn: Option<String>,
    /// The template's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_parameters: Option<BTreeMap<String, String>>,
    /// The scheduling configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_config: Option<SchedulingConfig>,
    /// Configuration blocks.
    #[serde(flatten)]
    pub config: JobConfig,
    /// Status.
    pub status: JobStatus,
    /// Canceled with `force`.
    #[serde(default)]
    pub force_canceled: bool,
    /// CancelJob's reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// CancelJob's (or the abort's) comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Epoch milliseconds.
    pub created_at: u64,
    /// Epoch milliseconds.
    pub last_updated_at: u64,
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    /// Where the rollout stands.
    #[serde(default)]
    pub rollout: Rollout,
}

/// The part of a job's rollout that moves: things still to notify and the rate.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Target things not given an execution yet, in dispatch order.
    #[serde(default)]
    pub pending: Vec<String>,
    /// The rate now, executions per minute (0: no limit).
    #[serde(default)]
    pub rate: u32,
    /// Executions the rate allows but not yet dispatched, in thousandths.
    #[serde(default)]
    pub credit_milli: u64,
    /// When the credit was last added to (epoch ms).
    #[serde(default)]
    pub credited_at: u64,
    /// Things notified since the rate last grew.
    #[serde(default)]
    pub notified_since_increase: u32,
    /// Things that succeeded since the rate last grew.
    #[serde(default)]
    pub succeeded_since_increase: u32,
    /// The end time stopped dispatching (STOP_ROLLOUT).
    #[serde(default)]
    pub stopped: bool,
    /// `schedulingConfig.startTime` (epoch ms): SCHEDULED until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<u64>,
    /// `schedulingConfig.endTime` (epoch ms), until its end behavior ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<u64>,
}

/// One job execution: a job on one thing. Only the latest attempt is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    /// The job.
    pub job_id: String,
    /// The thing.
    pub thing_name: String,
    /// Status.
    pub status: ExecutionStatus,
    /// The device's name/value pairs.
    #[serde(default)]
    pub status_details: BTreeMap<String, String>,
    /// Epoch milliseconds.
    pub queued_at: u64,
    /// Epoch milliseconds, once IN_PROGRESS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// Epoch milliseconds.
    pub last_updated_at: u64,
    /// Grows with every change.
    pub version_number: u64,
    /// 1, then one more per retry.
    pub execution_number: u64,
    /// How many retries came before this attempt.
    #[serde(default)]
    pub retry_attempt: u32,
    /// Canceled with `force`.
    #[serde(default)]
    pub force_canceled: bool,
    /// The in-progress timer's end (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress_deadline: Option<u64>,
    /// The step timer's end (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_deadline: Option<u64>,
}

impl Job {
    /// Whether the job may notify things now: always, unless it has maintenance windows and
    /// none is open.
    pub fn in_maintenance_window(&self, now_ms: u64) -> bool {
        let windows = self.scheduling_config.as_ref().map_or(&[][..], |s| &s.maintenance_windows[..]);
        windows.is_empty() || windows.iter().any(|w| w.open_at(now_ms))
    }
}

impl Execution {
    /// The earliest timer end, if a timer runs.
    pub fn deadline(&self) -> Option<u64> {
        match (self.in_progress_deadline, self.step_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A job template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplate {
    /// `jobTemplateId`.
    pub job_template_id: String,
    /// `arn:aws:iot:{region}:{account}:jobtemplate/{id}`.
    pub job_template_arn: String,
    /// The document, with `${aws:iot:parameter:NAME}` placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// Where the document was fetched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_source: Option<String>,
    /// Configuration blocks (description included).
    #[serde(flatten)]
    pub config: JobConfig,
    /// Maintenance windows for jobs made from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// Epoch milliseconds.
    pub created_at: u64,
}

/// Replaces each `${aws:iot:parameter:NAME}` in `document` with its value; a placeholder
/// without a value is InvalidRequestException.
pub fn substitute(document: &str, parameters: &BTreeMap<String, String>) -> Result<String, AwsError> {
    const OPEN: &str = "${aws:iot:parameter:";
    let mut out = String::with_capacity(document.len());
    let mut rest = document;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at + OPEN.len()..];
        let Some(end) = after.find('}') else {
            return Err(invalid("The job document has an unterminated ${aws:iot:parameter:...}".into()));
        };
        let name = &after[..end];
        let value = parameters
            .get(name)
            .ok_or_else(|| invalid(format!("documentParameters has no value for the parameter {name:?}")))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses `YYYY-MM-DDTHH:MM` (UTC, AWS's StringDateTime) into epoch milliseconds.
pub fn parse_date_time(s: &str) -> Result<u64, AwsError> {
    let bad = || invalid(format!("{s:?} is not a date and time in the form YYYY-MM-DDTHH:MM (UTC)"));
    let b = s.as_bytes();
    if b.len() != 16 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad);
    let (y, m, d, h, min) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || min > 59 {
        return Err(bad());
    }
    // Days from the civil calendar (proleptic Gregorian) to 1970-01-01.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60;
    u64::try_from(secs).map(|s| s * 1000).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_substituted_and_a_missing_one_is_named() {
        let p = BTreeMap::from([("url".to_string(), "https://x/fw.bin".to_string())]);
        assert_eq!(substitute(r#"{"u":"${aws:iot:parameter:url}"}"#, &p).unwrap(), r#"{"u":"https://x/fw.bin"}"#);
        let e = substitute("${aws:iot:parameter:other}", &p).unwrap_err();
        assert!(e.message.contains("other"), "{}", e.message);
    }

    #[test]
    fn dates_are_utc_minutes() {
        assert_eq!(parse_date_time("1970-01-01T00:01").unwrap(), 60_000);
        assert_eq!(parse_date_time("2026-12-06T01:30").unwrap(), 1_796_520_600_000);
        assert!(parse_date_time("tomorrow").is_err());
    }

    #[test]
    fn config_ranges_are_checked() {
        let mut c = JobConfig::default();
        assert!(c.check().is_ok());
        c.job_executions_rollout_config = Some(RolloutConfig { maximum_per_minute: Some(0), exponential_rate: None });
        assert!(c.check().is_err());
        c.job_executions_rollout_config = None;
        c.timeout_config = Some(TimeoutConfig { in_progress_timeout_in_minutes: Some(20000) });
        assert!(c.check().is_err());
    }
}
