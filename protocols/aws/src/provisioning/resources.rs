//! The `Resources` section: at most one thing, one certificate and one policy, each optionally
//! guarded by a condition. Each resource type's properties live in its own module.

use serde_json::Value;

use super::certificate::CertificateSpec;
use super::error::{Path, TemplateError};
use super::evaluate::Env;
use super::fields;
use super::intrinsic::Compiler;
use super::plan::{CertificatePlan, PolicyPlan, ThingPlan};
use super::policy::PolicySpec;
use super::thing::ThingSpec;

const THING: &str = "AWS::IoT::Thing";
const CERTIFICATE: &str = "AWS::IoT::Certificate";
const POLICY: &str = "AWS::IoT::Policy";

/// One declared resource: its logical id (for error paths), its condition and its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resource<S> {
    logical_id: String,
    condition: Option<usize>,
    spec: S,
}

impl<S> Resource<S> {
    /// Evaluates the resource with `evaluate` unless its condition is false.
    fn evaluate<P>(
        &self,
        env: &mut Env,
        evaluate: impl FnOnce(&S, &mut Env, &Path) -> Result<P, TemplateError>,
    ) -> Result<Option<P>, TemplateError> {
        let root = Path::root("Resources");
        let path = root.key(&self.logical_id);
        if let Some(condition) = self.condition {
            if !env.condition(condition, &path.key("Condition"))? {
                return Ok(None);
            }
        }
        evaluate(&self.spec, env, &path.key("Properties")).map(Some)
    }
}

/// The compiled `Resources` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resources {
    thing: Option<Resource<ThingSpec>>,
    certificate: Option<Resource<CertificateSpec>>,
    policy: Option<Resource<PolicySpec>>,
}

/// The three resource plans of one evaluation.
pub(crate) type Plans = (Option<ThingPlan>, Option<CertificatePlan>, Option<PolicyPlan>);

impl Resources {
    /// Compiles the (required, non-empty) `Resources` section.
    pub(crate) fn compile(section: Option<&Value>, compiler: &mut Compiler) -> Result<Resources, TemplateError> {
        let root = Path::root("Resources");
        let section = section.ok_or_else(|| root.error("the Resources section is required"))?;
        let map = fields::object(section, &root)?;
        if map.is_empty() {
            return Err(root.error("at least one resource is required"));
        }
        let mut resources = Resources { thing: None, certificate: None, policy: None };
        for (logical_id, body) in map {
            let path = root.key(logical_id);
            let body = fields::object(body, &path)?;
            fields::only_keys(body, &["Type", "Properties", "OverrideSettings", "Condition"], &path)?;
            let type_path = path.key("Type");
            let kind = match body.get("Type") {
                Some(kind) => fields::string(kind, &type_path)?,
                None => return Err(path.error(format_args!("Type is required ({THING}, {CERTIFICATE} or {POLICY})"))),
            };
            let condition = body.get("Condition").map(|name| compiler.condition(name, &path.key("Condition")));
            let condition = condition.transpose()?;
            let properties_path = path.key("Properties");
            let properties = match body.get("Properties") {
                Some(properties) => fields::object(properties, &properties_path)?,
                None => return Err(path.error("Properties is required")),
            };
            let override_settings = body.get("OverrideSettings");
            if override_settings.is_some() && kind != THING {
                return Err(path.key("OverrideSettings").error(format_args!("only an {THING} has OverrideSettings")));
            }
            let logical_id = logical_id.clone();
            match kind {
                THING => {
                    once(&resources.thing, kind, &type_path)?;
                    let spec = ThingSpec::compile(properties, override_settings, compiler, &properties_path, &path)?;
                    resources.thing = Some(Resource { logical_id, condition, spec });
                }
                CERTIFICATE => {
                    once(&resources.certificate, kind, &type_path)?;
                    let spec = CertificateSpec::compile(properties, compiler, &properties_path)?;
                    resources.certificate = Some(Resource { logical_id, condition, spec });
                }
                POLICY => {
                    once(&resources.policy, kind, &type_path)?;
                    let spec = PolicySpec::compile(properties, compiler, &properties_path)?;
                    resources.policy = Some(Resource { logical_id, condition, spec });
                }
                other => {
                    return Err(type_path.error(format_args!(
                        "unsupported resource type \"{other}\" ({THING}, {CERTIFICATE} or {POLICY})"
                    )))
                }
            }
        }
        Ok(resources)
    }

    /// Evaluates every resource whose condition holds.
    pub(crate) fn evaluate(&self, env: &mut Env) -> Result<Plans, TemplateError> {
        let thing = match &self.thing {
            Some(resource) => resource.evaluate(env, ThingSpec::evaluate)?,
            None => None,
        };
        let certificate = match &self.certificate {
            Some(resource) => resource.evaluate(env, CertificateSpec::evaluate)?,
            None => None,
        };
        let policy = match &self.policy {
            Some(resource) => resource.evaluate(env, PolicySpec::evaluate)?,
            None => None,
        };
        Ok((thing, certificate, policy))
    }
}

/// Refuses a second resource of a type that may appear once.
fn once<S>(slot: &Option<Resource<S>>, kind: &str, path: &Path) -> Result<(), TemplateError> {
    match slot {
        Some(first) => {
            Err(path
                .error(format_args!("a template can have only one {kind} (\"{}\" is one already)", first.logical_id)))
        }
        None => Ok(()),
    }
}
