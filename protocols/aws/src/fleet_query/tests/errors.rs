//! What `parse` refuses, with the message and the position a query author needs to fix it.

use super::refused;
use crate::fleet_query::{MAX_DEPTH, MAX_QUERY_CHARS, MAX_TERMS};

/// `(line, column, message)` of the refusal of `query`.
fn at(query: &str) -> (usize, usize, String) {
    let error = refused(query);
    (error.line, error.column, error.message)
}

fn expect(query: &str, column: usize, message: &str) {
    assert_eq!(at(query), (1, column, message.to_string()), "{query:?}");
}

#[test]
fn a_field_without_a_value_points_past_the_colon() {
    let error = refused("thingName:");
    assert_eq!((error.offset, error.line, error.column), (10, 1, 11));
    assert_eq!(error.to_string(), "1:11: expected a value after ':'");
    expect("thingName: AND x", 12, "expected a value after ':', found AND");
    expect("thingName:)", 11, "expected a value after ':', found ')'");
}

#[test]
fn unbalanced_parentheses_point_at_the_lonely_one() {
    expect("(thingName:a OR b", 1, "'(' is never closed");
    expect("a (b (c)", 3, "'(' is never closed");
    expect("thingName:a)", 12, "unmatched ')'");
    expect(")", 1, "unmatched ')'");
    expect("a ()", 4, "expected a term after '(', found ')'");
}

#[test]
fn operators_need_terms_on_both_sides() {
    expect("AND thingName:a", 1, "AND needs a term before it");
    expect("OR a", 1, "OR needs a term before it");
    expect("a AND", 6, "expected a term after AND");
    expect("a OR OR b", 6, "expected a term after OR, found OR");
    expect("a AND OR b", 7, "expected a term after AND, found OR");
    expect("NOT", 4, "expected a term after NOT");
    expect("a -", 4, "expected a term after '-'");
}

#[test]
fn operators_aws_does_not_have_are_named() {
    expect("thingName=abc", 10, "unknown operator '=' (use ':' to match a value, or <, <=, >, >=)");
    expect("a && b", 3, "unknown operator '&' (use AND)");
    expect("a || b", 3, "unknown operator '|' (use OR)");
    expect("!a", 1, "unknown operator '!' (use NOT or '-')");
    expect("+a", 1, "'+' is not supported (terms are required by default)");
    expect("a^2", 2, "boosting ('^') is not supported");
    expect("abc~", 4, "fuzzy and proximity search ('~') are not supported");
    expect("= a", 1, "unknown operator '=' (use ':' to match a value, or <, <=, >, >=)");
}

#[test]
fn an_unterminated_quote_points_at_its_opening() {
    expect("thingName:\"abc", 11, "unterminated quoted value (missing closing '\"')");
    expect("\"a\\\"", 1, "unterminated quoted value (missing closing '\"')");
}

#[test]
fn special_characters_must_be_escaped_or_quoted() {
    expect("attributes.email:a@b", 19, "special character '@' must be escaped with '\\' or quoted");
    expect("a/b", 2, "special character '/' must be escaped with '\\' or quoted");
    expect("abc\\", 4, "'\\' at the end of the query escapes nothing");
    expect("a:b:c", 4, "a ':' inside a value must be escaped ('\\:') or quoted");
}

#[test]
fn fields_are_plain_dotted_names() {
    expect("thing*:a", 1, "a field name cannot contain wildcards");
    expect("attributes..a:b", 1, "field name 'attributes..a' has an empty path segment");
    expect("thingName:(a OR attributes.b:c)", 17, "a term inside 'thingName:(...)' cannot name another field");
    expect(":a", 1, "expected a field name directly before ':'");
    expect("a :b", 3, "expected a field name directly before ':'");
    expect(">5", 1, "expected a field name directly before '>'");
}

#[test]
fn ranges_need_a_field_two_bounds_and_a_closing_bracket() {
    expect("[1 TO 2]", 1, "a range needs a field (field:[a TO b])");
    expect("t:[1 2]", 6, "expected TO between the bounds of the range");
    expect("t:[1 TO", 8, "expected a range bound");
    expect("t:[1 TO 2", 3, "the range is never closed (missing ']' or '}')");
    expect("t:[1 TO 2)", 10, "expected ']' or '}' to close the range, found ')'");
    expect("t:[TO 2]", 4, "expected a range bound before TO");
    expect("t:[a* TO b]", 4, "wildcards are not allowed in a range bound");
    expect("t:[ ]", 5, "expected a range bound, found ']'");
    expect("a ]", 3, "unexpected ']' outside a range");
}

#[test]
fn comparisons_need_a_plain_value() {
    expect("t>", 3, "expected a value after '>'");
    expect("t>=*", 4, "the value after '>=' cannot contain wildcards");
    expect("t<(1)", 3, "expected a value after '<', found '('");
    expect("t<=AND", 4, "expected a value after '<='");
}

#[test]
fn empty_queries_are_refused() {
    expect("", 1, "the query is empty");
    expect("  \n ", 1, "the query is empty");
}

#[test]
fn positions_count_lines_and_characters() {
    assert_eq!(at("thingName:é\nAND\n  b:"), (3, 5, "expected a value after ':'".to_string()));
    let error = refused("é é:");
    assert_eq!((error.offset, error.column), (6, 5));
}

#[test]
fn the_limits_are_enforced_where_they_are_crossed() {
    let long = "a".repeat(MAX_QUERY_CHARS + 1);
    assert_eq!(refused(&long).message, format!("the query is longer than {MAX_QUERY_CHARS} characters"));
    assert_eq!(refused(&long).column, MAX_QUERY_CHARS + 1);
    assert!(crate::fleet_query::parse(&"a".repeat(MAX_QUERY_CHARS)).is_ok());

    let deep = format!("{}a{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    expect(&deep, MAX_DEPTH + 1, &format!("the query nests deeper than {MAX_DEPTH} levels"));
    assert!(crate::fleet_query::parse(&format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH))).is_ok());
    expect(
        &"NOT ".repeat(MAX_DEPTH + 1),
        4 * MAX_DEPTH + 1,
        &format!("the query nests deeper than {MAX_DEPTH} levels"),
    );

    let terms: Vec<String> = (0..=MAX_TERMS).map(|index| format!("t{index}")).collect();
    let column = terms.iter().take(MAX_TERMS).map(|term| term.len() + 1).sum::<usize>() + 1;
    expect(&terms.join(" "), column, &format!("the query has more than {MAX_TERMS} terms"));
    assert!(crate::fleet_query::parse(&terms[..MAX_TERMS].join(" ")).is_ok());
}

#[test]
fn only_one_short_query_may_lead_with_a_wildcard() {
    expect("thingName:*my thingGroupNames:*echo", 15, "only one term of a query may start with a wildcard");
    let long = format!("thingName:*my AND attributes.a:{}", "x".repeat(80));
    expect(&long, 1, "a query with a leading wildcard can be at most 100 characters");
    assert!(crate::fleet_query::parse("thingName:*my thingGroupNames:echo*").is_ok());
    assert!(crate::fleet_query::parse("thingName:?my").is_ok());
}
