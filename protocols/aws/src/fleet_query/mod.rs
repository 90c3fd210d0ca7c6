//! AWS IoT fleet indexing's query language: the `queryString` of `SearchIndex`,
//! `GetStatistics`, `GetCardinality`, `GetPercentiles`, `GetBucketsAggregation`, dynamic thing
//! groups and fleet metrics, and the aggregations those APIs compute.
//!
//! [`parse`] reads a query the way AWS documents it (Lucene-style terms, ranges, comparisons,
//! wildcards, `AND`/`OR`/`NOT`/`-`, grouping and field grouping) within AWS's limits, and says
//! where a query is wrong; [`Query::matches`] tests one indexed document, a JSON object whose
//! fields are dotted paths (`thingName`, `attributes.color`, `shadow.reported.temp`,
//! `shadow.name.NAME.desired.x`, `connectivity.connected`, ...; arrays anywhere stand for each
//! element). The aggregation functions take the aggregation field's values from the matching
//! documents, which the node collects with [`field_values`].
//!
//! ```
//! use ferrite_aws::fleet_query::parse;
//! use serde_json::json;
//!
//! let query = parse("thingName:sensor* AND shadow.reported.temp>30 NOT connectivity.connected:false").unwrap();
//! let doc = json!({
//!     "thingName": "sensor-7",
//!     "shadow": {"reported": {"temp": 31.5}},
//!     "connectivity": {"connected": true}
//! });
//! assert!(query.matches(&doc));
//! assert_eq!(query.fields(), ["thingName", "shadow.reported.temp", "connectivity.connected"]);
//! ```
//!
//! Pipeline: `lexer` turns characters into words, `parser` builds the normalised tree of `ast`
//! (field groups spread onto their terms), `render` prints it back canonically, `query` and
//! `predicate` evaluate it over `values`, and `statistics` and `terms` aggregate. Nothing here
//! does I/O, reads a clock or keeps state; untrusted queries are bounded by [`MAX_QUERY_CHARS`],
//! [`MAX_TERMS`] and [`MAX_DEPTH`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]
#![cfg_attr(not(test), deny(clippy::unreachable, clippy::todo, clippy::string_slice))]

mod ast;
mod error;
mod lexer;
mod parser;
mod predicate;
mod query;
mod render;
mod statistics;
mod terms;
mod values;

#[cfg(test)]
mod tests;

use serde_json::{json, Value};

pub use ast::{Bound, Comparison, Expr, Pattern, Piece, Predicate, Term};
pub use error::QueryError;
pub use parser::{parse, MAX_DEPTH, MAX_LEADING_WILDCARD_QUERY_CHARS, MAX_QUERY_CHARS, MAX_TERMS};
pub use query::Query;
pub use statistics::{percentiles, statistics, Statistics, DEFAULT_PERCENTS};
pub use terms::{buckets, cardinality};
pub use values::field_values;

/// Entry point for a `cargo fuzz` target: parses `data` as a query and, when it is valid,
/// evaluates it against a fixed document, renders it and parses the rendering again (which must
/// give the same query; the canonical text may exceed the length limits, so those are not
/// applied to it). Must never panic on any input but a broken round trip.
#[allow(clippy::panic)] // A broken round trip is the bug this target exists to find.
pub fn fuzz_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Ok(query) => {
            let doc = fuzz_document();
            let matched = query.matches(&doc);
            let _ = query.fields();
            let rendered = query.to_string();
            match parser::parse_any_length(&rendered) {
                Ok(again) => {
                    assert_eq!(again, query, "{rendered:?} does not parse back to the query {text:?}");
                    assert_eq!(again.matches(&doc), matched);
                }
                Err(error) => panic!("{text:?} renders as {rendered:?}, which does not parse: {error}"),
            }
        }
        Err(error) => {
            let _ = error.render(text);
        }
    }
}

/// The document [`fuzz_query`] evaluates against: every kind of field and value.
fn fuzz_document() -> Value {
    json!({
        "thingName": "sensor-7",
        "thingTypeName": "TempSensor",
        "thingGroupNames": ["building-1", "floor 2"],
        "attributes": {"model": "X100", "serial": "0042", "a.b": "dotted"},
        "shadow": {
            "reported": {"temp": 31.5, "tags": ["a", "b"], "nested": {"level": -3}},
            "desired": {"temp": 20},
            "hasDelta": true,
            "version": 12,
            "name": {"config": {"reported": {"mode": "eco"}, "hasDelta": false}}
        },
        "connectivity": {"connected": true, "timestamp": 1_700_000_000_000u64, "disconnectReason": "NONE"},
        "registry": {"version": 3}
    })
}
