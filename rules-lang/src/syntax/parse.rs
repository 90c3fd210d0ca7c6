//! pest parse tree -> AST, and pest errors -> diagnostics a person can act on.

use std::sync::LazyLock;

use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;

use super::ast::*;
use super::{Grammar, Rule};
use crate::diag::{Diagnostic, Span};

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::op_or, Assoc::Left))
        .op(Op::infix(Rule::op_and, Assoc::Left))
        .op(Op::prefix(Rule::op_not))
        .op(Op::infix(Rule::op_eq, Assoc::Left)
            | Op::infix(Rule::op_ne, Assoc::Left)
            | Op::infix(Rule::op_lt, Assoc::Left)
            | Op::infix(Rule::op_le, Assoc::Left)
            | Op::infix(Rule::op_gt, Assoc::Left)
            | Op::infix(Rule::op_ge, Assoc::Left))
        .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
        .op(Op::infix(Rule::op_mul, Assoc::Left)
            | Op::infix(Rule::op_div, Assoc::Left)
            | Op::infix(Rule::op_rem, Assoc::Left))
        .op(Op::prefix(Rule::op_neg))
        .op(Op::postfix(Rule::member))
});

/// Parses one IoT SQL statement (`[SET ...] SELECT ... [FROM 'filter'] [WHERE ...]`).
pub fn parse_statement(source: &str) -> Result<Select, Diagnostic> {
    let mut pairs = Grammar::parse(Rule::statement, source).map_err(|e| pest_error(source, e))?;
    let statement = pairs.next().expect("statement rule");
    let select = statement.into_inner().next().expect("select_stmt");
    Ok(select_stmt(select))
}

/// Parses a whole rule file into its rule definitions.
pub fn parse_rule_file(source: &str) -> Result<Vec<RuleDef>, Diagnostic> {
    let mut pairs = Grammar::parse(Rule::rule_file, source).map_err(|e| pest_error(source, e))?;
    let file = pairs.next().expect("rule_file rule");
    Ok(file.into_inner().filter(|p| p.as_rule() == Rule::rule_def).map(rule_def).collect())
}

/// Parses the expression inside a `${...}` template; spans are shifted by `offset` so they point
/// into the enclosing file.
pub fn parse_template_expr(text: &str, offset: usize) -> Result<Expr, Diagnostic> {
    let mut pairs = Grammar::parse(Rule::template_expr, text).map_err(|e| {
        let mut d = pest_error(text, e);
        d.span = d.span.shifted(offset);
        d
    })?;
    let root = pairs.next().expect("template_expr rule");
    let mut e = expr(root.into_inner().next().expect("expr"));
    shift_expr(&mut e, offset);
    Ok(e)
}

fn span_of(p: &Pair<'_, Rule>) -> Span {
    Span::new(p.as_span().start(), p.as_span().end())
}

fn unquote(p: Pair<'_, Rule>) -> String {
    // `string` wraps single_quoted / double_quoted.
    let inner = if p.as_rule() == Rule::string { p.into_inner().next().expect("quoted") } else { p };
    let raw = inner.as_str();
    let quote = &raw[..1];
    raw[1..raw.len() - 1].replace(&format!("{quote}{quote}"), quote)
}

fn rule_def(p: Pair<'_, Rule>) -> RuleDef {
    let span = span_of(&p);
    let mut def = RuleDef {
        name: String::new(),
        name_span: span,
        description: None,
        sql_version: None,
        enabled: true,
        select: Select { set: vec![], value: None, items: vec![], from: None, where_: None, span },
        actions: vec![],
        error_action: None,
        span,
    };
    for part in p.into_inner() {
        match part.as_rule() {
            Rule::rule_name => {
                def.name = part.as_str().to_string();
                def.name_span = span_of(&part);
            }
            Rule::rule_option => {
                let opt = part.into_inner().next().expect("option");
                match opt.as_rule() {
                    Rule::description_opt => {
                        let s = opt.into_inner().find(|p| p.as_rule() == Rule::string).expect("string");
                        def.description = Some(unquote(s));
                    }
                    Rule::version_opt => {
                        let s = opt.into_inner().find(|p| p.as_rule() == Rule::string).expect("string");
                        let sp = span_of(&s);
                        def.sql_version = Some((unquote(s), sp));
                    }
                    Rule::enabled_opt => def.enabled = true,
                    Rule::disabled_opt => def.enabled = false,
                    _ => {}
                }
            }
            Rule::select_stmt => def.select = select_stmt(part),
            Rule::do_clause => {
                def.actions = part.into_inner().filter(|p| p.as_rule() == Rule::action).map(action).collect()
            }
            Rule::error_clause => {
                def.error_action = part.into_inner().find(|p| p.as_rule() == Rule::action).map(action)
            }
            _ => {}
        }
    }
    def
}

fn action(p: Pair<'_, Rule>) -> ActionDef {
    let span = span_of(&p);
    let mut inner = p.into_inner();
    let kind = inner.next().expect("action_name");
    ActionDef {
        kind: kind.as_str().to_string(),
        kind_span: span_of(&kind),
        params: inner
            .map(|param| {
                let mut parts = param.into_inner();
                let name = parts.next().expect("param_name");
                Param {
                    name: name.as_str().to_string(),
                    name_span: span_of(&name),
                    value: param_value(parts.next().expect("param_value")),
                }
            })
            .collect(),
        span,
    }
}

fn param_value(p: Pair<'_, Rule>) -> ParamValue {
    let span = span_of(&p);
    match p.as_rule() {
        Rule::string => {
            let quote = p.as_str().chars().next().unwrap_or('\'');
            ParamValue::Str { text: unquote(p), raw_start: span.start + 1, quote, span }
        }
        Rule::param_number => ParamValue::Number(p.as_str().to_string(), span),
        Rule::lit_true => ParamValue::Bool(true, span),
        Rule::lit_false => ParamValue::Bool(false, span),
        Rule::param_map => ParamValue::Map(
            p.into_inner()
                .map(|entry| {
                    let mut parts = entry.into_inner();
                    let key = parts.next().expect("key");
                    let key_span = span_of(&key);
                    (unquote(key), key_span, param_value(parts.next().expect("value")))
                })
                .collect(),
            span,
        ),
        Rule::param_list => ParamValue::List(p.into_inner().map(param_value).collect(), span),
        other => unreachable!("unexpected parameter value rule {other:?}"),
    }
}

fn select_stmt(p: Pair<'_, Rule>) -> Select {
    let span = span_of(&p);
    let mut select = Select { set: vec![], value: None, items: vec![], from: None, where_: None, span };
    for part in p.into_inner() {
        match part.as_rule() {
            Rule::set_clause => {
                for a in part.into_inner().filter(|p| p.as_rule() == Rule::assignment) {
                    let mut parts = a.into_inner();
                    let var = parts.next().expect("variable");
                    select.set.push(Assignment {
                        name: var.as_str()[1..].to_string(),
                        name_span: span_of(&var),
                        value: expr(parts.next().expect("expr")),
                    });
                }
            }
            Rule::value_marker => select.value = Some(span_of(&part)),
            Rule::select_list => select.items = part.into_inner().map(select_item).collect(),
            Rule::from_clause => {
                let filter = part.into_inner().find(|p| p.as_rule() == Rule::topic_filter).expect("topic_filter");
                let s = filter.into_inner().next().expect("string");
                let sp = span_of(&s);
                select.from = Some(FromSource::Topic(unquote(s), sp));
            }
            Rule::where_clause => select.where_ = Some(expr(part.into_inner().last().expect("expr"))),
            _ => {}
        }
    }
    select
}

fn nested_select(p: Pair<'_, Rule>) -> Select {
    let span = span_of(&p);
    let mut select = Select { set: vec![], value: None, items: vec![], from: None, where_: None, span };
    for part in p.into_inner() {
        match part.as_rule() {
            Rule::value_marker => select.value = Some(span_of(&part)),
            Rule::select_list => select.items = part.into_inner().map(select_item).collect(),
            Rule::expr => select.from = Some(FromSource::Expr(expr(part))),
            Rule::where_clause => select.where_ = Some(expr(part.into_inner().last().expect("expr"))),
            _ => {}
        }
    }
    select
}

fn select_item(p: Pair<'_, Rule>) -> SelectItem {
    let span = span_of(&p);
    let mut inner = p.into_inner();
    let first = inner.next().expect("item");
    if first.as_rule() == Rule::star {
        return SelectItem::Star(span);
    }
    let text = first.as_str().split_whitespace().collect::<Vec<_>>().join(" ");
    let e = expr(first);
    let alias = inner.find(|p| p.as_rule() == Rule::alias).map(|a| (a.as_str().to_string(), span_of(&a)));
    SelectItem::Expr { expr: e, alias, text }
}

fn expr(p: Pair<'_, Rule>) -> Expr {
    debug_assert_eq!(p.as_rule(), Rule::expr);
    pratt(p.into_inner())
}

fn pratt(pairs: Pairs<'_, Rule>) -> Expr {
    PRATT
        .map_primary(primary)
        .map_prefix(|op, rhs| {
            let op_span = span_of(&op);
            let kind = if op.as_rule() == Rule::op_neg { UnaryOp::Neg } else { UnaryOp::Not };
            Expr { span: op_span.to(rhs.span), kind: ExprKind::Unary(kind, Box::new(rhs)) }
        })
        .map_postfix(|lhs, op| {
            let op_span = span_of(&op);
            let name = op.into_inner().next().expect("member name").as_str().to_string();
            Expr { span: lhs.span.to(op_span), kind: ExprKind::Member(Box::new(lhs), name) }
        })
        .map_infix(|lhs, op, rhs| {
            let kind = match op.as_rule() {
                Rule::op_or => BinaryOp::Or,
                Rule::op_and => BinaryOp::And,
                Rule::op_eq => BinaryOp::Eq,
                Rule::op_ne => BinaryOp::Ne,
                Rule::op_lt => BinaryOp::Lt,
                Rule::op_le => BinaryOp::Le,
                Rule::op_gt => BinaryOp::Gt,
                Rule::op_ge => BinaryOp::Ge,
                Rule::op_add => BinaryOp::Add,
                Rule::op_sub => BinaryOp::Sub,
                Rule::op_mul => BinaryOp::Mul,
                Rule::op_div => BinaryOp::Div,
                Rule::op_rem => BinaryOp::Rem,
                other => unreachable!("not an infix operator: {other:?}"),
            };
            Expr { span: lhs.span.to(rhs.span), kind: ExprKind::Binary(kind, Box::new(lhs), Box::new(rhs)) }
        })
        .parse(pairs)
}

fn primary(p: Pair<'_, Rule>) -> Expr {
    let span = span_of(&p);
    let kind = match p.as_rule() {
        Rule::number => ExprKind::Number(p.as_str().to_string()),
        Rule::string => ExprKind::Str(unquote(p)),
        Rule::lit_true => ExprKind::Bool(true),
        Rule::lit_false => ExprKind::Bool(false),
        Rule::lit_null => ExprKind::Null,
        Rule::variable => ExprKind::Var(p.as_str()[1..].to_string()),
        Rule::ident => ExprKind::Ident(p.as_str().to_string()),
        Rule::star => ExprKind::Star,
        Rule::paren => return expr(p.into_inner().next().expect("expr")),
        Rule::nested_select => ExprKind::Nested(Box::new(nested_select(p))),
        Rule::call => {
            let mut inner = p.into_inner();
            let name = inner.next().expect("name");
            let name_span = span_of(&name);
            let args = inner.map(|a| if a.as_rule() == Rule::star { primary(a) } else { expr(a) }).collect();
            ExprKind::Call { name: name.as_str().to_string(), name_span, args }
        }
        Rule::cast_call => {
            let mut inner = p.into_inner().filter(|p| matches!(p.as_rule(), Rule::expr | Rule::type_name));
            let value = expr(inner.next().expect("expr"));
            let ty = inner.next().expect("type");
            ExprKind::Cast { expr: Box::new(value), ty: ty.as_str().to_string(), ty_span: span_of(&ty) }
        }
        Rule::case_expr => {
            let mut operand = None;
            let mut arms = vec![];
            let mut otherwise = None;
            for part in p.into_inner() {
                match part.as_rule() {
                    Rule::expr => operand = Some(Box::new(expr(part))),
                    Rule::when_arm => {
                        let mut es = part.into_inner().filter(|p| p.as_rule() == Rule::expr);
                        let when = expr(es.next().expect("when"));
                        let then = expr(es.next().expect("then"));
                        arms.push((when, then));
                    }
                    Rule::else_arm => {
                        otherwise = part.into_inner().find(|p| p.as_rule() == Rule::expr).map(|e| Box::new(expr(e)))
                    }
                    _ => {}
                }
            }
            ExprKind::Case { operand: operand.expect("case operand"), arms, otherwise }
        }
        Rule::object => {
            let mut entries = vec![];
            let mut inner = p.into_inner();
            while let Some(key) = inner.next() {
                let k = key.into_inner().next().expect("key");
                let name = if k.as_rule() == Rule::string { unquote(k) } else { k.as_str().to_string() };
                entries.push((name, expr(inner.next().expect("value"))));
            }
            ExprKind::Object(entries)
        }
        Rule::array => ExprKind::Array(p.into_inner().map(expr).collect()),
        other => unreachable!("unexpected primary {other:?}"),
    };
    Expr { kind, span }
}

fn shift_expr(e: &mut Expr, offset: usize) {
    e.span = e.span.shifted(offset);
    match &mut e.kind {
        ExprKind::Member(inner, _) | ExprKind::Unary(_, inner) => shift_expr(inner, offset),
        ExprKind::Binary(_, l, r) => {
            shift_expr(l, offset);
            shift_expr(r, offset);
        }
        ExprKind::Call { name_span, args, .. } => {
            *name_span = name_span.shifted(offset);
            args.iter_mut().for_each(|a| shift_expr(a, offset));
        }
        ExprKind::Cast { expr, ty_span, .. } => {
            *ty_span = ty_span.shifted(offset);
            shift_expr(expr, offset);
        }
        ExprKind::Case { operand, arms, otherwise } => {
            shift_expr(operand, offset);
            for (w, t) in arms {
                shift_expr(w, offset);
                shift_expr(t, offset);
            }
            if let Some(o) = otherwise {
                shift_expr(o, offset);
            }
        }
        ExprKind::Object(entries) => entries.iter_mut().for_each(|(_, v)| shift_expr(v, offset)),
        ExprKind::Array(items) => items.iter_mut().for_each(|v| shift_expr(v, offset)),
        ExprKind::Nested(select) => {
            select.span = select.span.shifted(offset);
            for item in &mut select.items {
                match item {
                    SelectItem::Star(s) => *s = s.shifted(offset),
                    SelectItem::Expr { expr, alias, .. } => {
                        shift_expr(expr, offset);
                        if let Some((_, s)) = alias {
                            *s = s.shifted(offset);
                        }
                    }
                }
            }
            if let Some(FromSource::Expr(e)) = &mut select.from {
                shift_expr(e, offset);
            }
            if let Some(w) = &mut select.where_ {
                shift_expr(w, offset);
            }
        }
        _ => {}
    }
}

/// Turns a pest error into a diagnostic that names what was found and what would have fitted.
fn pest_error(source: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let found = describe_found(source, pos);
    let mut expected: Vec<&'static str> = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives.iter().filter_map(friendly).collect(),
        pest::error::ErrorVariant::CustomError { .. } => vec![],
    };
    expected.sort_unstable();
    expected.dedup();
    if previous_word(source, pos).eq_ignore_ascii_case("from") && !source[pos..].starts_with(['\'', '"']) {
        // An unquoted topic after FROM: name the fix rather than the expression grammar.
        expected = vec!["a quoted topic filter"];
    }
    let end = (pos + found_len(source, pos)).min(source.len());
    let message = match expected.len() {
        0 => format!("unexpected {found}"),
        1 => format!("expected {}, found {found}", expected[0]),
        _ => {
            let (last, rest) = expected.split_last().expect("non-empty");
            format!("expected {} or {last}, found {found}", rest.join(", "))
        }
    };
    let mut d = Diagnostic::new(Span::new(pos, end), message);
    if let Some(help) = hint(source, pos, &expected) {
        d = d.with_help(help);
    }
    d
}

fn previous_word(source: &str, pos: usize) -> &str {
    let before = source[..pos.min(source.len())].trim_end();
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &before[start..]
}

fn found_len(source: &str, pos: usize) -> usize {
    let rest = &source[pos.min(source.len())..];
    let word: usize = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').map(char::len_utf8).sum();
    if word > 0 {
        word
    } else {
        rest.chars().next().map_or(0, char::len_utf8)
    }
}

fn describe_found(source: &str, pos: usize) -> String {
    let rest = &source[pos.min(source.len())..];
    if rest.trim().is_empty() {
        return "end of input".to_string();
    }
    let len = found_len(source, pos);
    format!("`{}`", &rest[..len])
}

fn hint(source: &str, pos: usize, expected: &[&str]) -> Option<String> {
    let rest = source[pos.min(source.len())..].trim_start();
    let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>().to_lowercase();
    if expected.contains(&"a quoted topic filter") {
        return Some("write the FROM topic filter in single quotes, for example FROM 'device/+/data'".into());
    }
    if matches!(word.as_str(), "select" | "from" | "where" | "as" | "and" | "or" | "not" | "case" | "end" | "null")
        && (expected.contains(&"an expression") || expected.contains(&"an alias"))
    {
        return Some(format!(
            "`{word}` is a keyword; to read an attribute with that name use get(*, '{word}') or a nested path"
        ));
    }
    let before = source[..pos.min(source.len())].trim_end();
    if before.ends_with(',') && word == "from" {
        return Some("remove the trailing comma before FROM".into());
    }
    if expected.contains(&"DO") {
        return Some("a rule needs at least one action: DO republish(topic = 'out/topic')".into());
    }
    if expected.contains(&"`;`") {
        return Some("end each CREATE RULE with `;`".into());
    }
    None
}

fn friendly(rule: &Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::expr
        | Rule::number
        | Rule::string
        | Rule::ident
        | Rule::variable
        | Rule::call
        | Rule::paren
        | Rule::nested_select
        | Rule::case_expr
        | Rule::cast_call
        | Rule::object
        | Rule::array
        | Rule::lit_true
        | Rule::lit_false
        | Rule::lit_null
        | Rule::op_neg
        | Rule::op_not => "an expression",
        Rule::select_item | Rule::select_list | Rule::star => "a SELECT item",
        Rule::alias => "an alias",
        Rule::kw_select | Rule::select_stmt | Rule::set_clause => "SELECT",
        Rule::kw_value | Rule::value_marker => "VALUE",
        Rule::kw_from | Rule::from_clause => "FROM",
        Rule::topic_filter => "a quoted topic filter",
        Rule::kw_where | Rule::where_clause => "WHERE",
        Rule::kw_as => "AS",
        Rule::kw_when | Rule::when_arm => "WHEN",
        Rule::kw_then => "THEN",
        Rule::kw_else | Rule::else_arm => "ELSE",
        Rule::kw_end => "END",
        Rule::type_name => "a type name",
        Rule::object_key => "an object key",
        Rule::member | Rule::member_name => "an attribute name",
        Rule::op_or
        | Rule::op_and
        | Rule::op_eq
        | Rule::op_ne
        | Rule::op_lt
        | Rule::op_le
        | Rule::op_gt
        | Rule::op_ge
        | Rule::op_add
        | Rule::op_sub
        | Rule::op_mul
        | Rule::op_div
        | Rule::op_rem => "an operator",
        Rule::kw_create | Rule::rule_def => "CREATE RULE",
        Rule::kw_rule => "RULE",
        Rule::rule_name => "a rule name",
        Rule::rule_option | Rule::kw_description | Rule::kw_sql | Rule::kw_enabled | Rule::kw_disabled => {
            "a rule option (DESCRIPTION, SQL VERSION, ENABLED, DISABLED)"
        }
        Rule::kw_version => "VERSION",
        Rule::kw_do | Rule::do_clause => "DO",
        Rule::kw_on | Rule::error_clause => "ON ERROR",
        Rule::kw_error => "ERROR",
        Rule::action | Rule::action_name => "an action",
        Rule::param | Rule::param_name => "a parameter (name = value)",
        Rule::param_number | Rule::param_map | Rule::param_list | Rule::map_entry => "a parameter value",
        Rule::EOI => "end of input",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_puts_multiplication_over_addition_and_and_over_or() {
        let s = parse_statement("SELECT a + b * c AS r FROM 't' WHERE x OR y AND z").unwrap();
        let SelectItem::Expr { expr, .. } = &s.items[0] else { panic!() };
        let ExprKind::Binary(BinaryOp::Add, _, rhs) = &expr.kind else { panic!("{expr:?}") };
        assert!(matches!(rhs.kind, ExprKind::Binary(BinaryOp::Mul, _, _)));
        let ExprKind::Binary(BinaryOp::Or, _, rhs) = &s.where_.as_ref().unwrap().kind else { panic!() };
        assert!(matches!(rhs.kind, ExprKind::Binary(BinaryOp::And, _, _)));
    }

    #[test]
    fn value_is_an_attribute_name_when_not_followed_by_an_item() {
        let s = parse_statement("SELECT value FROM 't'").unwrap();
        assert!(s.value.is_none());
        let s = parse_statement("SELECT VALUE value FROM 't'").unwrap();
        assert!(s.value.is_some());
    }

    #[test]
    fn member_access_applies_to_call_results() {
        let s = parse_statement("SELECT decode(x, 'base64').temperature AS t FROM 't'").unwrap();
        let SelectItem::Expr { expr, .. } = &s.items[0] else { panic!() };
        assert!(
            matches!(&expr.kind, ExprKind::Member(inner, name) if name == "temperature" && matches!(inner.kind, ExprKind::Call { .. }))
        );
    }

    #[test]
    fn errors_after_multibyte_characters_do_not_panic() {
        // Found by the rules_parser fuzz target: a comment ending in a multibyte character.
        let e = parse_statement("--\u{3cc}\u{487}A ").unwrap_err();
        assert!(e.message.starts_with("expected"), "{}", e.message);
        let e = parse_statement("SELECT é FROM 't'").unwrap_err();
        assert!(e.message.contains("found `é`"), "{}", e.message);
    }

    #[test]
    fn missing_from_quotes_names_the_fix() {
        let e = parse_statement("SELECT * FROM topic/#").unwrap_err();
        assert!(e.message.contains("a quoted topic filter"), "{}", e.message);
        assert_eq!(e.span.start, 14);
    }

    #[test]
    fn rule_file_with_options_actions_and_error_action() {
        let src = "-- c\nCREATE RULE r1 DESCRIPTION 'd' SQL VERSION '2015-10-08' DISABLED\nAS SELECT * FROM 'a/#'\nDO republish(topic = 'x/${topic(2)}', qos = 1), log()\nON ERROR log(level = 'warn');";
        let rules = parse_rule_file(src).unwrap();
        assert_eq!(rules.len(), 1);
        let r = &rules[0];
        assert_eq!(r.name, "r1");
        assert!(!r.enabled);
        assert_eq!(r.sql_version.as_ref().unwrap().0, "2015-10-08");
        assert_eq!(r.actions.len(), 2);
        assert_eq!(r.error_action.as_ref().unwrap().kind, "log");
    }
}
