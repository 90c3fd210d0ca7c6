//! How intrinsic functions, conditions and resources evaluate.

use serde_json::{json, Value};

use super::{run, thing_with};
use crate::provisioning::{parse, CertificateSource, MAX_EVALUATED_BYTES};

fn thing_name(properties: Value, given: Value) -> String {
    run(&thing_with(properties), given).unwrap().thing.unwrap().thing_name
}

#[test]
fn a_number_parameter_used_as_a_name_becomes_its_decimal_text() {
    assert_eq!(thing_name(json!({"ThingName": {"Ref": "N"}}), json!({})), "7");
    assert_eq!(thing_name(json!({"ThingName": {"Ref": "N"}}), json!({"N": 12.5})), "12.5");
    assert_eq!(thing_name(json!({"ThingName": {"Ref": "N"}}), json!({"N": "0012"})), "0012");
}

#[test]
fn select_picks_from_a_split_parameter_by_number_or_numeric_text() {
    let split = json!({"Fn::Split": [",", {"Ref": "P"}]});
    assert_eq!(thing_name(json!({"ThingName": {"Fn::Select": [1, split]}}), json!({"P": "a,b,c"})), "b");
    assert_eq!(thing_name(json!({"ThingName": {"Fn::Select": ["2", split]}}), json!({"P": "a,b,c"})), "c");
    let error = run(&thing_with(json!({"ThingName": {"Fn::Select": [3, split]}})), json!({"P": "a,b,c"})).unwrap_err();
    assert_eq!(
        error.message,
        "Resources.thing.Properties.ThingName: Fn::Select index 3 is out of range for a list of 3"
    );
}

#[test]
fn sub_replaces_variables_parameters_and_keeps_escaped_placeholders() {
    let sub = json!({"Fn::Sub": ["${prefix}-${P}-${AWS::IoT::Certificate::Id}-${!Literal}", {"prefix": {"Ref": "N"}}]});
    let name = thing_name(json!({"ThingName": sub}), json!({"P": "x", "AWS::IoT::Certificate::Id": "id"}));
    assert_eq!(name, "7-x-id-${Literal}");
}

#[test]
fn join_accepts_a_list_built_by_split() {
    let join = json!({"Fn::Join": ["/", {"Fn::Split": [",", {"Ref": "P"}]}]});
    assert_eq!(thing_name(json!({"ThingName": join}), json!({"P": "a,b"})), "a/b");
}

#[test]
fn thing_groups_and_attributes_turn_numbers_into_text() {
    let properties = json!({
        "ThingName": "t",
        "ThingGroups": {"Fn::Split": [",", {"Ref": "P"}]},
        "AttributePayload": {"n": {"Ref": "N"}, "flag": true}
    });
    let thing = run(&thing_with(properties), json!({"P": "g1,g2"})).unwrap().thing.unwrap();
    assert_eq!(thing.thing_groups, ["g1", "g2"]);
    assert_eq!(thing.attributes.get("n").map(String::as_str), Some("7"));
    assert_eq!(thing.attributes.get("flag").map(String::as_str), Some("true"));
}

#[test]
fn a_resource_whose_condition_is_false_is_left_out() {
    let body = json!({
        "Parameters": {"Kind": {"Type": "String"}},
        "Conditions": {
            "IsGateway": {"Fn::Equals": [{"Ref": "Kind"}, "gateway"]},
            "IsSensor": {"Fn::Not": [{"Condition": "IsGateway"}]},
            "Both": {"Fn::And": [{"Condition": "IsSensor"}, {"Fn::Equals": ["a", "a"]}]}
        },
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "t"}},
            "policy": {"Type": "AWS::IoT::Policy", "Condition": "Both", "Properties": {"PolicyName": "sensor"}}
        }
    });
    let plan = run(&body, json!({"Kind": "gateway"})).unwrap();
    assert!(plan.thing.is_some());
    assert_eq!(plan.policy, None);
    let plan = run(&body, json!({"Kind": "sensor"})).unwrap();
    assert_eq!(plan.policy.unwrap().name.as_deref(), Some("sensor"));
}

#[test]
fn equals_compares_numbers_and_their_text_alike() {
    let body = json!({
        "Parameters": {"N": {"Type": "Number"}},
        "Conditions": {"IsSeven": {"Fn::Equals": [{"Ref": "N"}, "7"]}},
        "Resources": {"thing": {"Type": "AWS::IoT::Thing",
            "Properties": {"ThingName": {"Fn::If": ["IsSeven", "seven", "other"]}}}}
    });
    assert_eq!(run(&body, json!({"N": 7})).unwrap().thing.unwrap().thing_name, "seven");
    assert_eq!(run(&body, json!({"N": "8"})).unwrap().thing.unwrap().thing_name, "other");
}

#[test]
fn a_policy_document_object_may_use_functions_and_is_stored_as_json_text() {
    let body = json!({
        "Parameters": {"P": {"Type": "String"}},
        "Resources": {"policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iot:Publish",
                "Resource": {"Fn::Sub": "arn:aws:iot:us-east-1:123456789012:topic/${P}/*"}}]
        }}}}
    });
    let document = run(&body, json!({"P": "dev"})).unwrap().policy.unwrap().document.unwrap();
    let parsed: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(parsed["Statement"][0]["Resource"], json!("arn:aws:iot:us-east-1:123456789012:topic/dev/*"));
}

#[test]
fn certificates_come_from_a_csr_or_a_pem_with_its_ca() {
    let with = |properties: Value| {
        let body = json!({
            "Parameters": {"Csr": {"Type": "String"}},
            "Resources": {"certificate": {"Type": "AWS::IoT::Certificate", "Properties": properties}}
        });
        run(&body, json!({"Csr": "-----BEGIN CERTIFICATE REQUEST-----"})).unwrap().certificate.unwrap()
    };
    let csr = with(json!({"CertificateSigningRequest": {"Ref": "Csr"}}));
    assert_eq!(csr.source, CertificateSource::Csr("-----BEGIN CERTIFICATE REQUEST-----".to_string()));
    assert_eq!(csr.status, None);
    let pem = with(json!({"CertificatePem": "cert", "CACertificatePem": "ca", "Status": "inactive"}));
    let expected = CertificateSource::Pem { certificate_pem: "cert".into(), ca_certificate_pem: Some("ca".into()) };
    assert_eq!(pem.source, expected);
    assert_eq!(pem.status.as_deref(), Some("INACTIVE"));
}

#[test]
fn conditions_that_each_use_the_previous_twice_evaluate_in_linear_time() {
    let mut conditions = serde_json::Map::new();
    conditions.insert("c0".into(), json!({"Fn::Equals": ["a", "a"]}));
    for i in 1..100 {
        let previous = json!({"Condition": format!("c{}", i - 1)});
        conditions.insert(format!("c{i}"), json!({"Fn::And": [previous, previous]}));
    }
    let body = json!({
        "Conditions": conditions,
        "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::If": ["c99", "yes", "no"]}}}}
    });
    assert_eq!(run(&body, json!({})).unwrap().thing.unwrap().thing_name, "yes");
}

#[test]
fn copying_a_large_parameter_many_times_is_refused_instead_of_exhausting_memory() {
    let refs: Vec<Value> = (0..40).map(|_| json!({"Ref": "P"})).collect();
    let big = "x".repeat(MAX_EVALUATED_BYTES / 20);
    let error = run(&thing_with(json!({"ThingName": {"Fn::Join": ["", refs]}})), json!({"P": big})).unwrap_err();
    assert!(error.message.contains("bytes of text"), "{error}");
}

#[test]
fn a_parameter_of_the_wrong_type_is_refused_at_evaluation() {
    let error = run(&thing_with(json!({"ThingName": {"Ref": "P"}})), json!({"P": ["a"]})).unwrap_err();
    assert_eq!(error.message, "Resources.thing.Properties.ThingName: Parameter \"P\" must be a string, found a list");
    let error = run(&thing_with(json!({"ThingName": {"Ref": "N"}})), json!({"N": "seven"})).unwrap_err();
    assert_eq!(
        error.message,
        "Resources.thing.Properties.ThingName: Parameter \"N\" must be a number, found \"seven\""
    );
}

#[test]
fn parameters_not_looked_up_are_not_reported() {
    let plan = run(&thing_with(json!({"ThingName": {"Ref": "P"}})), json!({"P": "a", "Extra": "b"})).unwrap();
    assert_eq!(Value::Object(plan.parameters), json!({"P": "a"}));
}

#[test]
fn one_template_evaluates_independently_for_each_device() {
    let template = parse(&thing_with(json!({"ThingName": {"Ref": "P"}})).to_string()).unwrap();
    let first = template.evaluate(&super::params(json!({"P": "one"}))).unwrap();
    let second = template.evaluate(&super::params(json!({"P": "two"}))).unwrap();
    assert_eq!(first.thing.unwrap().thing_name, "one");
    assert_eq!(second.thing.unwrap().thing_name, "two");
}
