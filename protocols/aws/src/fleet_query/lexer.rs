//! Characters to words: a cursor over the query with the lexical rules the parser asks for one
//! token at a time (the grammar is context-sensitive: `-` is an operator only where a clause
//! starts, `TO` a keyword only inside a range).

use super::ast::{Pattern, Piece};
use super::error::QueryError;

/// Characters that end a word: whitespace and the syntax of terms, groups and ranges.
pub(crate) fn ends_word(character: char) -> bool {
    character.is_whitespace() || "()[]{}\":<>=".contains(character)
}

/// Why an unescaped `character` cannot appear in a word, if it cannot: AWS's unsupported
/// special characters and the Lucene operators AWS does not support.
pub(crate) fn refusal(character: char) -> Option<String> {
    let message = match character {
        '=' => "unknown operator '=' (use ':' to match a value, or <, <=, >, >=)".to_string(),
        '&' => "unknown operator '&' (use AND)".to_string(),
        '|' => "unknown operator '|' (use OR)".to_string(),
        '!' => "unknown operator '!' (use NOT or '-')".to_string(),
        '+' => "'+' is not supported (terms are required by default)".to_string(),
        '^' => "boosting ('^') is not supported".to_string(),
        '~' => "fuzzy and proximity search ('~') are not supported".to_string(),
        '`' | '@' | '#' | '%' | '/' | '\'' | ';' | ',' => {
            format!("special character '{character}' must be escaped with '\\' or quoted")
        }
        _ => return None,
    };
    Some(message)
}

/// A run of word characters, escapes resolved, wildcards kept as pattern pieces.
#[derive(Debug)]
pub(crate) struct Word {
    /// Byte offset of its first character.
    pub(crate) start: usize,
    /// Its text and wildcards.
    pub(crate) pattern: Pattern,
    /// Whether any character was escaped (an escaped `AND` is a term, not an operator).
    pub(crate) escaped: bool,
}

impl Word {
    /// `AND`, `OR`, `NOT` or `TO` written plainly.
    pub(crate) fn is_keyword(&self, keyword: &str) -> bool {
        !self.escaped && matches!(self.pattern.pieces(), [Piece::Text(text)] if text == keyword)
    }

    /// The boolean operator this word is, if it is one.
    pub(crate) fn operator(&self) -> Option<&'static str> {
        ["AND", "OR", "NOT"].into_iter().find(|keyword| self.is_keyword(keyword))
    }

    /// `*` written plainly.
    pub(crate) fn is_star(&self) -> bool {
        !self.escaped && self.pattern.is_any()
    }
}

/// A position in the query and the tokens read from it.
pub(crate) struct Cursor<'q> {
    query: &'q str,
    position: usize,
}

impl<'q> Cursor<'q> {
    pub(crate) fn new(query: &'q str) -> Cursor<'q> {
        Cursor { query, position: 0 }
    }

    /// The byte offset of the next character.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn query(&self) -> &'q str {
        self.query
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.query.get(self.position..).and_then(|rest| rest.chars().next())
    }

    pub(crate) fn bump(&mut self) -> Option<char> {
        let character = self.peek()?;
        self.position += character.len_utf8();
        Some(character)
    }

    /// Consumes `expected` if it is next.
    pub(crate) fn eat(&mut self, expected: char) -> bool {
        let found = self.peek() == Some(expected);
        if found {
            self.bump();
        }
        found
    }

    pub(crate) fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// Moves back to `position` (a value an earlier [`Cursor::position`] returned).
    pub(crate) fn rewind(&mut self, position: usize) {
        self.position = position;
    }

    pub(crate) fn error(&self, offset: usize, message: impl Into<String>) -> QueryError {
        QueryError::at(self.query, offset, message)
    }

    /// The word starting here, or `None` when the next character ends words (or there is none).
    pub(crate) fn word(&mut self) -> Result<Option<Word>, QueryError> {
        let start = self.position;
        let mut pieces = Vec::new();
        let mut escaped = false;
        while let Some(character) = self.peek() {
            if ends_word(character) {
                break;
            }
            let offset = self.position;
            self.bump();
            let piece = match character {
                '\\' => match self.bump() {
                    Some(literal) => {
                        escaped = true;
                        Piece::Text(literal.to_string())
                    }
                    None => return Err(self.error(offset, "'\\' at the end of the query escapes nothing")),
                },
                '*' => Piece::Any,
                '?' => Piece::One,
                other => match refusal(other) {
                    Some(message) => return Err(self.error(offset, message)),
                    None => Piece::Text(other.to_string()),
                },
            };
            pieces.push(piece);
        }
        if self.position == start {
            return Ok(None);
        }
        Ok(Some(Word { start, pattern: Pattern::new(pieces), escaped }))
    }

    /// The text of the quoted value that starts here (at a `"`); `\x` stands for `x`.
    pub(crate) fn quoted(&mut self) -> Result<String, QueryError> {
        let start = self.position;
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(text),
                Some('\\') => match self.bump() {
                    Some(literal) => text.push(literal),
                    None => break,
                },
                Some(character) => text.push(character),
                None => break,
            }
        }
        Err(self.error(start, "unterminated quoted value (missing closing '\"')"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str) -> Word {
        Cursor::new(text).word().unwrap().unwrap()
    }

    #[test]
    fn words_stop_at_syntax_and_resolve_escapes() {
        let mut cursor = Cursor::new("a\\:b*c:d");
        let first = cursor.word().unwrap().unwrap();
        assert_eq!(first.pattern.pieces(), [Piece::Text("a:b".into()), Piece::Any, Piece::Text("c".into())]);
        assert!(first.escaped);
        assert_eq!(cursor.peek(), Some(':'));
    }

    #[test]
    fn only_plain_keywords_are_operators() {
        assert_eq!(word("AND").operator(), Some("AND"));
        assert_eq!(word("\\AND").operator(), None);
        assert_eq!(word("ANDROID").operator(), None);
        assert!(word("*").is_star() && !word("\\*").is_star());
    }

    #[test]
    fn quoted_values_keep_everything_but_resolve_escapes() {
        let mut cursor = Cursor::new(r#""a \"b\" * @""#);
        assert_eq!(cursor.quoted().unwrap(), r#"a "b" * @"#);
        assert_eq!(Cursor::new("\"abc").quoted().unwrap_err().offset, 0);
    }

    #[test]
    fn special_characters_are_refused_where_they_are() {
        let error = Cursor::new("ab@c").word().unwrap_err();
        assert_eq!((error.offset, error.message.contains("'@'")), (2, true));
        assert_eq!(Cursor::new("ab\\").word().unwrap_err().offset, 2);
    }
}
