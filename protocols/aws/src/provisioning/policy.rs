//! The `AWS::IoT::Policy` resource: exactly one of `PolicyName` (attach an existing policy) or
//! `PolicyDocument` (create one), the document written either as JSON text or as an object.

use serde_json::{Map, Value};

use super::error::{Path, TemplateError};
use super::evaluate::Env;
use super::fields::{self, kind_of};
use super::intrinsic::{Compiler, Expr, Want};
use super::plan::PolicyPlan;

/// A policy's compiled properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PolicySpec {
    Name(Expr),
    Document(Expr),
}

impl PolicySpec {
    /// Compiles `Properties` (at `path`); a literal document must already be a JSON object.
    pub(crate) fn compile(
        properties: &Map<String, Value>,
        compiler: &mut Compiler,
        path: &Path,
    ) -> Result<PolicySpec, TemplateError> {
        fields::only_keys(properties, &["PolicyName", "PolicyDocument"], path)?;
        match (properties.get("PolicyName"), properties.get("PolicyDocument")) {
            (Some(name), None) => Ok(PolicySpec::Name(compiler.expect(name, Want::Text, &path.key("PolicyName"))?)),
            (None, Some(document)) => {
                let at = path.key("PolicyDocument");
                let document = compiler.expr(document, &at)?;
                check_document(&document, &at)?;
                Ok(PolicySpec::Document(document))
            }
            (Some(_), Some(_)) => Err(path.error("PolicyName and PolicyDocument cannot both be given")),
            (None, None) => Err(path.error("one of PolicyName or PolicyDocument is required")),
        }
    }

    /// Resolves the properties (at `path`) into a [`PolicyPlan`].
    pub(crate) fn evaluate(&self, env: &mut Env, path: &Path) -> Result<PolicyPlan, TemplateError> {
        match self {
            PolicySpec::Name(name) => {
                Ok(PolicyPlan { name: Some(env.text(name, &path.key("PolicyName"))?), document: None })
            }
            PolicySpec::Document(document) => {
                let at = path.key("PolicyDocument");
                let document = match env.value(document, &at)? {
                    Value::String(text) => {
                        json_object(&text).map_err(|reason| at.error(reason))?;
                        text
                    }
                    Value::Object(map) => Value::Object(map).to_string(),
                    other => return Err(at.error(expected(&other))),
                };
                Ok(PolicyPlan { name: None, document: Some(document) })
            }
        }
    }
}

/// Checks what can be checked of a document before parameters are known.
fn check_document(document: &Expr, path: &Path) -> Result<(), TemplateError> {
    match document {
        Expr::Literal(Value::String(text)) => json_object(text).map_err(|reason| path.error(reason)),
        Expr::Literal(Value::Object(_)) | Expr::Object(_) => Ok(()),
        Expr::Literal(other) => Err(path.error(expected(other))),
        Expr::Array(_) | Expr::Split(..) => {
            Err(path.error("expected a policy document (JSON text or an object), found a list"))
        }
        Expr::If(_, then, otherwise) => {
            let at = path.key("Fn::If");
            check_document(then, &at.index(1))?;
            check_document(otherwise, &at.index(2))
        }
        Expr::Ref(_) | Expr::Join(..) | Expr::Sub(..) | Expr::Select(..) | Expr::FindInMap(..) => Ok(()),
    }
}

fn json_object(text: &str) -> Result<(), String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(_)) => Ok(()),
        Ok(other) => Err(format!("the policy document must be a JSON object, found {}", kind_of(&other))),
        Err(error) => Err(format!("the policy document is not valid JSON: {error}")),
    }
}

fn expected(found: &Value) -> String {
    format!("expected a policy document (JSON text or an object), found {}", kind_of(found))
}
