//! Where a dotted field's values are in an indexed document. The evaluator and the node (which
//! collects values for aggregations) both go through here, so they always agree.
//!
//! Rules: a field is a path of keys separated by `.`; an array anywhere on the path stands for
//! each of its elements (nested arrays too); a key may itself contain dots (AWS allows `.` in
//! attribute names), so `attributes.a.b` also finds `{"attributes": {"a.b": 1}}`. Only scalars
//! (strings, numbers, booleans) are values: `null` and objects are not. Walks are iterative, so
//! any document `serde_json` can hold is safe.

use serde_json::Value;

/// The values of the dotted `field` in `doc`, arrays flattened, in document order. Empty when
/// the field is absent, `null`, an object, or not a valid path (an empty segment).
pub fn field_values(doc: &Value, field: &str) -> Vec<Value> {
    let mut values = Vec::new();
    any_value(doc, field, &mut |value| {
        values.push(value.clone());
        false
    });
    values
}

/// Calls `test` on each value of `field` in `doc` until it returns true; whether it did.
pub(crate) fn any_value(doc: &Value, field: &str, test: &mut dyn FnMut(&Value) -> bool) -> bool {
    // Byte ranges of the segments, so a key spanning several segments is a slice of `field`.
    let mut segments = Vec::new();
    let mut start = 0;
    for (index, character) in field.char_indices().chain([(field.len(), '.')]) {
        if character == '.' {
            if index == start {
                return false;
            }
            segments.push((start, index));
            start = index + 1;
        }
    }
    let mut stack = vec![(doc, 0usize)];
    while let Some((value, next)) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.iter().rev().map(|item| (item, next))),
            Value::Object(map) if next < segments.len() => {
                let Some(&(key_start, _)) = segments.get(next) else { continue };
                let children = (next..segments.len()).filter_map(|last| {
                    let (_, key_end) = segments.get(last)?;
                    let child = map.get(field.get(key_start..*key_end)?)?;
                    Some((child, last + 1))
                });
                let children: Vec<_> = children.collect();
                stack.extend(children.into_iter().rev());
            }
            Value::Object(_) | Value::Null => {}
            scalar if next == segments.len() && test(scalar) => return true,
            _ => {}
        }
    }
    false
}

/// Calls `test` on every scalar anywhere in `doc` until it returns true; whether it did. This
/// is what a term without a field searches.
pub(crate) fn any_leaf(doc: &Value, test: &mut dyn FnMut(&Value) -> bool) -> bool {
    let mut stack = vec![doc];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(map) => {
                let children: Vec<_> = map.values().collect();
                stack.extend(children.into_iter().rev());
            }
            Value::Null => {}
            scalar if test(scalar) => return true,
            _ => {}
        }
    }
    false
}

/// The scalars of `values`, nested arrays flattened, `null`s and objects left out: what an
/// aggregation counts.
pub(crate) fn scalars(values: &[Value]) -> Vec<&Value> {
    let mut found = Vec::new();
    let mut stack: Vec<&Value> = values.iter().rev().collect();
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(_) | Value::Null => {}
            scalar => found.push(scalar),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrays_on_the_path_are_flattened_in_order() {
        let doc = json!({"a": [{"b": 1}, {"b": [2, [3]]}, {"c": 4}, {"b": null}, {"b": {"x": 5}}]});
        assert_eq!(field_values(&doc, "a.b"), vec![json!(1), json!(2), json!(3)]);
    }

    #[test]
    fn keys_with_dots_are_found_as_well_as_nested_keys() {
        let doc = json!({"attributes": {"a.b": "dotted", "a": {"b": "nested"}}});
        assert_eq!(field_values(&doc, "attributes.a.b"), vec![json!("nested"), json!("dotted")]);
    }

    #[test]
    fn absent_fields_objects_and_bad_paths_have_no_values() {
        let doc = json!({"a": {"b": 1}, "c": "x"});
        for field in ["a", "a.c", "c.d", "", "a..b", ".a", "a."] {
            assert!(field_values(&doc, field).is_empty(), "{field}");
        }
    }

    #[test]
    fn scalars_flatten_and_skip_nulls_and_objects() {
        let values = [json!([1, [2]]), json!(null), json!({"a": 1}), json!("x")];
        assert_eq!(scalars(&values), vec![&json!(1), &json!(2), &json!("x")]);
    }

    #[test]
    fn leaves_are_every_scalar() {
        let doc = json!({"a": [1, {"b": "x"}], "c": null, "d": true});
        let mut seen = Vec::new();
        any_leaf(&doc, &mut |value| {
            seen.push(value.clone());
            false
        });
        assert_eq!(seen, vec![json!(1), json!("x"), json!(true)]);
    }
}
