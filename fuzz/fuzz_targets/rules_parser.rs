//! Rule files and SQL statements are untrusted text: parsing, checking and rendering the
//! diagnostics must never panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ferrite_rules::load_rule_file("fuzz.sql", text) {
        Ok(_) => {}
        Err(e) => {
            let _ = e.render();
        }
    }
    for version in [ferrite_rules::SqlVersion::V2015_10_08, ferrite_rules::SqlVersion::V2016_03_23] {
        if let Err(diags) = ferrite_rules::compile(text, version) {
            let _ = ferrite_rules::diag::render_all(&diags, "fuzz", text);
        }
    }
});
