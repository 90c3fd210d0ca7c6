//! Behaviour of whole templates through the public API: AWS's documented template shapes,
//! evaluation semantics, refusals with their messages, and never panicking on any input.

mod errors;
mod examples;
mod never_panics;
mod semantics;

use serde_json::{Map, Value};

use super::{parse, Plan, TemplateError};

/// A parameter map from a JSON object literal.
fn params(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("parameters must be an object, not {other}"),
    }
}

/// Parses `body` (a JSON value) and evaluates it with `given`.
fn run(body: &Value, given: Value) -> Result<Plan, TemplateError> {
    parse(&body.to_string())?.evaluate(&params(given))
}

/// The parse error for `body`.
fn refused(body: &Value) -> String {
    match parse(&body.to_string()) {
        Ok(template) => panic!("expected a parse error, got {template:?}"),
        Err(error) => error.message,
    }
}

/// A template with one thing whose properties are `properties`.
fn thing_with(properties: Value) -> Value {
    serde_json::json!({
        "Parameters": {"P": {"Type": "String"}, "N": {"Type": "Number", "Default": 7}},
        "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": properties}}
    })
}
