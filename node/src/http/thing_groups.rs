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
    tags: Option<Vec<super::tags::Tag>>,
}

/// CreateThingGroup.
pub async fn create_thing_group(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: GroupBody = call.json()?;
    let tags = super::tags::tag_map(b.tags);
    crate::tags::check(&tags)?;
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
            super::tags::tag_created(&api, &g.arn, tags).await?;
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
    let mut doc = json!({
        "thingGroupName": g.name, "thingGroupId": g.id, "thingGroupArn": g.arn, "version": g.version,
        "thingGroupProperties": props, "thingGroupMetadata": meta,
    });
    if let Some(q) = &g.query {
        doc["queryString"] = json!(q.query_string);
        doc["indexName"] = json!(q.index_name);
        doc["queryVersion"] = json!(q.query_version);
        doc["status"] = json!("ACTIVE");
    }
    Ok(HttpResponse::Ok().json(doc))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DynamicBody {
    thing_group_properties: Option<Properties>,
    index_name: Option<String>,
    query_string: Option<String>,
    query_version: Option<String>,
    expected_version: Option<u64>,
    tags: Option<Vec<super::tags::Tag>>,
}

/// A dynamic group's query: it parses, and thing indexing is on (its members come from
/// the index).
fn checked_query(api: &Api, index: Option<&str>, query: &str) -> Result<(), AwsError> {
    if index.is_some_and(|i| i != "AWS_Things") {
        return Err(AwsError::invalid_request("A dynamic thing group's indexName is AWS_Things"));
    }
    if !api.services.meta.state().indexing.get().things_on() {
        return Err(AwsError::invalid_request(
            "Dynamic thing groups need thing indexing: turn it on with UpdateIndexingConfiguration",
        ));
    }
    super::fleet_index::parse_query(query).map(|_| ())
}

/// CreateDynamicThingGroup.
pub async fn create_dynamic_thing_group(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: DynamicBody = call.json()?;
    let query = b.query_string.ok_or_else(|| AwsError::invalid_request("queryString is required"))?;
    checked_query(&api, b.index_name.as_deref(), &query)?;
    let tags = super::tags::tag_map(b.tags);
    crate::tags::check(&tags)?;
    let props = b.thing_group_properties.unwrap_or_default();
    let dynamic = registry::groups::DynamicQuery {
        query_string: query,
        index_name: b.index_name.unwrap_or_else(|| "AWS_Things".into()),
        query_version: b.query_version.unwrap_or_else(|| "2017-09-30".into()),
    };
    let command = Command::CreateDynamicThingGroup {
        name: name.into_inner(),
        description: props.thing_group_description,
        attributes: props.attribute_payload.unwrap_or_default().attributes,
        query: dynamic.clone(),
        arn_prefix: registry::arn_prefix(call.region()),
        id: registry::new_id(),
        now_s: now_ms() / 1000,
    };
    match proposals::registry(&api, command).await? {
        Outcome::Group(g) => {
            super::tags::tag_created(&api, &g.arn, tags).await?;
            Ok(HttpResponse::Ok().json(json!({
                "thingGroupName": g.name, "thingGroupArn": g.arn, "thingGroupId": g.id,
                "indexName": dynamic.index_name, "queryString": dynamic.query_string,
                "queryVersion": dynamic.query_version,
            })))
        }
        other => Err(proposals::unexpected(&other)),
    }
}

/// UpdateDynamicThingGroup: answers the new version.
pub async fn update_dynamic_thing_group(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: DynamicBody = call.json()?;
    if let Some(q) = &b.query_string {
        checked_query(&api, b.index_name.as_deref(), q)?;
    }
    let props = b.thing_group_properties.unwrap_or_default();
    let command = Command::UpdateDynamicThingGroup {
        name: name.into_inner(),
        description: props.thing_group_description,
        attributes: props.attribute_payload.map(|p| (p.attributes, p.merge)),
        query_string: b.query_string,
        expected_version: b.expected_version,
    };
    match proposals::registry(&api, command).await? {
        Outcome::Version(version) => Ok(HttpResponse::Ok().json(json!({ "version": version }))),
        other => Err(proposals::unexpected(&other)),
    }
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
struct GroupsForThingBody {
    thing_name: Option<String>,
    thing_groups_to_add: Option<Vec<String>>,
    thing_groups_to_remove: Option<Vec<String>>,
}

/// UpdateThingGroupsForThing: every group named is checked first, then the thing leaves
/// the groups to remove and joins the groups to add.
pub async fn update_thing_groups_for_thing(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: GroupsForThingBody = call.json()?;
    let thing = b.thing_name.ok_or_else(|| AwsError::invalid_request("thingName is required"))?;
    let (add, remove) = (b.thing_groups_to_add.unwrap_or_default(), b.thing_groups_to_remove.unwrap_or_default());
    {
        let registry = &api.services.meta.state().registry;
        if registry.thing(&thing).is_none() {
            return Err(crate::registry::things::missing("Thing", &thing));
        }
        if let Some(g) = add.iter().chain(&remove).find(|g| registry.thing_group(g).is_none()) {
            return Err(registry::groups::not_found(g));
        }
    }
    for (groups, member) in [(remove, false), (add, true)] {
        for group in groups {
            proposals::registry(&api, Command::SetMembership { group, thing: thing.clone(), member }).await?;
        }
    }
    Ok(HttpResponse::Ok().json(json!({})))
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
