//! Things in the registry, as AWS IoT's `CreateThing`, `DescribeThing`, `ListThings`,
//! `UpdateThing` and `DeleteThing` define them. Pure: commands in, records and AWS's errors
//! out; storage sits outside (see `registry::mod`).

use std::collections::BTreeMap;

use ferrite_aws::AwsError;
use serde::{Deserialize, Serialize};

/// Attributes a thing without a thing type may have (AWS's limit).
pub const MAX_ATTRIBUTES_WITHOUT_TYPE: usize = 3;
/// Attributes a thing with a thing type may have.
pub const MAX_ATTRIBUTES_WITH_TYPE: usize = 50;

fn check_attribute_count(t: &Thing) -> Result<(), AwsError> {
    let (max, what) = match t.thing_type_name {
        Some(_) => (MAX_ATTRIBUTES_WITH_TYPE, "with"),
        None => (MAX_ATTRIBUTES_WITHOUT_TYPE, "without"),
    };
    if t.attributes.len() > max {
        return Err(invalid(format!("A thing {what} a thing type can have at most {max} attributes")));
    }
    Ok(())
}

/// One thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thing {
    /// The name (unique).
    pub thing_name: String,
    /// A generated id.
    pub thing_id: String,
    /// `arn:aws:iot:{region}:{account}:thing/{name}`.
    pub thing_arn: String,
    /// The thing type, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing_type_name: Option<String>,
    /// Name-value attributes.
    pub attributes: BTreeMap<String, String>,
    /// Starts at 1 and grows with every update.
    pub version: u64,
}

/// AWS's 400 for a request the registry refuses.
pub(crate) fn invalid(message: impl Into<String>) -> AwsError {
    AwsError { status: 400, error_type: "InvalidRequestException", message: message.into() }
}

/// AWS's 500, for storage or commit failures (logged where they happen).
pub(crate) fn internal_failure() -> AwsError {
    AwsError { status: 500, error_type: "InternalFailureException", message: "Internal service failure".into() }
}

/// AWS's 404 for a missing `kind` ("Thing", "Thing type", "Thing group") named `name`.
pub(crate) fn missing(kind: &str, name: &str) -> AwsError {
    AwsError {
        status: 404,
        error_type: "ResourceNotFoundException",
        message: format!("{kind} {name} cannot be found."),
    }
}

fn not_found(name: &str) -> AwsError {
    missing("Thing", name)
}

fn version_conflict(name: &str) -> AwsError {
    AwsError {
        status: 409,
        error_type: "VersionConflictException",
        message: format!("The version for thing {name} does not match the expected version."),
    }
}

/// Checks attribute names and values against AWS's patterns.
fn check_attributes(attrs: &BTreeMap<String, String>) -> Result<(), AwsError> {
    for (k, v) in attrs {
        let name_ok =
            (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.,@/:#-".contains(&b));
        if !name_ok {
            return Err(invalid(format!("Invalid attribute name {k:?}")));
        }
        let value_ok = v.len() <= 800 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.,@/:#=[]-".contains(&b));
        if !value_ok {
            return Err(invalid(format!("Invalid value {v:?} for attribute {k}")));
        }
    }
    Ok(())
}

/// `CreateThing`'s input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewThing {
    /// Name.
    pub name: String,
    /// Thing type (must exist and not be deprecated).
    pub thing_type: Option<String>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
}

/// `UpdateThing`'s input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingUpdate {
    /// New attributes.
    pub attributes: Option<BTreeMap<String, String>>,
    /// Merge with the stored attributes (an empty value removes one) instead of replacing.
    pub merge: bool,
    /// Fails with 409 unless the thing is at this version.
    pub expected_version: Option<u64>,
    /// A new thing type (must exist and not be deprecated).
    pub thing_type: Option<String>,
    /// Removes the thing type.
    pub remove_thing_type: bool,
}

/// Creates a thing; creating an identical one again succeeds (as AWS's CreateThing does).
/// `type_usable` says whether a thing type exists and may take new things.
pub fn create(
    existing: Option<&Thing>,
    new: NewThing,
    arn_prefix: &str,
    id: String,
    type_usable: impl Fn(&str) -> Result<(), AwsError>,
) -> Result<Thing, AwsError> {
    if !super::is_resource_name(&new.name, 128) {
        return Err(invalid(format!("Invalid thing name {:?}", new.name)));
    }
    if let Some(t) = &new.thing_type {
        type_usable(t)?;
    }
    check_attributes(&new.attributes)?;
    if let Some(t) = existing {
        if t.attributes == new.attributes && t.thing_type_name == new.thing_type {
            return Ok(t.clone());
        }
        return Err(AwsError {
            status: 409,
            error_type: "ResourceAlreadyExistsException",
            message: format!("Thing {} already exists in account with different attributes", new.name),
        });
    }
    let thing = Thing {
        thing_arn: format!("{arn_prefix}thing/{}", new.name),
        thing_name: new.name,
        thing_id: id,
        thing_type_name: new.thing_type,
        attributes: new.attributes,
        version: 1,
    };
    check_attribute_count(&thing)?;
    Ok(thing)
}

/// Applies an update; the new record.
pub fn update(
    existing: Option<&Thing>,
    name: &str,
    u: ThingUpdate,
    type_usable: impl Fn(&str) -> Result<(), AwsError>,
) -> Result<Thing, AwsError> {
    let mut t = existing.cloned().ok_or_else(|| not_found(name))?;
    if u.expected_version.is_some_and(|v| v != t.version) {
        return Err(version_conflict(name));
    }
    if u.remove_thing_type && u.thing_type.is_some() {
        return Err(invalid("Cannot both set and remove the thing type"));
    }
    if let Some(ty) = u.thing_type {
        type_usable(&ty)?;
        t.thing_type_name = Some(ty);
    }
    if u.remove_thing_type {
        t.thing_type_name = None;
    }
    if let Some(attrs) = u.attributes {
        if u.merge {
            for (k, v) in attrs {
                if v.is_empty() {
                    t.attributes.remove(&k);
                } else {
                    t.attributes.insert(k, v);
                }
            }
        } else {
            t.attributes = attrs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        }
        check_attributes(&t.attributes)?;
    }
    check_attribute_count(&t)?;
    t.version += 1;
    Ok(t)
}

/// Checks a delete (`DeleteThing` of a missing thing succeeds, as in AWS).
pub fn check_delete(existing: Option<&Thing>, name: &str, expected_version: Option<u64>) -> Result<(), AwsError> {
    match existing {
        Some(t) if expected_version.is_some_and(|v| v != t.version) => Err(version_conflict(name)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn new(name: &str, a: &[(&str, &str)]) -> NewThing {
        NewThing { name: name.into(), thing_type: None, attributes: attrs(a) }
    }

    /// Only the type `sensor` exists.
    fn types(t: &str) -> Result<(), AwsError> {
        match t {
            "sensor" => Ok(()),
            other => Err(AwsError {
                status: 404,
                error_type: "ResourceNotFoundException",
                message: format!("Thing type {other} does not exist."),
            }),
        }
    }

    #[test]
    fn create_is_idempotent_for_the_same_configuration_only() {
        let t = create(None, new("lamp", &[("room", "kitchen")]), "arn:aws:iot:r:000000000000:", "id1".into(), types)
            .unwrap();
        assert_eq!(t.thing_arn, "arn:aws:iot:r:000000000000:thing/lamp");
        assert_eq!(t.version, 1);
        assert_eq!(create(Some(&t), new("lamp", &[("room", "kitchen")]), "", "id2".into(), types).unwrap(), t);
        let e = create(Some(&t), new("lamp", &[("room", "hall")]), "", "id3".into(), types).unwrap_err();
        assert_eq!((e.status, e.error_type), (409, "ResourceAlreadyExistsException"));
    }

    #[test]
    fn names_attributes_and_limits_are_checked() {
        assert_eq!(create(None, new("bad name", &[]), "", "i".into(), types).unwrap_err().status, 400);
        assert_eq!(create(None, new("ok", &[("a", "x y")]), "", "i".into(), types).unwrap_err().status, 400);
        let four = new("ok", &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        assert_eq!(create(None, four.clone(), "", "i".into(), types).unwrap_err().status, 400);
        let typed = NewThing { thing_type: Some("sensor".into()), ..four };
        assert!(create(None, typed, "", "i".into(), types).is_ok(), "a typed thing may have 50 attributes");
        let unknown = NewThing { thing_type: Some("robot".into()), ..new("ok", &[]) };
        assert_eq!(create(None, unknown, "", "i".into(), types).unwrap_err().error_type, "ResourceNotFoundException");
    }

    #[test]
    fn updates_merge_or_replace_and_check_the_expected_version() {
        let t = create(None, new("lamp", &[("a", "1"), ("b", "2")]), "", "i".into(), types).unwrap();
        let merged = ThingUpdate {
            attributes: Some(attrs(&[("b", ""), ("c", "3")])),
            merge: true,
            expected_version: Some(1),
            ..Default::default()
        };
        let t2 = update(Some(&t), "lamp", merged, types).unwrap();
        assert_eq!((t2.attributes.clone(), t2.version), (attrs(&[("a", "1"), ("c", "3")]), 2));
        let replaced = ThingUpdate { attributes: Some(attrs(&[("z", "9")])), ..Default::default() };
        assert_eq!(update(Some(&t2), "lamp", replaced, types).unwrap().attributes, attrs(&[("z", "9")]));
        let stale = ThingUpdate { expected_version: Some(1), ..Default::default() };
        assert_eq!(update(Some(&t2), "lamp", stale, types).unwrap_err().error_type, "VersionConflictException");
        assert_eq!(update(None, "ghost", ThingUpdate::default(), types).unwrap_err().status, 404);
        let typed =
            update(Some(&t2), "lamp", ThingUpdate { thing_type: Some("sensor".into()), ..Default::default() }, types);
        assert_eq!(typed.unwrap().thing_type_name.as_deref(), Some("sensor"));
        assert!(check_delete(Some(&t2), "lamp", Some(1)).is_err());
        assert!(check_delete(Some(&t2), "lamp", Some(2)).is_ok());
        assert!(check_delete(None, "ghost", None).is_ok());
    }
}
