//! AWS IoT Core policy engine: parses, validates and evaluates IoT policy documents the way AWS
//! IoT Core does, so a broker can authorize CONNECT / PUBLISH / SUBSCRIBE / RECEIVE requests with
//! the same documents customers already use on AWS.
//!
//! ```
//! use ferrite_aws::policy::{evaluate, parse, Context, Decision};
//!
//! let doc = parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish",
//!     "Resource":"arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/*"}]}"#).unwrap();
//! let ctx = Context::new("sensor-1", 1_700_000_000);
//! let topic = "arn:aws:iot:us-east-1:123456789012:topic/sensor-1/temp";
//! assert_eq!(evaluate([&doc], "iot:Publish", topic, &ctx), Decision::Allow);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]
#![cfg_attr(not(test), deny(clippy::unreachable, clippy::todo, clippy::string_slice))]

pub mod conditions;
pub mod context;
pub mod document;
pub mod evaluate;
pub mod json;
pub mod matcher;
pub mod variables;

use std::collections::BTreeMap;

pub use conditions::{BaseOperator, Condition, ConditionValue, Operator, SetQualifier};
pub use context::{Context, ThingContext};
pub use document::{
    parse, ActionPattern, ActionSet, Effect, PolicyDocument, PolicyError, PolicyVersion, ResourceSet, Statement,
    MAX_POLICY_CHARS,
};
pub use evaluate::{evaluate, evaluate_explained, Decision, Explanation, StatementRef};
pub use variables::{Template, Variable};

/// Entry point for a `cargo fuzz` target: parses `data` as a policy and, when it is valid,
/// evaluates a handful of fixed requests against it. Must never panic on any input.
pub fn fuzz_policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let doc = match parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let attributes = BTreeMap::from([("floor".to_string(), "3".to_string()), ("*".to_string(), "?".to_string())]);
    let certificate = BTreeMap::from([
        ("Subject.CommonName".to_string(), vec!["dev-*".to_string()]),
        ("SubjectAlternativeName.DNSName".to_string(), vec!["a.example.com".to_string(), "b.example.com".to_string()]),
    ]);
    let extra = BTreeMap::from([("iot:ConnectAttributes".to_string(), vec!["LastWill".to_string()])]);
    let with_thing = Context {
        client_id: "dev-*",
        thing: Some(ThingContext { name: "dev-*", type_name: Some("sensor"), attributes: &attributes }),
        certificate: Some(&certificate),
        source_ip: "2001:db8::7".parse().ok(),
        now_epoch_s: 1_700_000_000,
        extra: &extra,
    };
    let bare = Context::new("", u64::MAX);
    let arn = "arn:aws:iot:us-east-1:123456789012";
    let requests = [
        ("iot:Connect", format!("{arn}:client/dev-*")),
        ("iot:Publish", format!("{arn}:topic/dev-*/telemetry")),
        ("iot:Subscribe", format!("{arn}:topicfilter/dev/+/#")),
        ("iot:Receive", format!("{arn}:topic/$aws/things/dev/shadow/update")),
        ("iot:RetainPublish", "*".to_string()),
    ];
    for ctx in [&with_thing, &bare] {
        for (action, resource) in &requests {
            let _ = evaluate_explained([&doc], action, resource, ctx);
        }
    }
}
