//! A parsed query and what the node asks of it: does a document match, and which fields does
//! the answer depend on.

use std::fmt;

use serde_json::Value;

use super::ast::{Expr, Term};
use super::values::{any_leaf, any_value};

/// A parsed fleet indexing query. Only [`parse`](super::parse) makes one, so its nesting and
/// size are within the limits and evaluating it cannot exhaust the stack. `Display` gives its
/// canonical text, which parses back to an equal query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub(super) expr: Expr,
}

impl Query {
    /// Whether the indexed document `doc` (a JSON object whose fields are dotted paths, see
    /// [`field_values`](super::field_values)) matches.
    pub fn matches(&self, doc: &Value) -> bool {
        evaluate(&self.expr, doc)
    }

    /// Every field the query names, once each, in order of first appearance: what the node
    /// must index, and whose changes can change the answer. Terms without a field depend on
    /// every field; see [`Query::searches_all_fields`].
    pub fn fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = Vec::new();
        self.expr.each_term(&mut |term: &Term| {
            if let Some(field) = &term.field {
                if !fields.contains(field) {
                    fields.push(field.clone());
                }
            }
        });
        fields
    }

    /// Whether a term without a field (AWS: searched in every field) appears, so that any change
    /// to a document can change whether it matches.
    pub fn searches_all_fields(&self) -> bool {
        let mut found = false;
        self.expr.each_term(&mut |term: &Term| found |= term.field.is_none());
        found
    }

    /// The syntax tree, for callers that inspect a query.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

/// Recursion is bounded by [`MAX_DEPTH`](super::MAX_DEPTH): only the parser builds a `Query`.
fn evaluate(expr: &Expr, doc: &Value) -> bool {
    match expr {
        Expr::All => true,
        Expr::Term(term) => {
            let predicate = &term.predicate;
            match &term.field {
                Some(field) => any_value(doc, field, &mut |value| predicate.accepts(value)),
                None => any_leaf(doc, &mut |value| predicate.accepts(value)),
            }
        }
        Expr::Not(operand) => !evaluate(operand, doc),
        Expr::And(operands) => operands.iter().all(|operand| evaluate(operand, doc)),
        Expr::Or(operands) => operands.iter().any(|operand| evaluate(operand, doc)),
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}
