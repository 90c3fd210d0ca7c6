//! Finding and reading rule files: `ferrite rules check` and the node's `--rules-dir`
//! reload read them the same way.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Every `*.sql` file under the given paths, in a stable order (directories are walked).
pub fn collect_rule_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|e| e == "sql") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = vec![];
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(out)
}

/// Reads every rule file under `paths` as (name, text) pairs, ready for
/// `ferrite_rules::load_rule_files`; `rules check` and the node's reload share it.
pub fn read_rule_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    collect_rule_files(paths)?
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            Ok((f.display().to_string(), text))
        })
        .collect()
}
