//! Reading the fixed parts of a template (sections, resource keys, property names) with errors
//! that name the path and what was expected, so each section parser stays a list of rules.

use serde_json::{Map, Value};

use super::error::{Path, TemplateError};

/// "a string", "a list", ...: a JSON value's type as it reads in a message.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The value as an object, or an error saying what it should have been.
pub(crate) fn object<'v>(value: &'v Value, path: &Path) -> Result<&'v Map<String, Value>, TemplateError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(path.error(format_args!("expected an object, found {}", kind_of(other)))),
    }
}

/// The value as a literal string (no intrinsics allowed here), or an error.
pub(crate) fn string<'v>(value: &'v Value, path: &Path) -> Result<&'v str, TemplateError> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(path.error(format_args!("expected a string, found {}", kind_of(other)))),
    }
}

/// Refuses any key of `map` outside `allowed`, naming the key and the accepted ones.
pub(crate) fn only_keys(map: &Map<String, Value>, allowed: &[&str], path: &Path) -> Result<(), TemplateError> {
    match map.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(path.key(key).error(format_args!("unknown key (expected {})", allowed.join(", ")))),
        None => Ok(()),
    }
}

/// How many arrays and objects lie above the deepest value inside `value` (a scalar or an empty
/// container is 0). Iterative, so it is safe on anything `serde_json` accepted.
pub(crate) fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, level + 1))),
            Value::Object(map) => stack.extend(map.values().map(|item| (item, level + 1))),
            _ => {}
        }
        deepest = deepest.max(level);
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_containers_not_scalars() {
        assert_eq!(depth(&json!("x")), 0);
        assert_eq!(depth(&json!([])), 0);
        assert_eq!(depth(&json!({"a": [1]})), 2);
        assert_eq!(depth(&json!([[[]], 1])), 2);
    }

    #[test]
    fn only_keys_names_the_stranger_and_the_expected_ones() {
        let map = json!({"Type": "String", "Nope": 1});
        let err =
            only_keys(map.as_object().unwrap(), &["Type", "Default"], &Path::root("Parameters").key("p")).unwrap_err();
        assert_eq!(err.message, "Parameters.p.Nope: unknown key (expected Type, Default)");
    }
}
