//! Loading `--rules-dir` and reloading it on change: every `*.sql` file below the directory is
//! validated together; a set with any error is not swapped in (the running rules stay, and the
//! errors are logged with file:line:col).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::files::{collect_rule_files, read_rule_sources};
use super::RuleEngine;

/// How often the directory is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Why a rule directory did not load: how many errors, and their rendered diagnostics.
#[derive(Debug)]
pub struct LoadErrors {
    /// How many errors (`ferrite_rules_config_errors`).
    pub count: usize,
    /// Each with its file:line:col.
    pub rendered: String,
}

/// Reads and checks every rule file under `dir`.
pub fn load_dir(dir: &Path) -> Result<Vec<ferrite_rules::Rule>, LoadErrors> {
    let sources =
        read_rule_sources(&[dir.to_path_buf()]).map_err(|e| LoadErrors { count: 1, rendered: format!("{e:#}") })?;
    ferrite_rules::load_rule_files(&sources).map_err(|errors| LoadErrors {
        count: errors.len(),
        rendered: errors.iter().map(|e| e.render()).collect::<Vec<_>>().join("\n"),
    })
}

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    let files = collect_rule_files(&[dir.to_path_buf()]).unwrap_or_default();
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (f, modified, len)
        })
        .collect()
}

/// Loads the rule files of `dir` into `engine` now (SIGHUP, start, a change seen by the
/// poller); `reason` goes into the log line. The errors, if any, are also counted in
/// `ferrite_rules_config_errors` and returned.
pub fn apply(engine: &RuleEngine, dir: &Path, reason: &str) -> Result<usize, LoadErrors> {
    match load_dir(dir) {
        Ok(rules) => {
            let n = rules.len();
            engine.replace_file_rules(rules);
            engine.set_config_errors(0);
            tracing::info!(dir = %dir.display(), rules = n, reason, "rules loaded");
            Ok(n)
        }
        Err(errors) => {
            engine.set_config_errors(errors.count);
            tracing::error!(
                dir = %dir.display(),
                errors = errors.count,
                running = engine.len(),
                reason,
                "rule files have errors; keeping the running rules\n{}",
                errors.rendered
            );
            Err(errors)
        }
    }
}

/// Loads the rules now and reloads them whenever a file under `dir` changes. A set with
/// errors at start does not stop the node (the files can be fixed while it runs); it is said
/// in the log, in `ferrite_rules_config_errors`, and in the line returned, which the node
/// prints on stdout after its `listening` line.
pub fn load_and_watch(engine: &Arc<RuleEngine>, dir: PathBuf) -> anyhow::Result<String> {
    let said = match apply(engine, &dir, "start") {
        Ok(n) => format!("rules: {n} loaded from {}", dir.display()),
        Err(errors) => format!(
            "rules: NOT LOADED: {} error(s) in {}; running without file rules until they are fixed:\n{}",
            errors.count,
            dir.display(),
            errors.rendered
        ),
    };
    let weak = Arc::downgrade(engine);
    std::thread::Builder::new().name("rules-reload".into()).spawn(move || {
        let mut last = fingerprint(&dir);
        loop {
            std::thread::sleep(POLL_INTERVAL);
            let Some(engine) = weak.upgrade() else { return };
            let now = fingerprint(&dir);
            if now != last {
                last = now;
                let _ = apply(&engine, &dir, "changed");
            }
        }
    })?;
    Ok(said)
}
