//! QoS 1 delivery where the qos1 workload's subscriber stays put: subscribers that move
//! between nodes, offline sessions whose node may die while they are away, and a shared
//! subscription with a member on every node. Each is checked like qos1 (every acknowledged
//! message delivered at least once), under its own operation names.
//!
//! - `moving`: one persistent subscriber (`chaos-mover`, `chaos/m/#`) connects to the next
//!   node every [`HOP`] while still connected to the last one (a takeover: the old
//!   connection is closed with 0x8E), so its session and the messages in flight move.
//! - `offline`: one persistent subscriber (`chaos-offline`, `chaos/o/#`) reads for [`HOP`],
//!   disconnects, stays away for [`AWAY`] while messages queue, and comes back on the next
//!   node; a kill of the node that held the session while it was away must lose nothing.
//! - `shared`: a persistent member per node (`chaos-share-N`, `$share/chaos/chaos/s/#`)
//!   that stays on its node; each acknowledged message reaches some member.
//!
//! Publishers on every node publish numbered messages to `{prefix}/{process}`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::qos1::{publisher, record_delivery, subscriber, Names};
use super::Ctx;
use crate::harness::mqtt::{self, Mqtt};
use crate::harness::nodes::mqtt_addr;

/// How long a moving subscriber stays on a node.
const HOP: Duration = Duration::from_secs(3);
/// How long the offline subscriber stays away.
const AWAY: Duration = Duration::from_secs(3);
/// A subscriber stops once the run has settled and nothing arrived for this long.
const QUIET: Duration = Duration::from_secs(10);
/// Publishers per workload.
const PUBLISHERS: usize = 2;

/// The moving subscriber's operation names.
pub const MOVING: Names = Names { publish: "move-publish", receive: "move-receive" };
/// The offline subscriber's operation names.
pub const OFFLINE: Names = Names { publish: "offline-publish", receive: "offline-receive" };
/// The shared subscription's operation names.
pub const SHARED: Names = Names { publish: "share-publish", receive: "share-receive" };

/// Starts the moving subscriber (online moves) or the offline one, and its publishers.
pub async fn start_moving(ctx: Arc<Ctx>, offline: bool) -> Vec<tokio::task::JoinHandle<()>> {
    let (client_id, filter, prefix, names) = if offline {
        ("chaos-offline", "chaos/o/#", "chaos/o", OFFLINE)
    } else {
        ("chaos-mover", "chaos/m/#", "chaos/m", MOVING)
    };
    let first = 1 + (ctx.seed as usize) % ctx.nodes.max(1);
    subscribe_once(first, client_id, filter).await;
    let process = ctx.process();
    let mut tasks = vec![tokio::spawn(mover(ctx.clone(), process, first, client_id, filter, names, offline))];
    tasks.extend(publishers(&ctx, prefix, names));
    tasks
}

/// Starts a shared-subscription member on every node, and the publishers.
pub async fn start_shared(ctx: Arc<Ctx>) -> Vec<tokio::task::JoinHandle<()>> {
    let filter = "$share/chaos/chaos/s/#";
    let mut tasks = Vec::new();
    for node in 1..=ctx.nodes {
        let client_id = format!("chaos-share-{node}");
        subscribe_once(node, &client_id, filter).await;
        let process = ctx.process();
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move { subscriber(ctx, process, node, &client_id, filter, SHARED).await }));
    }
    tasks.extend(publishers(&ctx, "chaos/s", SHARED));
    tasks
}

fn publishers(ctx: &Arc<Ctx>, prefix: &'static str, names: Names) -> Vec<tokio::task::JoinHandle<()>> {
    (0..PUBLISHERS)
        .map(|p| {
            let node = 1 + p % ctx.nodes.max(1);
            let process = ctx.process();
            tokio::spawn(publisher(ctx.clone(), process, node, prefix, names))
        })
        .collect()
}

/// Makes the session and its subscription exist before anything is published.
async fn subscribe_once(node: usize, client_id: &str, filter: &str) {
    loop {
        if let Ok(mut c) = mqtt::connect(mqtt_addr(node), client_id, false, 3600).await {
            if c.subscribe(&[filter]).await.is_ok() {
                c.disconnect().await;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Connects to `node`, subscribing again when the session did not survive (the checker
/// counts what that lost).
async fn attach(node: usize, client_id: &str, filter: &str) -> Option<Mqtt> {
    let mut c = mqtt::connect(mqtt_addr(node), client_id, false, 3600).await.ok()?;
    if !c.session_present {
        c.subscribe(&[filter]).await.ok()?;
    }
    Some(c)
}

async fn mover(
    ctx: Arc<Ctx>,
    process: u64,
    first: usize,
    client_id: &'static str,
    filter: &'static str,
    names: Names,
    offline: bool,
) {
    let next = |node: usize| node % ctx.nodes.max(1) + 1;
    let mut node = first;
    let mut previous: Option<Mqtt> = None;
    let mut quiet_since = None::<tokio::time::Instant>;
    loop {
        let settled = ctx.settled.load(Ordering::Relaxed);
        let Some(mut client) = attach(node, client_id, filter).await else {
            if settled && quiet_since.is_some_and(|t: tokio::time::Instant| t.elapsed() > QUIET * 3) {
                return;
            }
            let _ = quiet_since.get_or_insert_with(tokio::time::Instant::now);
            tokio::time::sleep(Duration::from_millis(300)).await;
            node = next(node); // a device tries another node
            continue;
        };
        // The connection this one took over was closed by the broker (0x8E).
        drop(previous.take());
        let hop_at = tokio::time::Instant::now() + HOP;
        let broken = loop {
            match client.receive(Duration::from_millis(500)).await {
                Ok(Some(p)) => {
                    quiet_since = None;
                    record_delivery(&ctx, process, names, node, &p);
                }
                Ok(None) => {
                    if ctx.settled.load(Ordering::Relaxed) {
                        let since = *quiet_since.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() >= QUIET {
                            client.disconnect().await;
                            return;
                        }
                    }
                }
                Err(_) => break true,
            }
            // Once the run settles the subscriber stays where it is and drains.
            if !ctx.stopping() && tokio::time::Instant::now() >= hop_at {
                break false;
            }
        };
        if !broken {
            if offline {
                client.disconnect().await;
                tokio::time::sleep(AWAY).await;
            } else {
                previous = Some(client);
            }
        }
        node = next(node);
    }
}
