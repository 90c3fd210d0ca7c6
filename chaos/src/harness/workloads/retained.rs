//! Retained messages: processes on every node publish retained QoS 1 messages with unique
//! payloads to a few topics; after the run settles, a fresh subscriber on every node
//! reads what each topic retains.
//!
//! Records: `retain` (key = topic, value = payload; ok = PUBACK) and, once settled, one
//! `retained-read` per node and topic (ok value = the payload, or null when the node
//! retains nothing for the topic).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

use super::Ctx;
use crate::harness::mqtt;
use crate::harness::nodes::mqtt_addr;
use crate::Outcome;

/// Topics written.
const TOPICS: usize = 5;
/// Writing processes.
const PROCESSES: usize = 3;
/// Pause between a process's writes.
const PACE: Duration = Duration::from_millis(50);

fn topic(k: usize) -> String {
    format!("chaos/r/{k}")
}

/// Starts the writers and the final reader.
pub fn start(ctx: Arc<Ctx>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let process = ctx.process();
            let rng = StdRng::seed_from_u64(ctx.seed ^ (0x2E7A + p as u64));
            tokio::spawn(writer(ctx.clone(), process, rng))
        })
        .collect();
    let process = ctx.process();
    tasks.push(tokio::spawn(final_reads(ctx, process)));
    tasks
}

async fn writer(ctx: Arc<Ctx>, process: u64, mut rng: StdRng) {
    let mut seq = 0u64;
    while !ctx.stopping() {
        let node = rng.gen_range(1..=ctx.nodes);
        let Some(mut client) = super::connect_or_pause(node, &format!("chaos-retain-{process}")).await else {
            continue;
        };
        while !ctx.stopping() {
            seq += 1;
            let t = topic(rng.gen_range(0..TOPICS));
            let payload = format!("{process}-{seq}");
            let op = ctx.invoke(process, "retain", Some(&t), json!(payload), node);
            match client.publish(&t, Bytes::from(payload.clone()), true).await {
                Ok(()) => ctx.complete(&op, Outcome::Ok, json!(payload)),
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

/// Once settled: what every node retains for every topic.
async fn final_reads(ctx: Arc<Ctx>, process: u64) {
    ctx.wait_settled().await;
    for node in 1..=ctx.nodes {
        let mut found = BTreeMap::new();
        let mut read = false;
        for attempt in 0..10 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let Ok(mut c) = mqtt::connect(mqtt_addr(node), &format!("chaos-retain-reader-{node}"), true, 0).await
            else {
                continue;
            };
            if c.subscribe(&["chaos/r/#"]).await.is_err() {
                continue;
            }
            while let Ok(Some(p)) = c.receive(Duration::from_secs(2)).await {
                if p.retain {
                    found.insert(p.topic.to_string(), String::from_utf8_lossy(&p.payload).to_string());
                }
            }
            c.disconnect().await;
            read = true;
            break;
        }
        for k in 0..TOPICS {
            let t = topic(k);
            let op = ctx.invoke(process, "retained-read", Some(&t), json!(null), node);
            if read {
                ctx.complete(&op, Outcome::Ok, json!(found.get(&t)));
            } else {
                ctx.complete(&op, Outcome::Info, json!({"error": "node unreachable after the run"}));
            }
        }
    }
}
