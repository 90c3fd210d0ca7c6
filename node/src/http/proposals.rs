//! Changes proposed to the `meta` group from API handlers: one function per kind of
//! command, each waiting until the command is committed and applied and unwrapping the
//! outcome it must have.

use super::Api;
use crate::meta::{Command, Outcome};
use ferrite_aws::AwsError;

/// Proposes `command` and waits for its outcome.
async fn propose(api: &Api, command: Command) -> Result<Outcome, AwsError> {
    crate::meta::propose(&api.services.meta, command).await
}

/// A command answered with an outcome of the wrong kind: a bug, reported as AWS's 500.
pub fn unexpected(outcome: &dyn std::fmt::Debug) -> AwsError {
    tracing::error!(?outcome, "a command answered an unexpected outcome");
    AwsError::internal()
}

/// A registry command (things, types, groups) and its outcome.
pub async fn registry(api: &Api, command: crate::registry::Command) -> Result<crate::registry::Outcome, AwsError> {
    match propose(api, Command::Registry(command)).await? {
        Outcome::Registry(o) => Ok(o),
        other => Err(unexpected(&other)),
    }
}

/// An identity command (certificates, policies, authorizers) and what it applied.
pub async fn identity(api: &Api, command: crate::identity::Command) -> Result<crate::identity::Applied, AwsError> {
    match propose(api, Command::Identity(command)).await? {
        Outcome::Identity(applied) => Ok(applied),
        other => Err(unexpected(&other)),
    }
}

/// An identity command whose answer is only that it was applied.
pub async fn identity_change(api: &Api, command: crate::identity::Command) -> Result<(), AwsError> {
    identity(api, command).await.map(|_| ())
}

/// A topic-rule command.
pub async fn topic_rule(api: &Api, command: crate::rules::api::Command) -> Result<(), AwsError> {
    match propose(api, Command::TopicRule(command)).await? {
        Outcome::TopicRule => Ok(()),
        other => Err(unexpected(&other)),
    }
}

/// A jobs command and its outcome.
pub async fn jobs(api: &Api, command: crate::jobs::Command) -> Result<crate::jobs::Outcome, AwsError> {
    match propose(api, Command::Jobs(command)).await? {
        Outcome::Jobs(o) => Ok(o),
        other => Err(unexpected(&other)),
    }
}
