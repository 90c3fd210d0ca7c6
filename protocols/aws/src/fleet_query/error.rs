//! The one error [`parse`](super::parse) returns: a message and where in the query it applies,
//! so an API caller (or a console) can point at the offending character.

use std::fmt;

/// Why a query string was refused, and where: `offset` is a byte offset into the query, `line`
/// and `column` count from 1 (columns in characters). Displays as `line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// What is wrong, in words a query author can act on.
    pub message: String,
    /// Byte offset of the offending character (the query's length at its end).
    pub offset: usize,
    /// 1-based line of `offset`.
    pub line: usize,
    /// 1-based column of `offset`, in characters.
    pub column: usize,
}

impl QueryError {
    /// An error at byte `offset` of `query` (clamped to the query and to a character boundary).
    pub(crate) fn at(query: &str, offset: usize, message: impl Into<String>) -> QueryError {
        let mut offset = offset.min(query.len());
        while !query.is_char_boundary(offset) {
            offset -= 1;
        }
        let (mut line, mut column) = (1, 1);
        for (index, character) in query.char_indices() {
            if index >= offset {
                break;
            }
            if character == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        QueryError { message: message.into(), offset, line, column }
    }

    /// The error as rustc shows one: `line:column: message`, the query line, and a caret under
    /// the offending character.
    pub fn render(&self, query: &str) -> String {
        let text = query.lines().nth(self.line.saturating_sub(1)).unwrap_or("");
        let pad = " ".repeat(self.column.saturating_sub(1));
        format!("{self}\n{text}\n{pad}^")
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for QueryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_characters_from_one() {
        let error = QueryError::at("a\nbé c", 6, "bad");
        assert_eq!((error.line, error.column), (2, 4));
        assert_eq!(error.to_string(), "2:4: bad");
        assert_eq!(error.render("a\nbé c"), "2:4: bad\nbé c\n   ^");
    }

    #[test]
    fn offsets_are_clamped_to_the_query_and_a_character_boundary() {
        assert_eq!(QueryError::at("é", 1, "x").offset, 0);
        assert_eq!(QueryError::at("ab", 9, "x").column, 3);
    }
}
