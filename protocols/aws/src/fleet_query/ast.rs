//! The syntax tree [`parse`](super::parse) builds and [`Query::matches`](super::Query::matches)
//! walks. It is normalised: field groups (`thingName:(a OR b)`) are spread onto their terms,
//! `-x` is `NOT x`, redundant parentheses are gone and wildcard patterns are canonical, so
//! queries that differ only in spelling (`a b` and `a AND b`) give equal trees and render to
//! the same text.

/// A boolean combination of terms. `And` and `Or` always hold two or more operands.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `*` on its own: every document.
    All,
    /// One field (or, without a field, any value of the document) tested by a predicate.
    Term(Term),
    /// `NOT x` or `-x`: the operand does not match.
    Not(Box<Expr>),
    /// `a AND b`, or `a b`: every operand matches.
    And(Vec<Expr>),
    /// `a OR b`: at least one operand matches.
    Or(Vec<Expr>),
}

/// `field:value`, `field>value`, `field:[a TO b]`, ... or a value without a field.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// The dotted path (`shadow.reported.temp`); `None` searches every value of the document.
    pub field: Option<String>,
    /// What a value of the field must satisfy.
    pub predicate: Predicate,
}

/// The test a term applies to each value of its field.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `field:*`: the field has a value.
    Exists,
    /// `field:value` or `field:"a phrase"`: equal, numerically when both sides are numbers.
    Equals(String),
    /// `field:ab*` or `field:a?c`: a string value matching the pattern.
    Wildcard(Pattern),
    /// `field:[a TO b]`, `field:{a TO b}` and mixed brackets.
    Range {
        /// The lower end.
        lower: Bound,
        /// The upper end.
        upper: Bound,
    },
    /// `field>v`, `field>=v`, `field<v`, `field<=v`.
    Compare(Comparison, String),
}

/// One end of a range.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// `*`: open.
    Unbounded,
    /// `[v` or `v]`: the value itself is in the range.
    Inclusive(String),
    /// `{v` or `v}`: the value itself is not.
    Exclusive(String),
}

/// The operator of a comparison term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

impl Comparison {
    /// The operator as written in a query.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }
}

/// A wildcard pattern in canonical form: adjacent text pieces joined, runs of `*` collapsed to
/// one, so equal patterns compare equal and render identically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pieces: Vec<Piece>,
}

/// One piece of a [`Pattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text (never empty in a canonical pattern).
    Text(String),
    /// `*`: any run of characters, possibly empty.
    Any,
    /// `?`: exactly one character.
    One,
}

impl Pattern {
    /// The canonical pattern of `pieces`.
    pub fn new(pieces: impl IntoIterator<Item = Piece>) -> Pattern {
        let mut canonical: Vec<Piece> = Vec::new();
        for piece in pieces {
            match (canonical.last_mut(), piece) {
                (_, Piece::Text(text)) if text.is_empty() => {}
                (Some(Piece::Text(last)), Piece::Text(text)) => last.push_str(&text),
                (Some(Piece::Any), Piece::Any) => {}
                (_, piece) => canonical.push(piece),
            }
        }
        Pattern { pieces: canonical }
    }

    /// The pieces in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Whether the pattern has a wildcard at all (otherwise it is plain text).
    pub fn has_wildcard(&self) -> bool {
        self.pieces.iter().any(|piece| !matches!(piece, Piece::Text(_)))
    }

    /// `*` and nothing else: matches any text.
    pub fn is_any(&self) -> bool {
        self.pieces == [Piece::Any]
    }

    /// Starts with `*` or `?`, which AWS limits to one term per query.
    pub fn is_leading_wildcard(&self) -> bool {
        matches!(self.pieces.first(), Some(Piece::Any | Piece::One))
    }

    /// The text of a pattern without wildcards.
    pub(crate) fn literal(&self) -> String {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.as_str(),
                Piece::Any => "*",
                Piece::One => "?",
            })
            .collect()
    }
}

impl Expr {
    /// Visits every term, left to right.
    pub(crate) fn each_term<'a>(&'a self, visit: &mut impl FnMut(&'a Term)) {
        match self {
            Expr::All => {}
            Expr::Term(term) => visit(term),
            Expr::Not(inner) => inner.each_term(visit),
            Expr::And(operands) | Expr::Or(operands) => operands.iter().for_each(|operand| operand.each_term(visit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(text: &str) -> Piece {
        Piece::Text(text.to_string())
    }

    #[test]
    fn patterns_join_text_and_collapse_stars() {
        let pattern = Pattern::new([text("a"), text(""), text("b"), Piece::Any, Piece::Any, Piece::One, Piece::Any]);
        assert_eq!(pattern.pieces(), [text("ab"), Piece::Any, Piece::One, Piece::Any]);
        assert!(Pattern::new([Piece::Any, Piece::Any]).is_any());
        assert!(!Pattern::new([text("x")]).has_wildcard());
        assert!(Pattern::new([Piece::One, text("x")]).is_leading_wildcard());
    }
}
