//! What may happen to one job execution, as pure functions over the record: a device's
//! update (AWS's UpdateJobExecution), the start of the next pending one, a cancel, a timer
//! running out. Every refusal is the error AWS answers, so the HTTP and MQTT data planes
//! only translate it.

use std::collections::BTreeMap;

use ferrite_aws::AwsError;

use super::model::{Execution, ExecutionStatus};

/// Why an update was refused, in the terms of both data planes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The execution does not exist (or not with that execution number).
    NotFound(String),
    /// The status cannot follow the current one.
    InvalidStateTransition(String),
    /// `expectedVersion` is not the current version.
    VersionMismatch(String),
    /// The request itself is wrong.
    InvalidRequest(String),
}

impl Refusal {
    /// The MQTT `rejected` code AWS uses.
    pub fn mqtt_code(&self) -> &'static str {
        match self {
            Refusal::NotFound(_) => "ResourceNotFound",
            Refusal::InvalidStateTransition(_) => "InvalidStateTransition",
            Refusal::VersionMismatch(_) => "VersionMismatch",
            Refusal::InvalidRequest(_) => "InvalidRequest",
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Refusal::NotFound(m)
            | Refusal::InvalidStateTransition(m)
            | Refusal::VersionMismatch(m)
            | Refusal::InvalidRequest(m) => m,
        }
    }

    /// The HTTP error AWS answers.
    pub fn to_aws(&self) -> AwsError {
        let m = self.message().to_string();
        match self {
            Refusal::NotFound(_) => AwsError::not_found(m),
            Refusal::InvalidStateTransition(_) => AwsError::new(409, "InvalidStateTransitionException", m),
            Refusal::VersionMismatch(_) => AwsError::new(409, "VersionConflictException", m),
            Refusal::InvalidRequest(_) => AwsError::invalid_request(m),
        }
    }
}

/// A device's UpdateJobExecution.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct DeviceUpdate {
    /// The new status: IN_PROGRESS, SUCCEEDED, FAILED or REJECTED.
    pub status: ExecutionStatus,
    /// Replaces the details when given.
    pub status_details: Option<BTreeMap<String, String>>,
    /// Refused unless it is the current version.
    pub expected_version: Option<u64>,
    /// Refused unless it is the current execution number.
    pub execution_number: Option<u64>,
    /// Starts (or restarts) the step timer.
    pub step_timeout_minutes: Option<i64>,
}

/// The timers a job gives its executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// `timeoutConfig.inProgressTimeoutInMinutes`.
    pub in_progress_minutes: Option<u64>,
    /// How long a jobs minute is (60,000 ms but in tests).
    pub minute_ms: u64,
}

/// Applies a device's update at `now` (epoch ms).
pub fn update(e: &mut Execution, u: &DeviceUpdate, timers: Timers, now: u64) -> Result<(), Refusal> {
    if u.execution_number.is_some_and(|n| n != e.execution_number) {
        return Err(Refusal::NotFound(format!(
            "Job execution {} of job {} on thing {} not found (the current one is {})",
            u.execution_number.unwrap_or_default(),
            e.job_id,
            e.thing_name,
            e.execution_number
        )));
    }
    if e.status.is_terminal() {
        return Err(Refusal::InvalidStateTransition(format!(
            "Job execution of job {} on thing {} is already {} (terminal)",
            e.job_id,
            e.thing_name,
            e.status.name()
        )));
    }
    if let Some(v) = u.expected_version {
        if v != e.version_number {
            return Err(Refusal::VersionMismatch(format!(
                "expectedVersion {v} is not the current version {}",
                e.version_number
            )));
        }
    }
    match u.status {
        ExecutionStatus::InProgress
        | ExecutionStatus::Succeeded
        | ExecutionStatus::Failed
        | ExecutionStatus::Rejected => {}
        ExecutionStatus::Queued if e.status == ExecutionStatus::Queued => {}
        other => {
            return Err(Refusal::InvalidStateTransition(format!(
                "A device cannot set a job execution to {} (from {})",
                other.name(),
                e.status.name()
            )))
        }
    }
    if u.status == ExecutionStatus::InProgress && e.status == ExecutionStatus::Queued {
        start(e, timers, now);
    }
    if let Some(details) = &u.status_details {
        e.status_details = details.clone();
    }
    if let Some(m) = u.step_timeout_minutes {
        e.step_deadline = Some(now + m.max(0) as u64 * timers.minute_ms);
    }
    if u.status.is_terminal() {
        e.in_progress_deadline = None;
        e.step_deadline = None;
    }
    e.status = u.status;
    e.version_number += 1;
    e.last_updated_at = now;
    Ok(())
}

/// QUEUED -> IN_PROGRESS: the start time and the in-progress timer.
fn start(e: &mut Execution, timers: Timers, now: u64) {
    e.started_at = Some(now);
    e.in_progress_deadline = timers.in_progress_minutes.map(|m| now + m * timers.minute_ms);
}

/// StartNextPendingJobExecution on the thing's next execution: a QUEUED one starts (with
/// the details and step timer given); an IN_PROGRESS one is answered as it is.
pub fn start_next(
    e: &mut Execution,
    details: Option<&BTreeMap<String, String>>,
    step_minutes: Option<i64>,
    timers: Timers,
    now: u64,
) {
    if e.status != ExecutionStatus::Queued {
        return;
    }
    start(e, timers, now);
    if let Some(d) = details {
        e.status_details = d.clone();
    }
    if let Some(m) = step_minutes {
        e.step_deadline = Some(now + m.max(0) as u64 * timers.minute_ms);
    }
    e.status = ExecutionStatus::InProgress;
    e.version_number += 1;
    e.last_updated_at = now;
}

/// CancelJobExecution: a QUEUED execution, or an IN_PROGRESS one with `force`.
pub fn cancel(
    e: &mut Execution,
    force: bool,
    expected_version: Option<u64>,
    details: Option<&BTreeMap<String, String>>,
    now: u64,
) -> Result<(), AwsError> {
    if let Some(v) = expected_version {
        if v != e.version_number {
            return Err(AwsError::new(
                409,
                "VersionConflictException",
                format!("expectedVersion {v} is not the current version {}", e.version_number),
            ));
        }
    }
    match e.status {
        ExecutionStatus::Queued => {}
        ExecutionStatus::InProgress if force => e.force_canceled = true,
        ExecutionStatus::InProgress => {
            return Err(AwsError::new(
                409,
                "InvalidStateTransitionException",
                format!(
                    "Job execution of job {} on thing {} is IN_PROGRESS: cancel it with force",
                    e.job_id, e.thing_name
                ),
            ))
        }
        terminal => {
            return Err(AwsError::new(
                409,
                "InvalidStateTransitionException",
                format!("Job execution of job {} on thing {} is already {}", e.job_id, e.thing_name, terminal.name()),
            ))
        }
    }
    if let Some(d) = details {
        e.status_details = d.clone();
    }
    end(e, ExecutionStatus::Canceled, now);
    Ok(())
}

/// Ends a non-terminal execution with `status` (canceled by its job, removed from a
/// continuous job, timed out).
pub fn end(e: &mut Execution, status: ExecutionStatus, now: u64) {
    e.status = status;
    e.in_progress_deadline = None;
    e.step_deadline = None;
    e.version_number += 1;
    e.last_updated_at = now;
}

/// Seconds until the earliest timer ends, for `approximateSecondsBeforeTimedOut`.
pub fn seconds_before_timeout(e: &Execution, now: u64) -> Option<u64> {
    e.deadline().map(|d| d.saturating_sub(now) / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued() -> Execution {
        Execution {
            job_id: "j".into(),
            thing_name: "t".into(),
            status: ExecutionStatus::Queued,
            status_details: BTreeMap::new(),
            queued_at: 0,
            started_at: None,
            last_updated_at: 0,
            version_number: 1,
            execution_number: 1,
            retry_attempt: 0,
            force_canceled: false,
            in_progress_deadline: None,
            step_deadline: None,
        }
    }

    const TIMERS: Timers = Timers { in_progress_minutes: Some(2), minute_ms: 60_000 };

    fn to(status: ExecutionStatus) -> DeviceUpdate {
        DeviceUpdate { status, ..Default::default() }
    }

    #[test]
    fn a_device_moves_an_execution_through_aws_statuses() {
        let mut e = queued();
        update(&mut e, &to(ExecutionStatus::InProgress), TIMERS, 1000).unwrap();
        assert_eq!((e.status, e.version_number, e.started_at), (ExecutionStatus::InProgress, 2, Some(1000)));
        assert_eq!(e.in_progress_deadline, Some(121_000));
        update(&mut e, &to(ExecutionStatus::InProgress), TIMERS, 2000).unwrap();
        update(&mut e, &to(ExecutionStatus::Succeeded), TIMERS, 3000).unwrap();
        assert_eq!((e.status, e.version_number, e.deadline()), (ExecutionStatus::Succeeded, 4, None));
        let again = update(&mut e, &to(ExecutionStatus::Failed), TIMERS, 4000).unwrap_err();
        assert_eq!(again.mqtt_code(), "InvalidStateTransition");
        assert_eq!(e.version_number, 4, "a refused update changes nothing");
    }

    #[test]
    fn a_device_cannot_set_service_statuses_or_skip_versions() {
        let mut e = queued();
        for s in [ExecutionStatus::TimedOut, ExecutionStatus::Canceled, ExecutionStatus::Removed] {
            assert_eq!(update(&mut e, &to(s), TIMERS, 1).unwrap_err().mqtt_code(), "InvalidStateTransition");
        }
        let stale = DeviceUpdate { expected_version: Some(7), ..to(ExecutionStatus::InProgress) };
        assert_eq!(update(&mut e, &stale, TIMERS, 1).unwrap_err().mqtt_code(), "VersionMismatch");
        let other = DeviceUpdate { execution_number: Some(2), ..to(ExecutionStatus::InProgress) };
        assert_eq!(update(&mut e, &other, TIMERS, 1).unwrap_err().mqtt_code(), "ResourceNotFound");
        assert_eq!(e, queued());
    }

    #[test]
    fn cancel_needs_force_once_started() {
        let mut e = queued();
        start_next(&mut e, None, Some(1), TIMERS, 10);
        assert_eq!(e.step_deadline, Some(60_010));
        assert_eq!(cancel(&mut e, false, None, None, 20).unwrap_err().error_type, "InvalidStateTransitionException");
        assert_eq!(cancel(&mut e, true, Some(1), None, 20).unwrap_err().error_type, "VersionConflictException");
        cancel(&mut e, true, None, None, 20).unwrap();
        assert!(e.force_canceled && e.status == ExecutionStatus::Canceled && e.deadline().is_none());
    }
}
