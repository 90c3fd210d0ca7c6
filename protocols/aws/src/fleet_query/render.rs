//! Syntax tree back to query text, in a canonical form: explicit `AND`, `NOT` for `-`, field
//! groups spread out, parentheses only where precedence needs them, values bare where the
//! syntax allows and quoted otherwise. `parse(&query.to_string())` gives the same tree back.

use std::fmt::{self, Write};

use super::ast::{Bound, Expr, Pattern, Piece, Predicate, Term};
use super::lexer::{ends_word, refusal};

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("*"),
            Expr::Term(term) => write!(f, "{term}"),
            Expr::Not(operand) => {
                f.write_str("NOT ")?;
                operand_of(operand, f)
            }
            Expr::And(operands) | Expr::Or(operands) => {
                let operator = if matches!(self, Expr::And(_)) { " AND " } else { " OR " };
                for (index, operand) in operands.iter().enumerate() {
                    if index > 0 {
                        f.write_str(operator)?;
                    }
                    operand_of(operand, f)?;
                }
                Ok(())
            }
        }
    }
}

/// An operand of `NOT`, `AND` or `OR`: combinations are parenthesised, so the tree's shape
/// survives the round trip.
fn operand_of(operand: &Expr, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match operand {
        Expr::And(_) | Expr::Or(_) => write!(f, "({operand})"),
        _ => write!(f, "{operand}"),
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fielded = self.field.is_some();
        if let Some(field) = &self.field {
            write_field(field, f)?;
            if !matches!(self.predicate, Predicate::Compare(..)) {
                f.write_char(':')?;
            }
        }
        match &self.predicate {
            Predicate::Exists => f.write_char('*'),
            Predicate::Equals(text) => write_text(text, fielded, f),
            Predicate::Wildcard(pattern) => write_pattern(pattern, fielded, f),
            Predicate::Compare(comparison, text) => {
                f.write_str(comparison.symbol())?;
                write_text(text, true, f)
            }
            Predicate::Range { lower, upper } => {
                match lower {
                    Bound::Exclusive(_) => f.write_char('{')?,
                    Bound::Inclusive(_) | Bound::Unbounded => f.write_char('[')?,
                }
                write_bound(lower, f)?;
                f.write_str(" TO ")?;
                write_bound(upper, f)?;
                match upper {
                    Bound::Exclusive(_) => f.write_char('}'),
                    Bound::Inclusive(_) | Bound::Unbounded => f.write_char(']'),
                }
            }
        }
    }
}

/// Whether `character` can stand for itself in a bare word.
fn plain(character: char) -> bool {
    !ends_word(character) && refusal(character).is_none() && !matches!(character, '\\' | '*' | '?')
}

fn write_field(field: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let keyword = matches!(field, "AND" | "OR" | "NOT");
    for (index, character) in field.chars().enumerate() {
        let first = index == 0;
        if !plain(character) || (first && (keyword || character == '-')) {
            f.write_char('\\')?;
        }
        f.write_char(character)?;
    }
    Ok(())
}

/// Literal text: bare when that reads back as the same text, quoted otherwise. A leading `-`
/// is an operator where a clause starts (`dash_ok` false), and `TO` a keyword in ranges.
fn write_text(text: &str, dash_ok: bool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let bare = !text.is_empty()
        && text.chars().all(plain)
        && (dash_ok || !text.starts_with('-'))
        && !matches!(text, "AND" | "OR" | "NOT" | "TO");
    if bare {
        return f.write_str(text);
    }
    f.write_char('"')?;
    for character in text.chars() {
        if matches!(character, '"' | '\\') {
            f.write_char('\\')?;
        }
        f.write_char(character)?;
    }
    f.write_char('"')
}

fn write_pattern(pattern: &Pattern, dash_ok: bool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut first = true;
    for piece in pattern.pieces() {
        match piece {
            Piece::Any => f.write_char('*')?,
            Piece::One => f.write_char('?')?,
            Piece::Text(text) => {
                for character in text.chars() {
                    if !plain(character) || (first && character == '-' && !dash_ok) {
                        f.write_char('\\')?;
                    }
                    f.write_char(character)?;
                    first = false;
                }
            }
        }
        first = false;
    }
    Ok(())
}

fn write_bound(bound: &Bound, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match bound {
        Bound::Unbounded => f.write_char('*'),
        Bound::Inclusive(text) | Bound::Exclusive(text) => write_text(text, true, f),
    }
}
