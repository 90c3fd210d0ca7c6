//! Which documents a query matches: AWS's documented example queries over a small fleet, and
//! the rules for types, case, arrays and missing fields. Attributes that AWS's examples treat as
//! numbers are JSON numbers here, as the node indexes Number custom fields.

use serde_json::{json, Value};

use super::matches;
use crate::fleet_query::parse;

fn fleet() -> Vec<Value> {
    vec![
        json!({
            "thingName": "myThingName", "thingTypeName": "aa", "thingGroupNames": ["a", "abc"],
            "attributes": {"myAttribute": 75, "serialNumber": "abcd", "model": "legacy", "attr1": "abc", "attr2": 3, "attr3": 5},
            "shadow": {"reported": {"stats": {"battery": 80}, "mode": "Eco Mode"}, "hasDelta": true,
                       "name": {"config": {"reported": {"fw": "1.2"}, "hasDelta": false}}},
            "connectivity": {"connected": true, "timestamp": 1_700_000_000_000u64, "disconnectReason": "NONE"}
        }),
        json!({
            "thingName": "abz", "thingGroupNames": ["b"],
            "attributes": {"myAttribute": 80, "serialNumber": "abcf", "model": "new", "attr1": "abc", "attr2": 3, "attr3": 11},
            "shadow": {"reported": {"stats": {"battery": 70}}, "hasDelta": false},
            "connectivity": {"connected": false, "timestamp": 1_600_000_000_000u64, "disconnectReason": "CLIENT_INITIATED_DISCONNECT"}
        }),
        json!({
            "thingName": "yourThing", "thingTypeName": "bb",
            "attributes": {"myAttribute": 9, "serialNumber": "abce", "note": "it is a test"}
        }),
    ]
}

/// The names of the things in [`fleet`] that `query` matches.
fn names(query: &str) -> Vec<String> {
    let query = parse(query).unwrap();
    fleet().iter().filter(|doc| query.matches(doc)).map(|doc| doc["thingName"].as_str().unwrap().to_string()).collect()
}

#[test]
fn aws_example_queries_select_the_documented_things() {
    let cases: &[(&str, &[&str])] = &[
        ("thingName:myThingName", &["myThingName"]),
        ("thingName:my*", &["myThingName"]),
        ("thingName:*Thing*", &["myThingName", "yourThing"]),
        ("thingName:ab?", &["abz"]),
        ("thingTypeName:aa", &["myThingName"]),
        ("thingGroupNames:a", &["myThingName"]),
        ("thingGroupNames:a*", &["myThingName"]),
        ("attributes.myAttribute:75", &["myThingName"]),
        ("attributes.myAttribute:[75 TO 80]", &["myThingName", "abz"]),
        ("attributes.myAttribute:{75 TO 80]", &["abz"]),
        ("attributes.serialNumber:[\"abcd\" TO \"abcf\"]", &["myThingName", "abz", "yourThing"]),
        ("attributes.serialNumber:{\"abcd\" TO \"abcf\"}", &["yourThing"]),
        ("attributes.myAttribute:i*t", &[]),
        ("attributes.note:i*t", &["yourThing"]),
        ("attributes.attr1:abc AND attributes.attr2<5 NOT attributes.attr3>10", &["myThingName"]),
        ("shadow.hasDelta:true", &["myThingName"]),
        ("NOT attributes.model:legacy", &["abz", "yourThing"]),
        ("shadow.reported.stats.battery:{70 TO 100}", &["myThingName"]),
        ("shadow.name.config.hasDelta:false", &["myThingName"]),
        ("shadow.name.config.reported.fw:1.2", &["myThingName"]),
        ("connectivity.connected:true", &["myThingName"]),
        ("connectivity.connected:false", &["abz"]),
        ("connectivity.timestamp>1650000000000", &["myThingName"]),
        ("connectivity.disconnectReason:CLIENT_INITIATED_DISCONNECT", &["abz"]),
        ("*", &["myThingName", "abz", "yourThing"]),
        ("thingName:(my* OR abz) -connectivity.connected:true", &["abz"]),
    ];
    for (query, expected) in cases {
        assert_eq!(names(query), *expected, "{query}");
    }
}

#[test]
fn a_term_without_a_field_searches_every_value() {
    assert_eq!(names("abc"), ["myThingName", "abz"]);
    assert_eq!(names("\"Eco Mode\""), ["myThingName"]);
    assert_eq!(names("9"), ["yourThing"]);
    assert_eq!(names("your*"), ["yourThing"]);
}

#[test]
fn string_matching_is_case_insensitive_but_field_names_are_not() {
    assert_eq!(names("thingName:MYTHINGNAME"), ["myThingName"]);
    assert_eq!(names("thingName:MY*"), ["myThingName"]);
    assert_eq!(names("shadow.reported.mode:\"eco mode\""), ["myThingName"]);
    assert!(names("ThingName:myThingName").is_empty());
}

#[test]
fn numbers_compare_as_numbers_and_strings_as_text_even_when_they_look_numeric() {
    let doc = json!({"n": 10, "s": "10", "t": "ten"});
    assert!(matches("n:10.0 AND n>9 AND n<=10 AND n:[1e1 TO 11]", &doc));
    assert!(matches("s:10 AND s<9 AND s:[0 TO 2]", &doc), "as in a String field, \"10\" sorts before \"9\"");
    assert!(!matches("s>9 OR s:1e1 OR s:10.0", &doc));
    assert!(!matches("n:1*", &doc), "wildcards only match strings");
    assert!(!matches("n:ten OR n>abc", &doc), "a number never equals or orders against text");
    assert!(matches("t>9", &doc), "text orders as text ('t' > '9')");
}

#[test]
fn booleans_equal_true_or_false_and_never_order() {
    let doc = json!({"b": true});
    assert!(matches("b:true AND b:TRUE AND NOT b:false", &doc));
    assert!(!matches("b>false OR b:[a TO z] OR b:t*", &doc));
    assert!(matches("b:[* TO *]", &doc), "a range open at both ends holds every value");
}

#[test]
fn a_term_on_a_list_matches_when_any_element_does() {
    let doc = json!({"thingGroupNames": ["a", "b"], "shadow": {"reported": {"xs": [{"v": 1}, {"v": [5, 9]}]}}});
    assert!(matches("thingGroupNames:b", &doc));
    assert!(matches("shadow.reported.xs.v:9 AND shadow.reported.xs.v<2", &doc));
    assert!(!matches("shadow.reported.xs.v:[2 TO 4]", &doc));
}

#[test]
fn not_is_plain_negation_so_missing_fields_satisfy_it() {
    let doc = json!({"thingName": "t"});
    assert!(matches("NOT attributes.model:legacy", &doc));
    assert!(!matches("attributes.model:*", &doc));
    assert!(matches("-attributes.model:*", &doc));
}

#[test]
fn null_and_object_values_are_not_values() {
    let doc = json!({"a": null, "o": {"x": 1}});
    assert!(!matches("a:* OR o:* OR a:null", &doc));
    assert!(matches("o.x:*", &doc));
}

#[test]
fn thing_group_documents_are_queried_the_same_way() {
    let group = json!({"thingGroupName": "floor-2", "parentGroupNames": ["building-1", "site"], "description": "second floor", "attributes": {"level": "2"}});
    assert!(matches("parentGroupNames:building* AND attributes.level>=2 AND description:\"second floor\"", &group));
}

#[test]
fn escaped_characters_match_themselves() {
    let doc = json!({"attributes": {"mac": "00:1a", "mail": "a@b", "wild": "a*c"}});
    assert!(matches(r"attributes.mac:00\:1a AND attributes.mail:a\@b", &doc));
    assert!(matches(r"attributes.wild:a\*c", &doc));
    assert!(!matches(r"attributes.wild:a\*", &doc));
    assert!(matches(r"attributes.wild:a\**", &doc));
}
