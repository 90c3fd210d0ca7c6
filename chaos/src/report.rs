//! Every checker over one history, combined into one verdict and a summary readable at a glance.

use std::fmt::Write as _;

use serde::Serialize;

use crate::checkers::qos1::{self, Qos1Result};
use crate::checkers::retained::{self, RetainedResult};
use crate::checkers::shadow::{self, ShadowConfig, ShadowResult};
use crate::checkers::takeover::{self, TakeoverResult};
use crate::checkers::{CheckError, Status};
use crate::history::{History, Outcome};

/// The run's overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No checker found a violation and every checker finished.
    Valid,
    /// At least one checker found a violation.
    Invalid,
    /// No violation found, but a checker gave up (its budget ran out).
    Unknown,
}

/// How many faults of one kind the nemesis injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultCount {
    /// The fault's `f` (`partition`, `kill`, ...).
    pub kind: String,
    /// How many.
    pub count: usize,
}

/// How one workload's operations ended: what a client saw of the cluster's availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    /// The workload (`qos1`, `shadow`, ...).
    pub workload: &'static str,
    /// Operations that succeeded.
    pub ok: usize,
    /// Operations the cluster refused (they did not happen).
    pub failed: usize,
    /// Operations without an answer in time (they may have happened).
    pub unknown: usize,
}

impl Availability {
    /// The share of operations that succeeded, in percent (100 with none).
    pub fn percent_ok(&self) -> f64 {
        let all = self.ok + self.failed + self.unknown;
        if all == 0 {
            100.0
        } else {
            100.0 * self.ok as f64 / all as f64
        }
    }
}

/// The workload an operation name belongs to; deliveries (`receive`) are left out, since
/// a client only sees the ones that happened.
fn workload_of(f: &str) -> Option<&'static str> {
    Some(match f {
        "publish" => "qos1",
        "move-publish" => "moving",
        "offline-publish" => "offline",
        "share-publish" => "shared",
        "connect" | "sessions" => "takeover",
        "retain" | "retained-read" => "retained",
        f if f.ends_with("receive") => return None,
        _ => "shadow",
    })
}

/// Counts the outcomes of every client operation by workload, in a fixed order.
fn availability(history: &History) -> Vec<Availability> {
    const ORDER: [&str; 7] = ["qos1", "moving", "offline", "shared", "shadow", "retained", "takeover"];
    let mut rows: Vec<Availability> =
        ORDER.iter().map(|w| Availability { workload: w, ok: 0, failed: 0, unknown: 0 }).collect();
    for op in &history.ops {
        let Some(workload) = workload_of(&op.f) else { continue };
        let Some(row) = rows.iter_mut().find(|r| r.workload == workload) else { continue };
        match op.outcome {
            Outcome::Ok => row.ok += 1,
            Outcome::Fail => row.failed += 1,
            Outcome::Info => row.unknown += 1,
        }
    }
    rows.retain(|r| r.ok + r.failed + r.unknown > 0);
    rows
}

/// Settings of the checkers that have any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// The shadow checker's search budget.
    pub shadow: ShadowConfig,
}

/// Everything the checkers found in one history: what `--json` writes and `summary` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The overall verdict.
    pub verdict: Verdict,
    /// `verdict == Valid`: nothing found and every check finished.
    pub valid: bool,
    /// Client operations in the history (each invocation with its completion, if any).
    pub ops: usize,
    /// Faults injected, all kinds together.
    pub faults: usize,
    /// Faults by kind, in the order each kind first happened.
    pub faults_by_kind: Vec<FaultCount>,
    /// QoS 1 delivery.
    pub qos1: Qos1Result,
    /// QoS 1 delivery to a subscriber moving between nodes.
    pub moving: Qos1Result,
    /// QoS 1 delivery to a session offline while its node may die.
    pub offline: Qos1Result,
    /// QoS 1 delivery to a cluster-wide shared subscription.
    pub shared: Qos1Result,
    /// Shadow linearizability.
    pub shadow: ShadowResult,
    /// Retained message convergence.
    pub retained: RetainedResult,
    /// Session takeover.
    pub takeover: TakeoverResult,
    /// Per workload, how its operations ended.
    pub availability: Vec<Availability>,
}

impl Report {
    fn statuses(&self) -> [Status; 7] {
        [
            self.qos1.status,
            self.moving.status,
            self.offline.status,
            self.shared.status,
            self.shadow.status,
            self.retained.status,
            self.takeover.status,
        ]
    }
}

/// Runs every checker over `history`. An error means the history itself is malformed.
pub fn check(history: &History, config: &CheckConfig) -> Result<Report, CheckError> {
    let mut faults_by_kind: Vec<FaultCount> = Vec::new();
    for fault in &history.faults {
        match faults_by_kind.iter_mut().find(|count| count.kind == fault.f) {
            Some(count) => count.count += 1,
            None => faults_by_kind.push(FaultCount { kind: fault.f.clone(), count: 1 }),
        }
    }
    let mut report = Report {
        verdict: Verdict::Valid,
        valid: true,
        ops: history.ops.len(),
        faults: history.faults.len(),
        faults_by_kind,
        qos1: qos1::check(&history.ops)?,
        moving: qos1::check_named(&history.ops, "move-publish", "move-receive")?,
        offline: qos1::check_named(&history.ops, "offline-publish", "offline-receive")?,
        shared: qos1::check_named(&history.ops, "share-publish", "share-receive")?,
        shadow: shadow::check(&history.ops, &config.shadow)?,
        retained: retained::check(&history.ops)?,
        takeover: takeover::check(&history.ops)?,
        availability: availability(history),
    };
    let statuses = report.statuses();
    report.verdict = if statuses.contains(&Status::Violation) {
        Verdict::Invalid
    } else if statuses.contains(&Status::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    report.valid = report.verdict == Verdict::Valid;
    Ok(report)
}

/// How many detail lines a failing checker gets under its line.
const DETAILS: usize = 3;

/// The human summary: a header, one line per checker (failing ones marked with `!` and
/// followed by a few details), and the verdict.
pub fn summary(report: &Report) -> String {
    let mut out = format!("ferrite-chaos: {} ops, ", report.ops);
    if report.faults == 0 {
        out.push_str("no faults\n");
    } else {
        let kinds: Vec<String> = report.faults_by_kind.iter().map(|f| format!("{} {}", f.kind, f.count)).collect();
        let _ = writeln!(out, "{} faults ({})", report.faults, kinds.join(", "));
    }
    for (name, r) in
        [("qos1", &report.qos1), ("moving", &report.moving), ("offline", &report.offline), ("shared", &report.shared)]
    {
        line(&mut out, name, r.status, &qos1_body(r), &qos1_details(r));
    }
    line(&mut out, "shadow", report.shadow.status, &shadow_body(&report.shadow), &shadow_details(&report.shadow));
    let retained = &report.retained;
    line(&mut out, "retained", retained.status, &retained_body(retained), &retained_details(retained));
    let takeover = &report.takeover;
    line(&mut out, "takeover", takeover.status, &takeover_body(takeover), &takeover_details(takeover));
    if !report.availability.is_empty() {
        let cells: Vec<String> = report
            .availability
            .iter()
            .map(|a| format!("{} {:.1}% ({}/{}/{})", a.workload, a.percent_ok(), a.ok, a.failed, a.unknown))
            .collect();
        let _ = writeln!(out, "  available  ok% (ok/failed/unknown): {}", cells.join(", "));
    }
    out.push_str(match report.verdict {
        Verdict::Valid => "VALID\n",
        Verdict::Invalid => "INVALID\n",
        Verdict::Unknown => "UNKNOWN (no violation found, but a check did not finish)\n",
    });
    out
}

fn line(out: &mut String, name: &str, status: Status, body: &str, details: &[String]) {
    let mark = if matches!(status, Status::Violation | Status::Unknown) { '!' } else { ' ' };
    let body = if status == Status::NotRun { "no operations" } else { body };
    let _ = writeln!(out, "{mark} {name:<10} {body:<46} {}", status.label());
    if matches!(status, Status::Violation | Status::Unknown) {
        for detail in details.iter().take(DETAILS) {
            let _ = writeln!(out, "    {detail}");
        }
        if details.len() > DETAILS {
            let _ = writeln!(out, "    ... and {} more (see --json)", details.len() - DETAILS);
        }
    }
}

fn qos1_body(r: &Qos1Result) -> String {
    let mut body = format!("acknowledged {}  lost {}  duplicates {}", r.acknowledged, r.lost, r.duplicates);
    if r.unexpected > 0 {
        let _ = write!(body, "  unexpected {}", r.unexpected);
    }
    body
}

fn qos1_details(r: &Qos1Result) -> Vec<String> {
    let mut details = Vec::new();
    if r.lost > 0 {
        details.push(format!("lost: {}{}", r.lost_sample.join(", "), more(r.lost, r.lost_sample.len())));
    }
    if r.unexpected > 0 {
        let sample = r.unexpected_sample.join(", ");
        details.push(format!("unexpected: {sample}{}", more(r.unexpected, r.unexpected_sample.len())));
    }
    details
}

fn more(total: usize, shown: usize) -> String {
    if total > shown {
        format!(" (+{} more)", total - shown)
    } else {
        String::new()
    }
}

fn shadow_body(r: &ShadowResult) -> String {
    let verdict = match r.status {
        Status::Violation => {
            let bad = r.per_key.iter().filter(|key| key.status == Status::Violation).count();
            format!("no ({bad} of {} keys)", r.keys)
        }
        Status::Unknown => {
            let unknown = r.per_key.iter().filter(|key| key.status == Status::Unknown).count();
            format!("unknown ({unknown} keys over budget)")
        }
        _ => "yes".to_owned(),
    };
    format!("{} keys, {} ops  linearizable {verdict}", r.keys, r.ops)
}

fn shadow_details(r: &ShadowResult) -> Vec<String> {
    r.failures()
        .map(|key| format!("key {}: {}", key.key, key.explanation.as_deref().unwrap_or("no explanation")))
        .collect()
}

fn retained_body(r: &RetainedResult) -> String {
    format!("{} topics  disagreements {}  stale {}", r.topics, r.disagreements, r.stale)
}

fn payload(value: &Option<String>) -> String {
    value.as_ref().map_or_else(|| "null".to_owned(), |text| format!("{text:?}"))
}

fn retained_details(r: &RetainedResult) -> Vec<String> {
    let disagreements = r.disagreement_sample.iter().map(|d| {
        let reads: Vec<String> = d.reads.iter().map(|(node, read)| format!("node {node} {}", payload(read))).collect();
        format!("topic {}: {}", d.topic, reads.join(", "))
    });
    let stale = r.stale_sample.iter().map(|s| {
        let allowed: Vec<String> = s.allowed.iter().map(payload).collect();
        format!("topic {}: all nodes {}; could be last: {}", s.topic, payload(&s.read), allowed.join(", "))
    });
    disagreements.chain(stale).collect()
}

fn takeover_body(r: &TakeoverResult) -> String {
    if r.duplicates == 0 {
        format!("{} clients  at most one live session", r.clients)
    } else {
        format!("{} clients  {} live on several nodes", r.clients, r.duplicates)
    }
}

fn takeover_details(r: &TakeoverResult) -> Vec<String> {
    r.duplicate_sample
        .iter()
        .map(|d| {
            let nodes: Vec<String> = d.nodes.iter().map(u64::to_string).collect();
            let connects: Vec<String> = d
                .last_connects
                .iter()
                .map(|a| {
                    let node = a.node.map_or_else(|| "?".to_owned(), |n| n.to_string());
                    let end = a.return_ns.map_or_else(|| "never".to_owned(), |t| format!("{:.3}s", t as f64 / 1e9));
                    format!("node {node} {:.3}s..{end} {}", a.call_ns as f64 / 1e9, a.outcome)
                })
                .collect();
            format!(
                "client {}: live on nodes {}; last connects: {}",
                d.client_id,
                nodes.join(", "),
                connects.join("; ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::history::{Op, OpType, Process};

    fn client(process: u64, kind: OpType, f: &str, t: u64) -> Op {
        Op::new(Process::Client(process), kind, f).at(t)
    }

    fn nemesis(f: &str, t: u64) -> Op {
        Op::new(Process::Nemesis, OpType::Info, f).at(t)
    }

    /// A small history that touches every checker and passes.
    fn valid_ops() -> Vec<Op> {
        vec![
            nemesis("partition", 0),
            client(1, OpType::Invoke, "publish", 1).key("q").value("m1"),
            client(1, OpType::Ok, "publish", 2),
            client(2, OpType::Invoke, "receive", 3),
            client(2, OpType::Ok, "receive", 4).value("m1"),
            client(3, OpType::Invoke, "write", 5).key("thing").value(7),
            client(3, OpType::Ok, "write", 6).value(json!({"version": 1})),
            nemesis("kill", 7),
            client(3, OpType::Invoke, "read", 8).key("thing"),
            client(3, OpType::Ok, "read", 9).value(json!({"version": 1, "value": 7})),
            client(4, OpType::Invoke, "retain", 10).key("r").value("x"),
            client(4, OpType::Ok, "retain", 11),
            nemesis("partition", 12),
            nemesis("heal", 13),
            client(5, OpType::Invoke, "retained-read", 14).key("r").node(1),
            client(5, OpType::Ok, "retained-read", 15).value("x"),
            client(6, OpType::Invoke, "retained-read", 16).key("r").node(2),
            client(6, OpType::Ok, "retained-read", 17).value("x"),
            client(7, OpType::Invoke, "connect", 18).key("c1").node(1),
            client(7, OpType::Ok, "connect", 19),
            client(8, OpType::Invoke, "sessions", 20).node(1),
            client(8, OpType::Ok, "sessions", 21).value(json!(["c1"])),
            client(8, OpType::Invoke, "sessions", 22).node(2),
            client(8, OpType::Ok, "sessions", 23).value(json!([])),
        ]
    }

    fn report(ops: &[Op]) -> Report {
        check(&History::from_ops(ops).unwrap(), &CheckConfig::default()).unwrap()
    }

    #[test]
    fn a_clean_history_is_valid_and_summarized_in_a_few_lines() {
        let report = report(&valid_ops());
        assert_eq!((report.verdict, report.valid, report.ops, report.faults), (Verdict::Valid, true, 10, 4));
        assert_eq!(
            summary(&report),
            "\
ferrite-chaos: 10 ops, 4 faults (partition 2, kill 1, heal 1)
  qos1       acknowledged 1  lost 0  duplicates 0           ok
  moving     no operations                                  not run
  offline    no operations                                  not run
  shared     no operations                                  not run
  shadow     1 keys, 2 ops  linearizable yes                ok
  retained   1 topics  disagreements 0  stale 0             ok
  takeover   1 clients  at most one live session            ok
  available  ok% (ok/failed/unknown): qos1 100.0% (1/0/0), shadow 100.0% (2/0/0), retained 100.0% (3/0/0), takeover 100.0% (3/0/0)
VALID
"
        );
    }

    #[test]
    fn a_checker_with_no_operations_is_not_run_and_does_not_fail() {
        let ops: Vec<Op> = valid_ops().into_iter().filter(|op| op.f != "sessions").collect();
        let report = report(&ops);
        assert_eq!((report.takeover.status, report.verdict), (Status::NotRun, Verdict::Valid));
        assert!(summary(&report).contains("  takeover   no operations                                  not run\n"));
    }

    #[test]
    fn a_violation_makes_the_report_invalid_and_marks_its_line() {
        let mut ops = valid_ops();
        ops[4].value = json!("m2");
        let report = report(&ops);
        assert_eq!((report.verdict, report.valid), (Verdict::Invalid, false));
        let text = summary(&report);
        assert!(text.contains("! qos1       acknowledged 1  lost 1  duplicates 0  unexpected 1 FAIL\n"), "{text}");
        assert!(text.contains("    lost: m1\n    unexpected: m2\n"), "{text}");
        assert!(text.ends_with("INVALID\n"), "{text}");
    }

    #[test]
    fn a_shadow_violation_is_explained_under_its_line() {
        let mut ops = valid_ops();
        ops[9].value = json!({"version": 0, "value": null});
        let text = summary(&report(&ops));
        assert!(text.contains("! shadow     1 keys, 2 ops  linearizable no (1 of 1 keys)"), "{text}");
        assert!(text.contains("    key thing: read -> version 0 value null by process 3"), "{text}");
    }

    #[test]
    fn an_unfinished_search_makes_the_report_unknown() {
        let history = History::from_ops(&valid_ops()).unwrap();
        let config = CheckConfig { shadow: ShadowConfig { max_states: 1 } };
        let report = check(&history, &config).unwrap();
        assert_eq!((report.verdict, report.valid), (Verdict::Unknown, false));
        assert!(summary(&report).ends_with("UNKNOWN (no violation found, but a check did not finish)\n"));
    }

    #[test]
    fn the_report_serializes_to_json_for_tools() {
        let value = serde_json::to_value(report(&valid_ops())).unwrap();
        assert_eq!(value["verdict"], "valid");
        assert_eq!(value["faults_by_kind"][0], json!({"kind": "partition", "count": 2}));
        assert_eq!(value["shadow"]["per_key"][0]["status"], "ok");
        assert_eq!(value["takeover"]["status"], "ok");
    }

    #[test]
    fn disagreeing_nodes_and_duplicate_sessions_are_listed() {
        let mut ops = valid_ops();
        ops[17].value = json!("y");
        ops[23].value = json!(["c1"]);
        let text = summary(&report(&ops));
        assert!(text.contains("    topic r: node 1 \"x\", node 2 \"y\"\n"), "{text}");
        assert!(text.contains("! takeover   1 clients  1 live on several nodes"), "{text}");
        assert!(text.contains("    client c1: live on nodes 1, 2; last connects: node "), "{text}");
    }
}
