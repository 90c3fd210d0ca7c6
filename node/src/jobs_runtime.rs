//! Jobs at run time on a node: serves the MQTT jobs requests of devices (as the `meta`
//! group's proposals and reads), publishes what applied jobs changes produce (`notify`,
//! `notify-next`, job events) when this node leads `meta` (so a cluster publishes each
//! once), and proposes the time-driven [`jobs::Command::Tick`] while this node leads and
//! something is due.

use std::sync::Arc;
use std::time::Duration;

use ferrite_cluster::Group;
use serde_json::{json, Value};

use crate::broker::message::now_ms;
use crate::broker::publisher::Publisher;
use crate::jobs::topics::{Operation, Request};
use crate::jobs::{self, documents, requests};
use crate::meta::{Command, Meta, Outcome};
use ferrite_aws::AwsError;

/// How often the leader looks for due time-driven work.
const TICK_EVERY: Duration = Duration::from_millis(200);

/// The jobs runtime of one node.
pub struct JobsRuntime {
    meta: Arc<Group<Meta>>,
    publisher: Publisher,
    minute_ms: u64,
    effects: parking_lot::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Vec<jobs::Effect>>>>,
}

fn leads(meta: &Group<Meta>) -> bool {
    meta.status().role == "leader"
}

impl JobsRuntime {
    /// Connects the jobs state's effects to `publisher`; `minute_ms` is how long a jobs
    /// minute is. Nothing runs until [`JobsRuntime::serve`].
    pub fn new(meta: Arc<Group<Meta>>, publisher: Publisher, minute_ms: u64) -> Arc<JobsRuntime> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<jobs::Effect>>();
        meta.state().jobs.set_sink(Box::new(move |effects| {
            let _ = tx.send(effects);
        }));
        Arc::new(JobsRuntime { meta, publisher, minute_ms, effects: parking_lot::Mutex::new(Some(rx)) })
    }

    /// Starts publishing effects and the tick loop on the current actix runtime.
    pub fn serve(self: &Arc<Self>) {
        if let Some(mut rx) = self.effects.lock().take() {
            let (group, publisher) = (self.meta.clone(), self.publisher.clone());
            actix_rt::spawn(async move {
                while let Some(effects) = rx.recv().await {
                    if !leads(&group) {
                        continue;
                    }
                    for e in effects {
                        publisher.publish_json(e.topic, e.doc);
                    }
                }
            });
            let me = self.clone();
            actix_rt::spawn(async move { me.tick_loop().await });
        }
    }

    /// How long a jobs minute is here.
    pub fn minute_ms(&self) -> u64 {
        self.minute_ms
    }

    async fn tick_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(TICK_EVERY).await;
            if !leads(&self.meta) {
                continue;
            }
            let now = now_ms();
            let state = self.meta.state();
            if !state.jobs.due(&state.registry, now, self.minute_ms) {
                continue;
            }
            let tick = Command::Jobs(jobs::Command::Tick { now, minute_ms: self.minute_ms });
            if let Err(e) = crate::meta::propose(&self.meta, tick).await {
                tracing::warn!(error = %e, "a jobs tick was not committed; trying again");
            }
        }
    }

    /// Serves one MQTT jobs request; the answer is published to the request topic plus
    /// `/accepted` or `/rejected`.
    pub fn handle(&self, req: Request, payload: &[u8]) {
        let body = match requests::object(payload) {
            Ok(b) => b,
            Err(m) => return self.reject(&req.topic, None, m, None),
        };
        let token = requests::client_token(&body);
        let now = now_ms();
        match req.op.clone() {
            Operation::GetPending => {
                let (publisher, topic, thing) = (self.publisher.clone(), req.topic, req.thing);
                self.meta.query(move |meta| {
                    let Ok(meta) = meta else {
                        return reject(&publisher, &topic, token, internal(), None);
                    };
                    let st = meta.jobs.read();
                    let (in_progress, queued) = st.pending(&thing);
                    accept(&publisher, &topic, token, documents::pending(&in_progress, &queued));
                });
            }
            Operation::Describe(job) => {
                let (number, include_document) = match requests::describe(&body) {
                    Ok(x) => x,
                    Err(m) => return self.reject(&req.topic, token, m, None),
                };
                let (publisher, topic, thing) = (self.publisher.clone(), req.topic, req.thing);
                self.meta.query(move |meta| {
                    let Ok(meta) = meta else {
                        return reject(&publisher, &topic, token, internal(), None);
                    };
                    let st = meta.jobs.read();
                    let Some(e) = st.describe(&thing, &job, number) else {
                        let m = ("ResourceNotFound", format!("No job execution of {job} on thing {thing}"));
                        return reject(&publisher, &topic, token, m, None);
                    };
                    let document = st.jobs.get(&e.job_id).map(|j| j.document.as_str()).filter(|_| include_document);
                    let doc = json!({ "execution": documents::data_execution(e, document, true, now_ms()) });
                    accept(&publisher, &topic, token, doc);
                });
            }
            Operation::StartNext => {
                let s = match requests::start_next(&body) {
                    Ok(s) => s,
                    Err(m) => return self.reject(&req.topic, token, m, None),
                };
                let command = jobs::Command::StartNext {
                    thing: req.thing,
                    status_details: s.status_details,
                    step_timeout_minutes: s.step_timeout_minutes,
                    now,
                    minute_ms: self.minute_ms,
                };
                let publisher = self.publisher.clone();
                let topic = req.topic;
                self.propose(command, move |out| match out {
                    Ok(Outcome::Jobs(jobs::Outcome::Execution(found))) => {
                        let mut doc = json!({});
                        if let Some(found) = found {
                            let (e, document) = &*found;
                            doc["execution"] = documents::data_execution(e, Some(document), true, now);
                        }
                        accept(&publisher, &topic, token, doc);
                    }
                    Ok(_) => reject(&publisher, &topic, token, internal(), None),
                    Err(e) => reject(&publisher, &topic, token, (requests::mqtt_code(e.error_type), e.message), None),
                });
            }
            Operation::Update(job) => {
                let u = match requests::update(&body) {
                    Ok(u) => u,
                    Err(m) => return self.reject(&req.topic, token, m, None),
                };
                let command = jobs::Command::UpdateExecution {
                    job_id: job.clone(),
                    thing: req.thing.clone(),
                    update: u.update,
                    now,
                    minute_ms: self.minute_ms,
                };
                let (publisher, topic, thing, meta) = (self.publisher.clone(), req.topic, req.thing, self.meta.clone());
                self.propose(command, move |out| match out {
                    Ok(Outcome::Jobs(jobs::Outcome::Execution(Some(found)))) => {
                        let (e, document) = &*found;
                        let mut doc = json!({});
                        if u.include_state {
                            doc["executionState"] = documents::execution_state(e);
                        }
                        if u.include_document {
                            doc["jobDocument"] = documents::document_value(document);
                        }
                        accept(&publisher, &topic, token, doc);
                    }
                    Ok(_) => reject(&publisher, &topic, token, internal(), None),
                    Err(e) => {
                        // AWS adds the execution's current state to a refused update.
                        let state = meta.state().jobs.read().execution(&thing, &job).map(documents::execution_state);
                        reject(&publisher, &topic, token, (requests::mqtt_code(e.error_type), e.message), state)
                    }
                });
            }
        }
    }

    fn propose(&self, command: jobs::Command, done: impl FnOnce(Result<Outcome, AwsError>) + Send + 'static) {
        let bytes = serde_json::to_vec(&Command::Jobs(command)).unwrap_or_default();
        self.meta.propose(
            bytes,
            Box::new(move |r| {
                done(r.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "a jobs command was not committed");
                    Err(AwsError::internal())
                }))
            }),
        );
    }

    fn reject(&self, topic: &str, token: Option<String>, m: requests::Malformed, state: Option<Value>) {
        reject(&self.publisher, topic, token, m, state);
    }
}

fn internal() -> requests::Malformed {
    ("InternalError", "Internal service failure".into())
}

fn accept(publisher: &Publisher, topic: &str, token: Option<String>, mut doc: Value) {
    doc["timestamp"] = json!(now_ms() / 1000);
    if let Some(t) = token {
        doc["clientToken"] = json!(t);
    }
    publisher.publish_json(format!("{topic}/accepted"), doc);
}

fn reject(
    publisher: &Publisher,
    topic: &str,
    token: Option<String>,
    (code, message): requests::Malformed,
    state: Option<Value>,
) {
    let mut doc = json!({ "code": code, "message": message, "timestamp": now_ms() / 1000 });
    if let Some(t) = token {
        doc["clientToken"] = json!(t);
    }
    if let Some(s) = state {
        doc["executionState"] = s;
    }
    publisher.publish_json(format!("{topic}/rejected"), doc);
}
