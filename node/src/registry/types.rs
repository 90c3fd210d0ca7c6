//! Thing types: a name, a description, up to three searchable attributes, and a deprecation
//! flag. A deprecated type takes no new things; only a deprecated type without things can be
//! deleted.

use serde::{Deserialize, Serialize};

use super::things::{invalid, missing};
use ferrite_aws::AwsError;

/// Searchable attributes a thing type may name (AWS's limit).
pub const MAX_SEARCHABLE_ATTRIBUTES: usize = 3;

/// One thing type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingType {
    /// Name (unique).
    pub thing_type_name: String,
    /// A generated id.
    pub thing_type_id: String,
    /// `arn:aws:iot:{region}:{account}:thingtype/{name}`.
    pub thing_type_arn: String,
    /// Description, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Attribute names fleet search may use.
    #[serde(default)]
    pub searchable_attributes: Vec<String>,
    /// Deprecated types take no new things.
    pub deprecated: bool,
    /// When it was deprecated (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation_date: Option<u64>,
    /// When it was created (epoch seconds).
    pub creation_date: u64,
}

/// The error for a type that does not exist.
pub fn not_found(name: &str) -> AwsError {
    missing("Thing type", name)
}

/// Creates a thing type.
pub fn create(
    existing: Option<&ThingType>,
    name: &str,
    description: Option<String>,
    searchable_attributes: Vec<String>,
    arn_prefix: &str,
    id: String,
    now_s: u64,
) -> Result<ThingType, AwsError> {
    if !super::is_resource_name(name, 128) {
        return Err(invalid(format!("Invalid thing type name {name:?}")));
    }
    if searchable_attributes.len() > MAX_SEARCHABLE_ATTRIBUTES {
        return Err(invalid("A thing type can have at most 3 searchable attributes"));
    }
    if existing.is_some() {
        return Err(AwsError {
            status: 409,
            error_type: "ResourceAlreadyExistsException",
            message: format!("Thing type {name} already exists."),
        });
    }
    Ok(ThingType {
        thing_type_name: name.to_string(),
        thing_type_id: id,
        thing_type_arn: format!("{arn_prefix}thingtype/{name}"),
        description,
        searchable_attributes,
        deprecated: false,
        deprecation_date: None,
        creation_date: now_s,
    })
}

/// Whether a thing may be given this type.
pub fn usable(t: Option<&ThingType>, name: &str) -> Result<(), AwsError> {
    match t {
        None => Err(not_found(name)),
        Some(t) if t.deprecated => {
            Err(invalid(format!("Can not create a new thing with deprecated thing type {name}")))
        }
        Some(_) => Ok(()),
    }
}

/// Checks a delete: the type must exist, be deprecated and have no things.
///
/// As in AWS, a type can be deleted only `wait_s` seconds (AWS: five minutes) after it was
/// deprecated.
pub fn check_delete(
    t: Option<&ThingType>,
    name: &str,
    things_of_type: usize,
    now_s: u64,
    wait_s: u64,
) -> Result<(), AwsError> {
    let t = t.ok_or_else(|| not_found(name))?;
    if !t.deprecated {
        return Err(invalid(format!("Can not delete thing type {name}: it is not deprecated")));
    }
    let deletable_at = t.deprecation_date.unwrap_or(0).saturating_add(wait_s);
    if now_s < deletable_at {
        return Err(invalid(format!(
            "Can not delete thing type {name}: it was deprecated less than {wait_s} seconds ago; try again in {} seconds",
            deletable_at - now_s
        )));
    }
    if things_of_type > 0 {
        return Err(invalid(format!("Can not delete thing type {name}: {things_of_type} things still have it")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_created_once_deprecated_then_deleted_when_unused() {
        let t = create(None, "sensor", None, vec!["room".into()], "arn:aws:iot:r:0:", "id".into(), 5).unwrap();
        assert_eq!(t.thing_type_arn, "arn:aws:iot:r:0:thingtype/sensor");
        assert_eq!(create(Some(&t), "sensor", None, vec![], "", "id".into(), 5).unwrap_err().status, 409);
        assert!(usable(Some(&t), "sensor").is_ok());
        assert_eq!(check_delete(Some(&t), "sensor", 0, 1000, 300).unwrap_err().status, 400);
        let dep = ThingType { deprecated: true, deprecation_date: Some(1000), ..t };
        assert_eq!(usable(Some(&dep), "sensor").unwrap_err().status, 400);
        assert_eq!(check_delete(Some(&dep), "sensor", 2, 2000, 300).unwrap_err().status, 400);
        let early = check_delete(Some(&dep), "sensor", 0, 1299, 300).unwrap_err();
        assert!(early.message.contains("try again in 1 seconds"), "{}", early.message);
        assert!(check_delete(Some(&dep), "sensor", 0, 1300, 300).is_ok());
        assert_eq!(usable(None, "robot").unwrap_err().status, 404);
        let four = vec!["a".into(), "b".into(), "c".into(), "d".into()];
        assert_eq!(create(None, "x", None, four, "", "i".into(), 0).unwrap_err().status, 400);
    }
}
