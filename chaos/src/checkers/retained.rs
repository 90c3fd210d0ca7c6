//! Retained messages converge: after healing, every node holds the same retained message per
//! topic, and it is one that could have been the last write.
//!
//! Operations: `retain` (key = topic, invoke value = the payload string; ok = PUBACK) and,
//! once the cluster is healed, `retained-read` on every node (key = topic, node = the node,
//! ok value = the retained payload or null). An empty payload clears a retained message in
//! MQTT, so it reads as null.
//!
//! Let L be the acknowledged retain that returned last. The payload read must be L's, or that
//! of a retain (acknowledged or unknown) that L cannot be known to follow: one that had not
//! returned before L was called. With no acknowledged retain, any attempted payload or null
//! will do.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::{CheckError, Status, SAMPLE};
use crate::history::{Completed, Outcome};

/// Nodes that hold different retained messages for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disagreement {
    /// The topic.
    pub topic: String,
    /// Each node and the payload it returned (null: none).
    pub reads: Vec<(u64, Option<String>)>,
}

/// Nodes that agree on a retained message that cannot be the last one written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stale {
    /// The topic.
    pub topic: String,
    /// What every node returned (null: none).
    pub read: Option<String>,
    /// Payloads that could have been last (a few).
    pub allowed: Vec<Option<String>>,
}

/// What the retained checker found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetainedResult {
    /// Violation when any topic has a disagreement or a stale value.
    pub status: Status,
    /// Topics with at least one successful read.
    pub topics: usize,
    /// Topics retained to but never read (not checked).
    pub unread: usize,
    /// Topics whose nodes disagree.
    pub disagreements: usize,
    /// Topics whose nodes agree on a payload that cannot be last.
    pub stale: usize,
    /// A few disagreements.
    pub disagreement_sample: Vec<Disagreement>,
    /// A few stale topics.
    pub stale_sample: Vec<Stale>,
}

#[derive(Default)]
struct Topic<'a> {
    retains: Vec<&'a Completed>,
    reads: BTreeMap<u64, Option<String>>,
}

/// Checks the `retain` and `retained-read` operations of `ops`; other operations are ignored.
pub fn check(ops: &[Completed]) -> Result<RetainedResult, CheckError> {
    let mut topics: BTreeMap<&str, Topic> = BTreeMap::new();
    for op in ops {
        let malformed = |reason| CheckError::malformed("retained", op, reason);
        match op.f.as_str() {
            "retain" => {
                payload(&op.invoke).ok_or_else(|| malformed("the invoke value is not a payload string"))?;
                topics.entry(op.key.as_deref().unwrap_or_default()).or_default().retains.push(op);
            }
            "retained-read" if op.outcome == Outcome::Ok => {
                let node = op.node.ok_or_else(|| malformed("the read names no node"))?;
                let read = payload(&op.result).ok_or_else(|| malformed("the ok value is neither a string nor null"))?;
                topics.entry(op.key.as_deref().unwrap_or_default()).or_default().reads.insert(node, read);
            }
            _ => {}
        }
    }
    let mut result = RetainedResult {
        status: Status::Ok,
        topics: 0,
        unread: 0,
        disagreements: 0,
        stale: 0,
        disagreement_sample: Vec::new(),
        stale_sample: Vec::new(),
    };
    for (topic, found) in &topics {
        if found.reads.is_empty() {
            result.unread += 1;
            continue;
        }
        result.topics += 1;
        let values: BTreeSet<&Option<String>> = found.reads.values().collect();
        if values.len() > 1 {
            result.disagreements += 1;
            if result.disagreement_sample.len() < SAMPLE {
                let reads = found.reads.iter().map(|(node, read)| (*node, read.clone())).collect();
                result.disagreement_sample.push(Disagreement { topic: (*topic).to_owned(), reads });
            }
            continue;
        }
        let read = values.into_iter().next().expect("reads are not empty");
        let allowed = could_be_last(&found.retains);
        if !allowed.contains(read) {
            result.stale += 1;
            if result.stale_sample.len() < SAMPLE {
                let allowed = allowed.into_iter().take(SAMPLE).collect();
                result.stale_sample.push(Stale { topic: (*topic).to_owned(), read: read.clone(), allowed });
            }
        }
    }
    result.status = if topics.is_empty() || result.topics == 0 {
        Status::NotRun
    } else if result.disagreements + result.stale > 0 {
        Status::Violation
    } else {
        Status::Ok
    };
    Ok(result)
}

/// The payloads that may be retained after all `retains` of one topic.
fn could_be_last(retains: &[&Completed]) -> BTreeSet<Option<String>> {
    let value = |op: &Completed| payload(&op.invoke).expect("checked when collected");
    let last_acknowledged = retains
        .iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .max_by_key(|op| op.return_ns.expect("an acknowledged retain returned"));
    let Some(last) = last_acknowledged else {
        return retains.iter().map(|op| value(op)).chain([None]).collect();
    };
    retains
        .iter()
        .filter(|op| op.outcome != Outcome::Fail)
        .filter(|op| op.return_ns.is_none_or(|ret| ret >= last.call_ns))
        .map(|op| value(op))
        .collect()
}

/// A retained payload: a string, with the empty string (which clears) and null both meaning none.
fn payload(value: &Value) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        Value::String(text) if text.is_empty() => Some(None),
        Value::String(text) => Some(Some(text.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn retain(topic: &str, payload: &str, outcome: Outcome, (call, ret): (u64, u64)) -> Completed {
        Completed {
            process: 1,
            f: "retain".to_owned(),
            key: Some(topic.to_owned()),
            node: Some(1),
            call_ns: call,
            return_ns: (outcome != Outcome::Info).then_some(ret),
            invoke: json!(payload),
            result: Value::Null,
            outcome,
        }
    }

    fn read(topic: &str, node: u64, payload: Option<&str>) -> Completed {
        Completed {
            process: 2,
            f: "retained-read".to_owned(),
            key: Some(topic.to_owned()),
            node: Some(node),
            call_ns: 1_000,
            return_ns: Some(1_001),
            invoke: Value::Null,
            result: json!(payload),
            outcome: Outcome::Ok,
        }
    }

    fn reads_everywhere(topic: &str, payload: Option<&str>) -> Vec<Completed> {
        (1..=3).map(|node| read(topic, node, payload)).collect()
    }

    fn check_with(mut ops: Vec<Completed>, reads: Vec<Completed>) -> RetainedResult {
        ops.extend(reads);
        check(&ops).unwrap()
    }

    #[test]
    fn all_nodes_holding_the_last_acknowledged_payload_pass() {
        let retains = vec![retain("t", "a", Outcome::Ok, (0, 1)), retain("t", "b", Outcome::Ok, (2, 3))];
        let result = check_with(retains, reads_everywhere("t", Some("b")));
        assert_eq!((result.status, result.topics), (Status::Ok, 1));
    }

    #[test]
    fn nodes_holding_different_payloads_disagree() {
        let retains = vec![retain("t", "a", Outcome::Ok, (0, 1)), retain("t", "b", Outcome::Ok, (0, 3))];
        let result = check_with(retains, vec![read("t", 1, Some("a")), read("t", 2, Some("b"))]);
        assert_eq!((result.status, result.disagreements), (Status::Violation, 1));
        let reads = &result.disagreement_sample[0].reads;
        assert_eq!(reads, &vec![(1, Some("a".to_owned())), (2, Some("b".to_owned()))]);
    }

    #[test]
    fn agreeing_on_an_overwritten_payload_is_stale() {
        let retains = vec![retain("t", "a", Outcome::Ok, (0, 1)), retain("t", "b", Outcome::Ok, (2, 3))];
        let result = check_with(retains, reads_everywhere("t", Some("a")));
        assert_eq!((result.status, result.stale), (Status::Violation, 1));
        assert_eq!(result.stale_sample[0].allowed, vec![Some("b".to_owned())]);
    }

    #[test]
    fn a_retain_concurrent_with_the_last_acknowledged_one_may_win() {
        let retains = vec![retain("t", "a", Outcome::Ok, (0, 5)), retain("t", "b", Outcome::Ok, (2, 6))];
        assert_eq!(check_with(retains, reads_everywhere("t", Some("a"))).status, Status::Ok);
    }

    #[test]
    fn an_unknown_retain_after_the_last_acknowledged_one_may_win() {
        let retains = vec![retain("t", "a", Outcome::Ok, (0, 1)), retain("t", "b", Outcome::Info, (5, 0))];
        assert_eq!(check_with(retains.clone(), reads_everywhere("t", Some("b"))).status, Status::Ok);
        assert_eq!(check_with(retains, reads_everywhere("t", Some("a"))).status, Status::Ok);
    }

    #[test]
    fn a_failed_retain_cannot_be_the_last() {
        let retains = vec![retain("t", "a", Outcome::Ok, (0, 1)), retain("t", "b", Outcome::Fail, (2, 3))];
        assert_eq!(check_with(retains, reads_everywhere("t", Some("b"))).status, Status::Violation);
    }

    #[test]
    fn losing_an_acknowledged_retain_entirely_is_stale() {
        let retains = vec![retain("t", "a", Outcome::Ok, (0, 1))];
        assert_eq!(check_with(retains, reads_everywhere("t", None)).stale, 1);
    }

    #[test]
    fn without_an_acknowledged_retain_any_attempt_or_nothing_will_do() {
        let retains = vec![retain("t", "a", Outcome::Info, (0, 0)), retain("t", "b", Outcome::Fail, (1, 2))];
        assert_eq!(check_with(retains.clone(), reads_everywhere("t", None)).status, Status::Ok);
        assert_eq!(check_with(retains.clone(), reads_everywhere("t", Some("b"))).status, Status::Ok);
        assert_eq!(check_with(retains, reads_everywhere("t", Some("zzz"))).status, Status::Violation);
    }

    #[test]
    fn an_empty_payload_clears_the_retained_message() {
        let retains = vec![retain("t", "a", Outcome::Ok, (0, 1)), retain("t", "", Outcome::Ok, (2, 3))];
        assert_eq!(check_with(retains, reads_everywhere("t", None)).status, Status::Ok);
    }

    #[test]
    fn topics_never_read_are_counted_but_not_checked() {
        let retains = vec![retain("t", "a", Outcome::Ok, (0, 1)), retain("u", "a", Outcome::Ok, (0, 1))];
        let result = check_with(retains, reads_everywhere("t", Some("a")));
        assert_eq!((result.status, result.topics, result.unread), (Status::Ok, 1, 1));
    }

    #[test]
    fn a_history_without_retained_reads_is_not_run() {
        let result = check_with(vec![retain("t", "a", Outcome::Ok, (0, 1))], vec![]);
        assert_eq!(result.status, Status::NotRun);
    }

    #[test]
    fn a_read_without_a_node_is_malformed() {
        let mut read = read("t", 1, Some("a"));
        read.node = None;
        assert_eq!(check(&[read]).unwrap_err().reason, "the read names no node");
    }
}
