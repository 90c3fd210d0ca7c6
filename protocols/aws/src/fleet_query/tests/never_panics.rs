//! Queries come from API callers: `parse` must return, never panic or overflow the stack, on
//! anything, and whatever it accepts must render and parse back to itself (`fuzz_query` checks
//! both). Query-shaped inputs reach far deeper into the parser than random text.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::json;

use crate::fleet_query::{
    buckets, cardinality, fuzz_query, parse, percentiles, statistics, MAX_DEPTH, MAX_LEADING_WILDCARD_QUERY_CHARS,
    MAX_QUERY_CHARS,
};

const TOKENS: [&str; 36] = [
    "thingName",
    "attributes.a",
    "shadow.reported.t",
    ":",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    " TO ",
    "TO",
    " AND ",
    " OR ",
    "NOT ",
    "-",
    "*",
    "?",
    "\"",
    "\\",
    ">",
    ">=",
    "<",
    "<=",
    "=",
    "a",
    "1",
    "-2.5",
    " ",
    "\n",
    "@",
    ".",
    "é",
    "x y",
    "&&",
    "\\:",
];

fn query_shaped() -> impl Strategy<Value = String> {
    vec(proptest::sample::select(&TOKENS[..]), 0..40).prop_map(|tokens| tokens.concat())
}

const VALUES: [&str; 14] =
    ["a", "-1", "2.5", "a*", "?b", "*", "\\*x", "\"a b\"", "\"\"", "AND", "TO", "é", "\\-a", "x\\:y"];

/// Mostly well-formed queries (so the round trip is exercised), with a token of noise spliced
/// in now and then.
fn clause_shaped() -> impl Strategy<Value = String> {
    let field = proptest::sample::select(&["thingName", "attributes.a", "\\AND", "a\\ b", "shadow.name.$x.y"][..]);
    let value = proptest::sample::select(&VALUES[..]);
    let bracket = proptest::sample::select(&["[", "{"][..]);
    let close = proptest::sample::select(&["]", "}"][..]);
    let operator = proptest::sample::select(&[">", ">=", "<", "<="][..]);
    let leaf = prop_oneof![
        (field.clone(), value.clone()).prop_map(|(field, value)| format!("{field}:{value}")),
        value.clone().prop_map(String::from),
        (field.clone(), operator, value.clone())
            .prop_map(|(field, operator, value)| format!("{field}{operator}{value}")),
        (field.clone(), bracket, value.clone(), value, close)
            .prop_map(|(field, open, low, high, close)| format!("{field}:{open}{low} TO {high}{close}")),
    ];
    let tree = leaf.prop_recursive(3, 10, 3, move |inner| {
        let join = proptest::sample::select(&[" AND ", " OR ", " ", "\n"][..]);
        prop_oneof![
            inner.clone().prop_map(|clause| format!("NOT {clause}")),
            inner.clone().prop_map(|clause| format!("-{clause}")),
            inner.clone().prop_map(|clause| format!("({clause})")),
            (field.clone(), inner.clone()).prop_map(|(field, clause)| format!("{field}:({clause})")),
            (inner.clone(), join, inner).prop_map(|(left, join, right)| format!("{left}{join}{right}")),
        ]
    });
    let noise = proptest::option::weighted(0.2, (proptest::sample::select(&TOKENS[..]), any::<prop::sample::Index>()));
    (tree, noise).prop_map(|(query, noise)| match noise {
        Some((token, at)) => {
            let chars: Vec<char> = query.chars().collect();
            let split = at.index(chars.len() + 1);
            let (head, tail) = chars.split_at(split);
            format!("{}{token}{}", head.iter().collect::<String>(), tail.iter().collect::<String>())
        }
        None => query,
    })
}

#[test]
fn deep_nesting_is_refused_not_recursed_into() {
    for query in ["(".repeat(1000), "NOT ".repeat(250), "-".repeat(1000), format!("x:{}", "(".repeat(1000))] {
        assert!(parse(&query).unwrap_err().message.contains("nests deeper"));
    }
    assert!(parse(&"(".repeat(100_000)).unwrap_err().message.contains("longer than"));
    let nested = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    fuzz_query(nested.as_bytes());
}

#[test]
fn canonical_text_longer_than_the_limits_still_round_trips() {
    let group = format!("attributes.{}:(a b c d e f g h i j k l)", "x".repeat(80));
    assert!(group.len() < MAX_QUERY_CHARS && parse(&group).unwrap().to_string().len() > MAX_QUERY_CHARS);
    fuzz_query(group.as_bytes());
    let leading = "thingName:(*a b c d e f g h i j k)";
    let rendered = parse(leading).unwrap().to_string();
    assert!(rendered.len() > MAX_LEADING_WILDCARD_QUERY_CHARS, "{rendered}");
    fuzz_query(leading.as_bytes());
}

#[test]
fn aggregations_take_any_json() {
    let values = [json!(null), json!({"a": [1]}), json!([[[]]]), json!(f64::MAX), json!(-f64::MAX), json!(u64::MAX)];
    let _ = statistics(&values);
    let _ = percentiles(&values, &[f64::NAN, f64::INFINITY, -0.0, 100.0]);
    let _ = cardinality(&values);
    let _ = buckets(&values, usize::MAX);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn query_shaped_text_never_panics_and_round_trips(query in query_shaped()) {
        fuzz_query(query.as_bytes());
    }

    #[test]
    fn clause_shaped_text_never_panics_and_round_trips(query in clause_shaped()) {
        fuzz_query(query.as_bytes());
    }

    #[test]
    fn arbitrary_text_never_panics(query in ".{0,80}") {
        fuzz_query(query.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..128)) {
        fuzz_query(&data);
    }
}
