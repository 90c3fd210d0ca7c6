//! The dependency rules of `docs/ARCHITECTURE.md`, checked on the source text:
//!
//! - the node's top-level modules sit in layers, and a module imports only from its own
//!   layer or the ones below (the broker core never names the services built on it);
//! - the node's top-level modules import each other in one direction only (no cycle, even
//!   inside one layer);
//! - in every crate, sibling modules (files of one folder) never import each other both
//!   ways.
//!
//! Test code (`#[cfg(test)]` onwards) and comments are not looked at. Only the standard
//! library is used, so the check needs nothing built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The node's layers, lowest first. Every top-level module of `node/src` must be in one.
const NODE_LAYERS: &[(&str, &[&str])] = &[
    ("foundations", &["metrics", "credentials", "logging", "process_metrics", "address", "stats_history"]),
    ("broker core", &["broker"]),
    (
        "domain services",
        &[
            "registry",
            "identity",
            "shadow",
            "rules",
            "access_keys",
            "jobs",
            "provisioning",
            "fleet_index",
            "tags",
            "iot_logging",
        ],
    ),
    (
        "replicated state and cluster routing",
        &["meta", "cluster", "jobs_runtime", "provisioning_runtime", "fleet_runtime"],
    ),
    ("the services together", &["services"]),
    (
        "listeners, HTTP API and tools",
        &[
            "server",
            "http",
            "bench",
            "rules_cli",
            "config",
            "config_check",
            "certificate_metrics",
            "backup",
            "backup_cli",
        ],
    ),
    ("wiring", &["node", "cli"]),
];

/// The crates whose sibling modules are checked, relative to the workspace root.
const CRATES: &[&str] = &[
    "node/src",
    "cluster/src",
    "rules-lang/src",
    "chaos/src",
    "protocols/mqtt/src",
    "protocols/aws/src",
    "protocols/http-client/src",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the node crate is in the workspace").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `broker/router.rs` is `[broker, router]`, `broker/mod.rs` is
/// `[broker]`, `lib.rs` is `[]`.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).expect("below the root");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// The code of a file that is compiled outside tests, without comments.
fn code_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        lines.push(code.to_string());
    }
    lines
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The `a::b::c` path at the start of `text` (it ends at the first character that is neither
/// part of a name nor a `::` between names).
fn path_at(text: &str) -> Vec<String> {
    let mut path = Vec::new();
    let mut rest = text;
    loop {
        let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
        if name.is_empty() {
            return path;
        }
        rest = &rest[name.len()..];
        path.push(name);
        match rest.strip_prefix("::") {
            Some(more) => rest = more,
            None => return path,
        }
    }
}

/// The paths a file names, resolved from `module` (`crate::a::b`, `super::x`, `self::y`,
/// and the members of `crate::{a, b::c}`), as module paths from the crate root.
fn named_paths(module: &[String], is_mod_file: bool, lines: &[String]) -> Vec<Vec<String>> {
    let text = lines.join("\n");
    let mut found = Vec::new();
    // The module `super::` is relative to: a file `a/b.rs` is `[a, b]`; its parent is `[a]`.
    // A `mod.rs` or `lib.rs` is its folder's module; `super` is one level up from it.
    let here: Vec<String> = module.to_vec();
    let parent: Vec<String> = if module.is_empty() { Vec::new() } else { module[..module.len() - 1].to_vec() };
    let _ = is_mod_file;
    for (start, base) in [("crate::", Vec::new()), ("super::", parent), ("self::", here)] {
        let mut from = 0;
        while let Some(i) = text[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if at > 0 && text[..at].ends_with(|c: char| is_ident(c) || c == ':') {
                continue;
            }
            let rest = &text[from..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let path = path_at(item.trim());
                    if !path.is_empty() {
                        found.push([base.clone(), path].concat());
                    }
                }
                continue;
            }
            let path = path_at(rest);
            if !path.is_empty() {
                found.push([base.clone(), path].concat());
            }
        }
    }
    found
}

/// The longest known module that `path` starts with.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains(p))
}

/// Every import between modules of the crate at `root`: (from, to), from != to.
fn imports(root: &Path) -> BTreeSet<(Vec<String>, Vec<String>)> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(root, f)).collect();
    let mut edges = BTreeSet::new();
    for file in &files {
        let module = module_of(root, file);
        let is_mod_file = file.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let text = std::fs::read_to_string(file).expect("readable source");
        for path in named_paths(&module, is_mod_file, &code_lines(&text)) {
            if let Some(target) = resolve(&path, &modules) {
                if target != module {
                    edges.insert((module.clone(), target));
                }
            }
        }
    }
    edges
}

/// A cycle in `edges`, if there is one, as the nodes along it (the first repeated last).
fn find_cycle<N: Ord + Clone>(edges: &BTreeSet<(N, N)>) -> Option<Vec<N>> {
    let nodes: Vec<N> =
        edges.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect::<BTreeSet<N>>().into_iter().collect();
    let index = |n: &N| nodes.binary_search(n).expect("a node of the graph");
    let mut next = vec![Vec::new(); nodes.len()];
    for (a, b) in edges {
        next[index(a)].push(index(b));
    }
    // 0: unseen, 1: on the current path, 2: done.
    fn visit(n: usize, next: &[Vec<usize>], state: &mut [u8], path: &mut Vec<usize>) -> Option<Vec<usize>> {
        match state[n] {
            2 => return None,
            1 => {
                let start = path.iter().position(|p| *p == n).unwrap_or(0);
                return Some(path[start..].iter().copied().chain([n]).collect());
            }
            _ => {}
        }
        state[n] = 1;
        path.push(n);
        for &m in &next[n] {
            if let Some(c) = visit(m, next, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state[n] = 2;
        None
    }
    let mut state = vec![0u8; nodes.len()];
    (0..nodes.len())
        .find_map(|n| visit(n, &next, &mut state, &mut Vec::new()))
        .map(|c| c.into_iter().map(|i| nodes[i].clone()).collect())
}

fn top(module: &[String]) -> Option<&str> {
    module.first().map(String::as_str)
}

#[test]
fn every_node_module_imports_only_its_own_layer_or_lower() {
    let root = workspace().join("node/src");
    let layer_of: BTreeMap<&str, usize> =
        NODE_LAYERS.iter().enumerate().flat_map(|(i, (_, mods))| mods.iter().map(move |m| (*m, i))).collect();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut unplaced: Vec<String> = files
        .iter()
        .filter_map(|f| top(&module_of(&root, f)).map(str::to_string))
        .filter(|m| !layer_of.contains_key(m.as_str()))
        .collect();
    unplaced.sort();
    unplaced.dedup();
    assert!(
        unplaced.is_empty(),
        "modules in no layer (add them to NODE_LAYERS and docs/ARCHITECTURE.md): {unplaced:?}"
    );
    let mut upward = Vec::new();
    for (from, to) in imports(&root) {
        let (Some(a), Some(b)) = (top(&from), top(&to)) else { continue };
        if layer_of[a] < layer_of[b] {
            upward.push(format!(
                "{} ({}) imports {} ({})",
                from.join("::"),
                NODE_LAYERS[layer_of[a]].0,
                to.join("::"),
                NODE_LAYERS[layer_of[b]].0
            ));
        }
    }
    assert!(upward.is_empty(), "imports from a lower layer to a higher one:\n{}", upward.join("\n"));
}

#[test]
fn the_node_top_level_modules_import_each_other_one_way() {
    let edges: BTreeSet<(String, String)> = imports(&workspace().join("node/src"))
        .into_iter()
        .filter_map(|(a, b)| Some((top(&a)?.to_string(), top(&b)?.to_string())))
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(find_cycle(&edges), None, "top-level modules of the node that import each other in a cycle");
}

#[test]
fn sibling_modules_never_import_each_other_both_ways() {
    for krate in CRATES {
        let root = workspace().join(krate);
        if !root.is_dir() {
            continue;
        }
        let siblings: BTreeSet<(Vec<String>, Vec<String>)> = imports(&root)
            .into_iter()
            .filter(|(a, b)| a.len() == b.len() && a.len() > 1 && a[..a.len() - 1] == b[..b.len() - 1])
            .collect();
        if let Some(cycle) = find_cycle(&siblings) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!("in {krate}, sibling modules import each other in a cycle: {}", names.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_imports_and_cycles() {
    let module = vec!["broker".to_string(), "router".to_string()];
    let lines = code_lines(
        "use crate::meta::Meta;\n// use crate::http::x;\nuse super::session::{A, B};\nfn f() { crate::{rules, shadow::topics}; }\n#[cfg(test)]\nuse crate::node;",
    );
    let paths = named_paths(&module, false, &lines);
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert!(joined.contains(&"meta::Meta".to_string()), "{joined:?}");
    assert!(joined.contains(&"broker::session".to_string()), "{joined:?}");
    assert!(joined.contains(&"rules".to_string()) && joined.contains(&"shadow::topics".to_string()), "{joined:?}");
    assert!(!joined.iter().any(|p| p.starts_with("http") || p.starts_with("node")), "{joined:?}");
    let edges: BTreeSet<(u8, u8)> = [(1, 2), (2, 3), (3, 1), (3, 4)].into_iter().collect();
    assert_eq!(find_cycle(&edges).map(|c| c.len()), Some(4));
    let edges: BTreeSet<(u8, u8)> = [(1, 2), (2, 3), (1, 3)].into_iter().collect();
    assert_eq!(find_cycle(&edges), None);
}
