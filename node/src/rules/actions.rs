//! Rule actions off the publish path: each action of each loaded rule has a bounded queue and
//! one worker task that runs jobs with retries (`min(cap, base * 2^attempt)` with full jitter)
//! and, on final failure, hands AWS's error-action document to the rule's error action.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use ferrite_mqtt::packet::{Properties, QoS};
use ferrite_mqtt::topic::TopicLimits;
use ferrite_rules::ActionKind;
use tokio::sync::mpsc;

use crate::broker::message::{new_id, now_ms, Message};
use crate::broker::publisher::Publisher;
use ferrite_http_client as http_client;

/// What actions reach of the node: where republishes go (and the topic rules they must
/// follow), and the directory file actions write below.
pub struct Node {
    /// Publishes into the broker.
    pub publisher: Publisher,
    /// The node's topic limits, for republish topics.
    pub limits: TopicLimits,
    /// Relative file-action paths start here.
    pub data_dir: PathBuf,
}

/// The [`Node`] every action worker shares.
pub type NodeAccess = Arc<Node>;

/// First retry delay.
pub const RETRY_BASE: Duration = Duration::from_millis(100);
/// Longest retry delay.
pub const RETRY_CAP: Duration = Duration::from_secs(10);

/// An action's parameters with every template rendered for one message.
#[derive(Debug, Clone)]
pub enum Rendered {
    /// Publish the output.
    Republish {
        /// Topic (templates rendered, `$$` already `$`).
        topic: String,
        /// QoS.
        qos: QoS,
        /// Retain flag.
        retain: bool,
        /// MQTT 5 properties of the republished message.
        properties: Box<Properties>,
    },
    /// POST the output.
    Http {
        /// The URL.
        url: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Per-attempt timeout.
        timeout: Duration,
    },
    /// Append the output as one NDJSON line.
    File {
        /// Target file.
        path: PathBuf,
        /// Rotate when the file would grow past this.
        max_bytes: u64,
        /// Rotated files kept (`path.1` ... `path.N`).
        max_files: u32,
    },
    /// Log the output.
    Log {
        /// tracing level name.
        level: String,
        /// Optional message.
        message: Option<String>,
    },
}

impl Rendered {
    /// Which action this is.
    pub fn kind(&self) -> ActionKind {
        match self {
            Rendered::Republish { .. } => ActionKind::Republish,
            Rendered::Http { .. } => ActionKind::Http,
            Rendered::File { .. } => ActionKind::File,
            Rendered::Log { .. } => ActionKind::Log,
        }
    }

    /// The resource it writes to, for error documents.
    pub fn resource(&self) -> String {
        match self {
            Rendered::Republish { topic, .. } => topic.clone(),
            Rendered::Http { url, .. } => url.clone(),
            Rendered::File { path, .. } => path.display().to_string(),
            Rendered::Log { .. } => "log".into(),
        }
    }
}

/// AWS's name of an action in error documents (`failedAction`).
pub fn aws_action_name(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Republish => "RepublishAction",
        ActionKind::Http => "HttpAction",
        ActionKind::File => "FileAction",
        ActionKind::Log => "LogAction",
    }
}

/// Counters of one action of one rule.
#[derive(Debug, Default)]
pub struct ActionMetrics {
    /// Jobs that succeeded.
    pub succeeded: AtomicU64,
    /// Jobs that failed for good.
    pub failed: AtomicU64,
    /// Retries made.
    pub retried: AtomicU64,
    /// Jobs refused because the queue was full.
    pub throttled: AtomicU64,
}

/// Where a failed job's error document goes: the rule's error action, with its parameters
/// rendered for the same message.
#[derive(Debug, Clone)]
pub struct ErrorRoute {
    /// The error action's queue.
    pub sink: ActionSink,
    /// Its rendered parameters.
    pub rendered: Rendered,
}

/// What every job of one message shares.
#[derive(Debug)]
pub struct JobMeta {
    /// Rule name.
    pub rule: Arc<str>,
    /// Topic of the original message.
    pub topic: String,
    /// Publisher.
    pub client_id: Option<String>,
    /// Trace id (we make one per message).
    pub trace_id: String,
    /// The original payload.
    pub payload: Bytes,
    /// Where failures go.
    pub error: Option<ErrorRoute>,
    /// The output is a JSON document (sent as application/json), not raw payload bytes.
    pub output_is_json: bool,
    /// Rule republishes that led to the original message.
    pub rule_hops: u8,
}

/// One unit of work for an action worker.
#[derive(Debug)]
pub struct Job {
    /// The rule's output.
    pub output: Arc<Vec<u8>>,
    /// The action's rendered parameters.
    pub rendered: Rendered,
    /// Message facts.
    pub meta: Arc<JobMeta>,
}

/// Jobs queued or running in every action of the node: what a graceful stop waits for.
static JOBS_PENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Rule-action jobs queued or running, node-wide.
pub fn jobs_pending() -> usize {
    JOBS_PENDING.load(Ordering::Relaxed)
}

/// The sending side of an action's bounded queue.
#[derive(Debug, Clone)]
pub struct ActionSink {
    /// Label for metrics and logs (`rule/kind#i`).
    pub label: Arc<str>,
    tx: mpsc::Sender<Job>,
    /// Its counters.
    pub metrics: Arc<ActionMetrics>,
}

impl ActionSink {
    /// Queues a job without waiting; a full queue is refused with the reason, counted as throttled.
    pub fn offer(&self, job: Job) -> Result<(), Box<(Job, String)>> {
        JOBS_PENDING.fetch_add(1, Ordering::Relaxed);
        self.tx.try_send(job).map_err(|e| {
            JOBS_PENDING.fetch_sub(1, Ordering::Relaxed);
            self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
            let reason = match &e {
                mpsc::error::TrySendError::Full(_) => "the action's queue is full",
                mpsc::error::TrySendError::Closed(_) => "the action has stopped",
            };
            Box::new((e.into_inner(), reason.to_string()))
        })
    }
}

/// Starts the worker of one action on the actions runtime and returns its queue.
pub fn start(
    runtime: &tokio::runtime::Handle,
    label: Arc<str>,
    metrics: Arc<ActionMetrics>,
    queue_size: usize,
    max_retries: u32,
    node: NodeAccess,
) -> ActionSink {
    let (tx, mut rx) = mpsc::channel::<Job>(queue_size.max(1));
    let sink = ActionSink { label: label.clone(), tx, metrics: metrics.clone() };
    runtime.spawn(async move {
        while let Some(job) = rx.recv().await {
            let mut attempt = 0u32;
            loop {
                match execute(&job, &node).await {
                    Ok(()) => {
                        metrics.succeeded.fetch_add(1, Ordering::Relaxed);
                        super::log::report(|| execution(&job, None));
                        break;
                    }
                    Err(why) if attempt < max_retries => {
                        metrics.retried.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(action = %label, attempt, error = %why, "rule action failed; retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                    }
                    Err(why) => {
                        metrics.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(action = %label, rule = %job.meta.rule, error = %why, "rule action failed");
                        send_to_error_action(&job.meta, job.rendered.kind(), &job.rendered.resource(), &why);
                        super::log::report(|| execution(&job, Some(why.clone())));
                        break;
                    }
                }
            }
            JOBS_PENDING.fetch_sub(1, Ordering::Relaxed);
        }
    });
    sink
}

/// The RuleExecution log event of a finished action.
fn execution(job: &Job, failure: Option<String>) -> super::log::RuleEvent {
    super::log::RuleEvent {
        event_type: "RuleExecution",
        failure,
        rule: job.meta.rule.to_string(),
        topic: job.meta.topic.clone(),
        client_id: job.meta.client_id.clone(),
        trace_id: job.meta.trace_id.clone(),
        action: Some((aws_action_name(job.rendered.kind()).to_string(), job.rendered.resource())),
    }
}

/// Full-jitter exponential backoff: a uniform delay in `[0, min(cap, base * 2^attempt)]`.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = RETRY_BASE.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX)).min(RETRY_CAP);
    ceiling.mul_f64(rand::random::<f64>())
}

/// AWS's error-action document for one failure (`failed_action` as AWS names it, e.g.
/// `HttpAction`, and the resource it wrote to).
pub fn error_document(meta: &JobMeta, failed_action: &str, failed_resource: &str, message: &str) -> Vec<u8> {
    let doc = serde_json::json!({
        "ruleName": &*meta.rule,
        "topic": meta.topic,
        "cloudwatchTraceId": meta.trace_id,
        "clientId": meta.client_id.as_deref().unwrap_or("n/a"),
        "base64OriginalPayload": base64::engine::general_purpose::STANDARD.encode(&meta.payload),
        "failures": [{
            "failedAction": failed_action,
            "failedResource": failed_resource,
            "errorMessage": message,
        }],
    });
    doc.to_string().into_bytes()
}

/// Hands the failure of one action to the rule's error action (if it has one and this is
/// not it).
pub fn send_to_error_action(meta: &Arc<JobMeta>, failed: ActionKind, resource: &str, why: &str) {
    send_failure(meta, aws_action_name(failed), resource, why);
}

/// Hands any failure of a rule to its error action: `failed_action` is AWS's name of what
/// failed.
pub fn send_failure(meta: &Arc<JobMeta>, failed_action: &str, resource: &str, why: &str) {
    let Some(route) = &meta.error else { return };
    let job = Job {
        output: Arc::new(error_document(meta, failed_action, resource, why)),
        rendered: route.rendered.clone(),
        meta: Arc::new(JobMeta {
            rule: meta.rule.clone(),
            topic: meta.topic.clone(),
            client_id: meta.client_id.clone(),
            trace_id: meta.trace_id.clone(),
            payload: meta.payload.clone(),
            error: None,
            output_is_json: true,
            rule_hops: meta.rule_hops,
        }),
    };
    if let Err(refused) = route.sink.offer(job) {
        let reason = &refused.1;
        tracing::error!(rule = %meta.rule, reason = %reason, "error action refused the failure document; it is dropped");
    }
}

async fn execute(job: &Job, node: &Node) -> Result<(), String> {
    match &job.rendered {
        Rendered::Republish { topic, qos, retain, properties } => {
            ferrite_mqtt::topic::validate_topic_name(topic, &node.limits)
                .map_err(|e| format!("invalid republish topic {topic:?}: {}", e.message))?;
            let msg = Arc::new(Message {
                topic: topic.as_str().into(),
                payload: Bytes::from(job.output.as_ref().clone()),
                qos: *qos,
                retain: *retain,
                properties: properties.as_ref().clone(),
                publisher: None,
                created_ms: now_ms(),
                rule_hops: job.meta.rule_hops.saturating_add(1),
                id: new_id(),
                wire: Default::default(),
            });
            let published = node.publisher.publish_and_wait(msg).await;
            if !published.stored {
                return Err("storage failed to persist the republished message".into());
            }
            if published.refused_by_persistent {
                return Err("a persistent subscriber's queue is full".into());
            }
            Ok(())
        }
        Rendered::Http { url, headers, timeout } => {
            let target = http_client::parse_url(url)?;
            let content_type = if job.meta.output_is_json { "application/json" } else { "application/octet-stream" };
            let status = http_client::post(&target, headers, content_type, &job.output, *timeout).await?;
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("{url} answered HTTP {status}"))
            }
        }
        Rendered::File { path, max_bytes, max_files } => {
            let path = if path.is_absolute() { path.clone() } else { node.data_dir.join(path) };
            let (path, max_bytes, max_files, output) = (path, *max_bytes, *max_files, job.output.clone());
            tokio::task::spawn_blocking(move || append_line(&path, &output, max_bytes, max_files))
                .await
                .map_err(|e| format!("file writer stopped: {e}"))?
        }
        Rendered::Log { level, message } => {
            let output = String::from_utf8_lossy(&job.output);
            let rule = &*job.meta.rule;
            let message = message.as_deref().unwrap_or("rule output");
            match level.as_str() {
                "error" => tracing::error!(rule, topic = %job.meta.topic, output = %output, "{message}"),
                "warn" => tracing::warn!(rule, topic = %job.meta.topic, output = %output, "{message}"),
                "debug" => tracing::debug!(rule, topic = %job.meta.topic, output = %output, "{message}"),
                "trace" => tracing::trace!(rule, topic = %job.meta.topic, output = %output, "{message}"),
                _ => tracing::info!(rule, topic = %job.meta.topic, output = %output, "{message}"),
            }
            Ok(())
        }
    }
}

/// Appends one line, rotating `path` -> `path.1` -> ... when it would pass `max_bytes`.
fn append_line(path: &std::path::Path, output: &[u8], max_bytes: u64, max_files: u32) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > 0 && size + output.len() as u64 + 1 > max_bytes {
        let rotated = |i: u32| PathBuf::from(format!("{}.{i}", path.display()));
        let _ = std::fs::remove_file(rotated(max_files));
        for i in (1..max_files).rev() {
            let _ = std::fs::rename(rotated(i), rotated(i + 1));
        }
        std::fs::rename(path, rotated(1)).map_err(|e| format!("cannot rotate {}: {e}", path.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut line = Vec::with_capacity(output.len() + 1);
    line.extend_from_slice(output);
    line.push(b'\n');
    f.write_all(&line).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_the_exponential_ceiling_and_the_cap() {
        for attempt in 0..40 {
            let ceiling = RETRY_BASE.saturating_mul(1 << attempt.min(20)).min(RETRY_CAP);
            assert!(backoff(attempt) <= ceiling);
        }
    }

    #[test]
    fn files_rotate_past_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        for i in 0..10 {
            append_line(&path, format!("{{\"i\":{i}}}").as_bytes(), 20, 2).unwrap();
        }
        assert!(path.exists());
        assert!(dir.path().join("out.ndjson.1").exists());
        assert!(dir.path().join("out.ndjson.2").exists());
        assert!(!dir.path().join("out.ndjson.3").exists());
    }
}
