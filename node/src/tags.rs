//! Resource tags (TagResource, UntagResource, ListTagsForResource and the `tags` of the
//! Create calls): replicated in the `meta` group, keyed by the resource part of the ARN
//! (`thinggroup/NAME`), so a tag names the same resource whatever region signed the call,
//! and a deleted resource's tags go with it.

use std::collections::BTreeMap;

use ferrite_aws::AwsError;
use ferrite_cluster::{Batch, StoreError, Table};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::identity::{key, load};

const TAGS: &str = "tags";

/// At most this many tags per resource (AWS's limit).
pub const MAX_TAGS: usize = 50;

/// The resource kinds whose ARNs take tags here.
pub const TAGGABLE: &[&str] = &[
    "thinggroup",
    "thingtype",
    "policy",
    "rule",
    "job",
    "jobtemplate",
    "provisioningtemplate",
    "cacert",
    "authorizer",
    "fleetmetric",
];

/// The resource part of a taggable ARN (`thinggroup/lab`), or why it is refused.
pub fn resource_of(arn: &str) -> Result<String, AwsError> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some("iot"), Some(_), Some(_), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AwsError::invalid_request(format!("Invalid resourceArn {arn:?}: not an AWS IoT ARN")));
    };
    let (kind, name) = resource.split_once('/').unwrap_or((resource, ""));
    if !TAGGABLE.contains(&kind) || name.is_empty() {
        return Err(AwsError::invalid_request(format!(
            "Resources of type {kind:?} cannot be tagged here (taggable: {})",
            TAGGABLE.join(", ")
        )));
    }
    Ok(resource.to_string())
}

/// Checks tag keys and values as AWS does (keys 1-128, values up to 256 characters, no
/// `aws:` prefix).
pub fn check(tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(AwsError::invalid_request(format!("Invalid tag key {k:?}: 1 to 128 characters")));
        }
        if k.starts_with("aws:") {
            return Err(AwsError::invalid_request(format!("Tag key {k:?}: the aws: prefix is reserved")));
        }
        if v.chars().count() > 256 {
            return Err(AwsError::invalid_request(format!("The value of tag {k:?} is longer than 256 characters")));
        }
    }
    Ok(())
}

/// A change to tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// TagResource (and a Create call's `tags`): adds or overwrites.
    Tag { resource: String, tags: BTreeMap<String, String> },
    /// UntagResource.
    Untag { resource: String, keys: Vec<String> },
}

/// Every resource's tags.
#[derive(Debug, Default)]
pub struct Tags {
    by_resource: RwLock<BTreeMap<String, BTreeMap<String, String>>>,
}

impl Tags {
    /// Loads every stored tag set.
    pub fn load(store: &impl ferrite_cluster::ReadRows) -> Result<Tags, StoreError> {
        Ok(Tags { by_resource: RwLock::new(load(store, TAGS)?.into_iter().collect()) })
    }

    /// Takes over a restored snapshot's tags.
    pub fn replace(&self, other: Tags) {
        *self.by_resource.write() = other.by_resource.into_inner();
    }

    fn write(all: &BTreeMap<String, BTreeMap<String, String>>, resource: &str, writes: &mut Batch) {
        match all.get(resource) {
            Some(t) if !t.is_empty() => {
                writes.put(Table::Registry, key(TAGS, resource), serde_json::to_vec(t).unwrap_or_default())
            }
            _ => writes.delete(Table::Registry, key(TAGS, resource)),
        }
    }

    /// Applies a committed command (the resource was checked by the proposer).
    pub fn apply(&self, command: Command, writes: &mut Batch) -> Result<(), AwsError> {
        let mut all = self.by_resource.write();
        match command {
            Command::Tag { resource, tags } => {
                check(&tags)?;
                let set = all.entry(resource.clone()).or_default();
                let mut next = set.clone();
                next.extend(tags);
                if next.len() > MAX_TAGS {
                    return Err(AwsError::invalid_request(format!("A resource has at most {MAX_TAGS} tags")));
                }
                *set = next;
                Self::write(&all, &resource, writes);
            }
            Command::Untag { resource, keys } => {
                if let Some(set) = all.get_mut(&resource) {
                    for k in &keys {
                        set.remove(k);
                    }
                    if set.is_empty() {
                        all.remove(&resource);
                    }
                }
                Self::write(&all, &resource, writes);
            }
        }
        Ok(())
    }

    /// Forgets a deleted resource's tags (in the same batch as its deletion).
    pub fn forget(&self, resource: &str, writes: &mut Batch) {
        if self.by_resource.write().remove(resource).is_some() {
            writes.delete(Table::Registry, key(TAGS, resource));
        }
    }

    /// A resource's tags, by key.
    pub fn of(&self, resource: &str) -> BTreeMap<String, String> {
        self.by_resource.read().get(resource).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_the_resource_and_only_taggable_kinds_pass() {
        assert_eq!(resource_of("arn:aws:iot:us-east-1:000000000000:thinggroup/lab").unwrap(), "thinggroup/lab");
        assert_eq!(resource_of("arn:aws:iot:eu-west-1:1:rule/hot").unwrap(), "rule/hot");
        assert!(resource_of("arn:aws:iot:us-east-1:1:cert/abc").is_err());
        assert!(resource_of("arn:aws:s3:::bucket").is_err());
        assert!(resource_of("thinggroup/lab").is_err());
    }

    #[test]
    fn tags_add_overwrite_and_untag() {
        let t = Tags::default();
        let mut w = Batch::new();
        let tags = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        t.apply(Command::Tag { resource: "policy/p".into(), tags: tags(&[("a", "1"), ("b", "2")]) }, &mut w).unwrap();
        t.apply(Command::Tag { resource: "policy/p".into(), tags: tags(&[("a", "9")]) }, &mut w).unwrap();
        assert_eq!(t.of("policy/p"), tags(&[("a", "9"), ("b", "2")]));
        t.apply(Command::Untag { resource: "policy/p".into(), keys: vec!["a".into()] }, &mut w).unwrap();
        assert_eq!(t.of("policy/p"), tags(&[("b", "2")]));
        let reserved = Command::Tag { resource: "policy/p".into(), tags: tags(&[("aws:x", "1")]) };
        assert!(t.apply(reserved, &mut w).is_err());
        t.forget("policy/p", &mut w);
        assert!(t.of("policy/p").is_empty());
    }
}
