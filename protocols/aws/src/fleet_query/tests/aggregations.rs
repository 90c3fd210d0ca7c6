//! The aggregation APIs as the node runs them: match documents, collect the aggregation
//! field's values with `field_values`, aggregate.

use serde_json::{json, Value};

use crate::fleet_query::{buckets, cardinality, field_values, parse, percentiles, statistics};

fn fleet() -> Vec<Value> {
    (1..=10)
        .map(|index| {
            json!({
                "thingName": format!("sensor-{index}"),
                "thingGroupNames": if index % 2 == 0 { json!(["even", "all"]) } else { json!(["all"]) },
                "attributes": {"firmware": if index <= 6 { "1.0" } else { "2.0-beta" }},
                "shadow": {"reported": {"temp": index * 10}},
                "connectivity": {"connected": index % 3 != 0}
            })
        })
        .collect()
}

/// One entry per matching document, as the node passes them: the field's values, as an array
/// when there are several.
fn collect(query: &str, field: &str) -> Vec<Value> {
    let query = parse(query).unwrap();
    fleet()
        .iter()
        .filter(|doc| query.matches(doc))
        .filter_map(|doc| match field_values(doc, field).as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => Some(Value::Array(many.to_vec())),
        })
        .collect()
}

#[test]
fn statistics_of_a_numeric_field_over_the_matching_things() {
    let stats = statistics(&collect("connectivity.connected:true", "shadow.reported.temp"));
    // Connected: 1, 2, 4, 5, 7, 8, 10 → temps 10..100 without 30, 60, 90.
    assert_eq!(stats.count, 7);
    assert_eq!((stats.sum, stats.minimum, stats.maximum), (Some(370.0), Some(10.0), Some(100.0)));
}

#[test]
fn statistics_of_a_string_field_are_only_a_count() {
    let stats = statistics(&collect("*", "attributes.firmware"));
    assert_eq!((stats.count, stats.average), (10, None));
}

#[test]
fn percentiles_of_the_matching_things() {
    let got = percentiles(&collect("thingGroupNames:even", "shadow.reported.temp"), &[0.0, 50.0, 100.0]);
    assert_eq!(got, vec![(0.0, 20.0), (50.0, 60.0), (100.0, 100.0)]);
}

#[test]
fn cardinality_and_buckets_of_a_list_field() {
    let values = collect("*", "thingGroupNames");
    assert_eq!(cardinality(&values), 2);
    assert_eq!(buckets(&values, 10), vec![("all".to_string(), 10), ("even".to_string(), 5)]);
    assert_eq!(buckets(&collect("*", "attributes.firmware"), 1), vec![("1.0".to_string(), 6)]);
}
