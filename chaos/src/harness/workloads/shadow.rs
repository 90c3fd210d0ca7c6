//! Device shadows as a versioned register: processes on every node write, read and
//! compare-and-set (an update with `"version"`) the classic shadows of a few things over
//! MQTT, matching answers by `clientToken`.
//!
//! Records, key = thing name: `write` (value = the integer written; ok value
//! `{"version"}`), `cas` (value `{"expected", "value"}`; ok `{"version"}`, fail = version
//! conflict 409), `read` (ok value `{"version", "value"}`, `{"version": 0, "value": null}`
//! for a shadow that does not exist). A 400 or 429 answer to a write or read is a definite
//! fail; to a cas it is recorded as unknown (the checker reads a cas fail as a version
//! conflict); a 5xx answer or no answer in time is unknown.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};

use super::Ctx;
use crate::harness::mqtt::{self, Failure, Mqtt};
use crate::Outcome;

/// Things whose shadows are used.
const THINGS: usize = 4;
/// Processes.
const PROCESSES: usize = 6;
/// Pause between a process's operations.
const PACE: Duration = Duration::from_millis(20);

/// Starts the processes; each stops when the faulty phase ends.
pub fn start(ctx: Arc<Ctx>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..PROCESSES)
        .map(|p| {
            let process = ctx.process();
            let rng = StdRng::seed_from_u64(ctx.seed ^ (0x5AD0 + p as u64));
            tokio::spawn(run(ctx.clone(), process, rng))
        })
        .collect()
}

fn thing(k: usize) -> String {
    format!("chaos-shadow-{k}")
}

/// An answer to a request: accepted (the document) or rejected (code).
enum Answer {
    Accepted(Value),
    Rejected(u64),
}

async fn request(client: &mut Mqtt, topic: &str, payload: Value, token: &str) -> Result<Answer, Failure> {
    client.publish(topic, Bytes::from(payload.to_string()), false).await?;
    let deadline = tokio::time::Instant::now() + mqtt::OP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(p) = client.receive(left).await? else {
            return Err(Failure::Unknown("no answer in time".into()));
        };
        let doc: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
        if doc["clientToken"].as_str() != Some(token) || !p.topic.starts_with(topic) {
            continue; // another process's answer
        }
        if p.topic.ends_with("/accepted") {
            return Ok(Answer::Accepted(doc));
        }
        return Ok(Answer::Rejected(doc["code"].as_u64().unwrap_or(0)));
    }
}

async fn run(ctx: Arc<Ctx>, process: u64, mut rng: StdRng) {
    let mut seq = 0u64;
    let mut seen_version = [0u64; THINGS];
    while !ctx.stopping() {
        let node = rng.gen_range(1..=ctx.nodes);
        let client_id = format!("chaos-shadow-client-{process}");
        let Some(mut client) = super::connect_or_pause(node, &client_id).await else { continue };
        let answers = ["$aws/things/+/shadow/update/accepted", "$aws/things/+/shadow/update/rejected"];
        let gets = ["$aws/things/+/shadow/get/accepted", "$aws/things/+/shadow/get/rejected"];
        if client.subscribe(&[answers[0], answers[1], gets[0], gets[1]]).await.is_err() {
            continue;
        }
        while !ctx.stopping() {
            seq += 1;
            let k = rng.gen_range(0..THINGS);
            let name = thing(k);
            let token = format!("{process}-{seq}");
            let value = (process * 1_000_000 + seq) as i64;
            let roll = rng.gen_range(0..10);
            let unknown = if roll < 4 {
                let op = ctx.invoke(process, "read", Some(&name), json!(null), node);
                let topic = format!("$aws/things/{name}/shadow/get");
                match request(&mut client, &topic, json!({"clientToken": token}), &token).await {
                    Ok(Answer::Accepted(doc)) => {
                        let version = doc["version"].as_u64().unwrap_or(0);
                        seen_version[k] = seen_version[k].max(version);
                        let v = doc["state"]["reported"]["value"].clone();
                        ctx.complete(&op, Outcome::Ok, json!({"version": version, "value": v}));
                        false
                    }
                    Ok(Answer::Rejected(404)) => {
                        ctx.complete(&op, Outcome::Ok, json!({"version": 0, "value": null}));
                        false
                    }
                    Ok(Answer::Rejected(code)) => {
                        ctx.complete(&op, Outcome::Fail, json!({"code": code}));
                        false
                    }
                    Err(failure) => ctx.failed(&op, failure),
                }
            } else {
                let cas = roll >= 8;
                let expected = seen_version[k];
                let (f, invoke_value) =
                    if cas { ("cas", json!({"expected": expected, "value": value})) } else { ("write", json!(value)) };
                let op = ctx.invoke(process, f, Some(&name), invoke_value, node);
                let mut body = json!({"state": {"reported": {"value": value}}, "clientToken": token});
                if cas {
                    body["version"] = json!(expected);
                }
                let topic = format!("$aws/things/{name}/shadow/update");
                match request(&mut client, &topic, body, &token).await {
                    Ok(Answer::Accepted(doc)) => {
                        let version = doc["version"].as_u64().unwrap_or(0);
                        seen_version[k] = seen_version[k].max(version);
                        ctx.complete(&op, Outcome::Ok, json!({"version": version}));
                        false
                    }
                    // A cas `fail` means "the version was not the expected one" to the
                    // checker: only a 409 says that. Other 4xx answers (400, 429) were not
                    // applied either, and a write's `fail` just means "did not happen".
                    Ok(Answer::Rejected(code)) if code == 409 || (!cas && (400..500).contains(&code)) => {
                        ctx.complete(&op, Outcome::Fail, json!({"code": code}));
                        false
                    }
                    Ok(Answer::Rejected(code)) => {
                        ctx.complete(&op, Outcome::Info, json!({"code": code}));
                        false
                    }
                    Err(failure) => ctx.failed(&op, failure),
                }
            };
            if unknown {
                break; // reconnect, maybe to another node
            }
            tokio::time::sleep(PACE).await;
        }
    }
}
