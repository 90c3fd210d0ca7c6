//! Node metrics as lock-free counters, rendered in the Prometheus text format at
//! `/metrics`. Counters are plain atomics so the publish path pays one relaxed add; latency
//! histograms gather a delivery batch locally and add it at once.

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
                    Expose::write(&self.$name, &mut out, stringify!($name), concat!($($doc),*).trim());
                )*
                write_metric(
                    &mut out,
                    "stored_records_undecodable_total",
                    "Stored records that could not be decoded (each logged as an error and not served).",
                    Counter::PROM_TYPE,
                    UNDECODABLE_RECORDS.get(),
                );
                write_family(
                    &mut out,
                    "build_info",
                    "gauge",
                    "Always 1; the labels say which build runs.",
                    [(
                        format!(
                            "version=\"{}\",profile=\"{}\",platform=\"{}\"",
                            env!("CARGO_PKG_VERSION"),
                            crate::logging::build_profile(),
                            crate::logging::build_platform()
                        ),
                        1,
                    )],
                );
                crate::process_metrics::render(&mut out);
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

/// How a metric writes itself in the Prometheus text format.
pub trait Expose {
    /// Writes the family `ferrite_{name}` with its help text.
    fn write(&self, out: &mut String, name: &str, help: &str);
}

impl Expose for Counter {
    fn write(&self, out: &mut String, name: &str, help: &str) {
        write_metric(out, name, help, Self::PROM_TYPE, self.get());
    }
}

impl Expose for Gauge {
    fn write(&self, out: &mut String, name: &str, help: &str) {
        write_metric(out, name, help, Self::PROM_TYPE, self.get());
    }
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

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const LATENCY_BUCKETS: [f64; 15] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A latency histogram with [`LATENCY_BUCKETS`]: a count per bucket (the last one past every
/// bound), the sum in microseconds and the number of observations.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: std::time::Duration) {
        let mut local = LocalHistogram::default();
        local.observe_us(elapsed.as_micros() as u64);
        self.add(&local);
    }

    /// Adds what a batch recorded locally: one atomic add per bucket it touched.
    pub fn add(&self, local: &LocalHistogram) {
        for (bucket, n) in self.buckets.iter().zip(local.buckets) {
            if n > 0 {
                bucket.fetch_add(n, Ordering::Relaxed);
            }
        }
        if local.sum_us > 0 {
            self.sum_us.fetch_add(local.sum_us, Ordering::Relaxed);
        }
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of one series (`labels` may be empty).
    fn write_series(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "ferrite_{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "ferrite_{name}_sum{braces} {sum}");
        let _ = writeln!(out, "ferrite_{name}_count{braces} {cumulative}");
    }
}

impl Expose for Histogram {
    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP ferrite_{name} {help}");
        let _ = writeln!(out, "# TYPE ferrite_{name} histogram");
        self.write_series(out, name, "");
    }
}

/// Observations gathered without atomics (one delivery batch), added to a [`Histogram`] at
/// once.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalHistogram {
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum_us: u64,
}

impl LocalHistogram {
    /// Records one observation in microseconds.
    pub fn observe_us(&mut self, us: u64) {
        let seconds = us as f64 / 1e6;
        let i = LATENCY_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i] += 1;
        self.sum_us += us;
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|n| *n == 0)
    }
}

/// Histograms per label set (`method="GET",route="/things/{thingName}"`), created on first
/// use.
#[derive(Debug, Default)]
pub struct LabeledHistograms(parking_lot::RwLock<std::collections::BTreeMap<String, std::sync::Arc<Histogram>>>);

impl LabeledHistograms {
    /// Records one observation under `labels` (already in the text format).
    pub fn observe(&self, labels: &str, elapsed: std::time::Duration) {
        if let Some(h) = self.0.read().get(labels) {
            h.observe(elapsed);
            return;
        }
        self.0.write().entry(labels.to_string()).or_default().observe(elapsed);
    }
}

impl Expose for LabeledHistograms {
    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP ferrite_{name} {help}");
        let _ = writeln!(out, "# TYPE ferrite_{name} histogram");
        for (labels, h) in self.0.read().iter() {
            h.write_series(out, name, labels);
        }
    }
}

metrics! {
    /// MQTT connections currently open (named apart from `connections_total`, which Prometheus
    /// clients read as the family `ferrite_connections`).
    connections_open: Gauge,
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
    /// Seconds from a message's arrival at the node to its PUBLISH being written for a
    /// subscriber (wall clock, whole milliseconds: below 1 ms counts in the first bucket).
    /// Messages queued for offline sessions count their time in the queue.
    publish_to_deliver_seconds: Histogram,
    /// Seconds the HTTP API took to answer, by method and route pattern.
    api_request_duration_seconds: LabeledHistograms,
}
