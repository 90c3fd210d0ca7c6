//! Session takeover: processes connect with a few shared client ids (persistent sessions,
//! clean start 0) to random nodes, hold each connection a moment, and move on without
//! disconnecting; the broker must close the older connection (0x8E) wherever it is. When
//! the faulty phase ends each process keeps its last connection open, and once the run
//! settles every node is asked which client ids are live on it.
//!
//! Records: `connect` (key = client id; ok value `{"session_present"}`, fail = refused with
//! a reason code, info = no answer) and, once settled, one `sessions` per node (ok value =
//! the live client ids on that node).

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

use super::Ctx;
use crate::harness::mqtt::{self, Failure};
use crate::harness::nodes::{http_addr, mqtt_addr};
use crate::Outcome;

/// Client ids shared by the processes.
const CLIENT_IDS: usize = 6;
/// Processes.
const PROCESSES: usize = 4;

/// Starts the processes and the final check; `key` signs `GET /cluster/sessions`.
pub fn start(ctx: Arc<Ctx>, key: (String, String)) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let process = ctx.process();
            let rng = StdRng::seed_from_u64(ctx.seed ^ (0x7A4E + p as u64));
            tokio::spawn(run(ctx.clone(), process, rng))
        })
        .collect();
    let process = ctx.process();
    tasks.push(tokio::spawn(final_sessions(ctx, process, key)));
    tasks
}

async fn run(ctx: Arc<Ctx>, process: u64, mut rng: StdRng) {
    let mut held = None;
    while !ctx.stopping() {
        let node = rng.gen_range(1..=ctx.nodes);
        let id = format!("chaos-take-{}", rng.gen_range(0..CLIENT_IDS));
        let op = ctx.invoke(process, "connect", Some(&id), json!(null), node);
        match mqtt::connect(mqtt_addr(node), &id, false, 300).await {
            Ok(c) => {
                ctx.complete(&op, Outcome::Ok, json!({"session_present": c.session_present}));
                // The previous connection stays open until this one replaced it: a moment
                // when two connections of this process may hold two ids.
                held = Some(c);
            }
            Err(Failure::Refused(code)) => ctx.complete(&op, Outcome::Fail, json!({"reason": code})),
            Err(Failure::Unknown(why)) => ctx.complete(&op, Outcome::Info, json!({"error": why})),
        }
        let hold = Duration::from_millis(rng.gen_range(200..1000));
        let end = tokio::time::Instant::now() + hold;
        while tokio::time::Instant::now() < end {
            // Read what arrives (a DISCONNECT 0x8E when another connection took the id over).
            let Some(c) = held.as_mut() else { break };
            if c.receive(end.saturating_duration_since(tokio::time::Instant::now())).await.is_err() {
                held = None;
            }
        }
    }
    // Keep the last connection open until the final check has run.
    ctx.wait_settled().await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop(held);
}

async fn final_sessions(ctx: Arc<Ctx>, process: u64, key: (String, String)) {
    ctx.wait_settled().await;
    // Claims made just before the end reach every node.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for node in 1..=ctx.nodes {
        let op = ctx.invoke(process, "sessions", None, json!(null), node);
        let key = key.clone();
        let answer = tokio::task::spawn_blocking(move || {
            ferrite_http_client::api::request(&http_addr(node), "GET", "/cluster/sessions", b"", Some((&key.0, &key.1)))
        })
        .await;
        match answer {
            Ok(Ok((200, doc))) => {
                let live: Vec<String> = doc["connected"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str())
                    .filter(|id| id.starts_with("chaos-take-"))
                    .map(str::to_string)
                    .collect();
                ctx.complete(&op, Outcome::Ok, json!(live));
            }
            other => ctx.complete(&op, Outcome::Info, json!({"error": format!("{other:?}")})),
        }
    }
}
