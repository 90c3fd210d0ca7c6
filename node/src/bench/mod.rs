//! `ferrite bench`: the project's MQTT load generator.
//!
//! Scenarios: fan-in (N publishers, one wildcard subscriber), fan-out (one publisher,
//! N subscribers), point-to-point pairs, idle connections, and shadow updates. Every
//! payload carries the publisher number, a sequence number and a send timestamp, so the
//! subscribers count lost and duplicated messages and measure end-to-end latency. It talks
//! to any MQTT broker, which is how `scripts/bench-vs-mosquitto` compares against
//! Mosquitto. Publishers and subscribers may use different nodes of a cluster
//! (`--target` / `--sub-target`), which is how `scripts/bench-cluster` measures forwarding.

mod shadow;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::ValueEnum;
use ferrite_mqtt::client::{self, connect};
use ferrite_mqtt::packet::*;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// The username and password every client sends.
fn credentials(args: &BenchArgs) -> (Option<String>, Option<Bytes>) {
    (args.username.clone(), args.password.clone().map(Bytes::from))
}

/// Traffic shapes the load generator can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// N publishers on `bench/{i}`, one subscriber on `bench/+`.
    FanIn,
    /// One publisher on `bench/t`, N subscribers on it.
    FanOut,
    /// N publisher/subscriber pairs, pair i on `bench/{i}`.
    P2p,
    /// N publishers and N subscribers all on `bench/t`: every subscriber gets every
    /// publisher's messages (N x N).
    Mesh,
    /// N idle connections held open (memory per connection).
    Idle,
    /// N devices, each updating its own thing's shadow over MQTT
    /// (`$aws/things/{thing}/shadow/update`) with `--inflight` updates outstanding and
    /// counting `update/accepted` answers; latency is request to answer.
    Shadow,
}

/// Flags of `ferrite bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Broker MQTT address; several, comma-separated, spread the clients over the nodes of
    /// a cluster (client i uses address i mod count).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:1883")]
    pub target: Vec<SocketAddr>,
    /// Where subscribers connect, when not to `--target` (for example another node of a
    /// cluster, so that every message crosses nodes). Comma-separated like `--target`.
    #[arg(long, value_delimiter = ',')]
    pub sub_target: Vec<SocketAddr>,
    /// Traffic shape.
    #[arg(long, value_enum, default_value = "fan-in")]
    pub scenario: Scenario,
    /// Publishers (fan-in), subscribers (fan-out), pairs (p2p), publishers and subscribers
    /// each (mesh) or idle connections.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub clients: usize,
    /// QoS of publishes and subscriptions.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload bytes (at least 20: publisher, sequence and timestamp).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Messages per second per publisher; 0 = as fast as the broker accepts.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Unacknowledged QoS 1/2 publishes per publisher (shadow: unanswered updates per
    /// device, at most 10 as AWS allows per connection).
    #[arg(long, default_value_t = 64)]
    pub inflight: usize,
    /// MQTT version of the clients: 4 (3.1.1) or 5.
    #[arg(long, default_value_t = 4)]
    pub mqtt_version: u8,
    /// Spread client sockets over 127.0.0.1..127.0.0.N source addresses (for more than
    /// ~28,000 connections from one machine).
    #[arg(long, default_value_t = 1)]
    pub source_ips: u8,
    /// Seconds to wait for in-flight messages after publishing stops.
    #[arg(long, default_value_t = 3)]
    pub drain: u64,
    /// Load-generator threads [default: CPU cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Subscribers keep persistent sessions (clean start 0, session expiry 300 s), as
    /// devices that must not miss messages do; in a cluster these are replicated.
    #[arg(long)]
    pub persistent: bool,
    /// MQTT username every client sends (for brokers that authenticate, e.g. a custom
    /// authorizer)
    #[arg(long)]
    pub username: Option<String>,
    /// MQTT password every client sends (e.g. a JWT for a listener with `jwt`
    /// authentication)
    #[arg(long)]
    pub password: Option<String>,
}

/// What one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub scenario: String,
    pub clients: usize,
    pub qos: u8,
    pub payload: usize,
    pub duration_s: f64,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Shadow updates answered on `/rejected` (0 for the pub/sub scenarios).
    pub rejected: u64,
    pub sent_per_s: f64,
    pub received_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_p999: f64,
    pub latency_ms_max: f64,
}

struct Tracker {
    seen: HashMap<(u32, u32), Vec<u64>>, // (subscriber, publisher) -> bitmap of sequences
    received: u64,
    duplicates: u64,
    hist: Histogram<u64>,
}

impl Tracker {
    fn record(&mut self, sub: u32, publisher: u32, seq: u64, latency_us: u64) {
        let bits = self.seen.entry((sub, publisher)).or_default();
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        if bits[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        bits[word] |= 1 << bit;
        self.received += 1;
        let _ = self.hist.record(latency_us.max(1));
    }
}

fn version_of(v: u8) -> anyhow::Result<ProtocolVersion> {
    match v {
        4 => Ok(ProtocolVersion::V311),
        5 => Ok(ProtocolVersion::V5),
        _ => anyhow::bail!("--mqtt-version must be 4 or 5"),
    }
}

/// The publisher-side address of client `i`.
fn target_of(args: &BenchArgs, i: usize) -> SocketAddr {
    args.target[i % args.target.len()]
}

/// The address subscriber `i` connects to.
fn sub_target_of(args: &BenchArgs, i: usize) -> SocketAddr {
    if args.sub_target.is_empty() {
        target_of(args, i)
    } else {
        args.sub_target[i % args.sub_target.len()]
    }
}

/// How long subscriptions made on one node take to reach the others' route tables
/// before publishing starts there.
const ROUTE_SETTLE: Duration = Duration::from_secs(1);

fn source_ip(args: &BenchArgs, i: usize) -> Option<IpAddr> {
    (args.source_ips > 1).then(|| IpAddr::from([127, 0, 0, 1 + (i % args.source_ips as usize) as u8]))
}

/// Runs a benchmark and prints its report.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if args.target.is_empty() {
        anyhow::bail!("--target needs at least one address");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    let report = match args.scenario {
        Scenario::Idle => return rt.block_on(idle(args)),
        Scenario::Shadow => rt.block_on(shadow::run(args.clone()))?,
        _ => rt.block_on(traffic(args.clone()))?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!(
        "scenario {} clients={} qos={} payload={}B duration={:.1}s",
        r.scenario, r.clients, r.qos, r.payload, r.duration_s
    );
    println!("  sent      {:>10} msgs  {:>12.0} msgs/s", r.sent, r.sent_per_s);
    println!("  received  {:>10} msgs  {:>12.0} msgs/s  (expected {})", r.received, r.received_per_s, r.expected);
    println!("  lost      {:>10}        duplicates {}", r.lost, r.duplicates);
    if r.rejected > 0 {
        println!("  rejected  {:>10}", r.rejected);
    }
    println!(
        "  latency   p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
        r.latency_ms_p50, r.latency_ms_p99, r.latency_ms_p999, r.latency_ms_max
    );
}

async fn idle(args: BenchArgs) -> anyhow::Result<()> {
    let version = version_of(args.mqtt_version)?;
    let mut held = Vec::with_capacity(args.clients);
    let start = Instant::now();
    for i in 0..args.clients {
        let conn =
            connect(target_of(&args, i), source_ip(&args, i), &format!("idle-{i}"), version, 0, credentials(&args))
                .await
                .with_context(|| {
                    format!("idle connection {i} cannot connect to the broker at {}", target_of(&args, i))
                })?;
        held.push(conn);
        if (i + 1) % 5000 == 0 {
            eprintln!("{} connections open", i + 1);
        }
    }
    println!(
        "idle connections={} opened in {:.1}s; holding for {}s",
        held.len(),
        start.elapsed().as_secs_f64(),
        args.duration
    );
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    Ok(())
}

/// The first connection a run lost, if any: a run that lost its broker fails naming it
/// instead of reporting rates over the nominal duration.
#[derive(Debug, Clone, Default)]
struct Failure(Arc<Mutex<Option<String>>>);

impl Failure {
    fn set(&self, why: String) {
        self.0.lock().get_or_insert(why);
    }

    fn get(&self) -> Option<String> {
        self.0.lock().clone()
    }
}

/// Runs are watched each second: progress on stderr for runs longer than 5 s, and the run
/// stops at the first lost connection.
async fn watch(duration_s: u64, sent: &AtomicU64, received: &dyn Fn() -> u64, failure: &Failure) -> anyhow::Result<()> {
    let start = Instant::now();
    let end = start + Duration::from_secs(duration_s);
    let (mut last_sent, mut last_received, mut last_at) = (0, 0, start);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        tokio::time::sleep((end - now).min(Duration::from_secs(1))).await;
        if let Some(why) = failure.get() {
            anyhow::bail!(
                "{why} {:.1} s into the run; no report (the rates would be wrong)",
                start.elapsed().as_secs_f64()
            );
        }
        if duration_s > 5 {
            let (s, r, at) = (sent.load(Ordering::Relaxed), received(), Instant::now());
            let dt = at.duration_since(last_at).as_secs_f64().max(1e-3);
            eprintln!(
                "[{:>4.0}s/{duration_s}s] sent {s} ({:.0}/s)  received {r} ({:.0}/s)",
                start.elapsed().as_secs_f64(),
                (s - last_sent) as f64 / dt,
                r.saturating_sub(last_received) as f64 / dt
            );
            (last_sent, last_received, last_at) = (s, r, at);
        }
    }
    Ok(())
}

fn encode_payload(size: usize, publisher: u32, seq: u64, epoch: Instant) -> Bytes {
    let mut v = vec![0u8; size.max(20)];
    v[0..4].copy_from_slice(&publisher.to_be_bytes());
    v[4..12].copy_from_slice(&seq.to_be_bytes());
    v[12..20].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
    Bytes::from(v)
}

async fn traffic(args: BenchArgs) -> anyhow::Result<Report> {
    let version = version_of(args.mqtt_version)?;
    let qos = QoS::from_u8(args.qos).expect("validated by clap");
    let n = args.clients.max(1);
    // (publisher topics, subscriber filters, receivers per message)
    let (pub_topics, sub_filters, fanout): (Vec<String>, Vec<String>, u64) = match args.scenario {
        Scenario::FanIn => ((0..n).map(|i| format!("bench/{i}")).collect(), vec!["bench/+".into()], 1),
        Scenario::FanOut => (vec!["bench/t".into()], (0..n).map(|_| "bench/t".into()).collect(), n as u64),
        Scenario::P2p => {
            ((0..n).map(|i| format!("bench/{i}")).collect(), (0..n).map(|i| format!("bench/{i}")).collect(), 1)
        }
        Scenario::Mesh => (vec!["bench/t".into(); n], vec!["bench/t".into(); n], n as u64),
        Scenario::Idle | Scenario::Shadow => unreachable!("handled by idle() and shadow::run()"),
    };
    let epoch = Instant::now();
    let tracker = Arc::new(Mutex::new(Tracker {
        seen: HashMap::new(),
        received: 0,
        duplicates: 0,
        hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    }));
    let run_id = rand::random::<u32>();
    let failure = Failure::default();
    // Subscribers first.
    let mut sub_tasks = Vec::new();
    for (i, filter) in sub_filters.iter().enumerate() {
        let (username, password) = credentials(&args);
        let options = client::ConnectOptions {
            clean_start: !args.persistent,
            session_expiry: args.persistent.then_some(300),
            keep_alive: 0,
            username,
            password,
        };
        let (mut reader, mut writer, _) = client::connect_with(
            sub_target_of(&args, i),
            source_ip(&args, i),
            &format!("bench-sub-{run_id}-{i}"),
            version,
            options,
        )
        .await
        .with_context(|| format!("subscriber {i} cannot connect to the broker at {}", sub_target_of(&args, i)))?;
        writer.push(&Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: vec![(filter.clone(), SubOptions { qos, ..Default::default() })],
        }));
        writer.flush().await?;
        match reader.next().await? {
            Some(Packet::SubAck(a)) if a.reason_codes.iter().all(|c| *c < 0x80) => {}
            other => anyhow::bail!("subscription refused: {other:?}"),
        }
        let tracker = tracker.clone();
        let (failure, addr) = (failure.clone(), sub_target_of(&args, i));
        sub_tasks.push(tokio::spawn(async move {
            let mut pending = Vec::new();
            let handle = |p: Packet, pending: &mut Vec<(u32, u64, u64)>, writer: &mut client::PacketWriter| match p {
                Packet::Publish(p) => {
                    if p.payload.len() >= 20 {
                        let publisher = u32::from_be_bytes(p.payload[0..4].try_into().expect("4"));
                        let seq = u64::from_be_bytes(p.payload[4..12].try_into().expect("8"));
                        let sent_us = u64::from_be_bytes(p.payload[12..20].try_into().expect("8"));
                        let now_us = epoch.elapsed().as_micros() as u64;
                        pending.push((publisher, seq, now_us.saturating_sub(sent_us)));
                    }
                    match (p.qos, p.packet_id) {
                        (QoS::AtLeastOnce, Some(id)) => writer.push(&Packet::PubAck(Ack::ok(id))),
                        (QoS::ExactlyOnce, Some(id)) => writer.push(&Packet::PubRec(Ack::ok(id))),
                        _ => {}
                    }
                }
                Packet::PubRel(a) => writer.push(&Packet::PubComp(Ack::ok(a.packet_id))),
                _ => {}
            };
            loop {
                let p = match reader.next().await {
                    Ok(Some(p)) => p,
                    Ok(None) => {
                        failure.set(format!("subscriber {i}: the broker at {addr} closed the connection"));
                        break;
                    }
                    Err(e) => {
                        failure.set(format!("subscriber {i}: the connection to the broker at {addr} failed: {e}"));
                        break;
                    }
                };
                handle(p, &mut pending, &mut writer);
                // Everything already read is handled before one flush and one lock.
                while let Ok(Some(p)) = reader.try_next() {
                    handle(p, &mut pending, &mut writer);
                }
                {
                    let mut t = tracker.lock();
                    for (publisher, seq, lat) in pending.drain(..) {
                        t.record(i as u32, publisher, seq, lat);
                    }
                }
                if let Err(e) = writer.flush().await {
                    failure.set(format!("subscriber {i}: writing to the broker at {addr} failed: {e}"));
                    break;
                }
            }
        }));
    }
    let crosses_nodes = (0..sub_filters.len().max(pub_topics.len()))
        .any(|i| sub_target_of(&args, i) != target_of(&args, i) || target_of(&args, i) != target_of(&args, 0));
    if crosses_nodes {
        tokio::time::sleep(ROUTE_SETTLE).await;
    }
    // Then publishers.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut pub_tasks = Vec::new();
    for (i, topic) in pub_topics.iter().enumerate() {
        let (reader, writer) = connect(
            target_of(&args, i),
            source_ip(&args, i + 1),
            &format!("bench-pub-{run_id}-{i}"),
            version,
            0,
            credentials(&args),
        )
        .await
        .with_context(|| format!("publisher {i} cannot connect to the broker at {}", target_of(&args, i)))?;
        let (stop, sent, topic, args) = (stop.clone(), sent.clone(), topic.clone(), args.clone());
        let ends = (failure.clone(), target_of(&args, i));
        pub_tasks.push(tokio::spawn(publisher(i as u32, topic, qos, args, reader, writer, stop, sent, epoch, ends)));
    }
    let start = Instant::now();
    let received = || tracker.lock().received;
    let outcome = watch(args.duration, &sent, &received, &failure).await;
    stop.store(true, Ordering::Relaxed);
    let publish_time = start.elapsed().as_secs_f64();
    for t in pub_tasks {
        let _ = t.await;
    }
    if let Err(e) = outcome {
        for t in &sub_tasks {
            t.abort();
        }
        return Err(e);
    }
    let total_sent = sent.load(Ordering::Relaxed);
    let expected = total_sent * fanout;
    let deadline = Instant::now() + Duration::from_secs(args.drain);
    while Instant::now() < deadline && tracker.lock().received < expected {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let receive_time = start.elapsed().as_secs_f64().max(publish_time);
    for t in &sub_tasks {
        t.abort();
    }
    let t = tracker.lock();
    let ms = |q: f64| t.hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(Report {
        scenario: format!("{:?}", args.scenario).to_lowercase(),
        clients: n,
        qos: args.qos,
        payload: args.payload.max(20),
        duration_s: publish_time,
        sent: total_sent,
        expected,
        received: t.received,
        lost: expected.saturating_sub(t.received),
        duplicates: t.duplicates,
        rejected: 0,
        sent_per_s: total_sent as f64 / publish_time,
        received_per_s: t.received as f64 / receive_time,
        latency_ms_p50: ms(0.5),
        latency_ms_p99: ms(0.99),
        latency_ms_p999: ms(0.999),
        latency_ms_max: t.hist.max() as f64 / 1000.0,
    })
}

#[allow(clippy::too_many_arguments)]
async fn publisher(
    id: u32,
    topic: String,
    qos: QoS,
    args: BenchArgs,
    mut reader: client::PacketReader,
    mut writer: client::PacketWriter,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    epoch: Instant,
    (failure, addr): (Failure, SocketAddr),
) {
    let window = Arc::new(tokio::sync::Semaphore::new(if qos == QoS::AtMostOnce { 0 } else { args.inflight.max(1) }));
    let (rel_tx, mut rel_rx) = tokio::sync::mpsc::unbounded_channel::<u16>();
    let ack_window = window.clone();
    let acks = tokio::spawn(async move {
        while let Ok(Some(p)) = reader.next().await {
            match p {
                Packet::PubAck(_) | Packet::PubComp(_) => ack_window.add_permits(1),
                Packet::PubRec(a) => {
                    let _ = rel_tx.send(a.packet_id);
                }
                _ => {}
            }
        }
    });
    let mut interval = (args.rate > 0).then(|| {
        let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        i
    });
    let mut seq = 0u64;
    let mut packet_id = 0u16;
    while !stop.load(Ordering::Relaxed) {
        if let Some(i) = interval.as_mut() {
            i.tick().await;
        }
        if qos != QoS::AtMostOnce {
            // Wait for window space, releasing QoS 2 messages meanwhile.
            loop {
                while let Ok(id) = rel_rx.try_recv() {
                    writer.push(&Packet::PubRel(Ack::ok(id)));
                }
                if let Ok(p) = window.try_acquire() {
                    p.forget();
                    break;
                }
                if let Err(e) = writer.flush().await {
                    failure.set(format!("publisher {id}: writing to the broker at {addr} failed: {e}"));
                    return;
                }
                tokio::select! {
                    p = window.acquire() => { if let Ok(p) = p { p.forget(); } break; }
                    id = rel_rx.recv() => { if let Some(id) = id { writer.push(&Packet::PubRel(Ack::ok(id))); } }
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            packet_id = packet_id.wrapping_add(1).max(1);
        }
        writer.push(&Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.clone(),
            packet_id: (qos != QoS::AtMostOnce).then_some(packet_id),
            properties: Properties::default(),
            payload: encode_payload(args.payload, id, seq, epoch),
        }));
        seq += 1;
        sent.fetch_add(1, Ordering::Relaxed);
        let due =
            interval.is_some() || writer.buffered() > 16 * 1024 || qos == QoS::AtMostOnce && seq.is_multiple_of(32);
        if due {
            if let Err(e) = writer.flush().await {
                failure.set(format!("publisher {id}: writing to the broker at {addr} failed: {e}"));
                break;
            }
        }
    }
    let _ = writer.flush().await;
    // Let QoS 2 handshakes finish.
    let end = Instant::now() + Duration::from_secs(args.drain);
    while qos == QoS::ExactlyOnce && Instant::now() < end {
        match tokio::time::timeout(Duration::from_millis(200), rel_rx.recv()).await {
            Ok(Some(id)) => {
                writer.push(&Packet::PubRel(Ack::ok(id)));
                let _ = writer.flush().await;
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    acks.abort();
}
