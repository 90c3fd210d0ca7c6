//! `${...}` substitution templates in action parameters: parsed and checked with the rule (errors
//! point inside the string), evaluated per message against the original payload and the rule's
//! SET variables, never against SELECT aliases.

use crate::check::check_template;
use crate::context::{Host, MessageContext};
use crate::diag::{Diagnostic, Span};
use crate::interp::{evaluate_expr, EvalError};
use crate::ir::{Expr, Statement};
use crate::syntax::parse_template_expr;
use crate::value::Value;

/// One piece of a template.
#[derive(Debug, Clone)]
pub enum Part {
    /// Text copied as is (`$$` already turned into `$`).
    Text(String),
    /// An expression whose string form is inserted.
    Expr(Expr),
}

/// A parsed, checked template.
#[derive(Debug, Clone)]
pub struct Template {
    /// The text as written.
    pub source: String,
    /// Its pieces in order.
    pub parts: Vec<Part>,
}

impl Template {
    /// Does it contain any `${...}`.
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Renders the template for a message. Undefined expressions render as the empty string,
    /// objects and arrays as compact JSON.
    pub fn render(&self, stmt: &Statement, ctx: &MessageContext<'_>, host: &dyn Host) -> Result<String, EvalError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => {
                    let v = evaluate_expr(e, stmt, ctx, host)?;
                    if let Some(s) = v.to_text(stmt.version) {
                        out.push_str(&s);
                    } else if matches!(v, Value::Null) {
                        out.push_str("null");
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Where each character of an unescaped string literal sits in the file: the literal's content
/// starts at `raw_start`, and each doubled quote in the source became one character.
#[derive(Debug, Clone, Copy)]
pub struct SourceMap<'s> {
    /// The whole file.
    pub source: &'s str,
    /// Byte offset of the first content character.
    pub raw_start: usize,
    /// The quote character of the literal.
    pub quote: char,
}

impl SourceMap<'_> {
    fn offset(&self, text: &str, index: usize) -> usize {
        let doubled = text[..index].matches(self.quote).count();
        (self.raw_start + index + doubled * self.quote.len_utf8()).min(self.source.len())
    }
}

/// Parses and checks a template string.
pub fn parse_template(text: &str, map: SourceMap<'_>, stmt: &Statement) -> Result<Template, Vec<Diagnostic>> {
    let mut parts = vec![];
    let mut diags = vec![];
    let mut literal = String::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'$') {
            literal.push('$');
            i += 2;
            continue;
        }
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            let open = i;
            let Some(close) = matching_brace(text, i + 2) else {
                let at = map.offset(text, open);
                diags.push(
                    Diagnostic::new(Span::new(at, at + 2), "unterminated `${` in template")
                        .with_help("close the expression with `}`, or write `$$` for a literal `$`"),
                );
                break;
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            let inner = &text[i + 2..close];
            let inner_start = map.offset(text, i + 2);
            if inner.trim().is_empty() {
                diags.push(Diagnostic::new(
                    Span::new(map.offset(text, open), map.offset(text, close + 1)),
                    "empty `${}` in template",
                ));
            } else {
                // Doubled quotes inside the template were collapsed by the string literal; spans
                // inside stay close enough to point at the right token.
                match parse_template_expr(inner, inner_start) {
                    Ok(e) => match check_template(&e, stmt) {
                        Ok(e) => parts.push(Part::Expr(e)),
                        Err(mut d) => diags.append(&mut d),
                    },
                    Err(d) => diags.push(d),
                }
            }
            i = close + 1;
            continue;
        }
        let c = text[i..].chars().next().unwrap_or(' ');
        literal.push(c);
        i += c.len_utf8();
    }
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    if diags.is_empty() {
        Ok(Template { source: text.to_string(), parts })
    } else {
        Err(diags)
    }
}

/// Index of the `}` closing a template that starts at `start`, skipping quoted strings and
/// nested braces (object literals).
fn matching_brace(text: &str, start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in text[start..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '{') => depth += 1,
            (None, '}') if depth == 0 => return Some(start + i),
            (None, '}') => depth -= 1,
            _ => {}
        }
    }
    None
}
