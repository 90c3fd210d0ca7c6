//! Session takeover: a client id is live on at most one node.
//!
//! Clients connect with fixed ids through random nodes while the cluster is partitioned and
//! healed (`connect`: key = the client id). Once healed, the harness asks every node which
//! clients it holds live sessions for (`sessions`: node = the node, ok value = a JSON array of
//! client ids). MQTT's takeover rule says a new connection ends the old one, so an id live on
//! two nodes is a violation.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::{CheckError, Status, SAMPLE};
use crate::history::{Completed, Outcome};

/// How many operations ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    /// Succeeded.
    pub ok: usize,
    /// Definitely failed.
    pub fail: usize,
    /// Unknown.
    pub info: usize,
}

/// One `connect` of a client id: which node, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectAttempt {
    /// The node the client connected through.
    pub node: Option<u64>,
    /// When the client called it (ns since the run started).
    pub call_ns: u64,
    /// When it learned the outcome (none: never).
    pub return_ns: Option<u64>,
    /// `ok`, `fail` or `info`.
    pub outcome: &'static str,
}

/// Most connect attempts kept per duplicated client id (the last ones).
const ATTEMPTS: usize = 8;

/// A client id live on more than one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateSession {
    /// The client id.
    pub client_id: String,
    /// The nodes that report it live.
    pub nodes: Vec<u64>,
    /// Its last connects, oldest first: the interleaving to look for in the history.
    pub last_connects: Vec<ConnectAttempt>,
}

/// What the takeover checker found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TakeoverResult {
    /// Violation when any client id is live on two nodes.
    pub status: Status,
    /// Distinct client ids that connected or were reported live.
    pub clients: usize,
    /// Nodes that answered the final sessions query.
    pub nodes_reported: usize,
    /// Distinct client ids live somewhere at the end.
    pub live: usize,
    /// How the `connect` operations ended.
    pub connects: OutcomeCounts,
    /// Client ids live on more than one node.
    pub duplicates: usize,
    /// A few of them, by client id.
    pub duplicate_sample: Vec<DuplicateSession>,
}

/// Checks the `sessions` operations of `ops` and counts the `connect` operations.
pub fn check(ops: &[Completed]) -> Result<TakeoverResult, CheckError> {
    let mut connects = OutcomeCounts::default();
    let mut clients: BTreeSet<&str> = BTreeSet::new();
    let mut live: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    let mut nodes = BTreeSet::new();
    let mut attempts: BTreeMap<&str, Vec<ConnectAttempt>> = BTreeMap::new();
    for op in ops {
        let malformed = |reason| CheckError::malformed("takeover", op, reason);
        match (op.f.as_str(), op.outcome) {
            ("connect", outcome) => {
                match outcome {
                    Outcome::Ok => connects.ok += 1,
                    Outcome::Fail => connects.fail += 1,
                    Outcome::Info => connects.info += 1,
                }
                clients.extend(op.key.as_deref());
                if let Some(id) = op.key.as_deref() {
                    let outcome = match outcome {
                        Outcome::Ok => "ok",
                        Outcome::Fail => "fail",
                        Outcome::Info => "info",
                    };
                    attempts.entry(id).or_default().push(ConnectAttempt {
                        node: op.node,
                        call_ns: op.call_ns,
                        return_ns: op.return_ns,
                        outcome,
                    });
                }
            }
            ("sessions", Outcome::Ok) => {
                let node = op.node.ok_or_else(|| malformed("the sessions query names no node"))?;
                let Value::Array(ids) = &op.result else {
                    return Err(malformed("the ok value is not an array of client ids"));
                };
                nodes.insert(node);
                for id in ids {
                    let id = id.as_str().ok_or_else(|| malformed("a client id is not a string"))?;
                    live.entry(id).or_default().insert(node);
                    clients.insert(id);
                }
            }
            _ => {}
        }
    }
    let duplicates: Vec<DuplicateSession> = live
        .iter()
        .filter(|(_, nodes)| nodes.len() > 1)
        .map(|(id, nodes)| {
            let mut last_connects = attempts.remove(id).unwrap_or_default();
            last_connects.sort_by_key(|a| a.call_ns);
            let skip = last_connects.len().saturating_sub(ATTEMPTS);
            DuplicateSession {
                client_id: (*id).to_owned(),
                nodes: nodes.iter().copied().collect(),
                last_connects: last_connects.split_off(skip),
            }
        })
        .collect();
    let status = if nodes.is_empty() {
        Status::NotRun
    } else if duplicates.is_empty() {
        Status::Ok
    } else {
        Status::Violation
    };
    Ok(TakeoverResult {
        status,
        clients: clients.len(),
        nodes_reported: nodes.len(),
        live: live.len(),
        connects,
        duplicates: duplicates.len(),
        duplicate_sample: duplicates.into_iter().take(SAMPLE).collect(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn op(f: &str, key: Option<&str>, node: u64, outcome: Outcome, result: Value) -> Completed {
        Completed {
            process: 1,
            f: f.to_owned(),
            key: key.map(str::to_owned),
            node: Some(node),
            call_ns: 0,
            return_ns: Some(1),
            invoke: Value::Null,
            result,
            outcome,
        }
    }

    fn sessions(node: u64, ids: &[&str]) -> Completed {
        op("sessions", None, node, Outcome::Ok, json!(ids))
    }

    fn connect(id: &str, node: u64, outcome: Outcome) -> Completed {
        op("connect", Some(id), node, outcome, Value::Null)
    }

    #[test]
    fn each_client_live_on_one_node_passes() {
        let result = check(&[
            connect("c1", 1, Outcome::Ok),
            connect("c2", 2, Outcome::Ok),
            connect("c3", 3, Outcome::Info),
            sessions(1, &["c1"]),
            sessions(2, &["c2", "c3"]),
            sessions(3, &[]),
        ])
        .unwrap();
        assert_eq!(result.status, Status::Ok);
        assert_eq!((result.clients, result.nodes_reported, result.live), (3, 3, 3));
        assert_eq!(result.connects, OutcomeCounts { ok: 2, fail: 0, info: 1 });
    }

    #[test]
    fn a_client_live_on_two_nodes_is_a_violation() {
        let result = check(&[
            connect("c2", 3, Outcome::Info),
            sessions(1, &["c1", "c2"]),
            sessions(2, &["c2"]),
            sessions(3, &["c2", "c3"]),
        ])
        .unwrap();
        assert_eq!((result.status, result.duplicates), (Status::Violation, 1));
        let attempt = ConnectAttempt { node: Some(3), call_ns: 0, return_ns: Some(1), outcome: "info" };
        assert_eq!(
            result.duplicate_sample,
            vec![DuplicateSession { client_id: "c2".to_owned(), nodes: vec![1, 2, 3], last_connects: vec![attempt] }]
        );
    }

    #[test]
    fn a_failed_sessions_query_is_ignored() {
        let result = check(&[sessions(1, &["c1"]), op("sessions", None, 2, Outcome::Info, Value::Null)]).unwrap();
        assert_eq!((result.status, result.nodes_reported), (Status::Ok, 1));
    }

    #[test]
    fn connects_alone_are_counted_but_not_run() {
        let result = check(&[connect("c1", 1, Outcome::Fail)]).unwrap();
        assert_eq!(result.status, Status::NotRun);
        assert_eq!(result.connects.fail, 1);
    }

    #[test]
    fn a_sessions_answer_that_is_not_a_list_is_malformed() {
        let err = check(&[op("sessions", None, 1, Outcome::Ok, json!({"c1": true}))]).unwrap_err();
        assert_eq!(err.reason, "the ok value is not an array of client ids");
    }
}
