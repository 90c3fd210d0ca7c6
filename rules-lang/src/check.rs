//! The checker: resolves a parsed statement into IR, reporting every problem it can find with a
//! span and a fix: unknown or misspelled functions, wrong arity, features of the wrong SQL
//! version, functions that only work inside AWS, unknown variables, bad constants.

use crate::diag::{Diagnostic, Span};
use crate::functions::{self, Builtin, UNAVAILABLE};
use crate::ir::{BinOp, CastType, Expr, Item, Query, Statement};
use crate::num::Dec;
use crate::syntax::ast::{self, ExprKind, FromSource, SelectItem};
use crate::value::{SqlVersion, Value};

/// Longest SET variable name AWS allows.
pub const MAX_VARIABLE_NAME: usize = 64;

/// Checks a parsed statement for a SQL version.
pub fn check_statement(select: &ast::Select, version: SqlVersion) -> Result<Statement, Vec<Diagnostic>> {
    let mut c = Checker { version, vars: vec![], diags: vec![] };
    let mut vars = vec![];
    for a in &select.set {
        if a.name.len() > MAX_VARIABLE_NAME {
            c.error(a.name_span, format!("variable name `@{}` is longer than {MAX_VARIABLE_NAME} characters", a.name));
        }
        let value = c.expr(&a.value);
        if c.vars.contains(&a.name) {
            c.diags.push(
                Diagnostic::new(a.name_span, format!("variable `@{}` is already set", a.name))
                    .with_help("variables are immutable: give the second one another name"),
            );
        }
        c.vars.push(a.name.clone());
        vars.push((a.name.clone(), value));
    }
    let topic_filter = match &select.from {
        Some(FromSource::Topic(filter, span)) => {
            if let Err(why) = validate_topic_filter(filter) {
                c.diags.push(
                    Diagnostic::new(*span, format!("invalid topic filter '{filter}': {why}"))
                        .with_help("`+` matches one whole level and `#` the remaining levels, only at the end: 'device/+/data', 'device/#'"),
                );
            }
            Some(filter.clone())
        }
        _ => None,
    };
    let query = c.query(select, false);
    if c.diags.is_empty() {
        Ok(Statement { version, vars, query, topic_filter })
    } else {
        Err(c.diags)
    }
}

/// Checks a `${...}` template expression in the scope of a statement's SET variables.
pub fn check_template(expr: &ast::Expr, stmt: &Statement) -> Result<Expr, Vec<Diagnostic>> {
    let mut c =
        Checker { version: stmt.version, vars: stmt.vars.iter().map(|(n, _)| n.clone()).collect(), diags: vec![] };
    let e = c.expr(expr);
    if c.diags.is_empty() {
        Ok(e)
    } else {
        Err(c.diags)
    }
}

/// Why an MQTT topic filter is invalid, if it is.
pub fn validate_topic_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("it is empty");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != levels.len() - 1) {
            return Err("`#` must be a whole level and the last one");
        }
        if level.contains('+') && *level != "+" {
            return Err("`+` must be a whole level");
        }
    }
    if filter.contains('\0') {
        return Err("it contains a NUL character");
    }
    Ok(())
}

struct Checker {
    version: SqlVersion,
    vars: Vec<String>,
    diags: Vec<Diagnostic>,
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggest_function(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    functions::SIGNATURES
        .iter()
        .map(|s| (edit_distance(&lower, s.name), s.name))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl Checker {
    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(span, message));
    }

    fn needs_v2(&mut self, span: Span, what: &str) {
        if !self.version.is_v2() {
            self.diags.push(
                Diagnostic::new(span, format!("{what} needs SQL version 2016-03-23; this rule uses 2015-10-08"))
                    .with_help("set SQL VERSION '2016-03-23' on the rule"),
            );
        }
    }

    fn query(&mut self, select: &ast::Select, nested: bool) -> Query {
        if let Some(span) = select.value {
            if select.items.len() != 1 {
                self.diags.push(
                    Diagnostic::new(span, format!("SELECT VALUE takes exactly one item, found {}", select.items.len()))
                        .with_help("select one expression, or build an object or array literal"),
                );
            }
        }
        let items = select
            .items
            .iter()
            .map(|item| match item {
                SelectItem::Star(_) if select.value.is_some() && !nested => {
                    Item::Named { name: "*".into(), expr: Expr::Doc }
                }
                SelectItem::Star(_) => Item::Star,
                SelectItem::Expr { expr, alias: Some((a, _)), .. } if a.contains('.') => {
                    Item::Dotted { path: a.split('.').map(str::to_string).collect(), expr: self.expr(expr) }
                }
                SelectItem::Expr { expr, alias, text } => {
                    let name = match (alias, &expr.kind) {
                        (Some((a, _)), _) => a.clone(),
                        (None, ExprKind::Ident(n) | ExprKind::Member(_, n) | ExprKind::Var(n)) => n.clone(),
                        (None, _) => text.clone(),
                    };
                    Item::Named { name, expr: self.expr(expr) }
                }
            })
            .collect();
        let source = match &select.from {
            Some(FromSource::Expr(e)) => Some(self.expr(e)),
            _ => None,
        };
        let condition = select.where_.as_ref().map(|w| self.expr(w));
        Query { value: select.value.is_some(), items, source, condition }
    }

    fn expr(&mut self, e: &ast::Expr) -> Expr {
        match &e.kind {
            ExprKind::Number(text) => match number(text) {
                Some(v) => Expr::Const(v),
                None => {
                    self.error(e.span, format!("number `{text}` is out of range"));
                    Expr::Const(Value::Undefined)
                }
            },
            ExprKind::Str(s) => Expr::Const(Value::String(s.clone())),
            ExprKind::Bool(b) => Expr::Const(Value::Bool(*b)),
            ExprKind::Null => Expr::Const(Value::Null),
            ExprKind::Ident(name) => Expr::Attr(name.clone()),
            ExprKind::Var(name) => match self.vars.iter().position(|v| v == name) {
                Some(slot) => Expr::Var(slot),
                None => {
                    self.diags.push(
                        Diagnostic::new(e.span, format!("variable `@{name}` is not set"))
                            .with_help(format!("assign it before SELECT: SET @{name} = <expression>")),
                    );
                    Expr::Const(Value::Undefined)
                }
            },
            ExprKind::Star => Expr::Doc,
            ExprKind::Member(inner, name) => Expr::Member(Box::new(self.expr(inner)), name.clone()),
            ExprKind::Unary(op, inner) => {
                let inner = self.expr(inner);
                match (op, inner) {
                    (ast::UnaryOp::Neg, Expr::Const(v @ (Value::Int(_) | Value::Decimal(_)))) => {
                        Expr::Const(crate::interp::negate(&v))
                    }
                    (ast::UnaryOp::Neg, inner) => Expr::Neg(Box::new(inner)),
                    (ast::UnaryOp::Not, inner) => Expr::Not(Box::new(inner)),
                }
            }
            ExprKind::Binary(op, l, r) => {
                let op = match op {
                    ast::BinaryOp::Or => BinOp::Or,
                    ast::BinaryOp::And => BinOp::And,
                    ast::BinaryOp::Eq => BinOp::Eq,
                    ast::BinaryOp::Ne => BinOp::Ne,
                    ast::BinaryOp::Lt => BinOp::Lt,
                    ast::BinaryOp::Le => BinOp::Le,
                    ast::BinaryOp::Gt => BinOp::Gt,
                    ast::BinaryOp::Ge => BinOp::Ge,
                    ast::BinaryOp::Add => BinOp::Add,
                    ast::BinaryOp::Sub => BinOp::Sub,
                    ast::BinaryOp::Mul => BinOp::Mul,
                    ast::BinaryOp::Div => BinOp::Div,
                    ast::BinaryOp::Rem => BinOp::Rem,
                };
                Expr::Binary(op, Box::new(self.expr(l)), Box::new(self.expr(r)))
            }
            ExprKind::Call { name, name_span, args } => self.call(name, *name_span, args, e.span),
            ExprKind::Cast { expr, ty, ty_span } => {
                let target = match ty.to_ascii_lowercase().as_str() {
                    "string" | "nvarchar" | "text" | "ntext" | "varchar" => Some(CastType::String),
                    "int" | "integer" => Some(CastType::Int),
                    "double" => Some(CastType::Double),
                    "decimal" => Some(CastType::Decimal),
                    "bool" | "boolean" => Some(CastType::Bool),
                    _ => None,
                };
                let inner = self.expr(expr);
                match target {
                    Some(t) => {
                        if matches!(t, CastType::Decimal | CastType::Bool) {
                            self.needs_v2(*ty_span, &format!("cast to {ty}"));
                        }
                        Expr::Cast(Box::new(inner), t)
                    }
                    None => {
                        self.diags.push(
                            Diagnostic::new(*ty_span, format!("unknown cast type `{ty}`")).with_help(
                                "cast to String, Nvarchar, Text, Ntext, varchar, Int, Integer, Double, Decimal, Bool or Boolean",
                            ),
                        );
                        Expr::Const(Value::Undefined)
                    }
                }
            }
            ExprKind::Case { operand, arms, otherwise } => {
                let operand = Box::new(self.expr(operand));
                let arms =
                    arms.iter()
                        .map(|(w, t)| {
                            let when = self.expr(w);
                            if !matches!(when, Expr::Const(_)) {
                                self.diags.push(Diagnostic::new(w.span, "a WHEN value must be a constant").with_help(
                                    "AWS IoT SQL has only the simple CASE form: CASE x WHEN 'a' THEN ... END",
                                ));
                            }
                            (when, self.expr(t))
                        })
                        .collect();
                let otherwise = otherwise.as_ref().map(|o| Box::new(self.expr(o)));
                Expr::Case { operand, arms, otherwise }
            }
            ExprKind::Object(entries) => {
                self.needs_v2(e.span, "an object literal");
                Expr::Object(entries.iter().map(|(k, v)| (k.clone(), self.expr(v))).collect())
            }
            ExprKind::Array(items) => {
                self.needs_v2(e.span, "an array literal");
                Expr::Array(items.iter().map(|v| self.expr(v)).collect())
            }
            ExprKind::Nested(select) => {
                self.needs_v2(e.span, "a nested SELECT");
                Expr::Nested(Box::new(self.query(select, true)))
            }
        }
    }

    fn call(&mut self, name: &str, name_span: Span, args: &[ast::Expr], span: Span) -> Expr {
        let lower = name.to_ascii_lowercase();
        if let Some((_, why)) = UNAVAILABLE.iter().find(|(n, _)| *n == lower) {
            self.error(name_span, format!("function `{lower}` cannot run in Ferrite: {why}"));
            return Expr::Const(Value::Undefined);
        }
        if lower == "decode" && args.len() > 2 {
            self.diags.push(
                Diagnostic::new(span, "decode(..., 'proto', ...) cannot run in Ferrite: it reads its Protobuf descriptor from Amazon S3, which does not exist outside AWS")
                    .with_help("decode Protobuf in an HTTP function called with aws_lambda, or publish JSON"),
            );
            return Expr::Const(Value::Undefined);
        }
        let Some(sig) = functions::lookup(name) else {
            let mut d = Diagnostic::new(name_span, format!("unknown function `{name}`"));
            if let Some(s) = suggest_function(name) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
            return Expr::Const(Value::Undefined);
        };
        if args.len() < sig.min_args || args.len() > sig.max_args {
            let expected = if sig.min_args == sig.max_args {
                format!("{} argument{}", sig.min_args, plural(sig.min_args))
            } else if sig.max_args == usize::MAX {
                format!("at least {} argument{}", sig.min_args, plural(sig.min_args))
            } else {
                format!("{} to {} arguments", sig.min_args, sig.max_args)
            };
            let fix =
                if args.len() < sig.min_args { "add the missing arguments" } else { "remove the extra arguments" };
            self.diags.push(
                Diagnostic::new(span, format!("function `{}` takes {expected}, found {}", sig.name, args.len()))
                    .with_help(format!("{fix}; docs/rules.md lists every function")),
            );
        }
        if sig.v2_only {
            self.needs_v2(name_span, &format!("function `{}`", sig.name));
        }
        let checked: Vec<Expr> = args.iter().map(|a| self.expr(a)).collect();
        self.constant_arguments(sig.builtin, args, &checked);
        Expr::Call(sig.builtin, checked)
    }

    /// Validates regular expressions and time patterns that are written as constants.
    fn constant_arguments(&mut self, builtin: Builtin, args: &[ast::Expr], checked: &[Expr]) {
        let constant = |i: usize| match checked.get(i) {
            Some(Expr::Const(Value::String(s))) => Some(s.clone()),
            _ => None,
        };
        let (index, result) = match builtin {
            Builtin::RegexpMatches | Builtin::RegexpReplace | Builtin::RegexpSubstr => (
                1,
                constant(1)
                    .map(|p| functions::validate_regex(&p).map_err(|e| format!("invalid regular expression: {e}"))),
            ),
            Builtin::ParseTime => (
                0,
                constant(0)
                    .map(|p| functions::validate_format_pattern(&p).map_err(|e| format!("invalid time pattern: {e}"))),
            ),
            Builtin::TimeToEpoch => (
                1,
                constant(1)
                    .map(|p| functions::validate_parse_pattern(&p).map_err(|e| format!("invalid time pattern: {e}"))),
            ),
            _ => return,
        };
        if let (Some(Err(message)), Some(arg)) = (result, args.get(index)) {
            self.error(arg.span, message);
        }
    }
}

/// A numeric literal: Int when it is whole and fits, Decimal otherwise.
fn number(text: &str) -> Option<Value> {
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(i) = text.parse::<i128>() {
            return Some(Value::Int(i));
        }
    }
    Dec::parse(text).map(Value::Decimal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse_statement;

    fn errors(sql: &str, version: SqlVersion) -> Vec<String> {
        let select = parse_statement(sql).unwrap();
        check_statement(&select, version).err().unwrap_or_default().into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn misspelled_function_gets_a_suggestion() {
        let select = parse_statement("SELECT lenght(a) AS n FROM 't'").unwrap();
        let d = &check_statement(&select, SqlVersion::V2016_03_23).unwrap_err()[0];
        assert_eq!(d.message, "unknown function `lenght`");
        assert_eq!(d.help.as_deref(), Some("did you mean `length`?"));
        assert_eq!(d.span, Span::new(7, 13));
    }

    #[test]
    fn version_2_features_are_refused_under_version_1() {
        let v1 = SqlVersion::V2015_10_08;
        assert!(errors("SELECT [1] AS a FROM 't'", v1)[0].contains("array literal"));
        assert!(errors("SELECT encode(*, 'base64') AS a FROM 't'", v1)[0].contains("encode"));
        assert!(errors("SELECT (SELECT VALUE n FROM e) AS a FROM 't'", v1)[0].contains("nested SELECT"));
        assert!(errors("SELECT cast(1 AS Bool) AS a FROM 't'", v1)[0].contains("cast"));
    }

    #[test]
    fn aws_only_functions_name_themselves_and_say_why() {
        let e = errors("SELECT get_dynamodb('t', 'k', 'v', 'arn') AS a FROM 't'", SqlVersion::V2016_03_23);
        assert!(e[0].starts_with("function `get_dynamodb` cannot run in Ferrite"), "{e:?}");
    }

    #[test]
    fn arity_unknown_variables_and_bad_filters_are_errors() {
        let v2 = SqlVersion::V2016_03_23;
        assert_eq!(errors("SELECT abs(1, 2) AS a FROM 't'", v2), ["function `abs` takes 1 argument, found 2"]);
        assert_eq!(errors("SELECT @x AS a FROM 't'", v2), ["variable `@x` is not set"]);
        assert!(errors("SELECT * FROM 'a/#/b'", v2)[0].starts_with("invalid topic filter"));
        assert!(errors("SELECT regexp_matches(a, '(') AS m FROM 't'", v2)[0].starts_with("invalid regular expression"));
    }
}
