//! Query text to [`Expr`]: recursive descent with AWS's precedence (`NOT` and `-` bind
//! tightest, then `AND` and juxtaposition, then `OR`) and AWS's limits, so nothing a caller
//! sends can exhaust the stack or the evaluator.

use super::ast::{Bound, Comparison, Expr, Predicate, Term};
use super::error::QueryError;
use super::lexer::{ends_word, refusal, Cursor, Word};
use super::query::Query;

/// The longest query accepted, in characters. AWS states no limit for `queryString` beyond its
/// 12 terms; Ferrite bounds the text so a request cannot make the parser do unbounded work.
pub const MAX_QUERY_CHARS: usize = 1024;

/// How deeply parentheses, field groups and `NOT`s may nest; keeps parsing and evaluation
/// recursion shallow.
pub const MAX_DEPTH: usize = 32;

/// AWS: "The maximum number of terms in a query is twelve." A bare `*` counts as a term.
pub const MAX_TERMS: usize = 12;

/// AWS: "Queries that include a leading wildcard have a max query length of 100 characters."
pub const MAX_LEADING_WILDCARD_QUERY_CHARS: usize = 100;

/// Parses a fleet indexing query string (the `queryString` of `SearchIndex`, the aggregation
/// APIs, dynamic thing groups and fleet metrics) into a [`Query`], or says where it is wrong.
pub fn parse(query: &str) -> Result<Query, QueryError> {
    if let Some((offset, _)) = query.char_indices().nth(MAX_QUERY_CHARS) {
        return Err(QueryError::at(query, offset, format!("the query is longer than {MAX_QUERY_CHARS} characters")));
    }
    parse_within(query, true)
}

/// [`parse`] without its two limits on the length of the text. Canonical text can be longer
/// than the query it came from (field groups spread out, `AND` spelled out), so round-trip
/// checks parse it with this.
pub(crate) fn parse_any_length(query: &str) -> Result<Query, QueryError> {
    parse_within(query, false)
}

fn parse_within(query: &str, limit_length: bool) -> Result<Query, QueryError> {
    let mut parser = Parser { cursor: Cursor::new(query), limit_length, depth: 0, terms: 0, leading_wildcard: false };
    parser.cursor.skip_whitespace();
    if parser.cursor.peek().is_none() {
        return Err(QueryError::at(query, 0, "the query is empty"));
    }
    let expr = parser.or(None, None)?;
    parser.cursor.skip_whitespace();
    let at = parser.cursor.position();
    match parser.cursor.peek() {
        None => Ok(Query { expr }),
        Some(')') => Err(parser.cursor.error(at, "unmatched ')'")),
        Some(other) => Err(parser.cursor.error(at, format!("unexpected '{other}'"))),
    }
}

struct Parser<'q> {
    cursor: Cursor<'q>,
    limit_length: bool,
    depth: usize,
    terms: usize,
    leading_wildcard: bool,
}

/// One operand as is, several combined with `join`.
fn combine(mut operands: Vec<Expr>, join: fn(Vec<Expr>) -> Expr) -> Expr {
    if operands.len() == 1 {
        if let Some(only) = operands.pop() {
            return only;
        }
    }
    join(operands)
}

impl Parser<'_> {
    /// `and (OR and)*`. `group` is the field of an enclosing `field:(...)`; `after` names what
    /// precedes the first operand, for messages.
    fn or(&mut self, group: Option<&str>, after: Option<&str>) -> Result<Expr, QueryError> {
        let mut operands = vec![self.and(group, after)?];
        loop {
            self.cursor.skip_whitespace();
            let at = self.cursor.position();
            match self.cursor.word()? {
                Some(word) if word.is_keyword("OR") => operands.push(self.and(group, Some("OR"))?),
                _ => {
                    self.cursor.rewind(at);
                    return Ok(combine(operands, Expr::Or));
                }
            }
        }
    }

    /// `unary ((AND)? unary)*`: adjacent clauses are ANDed.
    fn and(&mut self, group: Option<&str>, after: Option<&str>) -> Result<Expr, QueryError> {
        let mut operands = vec![self.unary(group, after)?];
        loop {
            self.cursor.skip_whitespace();
            let at = self.cursor.position();
            if matches!(self.cursor.peek(), None | Some(')')) {
                break;
            }
            match self.cursor.word()? {
                Some(word) if word.is_keyword("OR") => {
                    self.cursor.rewind(at);
                    break;
                }
                Some(word) if word.is_keyword("AND") => operands.push(self.unary(group, Some("AND"))?),
                _ => {
                    self.cursor.rewind(at);
                    operands.push(self.unary(group, None)?);
                }
            }
        }
        Ok(combine(operands, Expr::And))
    }

    /// `NOT unary | -unary | (or) | term`.
    fn unary(&mut self, group: Option<&str>, after: Option<&str>) -> Result<Expr, QueryError> {
        self.cursor.skip_whitespace();
        let at = self.cursor.position();
        let expected = |found: &str| match after {
            Some(after) => format!("expected a term after {after}{found}"),
            None => format!("expected a term{found}"),
        };
        let Some(next) = self.cursor.peek() else {
            return Err(self.cursor.error(at, expected("")));
        };
        match next {
            '-' => {
                self.cursor.bump();
                self.negate(at, group, "'-'")
            }
            '(' => {
                self.cursor.bump();
                self.group(at, group)
            }
            '"' => {
                let text = self.cursor.quoted()?;
                self.term(at, group.map(str::to_string), Predicate::Equals(text))
            }
            '[' | '{' => match group {
                Some(field) => self.range(field.to_string(), at, at),
                None => Err(self.cursor.error(at, "a range needs a field (field:[a TO b])")),
            },
            ')' if after.is_none() => Err(self.cursor.error(at, "unmatched ')'")),
            ':' | '<' | '>' => Err(self.cursor.error(at, format!("expected a field name directly before '{next}'"))),
            ']' | '}' => Err(self.cursor.error(at, format!("unexpected '{next}' outside a range"))),
            '=' => Err(self.cursor.error(at, refusal(next).unwrap_or_default())),
            other if ends_word(other) => Err(self.cursor.error(at, expected(&format!(", found '{other}'")))),
            _ => match self.cursor.word()? {
                Some(word) => self.word_clause(word, group, after),
                None => Err(self.cursor.error(at, expected(""))),
            },
        }
    }

    /// A clause that starts with a word: an operator, `field:...`, `field>...` or a value.
    fn word_clause(&mut self, word: Word, group: Option<&str>, after: Option<&str>) -> Result<Expr, QueryError> {
        match word.operator() {
            Some("NOT") => return self.negate(word.start, group, "NOT"),
            Some(operator) => {
                let message = match after {
                    Some(after) => format!("expected a term after {after}, found {operator}"),
                    None => format!("{operator} needs a term before it"),
                };
                return Err(self.cursor.error(word.start, message));
            }
            None => {}
        }
        let at = self.cursor.position();
        match self.cursor.peek() {
            Some(':') => {
                let field = self.field_name(&word, group)?;
                self.cursor.bump();
                self.field_value(field, word.start)
            }
            Some(symbol @ ('<' | '>')) => {
                let field = self.field_name(&word, group)?;
                self.cursor.bump();
                let comparison = match (symbol, self.cursor.eat('=')) {
                    ('<', false) => Comparison::Less,
                    ('<', true) => Comparison::LessOrEqual,
                    (_, false) => Comparison::Greater,
                    (_, true) => Comparison::GreaterOrEqual,
                };
                let value = self.comparison_value(comparison)?;
                self.term(word.start, Some(field), Predicate::Compare(comparison, value))
            }
            Some('=') => Err(self.cursor.error(at, refusal('=').unwrap_or_default())),
            _ => {
                let start = word.start;
                self.value_word(word, start, group.map(str::to_string))
            }
        }
    }

    /// `NOT x` or `-x`, the operand parsed one level deeper.
    fn negate(&mut self, at: usize, group: Option<&str>, operator: &str) -> Result<Expr, QueryError> {
        self.enter(at)?;
        let operand = self.unary(group, Some(operator))?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(operand)))
    }

    /// The rest of `( or )`, the `(` at `at` already read.
    fn group(&mut self, at: usize, group: Option<&str>) -> Result<Expr, QueryError> {
        self.enter(at)?;
        let inner = self.or(group, Some("'('"))?;
        self.cursor.skip_whitespace();
        if !self.cursor.eat(')') {
            return Err(self.cursor.error(at, "'(' is never closed"));
        }
        self.depth -= 1;
        Ok(inner)
    }

    fn enter(&mut self, at: usize) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.cursor.error(at, format!("the query nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    /// The word before `:`, `<` or `>` as a field name.
    fn field_name(&self, word: &Word, group: Option<&str>) -> Result<String, QueryError> {
        if let Some(outer) = group {
            return Err(self
                .cursor
                .error(word.start, format!("a term inside '{outer}:(...)' cannot name another field")));
        }
        if word.pattern.has_wildcard() {
            return Err(self.cursor.error(word.start, "a field name cannot contain wildcards"));
        }
        let field = word.pattern.literal();
        if field.split('.').any(str::is_empty) {
            return Err(self.cursor.error(word.start, format!("field name '{field}' has an empty path segment")));
        }
        Ok(field)
    }

    /// What follows `field:` (the field at `start`): a value, a pattern, `*`, a range or a field
    /// group.
    fn field_value(&mut self, field: String, start: usize) -> Result<Expr, QueryError> {
        self.cursor.skip_whitespace();
        let at = self.cursor.position();
        let expr = match self.cursor.peek() {
            None => return Err(self.cursor.error(at, "expected a value after ':'")),
            Some('(') => {
                self.cursor.bump();
                return self.group(at, Some(&field));
            }
            Some('[' | '{') => return self.range(field, start, at),
            Some('"') => {
                let text = self.cursor.quoted()?;
                self.term(start, Some(field), Predicate::Equals(text))?
            }
            Some(other) if ends_word(other) => {
                return Err(self.cursor.error(at, format!("expected a value after ':', found '{other}'")));
            }
            Some(_) => match self.cursor.word()? {
                Some(word) if word.operator().is_some() => {
                    let operator = word.operator().unwrap_or_default();
                    return Err(self.cursor.error(at, format!("expected a value after ':', found {operator}")));
                }
                Some(word) => self.value_word(word, start, Some(field))?,
                None => return Err(self.cursor.error(at, "expected a value after ':'")),
            },
        };
        if self.cursor.peek() == Some(':') {
            let colon = self.cursor.position();
            return Err(self.cursor.error(colon, "a ':' inside a value must be escaped ('\\:') or quoted"));
        }
        Ok(expr)
    }

    /// A word used as a value in the term at `start`: `*` (exists, or every document without a
    /// field), a pattern, or text.
    fn value_word(&mut self, word: Word, start: usize, field: Option<String>) -> Result<Expr, QueryError> {
        if word.is_star() {
            return match field {
                Some(field) => self.term(start, Some(field), Predicate::Exists),
                None => {
                    self.count_term(start)?;
                    Ok(Expr::All)
                }
            };
        }
        let predicate = if word.pattern.has_wildcard() {
            Predicate::Wildcard(word.pattern)
        } else {
            Predicate::Equals(word.pattern.literal())
        };
        self.term(start, field, predicate)
    }

    /// `[a TO b]`, `{a TO b}` or a mix for the term at `start`, the opening bracket at `at`.
    fn range(&mut self, field: String, start: usize, at: usize) -> Result<Expr, QueryError> {
        let inclusive_lower = self.cursor.bump() == Some('[');
        let lower = self.bound()?;
        self.cursor.skip_whitespace();
        let to = self.cursor.position();
        if !self.cursor.word()?.is_some_and(|word| word.is_keyword("TO")) {
            return Err(self.cursor.error(to, "expected TO between the bounds of the range"));
        }
        let upper = self.bound()?;
        self.cursor.skip_whitespace();
        let close = self.cursor.position();
        let inclusive_upper = match self.cursor.bump() {
            Some(']') => true,
            Some('}') => false,
            None => return Err(self.cursor.error(at, "the range is never closed (missing ']' or '}')")),
            Some(other) => {
                return Err(self
                    .cursor
                    .error(close, format!("expected ']' or '}}' to close the range, found '{other}'")));
            }
        };
        let bound = |value: Option<String>, inclusive: bool| match value {
            None => Bound::Unbounded,
            Some(value) if inclusive => Bound::Inclusive(value),
            Some(value) => Bound::Exclusive(value),
        };
        let predicate = Predicate::Range { lower: bound(lower, inclusive_lower), upper: bound(upper, inclusive_upper) };
        self.term(start, Some(field), predicate)
    }

    /// One end of a range: text, quoted text, or `*` for open (`None`).
    fn bound(&mut self) -> Result<Option<String>, QueryError> {
        self.cursor.skip_whitespace();
        let at = self.cursor.position();
        match self.cursor.peek() {
            None => Err(self.cursor.error(at, "expected a range bound")),
            Some('"') => self.cursor.quoted().map(Some),
            Some(other) if ends_word(other) => {
                Err(self.cursor.error(at, format!("expected a range bound, found '{other}'")))
            }
            Some(_) => match self.cursor.word()? {
                Some(word) if word.is_keyword("TO") => Err(self.cursor.error(at, "expected a range bound before TO")),
                Some(word) if word.is_star() => Ok(None),
                Some(word) if word.pattern.has_wildcard() => {
                    Err(self.cursor.error(at, "wildcards are not allowed in a range bound"))
                }
                Some(word) => Ok(Some(word.pattern.literal())),
                None => Err(self.cursor.error(at, "expected a range bound")),
            },
        }
    }

    /// The value after `<`, `<=`, `>` or `>=`.
    fn comparison_value(&mut self, comparison: Comparison) -> Result<String, QueryError> {
        self.cursor.skip_whitespace();
        let at = self.cursor.position();
        let symbol = comparison.symbol();
        match self.cursor.peek() {
            Some('"') => self.cursor.quoted(),
            Some(other) if !ends_word(other) => match self.cursor.word()? {
                Some(word) if word.is_star() || word.pattern.has_wildcard() => {
                    Err(self.cursor.error(at, format!("the value after '{symbol}' cannot contain wildcards")))
                }
                Some(word) if word.operator().is_some() => {
                    Err(self.cursor.error(at, format!("expected a value after '{symbol}'")))
                }
                Some(word) => Ok(word.pattern.literal()),
                None => Err(self.cursor.error(at, format!("expected a value after '{symbol}'"))),
            },
            Some(other) => Err(self.cursor.error(at, format!("expected a value after '{symbol}', found '{other}'"))),
            None => Err(self.cursor.error(at, format!("expected a value after '{symbol}'"))),
        }
    }

    /// A term starting at `at`, once it is known to be within AWS's limits.
    fn term(&mut self, at: usize, field: Option<String>, predicate: Predicate) -> Result<Expr, QueryError> {
        self.count_term(at)?;
        if let Predicate::Wildcard(pattern) = &predicate {
            if pattern.is_leading_wildcard() {
                if self.leading_wildcard {
                    return Err(self.cursor.error(at, "only one term of a query may start with a wildcard"));
                }
                self.leading_wildcard = true;
                if self.limit_length && self.cursor.query().chars().count() > MAX_LEADING_WILDCARD_QUERY_CHARS {
                    let message = format!(
                        "a query with a leading wildcard can be at most {MAX_LEADING_WILDCARD_QUERY_CHARS} characters"
                    );
                    return Err(self.cursor.error(at, message));
                }
            }
        }
        Ok(Expr::Term(Term { field, predicate }))
    }

    fn count_term(&mut self, at: usize) -> Result<(), QueryError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(self.cursor.error(at, format!("the query has more than {MAX_TERMS} terms")));
        }
        Ok(())
    }
}
