//! Evaluation tests modelled on the AWS IoT Core developer guide's policy examples (policies are
//! re-typed in compact form; the page each one follows is named in the test).

use std::collections::BTreeMap;

use super::super::context::ThingContext;
use super::super::document::parse;
use super::*;

const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

fn doc(text: &str) -> PolicyDocument {
    match parse(text) {
        Ok(d) => d,
        Err(e) => panic!("policy should parse: {e}\n{text}"),
    }
}

fn decide(d: &PolicyDocument, action: &str, resource: &str, ctx: &Context<'_>) -> Decision {
    evaluate([d], action, resource, ctx)
}

fn topic(t: &str) -> String {
    format!("{ARN}:topic/{t}")
}

fn client(c: &str) -> String {
    format!("{ARN}:client/{c}")
}

fn with_thing<'a>(ctx: Context<'a>, name: &'a str, attrs: &'a BTreeMap<String, String>) -> Context<'a> {
    Context { thing: Some(ThingContext { name, type_name: None, attributes: attrs }), ..ctx }
}

/// basic-policy-variables.html: client-id scoped topic plus an `aws:SourceIp` condition.
#[test]
fn client_id_topic_with_source_ip() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/clientid1"]},
        {"Effect":"Allow","Action":["iot:Publish"],"Resource":["arn:aws:iot:us-east-1:123456789012:topic/my/topic/${iot:ClientId}"],
         "Condition":{"IpAddress":{"aws:SourceIp":"123.45.167.89"}}}]}"#);
    let mut ctx = Context::new("clientid1", 0);
    assert_eq!(decide(&d, "iot:Connect", &client("clientid1"), &ctx), Decision::Allow);
    assert_eq!(decide(&d, "iot:Connect", &client("clientid2"), &ctx), Decision::ImplicitDeny);
    // No source IP known: IpAddress on a missing key is false.
    assert_eq!(decide(&d, "iot:Publish", &topic("my/topic/clientid1"), &ctx), Decision::ImplicitDeny);
    ctx.source_ip = Some("123.45.167.89".parse().unwrap());
    assert_eq!(decide(&d, "iot:Publish", &topic("my/topic/clientid1"), &ctx), Decision::Allow);
    assert_eq!(decide(&d, "iot:Publish", &topic("my/topic/other"), &ctx), Decision::ImplicitDeny);
    ctx.source_ip = Some("123.45.167.90".parse().unwrap());
    assert_eq!(decide(&d, "iot:Publish", &topic("my/topic/clientid1"), &ctx), Decision::ImplicitDeny);
}

/// Client-specific topic tree `topic/${iot:ClientId}/*`; a client id containing `*` stays literal.
#[test]
fn client_specific_topic_tree() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish",
        "Resource":"arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/*"}]}"#);
    let ctx = Context::new("dev1", 0);
    assert!(decide(&d, "iot:Publish", &topic("dev1/a/b"), &ctx).is_allowed());
    assert!(!decide(&d, "iot:Publish", &topic("dev2/a"), &ctx).is_allowed());
    assert!(!decide(&d, "iot:Subscribe", &topic("dev1/a"), &ctx).is_allowed());
    let sneaky = Context::new("*", 0);
    assert!(!decide(&d, "iot:Publish", &topic("dev1/a"), &sneaky).is_allowed());
    assert!(decide(&d, "iot:Publish", &topic("*/a"), &sneaky).is_allowed());
}

/// connect-policy.html: deny two client ids, allow the attached thing's name.
#[test]
fn deny_overrides_thing_name_connect() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Deny","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/client1",
            "arn:aws:iot:us-east-1:123456789012:client/client2"]},
        {"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"],
         "Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}}]}"#);
    let attrs = BTreeMap::new();
    let ctx = with_thing(Context::new("thing-a", 0), "thing-a", &attrs);
    assert_eq!(decide(&d, "iot:Connect", &client("thing-a"), &ctx), Decision::Allow);
    assert_eq!(decide(&d, "iot:Connect", &client("thing-b"), &ctx), Decision::ImplicitDeny);
    // Even a thing named client1 is refused: the Deny wins.
    let ctx1 = with_thing(Context::new("client1", 0), "client1", &attrs);
    let e = evaluate_explained([&d], "iot:Connect", &client("client1"), &ctx1);
    assert_eq!(e.decision, Decision::ExplicitDeny);
    assert_eq!(e.statement, Some(StatementRef { document: 0, statement: 0 }));
    // No attached thing: the variable cannot resolve, so nothing is allowed.
    let bare = Context::new("thing-a", 0);
    assert_eq!(decide(&d, "iot:Connect", &client("thing-a"), &bare), Decision::ImplicitDeny);
}

/// thing-policy-examples.html: IsAttached-gated connect to any resource.
#[test]
fn is_attached_connect() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":["*"],
        "Condition":{"Bool":{"iot:Connection.Thing.IsAttached":["true"]}}}]}"#);
    let attrs = BTreeMap::new();
    assert!(decide(&d, "iot:Connect", &client("x"), &with_thing(Context::new("x", 0), "x", &attrs)).is_allowed());
    assert!(!decide(&d, "iot:Connect", &client("x"), &Context::new("x", 0)).is_allowed());
}

/// thing-policy-examples.html: thing type and attribute conditions.
#[test]
fn thing_type_and_attribute_conditions() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Publish"],
        "Resource":"arn:aws:iot:us-east-1:123456789012:topic/device/stats",
        "Condition":{"StringEquals":{"iot:Connection.Thing.Attributes[attributeName]":"attributeValue",
            "iot:Connection.Thing.ThingTypeName":"Thing_Type_Name"},
            "Bool":{"iot:Connection.Thing.IsAttached":"true"}}}]}"#);
    let mut attrs = BTreeMap::new();
    attrs.insert("attributeName".to_string(), "attributeValue".to_string());
    let base = with_thing(Context::new("t", 0), "t", &attrs);
    let typed = Context {
        thing: Some(ThingContext { name: "t", type_name: Some("Thing_Type_Name"), attributes: &attrs }),
        ..base
    };
    assert!(decide(&d, "iot:Publish", &topic("device/stats"), &typed).is_allowed());
    // Missing thing type: the StringEquals key is absent, so the condition is false.
    assert!(!decide(&d, "iot:Publish", &topic("device/stats"), &base).is_allowed());
    let other = BTreeMap::from([("attributeName".to_string(), "nope".to_string())]);
    let wrong = Context {
        thing: Some(ThingContext { name: "t", type_name: Some("Thing_Type_Name"), attributes: &other }),
        ..base
    };
    assert!(!decide(&d, "iot:Publish", &topic("device/stats"), &wrong).is_allowed());
}

/// thing-policy-examples.html: topic prefixed by an attribute; unresolved without a thing.
#[test]
fn attribute_variable_in_resource() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Publish"],
        "Resource":"arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.Attributes[attributeName]}/*"}]}"#);
    let attrs = BTreeMap::from([("attributeName".to_string(), "floor-3".to_string())]);
    let ctx = with_thing(Context::new("t", 0), "t", &attrs);
    assert!(decide(&d, "iot:Publish", &topic("floor-3/temp"), &ctx).is_allowed());
    assert!(!decide(&d, "iot:Publish", &topic("floor-4/temp"), &ctx).is_allowed());
    // "If the device certificate is not associated with the thing, this variable won't be resolved".
    assert_eq!(decide(&d, "iot:Publish", &topic("floor-3/temp"), &Context::new("t", 0)), Decision::ImplicitDeny);
    // Thing without that attribute: same.
    let none = BTreeMap::new();
    assert!(!decide(&d, "iot:Publish", &topic("/temp"), &with_thing(Context::new("t", 0), "t", &none)).is_allowed());
}

/// retained-message-policy-examples.html: connect plus Publish/RetainPublish on one topic, and the
/// Will-message variant gated by `ForAllValues:StringEquals` on `iot:ConnectAttributes`.
#[test]
fn retained_messages() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/device1"]},
        {"Effect":"Allow","Action":["iot:Publish","iot:RetainPublish"],
         "Resource":["arn:aws:iot:us-east-1:123456789012:topic/device/sample/configuration"]}]}"#);
    let ctx = Context::new("device1", 0);
    assert!(decide(&d, "iot:RetainPublish", &topic("device/sample/configuration"), &ctx).is_allowed());
    assert!(decide(&d, "iot:Publish", &topic("device/sample/configuration"), &ctx).is_allowed());
    assert!(!decide(&d, "iot:RetainPublish", &topic("device/sample/other"), &ctx).is_allowed());

    let will = doc(r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/device1"],
         "Condition":{"ForAllValues:StringEquals":{"iot:ConnectAttributes":["LastWill"]}}},
        {"Effect":"Allow","Action":["iot:Publish","iot:RetainPublish"],"Resource":["arn:aws:iot:us-east-1:123456789012:topic/will"]}]}"#);
    let only_will = BTreeMap::from([("iot:ConnectAttributes".to_string(), vec!["LastWill".to_string()])]);
    let both = BTreeMap::from([(
        "iot:ConnectAttributes".to_string(),
        vec!["LastWill".to_string(), "PersistentConnect".to_string()],
    )]);
    assert!(decide(&will, "iot:Connect", &client("device1"), &Context { extra: &only_will, ..ctx }).is_allowed());
    assert!(!decide(&will, "iot:Connect", &client("device1"), &Context { extra: &both, ..ctx }).is_allowed());
    // ForAllValues with no attributes at all is vacuously true.
    assert!(decide(&will, "iot:Connect", &client("device1"), &ctx).is_allowed());
}

/// pub-sub-policy.html: `+` and `#` are literal in topicfilter resources; `*` spans levels.
#[test]
fn subscribe_topic_filters_with_literal_mqtt_wildcards() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Subscribe"],"Resource":[
        "arn:aws:iot:us-east-1:123456789012:topicfilter/some/+/topic",
        "arn:aws:iot:us-east-1:123456789012:topicfilter/all/#",
        "arn:aws:iot:us-east-1:123456789012:topicfilter/star/*/topic",
        "arn:aws:iot:us-east-1:123456789012:topicfilter/one/?/topic"]}]}"#);
    let ctx = Context::new("c", 0);
    let tf = |f: &str| format!("{ARN}:topicfilter/{f}");
    assert!(decide(&d, "iot:Subscribe", &tf("some/+/topic"), &ctx).is_allowed());
    assert!(!decide(&d, "iot:Subscribe", &tf("some/x/topic"), &ctx).is_allowed());
    assert!(decide(&d, "iot:Subscribe", &tf("all/#"), &ctx).is_allowed());
    assert!(!decide(&d, "iot:Subscribe", &tf("all/x"), &ctx).is_allowed());
    assert!(decide(&d, "iot:Subscribe", &tf("star/a/b/topic"), &ctx).is_allowed());
    assert!(decide(&d, "iot:Subscribe", &tf("star/+/topic"), &ctx).is_allowed());
    assert!(decide(&d, "iot:Subscribe", &tf("one/x/topic"), &ctx).is_allowed());
    assert!(!decide(&d, "iot:Subscribe", &tf("one/xy/topic"), &ctx).is_allowed());
    // The topicfilter resource does not cover topic ARNs.
    assert!(!decide(&d, "iot:Subscribe", &topic("all/#"), &ctx).is_allowed());
}

/// `${*}`, `${?}` and `${$}` are literal characters, not wildcards.
#[test]
fn escaped_special_characters() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish",
        "Resource":"arn:aws:iot:us-east-1:123456789012:topic/odd/${*}/${?}/${$}aws"}]}"#);
    let ctx = Context::new("c", 0);
    assert!(decide(&d, "iot:Publish", &topic("odd/*/?/$aws"), &ctx).is_allowed());
    assert!(!decide(&d, "iot:Publish", &topic("odd/x/y/$aws"), &ctx).is_allowed());
}

#[test]
fn not_action_and_not_resource() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","NotAction":"iot:Connect","NotResource":"arn:aws:iot:us-east-1:123456789012:topic/secret/*"},
        {"Effect":"Deny","Action":"iot:Publish","NotResource":"arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/*"}]}"#);
    let ctx = Context::new("me", 0);
    assert_eq!(decide(&d, "iot:Subscribe", &topic("open/x"), &ctx), Decision::Allow);
    assert_eq!(decide(&d, "iot:Subscribe", &topic("secret/x"), &ctx), Decision::ImplicitDeny);
    assert_eq!(decide(&d, "iot:Connect", &client("me"), &ctx), Decision::ImplicitDeny);
    assert_eq!(decide(&d, "iot:Publish", &topic("me/x"), &ctx), Decision::Allow);
    assert_eq!(decide(&d, "iot:Publish", &topic("you/x"), &ctx), Decision::ExplicitDeny);
    assert_eq!(decide(&d, "IOT:publish", &topic("you/x"), &ctx), Decision::ExplicitDeny);
}

/// A NotResource entry whose variable cannot resolve makes the statement inapplicable.
#[test]
fn not_resource_with_unresolved_variable() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish",
        "NotResource":"arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}"}]}"#);
    assert_eq!(decide(&d, "iot:Publish", &topic("x"), &Context::new("c", 0)), Decision::ImplicitDeny);
    let attrs = BTreeMap::new();
    let ctx = with_thing(Context::new("c", 0), "t", &attrs);
    assert_eq!(decide(&d, "iot:Publish", &topic("x"), &ctx), Decision::Allow);
    assert_eq!(decide(&d, "iot:Publish", &topic("t"), &ctx), Decision::ImplicitDeny);
}

#[test]
fn deny_in_one_document_overrides_allow_in_another() {
    let allow = doc(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#);
    let deny = doc(r#"{"Version":"2012-10-17","Statement":[{"Sid":"x","Effect":"Deny","Action":"iot:Publish",
        "Resource":"arn:aws:iot:us-east-1:123456789012:topic/$aws/*"}]}"#);
    let ctx = Context::new("c", 0);
    let e = evaluate_explained([&allow, &deny], "iot:Publish", &topic("$aws/things/x"), &ctx);
    assert_eq!(
        e,
        Explanation { decision: Decision::ExplicitDeny, statement: Some(StatementRef { document: 1, statement: 0 }) }
    );
    let e = evaluate_explained([&allow, &deny], "iot:Publish", &topic("ok"), &ctx);
    assert_eq!(
        e,
        Explanation { decision: Decision::Allow, statement: Some(StatementRef { document: 0, statement: 0 }) }
    );
    let e = evaluate_explained(std::iter::empty(), "iot:Publish", &topic("ok"), &ctx);
    assert_eq!(e, Explanation { decision: Decision::ImplicitDeny, statement: None });
}

/// cert-policy-variables / use-policy-variables: certificate fields as variables and conditions.
#[test]
fn certificate_variables() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/${iot:Certificate.Subject.CommonName}"},
        {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/*",
         "Condition":{"ForAnyValue:StringLike":{"iot:Certificate.SubjectAlternativeName.DNSName":["*.example.com"]}}}]}"#);
    let cert = BTreeMap::from([
        ("Subject.CommonName".to_string(), vec!["LightBulb".to_string()]),
        ("SubjectAlternativeName.DNSName".to_string(), vec!["example.org".to_string(), "bulb.example.com".to_string()]),
    ]);
    let ctx = Context { certificate: Some(&cert), ..Context::new("LightBulb", 0) };
    assert!(decide(&d, "iot:Connect", &client("LightBulb"), &ctx).is_allowed());
    assert!(!decide(&d, "iot:Connect", &client("Other"), &ctx).is_allowed());
    assert!(decide(&d, "iot:Publish", &topic("a"), &ctx).is_allowed());
    assert!(!decide(&d, "iot:Connect", &client("LightBulb"), &Context::new("LightBulb", 0)).is_allowed());
}

#[test]
fn time_window_condition() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*",
        "Condition":{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"},"DateLessThan":{"aws:EpochTime":"1735689600"}}}]}"#);
    assert!(!decide(&d, "iot:Connect", "x", &Context::new("c", 1_700_000_000)).is_allowed());
    assert!(decide(&d, "iot:Connect", "x", &Context::new("c", 1_710_000_000)).is_allowed());
    assert!(!decide(&d, "iot:Connect", "x", &Context::new("c", 1_740_000_000)).is_allowed());
}

/// Under the default (2008-10-17) language `${iot:ClientId}` is a literal string, as in IAM.
#[test]
fn version_2008_does_not_substitute() {
    let d = doc(
        r#"{"Statement":{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}"}}"#,
    );
    let ctx = Context::new("dev", 0);
    assert!(!decide(&d, "iot:Publish", &topic("dev"), &ctx).is_allowed());
    assert!(decide(&d, "iot:Publish", &topic("${iot:ClientId}"), &ctx).is_allowed());
}

#[test]
fn extra_keys_drive_conditions() {
    let d = doc(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iot:Connect","Resource":"*",
        "Condition":{"StringNotEquals":{"iot:DomainName":"data.example.com"}}},
        {"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#);
    let good = BTreeMap::from([("iot:DomainName".to_string(), vec!["data.example.com".to_string()])]);
    let bad = BTreeMap::from([("iot:DomainName".to_string(), vec!["evil.example.com".to_string()])]);
    let ctx = Context::new("c", 0);
    assert_eq!(decide(&d, "iot:Connect", "x", &Context { extra: &good, ..ctx }), Decision::Allow);
    assert_eq!(decide(&d, "iot:Connect", "x", &Context { extra: &bad, ..ctx }), Decision::ExplicitDeny);
    // Missing key: negated operator is true, so the deny applies.
    assert_eq!(decide(&d, "iot:Connect", "x", &ctx), Decision::ExplicitDeny);
}
