//! AWS IoT provisioning templates: the JSON bodies behind fleet provisioning, just-in-time
//! provisioning (JITP), `RegisterThing` and bulk registration.
//!
//! [`parse`] checks a body the way `CreateProvisioningTemplate` would (sections, resource types
//! and properties, intrinsic functions, names, condition cycles, size and depth limits);
//! [`Template::evaluate`] resolves it against one device's parameters into a [`Plan`]: the
//! thing, certificate and policy to provision and the device configuration to return. Nothing
//! here does I/O; the node carries out the plan.
//!
//! ```
//! use ferrite_aws::provisioning::parse;
//!
//! let template = parse(r#"{
//!     "Parameters": {"SerialNumber": {"Type": "String"}},
//!     "Resources": {"thing": {"Type": "AWS::IoT::Thing",
//!         "Properties": {"ThingName": {"Fn::Join": ["-", ["sensor", {"Ref": "SerialNumber"}]]}}}}
//! }"#).unwrap();
//! let parameters = serde_json::json!({"SerialNumber": "42"});
//! let plan = template.evaluate(parameters.as_object().unwrap()).unwrap();
//! assert_eq!(plan.thing.unwrap().thing_name, "sensor-42");
//! ```
//!
//! Pipeline: `template` reads the sections, `parameters`, `conditions` and the resource modules
//! (`thing`, `certificate`, `policy`) compile their parts with `intrinsic` into `Expr`s, and
//! `evaluate` runs those against the parameters. Untrusted input is bounded throughout: the
//! body by [`MAX_TEMPLATE_CHARS`] and [`MAX_DEPTH`], evaluation by [`MAX_EVALUATED_BYTES`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]
#![cfg_attr(not(test), deny(clippy::unreachable, clippy::todo, clippy::string_slice))]

mod certificate;
mod conditions;
mod error;
mod evaluate;
mod fields;
mod intrinsic;
mod parameters;
mod plan;
mod policy;
mod resources;
mod sub;
mod template;
mod thing;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use error::TemplateError;
pub use evaluate::MAX_EVALUATED_BYTES;
pub use parameters::PSEUDO_PARAMETERS;
pub use plan::{CertificatePlan, CertificateSource, Override, Plan, PolicyPlan, ThingOverrides, ThingPlan};
pub use template::{parse, Template, MAX_DEPTH, MAX_TEMPLATE_CHARS};

/// Entry point for a `cargo fuzz` target: parses `data` as a template and, when it is valid,
/// evaluates it with a small fixed parameter map and with none. Must never panic on any input.
pub fn fuzz_template(data: &[u8]) {
    let Ok(body) = std::str::from_utf8(data) else { return };
    match parse(body) {
        Ok(template) => {
            let _ = template.parameter_names();
            let _ = template.evaluate(&fuzz_parameters());
            let _ = template.evaluate(&Map::new());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// The parameters [`fuzz_template`] evaluates with: the names the documented examples use, a
/// number and a list-like string.
fn fuzz_parameters() -> Map<String, Value> {
    let pairs = [
        ("SerialNumber", Value::from("SN-0042")),
        ("DeviceLocation", Value::from("Seattle")),
        ("ThingName", Value::from("dev-1")),
        ("Count", Value::from(3)),
        ("Groups", Value::from("a,b,c")),
        ("AWS::IoT::Certificate::Id", Value::from("0123abcd")),
        ("AWS::IoT::Certificate::CommonName", Value::from("dev-1")),
        ("AWS::IoT::Certificate::Country", Value::from("US")),
    ];
    pairs.into_iter().map(|(name, value)| (name.to_string(), value)).collect()
}
