//! What `parse` refuses, and the messages that say where and why.

use serde_json::{json, Value};

use super::{refused, thing_with};
use crate::provisioning::{parse, MAX_DEPTH, MAX_TEMPLATE_CHARS};

fn thing_refused(properties: Value) -> String {
    refused(&thing_with(properties))
}

#[test]
fn a_ref_to_an_undeclared_parameter_is_refused_where_it_is() {
    assert_eq!(
        thing_refused(json!({"ThingName": {"Ref": "Foo"}})),
        "Resources.thing.Properties.ThingName: Ref to unknown parameter \"Foo\""
    );
}

#[test]
fn unknown_functions_are_refused_by_name() {
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::GetAtt": ["a", "b"]}})),
        "Resources.thing.Properties.ThingName: unknown function \"Fn::GetAtt\""
    );
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::Equals": ["a", "b"]}})),
        "Resources.thing.Properties.ThingName: Fn::Equals can only be used in Conditions"
    );
}

#[test]
fn wrong_argument_shapes_name_the_function_and_what_it_expects() {
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::Join": "-"}})),
        "Resources.thing.Properties.ThingName: Fn::Join expects [delimiter, [values...]], found a string"
    );
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::Select": [0, "abc"]}})),
        "Resources.thing.Properties.ThingName.Fn::Select[1]: expected a list, found a string"
    );
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::Select": [-1, ["a"]]}})),
        "Resources.thing.Properties.ThingName.Fn::Select[0]: Fn::Select index must be a non-negative integer"
    );
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::Select": [1, ["a"]]}})),
        "Resources.thing.Properties.ThingName: Fn::Select index 1 is out of range for a list of 1"
    );
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::Split": ["", "a"]}})),
        "Resources.thing.Properties.ThingName.Fn::Split[0]: Fn::Split delimiter cannot be empty"
    );
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::Sub": ["${x}", "y"]}})),
        "Resources.thing.Properties.ThingName: Fn::Sub expects a string or [string, {variables}]"
    );
}

#[test]
fn lists_where_strings_belong_are_refused_with_their_index() {
    assert_eq!(
        thing_refused(json!({"ThingName": ["a"]})),
        "Resources.thing.Properties.ThingName: expected a string, found a list"
    );
    assert_eq!(
        thing_refused(json!({"ThingName": "t", "ThingGroups": ["a", ["b"]]})),
        "Resources.thing.Properties.ThingGroups[1]: expected a string, found a list"
    );
    assert_eq!(
        thing_refused(json!({"ThingName": "t", "ThingGroups": ["a", {"Fn::Split": [",", "b,c"]}]})),
        "Resources.thing.Properties.ThingGroups[1]: expected a string, found a list"
    );
    assert_eq!(
        thing_refused(json!({"ThingName": "t", "AttributePayload": {"a": {"b": "c"}}})),
        "Resources.thing.Properties.AttributePayload.a: expected a string, found an object"
    );
    assert_eq!(
        thing_refused(json!({"ThingName": "t", "ThingGroups": {"Ref": "P"}})),
        "Resources.thing.Properties.ThingGroups: expected a list of strings, found a string"
    );
}

#[test]
fn unknown_names_in_sub_find_in_map_and_if_are_refused() {
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::Sub": "${P}-${Nope}"}})),
        "Resources.thing.Properties.ThingName: Fn::Sub refers to unknown name \"Nope\""
    );
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::Sub": "${P"}})),
        "Resources.thing.Properties.ThingName: Fn::Sub: \"${\" without a closing \"}\""
    );
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::FindInMap": ["Nope", "a", "b"]}})),
        "Resources.thing.Properties.ThingName.Fn::FindInMap[0]: unknown mapping \"Nope\""
    );
    assert_eq!(
        thing_refused(json!({"ThingName": {"Fn::If": ["Nope", "a", "b"]}})),
        "Resources.thing.Properties.ThingName.Fn::If[0]: unknown condition \"Nope\""
    );
}

#[test]
fn literal_mapping_keys_are_checked_at_parse_time() {
    let body = json!({
        "Mappings": {"M": {"K": {"V": "x"}}},
        "Resources": {"thing": {"Type": "AWS::IoT::Thing",
            "Properties": {"ThingName": {"Fn::FindInMap": ["M", "K", "W"]}}}}
    });
    assert_eq!(
        refused(&body),
        "Resources.thing.Properties.ThingName.Fn::FindInMap[2]: mapping \"M\" has no key \"W\" under \"K\""
    );
}

#[test]
fn conditions_that_refer_to_each_other_in_a_cycle_are_refused() {
    let body = json!({
        "Conditions": {
            "A": {"Fn::Not": [{"Condition": "B"}]},
            "B": {"Fn::Equals": [{"Fn::If": ["A", "x", "y"]}, "x"]},
            "C": {"Condition": "A"}
        },
        "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "t"}}}
    });
    assert_eq!(refused(&body), "Conditions.A: conditions refer to each other in a cycle: A -> B -> A");
    let body = json!({
        "Conditions": {"Self": {"Condition": "Self"}},
        "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "t"}}}
    });
    assert_eq!(refused(&body), "Conditions.Self: conditions refer to each other in a cycle: Self -> Self");
}

#[test]
fn condition_functions_take_their_documented_operand_counts() {
    let with = |condition: Value| {
        refused(&json!({
            "Conditions": {"C": condition},
            "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "t"}}}
        }))
    };
    assert_eq!(
        with(json!({"Fn::And": [{"Condition": "C"}]})),
        "Conditions.C: Fn::And expects a list of 2 to 10 conditions, found a list of 1"
    );
    assert_eq!(
        with(json!({"Fn::Equals": ["a"]})),
        "Conditions.C: Fn::Equals expects [value, value], found a list of 1"
    );
    assert!(with(json!({"Fn::If": ["C", "a", "b"]})).starts_with("Conditions.C: expected a condition"));
}

#[test]
fn the_template_structure_is_checked() {
    let thing = json!({"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "t"}});
    assert!(
        refused(&json!({"Resources": {"t": thing}, "Outputs": {}})).starts_with("Outputs: unknown template section")
    );
    assert_eq!(refused(&json!({"Parameters": {}})), "Resources: the Resources section is required");
    assert_eq!(refused(&json!({"Resources": {}})), "Resources: at least one resource is required");
    assert_eq!(
        refused(&json!({"Resources": {"a": thing, "b": thing}})),
        "Resources.b.Type: a template can have only one AWS::IoT::Thing (\"a\" is one already)"
    );
    assert_eq!(
        refused(&json!({"Resources": {"q": {"Type": "AWS::SQS::Queue", "Properties": {}}}})),
        "Resources.q.Type: unsupported resource type \"AWS::SQS::Queue\" (AWS::IoT::Thing, AWS::IoT::Certificate or AWS::IoT::Policy)"
    );
    assert_eq!(
        refused(
            &json!({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "t"}, "Condition": "X"}}})
        ),
        "Resources.t.Condition: unknown condition \"X\""
    );
    assert_eq!(refused(&json!([1])), "template: expected an object, found a list");
    assert!(refused(&json!("x")).starts_with("template: expected an object"));
}

#[test]
fn thing_properties_and_override_settings_are_checked() {
    assert!(thing_refused(json!({"ThingName": "t", "BillingGroup": "b"}))
        .starts_with("Resources.thing.Properties.BillingGroup: unknown key"));
    assert_eq!(thing_refused(json!({"ThingTypeName": "t"})), "Resources.thing.Properties: ThingName is required");
    let with = |settings: Value| {
        refused(&json!({"Resources": {"thing": {"Type": "AWS::IoT::Thing",
            "Properties": {"ThingName": "t"}, "OverrideSettings": settings}}}))
    };
    assert_eq!(
        with(json!({"ThingTypeName": "MERGE"})),
        "Resources.thing.OverrideSettings.ThingTypeName: MERGE does not apply to ThingTypeName (REPLACE, FAIL or DO_NOTHING)"
    );
    assert_eq!(
        with(json!({"ThingGroups": "merge"})),
        "Resources.thing.OverrideSettings.ThingGroups: expected REPLACE, MERGE, FAIL or DO_NOTHING, found \"merge\""
    );
}

#[test]
fn certificate_properties_are_checked() {
    let with = |properties: Value| {
        refused(&json!({"Resources": {"c": {"Type": "AWS::IoT::Certificate", "Properties": properties}}}))
    };
    assert_eq!(
        with(json!({"Status": "ACTIVE"})),
        "Resources.c.Properties: one of CertificateId, CertificateSigningRequest or CertificatePem is required"
    );
    assert!(with(json!({"CertificateId": "a", "CertificatePem": "b"}))
        .starts_with("Resources.c.Properties: CertificateId and CertificatePem cannot both be given"));
    assert_eq!(
        with(json!({"CertificateId": "a", "CACertificatePem": "b"})),
        "Resources.c.Properties.CACertificatePem: only allowed with CertificatePem"
    );
    assert_eq!(
        with(json!({"CertificateId": "a", "Status": "REVOKED"})),
        "Resources.c.Properties.Status: expected ACTIVE or INACTIVE, found \"REVOKED\""
    );
    let body = json!({"Resources": {"c": {"Type": "AWS::IoT::Certificate",
        "Properties": {"CertificateId": "a"}, "OverrideSettings": {}}}});
    assert_eq!(refused(&body), "Resources.c.OverrideSettings: only an AWS::IoT::Thing has OverrideSettings");
}

#[test]
fn policy_properties_are_checked() {
    let with = |properties: Value| {
        refused(&json!({"Resources": {"p": {"Type": "AWS::IoT::Policy", "Properties": properties}}}))
    };
    assert_eq!(
        with(json!({"PolicyName": "a", "PolicyDocument": "{}"})),
        "Resources.p.Properties: PolicyName and PolicyDocument cannot both be given"
    );
    assert_eq!(with(json!({})), "Resources.p.Properties: one of PolicyName or PolicyDocument is required");
    assert!(with(json!({"PolicyDocument": "{not json"}))
        .starts_with("Resources.p.Properties.PolicyDocument: the policy document is not valid JSON"));
    assert_eq!(
        with(json!({"PolicyDocument": "[1]"})),
        "Resources.p.Properties.PolicyDocument: the policy document must be a JSON object, found a list"
    );
}

#[test]
fn parameters_are_checked() {
    let thing = json!({"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "t"}});
    assert_eq!(
        refused(&json!({"Parameters": {"P": {"Default": "x"}}, "Resources": {"t": thing}})),
        "Parameters.P: Type is required (String or Number)"
    );
}

#[test]
fn oversized_and_overly_nested_bodies_are_refused() {
    let padding = " ".repeat(MAX_TEMPLATE_CHARS);
    let body = format!("{{\"Resources\": {{}}}}{padding}");
    let error = parse(&body).unwrap_err();
    assert!(error.message.starts_with("template: ") && error.message.contains("over the limit"), "{error}");
    let mut deep = json!("t");
    for _ in 0..MAX_DEPTH {
        deep = json!([deep]);
    }
    let error = thing_refused(json!({"ThingName": "t", "AttributePayload": {"a": deep}}));
    assert_eq!(error, format!("template: nested deeper than {MAX_DEPTH} levels"));
    let error = parse(&"[".repeat(100_000)).unwrap_err();
    assert!(error.message.starts_with("template: "), "{error}");
}
