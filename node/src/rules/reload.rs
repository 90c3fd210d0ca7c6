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

/// Reads and checks every rule file under `dir`. `Err` holds the rendered diagnostics.
pub fn load_dir(dir: &Path) -> Result<Vec<ferrite_rules::Rule>, String> {
    let sources = read_rule_sources(&[dir.to_path_buf()]).map_err(|e| format!("{e:#}"))?;
    ferrite_rules::load_rule_files(&sources)
        .map_err(|errors| errors.iter().map(|e| e.render()).collect::<Vec<_>>().join("\n"))
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
/// poller); `reason` goes into the log line.
pub fn apply(engine: &RuleEngine, dir: &Path, reason: &str) {
    match load_dir(dir) {
        Ok(rules) => {
            let n = rules.len();
            engine.replace_file_rules(rules);
            tracing::info!(dir = %dir.display(), rules = n, reason, "rules loaded");
        }
        Err(errors) => {
            tracing::error!(
                dir = %dir.display(),
                running = engine.len(),
                reason,
                "rule files have errors; keeping the running rules\n{errors}"
            );
        }
    }
}

/// Loads the rules now and reloads them whenever a file under `dir` changes.
pub fn load_and_watch(engine: &Arc<RuleEngine>, dir: PathBuf) -> anyhow::Result<()> {
    apply(engine, &dir, "start");
    let weak = Arc::downgrade(engine);
    std::thread::Builder::new().name("rules-reload".into()).spawn(move || {
        let mut last = fingerprint(&dir);
        loop {
            std::thread::sleep(POLL_INTERVAL);
            let Some(engine) = weak.upgrade() else { return };
            let now = fingerprint(&dir);
            if now != last {
                last = now;
                apply(&engine, &dir, "changed");
            }
        }
    })?;
    Ok(())
}
