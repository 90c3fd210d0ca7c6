//! `GetCardinality` and `GetBucketsAggregation` (terms aggregation) over the values of the
//! aggregation field in the matching documents: one entry of `values` per document, an array
//! for a multi-valued field such as `thingGroupNames`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::values::scalars;

/// A value as a distinct thing: numbers by value (`1` and `1.0` are one), strings exactly
/// (case-sensitive), and a string never equal to a number or a boolean.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Distinct<'v> {
    Bool(bool),
    Number(u64),
    Text(&'v str),
}

fn distinct(value: &Value) -> Option<Distinct<'_>> {
    match value {
        Value::Bool(flag) => Some(Distinct::Bool(*flag)),
        // `+ 0.0` turns -0 into 0, so both count once.
        Value::Number(number) => number.as_f64().map(|number| Distinct::Number((number + 0.0).to_bits())),
        Value::String(text) => Some(Distinct::Text(text)),
        _ => None,
    }
}

/// `GetCardinality`: how many distinct values there are (AWS approximates; this is exact).
pub fn cardinality(values: &[Value]) -> u64 {
    scalars(values).into_iter().filter_map(distinct).collect::<BTreeSet<_>>().len() as u64
}

/// The `keyString` of a bucket: a string as is, a number as JSON writes it, `true`/`false`.
fn key_string(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// `GetBucketsAggregation` with a terms aggregation: `(keyString, count)` for the
/// `max_buckets` most frequent values, most frequent first, ties in key order. A document
/// counts once per bucket, however often its array holds the value.
pub fn buckets(values: &[Value], max_buckets: usize) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for document in values {
        let keys: BTreeSet<String> =
            scalars(std::slice::from_ref(document)).into_iter().filter_map(key_string).collect();
        for key in keys {
            *counts.entry(key).or_default() += 1;
        }
    }
    let mut buckets: Vec<(String, u64)> = counts.into_iter().collect();
    buckets.sort_by(|(left_key, left), (right_key, right)| right.cmp(left).then_with(|| left_key.cmp(right_key)));
    buckets.truncate(max_buckets);
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cardinality_counts_distinct_values_exactly() {
        let values = [json!("a"), json!("A"), json!(["a", "b"]), json!(1), json!(1.0), json!(-0.0), json!(0)];
        assert_eq!(cardinality(&values), 5);
        assert_eq!(cardinality(&[json!(null), json!({"a": 1})]), 0);
    }

    #[test]
    fn buckets_are_most_frequent_first_then_by_key() {
        let values = [json!(["b", "a", "a"]), json!("a"), json!("c"), json!(["c", "b"]), json!(true), json!(7)];
        let got = buckets(&values, 10);
        let want = [("a", 2), ("b", 2), ("c", 2), ("7", 1), ("true", 1)];
        assert_eq!(got, want.map(|(key, count)| (key.to_string(), count)).to_vec());
        assert_eq!(buckets(&values, 1), vec![("a".to_string(), 2)]);
        assert!(buckets(&values, 0).is_empty());
    }
}
