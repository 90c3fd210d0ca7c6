//! The thing operations of the `iot` API: CreateThing, DescribeThing, UpdateThing,
//! DeleteThing, ListThings, ListThingGroupsForThing and DescribeEndpoint. Changes are
//! registry commands of the `meta` group; reads use the state this node applied.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::call::Call;
use ferrite_aws::AwsError;

use super::error::ApiResult;
use super::paging::{page_after, page_response, TokenQuery};
use super::{proposals, Api};
use crate::registry::things::{missing, NewThing, ThingUpdate};
use crate::registry::{self, Command, Outcome};

/// The attributes of a thing or group, and whether they merge with the stored ones.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct AttributePayload {
    #[serde(default)]
    pub(super) attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) merge: bool,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ThingBody {
    thing_type_name: Option<String>,
    attribute_payload: Option<AttributePayload>,
    expected_version: Option<u64>,
    #[serde(default)]
    remove_thing_type: bool,
}

/// The `expectedVersion` query of the delete operations.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct VersionQuery {
    pub(super) expected_version: Option<u64>,
}

/// CreateThing.
pub async fn create_thing(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: ThingBody = call.json()?;
    let thing = NewThing {
        name: name.into_inner(),
        thing_type: b.thing_type_name,
        attributes: b.attribute_payload.unwrap_or_default().attributes,
    };
    let command =
        Command::CreateThing { thing, arn_prefix: registry::arn_prefix(call.region()), id: registry::new_id() };
    match proposals::registry(&api, command).await? {
        Outcome::Thing(t) => Ok(HttpResponse::Ok()
            .json(json!({ "thingName": t.thing_name, "thingArn": t.thing_arn, "thingId": t.thing_id }))),
        other => Err(proposals::unexpected(&other)),
    }
}

/// DescribeThing.
pub async fn describe_thing(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    let t = api.services.meta.state().registry.thing(&name).ok_or_else(|| missing("Thing", &name))?;
    let mut doc = serde_json::to_value(&t).unwrap_or_default();
    doc["defaultClientId"] = json!(t.thing_name);
    Ok(HttpResponse::Ok().json(doc))
}

/// UpdateThing.
pub async fn update_thing(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: ThingBody = call.json()?;
    let payload = b.attribute_payload;
    let update = ThingUpdate {
        merge: payload.as_ref().is_some_and(|p| p.merge),
        attributes: payload.map(|p| p.attributes),
        expected_version: b.expected_version,
        thing_type: b.thing_type_name,
        remove_thing_type: b.remove_thing_type,
    };
    proposals::registry(&api, Command::UpdateThing { name: name.into_inner(), update }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// DeleteThing.
pub async fn delete_thing(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let query: VersionQuery = call.query()?;
    let command = Command::DeleteThing { name: name.into_inner(), expected_version: query.expected_version };
    proposals::registry(&api, command).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListThingsFilter {
    attribute_name: Option<String>,
    attribute_value: Option<String>,
    thing_type_name: Option<String>,
    use_prefix_attribute_value: Option<bool>,
}

/// ListThings: in name order, `maxResults` at a time (default 50, at most 250).
pub async fn list_things(api: web::Data<Api>, call: Call) -> ApiResult {
    let (page, query): (TokenQuery, ListThingsFilter) = (call.query()?, call.query()?);
    let filter = match (&query.attribute_name, &query.attribute_value) {
        (Some(n), Some(v)) => Some((n.as_str(), v.as_str(), query.use_prefix_attribute_value.unwrap_or(false))),
        (None, None) => None,
        _ => return Err(AwsError::invalid_request("attributeName and attributeValue go together")),
    };
    let mut things = api.services.meta.state().registry.list_things(filter);
    if let Some(t) = &query.thing_type_name {
        things.retain(|x| x.thing_type_name.as_deref() == Some(t.as_str()));
    }
    let (page, next) = page_after(&things, |t| &t.thing_name, page.next_token.as_deref(), page.size(50, 250));
    let things: Vec<serde_json::Value> = page
        .iter()
        .map(|t| {
            let mut doc = json!({
                "thingName": t.thing_name, "thingArn": t.thing_arn, "attributes": t.attributes, "version": t.version,
            });
            if let Some(ty) = &t.thing_type_name {
                doc["thingTypeName"] = json!(ty);
            }
            doc
        })
        .collect();
    page_response(json!({ "things": things }), next)
}

/// ListThingGroupsForThing.
pub async fn list_thing_groups_for_thing(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    let groups: Vec<serde_json::Value> = api
        .services
        .meta
        .state()
        .registry
        .groups_of_thing(&name)
        .into_iter()
        .map(|(n, a)| json!({ "groupName": n, "groupArn": a }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "thingGroups": groups })))
}

/// DescribeEndpoint: the host name clients used to reach this node (devices connect to the
/// same host's MQTT port).
pub async fn describe_endpoint(call: Call) -> ApiResult {
    Ok(HttpResponse::Ok().json(json!({ "endpointAddress": super::request_host(&call.req) })))
}
