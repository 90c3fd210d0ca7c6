//! AWS IoT's v2 logs: events of connects, disconnects, publishes, subscribes and rule
//! outcomes in AWS's JSON shape, at the level the most specific log target sets (`config`).
//! Each event goes to a rotating file, `DATA_DIR/logs/aws-iot.log` (16 MiB, 5 older files
//! kept), and to standard output, each written by a thread of its own behind a bounded
//! queue, so no connection waits for the disk or for whoever reads standard output (a
//! reader that stops reading loses stdout events, never the file's).
//!
//! - `config`: the replicated options and target levels.
//! - this module: the event, the level check and the writer.

pub mod config;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::mpsc;

use serde_json::{json, Map, Value};

/// The size at which the file is rotated.
const ROTATE_AT: u64 = 16 * 1024 * 1024;
/// Older files kept (`aws-iot.log.1` .. `.5`).
const KEEP: usize = 5;
/// Events waiting for the writer; past this, events are dropped (and counted).
const QUEUE: usize = 65_536;

/// One event, as AWS logs it.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// INFO for a success, ERROR for a failure (AWS's levels).
    pub level: &'static str,
    /// Success or Failure.
    pub status: &'static str,
    /// Connect, Disconnect, Publish-In, Publish-Out, Subscribe.
    pub event_type: &'static str,
    /// The topic, for publishes and subscribes.
    pub topic: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The certificate id, authorizer principal or key, if any.
    pub principal_id: Option<String>,
    /// The client's address.
    pub source_ip: String,
    /// The client's port.
    pub source_port: u16,
    /// Why it failed (failures).
    pub reason: Option<String>,
    /// More about it.
    pub details: Option<String>,
    /// The rule, for rule events.
    pub rule_name: Option<String>,
    /// The trace id the event belongs to (a rule run's); a new one when `None`.
    pub trace_id: Option<String>,
}

impl Event {
    /// The JSON line AWS writes for it.
    pub fn document(&self, timestamp_ms: u64) -> Value {
        let mut doc = Map::new();
        let when = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp_ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let stamp = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            when.year(),
            u8::from(when.month()),
            when.day(),
            when.hour(),
            when.minute(),
            when.second(),
            when.millisecond()
        );
        doc.insert("timestamp".into(), json!(stamp));
        doc.insert("logLevel".into(), json!(self.level));
        let trace = self.trace_id.clone().unwrap_or_else(crate::registry::new_id);
        doc.insert("traceId".into(), json!(trace));
        doc.insert("accountId".into(), json!(crate::registry::account_id()));
        doc.insert("status".into(), json!(self.status));
        doc.insert("eventType".into(), json!(self.event_type));
        doc.insert("protocol".into(), json!("MQTT"));
        if let Some(t) = &self.topic {
            doc.insert("topicName".into(), json!(t));
        }
        doc.insert("clientId".into(), json!(self.client_id));
        if let Some(p) = &self.principal_id {
            doc.insert("principalId".into(), json!(p));
        }
        doc.insert("sourceIp".into(), json!(self.source_ip));
        doc.insert("sourcePort".into(), json!(self.source_port));
        if let Some(r) = &self.reason {
            doc.insert("reason".into(), json!(r));
        }
        if let Some(r) = &self.rule_name {
            doc.insert("ruleName".into(), json!(r));
        }
        if let Some(d) = &self.details {
            doc.insert("details".into(), json!(d));
        }
        Value::Object(doc)
    }
}

/// The log event of a rule outcome (`rules::log`).
pub fn rule_event(e: &crate::rules::log::RuleEvent) -> Event {
    let details = match (&e.action, &e.failure) {
        (Some((action, resource)), Some(why)) => Some(format!("{action} to {resource:?} failed: {why}")),
        (Some((action, resource)), None) => Some(format!("{action} to {resource:?} succeeded")),
        (None, why) => why.clone(),
    };
    Event {
        level: if e.failure.is_some() { "ERROR" } else { "INFO" },
        status: if e.failure.is_some() { "Failure" } else { "Success" },
        event_type: e.event_type,
        topic: Some(e.topic.clone()),
        client_id: e.client_id.clone().unwrap_or_default(),
        reason: e.failure.as_ref().map(|_| "RULE_FAILURE".to_string()),
        details,
        rule_name: Some(e.rule.clone()),
        trace_id: Some(e.trace_id.clone()),
        ..Event::default()
    }
}

/// The node's AWS IoT log.
pub struct IotLog {
    tx: mpsc::SyncSender<String>,
    stdout: mpsc::SyncSender<String>,
    dropped: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for IotLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IotLog").finish_non_exhaustive()
    }
}

impl IotLog {
    /// Starts the writer of `DATA_DIR/logs/aws-iot.log`.
    pub fn start(data_dir: &std::path::Path) -> IotLog {
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        let dir = data_dir.join("logs");
        let spawned = std::thread::Builder::new().name("aws-iot-log".into()).spawn(move || write_all(dir, rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the AWS IoT log writer");
        }
        let (stdout, lines) = mpsc::sync_channel::<String>(QUEUE);
        let spawned = std::thread::Builder::new().name("aws-iot-stdout".into()).spawn(move || {
            let mut out = std::io::stdout();
            while let Ok(line) = lines.recv() {
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return;
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the AWS IoT log's stdout writer");
        }
        IotLog { tx, stdout, dropped: Default::default() }
    }

    /// Logs `event` when `verbosity` (the level that applies to its client) allows its level.
    pub fn log(&self, verbosity: u8, event: &Event) {
        if config::verbosity(event.level) > verbosity || verbosity == 0 {
            return;
        }
        let line = event.document(crate::broker::message::now_ms()).to_string();
        let _ = self.stdout.try_send(line.clone());
        if self.tx.try_send(line).is_err() {
            let n = self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "the AWS IoT log writer is behind; events dropped");
            }
        }
    }
}

/// The writer thread: appends lines, rotating the file past [`ROTATE_AT`].
fn write_all(dir: PathBuf, rx: mpsc::Receiver<String>) {
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(dir = %dir.display(), error = %e, "cannot create the AWS IoT log directory");
        return;
    }
    let path = dir.join("aws-iot.log");
    let open = |p: &PathBuf| std::fs::OpenOptions::new().create(true).append(true).open(p);
    let mut file = match open(&path) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open the AWS IoT log");
            return;
        }
    };
    let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
    while let Ok(line) = rx.recv() {
        if size + line.len() as u64 + 1 > ROTATE_AT {
            for n in (1..KEEP).rev() {
                let _ =
                    std::fs::rename(dir.join(format!("aws-iot.log.{n}")), dir.join(format!("aws-iot.log.{}", n + 1)));
            }
            let _ = std::fs::rename(&path, dir.join("aws-iot.log.1"));
            match open(&path) {
                Ok(f) => file = f,
                Err(e) => {
                    tracing::error!(error = %e, "cannot open a new AWS IoT log");
                    return;
                }
            }
            size = 0;
        }
        if writeln!(file, "{line}").is_ok() {
            size += line.len() as u64 + 1;
        }
    }
}
