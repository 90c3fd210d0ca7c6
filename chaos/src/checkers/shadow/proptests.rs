//! Property tests: histories produced by running operations one at a time against the model,
//! then blurred into overlapping intervals, are linearizable; one impossible read is not.

use std::collections::HashMap;
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::Index;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::model::{ShadowOp, ShadowState};
use super::{check, parse, ShadowConfig};
use crate::checkers::Status;
use crate::history::{Completed, Outcome};

/// What one generated operation does, and how it is blurred.
#[derive(Debug, Clone, Copy)]
struct Step {
    kind: u8,
    arg: i64,
    process: u64,
    lead: u64,
    lag: u64,
}

const KINDS: u8 = 14;
const GAP: u64 = 1_000;

fn step() -> impl Strategy<Value = Step> {
    (0..KINDS, 0..1_000i64, 0..6u64, 0..3 * GAP, 0..3 * GAP).prop_map(|(kind, arg, process, lead, lag)| Step {
        kind,
        arg,
        process,
        lead,
        lag,
    })
}

/// An operation as it happened: what was invoked, what came back, and whether the client
/// learned the outcome.
struct Happened {
    f: &'static str,
    invoke: Value,
    result: Value,
    outcome: Outcome,
}

/// Runs `steps` one at a time against the versioned register and records what each client
/// would have seen. Written values are never negative.
fn run_sequentially(steps: &[Step]) -> Vec<Happened> {
    let (mut version, mut value) = (0u64, None::<i64>);
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        let v = step.arg;
        let happened = |f, invoke, result, outcome| Happened { f, invoke, result, outcome };
        out.push(match step.kind {
            0..=2 => {
                (version, value) = (version + 1, Some(v));
                happened("write", json!(v), json!({ "version": version }), Outcome::Ok)
            }
            3 => {
                (version, value) = (version + 1, Some(v));
                happened("write", json!(v), Value::Null, Outcome::Ok)
            }
            4..=6 => happened("read", Value::Null, json!({ "version": version, "value": value }), Outcome::Ok),
            7 => {
                (version, value) = (version + 1, Some(v));
                happened(
                    "cas",
                    json!({ "expected": version - 1, "value": v }),
                    json!({ "version": version }),
                    Outcome::Ok,
                )
            }
            8 => {
                // A conflict: the expected version is not the current one.
                let expected = if v % 2 == 0 || version == 0 { version + 1 + (v as u64 % 3) } else { version - 1 };
                happened("cas", json!({ "expected": expected, "value": v }), Value::Null, Outcome::Fail)
            }
            9 => {
                (version, value) = (version + 1, Some(v));
                happened("write", json!(v), Value::Null, Outcome::Info)
            }
            10 => happened("write", json!(v), Value::Null, Outcome::Info),
            11 => {
                (version, value) = (version + 1, Some(v));
                happened("cas", json!({ "expected": version - 1, "value": v }), Value::Null, Outcome::Info)
            }
            12 => happened("read", Value::Null, json!({ "version": 12345, "value": -7 }), Outcome::Fail),
            _ => happened("write", json!(v), json!("refused"), Outcome::Fail),
        });
    }
    out
}

/// Gives operation `i` (which took effect at `(i + 1) * GAP`) an interval around that point
/// that does not overlap its own client's other operations.
fn blur(steps: &[Step], happened: Vec<Happened>) -> Vec<Completed> {
    let point = |i: usize| (i as u64 + 1) * GAP;
    let mut next_of_process: HashMap<u64, u64> = HashMap::new();
    let mut limit = vec![u64::MAX; steps.len()];
    for (i, step) in steps.iter().enumerate().rev() {
        if let Some(&next) = next_of_process.get(&step.process) {
            limit[i] = next - 1;
        }
        next_of_process.insert(step.process, point(i));
    }
    let mut free_after: HashMap<u64, u64> = HashMap::new();
    let mut ops = Vec::with_capacity(steps.len());
    for (i, (step, happened)) in steps.iter().zip(happened).enumerate() {
        let t = point(i);
        let call = t.saturating_sub(step.lead).max(free_after.get(&step.process).map_or(0, |&free| free + 1));
        let ret = (t + step.lag).min(limit[i]);
        free_after.insert(step.process, ret);
        ops.push(Completed {
            process: step.process,
            f: happened.f.to_owned(),
            key: Some("thing".to_owned()),
            node: None,
            call_ns: call,
            return_ns: (happened.outcome != Outcome::Info).then_some(ret),
            invoke: happened.invoke,
            result: happened.result,
            outcome: happened.outcome,
        });
    }
    ops.sort_by_key(|op| op.call_ns);
    ops
}

fn status(ops: &[Completed]) -> Status {
    check(ops, &ShadowConfig::default()).unwrap().status
}

proptest! {
    #[test]
    fn a_history_run_against_the_model_is_linearizable(steps in prop::collection::vec(step(), 1..60)) {
        let ops = blur(&steps, run_sequentially(&steps));
        prop_assert_eq!(status(&ops), Status::Ok);
    }

    #[test]
    fn an_impossible_read_makes_a_sequential_history_not_linearizable(
        mut steps in prop::collection::vec(step(), 0..40),
        which in any::<Index>(),
        bogus in 1..1_000i64,
    ) {
        steps.push(Step { kind: 4, arg: 0, process: 0, lead: 0, lag: 0 });
        for step in &mut steps {
            (step.lead, step.lag) = (0, 0);
        }
        let mut ops = blur(&steps, run_sequentially(&steps));
        let reads: Vec<usize> =
            (0..ops.len()).filter(|&i| ops[i].f == "read" && ops[i].outcome == Outcome::Ok).collect();
        let read = &mut ops[reads[which.index(reads.len())]];
        read.result["value"] = json!(-bogus);
        prop_assert_eq!(status(&ops), Status::Violation);
    }
}

/// Any small history at all, valid or not: values, versions and outcomes from small ranges so
/// that reads and writes often line up.
fn arbitrary_op() -> impl Strategy<Value = Completed> {
    (0..3u8, 0..4u8, 0..2i64, 0..4u64, prop::option::of(0..2i64), 0..20u64, 0..8u64, any::<bool>()).prop_map(
        |(f, outcome, value, version, read_value, call, duration, reports_version)| {
            let outcome = [Outcome::Ok, Outcome::Ok, Outcome::Fail, Outcome::Info][usize::from(outcome)];
            let expected = version % 3;
            let (f, invoke, result) = match f {
                0 => ("write", json!(value), json!({ "version": reports_version.then_some(version) })),
                1 => ("read", Value::Null, json!({ "version": version, "value": read_value })),
                _ => (
                    "cas",
                    json!({ "expected": expected, "value": value }),
                    json!({ "version": reports_version.then_some(expected + 1) }),
                ),
            };
            Completed {
                process: 0,
                f: f.to_owned(),
                key: None,
                node: None,
                call_ns: call,
                return_ns: (outcome != Outcome::Info).then_some(call + duration),
                invoke,
                result,
                outcome,
            }
        },
    )
}

/// The versioned register, written as plainly as possible (no ranks, no classes, no
/// abstraction of values): the oracle the search is compared with.
fn plain_step(state: ShadowState, op: &ShadowOp) -> Option<ShadowState> {
    let set = |value, reported: Option<u64>| {
        let version = state.version + 1;
        (reported.is_none() || reported == Some(version)).then_some(ShadowState { version, value: Some(value) })
    };
    match *op {
        ShadowOp::Write { value, version } => set(value, version),
        ShadowOp::Read { seen } => (seen == state).then_some(state),
        ShadowOp::Cas { expected, value, version } => {
            if state.version == expected {
                set(value, version)
            } else {
                None
            }
        }
        ShadowOp::CasFailed { expected } => (state.version != expected).then_some(state),
    }
}

/// The definition, tried exhaustively: some order of the operations, each placed after every
/// definite operation that returned before its call, is accepted by the model, leaving out only
/// operations of unknown outcome.
fn brute_force(ops: &[Completed]) -> bool {
    fn extend(calls: &[(ShadowOp, u64, Option<u64>)], placed: &mut [bool], state: ShadowState) -> bool {
        if calls.iter().zip(placed.iter()).all(|(call, &placed)| placed || call.2.is_none()) {
            return true;
        }
        for i in 0..calls.len() {
            let blocked = |j: usize| j != i && !placed[j] && calls[j].2.is_some_and(|ret| ret < calls[i].1);
            if placed[i] || (0..calls.len()).any(blocked) {
                continue;
            }
            if let Some(next) = plain_step(state, &calls[i].0) {
                placed[i] = true;
                if extend(calls, placed, next) {
                    return true;
                }
                placed[i] = false;
            }
        }
        false
    }
    let calls: Vec<_> =
        ops.iter().filter_map(|op| parse(op).unwrap().map(|shadow| (shadow, op.call_ns, op.return_ns))).collect();
    extend(&calls, &mut vec![false; calls.len()], ShadowState { version: 0, value: None })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn the_search_agrees_with_trying_every_order(ops in prop::collection::vec(arbitrary_op(), 1..8)) {
        let expected = if brute_force(&ops) { Status::Ok } else { Status::Violation };
        prop_assert_eq!(status(&ops), expected);
    }
}

/// Random steps in the proportions of a busy workload, from a fixed seed.
fn busy_steps(seed: u64, count: usize, clients: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| Step {
            kind: rng.gen_range(0..KINDS),
            arg: rng.gen_range(0..1_000_000),
            process: rng.gen_range(0..clients),
            lead: rng.gen_range(0..10 * GAP),
            lag: rng.gen_range(0..10 * GAP),
        })
        .collect()
}

#[test]
fn two_thousand_operations_from_ten_clients_check_quickly() {
    for seed in 0..5 {
        let steps = busy_steps(seed, 2_000, 10);
        let ops = blur(&steps, run_sequentially(&steps));
        let started = Instant::now();
        let result = check(&ops, &ShadowConfig::default()).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(result.status, Status::Ok, "seed {seed}");
        // The deterministic stand-in for "well under a second": a few configurations per
        // operation (about 2,500 here, some tens of milliseconds in a debug build).
        assert!(result.per_key[0].explored < 10_000, "seed {seed}: explored {}", result.per_key[0].explored);
        assert!(elapsed.as_secs() < 10, "seed {seed}: took {elapsed:?}");
    }
}

#[test]
fn an_impossible_read_late_in_a_busy_history_is_found_not_given_up_on() {
    for seed in 0..2 {
        let steps = busy_steps(seed, 2_000, 10);
        let mut ops = blur(&steps, run_sequentially(&steps));
        let reads: Vec<usize> =
            (0..ops.len()).filter(|&i| ops[i].f == "read" && ops[i].outcome == Outcome::Ok).collect();
        let read = reads[reads.len() * 9 / 10];
        ops[read].result["value"] = json!(-5);
        let result = check(&ops, &ShadowConfig::default()).unwrap();
        assert_eq!(result.status, Status::Violation, "seed {seed}");
        assert!(result.per_key[0].explored < 200_000, "seed {seed}: explored {}", result.per_key[0].explored);
    }
}
