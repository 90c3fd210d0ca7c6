//! The shadow scenario of `ferrite bench`: N devices, each updating its own thing's shadow
//! over MQTT the way the AWS IoT Device SDKs do (publish to `$aws/things/{thing}/shadow/update`
//! with a `clientToken`, wait for `update/accepted` or `update/rejected`). Each device keeps
//! `--inflight` updates unanswered, so the node sees devices × inflight concurrent writes:
//! that is the batch its replicated shard groups can commit together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use ferrite_mqtt::client::{connect, PacketReader, PacketWriter};
use ferrite_mqtt::packet::*;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use super::{credentials, source_ip, target_of, version_of, BenchArgs, Report};

/// Unanswered shadow requests AWS allows per connection; more are rejected with 429.
const MAX_INFLIGHT: usize = crate::shadow::rate::MAX_IN_FLIGHT_PER_CONNECTION as usize;

/// What all devices measured together.
struct Totals {
    sent: u64,
    accepted: u64,
    rejected: u64,
    unexpected: u64,
    hist: Histogram<u64>,
}

/// One connected device and the thing whose shadow it updates.
struct Device {
    thing: String,
    reader: PacketReader,
    writer: PacketWriter,
}

/// Runs the shadow scenario and reports accepted updates per second and their latency.
pub(super) async fn run(args: BenchArgs) -> anyhow::Result<Report> {
    let version = version_of(args.mqtt_version)?;
    let qos = QoS::from_u8(args.qos).expect("validated by clap");
    let n = args.clients.max(1);
    let window = args.inflight.clamp(1, MAX_INFLIGHT);
    let run_id = rand::random::<u32>();
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        let thing = format!("bench-{run_id}-{i}");
        let (mut reader, mut writer) =
            connect(target_of(&args, i), source_ip(&args, i), &thing, version, 0, credentials(&args))
                .await
                .with_context(|| format!("device {i} cannot connect to the broker at {}", target_of(&args, i)))?;
        let answers = ["accepted", "rejected"]
            .map(|a| (format!("$aws/things/{thing}/shadow/update/{a}"), SubOptions { qos, ..Default::default() }));
        writer.push(&Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: answers.to_vec(),
        }));
        writer.flush().await?;
        match reader.next().await? {
            Some(Packet::SubAck(a)) if a.reason_codes.iter().all(|c| *c < 0x80) => {}
            other => anyhow::bail!("subscription refused: {other:?}"),
        }
        devices.push(Device { thing, reader, writer });
    }
    let totals = Arc::new(Mutex::new(Totals {
        sent: 0,
        accepted: 0,
        rejected: 0,
        unexpected: 0,
        hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let drain = Duration::from_secs(args.drain);
    let tasks: Vec<_> = devices
        .into_iter()
        .map(|d| tokio::spawn(device(d, qos, window, stop.clone(), totals.clone(), epoch, drain)))
        .collect();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    stop.store(true, Ordering::Relaxed);
    let publish_time = epoch.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let receive_time = epoch.elapsed().as_secs_f64().max(publish_time);
    let t = totals.lock();
    let ms = |q: f64| t.hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(Report {
        scenario: "shadow".into(),
        clients: n,
        qos: args.qos,
        payload: update(0).len(),
        duration_s: publish_time,
        sent: t.sent,
        expected: t.sent,
        received: t.accepted,
        lost: t.sent.saturating_sub(t.accepted + t.rejected),
        duplicates: t.unexpected,
        rejected: t.rejected,
        sent_per_s: t.sent as f64 / publish_time,
        received_per_s: t.accepted as f64 / receive_time,
        latency_ms_p50: ms(0.5),
        latency_ms_p99: ms(0.99),
        latency_ms_p999: ms(0.999),
        latency_ms_max: t.hist.max() as f64 / 1000.0,
    })
}

/// The update request with sequence number `seq` as its `clientToken`.
fn update(seq: u64) -> Bytes {
    Bytes::from(format!(r#"{{"state":{{"reported":{{"seq":{seq},"temperature":21.5}}}},"clientToken":"{seq}"}}"#))
}

/// The `clientToken` of an answer.
fn token_of(payload: &[u8]) -> Option<u64> {
    let doc: serde_json::Value = serde_json::from_slice(payload).ok()?;
    doc.get("clientToken")?.as_str()?.parse().ok()
}

/// One device's loop: keep `window` updates unanswered until `stop`, then wait up to
/// `drain` for the last answers.
async fn device(
    mut d: Device,
    qos: QoS,
    window: usize,
    stop: Arc<AtomicBool>,
    totals: Arc<Mutex<Totals>>,
    epoch: Instant,
    drain: Duration,
) {
    let topic = format!("$aws/things/{}/shadow/update", d.thing);
    let mut unanswered: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    let mut seq = 0u64;
    let mut packet_id = 0u16;
    let mut stopped_at = None;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let mut sent = 0;
        while !stopping && unanswered.len() < window {
            let packet_id = (qos != QoS::AtMostOnce).then(|| {
                packet_id = packet_id.wrapping_add(1).max(1);
                packet_id
            });
            d.writer.push(&Packet::Publish(Publish {
                dup: false,
                qos,
                retain: false,
                topic: topic.clone(),
                packet_id,
                properties: Properties::default(),
                payload: update(seq),
            }));
            unanswered.insert(seq, epoch.elapsed().as_micros() as u64);
            seq += 1;
            sent += 1;
        }
        if d.writer.flush().await.is_err() {
            return;
        }
        totals.lock().sent += sent;
        if stopping {
            let since = *stopped_at.get_or_insert_with(Instant::now);
            if unanswered.is_empty() || since.elapsed() >= drain {
                return;
            }
        }
        let wait = if stopping { Duration::from_millis(100) } else { Duration::from_secs(1) };
        let first = match tokio::time::timeout(wait, d.reader.next()).await {
            Ok(Ok(Some(p))) => Some(p),
            Ok(_) => return,
            Err(_) => None,
        };
        let mut answers = Vec::new();
        let mut next = first;
        while let Some(p) = next {
            if let Packet::Publish(p) = p {
                if let (QoS::AtLeastOnce, Some(id)) = (p.qos, p.packet_id) {
                    d.writer.push(&Packet::PubAck(Ack::ok(id)));
                }
                let accepted = p.topic.ends_with("/accepted");
                let sent_us = token_of(&p.payload).and_then(|t| unanswered.remove(&t));
                answers.push((accepted, sent_us));
            }
            next = d.reader.try_next().ok().flatten();
        }
        let now_us = epoch.elapsed().as_micros() as u64;
        let mut t = totals.lock();
        for (accepted, sent_us) in answers {
            match (accepted, sent_us) {
                (_, None) => t.unexpected += 1,
                (true, Some(at)) => {
                    t.accepted += 1;
                    let _ = t.hist.record(now_us.saturating_sub(at).max(1));
                }
                (false, Some(_)) => t.rejected += 1,
            }
        }
    }
}
