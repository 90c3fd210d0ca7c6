//! Applying jobs commands: one [`Tx`] per command, which changes the state, writes the
//! changed records and collects what must be published: `notify`/`notify-next` for every
//! thing whose pending executions changed, and job events when they are switched on.

use std::collections::{BTreeMap, BTreeSet};

use ferrite_cluster::{Batch, Table};
use serde_json::json;

use super::documents;
use super::execution::{self, Timers};
use super::model::{Execution, ExecutionStatus, Job, JobStatus, TargetSelection};
use super::{key, Command, Effect, Outcome, State, ATTEMPT, EVENTS, EVENT_TYPES, EXECUTION, JOB, TEMPLATE};
use crate::registry::Registry;
use ferrite_aws::AwsError;

/// What a thing's pending list looked like: (job, status) of each pending execution, and
/// the next one (job, execution number).
type Pending = (Vec<(String, ExecutionStatus)>, Option<(String, u64)>);

fn pending_of(st: &State, thing: &str) -> Pending {
    let (in_progress, queued) = st.pending(thing);
    let list = in_progress.iter().chain(queued.iter()).map(|e| (e.job_id.clone(), e.status)).collect();
    (list, st.next(thing).map(|e| (e.job_id.clone(), e.execution_number)))
}

fn conflict(error_type: &'static str, message: String) -> AwsError {
    AwsError::new(409, error_type, message)
}

/// Things a target ARN names: a thing, or every thing in a group and the groups below it.
fn resolve_one(registry: &Registry, arn: &str) -> Result<Vec<String>, AwsError> {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    if let Some(name) = resource.strip_prefix("thing/") {
        return match registry.thing(name) {
            Some(_) => Ok(vec![name.to_string()]),
            None => Err(AwsError::not_found(format!("Thing {name} (a target of the job) not found"))),
        };
    }
    if let Some(name) = resource.strip_prefix("thinggroup/") {
        return registry.things_in_group(name, true);
    }
    Err(AwsError::invalid_request(format!("{arn:?} is not a thing or thing group ARN")))
}

/// The things `targets` name now (missing ones skipped when `lenient`).
fn resolve(registry: &Registry, targets: &[String], lenient: bool) -> Result<BTreeSet<String>, AwsError> {
    let mut out = BTreeSet::new();
    for t in targets {
        match resolve_one(registry, t) {
            Ok(things) => out.extend(things),
            Err(e) if !lenient => return Err(e),
            Err(_) => {}
        }
    }
    Ok(out)
}

/// The first rollout rate of a job (0: no limit).
fn initial_rate(job: &Job) -> u32 {
    match &job.config.job_executions_rollout_config {
        None => 0,
        Some(r) => match &r.exponential_rate {
            Some(e) => e.base_rate_per_minute.min(r.maximum_per_minute.unwrap_or(1000)),
            None => r.maximum_per_minute.unwrap_or(0),
        },
    }
}

/// How many executions `job`'s rate allows at `now`, in thousandths (at most a minute's).
fn credit_at(job: &Job, now: u64, minute_ms: u64) -> u64 {
    let r = &job.rollout;
    let elapsed = now.saturating_sub(r.credited_at);
    let added = u64::from(r.rate) * 1000 * elapsed / minute_ms.max(1);
    (r.credit_milli + added).min(u64::from(r.rate).max(1) * 1000)
}

/// The things a continuous job should reach and does not yet, and the queued executions
/// whose things left its targets.
fn drift(st: &State, registry: &Registry, job: &Job) -> (Vec<String>, Vec<String>) {
    let wanted = resolve(registry, &job.targets, true).unwrap_or_default();
    let pending: BTreeSet<&String> = job.rollout.pending.iter().collect();
    let joined = wanted
        .iter()
        .filter(|t| !pending.contains(t))
        .filter(|t| st.execution(t, &job.job_id).is_none_or(|e| e.status == ExecutionStatus::Removed))
        .cloned()
        .collect();
    let left = st
        .of_job(&job.job_id)
        .filter(|e| e.status == ExecutionStatus::Queued && !wanted.contains(&e.thing_name))
        .map(|e| e.thing_name.clone())
        .chain(job.rollout.pending.iter().filter(|t| !wanted.contains(*t)).cloned())
        .collect();
    (joined, left)
}

/// Whether a tick at `now` would change anything.
pub(super) fn due(st: &State, registry: &Registry, now: u64, minute_ms: u64) -> bool {
    let job_due = |j: &Job| {
        let r = &j.rollout;
        (j.status == JobStatus::Scheduled && r.start_at.is_some_and(|s| s <= now))
            || r.end_at.is_some_and(|e| e <= now && matches!(j.status, JobStatus::InProgress | JobStatus::Scheduled))
            || (j.status == JobStatus::InProgress
                && ((!r.pending.is_empty()
                    && !r.stopped
                    && (r.rate == 0 || credit_at(j, now, minute_ms) >= 1000)
                    && j.in_maintenance_window(now))
                    || (j.target_selection == TargetSelection::Continuous && {
                        let (joined, left) = drift(st, registry, j);
                        !joined.is_empty() || !left.is_empty()
                    })))
    };
    st.jobs.values().any(job_due)
        || st.executions.values().any(|e| !e.status.is_terminal() && e.deadline().is_some_and(|d| d <= now))
}

/// One command being applied.
pub(super) struct Tx<'a> {
    st: &'a mut State,
    registry: &'a Registry,
    writes: &'a mut Batch,
    before: BTreeMap<String, Pending>,
    events: Vec<Effect>,
    now: u64,
    minute_ms: u64,
}

impl<'a> Tx<'a> {
    pub(super) fn new(st: &'a mut State, registry: &'a Registry, writes: &'a mut Batch) -> Tx<'a> {
        Tx { st, registry, writes, before: BTreeMap::new(), events: Vec::new(), now: 0, minute_ms: 60_000 }
    }

    /// The notifications and events of everything applied.
    pub(super) fn finish(self) -> Vec<Effect> {
        let mut out = Vec::new();
        let ts = self.now / 1000;
        for (thing, before) in &self.before {
            let after = pending_of(self.st, thing);
            if after.0 != before.0 {
                let (in_progress, queued) = self.st.pending(thing);
                let mut jobs = serde_json::Map::new();
                if !queued.is_empty() {
                    jobs.insert("QUEUED".into(), queued.iter().map(|e| documents::data_summary(e)).collect());
                }
                if !in_progress.is_empty() {
                    jobs.insert("IN_PROGRESS".into(), in_progress.iter().map(|e| documents::data_summary(e)).collect());
                }
                out.push(Effect {
                    topic: format!("$aws/things/{thing}/jobs/notify"),
                    doc: json!({ "timestamp": ts, "jobs": jobs }),
                });
            }
            if after.1 != before.1 {
                let mut doc = json!({ "timestamp": ts });
                if let Some(e) = self.st.next(thing) {
                    let document = self.st.jobs.get(&e.job_id).map(|j| j.document.as_str());
                    doc["execution"] = documents::data_execution(e, document, true, self.now);
                }
                out.push(Effect { topic: format!("$aws/things/{thing}/jobs/notify-next"), doc });
            }
        }
        out.extend(self.events);
        out
    }

    fn touch(&mut self, thing: &str) {
        if !self.before.contains_key(thing) {
            let p = pending_of(self.st, thing);
            self.before.insert(thing.to_string(), p);
        }
    }

    fn put_job(&mut self, id: &str) {
        if let Some(j) = self.st.jobs.get(id) {
            self.writes.put(Table::Registry, key(JOB, &[id]), serde_json::to_vec(j).unwrap_or_default());
        }
    }

    fn put_execution(&mut self, thing: &str, job: &str) {
        if let Some(e) = self.st.execution(thing, job) {
            let bytes = serde_json::to_vec(e).unwrap_or_default();
            self.writes.put(Table::Registry, key(EXECUTION, &[job, thing]), bytes);
        }
    }

    fn job(&self, id: &str) -> Result<&Job, AwsError> {
        self.st.jobs.get(id).ok_or_else(|| super::job_not_found(id))
    }

    fn timers(&self, job: &str) -> Timers {
        let in_progress_minutes = self
            .st
            .jobs
            .get(job)
            .and_then(|j| j.config.timeout_config.as_ref())
            .and_then(|t| t.in_progress_timeout_in_minutes);
        Timers { in_progress_minutes, minute_ms: self.minute_ms }
    }

    pub(super) fn run(&mut self, command: Command) -> Result<Outcome, AwsError> {
        match command {
            Command::CreateJob { job, now } => self.create_job(*job, now),
            Command::UpdateJob { job_id, config, now } => {
                self.now = now;
                let job = self.st.jobs.get_mut(&job_id).ok_or_else(|| super::job_not_found(&job_id))?;
                let c = *config;
                let rollout_changed = c.job_executions_rollout_config.is_some();
                job.config = c.or(std::mem::take(&mut job.config));
                if rollout_changed {
                    job.rollout.rate = initial_rate(job);
                }
                job.last_updated_at = now;
                self.put_job(&job_id);
                Ok(Outcome::Done)
            }
            Command::CancelJob { job_id, force, reason_code, comment, now } => {
                self.now = now;
                let status = self.job(&job_id)?.status;
                if status == JobStatus::Completed {
                    return Err(AwsError::invalid_request(format!("Job {job_id} is COMPLETED and cannot be canceled")));
                }
                self.cancel_job(&job_id, force, reason_code, comment);
                Ok(Outcome::Job(Box::new(self.job(&job_id)?.clone())))
            }
            Command::DeleteJob { job_id, force, now } => {
                self.now = now;
                let job = self.job(&job_id)?;
                if matches!(job.status, JobStatus::InProgress | JobStatus::Scheduled) && !force {
                    return Err(conflict(
                        "InvalidStateTransitionException",
                        format!("Job {job_id} is {}: delete it with force", job.status.name()),
                    ));
                }
                self.job_event(&job_id, "deleted");
                let things: Vec<String> = self.st.by_job.get(&job_id).into_iter().flatten().cloned().collect();
                for thing in things {
                    self.touch(&thing);
                    self.st.remove_execution(&thing, &job_id);
                    self.writes.delete(Table::Registry, key(EXECUTION, &[&job_id, &thing]));
                }
                self.st.counts.remove(&job_id);
                self.st.forget_attempts(|(_, j, _)| *j == job_id, self.writes);
                self.st.jobs.remove(&job_id);
                self.writes.delete(Table::Registry, key(JOB, &[&job_id]));
                Ok(Outcome::Done)
            }
            Command::AssociateTargets { job_id, targets, comment, now } => {
                self.now = now;
                let job = self.job(&job_id)?;
                if job.target_selection != TargetSelection::Continuous {
                    return Err(AwsError::invalid_request(format!(
                        "Job {job_id} is a SNAPSHOT job: only CONTINUOUS jobs take new targets"
                    )));
                }
                if job.status != JobStatus::InProgress {
                    return Err(AwsError::invalid_request(format!(
                        "Job {job_id} is {}: targets can be added only while it is IN_PROGRESS",
                        job.status.name()
                    )));
                }
                resolve(self.registry, &targets, false)?;
                let mut all = job.targets.clone();
                for t in targets {
                    if !all.contains(&t) {
                        all.push(t);
                    }
                }
                if all.len() > 100 {
                    return Err(AwsError::new(410, "LimitExceededException", "A job has at most 100 targets"));
                }
                let job = self.st.jobs.get_mut(&job_id).ok_or_else(|| super::job_not_found(&job_id))?;
                job.targets = all;
                job.comment = comment.or(job.comment.take());
                job.last_updated_at = now;
                self.reconcile(&job_id);
                self.dispatch(&job_id);
                self.put_job(&job_id);
                Ok(Outcome::Job(Box::new(self.job(&job_id)?.clone())))
            }
            Command::CancelExecution { job_id, thing, force, expected_version, status_details, now } => {
                self.now = now;
                self.touch(&thing);
                self.st
                    .modify_execution(&thing, &job_id, |e| {
                        execution::cancel(e, force, expected_version, status_details.as_ref(), now)
                    })
                    .ok_or_else(|| super::execution_not_found(&job_id, &thing))??;
                self.put_execution(&thing, &job_id);
                self.on_terminal(&job_id, &thing);
                Ok(Outcome::Done)
            }
            Command::DeleteExecution { job_id, thing, execution_number, force, now } => {
                self.now = now;
                let e =
                    self.st.execution(&thing, &job_id).ok_or_else(|| super::execution_not_found(&job_id, &thing))?;
                if e.execution_number != execution_number
                    && self.st.history.contains_key(&(thing.clone(), job_id.clone(), execution_number))
                {
                    self.st.forget_attempts(|k| k.0 == thing && k.1 == job_id && k.2 == execution_number, self.writes);
                    return Ok(Outcome::Done);
                }
                if e.execution_number != execution_number {
                    return Err(AwsError::not_found(format!(
                        "Job execution {execution_number} of job {job_id} on thing {thing} not found"
                    )));
                }
                if !e.status.is_terminal() && !force {
                    return Err(conflict(
                        "InvalidStateTransitionException",
                        format!(
                            "Job execution of job {job_id} on thing {thing} is {}: delete it with force",
                            e.status.name()
                        ),
                    ));
                }
                self.touch(&thing);
                self.st.remove_execution(&thing, &job_id);
                self.writes.delete(Table::Registry, key(EXECUTION, &[&job_id, &thing]));
                self.check_completion(&job_id);
                Ok(Outcome::Done)
            }
            Command::StartNext { thing, status_details, step_timeout_minutes, now, minute_ms } => {
                self.now = now;
                self.minute_ms = minute_ms;
                let Some(job_id) = self.st.next(&thing).map(|e| e.job_id.clone()) else {
                    return Ok(Outcome::Execution(None));
                };
                self.touch(&thing);
                let timers = self.timers(&job_id);
                self.st.modify_execution(&thing, &job_id, |e| {
                    execution::start_next(e, status_details.as_ref(), step_timeout_minutes, timers, now)
                });
                self.put_execution(&thing, &job_id);
                Ok(self.execution_outcome(&thing, &job_id))
            }
            Command::UpdateExecution { job_id, thing, update, now, minute_ms } => {
                self.now = now;
                self.minute_ms = minute_ms;
                let timers = self.timers(&job_id);
                self.touch(&thing);
                let terminal = self
                    .st
                    .modify_execution(&thing, &job_id, |e| {
                        execution::update(e, &update, timers, now).map(|()| e.status.is_terminal())
                    })
                    .ok_or_else(|| super::execution_not_found(&job_id, &thing))?
                    .map_err(|r| r.to_aws())?;
                let outcome = self.execution_outcome(&thing, &job_id);
                self.put_execution(&thing, &job_id);
                if terminal {
                    self.on_terminal(&job_id, &thing);
                }
                Ok(outcome)
            }
            Command::CreateTemplate { template } => {
                let id = template.job_template_id.clone();
                if self.st.templates.contains_key(&id) {
                    return Err(AwsError::conflict(format!("Job template {id} already exists")));
                }
                let bytes = serde_json::to_vec(&*template).unwrap_or_default();
                self.writes.put(Table::Registry, key(TEMPLATE, &[&id]), bytes);
                self.st.templates.insert(id, *template);
                Ok(Outcome::Done)
            }
            Command::DeleteTemplate { job_template_id } => {
                if self.st.templates.remove(&job_template_id).is_none() {
                    return Err(AwsError::not_found(format!("Job template {job_template_id} not found")));
                }
                self.writes.delete(Table::Registry, key(TEMPLATE, &[&job_template_id]));
                Ok(Outcome::Done)
            }
            Command::SetEventConfigurations { configurations, now } => {
                if let Some(bad) = configurations.keys().find(|k| !EVENT_TYPES.contains(&k.as_str())) {
                    return Err(AwsError::invalid_request(format!(
                        "{bad:?} is not an event type (one of {})",
                        EVENT_TYPES.join(", ")
                    )));
                }
                let ev = &mut self.st.events;
                ev.enabled.extend(configurations);
                if ev.created == 0 {
                    ev.created = now;
                }
                ev.modified = now;
                let bytes = serde_json::to_vec(ev).unwrap_or_default();
                self.writes.put(Table::Registry, key(EVENTS, &[""]), bytes);
                Ok(Outcome::Done)
            }
            Command::Tick { now, minute_ms } => {
                self.now = now;
                self.minute_ms = minute_ms;
                self.tick();
                Ok(Outcome::Done)
            }
        }
    }

    fn execution_outcome(&self, thing: &str, job: &str) -> Outcome {
        let e = self.st.execution(thing, job).cloned();
        let doc = self.st.jobs.get(job).map(|j| j.document.clone()).unwrap_or_default();
        Outcome::Execution(e.map(|e| Box::new((e, doc))))
    }

    fn create_job(&mut self, mut job: Job, now: u64) -> Result<Outcome, AwsError> {
        self.now = now;
        if self.st.jobs.contains_key(&job.job_id) {
            return Err(conflict("ResourceAlreadyExistsException", format!("Job {} already exists", job.job_id)));
        }
        let things = resolve(self.registry, &job.targets, false)?;
        job.status =
            if job.rollout.start_at.is_some_and(|s| s > now) { JobStatus::Scheduled } else { JobStatus::InProgress };
        job.rollout.rate = initial_rate(&job);
        job.rollout.pending = things.into_iter().collect();
        job.rollout.credited_at = now;
        job.rollout.credit_milli = if job.rollout.rate > 0 { 1000 } else { 0 };
        job.created_at = now;
        job.last_updated_at = now;
        let id = job.job_id.clone();
        self.st.jobs.insert(id.clone(), job);
        self.dispatch(&id);
        self.check_completion(&id);
        self.put_job(&id);
        Ok(Outcome::Job(Box::new(self.job(&id)?.clone())))
    }

    /// Gives executions to as many pending things as the job's rate allows now.
    fn dispatch(&mut self, job_id: &str) {
        let now = self.now;
        let minute_ms = self.minute_ms;
        let Some(job) = self.st.jobs.get_mut(job_id) else { return };
        if job.status != JobStatus::InProgress || job.rollout.stopped || job.rollout.pending.is_empty() {
            return;
        }
        if !job.in_maintenance_window(now) {
            // Outside every window the rate banks nothing: a window opens at the rate.
            job.rollout.credited_at = now;
            return;
        }
        let n = if job.rollout.rate == 0 {
            job.rollout.pending.len()
        } else {
            let credit = credit_at(job, now, minute_ms);
            let n = (credit / 1000) as usize;
            job.rollout.credit_milli = credit - (n as u64 * 1000).min(credit);
            job.rollout.credited_at = now;
            n.min(job.rollout.pending.len())
        };
        if n == 0 {
            return;
        }
        let things: Vec<String> = job.rollout.pending.drain(..n).collect();
        job.rollout.notified_since_increase += things.len() as u32;
        for thing in things {
            if self.registry.thing(&thing).is_some() {
                self.queue(job_id, &thing, 0);
            }
        }
        self.maybe_raise_rate(job_id);
        self.put_job(job_id);
    }

    /// A new QUEUED execution of `job` on `thing` (numbered after any earlier one).
    fn queue(&mut self, job_id: &str, thing: &str, retry_attempt: u32) {
        self.touch(thing);
        let number = self.st.execution(thing, job_id).map_or(1, |e| e.execution_number + 1);
        if let Some(old) = self.st.remove_execution(thing, job_id) {
            // The earlier attempt stays describable by its execution number, as in AWS.
            let n = old.execution_number.to_string();
            self.writes.put(
                Table::Registry,
                key(ATTEMPT, &[job_id, thing, &n]),
                serde_json::to_vec(&old).unwrap_or_default(),
            );
            self.st.history.insert((thing.to_string(), job_id.to_string(), old.execution_number), old);
        }
        let e = Execution {
            job_id: job_id.to_string(),
            thing_name: thing.to_string(),
            status: ExecutionStatus::Queued,
            status_details: BTreeMap::new(),
            queued_at: self.now,
            started_at: None,
            last_updated_at: self.now,
            version_number: 1,
            execution_number: number,
            retry_attempt,
            force_canceled: false,
            in_progress_deadline: None,
            step_deadline: None,
        };
        self.st.insert_execution(e);
        self.put_execution(thing, job_id);
    }

    fn maybe_raise_rate(&mut self, job_id: &str) {
        let Some(job) = self.st.jobs.get_mut(job_id) else { return };
        let Some(r) = &job.config.job_executions_rollout_config else { return };
        let Some(e) = &r.exponential_rate else { return };
        let c = &e.rate_increase_criteria;
        let ro = &mut job.rollout;
        let notified = c.number_of_notified_things.is_some_and(|n| ro.notified_since_increase >= n);
        let succeeded = c.number_of_succeeded_things.is_some_and(|n| ro.succeeded_since_increase >= n);
        if notified || succeeded {
            let max = r.maximum_per_minute.unwrap_or(1000);
            ro.rate = ((f64::from(ro.rate) * e.increment_factor).ceil() as u32).clamp(1, max);
            ro.notified_since_increase = 0;
            ro.succeeded_since_increase = 0;
        }
    }

    /// After an execution reached a terminal status: its event, a retry, the rate, the
    /// abort criteria and the job's completion.
    fn on_terminal(&mut self, job_id: &str, thing: &str) {
        let Some(e) = self.st.execution(thing, job_id).cloned() else { return };
        self.execution_event(&e);
        let Some(job) = self.st.jobs.get(job_id) else { return };
        if job.status != JobStatus::InProgress {
            return;
        }
        if let Some(r) = &job.config.job_executions_retry_config {
            let kind = e.status.name();
            let allowed = r
                .criteria_list
                .iter()
                .filter(|c| {
                    c.failure_type == kind || (c.failure_type == "ALL" && matches!(kind, "FAILED" | "TIMED_OUT"))
                })
                .map(|c| c.number_of_retries)
                .max();
            if allowed.is_some_and(|n| e.retry_attempt < n) {
                self.queue(job_id, thing, e.retry_attempt + 1);
                return;
            }
        }
        if e.status == ExecutionStatus::Succeeded {
            if let Some(job) = self.st.jobs.get_mut(job_id) {
                job.rollout.succeeded_since_increase += 1;
            }
            self.maybe_raise_rate(job_id);
            self.put_job(job_id);
        }
        self.check_abort(job_id);
        self.check_completion(job_id);
    }

    fn check_abort(&mut self, job_id: &str) {
        let Some(job) = self.st.jobs.get(job_id) else { return };
        let Some(abort) = &job.config.abort_config else { return };
        let counts = self.st.status_counts(job_id);
        let n = |s: ExecutionStatus| counts[s.index()];
        let (failed_, rejected, timed_out) =
            (n(ExecutionStatus::Failed), n(ExecutionStatus::Rejected), n(ExecutionStatus::TimedOut));
        let executed = n(ExecutionStatus::Succeeded) + failed_ + rejected + timed_out;
        let failed = BTreeMap::from([
            ("FAILED", failed_),
            ("REJECTED", rejected),
            ("TIMED_OUT", timed_out),
            ("ALL", failed_ + rejected + timed_out),
        ]);
        let hit = abort.criteria_list.iter().find(|c| {
            let f = failed.get(c.failure_type.as_str()).copied().unwrap_or(0);
            executed >= u64::from(c.min_number_of_executed_things)
                && executed > 0
                && (f as f64) * 100.0 >= c.threshold_percentage * executed as f64
        });
        if let Some(c) = hit {
            let comment = format!(
                "Canceled by abortConfig: {} executions reached {}% of {executed} executed things",
                c.failure_type, c.threshold_percentage
            );
            self.cancel_job(job_id, false, Some("ABORTED".into()), Some(comment));
        }
    }

    fn check_completion(&mut self, job_id: &str) {
        let Some(job) = self.st.jobs.get(job_id) else { return };
        if job.status != JobStatus::InProgress
            || job.target_selection != TargetSelection::Snapshot
            || !job.rollout.pending.is_empty()
            || self.st.status_counts(job_id)[..2].iter().any(|n| *n > 0)
        {
            return;
        }
        if let Some(job) = self.st.jobs.get_mut(job_id) {
            job.status = JobStatus::Completed;
            job.completed_at = Some(self.now);
            job.last_updated_at = self.now;
        }
        self.put_job(job_id);
        self.job_event(job_id, "completed");
    }

    fn cancel_job(&mut self, job_id: &str, force: bool, reason_code: Option<String>, comment: Option<String>) {
        let now = self.now;
        let Some(job) = self.st.jobs.get_mut(job_id) else { return };
        if job.status == JobStatus::Canceled && (!force || job.force_canceled) {
            return;
        }
        job.status = JobStatus::Canceled;
        job.force_canceled |= force;
        job.reason_code = reason_code.or(job.reason_code.take());
        job.comment = comment.or(job.comment.take());
        job.rollout.pending.clear();
        job.last_updated_at = now;
        let things: Vec<String> = self.st.by_job.get(job_id).into_iter().flatten().cloned().collect();
        for thing in things {
            let Some(status) = self.st.execution(&thing, job_id).map(|e| e.status) else { continue };
            if status == ExecutionStatus::Queued || (status == ExecutionStatus::InProgress && force) {
                self.touch(&thing);
                self.st.modify_execution(&thing, job_id, |e| {
                    e.force_canceled = status == ExecutionStatus::InProgress;
                    execution::end(e, ExecutionStatus::Canceled, now)
                });
                self.put_execution(&thing, job_id);
                if let Some(e) = self.st.execution(&thing, job_id).cloned() {
                    self.execution_event(&e);
                }
            }
        }
        self.put_job(job_id);
        self.job_event(job_id, "canceled");
    }

    /// A continuous job follows its groups: things that joined are queued for dispatch,
    /// queued executions of things that left are REMOVED.
    fn reconcile(&mut self, job_id: &str) {
        let Some(job) = self.st.jobs.get(job_id) else { return };
        let (joined, left) = drift(self.st, self.registry, job);
        let left: BTreeSet<String> = left.into_iter().collect();
        if let Some(job) = self.st.jobs.get_mut(job_id) {
            job.rollout.pending.retain(|t| !left.contains(t));
            job.rollout.pending.extend(joined);
        }
        for thing in &left {
            let queued = self.st.execution(thing, job_id).is_some_and(|e| e.status == ExecutionStatus::Queued);
            if queued {
                self.touch(thing);
                let now = self.now;
                self.st.modify_execution(thing, job_id, |e| execution::end(e, ExecutionStatus::Removed, now));
                self.put_execution(thing, job_id);
                if let Some(e) = self.st.execution(thing, job_id).cloned() {
                    self.execution_event(&e);
                }
            }
        }
        self.put_job(job_id);
    }

    fn tick(&mut self) {
        let now = self.now;
        let ids: Vec<String> = self.st.jobs.keys().cloned().collect();
        for id in &ids {
            let Some(job) = self.st.jobs.get_mut(id) else { continue };
            let mut changed = false;
            if job.status == JobStatus::Scheduled && job.rollout.start_at.is_some_and(|s| s <= now) {
                job.status = JobStatus::InProgress;
                job.rollout.credited_at = now;
                job.last_updated_at = now;
                changed = true;
            }
            let ended = job.rollout.end_at.is_some_and(|e| e <= now)
                && matches!(job.status, JobStatus::InProgress | JobStatus::Scheduled);
            let behavior = job.scheduling_config.as_ref().and_then(|s| s.end_behavior.clone());
            if ended {
                job.rollout.end_at = None;
                changed = true;
                match behavior.as_deref() {
                    Some("CANCEL") => {
                        self.cancel_job(id, false, None, Some("Canceled at the scheduled end time".into()))
                    }
                    Some("FORCE_CANCEL") => {
                        self.cancel_job(id, true, None, Some("Canceled at the scheduled end time".into()))
                    }
                    _ => {
                        if let Some(job) = self.st.jobs.get_mut(id) {
                            job.rollout.stopped = true;
                            job.rollout.pending.clear();
                            if job.status == JobStatus::Scheduled {
                                job.status = JobStatus::InProgress;
                            }
                        }
                    }
                }
            }
            let Some(job) = self.st.jobs.get(id) else { continue };
            if job.status == JobStatus::InProgress {
                if job.target_selection == TargetSelection::Continuous && !job.rollout.stopped {
                    self.reconcile(id);
                }
                self.dispatch(id);
                self.check_completion(id);
            }
            if changed {
                self.put_job(id);
            }
        }
        let expired: Vec<(String, String)> = self
            .st
            .executions
            .values()
            .filter(|e| !e.status.is_terminal() && e.deadline().is_some_and(|d| d <= now))
            .map(|e| (e.thing_name.clone(), e.job_id.clone()))
            .collect();
        for (thing, job) in expired {
            self.touch(&thing);
            self.st.modify_execution(&thing, &job, |e| execution::end(e, ExecutionStatus::TimedOut, now));
            self.put_execution(&thing, &job);
            self.on_terminal(&job, &thing);
        }
    }

    fn job_event(&mut self, job_id: &str, operation: &str) {
        if !self.st.events.on("JOB") {
            return;
        }
        let Some(job) = self.st.jobs.get(job_id) else { return };
        let mut doc = json!({
            "eventType": "JOB",
            "eventId": format!("{job_id}-{operation}-{}", self.now),
            "timestamp": self.now / 1000,
            "operation": operation,
            "jobId": job_id,
            "status": job.status.name(),
            "targetSelection": job.target_selection,
            "targets": job.targets,
            "createdAt": self.now.min(job.created_at) / 1000,
            "lastUpdatedAt": job.last_updated_at / 1000,
            "jobProcessDetails": self.st.process_details(job),
        });
        if let Some(d) = &job.config.description {
            doc["description"] = json!(d);
        }
        if let Some(c) = job.completed_at {
            doc["completedAt"] = json!(c / 1000);
        }
        if operation == "canceled" {
            doc["forceCanceled"] = json!(job.force_canceled);
            if let Some(c) = &job.comment {
                doc["comment"] = json!(c);
            }
            if let Some(r) = &job.reason_code {
                doc["reasonCode"] = json!(r);
            }
        }
        self.events.push(Effect { topic: format!("$aws/events/job/{job_id}/{operation}"), doc });
    }

    fn execution_event(&mut self, e: &Execution) {
        if !self.st.events.on("JOB_EXECUTION") || !e.status.is_terminal() {
            return;
        }
        let operation = e.status.name().to_ascii_lowercase();
        let thing_arn = self.registry.thing(&e.thing_name).map(|t| t.thing_arn).unwrap_or_default();
        let doc = json!({
            "eventType": "JOB_EXECUTION",
            "eventId": format!("{}-{}-{}-{}", e.job_id, e.thing_name, e.execution_number, e.version_number),
            "timestamp": self.now / 1000,
            "operation": operation,
            "jobId": e.job_id,
            "thingArn": thing_arn,
            "status": e.status.name(),
            "statusDetails": e.status_details,
            "versionNumber": e.version_number,
            "executionNumber": e.execution_number,
        });
        self.events.push(Effect { topic: format!("$aws/events/jobExecution/{}/{operation}", e.job_id), doc });
    }
}
