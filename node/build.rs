//! Embeds the web console (`node/console/`, plain files) in the binary: generates a table of
//! every file under it, path and bytes, that `http/console.rs` serves at `/console/`.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("console");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut found = Vec::new();
    files(&root, &mut found);
    found.sort();
    let mut table = String::from("/// Every file of the web console: its path under `console/`, and its bytes.\npub static ASSETS: &[(&str, &[u8])] = &[\n");
    for path in found {
        let name = path.strip_prefix(&root).expect("below the console").to_string_lossy().replace('\\', "/");
        if name.split('/').any(|part| part.starts_with('.')) {
            continue;
        }
        table.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", path.display().to_string()));
    }
    table.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("set by cargo")).join("console_assets.rs");
    std::fs::write(out, table).expect("writing the console's asset table");
}
