//! Golden tests of error messages: each tests/errors/NAME.sql renders exactly as
//! tests/errors/NAME.txt. Regenerate with `UPDATE_GOLDEN=1 cargo test -p ferrite-rules --test errors`
//! after checking that the new messages are better.

#[test]
fn error_messages_match_their_golden_files() {
    let dir = manifest_dir().join("tests/errors");
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut checked = 0;
    let mut mismatches = vec![];
    for path in entries.iter().filter(|p| p.extension().is_some_and(|e| e == "sql")) {
        let source = std::fs::read_to_string(path).unwrap();
        let name = format!("tests/errors/{}", path.file_name().unwrap().to_string_lossy());
        let rendered = match ferrite_rules::load_rule_file(&name, &source) {
            Ok(rules) => panic!("{name} should not load, but gave {} rules", rules.len()),
            Err(e) => e.render(),
        };
        let golden = path.with_extension("txt");
        if update {
            std::fs::write(&golden, &rendered).unwrap();
        } else {
            let expected = std::fs::read_to_string(&golden).unwrap_or_default();
            if expected != rendered {
                mismatches.push(format!("{name}:\n--- expected\n{expected}\n--- got\n{rendered}"));
            }
        }
        checked += 1;
    }
    assert!(checked >= 8, "expected at least 8 golden files, found {checked}");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The crate directory: cargo's runtime `CARGO_MANIFEST_DIR` (right even when the binary was
/// built from another checkout sharing the target dir), else the compile-time one.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
