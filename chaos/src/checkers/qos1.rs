//! QoS 1 delivery: every acknowledged publish reaches the persistent-session subscriber.
//!
//! The workload publishes messages with unique ids at QoS 1 (`f: "publish"`, key = topic,
//! value = the id as a string or a number) and one subscriber with a persistent session
//! records each delivery (`f: "receive"`, ok value = the id). A PUBACK is a promise: the
//! message is stored and will be delivered at least once, across partitions, kills and
//! reconnects. So an acknowledged id never received is *lost* (a violation), an id received
//! that nobody published is *unexpected* (a violation), and a second delivery is a
//! *duplicate* (allowed at QoS 1, only counted).

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::{CheckError, Status, SAMPLE};
use crate::history::{Completed, Outcome};

/// What the QoS 1 checker found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Qos1Result {
    /// The verdict: a violation when anything was lost or unexpected.
    pub status: Status,
    /// Distinct ids the publishers tried to publish.
    pub attempted: usize,
    /// Distinct ids with at least one acknowledged publish.
    pub acknowledged: usize,
    /// Distinct ids delivered at least once.
    pub received: usize,
    /// Deliveries in all (`received` plus duplicates).
    pub deliveries: usize,
    /// Acknowledged ids never delivered; must be 0.
    pub lost: usize,
    /// Deliveries of an id already delivered (allowed at QoS 1).
    pub duplicates: usize,
    /// Delivered ids that no publisher attempted; must be 0.
    pub unexpected: usize,
    /// Ids whose publish failed or timed out but that were delivered anyway (allowed).
    pub recovered: usize,
    /// A few lost ids, smallest first.
    pub lost_sample: Vec<String>,
    /// A few unexpected ids, smallest first.
    pub unexpected_sample: Vec<String>,
}

/// Checks the `publish` and `receive` operations of `ops`; other operations are ignored.
pub fn check(ops: &[Completed]) -> Result<Qos1Result, CheckError> {
    check_named(ops, "publish", "receive")
}

/// Checks the operations named `publish` and `receive` (the qos1 workload's, or the
/// moving, offline and shared workloads' own names); other operations are ignored.
pub fn check_named(ops: &[Completed], publish: &str, receive: &str) -> Result<Qos1Result, CheckError> {
    let mut attempted = HashSet::new();
    let mut acknowledged = HashSet::new();
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    let mut any = false;
    for op in ops {
        match op.f.as_str() {
            f if f == publish => {
                any = true;
                let id = message_id(&op.invoke).ok_or_else(|| malformed(op, "the invoke value is not a message id"))?;
                if op.outcome == Outcome::Ok {
                    acknowledged.insert(id.clone());
                }
                attempted.insert(id);
            }
            f if f == receive => {
                any = true;
                if op.outcome != Outcome::Ok {
                    continue;
                }
                let value = if op.result.is_null() { &op.invoke } else { &op.result };
                let id = message_id(value).ok_or_else(|| malformed(op, "the ok value is not a message id"))?;
                *deliveries.entry(id).or_default() += 1;
            }
            _ => {}
        }
    }
    let lost: BTreeSet<&String> = acknowledged.iter().filter(|id| !deliveries.contains_key(*id)).collect();
    let unexpected: BTreeSet<&String> = deliveries.keys().filter(|id| !attempted.contains(*id)).collect();
    let recovered = deliveries.keys().filter(|id| attempted.contains(*id) && !acknowledged.contains(*id)).count();
    let delivered: usize = deliveries.values().sum();
    let status = match (any, lost.is_empty() && unexpected.is_empty()) {
        (false, _) => Status::NotRun,
        (true, true) => Status::Ok,
        (true, false) => Status::Violation,
    };
    Ok(Qos1Result {
        status,
        attempted: attempted.len(),
        acknowledged: acknowledged.len(),
        received: deliveries.len(),
        deliveries: delivered,
        lost: lost.len(),
        duplicates: delivered - deliveries.len(),
        unexpected: unexpected.len(),
        recovered,
        lost_sample: lost.into_iter().take(SAMPLE).cloned().collect(),
        unexpected_sample: unexpected.into_iter().take(SAMPLE).cloned().collect(),
    })
}

/// A message id as text: ids may be written as strings or numbers (so `7` and `"7"` are the
/// same message).
fn message_id(value: &Value) -> Option<String> {
    match value {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

fn malformed(op: &Completed, reason: &str) -> CheckError {
    CheckError::malformed("qos1", op, reason)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn op(f: &str, outcome: Outcome, invoke: Value, result: Value) -> Completed {
        Completed {
            process: 1,
            f: f.to_owned(),
            key: Some("chaos/qos1".to_owned()),
            node: None,
            call_ns: 0,
            return_ns: (outcome != Outcome::Info).then_some(1),
            invoke,
            result,
            outcome,
        }
    }

    fn publish(id: Value, outcome: Outcome) -> Completed {
        op("publish", outcome, id, Value::Null)
    }

    fn receive(id: Value) -> Completed {
        op("receive", Outcome::Ok, Value::Null, id)
    }

    #[test]
    fn every_acknowledged_publish_received_passes() {
        let result = check(&[
            publish(json!("m1"), Outcome::Ok),
            publish(json!("m2"), Outcome::Ok),
            receive(json!("m2")),
            receive(json!("m1")),
        ])
        .unwrap();
        assert_eq!(result.status, Status::Ok);
        assert_eq!((result.attempted, result.acknowledged, result.received, result.lost), (2, 2, 2, 0));
    }

    #[test]
    fn an_acknowledged_publish_never_received_is_lost() {
        let result =
            check(&[publish(json!("m1"), Outcome::Ok), publish(json!("m2"), Outcome::Ok), receive(json!("m1"))])
                .unwrap();
        assert_eq!(result.status, Status::Violation);
        assert_eq!(result.lost, 1);
        assert_eq!(result.lost_sample, vec!["m2".to_owned()]);
    }

    #[test]
    fn a_duplicate_delivery_is_counted_but_not_a_violation() {
        let result =
            check(&[publish(json!(1), Outcome::Ok), receive(json!(1)), receive(json!(1)), receive(json!(1))]).unwrap();
        assert_eq!(result.status, Status::Ok);
        assert_eq!((result.received, result.deliveries, result.duplicates), (1, 3, 2));
    }

    #[test]
    fn a_message_nobody_published_is_unexpected() {
        let result =
            check(&[publish(json!("m1"), Outcome::Ok), receive(json!("m1")), receive(json!("ghost"))]).unwrap();
        assert_eq!(result.status, Status::Violation);
        assert_eq!(result.unexpected_sample, vec!["ghost".to_owned()]);
    }

    #[test]
    fn an_unacknowledged_publish_may_be_received_or_not() {
        let result = check(&[
            publish(json!("timed-out"), Outcome::Info),
            publish(json!("refused"), Outcome::Fail),
            publish(json!("never-seen"), Outcome::Info),
            receive(json!("timed-out")),
            receive(json!("refused")),
        ])
        .unwrap();
        assert_eq!(result.status, Status::Ok);
        assert_eq!((result.attempted, result.acknowledged, result.recovered, result.lost), (3, 0, 2, 0));
    }

    #[test]
    fn a_retried_publish_is_acknowledged_if_any_attempt_was() {
        let result =
            check(&[publish(json!("m1"), Outcome::Info), publish(json!("m1"), Outcome::Ok), receive(json!("m1"))])
                .unwrap();
        assert_eq!((result.attempted, result.acknowledged, result.recovered), (1, 1, 0));
    }

    #[test]
    fn numeric_and_string_ids_name_the_same_message() {
        let result = check(&[publish(json!(42), Outcome::Ok), receive(json!("42"))]).unwrap();
        assert_eq!(result.status, Status::Ok);
    }

    #[test]
    fn failed_or_unknown_receives_are_not_deliveries() {
        let result = check(&[
            publish(json!("m1"), Outcome::Ok),
            op("receive", Outcome::Info, Value::Null, Value::Null),
            op("receive", Outcome::Fail, Value::Null, json!("m1")),
        ])
        .unwrap();
        assert_eq!(result.lost, 1);
    }

    #[test]
    fn a_history_without_publishes_is_not_run() {
        let other = op("write", Outcome::Ok, json!(1), Value::Null);
        assert_eq!(check(&[other]).unwrap().status, Status::NotRun);
    }

    #[test]
    fn a_publish_without_an_id_is_malformed() {
        let err = check(&[publish(json!({"id": 1}), Outcome::Ok)]).unwrap_err();
        assert_eq!(err.checker, "qos1");
        assert!(err.reason.contains("not a message id"));
    }

    #[test]
    fn the_lost_sample_is_small_and_sorted() {
        let ops: Vec<_> = (0..50).map(|i| publish(json!(format!("m{i:02}")), Outcome::Ok)).collect();
        let result = check(&ops).unwrap();
        assert_eq!(result.lost, 50);
        assert_eq!(result.lost_sample.len(), SAMPLE);
        assert_eq!(result.lost_sample[0], "m00");
    }
}
