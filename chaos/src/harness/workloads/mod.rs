//! The client workloads. Each is a set of Jepsen "processes": a client with at most one
//! operation outstanding, which records the invocation, then its outcome (ok, fail when the
//! cluster definitely refused it, info when the outcome is unknown) to the history. A
//! process whose outcome was unknown reconnects before its next operation.

pub mod delivery;
pub mod qos1;
pub mod retained;
pub mod shadow;
pub mod takeover;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use super::mqtt::{self, Failure, Mqtt};
use super::nodes::mqtt_addr;
use crate::{HistoryWriter, Op, Outcome};

/// A workload the run may drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// QoS 1 publishes to a persistent-session subscriber on another node.
    Qos1,
    /// Versioned shadow writes, compare-and-set updates and reads.
    Shadow,
    /// Retained messages written on every node.
    Retained,
    /// Clients with the same ids connecting to different nodes.
    Takeover,
    /// A persistent subscriber moving between nodes while connected.
    Moving,
    /// A persistent subscriber away while messages queue, back on another node.
    Offline,
    /// A shared subscription with a member on every node.
    Shared,
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "qos1" => Ok(Workload::Qos1),
            "shadow" => Ok(Workload::Shadow),
            "retained" => Ok(Workload::Retained),
            "takeover" => Ok(Workload::Takeover),
            "moving" => Ok(Workload::Moving),
            "offline" => Ok(Workload::Offline),
            "shared" => Ok(Workload::Shared),
            other => Err(format!(
                "unknown workload {other:?}: expected qos1, shadow, retained, takeover, moving, offline or shared"
            )),
        }
    }
}

/// What every workload shares.
#[derive(Debug)]
pub struct Ctx {
    /// Where operations are recorded.
    pub history: Arc<HistoryWriter>,
    /// How many nodes (ids 1..=nodes).
    pub nodes: usize,
    /// Set when the faulty phase ends: processes finish their operation and stop.
    pub stop: AtomicBool,
    /// Set when the final reads may start (faults healed, cluster converged).
    pub settled: AtomicBool,
    next_process: AtomicU64,
    /// The run's seed, for workloads' own choices.
    pub seed: u64,
}

impl Ctx {
    /// A context for a run on `nodes` nodes.
    pub fn new(history: Arc<HistoryWriter>, nodes: usize, seed: u64) -> Arc<Ctx> {
        Arc::new(Ctx {
            history,
            nodes,
            stop: AtomicBool::new(false),
            settled: AtomicBool::new(false),
            next_process: AtomicU64::new(0),
            seed,
        })
    }

    /// A new process number.
    pub fn process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    /// True once the faulty phase is over.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Waits until the final reads may start.
    pub async fn wait_settled(&self) {
        while !self.settled.load(Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Records an invocation.
    pub fn invoke(&self, process: u64, f: &str, key: Option<&str>, value: Value, node: usize) -> Option<Op> {
        self.history.invoke(process, f, key, value, Some(node as u64)).ok()
    }

    /// Records an invocation's outcome.
    pub fn complete(&self, invoke: &Option<Op>, outcome: Outcome, value: Value) {
        if let Some(op) = invoke {
            let _ = self.history.complete(op, outcome, value);
        }
    }

    /// Records an operation that did not succeed: a refusal did not happen (fail), anything
    /// else may have (info). True when the connection should be replaced.
    pub fn failed(&self, invoke: &Option<Op>, failure: Failure) -> bool {
        match failure {
            Failure::Refused(code) => {
                self.complete(invoke, Outcome::Fail, json!({"reason": code}));
                false
            }
            Failure::Unknown(why) => {
                self.complete(invoke, Outcome::Info, json!({"error": why}));
                true
            }
        }
    }
}

/// A new clean connection of `client_id` to `node`, or `None` after a short pause when the
/// node did not take it (the caller tries again).
pub async fn connect_or_pause(node: usize, client_id: &str) -> Option<Mqtt> {
    match mqtt::connect(mqtt_addr(node), client_id, true, 0).await {
        Ok(c) => Some(c),
        Err(_) => {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            None
        }
    }
}
