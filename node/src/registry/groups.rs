//! Static thing groups: a hierarchy (a group has at most one parent, trees at most 7 levels
//! deep), attributes, and thing membership (a thing belongs to at most 10 groups).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::things::{invalid, missing};
use ferrite_aws::AwsError;

/// Deepest a group tree may be (AWS's limit).
pub const MAX_DEPTH: usize = 7;
/// Groups one thing may belong to (AWS's limit).
pub const MAX_GROUPS_PER_THING: usize = 10;

/// One thing group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingGroup {
    /// Name (unique).
    pub name: String,
    /// Generated id.
    pub id: String,
    /// `arn:aws:iot:{region}:{account}:thinggroup/{name}`.
    pub arn: String,
    /// The parent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Member things.
    #[serde(default)]
    pub things: BTreeSet<String>,
    /// Grows with every update.
    pub version: u64,
    /// Epoch seconds.
    pub creation_date: u64,
    /// A dynamic group's query: its members are the things the fleet index matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<DynamicQuery>,
}

/// What makes a thing group dynamic (CreateDynamicThingGroup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamicQuery {
    /// The fleet indexing query, as the caller wrote it.
    pub query_string: String,
    /// AWS_Things.
    pub index_name: String,
    /// `2017-09-30`.
    pub query_version: String,
}

/// The error for a group that does not exist.
pub fn not_found(name: &str) -> AwsError {
    missing("Thing group", name)
}

/// The ancestors of a group, root first.
pub fn ancestors(all: &BTreeMap<String, ThingGroup>, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = all.get(name).and_then(|g| g.parent.clone());
    while let Some(p) = at {
        if out.contains(&p) {
            break;
        }
        at = all.get(&p).and_then(|g| g.parent.clone());
        out.push(p);
    }
    out.reverse();
    out
}

/// A group and all groups below it.
pub fn subtree(all: &BTreeMap<String, ThingGroup>, name: &str) -> Vec<String> {
    let mut out = vec![name.to_string()];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].clone();
        out.extend(all.values().filter(|g| g.parent.as_deref() == Some(parent.as_str())).map(|g| g.name.clone()));
        i += 1;
    }
    out
}

/// Creates a group under `parent` (an identical create succeeds again, as in AWS).
#[allow(clippy::too_many_arguments)]
pub fn create(
    all: &BTreeMap<String, ThingGroup>,
    name: &str,
    parent: Option<String>,
    description: Option<String>,
    attributes: BTreeMap<String, String>,
    arn_prefix: &str,
    id: String,
    now_s: u64,
) -> Result<ThingGroup, AwsError> {
    if !super::is_resource_name(name, 128) {
        return Err(invalid(format!("Invalid thing group name {name:?}")));
    }
    if let Some(existing) = all.get(name) {
        if existing.parent == parent && existing.attributes == attributes && existing.description == description {
            return Ok(existing.clone());
        }
        return Err(AwsError {
            status: 409,
            error_type: "ResourceAlreadyExistsException",
            message: format!("Thing group {name} already exists with different properties"),
        });
    }
    if let Some(p) = &parent {
        if !all.contains_key(p) {
            return Err(not_found(p));
        }
        if ancestors(all, p).len() + 2 > MAX_DEPTH {
            return Err(invalid(format!("Thing groups can be nested at most {MAX_DEPTH} levels deep")));
        }
    }
    Ok(ThingGroup {
        name: name.to_string(),
        id,
        arn: format!("{arn_prefix}thinggroup/{name}"),
        parent,
        description,
        attributes,
        things: BTreeSet::new(),
        version: 1,
        creation_date: now_s,
        query: None,
    })
}

/// Applies `UpdateThingGroup`: a new description and attributes (merged, where an empty
/// value removes one, or replacing them all), at `expected_version` when given.
pub fn update(
    existing: Option<&ThingGroup>,
    name: &str,
    description: Option<String>,
    attributes: Option<(BTreeMap<String, String>, bool)>,
    expected_version: Option<u64>,
) -> Result<ThingGroup, AwsError> {
    let mut g = existing.cloned().ok_or_else(|| not_found(name))?;
    if expected_version.is_some_and(|v| v != g.version) {
        return Err(AwsError {
            status: 409,
            error_type: "VersionConflictException",
            message: format!("The version for thing group {name} does not match the expected version."),
        });
    }
    if description.is_some() {
        g.description = description;
    }
    if let Some((attrs, merge)) = attributes {
        if !merge {
            g.attributes.clear();
        }
        for (k, v) in attrs {
            if v.is_empty() {
                g.attributes.remove(&k);
            } else {
                g.attributes.insert(k, v);
            }
        }
    }
    g.version += 1;
    Ok(g)
}

/// Checks a delete: a group with child groups cannot be deleted.
pub fn check_delete(
    all: &BTreeMap<String, ThingGroup>,
    name: &str,
    expected_version: Option<u64>,
) -> Result<(), AwsError> {
    let Some(g) = all.get(name) else { return Ok(()) };
    if expected_version.is_some_and(|v| v != g.version) {
        return Err(AwsError {
            status: 409,
            error_type: "VersionConflictException",
            message: format!("The version for thing group {name} does not match the expected version."),
        });
    }
    if all.values().any(|c| c.parent.as_deref() == Some(name)) {
        return Err(invalid(format!("Cannot delete thing group {name}: it has child groups")));
    }
    Ok(())
}

/// Checks adding a thing to a group (the thing is in `current` groups already).
pub fn check_add(all: &BTreeMap<String, ThingGroup>, group: &str, current: usize) -> Result<(), AwsError> {
    if !all.contains_key(group) {
        return Err(not_found(group));
    }
    if current >= MAX_GROUPS_PER_THING {
        return Err(invalid(format!("A thing can be in at most {MAX_GROUPS_PER_THING} thing groups")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(all: &mut BTreeMap<String, ThingGroup>, name: &str, parent: Option<&str>) -> Result<(), AwsError> {
        let g = create(all, name, parent.map(str::to_string), None, BTreeMap::new(), "arn:", "id".into(), 1)?;
        all.insert(name.to_string(), g);
        Ok(())
    }

    #[test]
    fn hierarchies_are_at_most_seven_deep_and_know_their_ancestors() {
        let mut all = BTreeMap::new();
        add(&mut all, "g1", None).unwrap();
        for i in 2..=7 {
            add(&mut all, &format!("g{i}"), Some(&format!("g{}", i - 1))).unwrap();
        }
        assert_eq!(add(&mut all, "g8", Some("g7")).unwrap_err().status, 400);
        assert_eq!(ancestors(&all, "g3"), vec!["g1", "g2"]);
        assert_eq!(subtree(&all, "g5"), vec!["g5", "g6", "g7"]);
        assert_eq!(add(&mut all, "x", Some("nope")).unwrap_err().status, 404);
        assert_eq!(check_delete(&all, "g6", None).unwrap_err().status, 400);
        assert!(check_delete(&all, "g7", None).is_ok());
    }

    #[test]
    fn updates_merge_or_replace_attributes_and_check_the_version() {
        let mut all = BTreeMap::new();
        let attrs = |p: &[(&str, &str)]| p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let g = create(&all, "g", None, None, attrs(&[("a", "1"), ("b", "2")]), "", "i".into(), 0).unwrap();
        all.insert("g".to_string(), g);
        let merged = update(all.get("g"), "g", None, Some((attrs(&[("b", ""), ("c", "3")]), true)), Some(1)).unwrap();
        assert_eq!((merged.attributes.clone(), merged.version), (attrs(&[("a", "1"), ("c", "3")]), 2));
        let replaced = update(Some(&merged), "g", Some("d".into()), Some((attrs(&[("z", "9")]), false)), None).unwrap();
        assert_eq!((replaced.attributes.clone(), replaced.description.as_deref()), (attrs(&[("z", "9")]), Some("d")));
        assert_eq!(update(Some(&replaced), "g", None, None, Some(1)).unwrap_err().status, 409);
        assert_eq!(update(None, "x", None, None, None).unwrap_err().status, 404);
    }

    #[test]
    fn identical_creates_succeed_and_different_ones_conflict() {
        let mut all = BTreeMap::new();
        add(&mut all, "a", None).unwrap();
        add(&mut all, "a", None).unwrap();
        add(&mut all, "b", None).unwrap();
        assert_eq!(add(&mut all, "a", Some("b")).unwrap_err().status, 409);
        assert_eq!(check_add(&all, "a", MAX_GROUPS_PER_THING).unwrap_err().status, 400);
        assert_eq!(check_add(&all, "zz", 0).unwrap_err().status, 404);
    }
}
