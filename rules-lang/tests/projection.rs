//! Property test of projected payload parsing against the full parser as the oracle:
//! `parse_projected` rejects exactly what `parse_json` rejects, and otherwise returns exactly the
//! projected members of the full parse (same order, same values), for generated JSON documents
//! and for corrupted copies of them.

use ferrite_rules::projection::{parse_projected, Projection};
use ferrite_rules::value::{parse_json, Object, Value};
use proptest::prelude::*;
use proptest::sample::{select, subsequence, Index};

/// Keys as written in the JSON text; several spellings decode to the same key, so escaped keys
/// and duplicates are common.
const KEY_SPELLINGS: &[&str] = &[
    "temp",
    "te\\u006dp",
    "\\u0074emp",
    "deviceId",
    "a",
    "\\u0061",
    "b",
    "",
    "é",
    "\\u00e9",
    "x\\ny",
    "😀",
    "\\ud83d\\ude00",
    "k\\\"q",
    "\\u+061",
];

/// What the spellings decode to (plus one key never written), for drawing projections.
const DECODED_KEYS: &[&str] = &["temp", "deviceId", "a", "b", "", "é", "x\ny", "😀", "k\"q", "never"];

fn ws() -> impl Strategy<Value = &'static str> {
    select(vec!["", "", " ", "\n", "\t\r ", "  "])
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => any::<i64>().prop_map(|n| n.to_string()),
        12 => "-?(0|[1-9][0-9]{0,3})\\.[0-9]{1,6}",
        6 => "-?(0|[1-9][0-9]{0,45})(\\.[0-9]{1,45})?([eE][+-]?[0-9]{1,4})?",
        6 => "-?(0|[1-9][0-9]{0,2})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,3})?",
        // Rarely, a number parse_json rejects for its grammar.
        1 => select(vec!["01", "1.", "-", "1e", "1e+", ".5", "+1", "-01.5"]).prop_map(String::from),
        1 => select(vec![
            "1e6144",
            "1e6145",
            "9.999999999999999999999999999999999e6144",
            "1E+9999",
            "1e-6176",
            "1e-99999",
            "1e99999999999999999999",
            "-0",
            "170141183460469231731687303715884105727",
            "170141183460469231731687303715884105728",
            "-170141183460469231731687303715884105729",
        ])
        .prop_map(String::from),
        // Digit strings around decimal128's largest exponent, with and without a fraction.
        1 => (1u8..=9, 6100usize..6200, any::<bool>()).prop_map(|(d, n, frac)| {
            let digits = char::from(b'0' + d).to_string().repeat(n);
            if frac {
                format!("0.{digits}")
            } else {
                digits
            }
        }),
    ]
}

fn string_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => "[a-zA-Z0-9 _-]{0,8}",
        6 => select(vec![
            "\\n", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r", "\\t", "\\u0041", "\\u00e9", "\\uD83D\\uDE00",
            "\\ud83d\\ude00", "\\u+041", "\\uffff",
        ])
        .prop_map(String::from),
        4 => "[é😀中ß\u{7f}\u{80}\u{10ffff}]{1,3}",
        // Rarely, something parse_json rejects (or a char that may need escaping).
        1 => prop_oneof![
            select(vec!["\\ud800", "\\udc00", "\\ud800\\u0041", "\\uzzzz", "\\u12", "\\q", "\\u-041", "\u{1}"])
                .prop_map(String::from),
            any::<char>().prop_map(String::from),
        ],
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop::collection::vec(string_piece(), 0..4).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(KEY_SPELLINGS).prop_map(|k| format!("\"{k}\"")),
        1 => string(),
    ]
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => select(vec!["null", "true", "false"]).prop_map(String::from),
        3 => number(),
        3 => string(),
    ]
}

fn object(member: impl Strategy<Value = String>, max: usize) -> impl Strategy<Value = String> {
    (prop::collection::vec((key(), member), 0..max), ws()).prop_map(|(members, w)| {
        let members: Vec<String> = members.into_iter().map(|(k, v)| format!("{w}{k}{w}:{w}{v}{w}")).collect();
        format!("{{{w}{}}}", members.join(","))
    })
}

fn array(item: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (prop::collection::vec(item, 0..5), ws()).prop_map(|(items, w)| {
        let items: Vec<String> = items.into_iter().map(|v| format!("{w}{v}{w}")).collect();
        format!("[{w}{}]", items.join(","))
    })
}

/// A value nested right around the depth limit (counted from a top-level member at depth 1).
fn deep() -> impl Strategy<Value = String> {
    (250usize..260, any::<bool>(), select(vec!["", "1", "{}", "[]", "\"s\""])).prop_map(|(n, arrays, inner)| {
        if arrays {
            format!("{}{inner}{}", "[".repeat(n), "]".repeat(n))
        } else {
            let inner = if inner.is_empty() { "{}" } else { inner };
            format!("{}{inner}{}", "{\"d\":".repeat(n), "}".repeat(n))
        }
    })
}

fn value() -> impl Strategy<Value = String> {
    leaf().prop_recursive(5, 48, 5, |inner| prop_oneof![array(inner.clone()), object(inner, 5)])
}

fn document() -> impl Strategy<Value = String> {
    let member = prop_oneof![30 => value(), 1 => deep()];
    (prop_oneof![6 => object(member, 10), 1 => value()], ws(), ws()).prop_map(|(d, a, b)| format!("{a}{d}{b}"))
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(Index),
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
}

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => select(b"\"\\{}[],:0123456789.eE+-u tfn\x01\x1f\x7f\x80\xc3\xff".to_vec()),
        1 => any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
    ]
}

fn mutate(text: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    for m in mutations {
        match m {
            Mutation::Truncate(i) => b.truncate(i.index(b.len() + 1)),
            Mutation::Replace(i, x) if !b.is_empty() => {
                let i = i.index(b.len());
                b[i] = *x;
            }
            Mutation::Insert(i, x) => b.insert(i.index(b.len() + 1), *x),
            Mutation::Delete(i) if !b.is_empty() => {
                b.remove(i.index(b.len()));
            }
            Mutation::Replace(..) | Mutation::Delete(_) => {}
        }
    }
    b
}

/// The contract, with the full parser as the oracle. Values are compared through their Debug
/// form, which shows every digit of a decimal and the order of object keys.
fn check(text: &[u8], projection: &Projection) -> Result<bool, TestCaseError> {
    let full = parse_json(text);
    let got = parse_projected(text, projection);
    match (full, got) {
        (Err(_), Err(_)) => Ok(false),
        (Ok(Value::Object(o)), Ok(got)) => {
            let want: Object = o.into_iter().filter(|(k, _)| projection.contains(k)).collect();
            prop_assert_eq!(format!("{got:?}"), format!("{:?}", Value::Object(want)));
            Ok(true)
        }
        (Ok(full), Ok(got)) => {
            prop_assert_eq!(format!("{got:?}"), format!("{full:?}"));
            Ok(true)
        }
        (full, got) => {
            prop_assert!(false, "parse_json gave {:?} but parse_projected gave {:?}", full, got);
            unreachable!()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8192))]

    #[test]
    fn projected_parse_matches_filtered_full_parse(
        doc in document(),
        keys in subsequence(DECODED_KEYS, 0..=DECODED_KEYS.len()),
        mutations in prop::collection::vec(mutation(), 0..3),
    ) {
        let projection = Projection::new(keys);
        check(doc.as_bytes(), &projection)?;
        check(&mutate(&doc, &mutations), &projection)?;
    }
}

/// Guards the generator itself: a property over documents that are mostly rejected would
/// prove little, so most generated documents must be JSON objects.
#[test]
fn generated_documents_are_mostly_valid_objects() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = document();
    let mut objects = 0;
    for _ in 0..500 {
        let doc = strategy.new_tree(&mut runner).unwrap().current();
        if matches!(parse_json(doc.as_bytes()), Ok(Value::Object(o)) if !o.is_empty()) {
            objects += 1;
        }
    }
    eprintln!("{objects} of 500 generated documents are non-empty objects");
    assert!(objects > 150, "only {objects} of 500 generated documents are non-empty objects");
}
