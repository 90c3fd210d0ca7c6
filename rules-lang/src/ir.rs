//! The checked intermediate representation that both the interpreter and (later) the JIT run:
//! names resolved, functions bound, versions checked, constants parsed. Nothing here refers to
//! source text except the spans kept for runtime messages.

use crate::functions::Builtin;
use crate::projection::Projection;
use crate::value::{SqlVersion, Value};

/// Binary operators after checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// Boolean OR.
    Or,
    /// Boolean AND.
    And,
    /// `=`.
    Eq,
    /// `<>`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `+` (addition or concatenation).
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Rem,
}

/// The target of `cast(x AS type)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CastType {
    /// String, Nvarchar, Text, Ntext, varchar.
    String,
    /// Int, Integer.
    Int,
    /// Double: a Decimal computed in double precision.
    Double,
    /// Decimal (2016-03-23).
    Decimal,
    /// Bool, Boolean (2016-03-23).
    Bool,
}

/// A checked expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A constant.
    Const(Value),
    /// `*` as an argument: the current document (the payload, or the element of a nested SELECT).
    Doc,
    /// A top-level attribute of the current document.
    Attr(String),
    /// A SET variable, by slot.
    Var(usize),
    /// `e.name`.
    Member(Box<Expr>, String),
    /// `NOT e`.
    Not(Box<Expr>),
    /// `-e`.
    Neg(Box<Expr>),
    /// `l op r`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A built-in function call.
    Call(Builtin, Vec<Expr>),
    /// `cast(e AS t)`.
    Cast(Box<Expr>, CastType),
    /// `CASE operand WHEN ... END`.
    Case {
        /// Compared with each arm's value.
        operand: Box<Expr>,
        /// WHEN value, THEN result.
        arms: Vec<(Expr, Expr)>,
        /// ELSE result.
        otherwise: Option<Box<Expr>>,
    },
    /// An object literal.
    Object(Vec<(String, Expr)>),
    /// An array literal.
    Array(Vec<Expr>),
    /// A nested SELECT.
    Nested(Box<Query>),
}

/// One SELECT item.
#[derive(Debug, Clone)]
pub enum Item {
    /// `*`: every top-level key of the document.
    Star,
    /// A named output key.
    Named {
        /// The output key.
        name: String,
        /// Its value.
        expr: Expr,
    },
    /// `expr AS a.b.c`: the value lands at a nested key, creating or extending objects on the way.
    Dotted {
        /// The key path.
        path: Vec<String>,
        /// Its value.
        expr: Expr,
    },
}

/// A SELECT (outer or nested) after checking.
#[derive(Debug, Clone)]
pub struct Query {
    /// `SELECT VALUE`: output the single item's bare value.
    pub value: bool,
    /// The items.
    pub items: Vec<Item>,
    /// For a nested SELECT, the array or object it ranges over.
    pub source: Option<Expr>,
    /// WHERE.
    pub condition: Option<Expr>,
}

/// A checked statement, ready to run.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The SQL version it was written for.
    pub version: SqlVersion,
    /// SET variables in order; a later one may read an earlier one.
    pub vars: Vec<(String, Expr)>,
    /// The outer SELECT.
    pub query: Query,
    /// The FROM topic filter (absent only for Basic Ingest rules).
    pub topic_filter: Option<String>,
}

impl Statement {
    /// Does the statement read attributes of the payload (so a non-JSON payload leaves them
    /// Undefined, which the node counts as a parse error)?
    pub fn reads_attributes(&self) -> bool {
        self.vars.iter().any(|(_, e)| e.reads_attributes()) || self.query.reads_attributes()
    }
}

impl Statement {
    /// The top-level payload members the statement reads, or `None` when it needs the whole
    /// document (`*`, `SELECT *`). A payload parsed with this projection gives the statement the
    /// same results as a full parse.
    pub fn projection(&self) -> Option<Projection> {
        let mut keys = Vec::new();
        for (_, e) in &self.vars {
            e.top_level_keys(&mut keys)?;
        }
        let q = &self.query;
        if let Some(c) = &q.condition {
            c.top_level_keys(&mut keys)?;
        }
        for item in &q.items {
            match item {
                Item::Star => return None,
                Item::Named { expr, .. } | Item::Dotted { expr, .. } => expr.top_level_keys(&mut keys)?,
            }
        }
        Some(Projection::new(keys))
    }
}

impl Query {
    fn reads_attributes(&self) -> bool {
        self.source.as_ref().is_some_and(Expr::reads_attributes)
            || self.condition.as_ref().is_some_and(Expr::reads_attributes)
            || self.items.iter().any(|i| match i {
                Item::Star => false,
                Item::Named { expr, .. } | Item::Dotted { expr, .. } => expr.reads_attributes(),
            })
    }
}

impl Expr {
    /// Adds the top-level members of the document this expression reads to `out`; `None` when
    /// it reads the document as a whole. A nested SELECT's items read its elements, not the
    /// document, so only its source counts.
    pub fn top_level_keys(&self, out: &mut Vec<String>) -> Option<()> {
        match self {
            Expr::Attr(name) => {
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
            Expr::Doc => return None,
            Expr::Const(_) | Expr::Var(_) => {}
            Expr::Member(e, _) | Expr::Not(e) | Expr::Neg(e) | Expr::Cast(e, _) => e.top_level_keys(out)?,
            Expr::Binary(_, l, r) => {
                l.top_level_keys(out)?;
                r.top_level_keys(out)?;
            }
            Expr::Call(_, args) | Expr::Array(args) => {
                for a in args {
                    a.top_level_keys(out)?;
                }
            }
            Expr::Case { operand, arms, otherwise } => {
                operand.top_level_keys(out)?;
                for (w, t) in arms {
                    w.top_level_keys(out)?;
                    t.top_level_keys(out)?;
                }
                if let Some(o) = otherwise {
                    o.top_level_keys(out)?;
                }
            }
            Expr::Object(entries) => {
                for (_, e) in entries {
                    e.top_level_keys(out)?;
                }
            }
            Expr::Nested(q) => {
                if let Some(source) = &q.source {
                    source.top_level_keys(out)?;
                }
            }
        }
        Some(())
    }

    /// Does this expression read an attribute of its document.
    pub fn reads_attributes(&self) -> bool {
        match self {
            Expr::Attr(_) => true,
            Expr::Const(_) | Expr::Doc | Expr::Var(_) => false,
            Expr::Member(e, _) | Expr::Not(e) | Expr::Neg(e) | Expr::Cast(e, _) => e.reads_attributes(),
            Expr::Binary(_, l, r) => l.reads_attributes() || r.reads_attributes(),
            Expr::Call(_, args) | Expr::Array(args) => args.iter().any(Expr::reads_attributes),
            Expr::Case { operand, arms, otherwise } => {
                operand.reads_attributes()
                    || arms.iter().any(|(w, t)| w.reads_attributes() || t.reads_attributes())
                    || otherwise.as_ref().is_some_and(|o| o.reads_attributes())
            }
            Expr::Object(entries) => entries.iter().any(|(_, e)| e.reads_attributes()),
            Expr::Nested(q) => q.reads_attributes(),
        }
    }
}
