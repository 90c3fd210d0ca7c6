//! The Cranelift JIT and the reference interpreter give identical results (output bytes,
//! Undefined, errors) on property-generated expressions over property-generated payloads.

use ferrite_rules::cases::comparable;
use ferrite_rules::jit::JitModule;
use ferrite_rules::{compile, evaluate, MessageContext, MqttProperties, NoHost, Payload, SqlVersion};
use proptest::prelude::*;

/// Deterministic functions with the argument counts the generator uses.
const FUNCTIONS: &[(&str, usize)] = &[
    ("abs", 1),
    ("ceil", 1),
    ("floor", 1),
    ("round", 1),
    ("sign", 1),
    ("sqrt", 1),
    ("power", 2),
    ("mod", 2),
    ("bitand", 2),
    ("bitor", 2),
    ("upper", 1),
    ("lower", 1),
    ("trim", 1),
    ("length", 1),
    ("concat", 2),
    ("concat", 3),
    ("startswith", 2),
    ("endswith", 2),
    ("indexof", 2),
    ("substring", 2),
    ("substring", 3),
    ("replace", 3),
    ("isundefined", 1),
    ("isnull", 1),
    ("get", 2),
    ("get_or_default", 2),
    ("numbytes", 1),
    ("md5", 1),
    ("trunc", 2),
    ("topic", 1),
    ("topic", 0),
    ("clientid", 0),
];

/// Literals (CASE ... WHEN takes only these).
fn constant() -> impl Strategy<Value = String> {
    prop_oneof![
        (-5i64..5).prop_map(|n| n.to_string()),
        prop_oneof![Just("1.5"), Just("'x'"), Just("'10'"), Just("true"), Just("false")].prop_map(str::to_string),
    ]
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("c".to_string()),
        Just("o.x".to_string()),
        Just("o.y.z".to_string()),
        Just("arr".to_string()),
        Just("missing".to_string()),
        (-50i64..200).prop_map(|n| n.to_string()),
        Just("170141183460469231731687303715884105727".to_string()),
        prop_oneof![Just("1.5"), Just("0.25"), Just("1e3"), Just("2.50"), Just("0.1")].prop_map(str::to_string),
        prop_oneof![Just("'x'"), Just("'10'"), Just("'true'"), Just("''"), Just("'2.5'"), Just("'Abc'")]
            .prop_map(str::to_string),
        prop_oneof![Just("true"), Just("false")].prop_map(str::to_string),
    ]
}

fn expr() -> impl Strategy<Value = String> {
    leaf().prop_recursive(4, 40, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop_oneof![
                    Just("+"),
                    Just("-"),
                    Just("*"),
                    Just("/"),
                    Just("%"),
                    Just("="),
                    Just("<>"),
                    Just("<"),
                    Just("<="),
                    Just(">"),
                    Just(">="),
                    Just("AND"),
                    Just("OR")
                ],
                inner.clone()
            )
                .prop_map(|(l, op, r)| format!("({l} {op} {r})")),
            inner.clone().prop_map(|e| format!("(NOT {e})")),
            inner.clone().prop_map(|e| format!("(- {e})")),
            (0..FUNCTIONS.len(), prop::collection::vec(inner.clone(), 3)).prop_map(|(i, args)| {
                let (name, n) = FUNCTIONS[i];
                format!("{name}({})", args[..n].join(", "))
            }),
            (inner.clone(), prop_oneof![Just("Int"), Just("String"), Just("Decimal"), Just("Boolean")])
                .prop_map(|(e, t)| format!("cast({e} AS {t})")),
            (inner.clone(), constant(), constant(), inner.clone(), inner.clone())
                .prop_map(|(o, w1, w2, t, e)| format!("CASE {o} WHEN {w1} THEN {t} WHEN {w2} THEN {e} END")),
            (inner.clone(), constant(), inner.clone(), inner.clone())
                .prop_map(|(o, w, t, e)| format!("CASE {o} WHEN {w} THEN {t} ELSE {e} END")),
            (inner.clone(), inner.clone()).prop_map(|(x, y)| format!("[{x}, {y}]")),
            (inner.clone(), inner).prop_map(|(x, y)| format!("{{'k': {x}, 'l': {y}}}")),
        ]
    })
}

fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (-100i64..100).prop_map(|n| n.to_string()),
        prop_oneof![Just("1.5"), Just("-0.125"), Just("3.0"), Just("1e2"), Just("99999999999999999999999")]
            .prop_map(str::to_string),
        prop_oneof![Just("\"x\""), Just("\"10\""), Just("\"TRUE\""), Just("\"\""), Just("\"héllo\"")]
            .prop_map(str::to_string),
        prop_oneof![Just("true"), Just("false"), Just("null")].prop_map(str::to_string),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
            (inner.clone(), inner).prop_map(|(x, z)| format!(r#"{{"x":{x},"y":{{"z":{z}}}}}"#)),
        ]
    })
}

fn payload() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (json_value(), json_value(), json_value(), json_value(), json_value())
            .prop_map(|(a, b, c, o, arr)| format!(r#"{{"a":{a},"b":{b},"c":{c},"o":{o},"arr":{arr}}}"#)),
        1 => Just("not json".to_string()),
        1 => json_value(),
    ]
}

fn agree(sql: &str, payload: &str) -> Result<(), TestCaseError> {
    let Ok(stmt) = compile(sql, SqlVersion::V2016_03_23) else { return Ok(()) };
    let jit = JitModule::compile(std::iter::once(&stmt));
    let raw = Payload::new(payload.as_bytes());
    let props = MqttProperties::default();
    let ctx = MessageContext { client_id: Some("dev-1"), ..MessageContext::new("t/1", &raw, &props) };
    let a = comparable(&evaluate(&stmt, &ctx, &NoHost), stmt.version);
    let b = comparable(&jit.evaluate(0, &ctx, &NoHost), stmt.version);
    prop_assert_eq!(a, b, "sql: {}\npayload: {}", sql, payload);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn jit_matches_interpreter_on_select_items_and_where(e1 in expr(), e2 in expr(), cond in expr(), p in payload()) {
        agree(&format!("SELECT {e1} AS r, {e2} AS s FROM 't/#' WHERE {cond}"), &p)?;
        agree(&format!("SELECT {e1} AS r, {e2} AS s FROM 't/#'"), &p)?;
    }

    #[test]
    fn jit_matches_interpreter_on_select_value_star_and_dotted_aliases(e1 in expr(), e2 in expr(), p in payload()) {
        agree(&format!("SELECT VALUE {e1} FROM 't/#'"), &p)?;
        agree(&format!("SELECT *, {e1} AS a, {e2} AS x.y FROM 't/#'"), &p)?;
        agree(&format!("SELECT {e1} AS r, {e2} AS r FROM 't/#' WHERE {e2}"), &p)?;
    }

    #[test]
    fn jit_matches_interpreter_on_nested_selects(e1 in expr(), e2 in expr(), p in payload()) {
        // Inside, `x`, `y.z` and `*` are the element's; `a` and the rest are usually missing.
        let e1x = e1.replace("o.x", "x").replace("o.y.z", "y.z");
        agree(&format!("SELECT (SELECT VALUE {e1x} FROM arr WHERE {e2}) AS n, (SELECT *, {e1x} AS k, x AS q.r FROM o) AS m FROM 't/#'"), &p)?;
        agree("SELECT VALUE (SELECT encode(*, 'base64') AS e, (SELECT VALUE * FROM arr) AS all FROM arr) FROM 't/#'", &p)?;
    }
}

#[test]
fn generated_statements_mostly_compile_so_the_comparison_is_not_vacuous() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let total = 300;
    let compiled = (0..total)
        .filter(|_| {
            let e = expr().new_tree(&mut runner).unwrap().current();
            compile(&format!("SELECT {e} AS r FROM 't/#' WHERE {e}"), SqlVersion::V2016_03_23).is_ok()
        })
        .count();
    assert!(compiled * 10 >= total * 9, "only {compiled} of {total} generated statements compile");
}
