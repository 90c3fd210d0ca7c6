//! Payloads are untrusted bytes: parsing them as JSON and running a statement that touches every
//! kind of value over them must never panic.
#![no_main]

use std::sync::LazyLock;

use ferrite_rules::{compile, evaluate, MessageContext, MqttProperties, NoHost, Payload, SqlVersion, Statement};
use libfuzzer_sys::fuzz_target;

static STATEMENT: LazyLock<Statement> = LazyLock::new(|| {
    compile(
        "SELECT *, a.b.c AS abc, a + b AS sum, a * 2 - b / 3 AS arith, concat(a, b) AS cat, \
         get(arr, 1) AS second, (SELECT VALUE x FROM arr WHERE x > 1) AS big, upper(s) AS up, \
         substring(s, 1, 3) AS sub, encode(*, 'base64') AS raw, decode(s, 'base64') AS dec, \
         cast(a AS Int) AS ai, regexp_replace(s, 'a(.)', '$1') AS re \
         FROM '#' WHERE a <> b OR isNull(a)",
        SqlVersion::V2016_03_23,
    )
    .expect("the fuzz statement compiles")
});

fuzz_target!(|data: &[u8]| {
    let payload = Payload::new(data);
    let props = MqttProperties::default();
    let ctx = MessageContext { client_id: Some("fuzz"), ..MessageContext::new("fuzz/topic", &payload, &props) };
    if let Ok(Some(out)) = evaluate(&STATEMENT, &ctx, &NoHost) {
        let _ = out.to_bytes(SqlVersion::V2016_03_23);
    }
});
