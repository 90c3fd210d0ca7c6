//! Every deterministic case of the shared IoT SQL corpus passes, under the JIT and the
//! interpreter alike, and the two engines agree exactly (output bytes, Undefined, errors) on
//! every case. The corpus is vendored in
//! tests/corpus/cases.json (a copy of ../shared/iot-sql/cases.json); when the shared checkout is
//! next to this repository, its copy is run too, so an updated corpus is picked up.

use std::path::Path;

fn run(path: &Path) {
    run_min(path, 100);
}

fn run_min(path: &Path, min_cases: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let results = ferrite_rules::cases::run_case_file_with(&text, ferrite_rules::cases::Engine::Both).unwrap();
    let failures: Vec<String> =
        results.iter().filter_map(|r| r.outcome.as_ref().err().map(|why| format!("{}: {why}", r.id))).collect();
    assert!(results.len() >= min_cases, "{} should hold at least {min_cases} cases", path.display());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), results.len(), failures.join("\n"));
}

#[test]
fn vendored_corpus_passes() {
    run(&manifest_dir().join("tests/corpus/cases.json"));
}

#[test]
fn ferrite_decision_cases_pass() {
    // Our own cases: the decisions of docs/rules.md and behaviour the shared corpus leaves out.
    run_min(&manifest_dir().join("tests/corpus/ferrite-cases.json"), 50);
}

#[test]
fn shared_corpus_passes_when_present() {
    let shared = manifest_dir().join("../../shared/iot-sql/cases.json");
    if shared.exists() {
        run(&shared);
    }
}

#[test]
fn doc_suspect_cases_match_the_documented_choice() {
    let text = std::fs::read_to_string(manifest_dir().join("tests/corpus/cases.json")).unwrap();
    let results = ferrite_rules::cases::run_case_file(&text).unwrap();
    let note = |id: &str| results.iter().find(|r| r.id == id).and_then(|r| r.outcome.clone().ok()).flatten();
    // docs/rules.md records these choices.
    assert_eq!(note("fn-concat-002").as_deref(), Some("matched expected"));
    assert_eq!(note("fn-cast-002").as_deref(), Some("matched expected"));
}

/// The crate directory: cargo's runtime `CARGO_MANIFEST_DIR` (right even when the binary was
/// built from another checkout sharing the target dir), else the compile-time one.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
