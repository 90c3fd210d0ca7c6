//! Fleet indexing queries come from API callers (SearchIndex, the aggregation APIs, dynamic
//! thing groups, fleet metrics): parsing any text must never panic, hang or blow the stack, and
//! an accepted query must evaluate against a document and render to text that parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferrite_aws::fleet_query::fuzz_query(data);
});
