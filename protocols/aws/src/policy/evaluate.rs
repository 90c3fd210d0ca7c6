//! Policy evaluation: decides one `(action, resource)` request against the policies attached to a
//! connection's principal.
//!
//! AWS IoT Core "policies follow the same policy evaluation logic as IAM policies. By default, all
//! policies are implicitly denied. An explicit allow in any identity-based or resource-based policy
//! overrides this default behavior. An explicit deny in any policy overrides any allows."

use super::context::Context;
use super::document::{Effect, PolicyDocument, ResourceSet, Statement};
use super::matcher;

/// Outcome of evaluating a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some statement allows the request and none denies it.
    Allow,
    /// A `Deny` statement matched; nothing can override it.
    ExplicitDeny,
    /// No statement matched: denied by default.
    ImplicitDeny,
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Identifies the statement that decided a request (as AWS `TestAuthorization` names the
/// allowing/denying policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementRef {
    /// Index of the document in the iterator passed to [`evaluate_explained`].
    pub document: usize,
    /// Index of the statement inside that document.
    pub statement: usize,
}

/// A decision plus the statement responsible for it (`None` for an implicit deny).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    /// The decision.
    pub decision: Decision,
    /// The first matching `Deny` for [`Decision::ExplicitDeny`], the first matching `Allow` for
    /// [`Decision::Allow`], `None` for [`Decision::ImplicitDeny`].
    pub statement: Option<StatementRef>,
}

fn resources_match(set: &ResourceSet, resource: &str, ctx: &Context<'_>) -> bool {
    if set.negated {
        // NotResource: covers `resource` only if no entry matches. An entry with an unresolved
        // variable makes the whole statement inapplicable rather than excluding nothing (IAM:
        // an unresolvable variable "might cause the entire statement to be invalid").
        for t in &set.templates {
            match t.resolve_pattern(ctx) {
                Some(p) if matcher::resource_matches(&p, resource) => return false,
                Some(_) => {}
                None => return false,
            }
        }
        true
    } else {
        // An entry with an unresolved variable simply matches nothing.
        set.templates.iter().any(|t| t.resolve_pattern(ctx).is_some_and(|p| matcher::resource_matches(&p, resource)))
    }
}

impl Statement {
    /// Whether this statement applies to the request (action, resource and every condition).
    pub fn applies(&self, action: &str, resource: &str, ctx: &Context<'_>) -> bool {
        self.actions.matches(action)
            && resources_match(&self.resources, resource, ctx)
            && self.conditions.iter().all(|c| c.evaluate(ctx))
    }
}

/// Evaluates a request and reports which statement decided it.
///
/// Stops at the first matching `Deny`; otherwise remembers the first matching `Allow` while it
/// keeps looking for denies. Allocates only for templates that contain policy variables.
pub fn evaluate_explained<'d>(
    docs: impl IntoIterator<Item = &'d PolicyDocument>,
    action: &str,
    resource: &str,
    ctx: &Context<'_>,
) -> Explanation {
    let mut first_allow = None;
    for (document, doc) in docs.into_iter().enumerate() {
        for (statement, st) in doc.statements.iter().enumerate() {
            // An Allow after an Allow cannot change the outcome; only denies still matter.
            if st.effect == Effect::Allow && first_allow.is_some() {
                continue;
            }
            if !st.applies(action, resource, ctx) {
                continue;
            }
            let at = StatementRef { document, statement };
            match st.effect {
                Effect::Deny => return Explanation { decision: Decision::ExplicitDeny, statement: Some(at) },
                Effect::Allow => first_allow = Some(at),
            }
        }
    }
    match first_allow {
        Some(at) => Explanation { decision: Decision::Allow, statement: Some(at) },
        None => Explanation { decision: Decision::ImplicitDeny, statement: None },
    }
}

/// Evaluates a request against every policy attached to the principal.
pub fn evaluate<'d>(
    docs: impl IntoIterator<Item = &'d PolicyDocument>,
    action: &str,
    resource: &str,
    ctx: &Context<'_>,
) -> Decision {
    evaluate_explained(docs, action, resource, ctx).decision
}

#[cfg(test)]
mod tests;
