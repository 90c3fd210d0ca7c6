//! Templates and parameters come from API callers and devices: `parse` and `evaluate` must
//! return, never panic, on anything. Template-shaped inputs reach far deeper than random JSON.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::provisioning::{fuzz_template, parse};

const NAMES: [&str; 24] = [
    "Ref",
    "Fn::Join",
    "Fn::Select",
    "Fn::Split",
    "Fn::Sub",
    "Fn::FindInMap",
    "Fn::If",
    "Fn::Equals",
    "Fn::Not",
    "Fn::And",
    "Fn::Or",
    "Condition",
    "P",
    "N",
    "M",
    "K",
    "C",
    "D",
    "AWS::IoT::Certificate::Id",
    "ThingName",
    "CertificateId",
    "PolicyName",
    "Status",
    "x",
];

const TEXTS: [&str; 12] = ["P", "N", "M", "K", "C", "D", "${P}", "${!x}", "${N", ",", "ACTIVE", "{\"a\":1}"];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![4 => proptest::sample::select(&NAMES[..]).prop_map(String::from), 1 => "[A-Za-z:]{0,5}"]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::sample::select(&TEXTS[..]).prop_map(Value::from),
        proptest::sample::select(&NAMES[..]).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..4).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        ".{0,6}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(name(), inner.clone(), 0..3).prop_map(|map| Value::Object(map.into_iter().collect())),
            (name(), inner).prop_map(|(key, value)| json!({ key: value })),
        ]
    })
}

/// A text-valued template expression: well-formed functions over declared names (`Fn::If` over
/// the conditions `ifs`), and with `junk` also arbitrary values and unknown names.
fn text(junk: bool, ifs: &'static [&'static str]) -> BoxedStrategy<Value> {
    const WORDS: [&str; 6] = ["a", "b,c", "K", "L", "ACTIVE", "${x}"];
    const REFS: [&str; 3] = ["P", "N", "AWS::IoT::Certificate::Id"];
    const SUBS: [&str; 4] = ["${P}-x", "${N}", "a${!b}", "${AWS::IoT::Certificate::Id}"];
    let good = prop_oneof![
        proptest::sample::select(&WORDS[..]).prop_map(Value::from),
        (0u64..3).prop_map(Value::from),
        proptest::sample::select(&REFS[..]).prop_map(|name| json!({"Ref": name})),
        proptest::sample::select(&SUBS[..]).prop_map(|text| json!({"Fn::Sub": text})),
    ];
    let leaf = if junk { prop_oneof![3 => good, 1 => leaf()].boxed() } else { good.boxed() };
    let top = prop_oneof![Just(json!("K")), Just(json!({"Ref": "P"}))];
    let second = prop_oneof![3 => Just(json!("K")), 1 => Just(json!("L")), 1 => Just(json!({"Ref": "P"}))];
    let tree = leaf.prop_recursive(3, 12, 3, move |inner| {
        let mut functions = vec![
            (proptest::sample::select(&[",", "-", ""][..]), list(inner.clone()))
                .prop_map(|(delimiter, items)| json!({"Fn::Join": [delimiter, items]}))
                .boxed(),
            (prop_oneof![3 => Just(0u64), 1 => Just(1u64)], list(inner.clone()))
                .prop_map(|(index, items)| json!({"Fn::Select": [index, items]}))
                .boxed(),
            (top.clone(), second.clone())
                .prop_map(|(top, second)| json!({"Fn::FindInMap": ["M", top, second]}))
                .boxed(),
            inner.clone().prop_map(|variable| json!({"Fn::Sub": ["${v}/${P}", {"v": variable}]})).boxed(),
        ];
        if !ifs.is_empty() {
            let branches = (proptest::sample::select(ifs), inner.clone(), inner.clone());
            functions
                .push(branches.prop_map(|(name, then, otherwise)| json!({"Fn::If": [name, then, otherwise]})).boxed());
        }
        if junk {
            functions.push(value().boxed());
        }
        proptest::strategy::Union::new(functions)
    });
    tree.boxed()
}

/// A list-valued expression built from `item`s.
fn list(item: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![
        vec(item.clone(), 1..3).prop_map(Value::Array),
        item.prop_map(|source| json!({"Fn::Split": [",", source]})),
    ]
    .boxed()
}

/// A condition that may refer to the conditions `others`.
fn condition(others: &'static [&'static str], junk: bool) -> BoxedStrategy<Value> {
    let equals =
        (text(junk, others), text(junk, others)).prop_map(|(left, right)| json!({"Fn::Equals": [left, right]}));
    let mut leaves = vec![equals.boxed()];
    if !others.is_empty() {
        leaves.push(proptest::sample::select(others).prop_map(|name| json!({"Condition": name})).boxed());
    }
    if junk {
        leaves.push(value().boxed());
    }
    let operands = if junk { 1..4 } else { 2..4 };
    proptest::strategy::Union::new(leaves)
        .prop_recursive(3, 12, 3, move |inner| {
            prop_oneof![
                inner.clone().prop_map(|operand| json!({"Fn::Not": [operand]})),
                vec(inner.clone(), operands.clone()).prop_map(|operands| json!({"Fn::And": operands})),
                vec(inner, operands.clone()).prop_map(|operands| json!({"Fn::Or": operands})),
            ]
        })
        .boxed()
}

/// A template with all three resources, conditions, mappings and device configuration.
fn template() -> impl Strategy<Value = Value> {
    any::<bool>().prop_flat_map(|junk| {
        // With junk, C and D may refer to each other in a cycle; without, C uses D only.
        let (c_uses, d_uses): (&[&str], &[&str]) = if junk { (&["C", "D"], &["C"]) } else { (&["D"], &[]) };
        let text = move || text(junk, &["C", "D"]);
        let status = prop_oneof![Just(json!("ACTIVE")), Just(json!("Inactive")), text()];
        let document = prop_oneof![
            2 => Just(json!("{\"Version\":\"2012-10-17\"}")),
            2 => text().prop_map(|resource| json!({"Statement": [{"Resource": resource}]})),
            1 => text(),
        ];
        let resources = (text(), list(text()), text(), text(), status, document);
        let sections = (condition(c_uses, junk), condition(d_uses, junk), text());
        (resources, sections)
    })
    .prop_map(|((name, groups, attribute, id, status, document), (c, d, setting))| {
        json!({
            "Parameters": {"P": {"Type": "String"}, "N": {"Type": "Number", "Default": 1}},
            "Mappings": {"M": {"K": {"K": "v", "L": ["a", "b"]}}},
            "Conditions": {"C": c, "D": d},
            "Resources": {
                "thing": {"Type": "AWS::IoT::Thing", "Condition": "D", "Properties": {
                    "ThingName": name, "ThingGroups": groups, "AttributePayload": {"a": attribute}}},
                "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": id, "Status": status}},
                "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": document}}
            },
            "DeviceConfiguration": {"x": setting}
        })
    })
}

/// Parameter maps that usually give the template's names a value, of varying types.
fn parameters() -> impl Strategy<Value = Map<String, Value>> {
    let text = prop_oneof![
        6 => Just(json!("K")),
        2 => Just(json!("a,b")),
        2 => Just(json!(7)),
        1 => leaf(),
        1 => value(),
    ];
    let given = |value| proptest::option::weighted(0.9, value);
    let named = (given(text.clone()), given(text.clone()), given(text));
    let others = btree_map(name(), prop_oneof![3 => leaf(), 1 => value()], 0..3);
    (named, others).prop_map(|((p, n, id), others)| {
        let mut map: Map<String, Value> = others.into_iter().collect();
        for (key, value) in [("P", p), ("N", n), ("AWS::IoT::Certificate::Id", id)] {
            if let Some(value) = value {
                map.insert(key.to_string(), value);
            }
        }
        map
    })
}

fn exercise(body: &str, given: &Map<String, Value>) {
    match parse(body) {
        Ok(template) => {
            let _ = template.parameter_names();
            let _ = template.evaluate(given);
        }
        Err(error) => assert!(!error.message.is_empty()),
    }
}

proptest! {
    #[test]
    fn template_shaped_bodies_never_panic(body in template(), given in parameters()) {
        exercise(&body.to_string(), &given);
    }

    #[test]
    fn arbitrary_json_never_panics(body in value(), given in parameters()) {
        exercise(&body.to_string(), &given);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..256)) {
        fuzz_template(&data);
    }
}
