//! Ferrite's rules language: AWS IoT SQL and rule files.
//!
//! A pure library (no networking, no storage, no async). The pipeline is
//! [`syntax`] (pest grammar -> AST with spans) -> [`check`] (IR, errors with spans) ->
//! [`interp`] (the reference semantics; the JIT of a later stage must match it). [`rulefile`]
//! turns `.sql` rule files into checked rules with actions and `${...}` templates, and
//! [`cases`] runs the shared IoT SQL test corpus.

#![warn(missing_docs)]

pub mod cases;
pub mod check;
pub mod context;
pub mod diag;
pub mod functions;
pub mod interp;
pub mod ir;
pub mod jit;
pub mod num;
pub mod projection;
pub mod rulefile;
pub mod syntax;
pub mod template;
pub mod value;

pub use context::{Host, MessageContext, MqttProperties, NoHost, Payload, Protocol, Secret};
pub use diag::{Diagnostic, Span};
pub use interp::{evaluate, EvalError, Output};
pub use ir::Statement;
pub use rulefile::{load_rule_file, load_rule_files, Action, ActionKind, FileErrors, Param, Rule};
pub use value::{parse_json, SqlVersion, Value};

/// Parses and checks one SQL statement (the form the CLI and the CreateTopicRule API take).
pub fn compile(sql: &str, version: SqlVersion) -> Result<Statement, Vec<Diagnostic>> {
    let select = syntax::parse_statement(sql).map_err(|d| vec![d])?;
    check::check_statement(&select, version)
}

/// Does an MQTT topic match a rule's FROM filter. `#` also matches the parent level
/// (`a/#` matches `a`), and wildcards in the first level do not match `$` topics, as in MQTT.
/// The broker's own matcher, so a rule sees exactly the messages a subscriber would.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    ferrite_mqtt::topic::matches(filter, topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_follow_mqtt() {
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches("a/+/c", "a/b/c"));
        assert!(!topic_matches("a/+", "a/b/c"));
        assert!(!topic_matches("#", "$aws/things/x"));
        assert!(topic_matches("/company/+", "/company/x"));
    }
}
