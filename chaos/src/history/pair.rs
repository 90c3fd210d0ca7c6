//! Pairing invocations with their completions.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use super::{Op, OpType, Process};

/// How a client operation ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect.
    Ok,
    /// It definitely did not take effect.
    Fail,
    /// Unknown: it may have taken effect, at any time after its call (also for an operation
    /// still outstanding when the history ends).
    Info,
}

impl From<Outcome> for OpType {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Ok => OpType::Ok,
            Outcome::Fail => OpType::Fail,
            Outcome::Info => OpType::Info,
        }
    }
}

/// One client operation with its interval and result: the unit every checker reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completed {
    /// The client.
    pub process: u64,
    /// The operation's name.
    pub f: String,
    /// The operation's key (topic, thing, client id), from the invocation or else the completion.
    pub key: Option<String>,
    /// The node the client used, from the invocation or else the completion.
    pub node: Option<u64>,
    /// When the client started it.
    pub call_ns: u64,
    /// When the client learned the outcome; `None` when it never did (`info` or no completion),
    /// meaning the operation may take effect at any time after its call.
    pub return_ns: Option<u64>,
    /// The invocation's value (the argument).
    pub invoke: Value,
    /// The completion's value (the result); null when there was no completion.
    pub result: Value,
    /// How it ended.
    pub outcome: Outcome,
}

/// A fault the nemesis injected or repaired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    /// Its kind: `partition`, `heal`, `kill`, `restart`, `pause`, `resume`, ...
    pub f: String,
    /// What it did (which nodes, which links).
    pub value: Value,
    /// When it started.
    pub time_ns: u64,
}

/// A history as the checkers see it: client operations in invocation order, and the faults.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct History {
    /// Every client operation, completed or not, in the order they were invoked.
    pub ops: Vec<Completed>,
    /// Every fault, in time order.
    pub faults: Vec<Fault>,
}

/// A history whose records cannot be paired: the harness broke the one-outstanding-operation
/// rule. Records are numbered from 1 in file order (the line number when there are no blank lines).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PairError {
    /// A completion with no outstanding invocation of that process.
    #[error("record {record}: process {process} completed {f:?} but had nothing outstanding")]
    Orphan {
        /// 1-based record number.
        record: usize,
        /// The client.
        process: u64,
        /// The completion's operation.
        f: String,
    },
    /// A second invocation while the first is still outstanding.
    #[error("record {record}: process {process} invoked {f:?} while {outstanding:?} was still outstanding")]
    Overlap {
        /// 1-based record number.
        record: usize,
        /// The client.
        process: u64,
        /// The new invocation's operation.
        f: String,
        /// The outstanding invocation's operation.
        outstanding: String,
    },
    /// A completion for a different operation than the one outstanding.
    #[error("record {record}: process {process} completed {f:?} but its outstanding operation is {outstanding:?}")]
    Mismatch {
        /// 1-based record number.
        record: usize,
        /// The client.
        process: u64,
        /// The completion's operation.
        f: String,
        /// The outstanding invocation's operation.
        outstanding: String,
    },
}

impl History {
    /// Pairs each client's completion with that client's outstanding invocation, and collects
    /// the faults. A nemesis may write either single records or invoke/completion pairs; a pair
    /// counts as one fault.
    pub fn from_ops(ops: &[Op]) -> Result<History, PairError> {
        let mut history = History::default();
        let mut outstanding: HashMap<u64, usize> = HashMap::new();
        let mut nemesis_outstanding: Option<&str> = None;
        for (index, op) in ops.iter().enumerate() {
            let record = index + 1;
            let process = match op.process {
                Process::Client(process) => process,
                Process::Nemesis => {
                    let completes = op.kind != OpType::Invoke && nemesis_outstanding == Some(op.f.as_str());
                    nemesis_outstanding = (op.kind == OpType::Invoke).then_some(op.f.as_str());
                    if !completes {
                        history.faults.push(Fault { f: op.f.clone(), value: op.value.clone(), time_ns: op.time_ns });
                    }
                    continue;
                }
            };
            let outcome = match op.kind {
                OpType::Invoke => {
                    if let Some(&open) = outstanding.get(&process) {
                        let outstanding = history.ops[open].f.clone();
                        return Err(PairError::Overlap { record, process, f: op.f.clone(), outstanding });
                    }
                    outstanding.insert(process, history.ops.len());
                    history.ops.push(Completed {
                        process,
                        f: op.f.clone(),
                        key: op.key.clone(),
                        node: op.node,
                        call_ns: op.time_ns,
                        return_ns: None,
                        invoke: op.value.clone(),
                        result: Value::Null,
                        outcome: Outcome::Info,
                    });
                    continue;
                }
                OpType::Ok => Outcome::Ok,
                OpType::Fail => Outcome::Fail,
                OpType::Info => Outcome::Info,
            };
            let Some(open) = outstanding.remove(&process) else {
                return Err(PairError::Orphan { record, process, f: op.f.clone() });
            };
            let completed = &mut history.ops[open];
            if completed.f != op.f {
                return Err(PairError::Mismatch { record, process, f: op.f.clone(), outstanding: completed.f.clone() });
            }
            completed.outcome = outcome;
            completed.result = op.value.clone();
            completed.return_ns = (outcome != Outcome::Info).then_some(op.time_ns);
            if completed.key.is_none() {
                completed.key.clone_from(&op.key);
            }
            if completed.node.is_none() {
                completed.node = op.node;
            }
        }
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn client(process: u64, kind: OpType, f: &str, time_ns: u64) -> Op {
        Op::new(Process::Client(process), kind, f).at(time_ns)
    }

    #[test]
    fn a_completion_pairs_with_its_process_invocation() {
        let ops = [
            client(1, OpType::Invoke, "write", 1).key("a").value(5).node(3),
            client(2, OpType::Invoke, "read", 2).key("a"),
            client(2, OpType::Ok, "read", 3).value(json!({"version": 0, "value": null})),
            client(1, OpType::Ok, "write", 4).value(json!({"version": 1})),
        ];
        let history = History::from_ops(&ops).unwrap();
        let write = &history.ops[0];
        assert_eq!((write.process, write.f.as_str(), write.call_ns, write.return_ns), (1, "write", 1, Some(4)));
        assert_eq!((write.invoke.clone(), write.result.clone()), (json!(5), json!({"version": 1})));
        assert_eq!((write.key.as_deref(), write.node, write.outcome), (Some("a"), Some(3), Outcome::Ok));
        let read = &history.ops[1];
        assert_eq!((read.process, read.call_ns, read.return_ns, read.outcome), (2, 2, Some(3), Outcome::Ok));
    }

    #[test]
    fn an_info_completion_or_no_completion_has_no_return_time() {
        let ops = [
            client(1, OpType::Invoke, "write", 1),
            client(2, OpType::Invoke, "write", 2),
            client(1, OpType::Info, "write", 3),
            client(3, OpType::Invoke, "cas", 4),
            client(3, OpType::Fail, "cas", 5),
        ];
        let history = History::from_ops(&ops).unwrap();
        let seen: Vec<_> = history.ops.iter().map(|op| (op.process, op.outcome, op.return_ns)).collect();
        assert_eq!(seen, vec![(1, Outcome::Info, None), (2, Outcome::Info, None), (3, Outcome::Fail, Some(5))]);
    }

    #[test]
    fn a_process_may_start_again_after_its_completion() {
        let ops = [
            client(1, OpType::Invoke, "write", 1),
            client(1, OpType::Info, "write", 2),
            client(1, OpType::Invoke, "read", 3),
            client(1, OpType::Ok, "read", 4),
        ];
        assert_eq!(History::from_ops(&ops).unwrap().ops.len(), 2);
    }

    #[test]
    fn a_second_invocation_while_one_is_outstanding_is_an_error() {
        let ops = [client(1, OpType::Invoke, "write", 1), client(1, OpType::Invoke, "read", 2)];
        let err = History::from_ops(&ops).unwrap_err();
        assert_eq!(err.to_string(), "record 2: process 1 invoked \"read\" while \"write\" was still outstanding");
    }

    #[test]
    fn a_completion_without_an_invocation_is_an_error() {
        let err = History::from_ops(&[client(4, OpType::Ok, "read", 1)]).unwrap_err();
        assert!(matches!(err, PairError::Orphan { record: 1, process: 4, .. }));
    }

    #[test]
    fn a_completion_of_another_operation_is_an_error() {
        let ops = [client(1, OpType::Invoke, "write", 1), client(1, OpType::Ok, "read", 2)];
        assert!(matches!(History::from_ops(&ops).unwrap_err(), PairError::Mismatch { record: 2, .. }));
    }

    #[test]
    fn nemesis_records_become_faults_and_a_pair_counts_once() {
        let nemesis = |kind, f: &str, t| Op::new(Process::Nemesis, kind, f).at(t);
        let ops = [
            nemesis(OpType::Info, "partition", 1),
            nemesis(OpType::Invoke, "kill", 2),
            client(1, OpType::Invoke, "read", 3),
            nemesis(OpType::Info, "kill", 4),
            nemesis(OpType::Info, "heal", 5),
        ];
        let history = History::from_ops(&ops).unwrap();
        let kinds: Vec<_> = history.faults.iter().map(|fault| fault.f.as_str()).collect();
        assert_eq!(kinds, vec!["partition", "kill", "heal"]);
        assert_eq!(history.ops.len(), 1);
    }
}
