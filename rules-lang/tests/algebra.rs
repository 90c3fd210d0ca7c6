//! Property tests for the operator and cast algebra and the JSON codec, through the public API
//! (compile + evaluate), against plain Rust arithmetic as the oracle.

use ferrite_rules::value::sql_eq;
use ferrite_rules::{compile, evaluate, MessageContext, MqttProperties, NoHost, Output, Payload, SqlVersion, Value};
use proptest::prelude::*;

/// Evaluates `SELECT VALUE <expr>` over a payload.
fn eval(expr: &str, payload: &str) -> Value {
    let stmt = compile(&format!("SELECT VALUE {expr} FROM 't'"), SqlVersion::V2016_03_23)
        .unwrap_or_else(|d| panic!("{expr}: {}", d[0].message));
    let payload = Payload::new(payload.as_bytes());
    let props = MqttProperties::default();
    let ctx = MessageContext::new("t", &payload, &props);
    match evaluate(&stmt, &ctx, &NoHost).unwrap() {
        Some(Output::Json(v)) => v,
        other => panic!("unexpected {other:?}"),
    }
}

fn int(v: &Value) -> i128 {
    match v {
        Value::Int(i) => *i,
        other => panic!("expected an Int, got {other:?}"),
    }
}

fn payload(a: i64, b: i64) -> String {
    format!(r#"{{"a":{a},"b":{b},"s":"{a}"}}"#)
}

proptest! {
    #[test]
    fn int_arithmetic_matches_rust(a in any::<i64>(), b in any::<i64>()) {
        let p = payload(a, b);
        let (x, y) = (a as i128, b as i128);
        prop_assert_eq!(int(&eval("a + b", &p)), x + y);
        prop_assert_eq!(int(&eval("a - b", &p)), x - y);
        prop_assert_eq!(int(&eval("a * b", &p)), x * y);
        if b != 0 {
            prop_assert_eq!(int(&eval("a / b", &p)), x / y);
            prop_assert_eq!(int(&eval("a % b", &p)), x % y);
        } else {
            prop_assert!(eval("a / b", &p).is_undefined());
        }
    }

    #[test]
    fn comparisons_are_consistent(a in -1000i64..1000, b in -1000i64..1000) {
        let p = payload(a, b);
        let lt = eval("a < b", &p);
        let ge = eval("a >= b", &p);
        prop_assert!(matches!((&lt, &ge), (Value::Bool(x), Value::Bool(y)) if x != y));
        prop_assert!(matches!(eval("a = b", &p), Value::Bool(e) if e == (a == b)));
        prop_assert!(matches!(eval("a <> b", &p), Value::Bool(e) if e == (a != b)));
        // numeric strings compare numerically, but are never `=` to numbers
        prop_assert!(matches!(eval("s >= a", &p), Value::Bool(true)));
        prop_assert!(matches!(eval("s = a", &p), Value::Bool(false)));
    }

    #[test]
    fn equality_is_symmetric_and_undefined_absorbs(a in -5i64..5, b in -5i64..5) {
        let p = payload(a, b);
        prop_assert!(sql_eq(&eval("a = b", &p), &eval("b = a", &p)) == Some(true));
        prop_assert!(eval("a = missing", &p).is_undefined());
        prop_assert!(eval("missing <> a", &p).is_undefined());
        prop_assert!(eval("a + missing", &p).is_undefined());
    }

    #[test]
    fn string_plus_anything_concatenates(s in "[a-z]{0,8}", n in any::<i32>()) {
        let v = eval(&format!("'{s}' + {n}"), "{}");
        let expected = format!("{s}{n}");
        prop_assert!(matches!(v, Value::String(ref got) if *got == expected));
    }

    #[test]
    fn casts_round_trip(n in any::<i64>(), b in any::<bool>()) {
        prop_assert_eq!(int(&eval(&format!("cast(cast({n} AS String) AS Int)"), "{}")), n as i128);
        let back = eval(&format!("cast(cast({b} AS String) AS Boolean)"), "{}");
        prop_assert!(matches!(back, Value::Bool(x) if x == b));
        prop_assert_eq!(int(&eval(&format!("cast({b} AS Int)"), "{}")), b as i128);
        let truth = eval(&format!("cast({n} AS Boolean)"), "{}");
        prop_assert!(matches!(truth, Value::Bool(x) if x == (n != 0)));
    }

    #[test]
    fn decimals_keep_their_digits_through_string_casts(int_part in 0u64..1_000_000_000, frac in 1u32..999_999) {
        let text = format!("{int_part}.{frac:06}1");
        let v = eval(&format!("cast(cast({text} AS String) AS Decimal)"), "{}");
        prop_assert_eq!(v.to_json(SqlVersion::V2015_10_08), text);
    }

    #[test]
    fn boolean_operators_follow_truth_tables(a in any::<bool>(), b in any::<bool>()) {
        let p = format!(r#"{{"a":{a},"b":{b}}}"#);
        prop_assert!(matches!(eval("a AND b", &p), Value::Bool(x) if x == (a && b)));
        prop_assert!(matches!(eval("a OR b", &p), Value::Bool(x) if x == (a || b)));
        prop_assert!(matches!(eval("NOT a", &p), Value::Bool(x) if x != a));
        prop_assert!(eval("a AND 1", &p).is_undefined());
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|i| serde_json::json!(i)),
        (-1e12f64..1e12).prop_map(|f| serde_json::json!(f)),
        "[a-zA-Z0-9 \\\\\"\u{e9}\u{1F600}\n]{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn json_payloads_round_trip(doc in json_value()) {
        let text = serde_json::to_string(&doc).unwrap();
        let ours = ferrite_rules::parse_json(text.as_bytes()).unwrap();
        let again = ours.to_json(SqlVersion::V2015_10_08);
        // Compare after serde's own (not exactly rounded) float parse on both sides.
        let back: serde_json::Value = serde_json::from_str(&again).unwrap();
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, original);
        prop_assert!(sql_eq(&ferrite_rules::parse_json(again.as_bytes()).unwrap(), &ours) == Some(true));
    }

    #[test]
    fn select_star_passes_any_json_payload_through(doc in json_value()) {
        let text = serde_json::to_string(&doc).unwrap();
        let v = eval("*", &text);
        let back: serde_json::Value = serde_json::from_str(&v.to_json(SqlVersion::V2015_10_08)).unwrap();
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, original);
    }
}
