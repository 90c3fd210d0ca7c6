//! AWS IoT Jobs: jobs, their executions on things, job templates and the event
//! configuration, as replicated state. Every change is a [`Command`] the `meta` group
//! applies (with the registry at hand, to resolve thing-group targets in the same order as
//! membership changes); records live in the `registry` column family and are loaded whole at
//! start. Time-driven work (rollout rates, timers, schedules, continuous groups) is a
//! [`Command::Tick`] carrying the time, so that applying stays deterministic.
//!
//! `model` holds the records, `cron` the maintenance windows' expressions, `execution` the rules of one execution, `documents` the JSON
//! each API answers with, `topics` the MQTT topics, `apply` the commands.

mod apply;
pub mod cron;
pub mod documents;
pub mod execution;
pub mod model;
pub mod requests;
pub mod topics;

use std::collections::{BTreeMap, BTreeSet};

use ferrite_cluster::{Batch, ReadRows, StoreError, Table};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::registry::Registry;
use execution::DeviceUpdate;
use ferrite_aws::AwsError;
use model::{Execution, ExecutionStatus, Job, JobConfig, JobStatus, JobTemplate};

/// The event types of UpdateEventConfigurations (AWS's list); only JOB and JOB_EXECUTION
/// publish events here (docs/jobs.md).
pub const EVENT_TYPES: &[&str] = &[
    "THING",
    "THING_GROUP",
    "THING_TYPE",
    "THING_GROUP_MEMBERSHIP",
    "THING_GROUP_HIERARCHY",
    "THING_TYPE_ASSOCIATION",
    "JOB",
    "JOB_EXECUTION",
    "POLICY",
    "CERTIFICATE",
    "CA_CERTIFICATE",
];

/// A message the jobs state asks to be published after a change: `notify`, `notify-next`
/// and job events.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// The topic.
    pub topic: String,
    /// The JSON payload.
    pub doc: serde_json::Value,
}

/// Where applied changes send their effects (the node's jobs runtime).
pub type EffectSink = Box<dyn Fn(Vec<Effect>) + Send + Sync>;

/// A change to jobs state. Times, ids and ARNs come from the proposer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// CreateJob: `job` is complete but for its executions and rollout.
    CreateJob { job: Box<Job>, now: u64 },
    /// UpdateJob: the blocks given replace the job's.
    UpdateJob { job_id: String, config: Box<JobConfig>, now: u64 },
    /// CancelJob.
    CancelJob { job_id: String, force: bool, reason_code: Option<String>, comment: Option<String>, now: u64 },
    /// DeleteJob.
    DeleteJob { job_id: String, force: bool, now: u64 },
    /// AssociateTargetsWithJob.
    AssociateTargets { job_id: String, targets: Vec<String>, comment: Option<String>, now: u64 },
    /// CancelJobExecution.
    CancelExecution {
        job_id: String,
        thing: String,
        force: bool,
        expected_version: Option<u64>,
        status_details: Option<BTreeMap<String, String>>,
        now: u64,
    },
    /// DeleteJobExecution.
    DeleteExecution { job_id: String, thing: String, execution_number: u64, force: bool, now: u64 },
    /// StartNextPendingJobExecution.
    StartNext {
        thing: String,
        status_details: Option<BTreeMap<String, String>>,
        step_timeout_minutes: Option<i64>,
        now: u64,
        minute_ms: u64,
    },
    /// UpdateJobExecution.
    UpdateExecution { job_id: String, thing: String, update: DeviceUpdate, now: u64, minute_ms: u64 },
    /// CreateJobTemplate.
    CreateTemplate { template: Box<JobTemplate> },
    /// DeleteJobTemplate.
    DeleteTemplate { job_template_id: String },
    /// UpdateEventConfigurations: event type -> enabled.
    SetEventConfigurations { configurations: BTreeMap<String, bool>, now: u64 },
    /// The time-driven work due at `now`.
    Tick { now: u64, minute_ms: u64 },
}

/// What an applied [`Command`] answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to report.
    Done,
    /// The job created, canceled or changed.
    Job(Box<Job>),
    /// An execution (and its job's document), or none pending.
    Execution(Option<Box<(Execution, String)>>),
}

/// Everything jobs keep, under one lock.
#[derive(Debug, Default)]
pub struct State {
    /// Jobs by id.
    pub jobs: BTreeMap<String, Job>,
    /// The latest execution of each (thing, job).
    pub executions: BTreeMap<(String, String), Execution>,
    /// Things with an execution of each job.
    pub by_job: BTreeMap<String, BTreeSet<String>>,
    /// How many executions of each job are in each status (in the order of
    /// `ExecutionStatus::ALL`), kept with every change so that counts, completion and abort
    /// checks cost the same for 10 or 100,000 things.
    pub counts: BTreeMap<String, [u64; 8]>,
    /// Earlier attempts (retried or re-queued executions), by (thing, job, execution number).
    pub history: BTreeMap<(String, String, u64), Execution>,
    /// Job templates by id.
    pub templates: BTreeMap<String, JobTemplate>,
    /// Event types switched on, and when the configuration was created and changed.
    pub events: EventConfig,
}

/// The account's event configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventConfig {
    /// Event type -> enabled.
    pub enabled: BTreeMap<String, bool>,
    /// Epoch ms (0: never set).
    pub created: u64,
    /// Epoch ms.
    pub modified: u64,
}

impl EventConfig {
    /// Whether events of `kind` are published.
    pub fn on(&self, kind: &str) -> bool {
        self.enabled.get(kind).copied().unwrap_or(false)
    }
}

impl State {
    /// The executions of a thing that are pending (IN_PROGRESS first, then QUEUED, oldest
    /// first): the order AWS offers them in.
    pub fn pending(&self, thing: &str) -> (Vec<&Execution>, Vec<&Execution>) {
        let mut in_progress = Vec::new();
        let mut queued = Vec::new();
        for e in self.of_thing(thing) {
            match e.status {
                ExecutionStatus::InProgress => in_progress.push(e),
                ExecutionStatus::Queued => queued.push(e),
                _ => {}
            }
        }
        let order = |a: &&Execution, b: &&Execution| (a.queued_at, &a.job_id).cmp(&(b.queued_at, &b.job_id));
        in_progress.sort_by(order);
        queued.sort_by(order);
        (in_progress, queued)
    }

    /// The execution StartNext and `$next` pick.
    pub fn next(&self, thing: &str) -> Option<&Execution> {
        let (in_progress, queued) = self.pending(thing);
        in_progress.into_iter().next().or_else(|| queued.into_iter().next())
    }

    /// Every execution on `thing`, by job id.
    pub fn of_thing<'a>(&'a self, thing: &str) -> impl Iterator<Item = &'a Execution> + 'a {
        let thing = thing.to_string();
        self.executions
            .range((thing.clone(), String::new())..)
            .take_while(move |((t, _), _)| *t == thing)
            .map(|(_, e)| e)
    }

    /// Every execution of `job`, by thing name.
    pub fn of_job<'a>(&'a self, job: &str) -> impl Iterator<Item = &'a Execution> + 'a {
        let things = self.by_job.get(job);
        let job = job.to_string();
        things.into_iter().flatten().filter_map(move |t| self.executions.get(&(t.clone(), job.clone())))
    }

    /// One execution.
    pub fn execution(&self, thing: &str, job: &str) -> Option<&Execution> {
        self.executions.get(&(thing.to_string(), job.to_string()))
    }

    /// What a data-plane DescribeJobExecution names: `$next` (the next pending execution)
    /// or one attempt of a job.
    pub fn describe(&self, thing: &str, job: &str, number: Option<u64>) -> Option<&Execution> {
        if job == "$next" {
            self.next(thing)
        } else {
            self.attempt(thing, job, number)
        }
    }

    /// One attempt: the latest execution when `number` is none or its own, else an earlier one.
    pub fn attempt(&self, thing: &str, job: &str, number: Option<u64>) -> Option<&Execution> {
        let latest = self.execution(thing, job)?;
        match number {
            None => Some(latest),
            Some(n) if n == latest.execution_number => Some(latest),
            Some(n) => self.history.get(&(thing.to_string(), job.to_string(), n)),
        }
    }

    /// `jobProcessDetails` of a job.
    pub fn process_details(&self, job: &Job) -> serde_json::Value {
        documents::process_details(&self.status_counts(&job.job_id), &job.rollout.pending)
    }

    /// Executions of `job` per status, in the order of `ExecutionStatus::ALL`.
    pub fn status_counts(&self, job: &str) -> [u64; 8] {
        self.counts.get(job).copied().unwrap_or_default()
    }

    fn count(&mut self, e: &Execution, add: bool) {
        let c = &mut self.counts.entry(e.job_id.clone()).or_default()[e.status.index()];
        *c = if add { *c + 1 } else { c.saturating_sub(1) };
    }

    /// Stores `e` as the latest execution of its (thing, job); answers the one it replaces.
    pub(crate) fn insert_execution(&mut self, e: Execution) -> Option<Execution> {
        let old = self.remove_execution(&e.thing_name, &e.job_id);
        self.count(&e, true);
        self.by_job.entry(e.job_id.clone()).or_default().insert(e.thing_name.clone());
        self.executions.insert((e.thing_name.clone(), e.job_id.clone()), e);
        old
    }

    /// Removes the latest execution of (thing, job).
    pub(crate) fn remove_execution(&mut self, thing: &str, job: &str) -> Option<Execution> {
        let e = self.executions.remove(&(thing.to_string(), job.to_string()))?;
        self.count(&e, false);
        if let Some(set) = self.by_job.get_mut(job) {
            set.remove(thing);
            if set.is_empty() {
                self.by_job.remove(job);
            }
        }
        Some(e)
    }

    /// Deletes the earlier attempts `which` picks (by (thing, job, execution number)).
    pub(crate) fn forget_attempts(&mut self, which: impl Fn(&(String, String, u64)) -> bool, writes: &mut Batch) {
        let gone: Vec<(String, String, u64)> = self.history.keys().filter(|k| which(k)).cloned().collect();
        for k in gone {
            self.history.remove(&k);
            writes.delete(Table::Registry, key(ATTEMPT, &[&k.1, &k.0, &k.2.to_string()]));
        }
    }

    /// Changes the latest execution of (thing, job) with `f`, keeping the counts.
    pub(crate) fn modify_execution<R>(
        &mut self,
        thing: &str,
        job: &str,
        f: impl FnOnce(&mut Execution) -> R,
    ) -> Option<R> {
        let mut e = self.executions.get(&(thing.to_string(), job.to_string()))?.clone();
        let r = f(&mut e);
        self.insert_execution(e);
        Some(r)
    }
}

/// The jobs state a `meta` member applies commands to.
#[derive(Default)]
pub struct Jobs {
    state: RwLock<State>,
    sink: Mutex<Option<EffectSink>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").field("jobs", &self.state.read().jobs.len()).finish()
    }
}

pub(crate) fn key(kind: &[u8], parts: &[&str]) -> Vec<u8> {
    let mut k = kind.to_vec();
    for p in parts {
        k.push(0);
        k.extend_from_slice(p.as_bytes());
    }
    k
}

const JOB: &[u8] = b"job";
const EXECUTION: &[u8] = b"jobx";
const ATTEMPT: &[u8] = b"jobattempt";
const TEMPLATE: &[u8] = b"jobtemplate";
const EVENTS: &[u8] = b"eventconfig";

fn load_kind<T: serde::de::DeserializeOwned>(rows: &impl ReadRows, kind: &[u8]) -> Result<Vec<T>, StoreError> {
    let mut prefix = kind.to_vec();
    prefix.push(0);
    let mut out = Vec::new();
    for (k, v) in rows.scan_prefix(Table::Registry, &prefix)? {
        match serde_json::from_slice(&v) {
            Ok(r) => out.push(r),
            Err(e) => crate::metrics::undecodable_record("jobs", &String::from_utf8_lossy(&k), &e.to_string()),
        }
    }
    Ok(out)
}

impl Jobs {
    /// Loads every jobs record from storage (or a snapshot's rows).
    pub fn load(rows: &impl ReadRows) -> Result<Jobs, StoreError> {
        let mut st = State::default();
        for j in load_kind::<Job>(rows, JOB)? {
            st.jobs.insert(j.job_id.clone(), j);
        }
        for e in load_kind::<Execution>(rows, EXECUTION)? {
            st.insert_execution(e);
        }
        for e in load_kind::<Execution>(rows, ATTEMPT)? {
            st.history.insert((e.thing_name.clone(), e.job_id.clone(), e.execution_number), e);
        }
        for t in load_kind::<JobTemplate>(rows, TEMPLATE)? {
            st.templates.insert(t.job_template_id.clone(), t);
        }
        if let Some(e) = load_kind::<EventConfig>(rows, EVENTS)?.into_iter().next() {
            st.events = e;
        }
        Ok(Jobs { state: RwLock::new(st), sink: Mutex::new(None) })
    }

    /// Takes over `other`'s records (a restored snapshot).
    pub fn replace(&self, other: Jobs) {
        *self.state.write() = other.state.into_inner();
    }

    /// Where effects of applied commands go from now on.
    pub fn set_sink(&self, sink: EffectSink) {
        *self.sink.lock() = Some(sink);
    }

    /// Reads the state.
    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, State> {
        self.state.read()
    }

    /// Applies one committed command; records go into `writes`, effects to the sink.
    pub fn apply(&self, command: Command, registry: &Registry, writes: &mut Batch) -> Result<Outcome, AwsError> {
        let mut st = self.state.write();
        let mut tx = apply::Tx::new(&mut st, registry, writes);
        let out = tx.run(command);
        let effects = tx.finish();
        drop(st);
        if !effects.is_empty() {
            if let Some(sink) = &*self.sink.lock() {
                sink(effects);
            }
        }
        out
    }

    /// Whether a [`Command::Tick`] at `now` would change anything.
    pub fn due(&self, registry: &Registry, now: u64, minute_ms: u64) -> bool {
        apply::due(&self.state.read(), registry, now, minute_ms)
    }

    /// A thing was deleted: its executions go with it (as AWS deletes them).
    pub fn forget_thing(&self, thing: &str, writes: &mut Batch) {
        let mut st = self.state.write();
        let jobs: Vec<String> = st.of_thing(thing).map(|e| e.job_id.clone()).collect();
        for job in jobs {
            st.remove_execution(thing, &job);
            writes.delete(Table::Registry, key(EXECUTION, &[&job, thing]));
        }
        st.forget_attempts(|k| k.0 == thing, writes);
    }
}

/// A job id or template id AWS accepts: `[a-zA-Z0-9_-]`, 1 to 64.
pub fn is_job_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The error for a job that does not exist.
pub fn job_not_found(id: &str) -> AwsError {
    AwsError::not_found(format!("Job {id} not found"))
}

/// The error for an execution that does not exist.
pub fn execution_not_found(job: &str, thing: &str) -> AwsError {
    AwsError::not_found(format!("Job execution of job {job} on thing {thing} not found"))
}

/// The status of a job, for the status filter of ListJobs.
pub fn parse_job_status(s: &str) -> Option<JobStatus> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::things::NewThing;
    use proptest::prelude::*;

    const THINGS: [&str; 3] = ["a", "b", "c"];

    fn registry() -> Registry {
        let r = Registry::default();
        for name in THINGS {
            let thing = NewThing { name: name.into(), thing_type: None, attributes: BTreeMap::new() };
            let c =
                crate::registry::Command::CreateThing { thing, arn_prefix: "arn:aws:iot:r:1:".into(), id: name.into() };
            r.apply(c, &mut Batch::new()).unwrap();
        }
        r
    }

    fn job(id: &str, config: JobConfig) -> Box<Job> {
        Box::new(Job {
            job_id: id.into(),
            job_arn: format!("arn:aws:iot:r:1:job/{id}"),
            targets: THINGS.iter().map(|t| format!("arn:aws:iot:r:1:thing/{t}")).collect(),
            target_selection: model::TargetSelection::Snapshot,
            document: "{}".into(),
            document_before_substitution: None,
            document_source: None,
            job_template_arn: None,
            document_parameters: None,
            scheduling_config: None,
            config,
            status: JobStatus::InProgress,
            force_canceled: false,
            reason_code: None,
            comment: None,
            created_at: 0,
            last_updated_at: 0,
            completed_at: None,
            rollout: model::Rollout::default(),
        })
    }

    #[test]
    fn a_rollout_waits_for_its_maintenance_window() {
        let reg = registry();
        let jobs = Jobs::default();
        let at = |s: &str| model::parse_date_time(s).unwrap();
        let mut j = job("w", JobConfig::default());
        let window = model::MaintenanceWindow { start_time: "cron(0 2 * * ? *)".into(), duration_in_minutes: 60 };
        j.scheduling_config = Some(model::SchedulingConfig { maintenance_windows: vec![window], ..Default::default() });
        let now = at("2026-12-06T01:30");
        jobs.apply(Command::CreateJob { job: j, now }, &reg, &mut Batch::new()).unwrap();
        assert!(jobs.read().executions.is_empty());
        assert!(!jobs.due(&reg, at("2026-12-06T01:59"), 60_000));
        let open = at("2026-12-06T02:00");
        assert!(jobs.due(&reg, open, 60_000));
        jobs.apply(Command::Tick { now: open, minute_ms: 60_000 }, &reg, &mut Batch::new()).unwrap();
        assert_eq!(jobs.read().status_counts("w")[ExecutionStatus::Queued.index()], 3);
    }

    /// A step of the model check: which job, which thing, what happens.
    fn step() -> impl Strategy<Value = (usize, usize, u8)> {
        (0..2usize, 0..3usize, 0..9u8)
    }

    proptest! {
        /// Whatever devices, operators and the clock do, the per-job counts equal a recount,
        /// a terminal execution never changes status, versions only grow, and a completed
        /// job has no pending execution.
        #[test]
        fn jobs_keep_their_invariants(steps in proptest::collection::vec(step(), 1..60)) {
            let reg = registry();
            let jobs = Jobs::default();
            let retry = JobConfig {
                job_executions_retry_config: Some(model::RetryConfig {
                    criteria_list: vec![model::RetryCriteria { failure_type: "ALL".into(), number_of_retries: 1 }],
                }),
                timeout_config: Some(model::TimeoutConfig { in_progress_timeout_in_minutes: Some(1) }),
                ..Default::default()
            };
            for (i, config) in [JobConfig::default(), retry].into_iter().enumerate() {
                jobs.apply(Command::CreateJob { job: job(&format!("j{i}"), config), now: 0 }, &reg, &mut Batch::new()).unwrap();
            }
            let mut now = 0;
            let mut seen: BTreeMap<(String, String), (u64, u64, ExecutionStatus)> = BTreeMap::new();
            for (j, t, what) in steps {
                now += 20_000;
                let (job_id, thing) = (format!("j{j}"), THINGS[t].to_string());
                let device = |status| Command::UpdateExecution {
                    job_id: job_id.clone(), thing: thing.clone(),
                    update: DeviceUpdate { status, ..Default::default() }, now, minute_ms: 60_000,
                };
                let command = match what {
                    0 => Command::StartNext { thing: thing.clone(), status_details: None, step_timeout_minutes: None, now, minute_ms: 60_000 },
                    1 => device(ExecutionStatus::InProgress),
                    2 => device(ExecutionStatus::Succeeded),
                    3 => device(ExecutionStatus::Failed),
                    4 => device(ExecutionStatus::Rejected),
                    5 => Command::CancelExecution { job_id: job_id.clone(), thing: thing.clone(), force: t == 0, expected_version: None, status_details: None, now },
                    6 => Command::CancelJob { job_id: job_id.clone(), force: false, reason_code: None, comment: None, now },
                    7 => Command::DeleteExecution { job_id: job_id.clone(), thing: thing.clone(), execution_number: 1, force: true, now },
                    _ => Command::Tick { now, minute_ms: 60_000 },
                };
                let _ = jobs.apply(command, &reg, &mut Batch::new());
                let st = jobs.read();
                for (id, counts) in &st.counts {
                    let mut recount = [0u64; 8];
                    for e in st.of_job(id) {
                        recount[e.status.index()] += 1;
                    }
                    prop_assert_eq!(*counts, recount, "counts of {}", id);
                }
                for e in st.executions.values() {
                    let k = (e.thing_name.clone(), e.job_id.clone());
                    if let Some((number, version, status)) = seen.get(&k) {
                        if *number == e.execution_number {
                            prop_assert!(e.version_number >= *version, "version went back");
                            prop_assert!(!status.is_terminal() || *status == e.status, "{:?} left terminal {:?}", k, status);
                        }
                    }
                    seen.insert(k, (e.execution_number, e.version_number, e.status));
                }
                for j in st.jobs.values().filter(|j| j.status == JobStatus::Completed) {
                    prop_assert!(st.of_job(&j.job_id).all(|e| e.status.is_terminal()));
                }
            }
        }
    }
}
