//! Behaviour of whole queries through the public API: each piece of syntax, the refusals with
//! their positions, matching semantics on AWS's documented examples, the aggregations as the
//! node uses them, agreement with a brute-force evaluator, and never panicking on any input.

mod aggregations;
mod brute_force;
mod errors;
mod never_panics;
mod semantics;
mod syntax;

use serde_json::Value;

use super::{parse, QueryError};

/// Whether `query` (which must parse) matches `doc`.
fn matches(query: &str, doc: &Value) -> bool {
    match parse(query) {
        Ok(parsed) => parsed.matches(doc),
        Err(error) => panic!("{query:?} should parse: {error}"),
    }
}

/// The error `parse` gives for `query`.
fn refused(query: &str) -> QueryError {
    match parse(query) {
        Ok(parsed) => panic!("{query:?} should be refused, parsed as {parsed:?}"),
        Err(error) => error,
    }
}

/// The canonical text of `query`.
fn canonical(query: &str) -> String {
    match parse(query) {
        Ok(parsed) => parsed.to_string(),
        Err(error) => panic!("{query:?} should parse: {error}"),
    }
}
