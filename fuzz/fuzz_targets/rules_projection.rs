//! Projected payload parsing must agree with the full parser on untrusted bytes: it rejects
//! exactly what `parse_json` rejects, and otherwise returns exactly the projected members of the
//! full parse, in order, with the same values. The first byte picks the projection: each of its
//! bits keeps one of the document's first eight keys, plus two fixed keys.
#![no_main]

use ferrite_rules::projection::{parse_projected, Projection};
use ferrite_rules::value::{parse_json, Object, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mask, text)) = data.split_first() else { return };
    let full = parse_json(text);
    let mut keys = vec!["temp".to_string(), "a".to_string()];
    if let Ok(Value::Object(o)) = &full {
        keys.extend(o.keys().take(8).enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, k)| k.clone()));
    }
    let projection = Projection::new(keys);
    let got = parse_projected(text, &projection);
    match (full, got) {
        (Err(_), Err(_)) => {}
        (Ok(Value::Object(o)), Ok(got)) => {
            let want: Object = o.into_iter().filter(|(k, _)| projection.contains(k)).collect();
            assert_eq!(format!("{got:?}"), format!("{:?}", Value::Object(want)));
        }
        (Ok(full), Ok(got)) => assert_eq!(format!("{got:?}"), format!("{full:?}")),
        (full, got) => panic!("parse_json gave {full:?} but parse_projected gave {got:?}"),
    }
});
