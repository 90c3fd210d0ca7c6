//! The `Conditions` section: named boolean conditions built from `Fn::Equals`, `Fn::Not`,
//! `Fn::And`, `Fn::Or` and references to other conditions.
//!
//! Conditions may refer to each other (directly, or through `Fn::If` inside an `Fn::Equals`), so
//! parsing orders them so that each comes after those it uses and refuses cycles. Evaluation
//! then computes every condition once, in that order: no recursion across conditions, and a
//! chain of conditions that each use the previous one twice stays linear.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use super::error::{Path, TemplateError};
use super::evaluate::Env;
use super::fields::{self, kind_of};
use super::intrinsic::{is_text, Compiler, Expr};

/// Most operands of `Fn::And` / `Fn::Or`, as on AWS.
const MAX_OPERANDS: usize = 10;

/// One compiled condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    Equals(Expr, Expr),
    Not(Box<Condition>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Named(usize),
}

/// The `Conditions` section, compiled and ordered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Conditions {
    names: Vec<String>,
    bodies: Vec<Condition>,
    /// Indices into `names`/`bodies`, each after every condition it uses.
    order: Vec<usize>,
}

/// The condition names a template declares, numbered; needed before anything that can refer to
/// a condition is compiled.
pub(crate) fn names(section: Option<&Value>) -> Result<BTreeMap<String, usize>, TemplateError> {
    let Some(section) = section else { return Ok(BTreeMap::new()) };
    let map = fields::object(section, &Path::root("Conditions"))?;
    Ok(map.keys().enumerate().map(|(index, name)| (name.clone(), index)).collect())
}

impl Conditions {
    /// Compiles the section; `compiler` must know the names returned by [`names`] for it.
    pub(crate) fn compile(section: Option<&Value>, compiler: &mut Compiler) -> Result<Conditions, TemplateError> {
        let Some(section) = section else { return Ok(Conditions::default()) };
        let root = Path::root("Conditions");
        let map = fields::object(section, &root)?;
        let mut names = Vec::with_capacity(map.len());
        let mut bodies = Vec::with_capacity(map.len());
        let mut uses = Vec::with_capacity(map.len());
        compiler.take_referenced();
        for (name, body) in map {
            names.push(name.clone());
            bodies.push(compile(compiler, body, &root.key(name))?);
            let mut used = compiler.take_referenced();
            used.sort_unstable();
            used.dedup();
            uses.push(used);
        }
        let order = order(&names, &uses)?;
        Ok(Conditions { names, bodies, order })
    }

    /// How many conditions there are.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// Computes every condition into `env`.
    pub(crate) fn evaluate(&self, env: &mut Env) -> Result<(), TemplateError> {
        let root = Path::root("Conditions");
        for &index in &self.order {
            let (Some(name), Some(body)) = (self.names.get(index), self.bodies.get(index)) else { continue };
            let value = evaluate(env, body, &root.key(name))?;
            env.set_condition(index, value);
        }
        Ok(())
    }
}

fn compile(compiler: &mut Compiler, value: &Value, path: &Path) -> Result<Condition, TemplateError> {
    const EXPECTED: &str =
        "expected a condition: an object with one of Fn::Equals, Fn::Not, Fn::And, Fn::Or or Condition";
    let Value::Object(map) = value else {
        return Err(path.error(format_args!("{EXPECTED}, found {}", kind_of(value))));
    };
    let (1, Some((name, args))) = (map.len(), map.iter().next()) else {
        return Err(path.error(EXPECTED));
    };
    let at = path.key(name);
    let operands = |count: std::ops::RangeInclusive<usize>, expects: &str| match args {
        Value::Array(items) if count.contains(&items.len()) => Ok(items),
        other => Err(path.error(format_args!("{name} expects {expects}, found {}", describe(other)))),
    };
    match name.as_str() {
        "Fn::Equals" => {
            let items = operands(2..=2, "[value, value]")?;
            let mut values = items.iter().enumerate().map(|(index, item)| compiler.expr(item, &at.index(index)));
            match (values.next(), values.next()) {
                (Some(left), Some(right)) => Ok(Condition::Equals(left?, right?)),
                _ => Err(path.error("Fn::Equals expects [value, value]")),
            }
        }
        "Fn::Not" => {
            let items = operands(1..=1, "[condition]")?;
            let inner = items.first().map(|item| compile(compiler, item, &at.index(0)));
            let inner = inner.ok_or_else(|| path.error("Fn::Not expects [condition]"))??;
            Ok(Condition::Not(Box::new(inner)))
        }
        "Fn::And" | "Fn::Or" => {
            let items = operands(2..=MAX_OPERANDS, "a list of 2 to 10 conditions")?;
            let inner = items
                .iter()
                .enumerate()
                .map(|(index, item)| compile(compiler, item, &at.index(index)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if name == "Fn::And" { Condition::And(inner) } else { Condition::Or(inner) })
        }
        "Condition" => Ok(Condition::Named(compiler.condition(args, &at)?)),
        _ => Err(path.error(format_args!("{EXPECTED}, found \"{name}\""))),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("a list of {}", items.len()),
        other => kind_of(other).to_string(),
    }
}

/// Orders conditions so each comes after those it uses (Kahn's algorithm); a cycle is refused,
/// naming the conditions on it.
fn order(names: &[String], uses: &[Vec<usize>]) -> Result<Vec<usize>, TemplateError> {
    let mut waiting: Vec<usize> = uses.iter().map(Vec::len).collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (user, used) in uses.iter().enumerate() {
        for &dependency in used {
            if let Some(slot) = users.get_mut(dependency) {
                slot.push(user);
            }
        }
    }
    let mut ready: VecDeque<usize> = (0..names.len()).filter(|&i| waiting.get(i) == Some(&0)).collect();
    let mut order = Vec::with_capacity(names.len());
    while let Some(done) = ready.pop_front() {
        order.push(done);
        for &user in users.get(done).map_or(&[][..], Vec::as_slice) {
            if let Some(count) = waiting.get_mut(user) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    ready.push_back(user);
                }
            }
        }
    }
    if order.len() == names.len() {
        return Ok(order);
    }
    // Every condition left waits on another one left: walking those waits must come back round.
    let left = |i: &usize| waiting.get(*i).is_some_and(|&count| count > 0);
    let Some(start) = (0..names.len()).find(left) else { return Ok(order) };
    let mut walk = vec![start];
    let mut current = start;
    while let Some(next) = uses.get(current).and_then(|used| used.iter().copied().find(left)) {
        if let Some(seen) = walk.iter().position(|&i| i == next) {
            let cycle: Vec<&str> =
                walk.iter().skip(seen).chain([&next]).filter_map(|&i| names.get(i)).map(String::as_str).collect();
            let first = names.get(next).map_or("", String::as_str);
            return Err(Path::root("Conditions")
                .key(first)
                .error(format_args!("conditions refer to each other in a cycle: {}", cycle.join(" -> "))));
        }
        walk.push(next);
        current = next;
    }
    Err(Path::root("Conditions").error("conditions refer to each other in a cycle"))
}

fn evaluate(env: &mut Env, condition: &Condition, path: &Path) -> Result<bool, TemplateError> {
    match condition {
        Condition::Equals(left, right) => {
            let at = path.key("Fn::Equals");
            let left = env.value(left, &at.index(0))?;
            let right = env.value(right, &at.index(1))?;
            Ok(equal(&left, &right))
        }
        Condition::Not(inner) => Ok(!evaluate(env, inner, &path.key("Fn::Not").index(0))?),
        Condition::And(inner) => {
            let at = path.key("Fn::And");
            for (index, item) in inner.iter().enumerate() {
                if !evaluate(env, item, &at.index(index))? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Condition::Or(inner) => {
            let at = path.key("Fn::Or");
            for (index, item) in inner.iter().enumerate() {
                if evaluate(env, item, &at.index(index))? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Condition::Named(index) => env.condition(*index, &path.key("Condition")),
    }
}

/// `Fn::Equals`: scalars compare as text (a Number parameter equals its digits as a string);
/// lists and objects compare as JSON.
fn equal(left: &Value, right: &Value) -> bool {
    fn text(value: &Value) -> String {
        match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }
    if is_text(left) && is_text(right) {
        text(left) == text(right)
    } else {
        left == right
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_are_ordered_after_those_they_use() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        // a uses c, c uses b.
        let order = order(&names, &[vec![2], vec![], vec![1]]).unwrap();
        assert_eq!(order, [1, 2, 0]);
    }

    #[test]
    fn a_condition_downstream_of_a_cycle_is_not_blamed_for_it() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        // a uses b; b and c use each other.
        let error = order(&names, &[vec![1], vec![2], vec![1]]).unwrap_err();
        assert_eq!(error.message, "Conditions.b: conditions refer to each other in a cycle: b -> c -> b");
    }

    #[test]
    fn equals_compares_scalars_as_text_and_containers_as_json() {
        assert!(equal(&json!(7), &json!("7")));
        assert!(equal(&json!(true), &json!("true")));
        assert!(!equal(&json!("7"), &json!("07")));
        assert!(equal(&json!(["a"]), &json!(["a"])));
        assert!(!equal(&json!(["7"]), &json!([7])));
        assert!(!equal(&json!(null), &json!("null")));
    }
}
