//! Parsing a template body into a checked [`Template`], and evaluating it into a [`Plan`].
//!
//! Parsing resolves every name and checks every literal, so that evaluation can only fail
//! because of the parameter values a caller supplies (a missing value, a wrong type, a key
//! absent from a mapping, an index out of range).

use serde_json::{Map, Value};

use super::conditions::{self, Conditions};
use super::error::{Path, TemplateError};
use super::evaluate::Env;
use super::fields;
use super::intrinsic::{Compiler, Expr, Scope};
use super::parameters::{self, Parameters};
use super::plan::Plan;
use super::resources::Resources;

/// Longest template body accepted, in characters (AWS's limit on `templateBody`).
pub const MAX_TEMPLATE_CHARS: usize = 10_240;

/// Deepest nesting of arrays and objects accepted, so evaluation's recursion stays shallow.
pub const MAX_DEPTH: usize = 32;

const SECTIONS: [&str; 7] = [
    "AWSTemplateFormatVersion",
    "Description",
    "Parameters",
    "Mappings",
    "Conditions",
    "Resources",
    "DeviceConfiguration",
];

/// A provisioning template that passed every check possible without parameters; evaluate it
/// once per device (or per bulk-registration row) with [`Template::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parameters: Parameters,
    mappings: Map<String, Value>,
    conditions: Conditions,
    resources: Resources,
    device_configuration: Vec<(String, Expr)>,
}

/// Parses and validates a template body (the JSON text stored as `templateBody`).
pub fn parse(body: &str) -> Result<Template, TemplateError> {
    let subject = Path::root("template");
    let chars = body.chars().count();
    if chars > MAX_TEMPLATE_CHARS {
        return Err(subject.error(format_args!("{chars} characters is over the limit of {MAX_TEMPLATE_CHARS}")));
    }
    let value: Value =
        serde_json::from_str(body).map_err(|error| subject.error(format_args!("not valid JSON: {error}")))?;
    if fields::depth(&value) > MAX_DEPTH {
        return Err(subject.error(format_args!("nested deeper than {MAX_DEPTH} levels")));
    }
    let top = fields::object(&value, &subject)?;
    if let Some(section) = top.keys().find(|key| !SECTIONS.contains(&key.as_str())) {
        return Err(
            Path::root(section).error(format_args!("unknown template section (expected {})", SECTIONS.join(", ")))
        );
    }
    let parameters = parameters::parse(top.get("Parameters"))?;
    let mappings = mappings(top.get("Mappings"))?;
    let condition_names = conditions::names(top.get("Conditions"))?;
    let mut compiler =
        Compiler::new(Scope { parameters: &parameters, mappings: &mappings, conditions: &condition_names });
    let conditions = Conditions::compile(top.get("Conditions"), &mut compiler)?;
    let resources = Resources::compile(top.get("Resources"), &mut compiler)?;
    let device_configuration = device_configuration(top.get("DeviceConfiguration"), &mut compiler)?;
    Ok(Template { parameters, mappings, conditions, resources, device_configuration })
}

impl Template {
    /// The names declared in `Parameters`, sorted, so callers can say which values a template
    /// takes (pseudo parameters appear only when declared).
    pub fn parameter_names(&self) -> Vec<String> {
        self.parameters.keys().cloned().collect()
    }

    /// Resolves the template with the caller's parameter values (pseudo parameters included)
    /// into the resources to provision.
    pub fn evaluate(&self, parameters: &Map<String, Value>) -> Result<Plan, TemplateError> {
        let mut env = Env::new(&self.parameters, &self.mappings, parameters, self.conditions.len());
        self.conditions.evaluate(&mut env)?;
        let (thing, certificate, policy) = self.resources.evaluate(&mut env)?;
        let root = Path::root("DeviceConfiguration");
        let mut device_configuration = Map::new();
        for (key, expr) in &self.device_configuration {
            let value = env.value(expr, &root.key(key))?;
            device_configuration.insert(key.clone(), value);
        }
        Ok(Plan { thing, certificate, policy, device_configuration, parameters: env.into_used() })
    }
}

/// The `Mappings` section: map name → top-level key → second-level key → any literal value.
fn mappings(section: Option<&Value>) -> Result<Map<String, Value>, TemplateError> {
    let Some(section) = section else { return Ok(Map::new()) };
    let root = Path::root("Mappings");
    let maps = fields::object(section, &root)?;
    for (name, mapping) in maps {
        let path = root.key(name);
        for (key, entry) in fields::object(mapping, &path)? {
            fields::object(entry, &path.key(key))?;
        }
    }
    Ok(maps.clone())
}

/// The `DeviceConfiguration` section: an object whose values may use functions.
fn device_configuration(
    section: Option<&Value>,
    compiler: &mut Compiler,
) -> Result<Vec<(String, Expr)>, TemplateError> {
    let Some(section) = section else { return Ok(Vec::new()) };
    let root = Path::root("DeviceConfiguration");
    fields::object(section, &root)?
        .iter()
        .map(|(key, value)| Ok((key.clone(), compiler.expr(value, &root.key(key))?)))
        .collect()
}
