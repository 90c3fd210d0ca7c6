//! Property tests: nothing panics on hostile input, and evaluation is total.

use std::collections::BTreeMap;

use ferrite_aws::policy::{evaluate, fuzz_policy, parse, Context, ThingContext};
use proptest::prelude::*;

const VALID: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "deny-aws", "Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/$aws/*"},
    {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "arn:aws:iot:us-east-1:1:client/${iot:Connection.Thing.ThingName}",
     "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}, "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "::1"]}}},
    {"Effect": "Allow", "NotAction": "iot:Connect", "Resource": ["arn:aws:iot:us-east-1:1:topic/${iot:ClientId}/*", "x${*}"],
     "Condition": {"ForAnyValue:StringLikeIfExists": {"iot:Certificate.Subject.CommonName": "dev-*"},
                   "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}, "NumericEquals": {"n": 1.5},
                   "Null": {"iot:Connection.Thing.Attributes[floor]": false}}}
  ]
}"#;

#[test]
fn valid_fixture_parses() {
    let doc = parse(VALID).unwrap();
    assert_eq!(doc.statements.len(), 3);
    fuzz_policy(VALID.as_bytes());
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = prop_oneof![
        Just('"'),
        Just('{'),
        Just('}'),
        Just('['),
        Just(']'),
        Just(','),
        Just(':'),
        Just('\\'),
        Just('$'),
        Just('*'),
        Just('?'),
        Just('é'),
        Just('\n'),
        any::<char>()
    ];
    prop_oneof![
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), c).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), 0usize..40).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len().max(1);
        match *e {
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i % len);
            }
            Edit::Replace(i, c) if !chars.is_empty() => chars[i % len] = c,
            Edit::Duplicate(i, n) if !chars.is_empty() => {
                let start = i % len;
                let end = (start + n).min(chars.len());
                let piece: Vec<char> = chars[start..end].to_vec();
                chars.splice(start..start, piece);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn parser_never_panics_on_arbitrary_text(s in ".{0,300}") {
        let _ = parse(&s);
    }

    #[test]
    fn fuzz_entry_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        fuzz_policy(&bytes);
    }

    #[test]
    fn mutated_valid_policies_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
        let text = apply(VALID, &edits);
        if let Err(e) = parse(&text) {
            prop_assert!(e.line >= 1 && e.column >= 1);
        }
        fuzz_policy(text.as_bytes());
    }

    #[test]
    fn evaluation_never_panics(
        client in ".{0,20}",
        thing in proptest::option::of(".{0,12}"),
        attr in ".{0,8}",
        ip in proptest::option::of(any::<[u8; 4]>()),
        now in any::<u64>(),
        action in "(iot|IOT|x):[A-Za-z*?]{0,10}",
        resource in ".{0,60}",
    ) {
        let doc = parse(VALID).unwrap();
        let attrs = BTreeMap::from([("floor".to_string(), attr)]);
        let cert = BTreeMap::from([("Subject.CommonName".to_string(), vec![client.clone()])]);
        let extra = BTreeMap::from([("n".to_string(), vec!["1.5".to_string(), client.clone()])]);
        let ctx = Context {
            client_id: &client,
            thing: thing.as_deref().map(|name| ThingContext { name, type_name: None, attributes: &attrs }),
            certificate: Some(&cert),
            source_ip: ip.map(std::net::IpAddr::from),
            now_epoch_s: now,
            extra: &extra,
        };
        let _ = evaluate([&doc], &action, &resource, &ctx);
    }
}
