//! QoS 1 delivery to a persistent session: publishers on every node but the last publish
//! numbered messages at QoS 1 to `chaos/q/{publisher}`; one subscriber with a persistent
//! session (client id `chaos-sub`, clean start 0) lives on the last node and subscribes to
//! `chaos/q/#`. Every message crosses nodes, so the forwarded-publish path is what is under
//! test. The subscriber stays on its node (it reconnects there after every fault): moving
//! it is the takeover workload's business.
//!
//! Records: `publish` (key = topic, value = message id; ok = PUBACK) and `receive` (value =
//! message id, recorded before the PUBACK is sent).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrite_mqtt::packet::Publish;
use serde_json::json;

use super::Ctx;
use crate::harness::mqtt;
use crate::harness::nodes::mqtt_addr;
use crate::Outcome;

/// The subscriber's client id.
const SUBSCRIBER: &str = "chaos-sub";
/// Publishers.
const PUBLISHERS: usize = 3;
/// Pause between a publisher's messages.
const PACE: Duration = Duration::from_millis(10);
/// The subscriber stops once the run has settled and nothing arrived for this long.
const QUIET: Duration = Duration::from_secs(10);

/// Starts the subscriber (first, so its session exists before anything is published) and
/// the publishers; the returned tasks end after the run settles and the queue drained.
pub async fn start(ctx: Arc<Ctx>) -> Vec<tokio::task::JoinHandle<()>> {
    let sub_node = ctx.nodes;
    let process = ctx.process();
    // The session and its subscription exist before the first publish.
    loop {
        if let Ok(mut c) = mqtt::connect(mqtt_addr(sub_node), SUBSCRIBER, true, 3600).await {
            if c.subscribe(&["chaos/q/#"]).await.is_ok() {
                c.disconnect().await;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Routes reach the other nodes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let names = Names::QOS1;
    let mut tasks = vec![tokio::spawn(subscriber(ctx.clone(), process, sub_node, SUBSCRIBER, "chaos/q/#", names))];
    for p in 0..PUBLISHERS {
        let node = if ctx.nodes > 1 { 1 + p % (ctx.nodes - 1) } else { 1 };
        let process = ctx.process();
        tasks.push(tokio::spawn(publisher(ctx.clone(), process, node, "chaos/q", names)));
    }
    tasks
}

/// The operation names a delivery workload records.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// A QoS 1 publish.
    pub publish: &'static str,
    /// A delivery to a subscriber.
    pub receive: &'static str,
}

impl Names {
    /// This workload's.
    pub const QOS1: Names = Names { publish: "publish", receive: "receive" };
}

/// A subscriber with a persistent session that stays on `node` (reconnecting there after
/// every fault) and records each delivery as `names.receive`; it returns once the run has
/// settled and nothing arrived for a while.
pub async fn subscriber(ctx: Arc<Ctx>, process: u64, node: usize, client_id: &str, filter: &str, names: Names) {
    let mut quiet_since = None::<tokio::time::Instant>;
    'connect: loop {
        let mut client = match mqtt::connect(mqtt_addr(node), client_id, false, 3600).await {
            // A session the node lost is a violation the checker counts (the messages
            // queued in it are gone); like a device, subscribe again and go on.
            Ok(mut c) if !c.session_present => match c.subscribe(&[filter]).await {
                Ok(()) => c,
                Err(_) => continue 'connect,
            },
            Ok(c) => c,
            Err(_) => {
                if ctx.settled.load(std::sync::atomic::Ordering::Relaxed)
                    && quiet_since.is_some_and(|t| t.elapsed() > QUIET * 3)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        loop {
            match client.receive(Duration::from_secs(1)).await {
                Ok(Some(p)) => {
                    quiet_since = None;
                    record_delivery(&ctx, process, names, node, &p);
                }
                Ok(None) => {
                    if ctx.settled.load(std::sync::atomic::Ordering::Relaxed) {
                        let since = *quiet_since.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() >= QUIET {
                            client.disconnect().await;
                            return;
                        }
                    }
                }
                Err(_) => continue 'connect,
            }
        }
    }
}

/// Records a delivery of message `p` (its payload is the message id) on `node`.
pub fn record_delivery(ctx: &Ctx, process: u64, names: Names, node: usize, p: &Publish) {
    let id = String::from_utf8_lossy(&p.payload).to_string();
    let op = ctx.invoke(process, names.receive, Some(&p.topic), json!(null), node);
    ctx.complete(&op, Outcome::Ok, json!(id));
}

/// A publisher on `node` of numbered QoS 1 messages to `{prefix}/{process}`, each recorded
/// as `names.publish`, until the faulty phase ends.
pub async fn publisher(ctx: Arc<Ctx>, process: u64, node: usize, prefix: &str, names: Names) {
    let topic = format!("{prefix}/{process}");
    let mut seq = 0u64;
    let client_id = format!("chaos-pub-{process}");
    while !ctx.stopping() {
        let Some(mut client) = super::connect_or_pause(node, &client_id).await else { continue };
        while !ctx.stopping() {
            seq += 1;
            let id = format!("{process}-{seq}");
            let op = ctx.invoke(process, names.publish, Some(&topic), json!(id), node);
            match client.publish(&topic, Bytes::from(id.clone()), false).await {
                Ok(()) => ctx.complete(&op, Outcome::Ok, json!(id)),
                Err(failure) => {
                    if ctx.failed(&op, failure) {
                        break; // reconnect
                    }
                }
            }
            tokio::time::sleep(PACE).await;
        }
    }
}
