//! Evaluating compiled [`Expr`]s against the caller's parameters.
//!
//! Parameter values are untrusted and may be large (a CSR, a PEM), and a template can copy them
//! many times (`Fn::Join` of the same `Ref`, `Fn::Sub` repeating a name), so every copy of
//! caller text is charged against [`MAX_EVALUATED_BYTES`]: one provisioning request cannot make
//! the broker build megabytes of strings.

use serde_json::{Map, Value};

use super::error::{Path, TemplateError};
use super::fields::kind_of;
use super::intrinsic::{out_of_range, select_index, Expr};
use super::parameters::{self, Parameters};
use super::sub::Piece;

/// Most bytes of text one evaluation may build by copying parameters, joining and substituting.
pub const MAX_EVALUATED_BYTES: usize = 1 << 20;

/// The state of one evaluation: the parameters given, the condition values computed so far, the
/// parameters used and the text budget left.
pub(crate) struct Env<'t> {
    parameters: &'t Parameters,
    mappings: &'t Map<String, Value>,
    given: &'t Map<String, Value>,
    conditions: Vec<Option<bool>>,
    used: Map<String, Value>,
    budget: usize,
}

impl<'t> Env<'t> {
    /// A fresh evaluation with `conditions` conditions not yet computed.
    pub(crate) fn new(
        parameters: &'t Parameters,
        mappings: &'t Map<String, Value>,
        given: &'t Map<String, Value>,
        conditions: usize,
    ) -> Env<'t> {
        Env {
            parameters,
            mappings,
            given,
            conditions: vec![None; conditions],
            used: Map::new(),
            budget: MAX_EVALUATED_BYTES,
        }
    }

    /// The parameters looked up so far, with the values used.
    pub(crate) fn into_used(self) -> Map<String, Value> {
        self.used
    }

    /// The value of an already computed condition.
    pub(crate) fn condition(&self, index: usize, path: &Path) -> Result<bool, TemplateError> {
        self.conditions
            .get(index)
            .copied()
            .flatten()
            .ok_or_else(|| path.error("condition used before it was evaluated"))
    }

    /// Records a condition's value.
    pub(crate) fn set_condition(&mut self, index: usize, value: bool) {
        if let Some(slot) = self.conditions.get_mut(index) {
            *slot = Some(value);
        }
    }

    fn parameter(&mut self, name: &str, path: &Path) -> Result<Value, TemplateError> {
        let value = parameters::resolve(self.parameters, self.given, name, path)?;
        self.charge(value.as_str().map_or(0, str::len), path)?;
        self.used.insert(name.to_string(), value.clone());
        Ok(value)
    }

    fn charge(&mut self, bytes: usize, path: &Path) -> Result<(), TemplateError> {
        self.budget = self.budget.checked_sub(bytes).ok_or_else(|| {
            path.error(format_args!("evaluation builds more than {MAX_EVALUATED_BYTES} bytes of text"))
        })?;
        Ok(())
    }

    /// Evaluates any expression.
    pub(crate) fn value(&mut self, expr: &Expr, path: &Path) -> Result<Value, TemplateError> {
        match expr {
            Expr::Literal(value) => Ok(value.clone()),
            Expr::Array(items) => {
                let mut values = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    values.push(self.value(item, &path.index(index))?);
                }
                Ok(Value::Array(values))
            }
            Expr::Object(members) => {
                let mut map = Map::new();
                for (key, item) in members {
                    let value = self.value(item, &path.key(key))?;
                    map.insert(key.clone(), value);
                }
                Ok(Value::Object(map))
            }
            Expr::Ref(name) => self.parameter(name, path),
            Expr::Join(delimiter, items) => {
                let at = path.key("Fn::Join");
                let delimiter = self.text(delimiter, &at.index(0))?;
                let items = self.text_list(items, &at.index(1))?;
                let delimiters = delimiter.len().saturating_mul(items.len().saturating_sub(1));
                self.charge(items.iter().fold(delimiters, |total, item| total.saturating_add(item.len())), path)?;
                Ok(Value::String(items.join(&delimiter)))
            }
            Expr::Select(index, list) => {
                let at = path.key("Fn::Select");
                let index_value = self.value(index, &at.index(0))?;
                let Some(index) = select_index(&index_value) else {
                    return Err(at.index(0).error(format_args!(
                        "Fn::Select index must be a non-negative integer, found {}",
                        kind_of(&index_value)
                    )));
                };
                let items = self.list(list, &at.index(1))?;
                let length = items.len();
                items.into_iter().nth(index).ok_or_else(|| path.error(out_of_range(index, length)))
            }
            Expr::Split(delimiter, source) => {
                let at = path.key("Fn::Split");
                let delimiter = self.text(delimiter, &at.index(0))?;
                if delimiter.is_empty() {
                    return Err(at.index(0).error("Fn::Split delimiter cannot be empty"));
                }
                let source = self.text(source, &at.index(1))?;
                // Each item also costs a `Value` and a `String` header, charged as 32 bytes.
                let parts = source.matches(delimiter.as_str()).count().saturating_add(1);
                self.charge(source.len().saturating_add(parts.saturating_mul(32)), path)?;
                Ok(Value::Array(source.split(&delimiter).map(|part| Value::String(part.to_string())).collect()))
            }
            Expr::Sub(pieces, variables) => self.sub(pieces, variables, path),
            Expr::FindInMap(keys) => {
                let at = path.key("Fn::FindInMap");
                let [map, top, second] = keys.as_ref();
                let map = self.text(map, &at.index(0))?;
                let top = self.text(top, &at.index(1))?;
                let second = self.text(second, &at.index(2))?;
                let mapping = self
                    .mappings
                    .get(&map)
                    .ok_or_else(|| path.error(format_args!("Fn::FindInMap: unknown mapping \"{map}\"")))?;
                let entry = mapping
                    .get(&top)
                    .ok_or_else(|| path.error(format_args!("Fn::FindInMap: mapping \"{map}\" has no key \"{top}\"")))?;
                let value = entry.get(&second).ok_or_else(|| {
                    path.error(format_args!("Fn::FindInMap: mapping \"{map}\" has no key \"{second}\" under \"{top}\""))
                })?;
                Ok(value.clone())
            }
            Expr::If(condition, then, otherwise) => {
                let at = path.key("Fn::If");
                if self.condition(*condition, &at.index(0))? {
                    self.value(then, &at.index(1))
                } else {
                    self.value(otherwise, &at.index(2))
                }
            }
        }
    }

    fn sub(&mut self, pieces: &[Piece], variables: &[(String, Expr)], path: &Path) -> Result<Value, TemplateError> {
        let at = path.key("Fn::Sub");
        let at_variables = at.index(1);
        let mut values = Vec::with_capacity(variables.len());
        for (name, expr) in variables {
            values.push((name.as_str(), self.text(expr, &at_variables.key(name))?));
        }
        let mut out = String::new();
        for piece in pieces {
            let looked_up;
            let text = match piece {
                Piece::Text(text) => text.as_str(),
                Piece::Name(name) => match values.iter().find(|(variable, _)| variable == name) {
                    Some((_, value)) => value.as_str(),
                    None => {
                        looked_up = into_text(self.parameter(name, path)?, path)?;
                        looked_up.as_str()
                    }
                },
            };
            self.charge(text.len(), path)?;
            out.push_str(text);
        }
        Ok(Value::String(out))
    }

    /// Evaluates an expression used as text (see [`into_text`]).
    pub(crate) fn text(&mut self, expr: &Expr, path: &Path) -> Result<String, TemplateError> {
        let value = self.value(expr, path)?;
        into_text(value, path)
    }

    /// Evaluates an expression that must give a list.
    pub(crate) fn list(&mut self, expr: &Expr, path: &Path) -> Result<Vec<Value>, TemplateError> {
        match self.value(expr, path)? {
            Value::Array(items) => Ok(items),
            other => Err(path.error(format_args!("expected a list, found {}", kind_of(&other)))),
        }
    }

    /// Evaluates an expression that must give a list, each item used as text.
    pub(crate) fn text_list(&mut self, expr: &Expr, path: &Path) -> Result<Vec<String>, TemplateError> {
        let items = self.list(expr, path)?;
        items.into_iter().enumerate().map(|(index, item)| into_text(item, &path.index(index))).collect()
    }
}

/// A value used as text: strings as they are, numbers as their decimal text, booleans as
/// `true`/`false`; null, lists and objects are refused.
pub(crate) fn into_text(value: Value, path: &Path) -> Result<String, TemplateError> {
    match value {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        other => Err(path.error(format_args!("expected a string, found {}", kind_of(&other)))),
    }
}
