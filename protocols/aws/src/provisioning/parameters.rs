//! The `Parameters` section and parameter look-up: what a `Ref` or `${Name}` resolves to.
//!
//! Values come from the caller (a device's fleet-provisioning request, a bulk-registration row,
//! the certificate's subject for JITP) and are untrusted: they are type-checked against the
//! declaration on every look-up, and only strings and numbers are ever accepted.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{Path, TemplateError};
use super::fields::{self, kind_of};

/// Names a template may `Ref` without declaring them; the caller supplies their values (from the
/// device certificate) in the parameter map like any other.
pub const PSEUDO_PARAMETERS: [&str; 16] = [
    "AWS::IoT::Certificate::Id",
    "AWS::IoT::Certificate::CommonName",
    "AWS::IoT::Certificate::Country",
    "AWS::IoT::Certificate::Organization",
    "AWS::IoT::Certificate::OrganizationalUnit",
    "AWS::IoT::Certificate::DistinguishedNameQualifier",
    "AWS::IoT::Certificate::StateName",
    "AWS::IoT::Certificate::Locality",
    "AWS::IoT::Certificate::Title",
    "AWS::IoT::Certificate::Surname",
    "AWS::IoT::Certificate::GivenName",
    "AWS::IoT::Certificate::Initials",
    "AWS::IoT::Certificate::Pseudonym",
    "AWS::IoT::Certificate::GenerationQualifier",
    "AWS::IoT::Certificate::SerialNumber",
    "AWS::IoT::Certificate::SubjectAlternativeName",
];

/// Whether `name` is one of [`PSEUDO_PARAMETERS`].
pub(crate) fn is_pseudo(name: &str) -> bool {
    PSEUDO_PARAMETERS.contains(&name)
}

/// A parameter's declared `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `String`: strings, and numbers (used as their text).
    String,
    /// `Number`: JSON numbers, and strings holding decimal number text (APIs send strings).
    Number,
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parameter {
    pub(crate) kind: Kind,
    pub(crate) default: Option<Value>,
}

/// Declared parameters by name.
pub(crate) type Parameters = BTreeMap<String, Parameter>;

/// Parses the optional `Parameters` section. Only `Type`, `Default` and `Description` are
/// accepted: silently ignoring a constraint such as `AllowedValues` would accept values the
/// author meant to refuse.
pub(crate) fn parse(section: Option<&Value>) -> Result<Parameters, TemplateError> {
    let mut parameters = Parameters::new();
    let Some(section) = section else { return Ok(parameters) };
    let root = Path::root("Parameters");
    for (name, declaration) in fields::object(section, &root)? {
        let path = root.key(name);
        if name.is_empty() {
            return Err(path.error("a parameter name cannot be empty"));
        }
        let declaration = fields::object(declaration, &path)?;
        fields::only_keys(declaration, &["Type", "Default", "Description"], &path)?;
        let type_path = path.key("Type");
        let kind = match declaration.get("Type") {
            None => return Err(path.error("Type is required (String or Number)")),
            Some(kind) => match fields::string(kind, &type_path)? {
                "String" => Kind::String,
                "Number" => Kind::Number,
                other => return Err(type_path.error(format_args!("unsupported Type \"{other}\" (String or Number)"))),
            },
        };
        let default = declaration.get("Default").cloned();
        if let Some(value) = &default {
            check(kind, value).map_err(|reason| path.key("Default").error(reason))?;
        }
        parameters.insert(name.clone(), Parameter { kind, default });
    }
    Ok(parameters)
}

/// Whether a `Ref` to `name` can be resolved at all.
pub(crate) fn is_known(parameters: &Parameters, name: &str) -> bool {
    parameters.contains_key(name) || is_pseudo(name)
}

/// The value of parameter `name`: the caller's, else the declared `Default`. `path` is where it
/// is referenced, for the error.
pub(crate) fn resolve(
    parameters: &Parameters,
    given: &Map<String, Value>,
    name: &str,
    path: &Path,
) -> Result<Value, TemplateError> {
    let declared = parameters.get(name);
    let kind = declared.map_or(Kind::String, |p| p.kind);
    let value = match (given.get(name), declared.and_then(|p| p.default.as_ref())) {
        (Some(value), _) | (None, Some(value)) => value,
        (None, None) => return Err(path.error(format_args!("Parameter \"{name}\" has no value and no Default"))),
    };
    check(kind, value).map_err(|reason| path.error(format_args!("Parameter \"{name}\" {reason}")))?;
    Ok(value.clone())
}

/// Whether `value` fits a parameter of type `kind`; the reason when it does not.
fn check(kind: Kind, value: &Value) -> Result<(), String> {
    match (kind, value) {
        (Kind::String, Value::String(_) | Value::Number(_)) | (Kind::Number, Value::Number(_)) => Ok(()),
        (Kind::Number, Value::String(text)) if is_number_text(text) => Ok(()),
        (Kind::Number, Value::String(text)) => Err(format!("must be a number, found \"{text}\"")),
        (Kind::String, other) => Err(format!("must be a string, found {}", kind_of(other))),
        (Kind::Number, other) => Err(format!("must be a number, found {}", kind_of(other))),
    }
}

/// Decimal number text as APIs send it (`42`, `-0.5`, `0012`, `1e3`), finite; not `inf` or `NaN`.
fn is_number_text(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) && text.parse::<f64>().is_ok_and(f64::is_finite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared(section: Value) -> Result<Parameters, TemplateError> {
        parse(Some(&section))
    }

    #[test]
    fn given_value_wins_over_default() {
        let parameters = declared(json!({"Loc": {"Type": "String", "Default": "Seattle"}})).unwrap();
        let given = json!({"Loc": "Paris"});
        let value = resolve(&parameters, given.as_object().unwrap(), "Loc", &Path::root("x")).unwrap();
        assert_eq!(value, json!("Paris"));
        let value = resolve(&parameters, &Map::new(), "Loc", &Path::root("x")).unwrap();
        assert_eq!(value, json!("Seattle"));
    }

    #[test]
    fn missing_value_without_default_names_the_parameter() {
        let parameters = declared(json!({"Serial": {"Type": "String"}})).unwrap();
        let err = resolve(&parameters, &Map::new(), "Serial", &Path::root("Resources")).unwrap_err();
        assert_eq!(err.message, "Resources: Parameter \"Serial\" has no value and no Default");
    }

    #[test]
    fn number_parameters_accept_number_text_but_not_words() {
        let parameters = declared(json!({"N": {"Type": "Number"}})).unwrap();
        let ok = json!({"N": "42.5"});
        assert!(resolve(&parameters, ok.as_object().unwrap(), "N", &Path::root("x")).is_ok());
        for bad in [json!({"N": "NaN"}), json!({"N": "inf"}), json!({"N": " 4"}), json!({"N": [1]})] {
            assert!(resolve(&parameters, bad.as_object().unwrap(), "N", &Path::root("x")).is_err(), "{bad}");
        }
    }

    #[test]
    fn pseudo_parameters_resolve_without_declaration_and_must_be_text() {
        let given = json!({"AWS::IoT::Certificate::Id": "abc", "AWS::IoT::Certificate::Country": {"x": 1}});
        let given = given.as_object().unwrap();
        let id = resolve(&Parameters::new(), given, "AWS::IoT::Certificate::Id", &Path::root("x")).unwrap();
        assert_eq!(id, json!("abc"));
        assert!(resolve(&Parameters::new(), given, "AWS::IoT::Certificate::Country", &Path::root("x")).is_err());
    }

    #[test]
    fn unknown_types_and_constraints_are_refused() {
        let err = declared(json!({"L": {"Type": "List<String>"}})).unwrap_err();
        assert_eq!(err.message, "Parameters.L.Type: unsupported Type \"List<String>\" (String or Number)");
        let err = declared(json!({"L": {"Type": "String", "AllowedValues": ["a"]}})).unwrap_err();
        assert!(err.message.starts_with("Parameters.L.AllowedValues: unknown key"), "{err}");
        let err = declared(json!({"L": {"Type": "Number", "Default": "many"}})).unwrap_err();
        assert_eq!(err.message, "Parameters.L.Default: must be a number, found \"many\"");
    }
}
