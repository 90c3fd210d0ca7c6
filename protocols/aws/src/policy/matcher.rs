//! AWS policy wildcard matching (`*` and `?`), linear-memory and without exponential backtracking.
//!
//! AWS IoT Core policies "use `*` and `?` as wildcard characters and follow the conventions of IAM
//! policies": `*` matches any run of characters (including `/`, so it is *not* confined to one
//! topic level) and `?` exactly one character. The MQTT wildcards `+` and `#` "are treated as
//! those characters with no special meaning". Actions compare case-insensitively, resources and
//! condition values case-sensitively.
//!
//! Patterns are token vectors rather than strings so that characters coming from policy-variable
//! substitution (or from the `${*}` / `${?}` escapes) stay literal.

/// One element of a compiled wildcard pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// A character that must appear literally.
    Char(char),
    /// `*`: any sequence of characters, including the empty one.
    Star,
    /// `?`: exactly one character.
    Question,
}

/// Compiles a plain policy string where every `*` and `?` is a wildcard (no variables).
pub fn compile(pattern: &str) -> Vec<Token> {
    pattern
        .chars()
        .map(|c| match c {
            '*' => Token::Star,
            '?' => Token::Question,
            c => Token::Char(c),
        })
        .collect()
}

/// Pushes every character of `literal` as a literal token (used for substituted values).
pub fn push_literal(tokens: &mut Vec<Token>, literal: &str) {
    tokens.extend(literal.chars().map(Token::Char));
}

fn chars_equal(a: char, b: char, ignore_case: bool) -> bool {
    a == b || (ignore_case && a.to_lowercase().eq(b.to_lowercase()))
}

/// Matches `text` against a compiled pattern using the classic two-pointer glob algorithm.
///
/// Runs in `O(pattern × text)` time in the worst case and never recurses, so adversarial
/// patterns such as `*a*a*a*…b` cannot blow up.
pub fn matches_tokens(pattern: &[Token], text: &str, ignore_case: bool) -> bool {
    let mut p = 0usize; // index into pattern
    let mut t = 0usize; // byte index into text (always on a char boundary)
                        // Position just after the most recent `*`, and the text position it is currently anchored at.
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        let current = text.get(t..).and_then(|rest| rest.chars().next());
        let Some(c) = current else { break };
        let step = match pattern.get(p) {
            Some(Token::Star) => {
                backtrack = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(Token::Question) => true,
            Some(Token::Char(pc)) => chars_equal(*pc, c, ignore_case),
            None => false,
        };
        if step {
            p += 1;
            t += c.len_utf8();
            continue;
        }
        // Mismatch: let the last `*` swallow one more character and retry after it.
        let Some((star_next, anchor)) = backtrack else { return false };
        let Some(swallowed) = text.get(anchor..).and_then(|rest| rest.chars().next()) else { return false };
        let new_anchor = anchor + swallowed.len_utf8();
        backtrack = Some((star_next, new_anchor));
        p = star_next;
        t = new_anchor;
    }
    pattern.get(p..).unwrap_or_default().iter().all(|tok| *tok == Token::Star)
}

/// Matches `text` against a plain wildcard string (every `*`/`?` is a wildcard).
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    matches_tokens(&compile(pattern), text, ignore_case)
}

/// Matches an action name such as `iot:Publish` against a policy action pattern (`iot:*`, `*`),
/// case-insensitively as IAM does for actions.
pub fn action_matches(pattern: &[Token], action: &str) -> bool {
    matches_tokens(pattern, action, true)
}

/// Matches a resource ARN against a policy resource pattern, case-sensitively.
pub fn resource_matches(pattern: &[Token], resource: &str) -> bool {
    matches_tokens(pattern, resource, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward recursive definition used as an oracle for the iterative matcher.
    fn reference(p: &[Token], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((Token::Star, rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some((Token::Question, rest)) => !t.is_empty() && reference(rest, &t[1..]),
            Some((Token::Char(c), rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    #[test]
    fn star_spans_topic_levels_and_mqtt_wildcards_are_literal() {
        let arn = "arn:aws:iot:us-east-1:123456789012:topic/";
        assert!(wildcard_match(&format!("{arn}*"), &format!("{arn}a/b/c"), false));
        assert!(wildcard_match(&format!("{arn}some/*/topic"), &format!("{arn}some/x/y/topic"), false));
        assert!(!wildcard_match(&format!("{arn}some/+/topic"), &format!("{arn}some/x/topic"), false));
        assert!(wildcard_match(&format!("{arn}some/+/topic"), &format!("{arn}some/+/topic"), false));
        assert!(wildcard_match(&format!("{arn}some/#"), &format!("{arn}some/#"), false));
        assert!(!wildcard_match(&format!("{arn}some/#"), &format!("{arn}some/x"), false));
    }

    #[test]
    fn question_mark_is_exactly_one_char() {
        assert!(wildcard_match("a?c", "abc", false));
        assert!(wildcard_match("a?c", "aéc", false));
        assert!(!wildcard_match("a?c", "ac", false));
        assert!(!wildcard_match("a?c", "abbc", false));
        assert!(wildcard_match("a/??/c", "a/xy/c", false));
    }

    #[test]
    fn actions_case_insensitive_resources_case_sensitive() {
        assert!(action_matches(&compile("iot:*"), "iot:Publish"));
        assert!(action_matches(&compile("IOT:publish"), "iot:Publish"));
        assert!(action_matches(&compile("*"), "iot:Connect"));
        assert!(!action_matches(&compile("iot:Pub"), "iot:Publish"));
        assert!(!resource_matches(&compile("topic/A"), "topic/a"));
    }

    #[test]
    fn literal_tokens_do_not_act_as_wildcards() {
        let mut toks = compile("topic/");
        push_literal(&mut toks, "*");
        assert!(matches_tokens(&toks, "topic/*", false));
        assert!(!matches_tokens(&toks, "topic/abc", false));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let pattern = "*a".repeat(2000) + "b";
        let text = "a".repeat(5000);
        assert!(!wildcard_match(&pattern, &text, false));
    }

    fn token() -> impl Strategy<Value = Token> {
        prop_oneof![
            Just(Token::Star),
            Just(Token::Question),
            Just(Token::Char('a')),
            Just(Token::Char('b')),
            Just(Token::Char('/')),
            Just(Token::Char('é')),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_reference(p in prop::collection::vec(token(), 0..8), t in "[ab/é*?]{0,10}") {
            let chars: Vec<char> = t.chars().collect();
            prop_assert_eq!(matches_tokens(&p, &t, false), reference(&p, &chars));
        }
    }
}
