//! Device shadows are linearizable: each thing's shadow behaves like one versioned register.
//!
//! Operations (key = the thing's name; each key is checked on its own):
//! - `write`: invoke value = an integer; ok value = `{"version": n}` (the new version, may be
//!   omitted). `fail` = definitely not written (dropped); `info` = may have been written, at
//!   any time after its call.
//! - `read`: ok value = `{"version": n, "value": v}` (`v` null while the shadow does not
//!   exist, at version 0). `fail` and `info` reads are dropped: they observed nothing.
//! - `cas`: invoke value = `{"expected": n, "value": v}`; ok value = `{"version": n + 1}`
//!   (may be omitted); `fail` = a version conflict: it did not take effect and the version was
//!   not `n` when it was refused; `info` = as for a write.
//!
//! The search is [`linear::check`] over a versioned register, with a budget per key.

mod model;
#[cfg(test)]
mod proptests;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use self::model::{RegisterState, ShadowOp, ShadowState, VersionedRegister};
use super::linear::{self, Call, Stuck, Verdict};
use super::{CheckError, Status};
use crate::history::{Completed, Outcome};

/// The default search budget per key: far more than a valid history of a few thousand
/// operations needs, and a few hundred MB of memo at worst.
pub const DEFAULT_MAX_STATES: u64 = 1_000_000;

/// How hard to look before answering "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowConfig {
    /// Configurations the search may explore per key.
    pub max_states: u64,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        ShadowConfig { max_states: DEFAULT_MAX_STATES }
    }
}

/// The verdict for one thing's shadow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyResult {
    /// The thing's name (empty for operations without a key).
    pub key: String,
    /// Shadow operations on it in the history, including dropped ones.
    pub ops: usize,
    /// Ok: linearizable; violation: not; unknown: the budget ran out.
    pub status: Status,
    /// Configurations the search explored.
    pub explored: u64,
    /// For a violation, the operation that could not take effect and the states it could have
    /// found; for unknown, the budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// What the shadow checker found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShadowResult {
    /// Violation if any key is not linearizable, else unknown if any key ran out of budget.
    pub status: Status,
    /// Keys checked.
    pub keys: usize,
    /// Shadow operations in the history.
    pub ops: usize,
    /// Every key's verdict, by key.
    pub per_key: Vec<KeyResult>,
}

impl ShadowResult {
    /// The keys that are not linearizable or were not decided.
    pub fn failures(&self) -> impl Iterator<Item = &KeyResult> {
        self.per_key.iter().filter(|key| key.status != Status::Ok)
    }
}

/// The operations of one key, ready for the search, with where each came from.
#[derive(Default)]
struct KeyOps<'a> {
    count: usize,
    calls: Vec<Call<ShadowOp>>,
    sources: Vec<&'a Completed>,
}

/// Checks every key's `write`, `read` and `cas` operations; other operations are ignored.
pub fn check(ops: &[Completed], config: &ShadowConfig) -> Result<ShadowResult, CheckError> {
    let mut keys: BTreeMap<&str, KeyOps> = BTreeMap::new();
    for op in ops.iter().filter(|op| matches!(op.f.as_str(), "write" | "read" | "cas")) {
        let key = keys.entry(op.key.as_deref().unwrap_or_default()).or_default();
        key.count += 1;
        if let Some(shadow_op) = parse(op)? {
            key.calls.push(Call { op: shadow_op, call_ns: op.call_ns, return_ns: op.return_ns });
            key.sources.push(op);
        }
    }
    let per_key: Vec<KeyResult> = keys.into_iter().map(|(key, ops)| check_key(key, &ops, config)).collect();
    let status = if per_key.is_empty() {
        Status::NotRun
    } else if per_key.iter().any(|key| key.status == Status::Violation) {
        Status::Violation
    } else if per_key.iter().any(|key| key.status == Status::Unknown) {
        Status::Unknown
    } else {
        Status::Ok
    };
    let ops = per_key.iter().map(|key| key.ops).sum();
    Ok(ShadowResult { status, keys: per_key.len(), ops, per_key })
}

fn check_key(key: &str, ops: &KeyOps, config: &ShadowConfig) -> KeyResult {
    let model = VersionedRegister::for_ops(ops.calls.iter().map(|call| &call.op));
    let search = linear::check(&model, &ops.calls, config.max_states);
    let (status, explanation) = match search.verdict {
        Verdict::Linearizable => (Status::Ok, None),
        Verdict::NotLinearizable(stuck) => (Status::Violation, Some(explain(&stuck, ops))),
        Verdict::Unknown => {
            (Status::Unknown, Some(format!("gave up after exploring {} states (the budget)", search.explored)))
        }
    };
    KeyResult { key: key.to_owned(), ops: ops.count, status, explored: search.explored, explanation }
}

fn explain(stuck: &Stuck<RegisterState>, ops: &KeyOps) -> String {
    let source = ops.sources[stuck.op];
    let returned = source.return_ns.map_or_else(|| "never returned".to_owned(), |t| format!("returned {}", secs(t)));
    let states: Vec<String> = stuck.states.iter().map(ToString::to_string).collect();
    format!(
        "{} by process {} (called {}, {returned}) cannot take effect; the states it could find: {}",
        ops.calls[stuck.op].op,
        source.process,
        secs(source.call_ns),
        states.join("; ")
    )
}

fn secs(ns: u64) -> String {
    format!("{}.{:09}s", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// The search's form of an operation, or `None` for one that observed nothing and changed
/// nothing (failed writes and reads, unknown reads).
fn parse(op: &Completed) -> Result<Option<ShadowOp>, CheckError> {
    let malformed = |reason: &str| CheckError::malformed("shadow", op, reason);
    let shadow_op = match (op.f.as_str(), op.outcome) {
        ("write" | "read", Outcome::Fail) | ("read", Outcome::Info) => return Ok(None),
        ("write", outcome) => {
            let value = op.invoke.as_i64().ok_or_else(|| malformed("the invoke value is not an integer"))?;
            let version = if outcome == Outcome::Ok { reported_version(&op.result).map_err(malformed)? } else { None };
            ShadowOp::Write { value, version }
        }
        ("read", _) => {
            let version = field_u64(&op.result, "version").map_err(malformed)?;
            let version = version.ok_or_else(|| malformed("the ok value has no version"))?;
            let value = match op.result.get("value") {
                None | Some(Value::Null) => None,
                Some(value) => Some(value.as_i64().ok_or_else(|| malformed("the read value is not an integer"))?),
            };
            ShadowOp::Read { seen: ShadowState { version, value } }
        }
        (_, outcome) => {
            let expected = field_u64(&op.invoke, "expected").map_err(malformed)?;
            let expected = expected.ok_or_else(|| malformed("the invoke value has no expected version"))?;
            if outcome == Outcome::Fail {
                ShadowOp::CasFailed { expected }
            } else {
                let value = op.invoke.get("value").and_then(Value::as_i64);
                let value = value.ok_or_else(|| malformed("the invoke value has no integer value"))?;
                let version =
                    if outcome == Outcome::Ok { reported_version(&op.result).map_err(malformed)? } else { None };
                ShadowOp::Cas { expected, value, version }
            }
        }
    };
    Ok(Some(shadow_op))
}

/// The version a write's or cas's ok reply reports: absent from a null or an object without it.
fn reported_version(result: &Value) -> Result<Option<u64>, &'static str> {
    match result {
        Value::Null => Ok(None),
        Value::Object(_) => field_u64(result, "version"),
        _ => Err("the ok value is neither null nor an object"),
    }
}

fn field_u64(value: &Value, field: &str) -> Result<Option<u64>, &'static str> {
    match value.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(number) => number.as_u64().map(Some).ok_or("a version is not a non-negative integer"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Builds histories of completed operations by hand, one client per operation.
    #[derive(Default)]
    struct Builder {
        ops: Vec<Completed>,
    }

    impl Builder {
        fn op(
            &mut self,
            f: &str,
            outcome: Outcome,
            (call, ret): (u64, u64),
            invoke: Value,
            result: Value,
        ) -> &mut Self {
            self.ops.push(Completed {
                process: self.ops.len() as u64,
                f: f.to_owned(),
                key: Some("thing".to_owned()),
                node: None,
                call_ns: call,
                return_ns: (outcome != Outcome::Info).then_some(ret),
                invoke,
                result,
                outcome,
            });
            self
        }

        fn write(&mut self, at: (u64, u64), value: i64, version: u64) -> &mut Self {
            self.op("write", Outcome::Ok, at, json!(value), json!({ "version": version }))
        }

        fn write_unknown(&mut self, call: u64, value: i64) -> &mut Self {
            self.op("write", Outcome::Info, (call, 0), json!(value), Value::Null)
        }

        fn read(&mut self, at: (u64, u64), version: u64, value: Option<i64>) -> &mut Self {
            self.op("read", Outcome::Ok, at, Value::Null, json!({ "version": version, "value": value }))
        }

        fn cas(&mut self, at: (u64, u64), expected: u64, value: i64, outcome: Outcome) -> &mut Self {
            let result = if outcome == Outcome::Ok { json!({ "version": expected + 1 }) } else { Value::Null };
            self.op("cas", outcome, at, json!({ "expected": expected, "value": value }), result)
        }

        fn status(&self) -> Status {
            self.result().status
        }

        fn result(&self) -> ShadowResult {
            check(&self.ops, &ShadowConfig::default()).unwrap()
        }
    }

    #[test]
    fn a_sequential_history_of_writes_and_reads_is_linearizable() {
        let status = Builder::default()
            .read((0, 1), 0, None)
            .write((2, 3), 10, 1)
            .read((4, 5), 1, Some(10))
            .write((6, 7), 20, 2)
            .read((8, 9), 2, Some(20))
            .status();
        assert_eq!(status, Status::Ok);
    }

    #[test]
    fn a_read_of_a_missing_shadow_sees_version_zero_and_null() {
        assert_eq!(Builder::default().read((0, 1), 0, None).status(), Status::Ok);
        assert_eq!(Builder::default().read((0, 1), 0, Some(0)).status(), Status::Violation);
    }

    #[test]
    fn a_read_of_a_stale_version_is_not_linearizable() {
        let status = Builder::default().write((0, 1), 10, 1).write((2, 3), 20, 2).read((4, 5), 1, Some(10)).status();
        assert_eq!(status, Status::Violation);
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_state() {
        let before = Builder::default().write((0, 1), 10, 1).write((2, 9), 20, 2).read((3, 4), 1, Some(10)).status();
        let after = Builder::default().write((0, 1), 10, 1).write((2, 9), 20, 2).read((3, 4), 2, Some(20)).status();
        assert_eq!((before, after), (Status::Ok, Status::Ok));
    }

    #[test]
    fn concurrent_writes_may_take_effect_in_the_opposite_order_of_their_calls() {
        // A is called first but reports version 2, so B (called later) must come first.
        let status = Builder::default()
            .write((0, 10), 1, 2)
            .write((1, 9), 2, 1)
            .read((3, 4), 1, Some(2))
            .read((11, 12), 2, Some(1))
            .status();
        assert_eq!(status, Status::Ok);
    }

    #[test]
    fn a_write_cannot_take_effect_before_an_earlier_one_returned() {
        let status = Builder::default().write((0, 1), 1, 2).write((2, 3), 2, 1).status();
        assert_eq!(status, Status::Violation);
    }

    #[test]
    fn a_reported_version_that_skips_one_is_not_linearizable() {
        assert_eq!(Builder::default().write((0, 1), 1, 2).status(), Status::Violation);
    }

    #[test]
    fn an_unknown_write_that_took_effect_explains_a_later_read() {
        let status = Builder::default().write((0, 1), 1, 1).write_unknown(2, 5).read((100, 101), 2, Some(5)).status();
        assert_eq!(status, Status::Ok);
    }

    #[test]
    fn an_unknown_write_may_never_take_effect() {
        let status = Builder::default().write_unknown(0, 5).read((100, 101), 0, None).status();
        assert_eq!(status, Status::Ok);
    }

    #[test]
    fn an_unknown_write_may_take_effect_long_after_it_was_called() {
        let status = Builder::default()
            .write_unknown(0, 5)
            .read((10, 11), 0, None)
            .write((20, 21), 7, 1)
            .read((30, 31), 2, Some(5))
            .status();
        assert_eq!(status, Status::Ok);
    }

    #[test]
    fn an_unknown_write_takes_effect_at_most_once() {
        let status =
            Builder::default().write_unknown(0, 5).read((10, 11), 1, Some(5)).read((20, 21), 2, Some(5)).status();
        assert_eq!(status, Status::Violation);
    }

    #[test]
    fn an_unknown_write_cannot_explain_a_read_before_its_call() {
        let status = Builder::default().read((0, 1), 1, Some(5)).write_unknown(2, 5).status();
        assert_eq!(status, Status::Violation);
    }

    #[test]
    fn a_failed_write_or_read_is_dropped() {
        let status = Builder::default()
            .op("write", Outcome::Fail, (0, 1), json!(5), json!("conflict"))
            .op("read", Outcome::Fail, (2, 3), Value::Null, json!({"version": 99, "value": 1}))
            .op("read", Outcome::Info, (4, 5), Value::Null, Value::Null)
            .read((6, 7), 0, None)
            .status();
        assert_eq!(status, Status::Ok);
    }

    #[test]
    fn a_successful_cas_bumps_the_version() {
        let status =
            Builder::default().write((0, 1), 1, 1).cas((2, 3), 1, 9, Outcome::Ok).read((4, 5), 2, Some(9)).status();
        assert_eq!(status, Status::Ok);
    }

    #[test]
    fn a_cas_at_a_stale_version_cannot_succeed() {
        let status = Builder::default().write((0, 1), 1, 1).write((2, 3), 2, 2).cas((4, 5), 1, 9, Outcome::Ok).status();
        assert_eq!(status, Status::Violation);
    }

    #[test]
    fn a_cas_conflict_at_the_current_version_is_not_linearizable() {
        let status = Builder::default().write((0, 1), 1, 1).cas((10, 20), 1, 9, Outcome::Fail).status();
        assert_eq!(status, Status::Violation);
    }

    #[test]
    fn a_cas_conflict_may_be_explained_by_a_concurrent_write() {
        let status = Builder::default()
            .write((0, 1), 1, 1)
            .cas((10, 20), 1, 9, Outcome::Fail)
            .write((12, 18), 2, 2)
            .read((21, 22), 2, Some(2))
            .status();
        assert_eq!(status, Status::Ok);
    }

    #[test]
    fn a_cas_conflict_may_be_explained_by_an_unknown_write() {
        let status = Builder::default()
            .write((0, 1), 1, 1)
            .write_unknown(5, 2)
            .cas((10, 20), 1, 9, Outcome::Fail)
            .read((21, 22), 2, Some(2))
            .status();
        assert_eq!(status, Status::Ok);
    }

    #[test]
    fn an_unknown_cas_applies_only_at_its_expected_version() {
        let applied =
            Builder::default().write((0, 1), 1, 1).cas((2, 3), 1, 9, Outcome::Info).read((4, 5), 2, Some(9)).status();
        let impossible =
            Builder::default().write((0, 1), 1, 1).cas((2, 3), 0, 9, Outcome::Info).read((4, 5), 2, Some(9)).status();
        assert_eq!((applied, impossible), (Status::Ok, Status::Violation));
    }

    #[test]
    fn either_of_two_unknown_cas_with_the_same_effect_explains_a_read() {
        let status = Builder::default()
            .cas((0, 0), 0, 5, Outcome::Info)
            .cas((1, 0), 0, 5, Outcome::Info)
            .read((10, 11), 1, Some(5))
            .status();
        assert_eq!(status, Status::Ok);
    }

    #[test]
    fn a_write_may_omit_its_version() {
        let status = Builder::default()
            .op("write", Outcome::Ok, (0, 1), json!(4), Value::Null)
            .op("write", Outcome::Ok, (2, 3), json!(5), json!({}))
            .read((4, 5), 2, Some(5))
            .status();
        assert_eq!(status, Status::Ok);
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut builder = Builder::default();
        builder.write((0, 1), 1, 1).read((2, 3), 1, Some(1));
        builder.write((0, 1), 1, 1).read((2, 3), 0, None);
        for op in &mut builder.ops[2..] {
            op.key = Some("other".to_owned());
        }
        let result = builder.result();
        assert_eq!((result.status, result.keys, result.ops), (Status::Violation, 2, 4));
        let statuses: Vec<_> = result.per_key.iter().map(|key| (key.key.as_str(), key.status)).collect();
        assert_eq!(statuses, vec![("other", Status::Violation), ("thing", Status::Ok)]);
        assert_eq!(result.failures().count(), 1);
    }

    #[test]
    fn a_failing_key_names_the_operation_and_the_states_before_it() {
        let result = Builder::default().write((0, 1), 10, 1).read((5, 6), 0, None).result();
        let explanation = result.per_key[0].explanation.as_deref().unwrap();
        assert_eq!(
            explanation,
            "read -> version 0 value null by process 1 (called 0.000000005s, returned 0.000000006s) cannot take \
             effect; the states it could find: version 1 value 10"
        );
    }

    #[test]
    fn a_search_over_budget_is_unknown_not_a_violation() {
        let mut builder = Builder::default();
        for value in 0..12 {
            builder.op("write", Outcome::Ok, (0, 100), json!(value), Value::Null);
        }
        builder.read((200, 201), 12, Some(-1));
        let result = check(&builder.ops, &ShadowConfig { max_states: 100 }).unwrap();
        assert_eq!(result.status, Status::Unknown);
        assert!(result.per_key[0].explanation.as_deref().unwrap().contains("gave up after exploring 100 states"));
    }

    #[test]
    fn a_history_without_shadow_operations_is_not_run() {
        let result = Builder::default().op("publish", Outcome::Ok, (0, 1), json!(1), Value::Null).result();
        assert_eq!((result.status, result.keys), (Status::NotRun, 0));
    }

    #[test]
    fn a_cas_without_an_expected_version_is_malformed() {
        let mut builder = Builder::default();
        builder.op("cas", Outcome::Ok, (0, 1), json!({"value": 1}), Value::Null);
        let err = check(&builder.ops, &ShadowConfig::default()).unwrap_err();
        assert_eq!(err.reason, "the invoke value has no expected version");
    }

    #[test]
    fn a_read_without_a_version_is_malformed() {
        let mut builder = Builder::default();
        builder.op("read", Outcome::Ok, (0, 1), Value::Null, json!({"value": 1}));
        assert!(check(&builder.ops, &ShadowConfig::default()).is_err());
    }

    #[test]
    fn many_timed_out_writes_do_not_slow_the_search() {
        let mut builder = Builder::default();
        let mut version = 0;
        for i in 0..300 {
            let t = i * 100;
            builder.write_unknown(t, 1_000_000 + i as i64);
            version += 1;
            builder.write((t + 10, t + 20), i as i64, version);
            builder.read((t + 30, t + 40), version, Some(i as i64));
        }
        let result = builder.result();
        assert_eq!(result.status, Status::Ok);
        assert!(result.per_key[0].explored < 10_000, "explored {}", result.per_key[0].explored);
    }
}
