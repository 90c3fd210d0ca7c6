//! Intrinsic functions (`Ref`, `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::Sub`,
//! `Fn::FindInMap`, `Fn::If`) compiled from JSON into [`Expr`], checked as far as they can be
//! without parameters.
//!
//! An object with exactly one key that is `Ref` or starts with `Fn::` is a function call; any
//! other object is a literal whose values may themselves be calls. Compilation resolves every
//! name it can (parameters, mappings, conditions) and checks the shape of every literal
//! argument, so a template that parses only fails at evaluation because of a parameter value.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{Path, TemplateError};
use super::fields::kind_of;
use super::parameters::{self, Parameters};
use super::sub::{self, Piece};

/// A template value with its intrinsic functions compiled. Arrays and objects that contain no
/// function are kept as one [`Expr::Literal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// A value without functions.
    Literal(Value),
    /// An array with at least one function among its items.
    Array(Vec<Expr>),
    /// An object with at least one function among its values.
    Object(Vec<(String, Expr)>),
    /// `Ref`: a parameter (declared or pseudo).
    Ref(String),
    /// `Fn::Join`: delimiter, list.
    Join(Box<Expr>, Box<Expr>),
    /// `Fn::Select`: index, list.
    Select(Box<Expr>, Box<Expr>),
    /// `Fn::Split`: delimiter, string.
    Split(Box<Expr>, Box<Expr>),
    /// `Fn::Sub`: the text, and the variables of its list form.
    Sub(Vec<Piece>, Vec<(String, Expr)>),
    /// `Fn::FindInMap`: map name, top-level key, second-level key.
    FindInMap(Box<[Expr; 3]>),
    /// `Fn::If`: condition index, value if true, value if false.
    If(usize, Box<Expr>, Box<Expr>),
}

/// What a position in the template accepts, checked on literals at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// A scalar used as text.
    Text,
    /// A list whose items are used as text.
    TextList,
    /// A list of anything.
    List,
    /// An object whose values are used as text.
    TextMap,
}

impl Want {
    fn accepts(self, shape: Shape) -> bool {
        matches!(
            (self, shape),
            (Want::Text, Shape::Text) | (Want::TextList | Want::List, Shape::List) | (Want::TextMap, Shape::Object)
        )
    }

    fn describe(self) -> &'static str {
        match self {
            Want::Text => "a string",
            Want::TextList => "a list of strings",
            Want::List => "a list",
            Want::TextMap => "an object of strings",
        }
    }
}

/// The names a template declares, which compiled functions may refer to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'t> {
    pub(crate) parameters: &'t Parameters,
    pub(crate) mappings: &'t Map<String, Value>,
    pub(crate) conditions: &'t BTreeMap<String, usize>,
}

/// Compiles values within one [`Scope`], remembering which conditions they refer to (so the
/// `Conditions` section can be ordered and checked for cycles).
pub(crate) struct Compiler<'t> {
    scope: Scope<'t>,
    referenced: Vec<usize>,
}

impl<'t> Compiler<'t> {
    /// A compiler for values in `scope`.
    pub(crate) fn new(scope: Scope<'t>) -> Compiler<'t> {
        Compiler { scope, referenced: Vec::new() }
    }

    /// The conditions referred to since the last call.
    pub(crate) fn take_referenced(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.referenced)
    }

    /// Resolves a literal condition name (as in `Fn::If` or a resource's `Condition`).
    pub(crate) fn condition(&mut self, name: &Value, path: &Path) -> Result<usize, TemplateError> {
        let Value::String(name) = name else {
            return Err(path.error(format_args!("expected a condition name, found {}", kind_of(name))));
        };
        let index =
            *self.scope.conditions.get(name).ok_or_else(|| path.error(format_args!("unknown condition \"{name}\"")))?;
        self.referenced.push(index);
        Ok(index)
    }

    /// Compiles any template value.
    pub(crate) fn expr(&mut self, value: &Value, path: &Path) -> Result<Expr, TemplateError> {
        match value {
            Value::Array(items) => {
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.expr(item, &path.index(index)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(collapse_array(items))
            }
            Value::Object(map) => {
                if let (1, Some((name, args))) = (map.len(), map.iter().next()) {
                    if name == "Ref" || name.starts_with("Fn::") {
                        return self.function(name, args, path);
                    }
                }
                let members = map
                    .iter()
                    .map(|(key, item)| Ok((key.clone(), self.expr(item, &path.key(key))?)))
                    .collect::<Result<Vec<_>, TemplateError>>()?;
                Ok(collapse_object(members))
            }
            scalar => Ok(Expr::Literal(scalar.clone())),
        }
    }

    /// Compiles a value and checks that it can be what the position wants.
    pub(crate) fn expect(&mut self, value: &Value, want: Want, path: &Path) -> Result<Expr, TemplateError> {
        let expr = self.expr(value, path)?;
        expect(&expr, want, path)?;
        Ok(expr)
    }

    fn function(&mut self, name: &str, args: &Value, path: &Path) -> Result<Expr, TemplateError> {
        let at = path.key(name);
        match name {
            "Ref" => match args {
                Value::String(target) if parameters::is_known(self.scope.parameters, target) => {
                    Ok(Expr::Ref(target.clone()))
                }
                Value::String(target) => Err(path.error(format_args!("Ref to unknown parameter \"{target}\""))),
                other => Err(path.error(format_args!("Ref expects a parameter name, found {}", kind_of(other)))),
            },
            "Fn::Join" => {
                let [delimiter, items] = arguments(args, path, "Fn::Join expects [delimiter, [values...]]")?;
                let delimiter = self.expect(delimiter, Want::Text, &at.index(0))?;
                let items = self.expect(items, Want::TextList, &at.index(1))?;
                Ok(Expr::Join(Box::new(delimiter), Box::new(items)))
            }
            "Fn::Select" => self.select(args, path),
            "Fn::Split" => {
                let [delimiter, source] = arguments(args, path, "Fn::Split expects [delimiter, string]")?;
                let delimiter = self.expect(delimiter, Want::Text, &at.index(0))?;
                if literal_text(&delimiter).is_some_and(|d| d.is_empty()) {
                    return Err(at.index(0).error("Fn::Split delimiter cannot be empty"));
                }
                let source = self.expect(source, Want::Text, &at.index(1))?;
                Ok(Expr::Split(Box::new(delimiter), Box::new(source)))
            }
            "Fn::Sub" => self.sub(args, path),
            "Fn::FindInMap" => self.find_in_map(args, path),
            "Fn::If" => {
                let [condition, then, otherwise] =
                    arguments(args, path, "Fn::If expects [condition name, value if true, value if false]")?;
                let condition = self.condition(condition, &at.index(0))?;
                let then = self.expr(then, &at.index(1))?;
                let otherwise = self.expr(otherwise, &at.index(2))?;
                Ok(Expr::If(condition, Box::new(then), Box::new(otherwise)))
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" => {
                Err(path.error(format_args!("{name} can only be used in Conditions")))
            }
            other => Err(path.error(format_args!("unknown function \"{other}\""))),
        }
    }

    fn select(&mut self, args: &Value, path: &Path) -> Result<Expr, TemplateError> {
        let at = path.key("Fn::Select");
        let [index, list] = arguments(args, path, "Fn::Select expects [index, list]")?;
        let index = self.expect(index, Want::Text, &at.index(0))?;
        let list = self.expect(list, Want::List, &at.index(1))?;
        if let Expr::Literal(value) = &index {
            let Some(index) = select_index(value) else {
                return Err(at.index(0).error("Fn::Select index must be a non-negative integer"));
            };
            let length = match &list {
                Expr::Literal(Value::Array(items)) => Some(items.len()),
                Expr::Array(items) => Some(items.len()),
                _ => None,
            };
            if let Some(length) = length.filter(|length| index >= *length) {
                return Err(path.error(out_of_range(index, length)));
            }
        }
        Ok(Expr::Select(Box::new(index), Box::new(list)))
    }

    fn sub(&mut self, args: &Value, path: &Path) -> Result<Expr, TemplateError> {
        let at = path.key("Fn::Sub");
        let (text, variables) = match args {
            Value::String(text) => (text, None),
            Value::Array(items) => match items.as_slice() {
                [Value::String(text), Value::Object(variables)] => (text, Some(variables)),
                _ => return Err(path.error("Fn::Sub expects a string or [string, {variables}]")),
            },
            _ => return Err(path.error("Fn::Sub expects a string or [string, {variables}]")),
        };
        let mut compiled = Vec::new();
        if let Some(variables) = variables {
            let at_variables = at.index(1);
            for (name, value) in variables {
                compiled.push((name.clone(), self.expect(value, Want::Text, &at_variables.key(name))?));
            }
        }
        let pieces = sub::pieces(text).map_err(|reason| path.error(format_args!("Fn::Sub: {reason}")))?;
        for piece in &pieces {
            if let Piece::Name(name) = piece {
                let local = compiled.iter().any(|(variable, _)| variable == name);
                if !local && !parameters::is_known(self.scope.parameters, name) {
                    return Err(path.error(format_args!("Fn::Sub refers to unknown name \"{name}\"")));
                }
            }
        }
        Ok(Expr::Sub(pieces, compiled))
    }

    fn find_in_map(&mut self, args: &Value, path: &Path) -> Result<Expr, TemplateError> {
        let at = path.key("Fn::FindInMap");
        let [map, top, second] =
            arguments(args, path, "Fn::FindInMap expects [map name, top-level key, second-level key]")?;
        let map = self.expect(map, Want::Text, &at.index(0))?;
        let top = self.expect(top, Want::Text, &at.index(1))?;
        let second = self.expect(second, Want::Text, &at.index(2))?;
        if let Some(name) = literal_text(&map) {
            let Some(mapping) = self.scope.mappings.get(&name) else {
                return Err(at.index(0).error(format_args!("unknown mapping \"{name}\"")));
            };
            if let Some(key) = literal_text(&top) {
                let Some(entry) = mapping.get(&key) else {
                    return Err(at.index(1).error(format_args!("mapping \"{name}\" has no key \"{key}\"")));
                };
                if let Some(inner) = literal_text(&second).filter(|inner| entry.get(inner).is_none()) {
                    return Err(at
                        .index(2)
                        .error(format_args!("mapping \"{name}\" has no key \"{inner}\" under \"{key}\"")));
                }
            }
        }
        Ok(Expr::FindInMap(Box::new([map, top, second])))
    }
}

/// Checks, as far as possible without parameters, that `expr` evaluates to what `want` needs.
pub(crate) fn expect(expr: &Expr, want: Want, path: &Path) -> Result<(), TemplateError> {
    let found = match expr {
        Expr::If(_, then, otherwise) => {
            let at = path.key("Fn::If");
            expect(then, want, &at.index(1))?;
            return expect(otherwise, want, &at.index(2));
        }
        Expr::Select(..) | Expr::FindInMap(..) => return Ok(()),
        Expr::Ref(_) | Expr::Join(..) | Expr::Sub(..) => Shape::Text,
        Expr::Split(..) => Shape::List,
        Expr::Object(members) => {
            if want == Want::TextMap {
                for (key, item) in members {
                    expect(item, Want::Text, &path.key(key))?;
                }
            }
            Shape::Object
        }
        Expr::Array(items) => {
            if want == Want::TextList {
                for (index, item) in items.iter().enumerate() {
                    expect(item, Want::Text, &path.index(index))?;
                }
            }
            Shape::List
        }
        Expr::Literal(Value::Array(items)) if want == Want::TextList => {
            if let Some((index, item)) = items.iter().enumerate().find(|(_, item)| !is_text(item)) {
                return Err(path.index(index).error(not_text(item)));
            }
            Shape::List
        }
        Expr::Literal(Value::Object(map)) if want == Want::TextMap => {
            if let Some((key, item)) = map.iter().find(|(_, item)| !is_text(item)) {
                return Err(path.key(key).error(not_text(item)));
            }
            Shape::Object
        }
        Expr::Literal(value) => Shape::of(value),
    };
    if want.accepts(found) {
        Ok(())
    } else {
        Err(path.error(format_args!("expected {}, found {}", want.describe(), found.describe())))
    }
}

/// What an expression is known to give before evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Text,
    List,
    Object,
    Null,
}

impl Shape {
    fn of(value: &Value) -> Shape {
        match value {
            Value::Null => Shape::Null,
            Value::Array(_) => Shape::List,
            Value::Object(_) => Shape::Object,
            Value::Bool(_) | Value::Number(_) | Value::String(_) => Shape::Text,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Shape::Text => "a string",
            Shape::List => "a list",
            Shape::Object => "an object",
            Shape::Null => "null",
        }
    }
}

fn not_text(item: &Value) -> String {
    format!("expected a string, found {}", Shape::of(item).describe())
}

/// Whether a value can stand where text is wanted (strings, numbers and booleans can).
pub(crate) fn is_text(value: &Value) -> bool {
    Shape::of(value) == Shape::Text
}

/// A `Fn::Select` index: a non-negative integer, as a number or as its decimal text.
pub(crate) fn select_index(value: &Value) -> Option<usize> {
    match value {
        Value::Number(number) => number.as_u64().and_then(|index| usize::try_from(index).ok()),
        Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        _ => None,
    }
}

/// The message for a `Fn::Select` index past the end of its list.
pub(crate) fn out_of_range(index: usize, length: usize) -> String {
    format!("Fn::Select index {index} is out of range for a list of {length}")
}

/// The text of a literal scalar, for checks made at parse time.
fn literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(Value::String(text)) => Some(text.clone()),
        Expr::Literal(value @ (Value::Number(_) | Value::Bool(_))) => Some(value.to_string()),
        _ => None,
    }
}

/// The arguments of a function that takes exactly `N` of them, in a list.
fn arguments<'v, const N: usize>(args: &'v Value, path: &Path, expects: &str) -> Result<[&'v Value; N], TemplateError> {
    let refused = |found: &str| path.error(format_args!("{expects}, found {found}"));
    let Value::Array(items) = args else { return Err(refused(kind_of(args))) };
    let items: Vec<&Value> = items.iter().collect();
    let count = items.len();
    items.try_into().map_err(|_| refused(&format!("a list of {count}")))
}

fn collapse_array(items: Vec<Expr>) -> Expr {
    if items.iter().all(|item| matches!(item, Expr::Literal(_))) {
        let values = items.into_iter().filter_map(|item| if let Expr::Literal(v) = item { Some(v) } else { None });
        Expr::Literal(Value::Array(values.collect()))
    } else {
        Expr::Array(items)
    }
}

fn collapse_object(members: Vec<(String, Expr)>) -> Expr {
    if members.iter().all(|(_, item)| matches!(item, Expr::Literal(_))) {
        let values = members
            .into_iter()
            .filter_map(|(key, item)| if let Expr::Literal(v) = item { Some((key, v)) } else { None });
        Expr::Literal(Value::Object(values.collect()))
    } else {
        Expr::Object(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(value: Value) -> Result<Expr, TemplateError> {
        let parameters = Parameters::new();
        let (mappings, conditions) = (Map::new(), BTreeMap::new());
        let scope = Scope { parameters: &parameters, mappings: &mappings, conditions: &conditions };
        Compiler::new(scope).expr(&value, &Path::root("v"))
    }

    #[test]
    fn values_without_functions_stay_one_literal() {
        let value = json!({"a": [1, {"b": "c"}], "d": null});
        assert_eq!(compile(value.clone()).unwrap(), Expr::Literal(value));
    }

    #[test]
    fn only_a_single_key_object_is_a_function_call() {
        let value = json!({"Ref": "AWS::IoT::Certificate::Id", "other": 1});
        assert_eq!(compile(value.clone()).unwrap(), Expr::Literal(value));
        let call = compile(json!({"Ref": "AWS::IoT::Certificate::Id"})).unwrap();
        assert_eq!(call, Expr::Ref("AWS::IoT::Certificate::Id".to_string()));
    }

    #[test]
    fn select_indices_are_numbers_or_digit_strings() {
        assert_eq!(select_index(&json!(2)), Some(2));
        assert_eq!(select_index(&json!("2")), Some(2));
        for bad in [json!(-1), json!(1.5), json!("+1"), json!(""), json!("x"), json!(null)] {
            assert_eq!(select_index(&bad), None, "{bad}");
        }
    }
}
