//! The syntax tree of rule files and IoT SQL statements, exactly as written, with spans.
//! Nothing here is resolved or checked; `crate::check` turns it into IR.

use crate::diag::Span;

/// An expression with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What kind of expression.
    pub kind: ExprKind,
    /// Where it is in the source.
    pub span: Span,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `NOT x`
    Not,
}

/// Binary operators, in the dialect's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `OR`
    Or,
    /// `AND`
    And,
    /// `=`
    Eq,
    /// `<>` or `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

impl BinaryOp {
    /// The operator as the user writes it, for messages.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "OR",
            BinaryOp::And => "AND",
            BinaryOp::Eq => "=",
            BinaryOp::Ne => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

/// The expression forms of the dialect.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A numeric literal as written (`10`, `1.5`, `-2.411E247` is `Neg` of a number).
    Number(String),
    /// A string literal, quotes removed and doubled quotes collapsed.
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// `NULL`.
    Null,
    /// A top-level attribute of the current document.
    Ident(String),
    /// A `SET` variable, without the `@`.
    Var(String),
    /// `*` as a function argument: the whole current document (raw bytes for binary payloads).
    Star,
    /// `expr.name`.
    Member(Box<Expr>, String),
    /// A unary operator.
    Unary(UnaryOp, Box<Expr>),
    /// A binary operator.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// A function call; `name` keeps the user's spelling.
    Call {
        /// The function name as written.
        name: String,
        /// Where the name is.
        name_span: Span,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// `cast(expr AS type)`.
    Cast {
        /// The value to convert.
        expr: Box<Expr>,
        /// The type name as written.
        ty: String,
        /// Where the type name is.
        ty_span: Span,
    },
    /// `CASE operand WHEN v THEN r ... [ELSE e] END`.
    Case {
        /// The value compared with each WHEN.
        operand: Box<Expr>,
        /// WHEN value, THEN result.
        arms: Vec<(Expr, Expr)>,
        /// The ELSE result.
        otherwise: Option<Box<Expr>>,
    },
    /// `{'k': v, ...}`.
    Object(Vec<(String, Expr)>),
    /// `[a, b, ...]`.
    Array(Vec<Expr>),
    /// `(SELECT ... FROM path [WHERE ...])`.
    Nested(Box<Select>),
}

/// One item of a SELECT list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`.
    Star(Span),
    /// An expression with an optional `AS alias`.
    Expr {
        /// The value.
        expr: Expr,
        /// The alias and where it is.
        alias: Option<(String, Span)>,
        /// The expression's source text, used as the key when there is no alias and no path.
        text: String,
    },
}

/// What a SELECT reads from.
#[derive(Debug, Clone, PartialEq)]
pub enum FromSource {
    /// The outer statement's quoted MQTT topic filter.
    Topic(String, Span),
    /// A nested SELECT's array or object expression.
    Expr(Expr),
}

/// `SET @name = expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Variable name without `@`.
    pub name: String,
    /// Where the name is.
    pub name_span: Span,
    /// The value.
    pub value: Expr,
}

/// A SELECT statement (outer or nested).
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// `SET` assignments (outer statement only).
    pub set: Vec<Assignment>,
    /// `SELECT VALUE`, with the span of the keyword.
    pub value: Option<Span>,
    /// The SELECT list.
    pub items: Vec<SelectItem>,
    /// The FROM clause.
    pub from: Option<FromSource>,
    /// The WHERE condition.
    pub where_: Option<Expr>,
    /// The whole statement.
    pub span: Span,
}

/// A parameter value of an action.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A string; may hold `${...}` templates. `raw_start` is the byte offset of its first
    /// character inside the quotes, `quote` the quote character (for mapping template spans).
    Str {
        /// Unescaped text.
        text: String,
        /// Where the content starts in the source.
        raw_start: usize,
        /// `'` or `"`.
        quote: char,
        /// The whole literal.
        span: Span,
    },
    /// A number as written.
    Number(String, Span),
    /// `true`/`false`.
    Bool(bool, Span),
    /// `{'key': value, ...}`.
    Map(Vec<(String, Span, ParamValue)>, Span),
    /// `[value, ...]`.
    List(Vec<ParamValue>, Span),
}

impl ParamValue {
    /// Where the value is.
    pub fn span(&self) -> Span {
        match self {
            ParamValue::Str { span, .. }
            | ParamValue::Number(_, span)
            | ParamValue::Bool(_, span)
            | ParamValue::Map(_, span)
            | ParamValue::List(_, span) => *span,
        }
    }
}

/// `name = value` inside an action.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Parameter name.
    pub name: String,
    /// Where the name is.
    pub name_span: Span,
    /// The value.
    pub value: ParamValue,
}

/// `kind(param = value, ...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionDef {
    /// The action kind (`republish`, `http`, ...).
    pub kind: String,
    /// Where the kind is.
    pub kind_span: Span,
    /// Its parameters.
    pub params: Vec<Param>,
    /// The whole action.
    pub span: Span,
}

/// One `CREATE RULE ... ;` of a rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDef {
    /// The rule name.
    pub name: String,
    /// Where the name is.
    pub name_span: Span,
    /// `DESCRIPTION '...'`.
    pub description: Option<String>,
    /// `SQL VERSION '...'` and where the version string is.
    pub sql_version: Option<(String, Span)>,
    /// `DISABLED` turns this off; `ENABLED` is the default.
    pub enabled: bool,
    /// The statement.
    pub select: Select,
    /// `DO` actions.
    pub actions: Vec<ActionDef>,
    /// `ON ERROR` action.
    pub error_action: Option<ActionDef>,
    /// The whole definition.
    pub span: Span,
}
