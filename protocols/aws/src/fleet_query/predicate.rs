//! When one value satisfies a term's predicate. AWS types every indexed field (managed fields,
//! and custom fields declared Number, String or Boolean); here the JSON type of the value is
//! its type, so the node indexes a Number custom field as JSON numbers. Then:
//!
//! - a number compares numerically with a query value written as a number (JSON's grammar:
//!   `-12`, `3.5`, `1e3`; `NaN`, `inf` or `0x10` are text), and matches nothing else: no text,
//!   no wildcards;
//! - a string compares as text, case-insensitively (AWS: "Search is case insensitive"),
//!   ordered by code point, even when it looks like a number (`"10" < "9"`, as in a String
//!   field);
//! - a boolean equals `true` or `false` (any case) and is never ordered.

use std::cmp::Ordering;

use serde_json::Value;

use super::ast::{Bound, Comparison, Pattern, Piece, Predicate};

impl Predicate {
    /// Whether `value` (a scalar) satisfies this predicate.
    pub(crate) fn accepts(&self, value: &Value) -> bool {
        match self {
            Predicate::Exists => true,
            Predicate::Equals(text) => equals(value, text),
            Predicate::Wildcard(pattern) => value.as_str().is_some_and(|text| glob(pattern, text)),
            Predicate::Range { lower, upper } => {
                let above = match lower {
                    Bound::Unbounded => true,
                    Bound::Inclusive(text) => order(value, text).is_some_and(Ordering::is_ge),
                    Bound::Exclusive(text) => order(value, text).is_some_and(Ordering::is_gt),
                };
                let below = match upper {
                    Bound::Unbounded => true,
                    Bound::Inclusive(text) => order(value, text).is_some_and(Ordering::is_le),
                    Bound::Exclusive(text) => order(value, text).is_some_and(Ordering::is_lt),
                };
                above && below
            }
            Predicate::Compare(comparison, text) => order(value, text).is_some_and(|ordering| match comparison {
                Comparison::Less => ordering.is_lt(),
                Comparison::LessOrEqual => ordering.is_le(),
                Comparison::Greater => ordering.is_gt(),
                Comparison::GreaterOrEqual => ordering.is_ge(),
            }),
        }
    }
}

/// `text` as a number, if it is written as one (JSON's grammar) and is finite.
pub(crate) fn number(text: &str) -> Option<f64> {
    fn digits(bytes: &[u8], index: &mut usize) -> bool {
        let start = *index;
        while bytes.get(*index).is_some_and(u8::is_ascii_digit) {
            *index += 1;
        }
        *index > start
    }
    let bytes = text.as_bytes();
    let mut index = usize::from(bytes.first() == Some(&b'-'));
    if !digits(bytes, &mut index) {
        return None;
    }
    if bytes.get(index) == Some(&b'.') {
        index += 1;
        if !digits(bytes, &mut index) {
            return None;
        }
    }
    if matches!(bytes.get(index), Some(b'e' | b'E')) {
        index += 1;
        if matches!(bytes.get(index), Some(b'+' | b'-')) {
            index += 1;
        }
        if !digits(bytes, &mut index) {
            return None;
        }
    }
    if index != bytes.len() {
        return None;
    }
    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

/// A JSON number as an `f64`; `None` for anything else.
pub(crate) fn numeric(value: &Value) -> Option<f64> {
    value.as_f64().filter(|value| value.is_finite())
}

fn folded(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(char::to_lowercase)
}

fn equals(value: &Value, text: &str) -> bool {
    match value {
        Value::Number(_) => numeric(value).zip(number(text)).is_some_and(|(left, right)| left == right),
        Value::String(own) => folded(own).eq(folded(text)),
        Value::Bool(flag) => text.eq_ignore_ascii_case(if *flag { "true" } else { "false" }),
        _ => false,
    }
}

/// How `value` orders against the query value `text`; `None` when they cannot be compared.
fn order(value: &Value, text: &str) -> Option<Ordering> {
    match value {
        Value::Number(_) => numeric(value)?.partial_cmp(&number(text)?),
        Value::String(own) => Some(folded(own).cmp(folded(text))),
        _ => None,
    }
}

/// Whether `text` matches `pattern` (`*` any run, `?` one character), case-insensitively.
/// Backtracks only to the last `*`, so it is O(pattern × text) at worst.
pub(crate) fn glob(pattern: &Pattern, text: &str) -> bool {
    enum Token {
        Char(char),
        Any,
        One,
    }
    let tokens: Vec<Token> = pattern
        .pieces()
        .iter()
        .flat_map(|piece| -> Vec<Token> {
            match piece {
                Piece::Text(literal) => folded(literal).map(Token::Char).collect(),
                Piece::Any => vec![Token::Any],
                Piece::One => vec![Token::One],
            }
        })
        .collect();
    let text: Vec<char> = folded(text).collect();
    let (mut p, mut t) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while let Some(&character) = text.get(t) {
        match tokens.get(p) {
            Some(Token::Char(expected)) if *expected == character => (p, t) = (p + 1, t + 1),
            Some(Token::One) => (p, t) = (p + 1, t + 1),
            Some(Token::Any) => {
                resume = Some((p + 1, t));
                p += 1;
            }
            _ => match resume {
                Some((after_star, from)) => {
                    resume = Some((after_star, from + 1));
                    (p, t) = (after_star, from + 1);
                }
                None => return false,
            },
        }
    }
    tokens.get(p..).is_some_and(|rest| rest.iter().all(|token| matches!(token, Token::Any)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pattern(text: &str) -> Pattern {
        Pattern::new(text.chars().map(|c| match c {
            '*' => Piece::Any,
            '?' => Piece::One,
            c => Piece::Text(c.to_string()),
        }))
    }

    #[test]
    fn numbers_follow_json_grammar_and_are_finite() {
        for good in ["0", "-12", "3.5", "1e3", "2E-2", "007"] {
            assert!(number(good).is_some(), "{good}");
        }
        for bad in ["", "-", "1.", ".5", "+1", "NaN", "inf", "0x10", "1e", "1e999", "1 "] {
            assert!(number(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn globs_match_stars_and_single_characters_case_insensitively() {
        assert!(glob(&pattern("ab*"), "ABC"));
        assert!(glob(&pattern("a?c"), "abc"));
        assert!(!glob(&pattern("a?c"), "ac"));
        assert!(glob(&pattern("*b*d"), "abcbd"));
        assert!(glob(&pattern("a*"), "a"));
        assert!(!glob(&pattern("a*b"), "acbc"));
    }

    #[test]
    fn the_value_type_decides_numbers_are_numbers_and_strings_are_text() {
        assert_eq!(order(&json!(10), "9"), Some(Ordering::Greater));
        assert_eq!(order(&json!("10"), "9"), Some(Ordering::Less));
        assert_eq!(order(&json!(10), "abc"), None);
        assert_eq!(order(&json!(true), "true"), None);
        assert!(equals(&json!(75), "75.0") && equals(&json!(75.0), "7.5e1") && equals(&json!(false), "FALSE"));
        assert!(!equals(&json!("75.0"), "75") && !equals(&json!(75), "seventy"));
        assert!(equals(&json!("MyThing"), "mything"));
    }
}
