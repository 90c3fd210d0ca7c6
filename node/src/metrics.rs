//! Node metrics as lock-free counters, rendered in the Prometheus text format at
//! `/metrics`. Counters are plain atomics so the publish path pays one relaxed add.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

macro_rules! metrics {
    ($( $(#[doc = $doc:literal])* $name:ident : $kind:ident ),* $(,)?) => {
        /// Every metric the node exports.
        #[derive(Default, Debug)]
        pub struct Metrics {
            $( $(#[doc = $doc])* pub $name: $kind, )*
        }

        impl Metrics {
            /// Renders every metric in the Prometheus text exposition format.
            pub fn render(&self) -> String {
                let mut out = String::new();
                $(
                    write_metric(&mut out, stringify!($name), concat!($($doc),*).trim(), $kind::PROM_TYPE, self.$name.get());
                )*
                write_metric(
                    &mut out,
                    "stored_records_undecodable_total",
                    "Stored records that could not be decoded (each logged as an error and not served).",
                    Counter::PROM_TYPE,
                    UNDECODABLE_RECORDS.get(),
                );
                out
            }
        }
    };
}

/// One metric in the Prometheus text format: help, type and value of `ferrite_{name}`.
fn write_metric(out: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    write_family(out, name, kind, help, [(String::new(), value)]);
}

/// One metric family in the Prometheus text format: help and type of `ferrite_{name}`, then
/// a line per sample, each with its labels (`rule="hot"`; empty for none) and value.
pub fn write_family<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, V)>,
) {
    let _ = writeln!(out, "# HELP ferrite_{name} {help}");
    let _ = writeln!(out, "# TYPE ferrite_{name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "ferrite_{name} {value}");
        } else {
            let _ = writeln!(out, "ferrite_{name}{{{labels}}} {value}");
        }
    }
}

/// Stored records found undecodable, process-wide: they are found while state is loaded,
/// before and apart from the node's [`Metrics`] (group replay, shard and session loads).
static UNDECODABLE_RECORDS: Counter = Counter(AtomicU64::new(0));

/// Reports a stored record that cannot be decoded, so that it is never silently replaced by
/// a default: an error line naming it, and `ferrite_stored_records_undecodable_total`.
pub fn undecodable_record(kind: &str, key: &str, why: &str) {
    UNDECODABLE_RECORDS.inc();
    tracing::error!(kind, key, reason = why, "a stored record cannot be decoded; it is not served and not replaced");
}

/// A monotonically increasing counter.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    const PROM_TYPE: &'static str = "counter";
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default, Debug)]
pub struct Gauge(AtomicI64);

impl Gauge {
    const PROM_TYPE: &'static str = "gauge";
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

metrics! {
    /// MQTT connections currently open.
    connections: Gauge,
    /// MQTT connections accepted since start.
    connections_total: Counter,
    /// Client sockets closed at accept because their listener held its limit or its share
    /// of the node's client sockets.
    connections_refused_at_limit_total: Counter,
    /// Failed accepts on the device listeners (out of file descriptors, usually).
    accept_failures_total: Counter,
    /// CONNECT attempts refused (bad version, bad client id, ...).
    connects_refused_total: Counter,
    /// Sessions (connected or persistent offline) held by the node.
    sessions: Gauge,
    /// Copies this node keeps of persistent sessions other nodes own (broker/replica.rs).
    session_replicas: Gauge,
    /// Subscriptions in the routing index.
    subscriptions: Gauge,
    /// Retained messages held.
    retained_messages: Gauge,
    /// PUBLISH packets received from clients.
    messages_received_total: Counter,
    /// PUBLISH packets sent to clients.
    messages_sent_total: Counter,
    /// Messages dropped because a session queue was full.
    messages_dropped_queue_full_total: Counter,
    /// Messages dropped because their expiry interval passed.
    messages_expired_total: Counter,
    /// Messages not sent because they exceeded the client's maximum packet size.
    messages_dropped_too_large_total: Counter,
    /// QoS 0 messages not sent to a client whose outbound buffer was full (`max_outbound_bytes`).
    messages_dropped_slow_client_total: Counter,
    /// Connections closed because the client read nothing for `stalled_client_timeout_secs`.
    clients_disconnected_stalled_total: Counter,
    /// Bytes read from client sockets.
    bytes_received_total: Counter,
    /// Bytes written to client sockets.
    bytes_sent_total: Counter,
    /// Packets that broke the protocol (malformed, wrong flags, ...).
    protocol_errors_total: Counter,
    /// Connections closed for keep-alive timeout.
    keepalive_timeouts_total: Counter,
    /// Sessions taken over by a new connection with the same client id.
    session_takeovers_total: Counter,
    /// Will messages published.
    wills_published_total: Counter,
    /// Publishes after which the publisher was paused because a subscriber was congested.
    publisher_backpressure_total: Counter,
    /// Storage write failures.
    storage_errors_total: Counter,
    /// CONNECTs refused by authentication or the iot:Connect policy (AWS's Connect.AuthError).
    connect_auth_errors_total: Counter,
    /// PUBLISHes refused by the iot:Publish policy (AWS's PublishIn.AuthError).
    publish_in_auth_errors_total: Counter,
    /// Deliveries withheld by the iot:Receive policy (AWS's PublishOut.AuthError).
    publish_out_auth_errors_total: Counter,
    /// Subscriptions refused by the iot:Subscribe policy (AWS's Subscribe.AuthError).
    subscribe_auth_errors_total: Counter,
    /// Connections closed because their certificate was deactivated or revoked.
    certificate_disconnects_total: Counter,
}
