//! The `AWS::IoT::Thing` resource: `ThingName`, `AttributePayload`, `ThingTypeName`,
//! `ThingGroups` and its `OverrideSettings`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{Path, TemplateError};
use super::evaluate::{into_text, Env};
use super::fields::{self, kind_of};
use super::intrinsic::{Compiler, Expr, Want};
use super::plan::{Override, ThingOverrides, ThingPlan};

/// A thing's compiled properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThingSpec {
    name: Expr,
    attributes: Option<Expr>,
    thing_type: Option<Expr>,
    groups: Option<Expr>,
    overrides: ThingOverrides,
}

impl ThingSpec {
    /// Compiles `Properties` (at `path`) and `OverrideSettings` (of the resource at `resource`).
    pub(crate) fn compile(
        properties: &Map<String, Value>,
        override_settings: Option<&Value>,
        compiler: &mut Compiler,
        path: &Path,
        resource: &Path,
    ) -> Result<ThingSpec, TemplateError> {
        fields::only_keys(properties, &["ThingName", "AttributePayload", "ThingTypeName", "ThingGroups"], path)?;
        let mut optional = |key: &str, want: Want| {
            properties.get(key).map(|value| compiler.expect(value, want, &path.key(key))).transpose()
        };
        let attributes = optional("AttributePayload", Want::TextMap)?;
        let thing_type = optional("ThingTypeName", Want::Text)?;
        let groups = optional("ThingGroups", Want::TextList)?;
        let name = match properties.get("ThingName") {
            Some(name) => compiler.expect(name, Want::Text, &path.key("ThingName"))?,
            None => return Err(path.error("ThingName is required")),
        };
        let overrides = overrides(override_settings, &resource.key("OverrideSettings"))?;
        Ok(ThingSpec { name, attributes, thing_type, groups, overrides })
    }

    /// Resolves the properties (at `path`) into a [`ThingPlan`].
    pub(crate) fn evaluate(&self, env: &mut Env, path: &Path) -> Result<ThingPlan, TemplateError> {
        let thing_name = env.text(&self.name, &path.key("ThingName"))?;
        let mut attributes = BTreeMap::new();
        if let Some(expr) = &self.attributes {
            let at = path.key("AttributePayload");
            match env.value(expr, &at)? {
                Value::Object(map) => {
                    for (key, value) in map {
                        let text = into_text(value, &at.key(&key))?;
                        attributes.insert(key, text);
                    }
                }
                other => return Err(at.error(format_args!("expected an object of strings, found {}", kind_of(&other)))),
            }
        }
        let thing_type_name = match &self.thing_type {
            Some(expr) => Some(env.text(expr, &path.key("ThingTypeName"))?),
            None => None,
        };
        let thing_groups = match &self.groups {
            Some(expr) => env.text_list(expr, &path.key("ThingGroups"))?,
            None => Vec::new(),
        };
        Ok(ThingPlan { thing_name, attributes, thing_type_name, thing_groups, overrides: self.overrides })
    }
}

/// Reads `OverrideSettings`; a property it leaves out is `DO_NOTHING`.
fn overrides(settings: Option<&Value>, path: &Path) -> Result<ThingOverrides, TemplateError> {
    let mut overrides = ThingOverrides::default();
    let Some(settings) = settings else { return Ok(overrides) };
    let map = fields::object(settings, path)?;
    fields::only_keys(map, &["AttributePayload", "ThingTypeName", "ThingGroups"], path)?;
    for (key, setting) in map {
        let at = path.key(key);
        let name = fields::string(setting, &at)?;
        let Some(setting) = Override::from_name(name) else {
            return Err(at.error(format_args!("expected REPLACE, MERGE, FAIL or DO_NOTHING, found \"{name}\"")));
        };
        match key.as_str() {
            "AttributePayload" => overrides.attribute_payload = setting,
            "ThingGroups" => overrides.thing_groups = setting,
            _ if setting == Override::Merge => {
                return Err(at.error("MERGE does not apply to ThingTypeName (REPLACE, FAIL or DO_NOTHING)"))
            }
            _ => overrides.thing_type_name = setting,
        }
    }
    Ok(overrides)
}
