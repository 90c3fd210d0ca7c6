//! Syntax: the pest grammar of rule files and IoT SQL, and the conversion of its parse tree into
//! the spanned AST of [`ast`]. Parse errors come back as [`Diagnostic`]s at the offending position.

pub mod ast;
mod parse;

pub use parse::{parse_rule_file, parse_statement, parse_template_expr};

mod grammar {
    #![allow(missing_docs)]
    //! The generated pest parser and its `Rule` enum.
    #[derive(pest_derive::Parser)]
    #[grammar = "syntax/grammar.pest"]
    pub struct Grammar;
}

pub(crate) use grammar::{Grammar, Rule};
