//! Random fleets and random query trees: rendering a tree and parsing it gives the tree back,
//! and `Query::matches` agrees on every document with a brute-force evaluator written here from
//! the rules alone. The evaluator reads the generated things directly (never their JSON), looks
//! fields up by name, and spells out each rule in the simplest way: that is what makes it an
//! oracle.

use std::cmp::Ordering;

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::fleet_query::{parse, Bound, Comparison, Expr, Pattern, Piece, Predicate, Query, Term, MAX_TERMS};

/// A thing as generated; `to_json` is what the index would hold.
#[derive(Debug, Clone)]
struct Thing {
    name: String,
    a: Option<String>,
    b: Option<String>,
    temp: Option<f64>,
    connected: Option<bool>,
    groups: Vec<String>,
}

impl Thing {
    fn to_json(&self) -> Value {
        let mut attributes = serde_json::Map::new();
        for (key, value) in [("a", &self.a), ("b", &self.b)] {
            if let Some(value) = value {
                attributes.insert(key.to_string(), json!(value));
            }
        }
        let mut doc = json!({"thingName": self.name, "attributes": attributes, "thingGroupNames": self.groups});
        if let Some(temp) = self.temp {
            doc["shadow"] = json!({"reported": {"temp": temp}});
        }
        if let Some(connected) = self.connected {
            doc["connectivity"] = json!({"connected": connected});
        }
        doc
    }
}

/// A value as the oracle sees it.
#[derive(Debug, Clone)]
enum V {
    S(String),
    N(f64),
    B(bool),
}

const FIELDS: [&str; 6] =
    ["thingName", "attributes.a", "attributes.b", "shadow.reported.temp", "connectivity.connected", "thingGroupNames"];
const NAMES: [&str; 6] = ["sensor-1", "Sensor-2", "gate", "gateway", "10", "a b"];
const TEXTS: [&str; 14] = ["red", "RED", "Blue", "10", "9", "100", "-5", "2.5", "a b", "gate", "true", "x:y", "G1", ""];
const GROUPS: [&str; 4] = ["g1", "G1", "lab", "10"];
const WORDS: [&str; 19] = [
    "red", "blue", "10", "9", "100", "-5", "2.5", "a b", "gate", "sensor-1", "SENSOR-2", "true", "false", "g1", "lab",
    "x:y", "TO", "AND", "a\"b",
];

/// The values of `field` in `thing`, looked up by name; every value when `field` is `None`.
fn values(thing: &Thing, field: Option<&str>) -> Vec<V> {
    let text = |value: &Option<String>| value.iter().map(|text| V::S(text.clone())).collect::<Vec<_>>();
    match field {
        Some("thingName") => vec![V::S(thing.name.clone())],
        Some("attributes.a") => text(&thing.a),
        Some("attributes.b") => text(&thing.b),
        Some("shadow.reported.temp") => thing.temp.iter().map(|temp| V::N(*temp)).collect(),
        Some("connectivity.connected") => thing.connected.iter().map(|flag| V::B(*flag)).collect(),
        Some("thingGroupNames") => thing.groups.iter().map(|group| V::S(group.clone())).collect(),
        Some(_) => Vec::new(),
        None => FIELDS.iter().flat_map(|field| values(thing, Some(field))).collect(),
    }
}

/// The query text as a number; the generated texts are all ones Rust and JSON read alike.
fn num(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

fn oracle_equals(value: &V, text: &str) -> bool {
    match value {
        V::N(number) => num(text) == Some(*number),
        V::S(own) => own.to_lowercase() == text.to_lowercase(),
        V::B(flag) => text.to_lowercase() == flag.to_string(),
    }
}

fn oracle_order(value: &V, text: &str) -> Option<Ordering> {
    match value {
        V::N(number) => number.partial_cmp(&num(text)?),
        V::S(own) => Some(own.to_lowercase().cmp(&text.to_lowercase())),
        V::B(_) => None,
    }
}

/// Plain recursive glob over characters.
fn oracle_glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('\u{1}', rest)) => (0..=text.len()).any(|skip| oracle_glob(rest, &text[skip..])),
        Some(('\u{2}', rest)) => !text.is_empty() && oracle_glob(rest, &text[1..]),
        Some((expected, rest)) => text.first() == Some(expected) && oracle_glob(rest, &text[1..]),
    }
}

fn oracle_accepts(predicate: &Predicate, value: &V) -> bool {
    match predicate {
        Predicate::Exists => true,
        Predicate::Equals(text) => oracle_equals(value, text),
        Predicate::Wildcard(pattern) => match value {
            V::S(own) => {
                // \u{1} stands for `*` and \u{2} for `?`; the generated texts never hold them.
                let mut chars = Vec::new();
                for piece in pattern.pieces() {
                    match piece {
                        Piece::Text(text) => chars.extend(text.to_lowercase().chars()),
                        Piece::Any => chars.push('\u{1}'),
                        Piece::One => chars.push('\u{2}'),
                    }
                }
                oracle_glob(&chars, &own.to_lowercase().chars().collect::<Vec<_>>())
            }
            _ => false,
        },
        Predicate::Range { lower, upper } => {
            let lower_ok = match lower {
                Bound::Unbounded => true,
                Bound::Inclusive(text) => {
                    matches!(oracle_order(value, text), Some(Ordering::Greater | Ordering::Equal))
                }
                Bound::Exclusive(text) => oracle_order(value, text) == Some(Ordering::Greater),
            };
            let upper_ok = match upper {
                Bound::Unbounded => true,
                Bound::Inclusive(text) => matches!(oracle_order(value, text), Some(Ordering::Less | Ordering::Equal)),
                Bound::Exclusive(text) => oracle_order(value, text) == Some(Ordering::Less),
            };
            lower_ok && upper_ok
        }
        Predicate::Compare(comparison, text) => match (comparison, oracle_order(value, text)) {
            (_, None) => false,
            (Comparison::Less, Some(ordering)) => ordering == Ordering::Less,
            (Comparison::LessOrEqual, Some(ordering)) => ordering != Ordering::Greater,
            (Comparison::Greater, Some(ordering)) => ordering == Ordering::Greater,
            (Comparison::GreaterOrEqual, Some(ordering)) => ordering != Ordering::Less,
        },
    }
}

fn oracle(expr: &Expr, thing: &Thing) -> bool {
    match expr {
        Expr::All => true,
        Expr::Term(term) => {
            values(thing, term.field.as_deref()).iter().any(|value| oracle_accepts(&term.predicate, value))
        }
        Expr::Not(operand) => !oracle(operand, thing),
        Expr::And(operands) => operands.iter().all(|operand| oracle(operand, thing)),
        Expr::Or(operands) => operands.iter().any(|operand| oracle(operand, thing)),
    }
}

fn count_terms(expr: &Expr) -> usize {
    match expr {
        Expr::All | Expr::Term(_) => 1,
        Expr::Not(operand) => count_terms(operand),
        Expr::And(operands) | Expr::Or(operands) => operands.iter().map(count_terms).sum(),
    }
}

fn option_text(texts: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(proptest::sample::select(texts).prop_map(String::from))
}

fn thing() -> impl Strategy<Value = Thing> {
    let temp = proptest::option::of(prop_oneof![(-20i32..40).prop_map(f64::from), Just(2.5), Just(100.0)]);
    let groups = vec(proptest::sample::select(&GROUPS[..]).prop_map(String::from), 0..3);
    (
        proptest::sample::select(&NAMES[..]),
        option_text(&TEXTS),
        option_text(&TEXTS),
        temp,
        any::<Option<bool>>(),
        groups,
    )
        .prop_map(|(name, a, b, temp, connected, groups)| Thing {
            name: name.to_string(),
            a,
            b,
            temp,
            connected,
            groups,
        })
}

fn word() -> impl Strategy<Value = String> {
    proptest::sample::select(&WORDS[..]).prop_map(String::from)
}

/// A wildcard pattern that does not start with a wildcard (AWS allows one such term per query).
fn pattern() -> impl Strategy<Value = Pattern> {
    let start = proptest::sample::select(&["s", "g", "r", "1", "a b", "sensor-", "-", "x:"][..]);
    let piece =
        prop_oneof![Just(Piece::Any), Just(Piece::One), Just(Piece::Text("e".into())), Just(Piece::Text("1".into()))];
    (start, vec(piece, 1..4)).prop_filter_map("needs a wildcard", |(start, rest)| {
        let pattern = Pattern::new(std::iter::once(Piece::Text(start.to_string())).chain(rest));
        pattern.has_wildcard().then_some(pattern)
    })
}

fn bound() -> impl Strategy<Value = Bound> {
    prop_oneof![
        1 => Just(Bound::Unbounded),
        3 => word().prop_map(Bound::Inclusive),
        3 => word().prop_map(Bound::Exclusive),
    ]
}

fn comparison() -> impl Strategy<Value = Comparison> {
    proptest::sample::select(
        &[Comparison::Less, Comparison::LessOrEqual, Comparison::Greater, Comparison::GreaterOrEqual][..],
    )
}

fn term() -> impl Strategy<Value = Expr> {
    let field = proptest::sample::select(&FIELDS[..]).prop_map(String::from);
    let fielded = prop_oneof![
        3 => word().prop_map(Predicate::Equals),
        2 => pattern().prop_map(Predicate::Wildcard),
        2 => (bound(), bound()).prop_map(|(lower, upper)| Predicate::Range { lower, upper }),
        2 => (comparison(), word()).prop_map(|(comparison, text)| Predicate::Compare(comparison, text)),
        1 => Just(Predicate::Exists),
    ];
    let unfielded = prop_oneof![word().prop_map(Predicate::Equals), pattern().prop_map(Predicate::Wildcard)];
    prop_oneof![
        6 => (field, fielded).prop_map(|(field, predicate)| Expr::Term(Term { field: Some(field), predicate })),
        2 => unfielded.prop_map(|predicate| Expr::Term(Term { field: None, predicate })),
        1 => Just(Expr::All),
    ]
}

/// Query trees in the parser's normal form, within AWS's term limit.
fn expr() -> impl Strategy<Value = Expr> {
    term()
        .prop_recursive(4, 12, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|operand| Expr::Not(Box::new(operand))),
                vec(inner.clone(), 2..4).prop_map(Expr::And),
                vec(inner, 2..4).prop_map(Expr::Or),
            ]
        })
        .prop_filter("AWS allows at most 12 terms", |expr| count_terms(expr) <= MAX_TERMS)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rendered_trees_parse_back_to_themselves(expr in expr()) {
        let text = Query { expr: expr.clone() }.to_string();
        let parsed = parse(&text).map_err(|error| TestCaseError::fail(format!("{text:?}: {}", error.render(&text))))?;
        prop_assert_eq!(parsed.expr(), &expr, "{}", text);
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn matches_agrees_with_brute_force_on_every_thing(expr in expr(), fleet in vec(thing(), 1..12)) {
        let text = Query { expr: expr.clone() }.to_string();
        let query = parse(&text).map_err(|error| TestCaseError::fail(format!("{text:?}: {error}")))?;
        for thing in &fleet {
            prop_assert_eq!(query.matches(&thing.to_json()), oracle(&expr, thing), "{} on {:?}", text, thing);
        }
    }

    #[test]
    fn fields_lists_each_named_field_once_in_order(expr in expr()) {
        let mut expected: Vec<String> = Vec::new();
        let mut unfielded = false;
        fn walk(expr: &Expr, expected: &mut Vec<String>, unfielded: &mut bool) {
            match expr {
                Expr::All => {}
                Expr::Term(term) => match &term.field {
                    Some(field) if !expected.contains(field) => expected.push(field.clone()),
                    Some(_) => {}
                    None => *unfielded = true,
                },
                Expr::Not(operand) => walk(operand, expected, unfielded),
                Expr::And(operands) | Expr::Or(operands) => operands.iter().for_each(|operand| walk(operand, expected, unfielded)),
            }
        }
        walk(&expr, &mut expected, &mut unfielded);
        let query = Query { expr };
        prop_assert_eq!(query.fields(), expected);
        prop_assert_eq!(query.searches_all_fields(), unfielded);
    }
}
