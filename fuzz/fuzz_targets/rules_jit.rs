//! The JIT and the interpreter agree on untrusted payloads: a statement touching every kind of
//! value, a projected parse (as the node does) against a full one, same output bytes or error.
#![no_main]

use std::sync::LazyLock;

use ferrite_rules::cases::comparable;
use ferrite_rules::jit::JitModule;
use ferrite_rules::projection::Projection;
use ferrite_rules::{compile, evaluate, MessageContext, MqttProperties, NoHost, Payload, SqlVersion, Statement};
use libfuzzer_sys::fuzz_target;

static STATEMENTS: LazyLock<Vec<Statement>> = LazyLock::new(|| {
    [
        "SELECT a.b.c AS abc, a + b AS sum, a * 2 - b / 3 AS arith, concat(a, b) AS cat, \
         get(arr, 1) AS second, (SELECT VALUE x FROM arr WHERE x > 1) AS big, upper(s) AS up, \
         substring(s, 1, 3) AS sub, CASE a WHEN 1 THEN 'one' WHEN 'x' THEN b ELSE -a END AS c, \
         cast(a AS Int) AS ai, NOT (a > 2 AND b < 3) AS n, [a, {'k': b}] AS lit \
         FROM '#' WHERE a <> b OR isNull(a)",
        "SELECT *, (SELECT *, x AS y.z FROM arr) AS copy, encode(*, 'base64') AS raw FROM '#'",
        "SELECT VALUE arr FROM '#' WHERE a > 50",
    ]
    .iter()
    .map(|sql| compile(sql, SqlVersion::V2016_03_23).expect("the fuzz statements compile"))
    .collect()
});

static MODULE: LazyLock<JitModule> = LazyLock::new(|| JitModule::compile(STATEMENTS.iter()));

fuzz_target!(|data: &[u8]| {
    let props = MqttProperties::default();
    for (i, stmt) in STATEMENTS.iter().enumerate() {
        let projection: Option<Projection> = stmt.projection();
        let full = Payload::new(data);
        let projected = Payload::with_projection(data, projection.as_ref());
        let ctx = MessageContext { client_id: Some("fuzz"), ..MessageContext::new("fuzz/topic", &full, &props) };
        let jit_ctx = MessageContext { payload: &projected, ..MessageContext::new("fuzz/topic", &full, &props) };
        let jit_ctx = MessageContext { client_id: Some("fuzz"), ..jit_ctx };
        let a = comparable(&evaluate(stmt, &ctx, &NoHost), stmt.version);
        let b = comparable(&MODULE.evaluate(i, &jit_ctx, &NoHost), stmt.version);
        assert_eq!(a, b, "statement {i} disagrees on {:?}", String::from_utf8_lossy(data));
    }
});
