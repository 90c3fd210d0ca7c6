//! `ferrite-chaos check` as a user runs it: a history file in, a summary and an exit code out.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

fn temp_path(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ferrite-chaos-cli-{}-{n}-{name}", std::process::id()))
}

fn check(history: &str, extra: &[&str]) -> (Output, String) {
    let path = temp_path("history.jsonl");
    std::fs::write(&path, history).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ferrite-chaos"))
        .arg("check")
        .arg("--history")
        .arg(&path)
        .args(extra)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    (output, stdout)
}

const VALID: &str = r#"{"process":"nemesis","type":"info","f":"partition","value":{"isolated":[1]},"time_ns":0}
{"process":0,"type":"invoke","f":"publish","key":"chaos/q","value":"m1","time_ns":10,"node":1}
{"process":1,"type":"invoke","f":"write","key":"thing-1","value":7,"time_ns":11,"node":2}
{"process":0,"type":"ok","f":"publish","key":"chaos/q","value":null,"time_ns":20,"node":1}
{"process":1,"type":"ok","f":"write","key":"thing-1","value":{"version":1},"time_ns":21,"node":2}
{"process":2,"type":"invoke","f":"receive","key":"chaos/q","value":null,"time_ns":30}
{"process":2,"type":"ok","f":"receive","key":"chaos/q","value":"m1","time_ns":31}
{"process":1,"type":"invoke","f":"read","key":"thing-1","value":null,"time_ns":40,"node":3}
{"process":1,"type":"ok","f":"read","key":"thing-1","value":{"version":1,"value":7},"time_ns":41,"node":3}
{"process":"nemesis","type":"info","f":"heal","value":null,"time_ns":50}
"#;

#[test]
fn a_valid_history_prints_valid_and_exits_zero() {
    let (output, stdout) = check(VALID, &[]);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("ferrite-chaos: 4 ops, 2 faults (partition 1, heal 1)\n"), "{stdout}");
    assert!(stdout.ends_with("VALID\n"), "{stdout}");
}

#[test]
fn a_violation_prints_invalid_and_exits_one() {
    let history = VALID.replace(r#"{"version":1,"value":7}"#, r#"{"version":0,"value":null}"#);
    let (output, stdout) = check(&history, &[]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("! shadow "), "{stdout}");
    assert!(stdout.ends_with("INVALID\n"), "{stdout}");
}

#[test]
fn the_full_report_can_be_written_as_json() {
    let json = temp_path("report.json");
    let (output, _) = check(VALID, &["--json", json.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["qos1"]["acknowledged"], 1);
}

#[test]
fn a_malformed_history_names_the_line_and_exits_three() {
    let history = format!("{VALID}{{\"process\":1,\"type\":\"ok\"\n");
    let (output, _) = check(&history, &[]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("history line 11"), "{stderr}");
}
