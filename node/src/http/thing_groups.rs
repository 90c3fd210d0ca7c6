//! The thing-group operations of the `iot` API: CreateThingGroup, DescribeThingGroup,
//! UpdateThingGroup, DeleteThingGroup, ListThingGroups, ListThingsInThingGroup,
//! AddThingToThingGroup and RemoveThingFromThingGroup.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::call::Call;
use ferrite_aws::AwsError;

use super::error::ApiResult;
use super::paging::{page_after, page_response, TokenQuery};
use super::things::{AttributePayload, VersionQuery};
use super::{proposals, Api};
use crate::broker::message::now_ms;
use crate::registry::{self, Command, Outcome};

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Properties {
    thing_group_description: Option<String>,
    attribute_payload: Option<AttributePayload>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GroupBody {
    parent_group_name: Option<String>,
    thing_group_properties: Option<Properties>,
    expected_version: Option<u64>,
}

/// CreateThingGroup.
pub async fn create_thing_group(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: GroupBody = call.json()?;
    let props = b.thing_group_properties.unwrap_or_default();
    let command = Command::CreateThingGroup {
        name: name.into_inner(),
        parent: b.parent_group_name,
        description: props.thing_group_description,
        attributes: props.attribute_payload.unwrap_or_default().attributes,
        arn_prefix: registry::arn_prefix(call.region()),
        id: registry::new_id(),
        now_s: now_ms() / 1000,
    };
    match proposals::registry(&api, command).await? {
        Outcome::Group(g) => {
            Ok(HttpResponse::Ok()
                .json(json!({ "thingGroupName": g.name, "thingGroupArn": g.arn, "thingGroupId": g.id })))
        }
        other => Err(proposals::unexpected(&other)),
    }
}

/// DescribeThingGroup: with the chain of ancestors from the root.
pub async fn describe_thing_group(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    let (g, chain) =
        api.services.meta.state().registry.thing_group(&name).ok_or_else(|| registry::groups::not_found(&name))?;
    let mut props = json!({ "attributePayload": { "attributes": g.attributes } });
    if let Some(d) = &g.description {
        props["thingGroupDescription"] = json!(d);
    }
    let mut meta = json!({
        "creationDate": g.creation_date,
        "rootToParentThingGroups": chain.iter().map(|(n, a)| json!({ "groupName": n, "groupArn": a })).collect::<Vec<_>>(),
    });
    if let Some(p) = &g.parent {
        meta["parentGroupName"] = json!(p);
    }
    Ok(HttpResponse::Ok().json(json!({
        "thingGroupName": g.name, "thingGroupId": g.id, "thingGroupArn": g.arn, "version": g.version,
        "thingGroupProperties": props, "thingGroupMetadata": meta,
    })))
}

/// UpdateThingGroup: answers the new version.
pub async fn update_thing_group(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: GroupBody = call.json()?;
    let props = b.thing_group_properties.unwrap_or_default();
    let command = Command::UpdateThingGroup {
        name: name.into_inner(),
        description: props.thing_group_description,
        attributes: props.attribute_payload.map(|p| (p.attributes, p.merge)),
        expected_version: b.expected_version,
    };
    match proposals::registry(&api, command).await? {
        Outcome::Version(version) => Ok(HttpResponse::Ok().json(json!({ "version": version }))),
        other => Err(proposals::unexpected(&other)),
    }
}

/// DeleteThingGroup.
pub async fn delete_thing_group(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let query: VersionQuery = call.query()?;
    let command = Command::DeleteThingGroup { name: name.into_inner(), expected_version: query.expected_version };
    proposals::registry(&api, command).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MembershipBody {
    thing_group_name: Option<String>,
    thing_group_arn: Option<String>,
    thing_name: Option<String>,
    thing_arn: Option<String>,
}

/// Adds a thing to a group or removes it (both named by name or ARN).
async fn set_membership(api: &Api, call: &Call, member: bool) -> ApiResult {
    if call.body.is_empty() {
        return Err(AwsError::invalid_request("The request body is not valid JSON for this operation"));
    }
    let b: MembershipBody = call.json()?;
    let after_slash = |arn: Option<String>| arn.and_then(|a| a.rsplit_once('/').map(|(_, n)| n.to_string()));
    let (Some(group), Some(thing)) =
        (b.thing_group_name.or(after_slash(b.thing_group_arn)), b.thing_name.or(after_slash(b.thing_arn)))
    else {
        return Err(AwsError::invalid_request("Name the thing group and the thing (by name or ARN)"));
    };
    proposals::registry(api, Command::SetMembership { group, thing, member }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// AddThingToThingGroup.
pub async fn add_thing_to_thing_group(api: web::Data<Api>, call: Call) -> ApiResult {
    set_membership(&api, &call, true).await
}

/// RemoveThingFromThingGroup.
pub async fn remove_thing_from_thing_group(api: web::Data<Api>, call: Call) -> ApiResult {
    set_membership(&api, &call, false).await
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GroupFilter {
    parent_group: Option<String>,
    name_prefix_filter: Option<String>,
    recursive: Option<bool>,
}

/// ListThingGroups.
pub async fn list_thing_groups(api: web::Data<Api>, call: Call) -> ApiResult {
    let (page, filter): (TokenQuery, GroupFilter) = (call.query()?, call.query()?);
    let registry = &api.services.meta.state().registry;
    let mut groups = registry.thing_groups(filter.parent_group.as_deref(), filter.recursive.unwrap_or(false));
    if let Some(prefix) = &filter.name_prefix_filter {
        groups.retain(|g| g.name.starts_with(prefix.as_str()));
    }
    let (page, next) = page_after(&groups, |g| &g.name, page.next_token.as_deref(), page.size(50, 250));
    let groups: Vec<serde_json::Value> =
        page.iter().map(|g| json!({ "groupName": g.name, "groupArn": g.arn })).collect();
    page_response(json!({ "thingGroups": groups }), next)
}

/// ListThingsInThingGroup.
pub async fn list_things_in_thing_group(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let (page, filter): (TokenQuery, GroupFilter) = (call.query()?, call.query()?);
    let names = api.services.meta.state().registry.things_in_group(&name, filter.recursive.unwrap_or(false))?;
    let (page, next) = page_after(&names, |n| n.as_str(), page.next_token.as_deref(), page.size(50, 250));
    page_response(json!({ "things": page }), next)
}
