//! IoT policy records: named, versioned policy documents (at most five versions, one of them
//! the default) and their attachments to targets (certificates and thing groups). The `meta`
//! group replicates them through [`super::Command`]s; this module holds the records, the
//! rules AWS enforces on them, and the parsed default documents that authorization reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferrite_aws::policy::{self, PolicyDocument};
use serde::{Deserialize, Serialize};

use crate::registry::things::invalid;
use ferrite_aws::AwsError;

/// AWS's limit on the versions one policy keeps.
pub const MAX_POLICY_VERSIONS: usize = 5;

/// AWS's limit on the policies attached to one target.
pub const MAX_POLICIES_PER_TARGET: usize = 10;

/// One version of a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVersionRecord {
    /// The document text exactly as given.
    pub document: String,
    /// Unix seconds.
    pub create_date: u64,
}

/// A named policy and its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRecord {
    /// Unique name.
    pub policy_name: String,
    /// `arn:aws:iot:{region}:{account}:policy/{name}`.
    pub policy_arn: String,
    /// The version that authorization uses.
    pub default_version_id: u32,
    /// Version id -> version; ids grow and are never reused. Stored as a list of pairs:
    /// map keys that are numbers do not survive the tagged `meta` command encoding.
    #[serde(with = "versions_as_pairs")]
    pub versions: BTreeMap<u32, PolicyVersionRecord>,
    /// The id the next version gets.
    pub next_version_id: u32,
    /// Unix seconds.
    pub creation_date: u64,
    /// Unix seconds.
    pub last_modified_date: u64,
    /// Changes with every update.
    pub generation_id: String,
}

mod versions_as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::PolicyVersionRecord;

    pub fn serialize<S: Serializer>(v: &BTreeMap<u32, PolicyVersionRecord>, s: S) -> Result<S::Ok, S::Error> {
        v.iter().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, PolicyVersionRecord>, D::Error> {
        Ok(Vec::<(u32, PolicyVersionRecord)>::deserialize(d)?.into_iter().collect())
    }
}

impl PolicyRecord {
    /// The default version's document text.
    pub fn default_document(&self) -> &str {
        self.versions.get(&self.default_version_id).map_or("", |v| v.document.as_str())
    }
}

/// Parses a policy document the way CreatePolicy does: AWS's MalformedPolicyException
/// naming the line, column and reason of the first problem.
pub fn parse_document(text: &str) -> Result<PolicyDocument, AwsError> {
    policy::parse(text).map_err(|e| {
        AwsError::new(
            400,
            "MalformedPolicyException",
            format!("The policy document is invalid: line {}, column {}: {}", e.line, e.column, e.message),
        )
    })
}

/// AWS's answer for a missing policy.
pub fn policy_not_found(name: &str) -> AwsError {
    AwsError::new(404, "ResourceNotFoundException", format!("The policy {name} does not exist"))
}

/// AWS's answer for a missing policy version.
pub fn version_not_found(name: &str, version: &str) -> AwsError {
    AwsError::new(404, "ResourceNotFoundException", format!("The policy {name} has no version {version}"))
}

/// What a policy target names, from its ARN: a certificate id or a thing-group name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// `arn:...:cert/ID`.
    Certificate(String),
    /// `arn:...:thinggroup/NAME`.
    ThingGroup(String),
}

impl Target {
    /// Reads a target ARN; other principals (Cognito identities, IAM) are refused.
    pub fn of_arn(arn: &str) -> Result<Target, AwsError> {
        let resource = arn.strip_prefix("arn:").and_then(|r| r.splitn(5, ':').nth(4));
        match resource.and_then(|r| r.split_once('/')) {
            Some(("cert", id)) if !id.is_empty() => Ok(Target::Certificate(id.to_string())),
            Some(("thinggroup", name)) if !name.is_empty() => Ok(Target::ThingGroup(name.to_string())),
            _ => Err(invalid(format!(
                "Invalid target {arn:?}: expected a certificate ARN (arn:aws:iot:REGION:ACCOUNT:cert/ID) or a thing-group ARN (arn:aws:iot:REGION:ACCOUNT:thinggroup/NAME)"
            ))),
        }
    }
}

/// The policies, their attachments and their parsed default documents.
#[derive(Debug, Default)]
pub struct Policies {
    /// Name -> record.
    pub records: BTreeMap<String, PolicyRecord>,
    /// Policy name -> target ARNs as given to AttachPolicy.
    pub targets: BTreeMap<String, BTreeSet<String>>,
    /// Policy name -> parsed default version.
    pub parsed: BTreeMap<String, Arc<PolicyDocument>>,
}

impl Policies {
    /// Builds the state from stored records, parsing every default version.
    pub fn new(records: BTreeMap<String, PolicyRecord>, targets: BTreeMap<String, BTreeSet<String>>) -> Policies {
        let mut p = Policies { records, targets, parsed: BTreeMap::new() };
        let names: Vec<String> = p.records.keys().cloned().collect();
        for name in names {
            p.reparse(&name);
        }
        p
    }

    /// Re-parses the default version of `name` (or forgets it when the policy is gone).
    pub fn reparse(&mut self, name: &str) {
        match self.records.get(name).map(|r| policy::parse(r.default_document())) {
            Some(Ok(doc)) => {
                self.parsed.insert(name.to_string(), Arc::new(doc));
            }
            Some(Err(e)) => {
                tracing::error!(policy = name, error = %e, "a stored policy no longer parses; it allows nothing");
                self.parsed.remove(name);
            }
            None => {
                self.parsed.remove(name);
            }
        }
    }

    /// Names of the policies attached to targets `matching`, in name order.
    pub fn attached(&self, matching: impl Fn(&Target) -> bool) -> Vec<String> {
        self.targets
            .iter()
            .filter(|(_, ts)| ts.iter().any(|t| Target::of_arn(t).is_ok_and(|t| matching(&t))))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Removes every attachment to targets `matching`; the policies whose target sets changed.
    pub fn detach_all(&mut self, matching: impl Fn(&Target) -> bool) -> Vec<String> {
        let mut changed = Vec::new();
        for (name, ts) in self.targets.iter_mut() {
            let before = ts.len();
            ts.retain(|t| !Target::of_arn(t).is_ok_and(|t| matching(&t)));
            if ts.len() != before {
                changed.push(name.clone());
            }
        }
        self.targets.retain(|_, ts| !ts.is_empty());
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_the_tagged_meta_command_encoding() {
        let record = PolicyRecord {
            policy_name: "p".into(),
            policy_arn: "arn".into(),
            default_version_id: 2,
            versions: BTreeMap::from([
                (1, PolicyVersionRecord { document: "{}".into(), create_date: 1 }),
                (2, PolicyVersionRecord { document: "{}".into(), create_date: 2 }),
            ]),
            next_version_id: 3,
            creation_date: 1,
            last_modified_date: 2,
            generation_id: "g".into(),
        };
        let command = crate::identity::Command::CreatePolicy { record: record.clone() };
        let back: crate::identity::Command = serde_json::from_slice(&serde_json::to_vec(&command).unwrap()).unwrap();
        assert_eq!(back, command);
    }

    #[test]
    fn targets_are_certificates_or_thing_groups() {
        assert_eq!(
            Target::of_arn("arn:aws:iot:us-east-1:000000000000:cert/abc").unwrap(),
            Target::Certificate("abc".into())
        );
        assert_eq!(
            Target::of_arn("arn:aws:iot:eu-west-1:123456789012:thinggroup/floor-3").unwrap(),
            Target::ThingGroup("floor-3".into())
        );
        assert!(Target::of_arn("arn:aws:iot:us-east-1:0:thing/x").is_err());
        assert!(Target::of_arn("us-east-1:abcd").is_err());
        assert!(Target::of_arn("arn:aws:iot:us-east-1:0:cert/").is_err());
    }

    #[test]
    fn malformed_documents_name_line_and_column() {
        let e = parse_document("{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [}\n").unwrap_err();
        assert_eq!(e.error_type, "MalformedPolicyException");
        assert!(e.message.contains("line 3, column"), "{}", e.message);
    }

    #[test]
    fn detach_all_forgets_empty_target_sets() {
        let mut p = Policies::default();
        p.targets.insert("a".into(), BTreeSet::from(["arn:aws:iot:r:0:cert/1".to_string()]));
        p.targets.insert(
            "b".into(),
            BTreeSet::from(["arn:aws:iot:r:0:cert/1".to_string(), "arn:aws:iot:r:0:thinggroup/g".to_string()]),
        );
        let changed = p.detach_all(|t| *t == Target::Certificate("1".into()));
        assert_eq!(changed, vec!["a".to_string(), "b".to_string()]);
        assert!(!p.targets.contains_key("a"));
        assert_eq!(p.attached(|t| matches!(t, Target::ThingGroup(_))), vec!["b".to_string()]);
    }
}
