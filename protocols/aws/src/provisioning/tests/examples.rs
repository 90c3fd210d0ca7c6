//! The template shapes AWS documents for JITP and fleet provisioning.

use serde_json::{json, Value};

use super::{params, run};
use crate::provisioning::{parse, CertificateSource, Override, ThingOverrides};

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"]}]}"#;

/// JITP: everything comes from the device certificate's subject.
fn jitp() -> Value {
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Just-in-time provisioning for devices signed by our CA",
        "Parameters": {
            "AWS::IoT::Certificate::CommonName": {"Type": "String"},
            "AWS::IoT::Certificate::Country": {"Type": "String"},
            "AWS::IoT::Certificate::Id": {"Type": "String"}
        },
        "Mappings": {"CountryGroups": {"US": {"Group": "fleet-us"}, "DE": {"Group": "fleet-eu"}}},
        "Conditions": {
            "Mapped": {"Fn::Or": [
                {"Fn::Equals": [{"Ref": "AWS::IoT::Certificate::Country"}, "US"]},
                {"Fn::Equals": [{"Ref": "AWS::IoT::Certificate::Country"}, "DE"]}
            ]}
        },
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
                    "AttributePayload": {"version": "v1", "country": {"Ref": "AWS::IoT::Certificate::Country"}},
                    "ThingGroups": [{"Fn::If": ["Mapped",
                        {"Fn::FindInMap": ["CountryGroups", {"Ref": "AWS::IoT::Certificate::Country"}, "Group"]},
                        "fleet-other"]}]
                }
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": POLICY}}
        }
    })
}

/// Fleet provisioning: the device sends its serial number and maybe its location.
fn fleet() -> Value {
    json!({
        "Parameters": {
            "SerialNumber": {"Type": "String"},
            "DeviceLocation": {"Type": "String", "Default": "Seattle"},
            "AWS::IoT::Certificate::Id": {"Type": "String"}
        },
        "Mappings": {"LocationTable": {
            "Seattle": {"LocationUrl": "https://seattle.example.com"},
            "Paris": {"LocationUrl": "https://paris.example.com"}
        }},
        "Conditions": {"InSeattle": {"Fn::Equals": [{"Ref": "DeviceLocation"}, "Seattle"]}},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {"Fn::Join": ["", ["ThingPrefix_", {"Ref": "SerialNumber"}]]},
                    "AttributePayload": {"version": "v1", "serialNumber": {"Ref": "SerialNumber"}},
                    "ThingTypeName": "lightBulb-versionA",
                    "ThingGroups": ["v1-lightbulbs", {"Fn::If": ["InSeattle", "seattle-bulbs", "other-bulbs"]}]
                },
                "OverrideSettings": {"AttributePayload": "MERGE", "ThingTypeName": "REPLACE", "ThingGroups": "DO_NOTHING"}
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "Active"}
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "fleet-policy"}}
        },
        "DeviceConfiguration": {
            "FallbackUrl": "https://www.example.com/test-site",
            "LocationUrl": {"Fn::FindInMap": ["LocationTable", {"Ref": "DeviceLocation"}, "LocationUrl"]},
            "Topic": {"Fn::Sub": "devices/${SerialNumber}/config"}
        }
    })
}

#[test]
fn jitp_provisions_the_thing_named_after_the_certificate_common_name() {
    let given = json!({
        "AWS::IoT::Certificate::CommonName": "sensor-7",
        "AWS::IoT::Certificate::Country": "US",
        "AWS::IoT::Certificate::Id": "c0ffee"
    });
    let plan = run(&jitp(), given.clone()).unwrap();
    let thing = plan.thing.unwrap();
    assert_eq!(thing.thing_name, "sensor-7");
    assert_eq!(thing.attributes.get("country").map(String::as_str), Some("US"));
    assert_eq!(thing.thing_groups, ["fleet-us"]);
    assert_eq!(thing.overrides, ThingOverrides::default());
    assert_eq!(thing.overrides.thing_groups, Override::DoNothing);
    let certificate = plan.certificate.unwrap();
    assert_eq!(certificate.source, CertificateSource::Id("c0ffee".to_string()));
    assert_eq!(certificate.status.as_deref(), Some("ACTIVE"));
    assert_eq!(plan.policy.unwrap().document.as_deref(), Some(POLICY));
    assert_eq!(plan.parameters, params(given));
    assert!(plan.device_configuration.is_empty());
}

#[test]
fn jitp_puts_a_device_from_an_unmapped_country_in_the_fallback_group() {
    let given = json!({
        "AWS::IoT::Certificate::CommonName": "sensor-8",
        "AWS::IoT::Certificate::Country": "FR",
        "AWS::IoT::Certificate::Id": "c0ffee"
    });
    let plan = run(&jitp(), given).unwrap();
    assert_eq!(plan.thing.unwrap().thing_groups, ["fleet-other"]);
}

#[test]
fn jitp_without_the_certificate_id_names_the_missing_parameter() {
    let given = json!({"AWS::IoT::Certificate::CommonName": "s", "AWS::IoT::Certificate::Country": "US"});
    let error = run(&jitp(), given).unwrap_err();
    assert_eq!(
        error.message,
        "Resources.certificate.Properties.CertificateId: Parameter \"AWS::IoT::Certificate::Id\" has no value and no Default"
    );
}

#[test]
fn fleet_provisioning_uses_the_default_location_and_reports_it() {
    let plan = run(&fleet(), json!({"SerialNumber": "0042", "AWS::IoT::Certificate::Id": "abc"})).unwrap();
    let thing = plan.thing.unwrap();
    assert_eq!(thing.thing_name, "ThingPrefix_0042");
    assert_eq!(thing.attributes.get("serialNumber").map(String::as_str), Some("0042"));
    assert_eq!(thing.thing_type_name.as_deref(), Some("lightBulb-versionA"));
    assert_eq!(thing.thing_groups, ["v1-lightbulbs", "seattle-bulbs"]);
    assert_eq!(
        thing.overrides,
        ThingOverrides {
            attribute_payload: Override::Merge,
            thing_type_name: Override::Replace,
            thing_groups: Override::DoNothing
        }
    );
    assert_eq!(plan.certificate.unwrap().status.as_deref(), Some("ACTIVE"));
    let policy = plan.policy.unwrap();
    assert_eq!((policy.name.as_deref(), policy.document), (Some("fleet-policy"), None));
    let configuration = Value::Object(plan.device_configuration);
    assert_eq!(
        configuration,
        json!({
            "FallbackUrl": "https://www.example.com/test-site",
            "LocationUrl": "https://seattle.example.com",
            "Topic": "devices/0042/config"
        })
    );
    assert_eq!(
        Value::Object(plan.parameters),
        json!({"SerialNumber": "0042", "DeviceLocation": "Seattle", "AWS::IoT::Certificate::Id": "abc"})
    );
}

#[test]
fn fleet_provisioning_follows_a_given_location() {
    let given = json!({"SerialNumber": "7", "DeviceLocation": "Paris", "AWS::IoT::Certificate::Id": "abc"});
    let plan = run(&fleet(), given).unwrap();
    assert_eq!(plan.thing.unwrap().thing_groups, ["v1-lightbulbs", "other-bulbs"]);
    assert_eq!(plan.device_configuration.get("LocationUrl"), Some(&json!("https://paris.example.com")));
}

#[test]
fn fleet_provisioning_refuses_a_location_missing_from_the_mapping() {
    let given = json!({"SerialNumber": "7", "DeviceLocation": "Tokyo", "AWS::IoT::Certificate::Id": "abc"});
    let error = run(&fleet(), given).unwrap_err();
    assert_eq!(
        error.message,
        "DeviceConfiguration.LocationUrl: Fn::FindInMap: mapping \"LocationTable\" has no key \"Tokyo\""
    );
}

#[test]
fn parameter_names_are_the_declared_ones() {
    let template = parse(&fleet().to_string()).unwrap();
    assert_eq!(template.parameter_names(), ["AWS::IoT::Certificate::Id", "DeviceLocation", "SerialNumber"]);
}
