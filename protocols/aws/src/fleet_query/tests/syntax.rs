//! Each piece of the syntax: what it parses to and how it renders canonically.

use super::canonical;
use crate::fleet_query::{parse, Bound, Comparison, Expr, Pattern, Piece, Predicate, Term};

fn tree(query: &str) -> Expr {
    parse(query).unwrap().expr().clone()
}

fn term(field: &str, predicate: Predicate) -> Expr {
    Expr::Term(Term { field: Some(field.to_string()), predicate })
}

fn equals(field: &str, text: &str) -> Expr {
    term(field, Predicate::Equals(text.to_string()))
}

fn bare(text: &str) -> Expr {
    Expr::Term(Term { field: None, predicate: Predicate::Equals(text.to_string()) })
}

fn inclusive(text: &str) -> Bound {
    Bound::Inclusive(text.to_string())
}

fn exclusive(text: &str) -> Bound {
    Bound::Exclusive(text.to_string())
}

#[test]
fn a_field_and_a_value_is_an_exact_term() {
    assert_eq!(tree("thingName:myThing"), equals("thingName", "myThing"));
    assert_eq!(tree("attributes.myAttribute:75"), equals("attributes.myAttribute", "75"));
    assert_eq!(
        tree("shadow.name.$package.reported.version:1.2"),
        equals("shadow.name.$package.reported.version", "1.2")
    );
}

#[test]
fn a_value_without_a_field_searches_every_field() {
    assert_eq!(tree("abc"), bare("abc"));
    assert_eq!(tree("\"two words\""), bare("two words"));
}

#[test]
fn a_lone_star_is_every_thing_and_field_star_is_existence() {
    assert_eq!(tree("*"), Expr::All);
    assert_eq!(tree("attributes.color:*"), term("attributes.color", Predicate::Exists));
}

#[test]
fn stars_and_question_marks_make_wildcard_patterns() {
    let pattern = Pattern::new([Piece::Text("my".into()), Piece::Any]);
    assert_eq!(tree("thingName:my*"), term("thingName", Predicate::Wildcard(pattern)));
    let pattern = Pattern::new([Piece::Text("ab".into()), Piece::One]);
    assert_eq!(tree("thingName:ab?"), term("thingName", Predicate::Wildcard(pattern)));
    let pattern = Pattern::new([Piece::Text("i".into()), Piece::Any, Piece::Text("t".into())]);
    assert_eq!(tree("attributes.myAttribute:i*t"), term("attributes.myAttribute", Predicate::Wildcard(pattern)));
}

#[test]
fn quoted_values_are_literal_with_backslash_escapes() {
    assert_eq!(tree(r#"attributes.note:"say \"hi\" * now""#), equals("attributes.note", r#"say "hi" * now"#));
    assert_eq!(tree(r"attributes.mac:00\:1a\*"), equals("attributes.mac", "00:1a*"));
    assert_eq!(tree(r"attributes.a\:b:x"), equals("attributes.a:b", "x"));
}

#[test]
fn ranges_take_inclusive_exclusive_and_open_ends() {
    let range = |lower, upper| term("attributes.myAttribute", Predicate::Range { lower, upper });
    assert_eq!(tree("attributes.myAttribute:[75 TO 80]"), range(inclusive("75"), inclusive("80")));
    assert_eq!(tree("attributes.myAttribute:{75 TO 80]"), range(exclusive("75"), inclusive("80")));
    assert_eq!(tree("attributes.myAttribute:[75 TO 80}"), range(inclusive("75"), exclusive("80")));
    assert_eq!(tree("attributes.myAttribute:{* TO 80}"), range(Bound::Unbounded, exclusive("80")));
    assert_eq!(tree("attributes.myAttribute:[-5 TO *]"), range(inclusive("-5"), Bound::Unbounded));
    assert_eq!(tree(r#"attributes.myAttribute:["abcd" TO "abcf"]"#), range(inclusive("abcd"), inclusive("abcf")));
}

#[test]
fn comparisons_bind_directly_to_the_field() {
    let compare = |comparison, text: &str| term("attributes.attr2", Predicate::Compare(comparison, text.into()));
    assert_eq!(tree("attributes.attr2<5"), compare(Comparison::Less, "5"));
    assert_eq!(tree("attributes.attr2<=5"), compare(Comparison::LessOrEqual, "5"));
    assert_eq!(tree("attributes.attr2>-5"), compare(Comparison::Greater, "-5"));
    assert_eq!(tree("attributes.attr2>= \"b c\""), compare(Comparison::GreaterOrEqual, "b c"));
}

#[test]
fn adjacent_terms_are_anded_and_not_binds_tighter_than_and_than_or() {
    let (a, b, c) = (bare("a"), bare("b"), bare("c"));
    assert_eq!(tree("a b"), Expr::And(vec![a.clone(), b.clone()]));
    assert_eq!(tree("a AND b OR c"), Expr::Or(vec![Expr::And(vec![a.clone(), b.clone()]), c.clone()]));
    assert_eq!(tree("a OR b c"), Expr::Or(vec![a.clone(), Expr::And(vec![b.clone(), c.clone()])]));
    let not_b = Expr::Not(Box::new(b.clone()));
    assert_eq!(tree("a NOT b"), Expr::And(vec![a.clone(), not_b.clone()]));
    assert_eq!(tree("NOT b OR a"), Expr::Or(vec![not_b, a.clone()]));
    assert_eq!(tree("(a OR b) c"), Expr::And(vec![Expr::Or(vec![a, b]), c]));
}

#[test]
fn a_hyphen_before_a_clause_excludes_it_but_not_inside_a_value() {
    assert_eq!(tree("-a"), Expr::Not(Box::new(bare("a"))));
    assert_eq!(tree("thingName:my-thing"), equals("thingName", "my-thing"));
    assert_eq!(tree("attributes.t:-5"), equals("attributes.t", "-5"));
}

#[test]
fn a_field_group_applies_the_field_to_every_term_inside() {
    let plasma = Expr::Not(Box::new(equals("thingName", "plasma")));
    let tv = term("thingName", Predicate::Wildcard(Pattern::new([Piece::Text("tv".into()), Piece::Any])));
    assert_eq!(tree("thingName:(tv* AND -plasma)"), Expr::And(vec![tv, plasma]));
    let range = term("t", Predicate::Range { lower: inclusive("1"), upper: inclusive("2") });
    assert_eq!(tree("t:([1 TO 2] OR *)"), Expr::Or(vec![range, term("t", Predicate::Exists)]));
}

#[test]
fn operators_are_upper_case_plain_words_only() {
    assert_eq!(tree("a and b"), Expr::And(vec![bare("a"), bare("and"), bare("b")]));
    assert_eq!(tree(r"\AND"), bare("AND"));
    assert_eq!(tree("\"OR\""), bare("OR"));
    assert_eq!(tree("ANDROID"), bare("ANDROID"));
}

#[test]
fn whitespace_of_any_kind_separates_and_may_follow_the_colon() {
    assert_eq!(tree("\n\tthingName:\r\n a\u{3000}b "), Expr::And(vec![equals("thingName", "a"), bare("b")]));
}

#[test]
fn canonical_text_spells_out_what_was_implied() {
    assert_eq!(canonical("a b -c"), "a AND b AND NOT c");
    assert_eq!(canonical("thingName:(tv* AND -plasma)"), "thingName:tv* AND NOT thingName:plasma");
    assert_eq!(canonical("((a OR b)) (c)"), "(a OR b) AND c");
    assert_eq!(canonical("t:{* TO 5}"), "t:[* TO 5}");
    assert_eq!(canonical("x:\"a b\" \"-y\" z:\"plain\""), "x:\"a b\" AND \"-y\" AND z:plain");
    assert_eq!(canonical(r"x:a\ b* AND\:x:\@"), r#"x:a\ b* AND AND\:x:"@""#);
}
