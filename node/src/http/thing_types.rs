//! The thing-type operations of the `iot` API: CreateThingType, DescribeThingType,
//! DeprecateThingType, DeleteThingType and ListThingTypes.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::call::Call;
use super::error::ApiResult;
use super::paging::{page_after, page_response, TokenQuery};
use super::{proposals, Api};
use crate::broker::message::now_ms;
use crate::registry::types::ThingType;
use crate::registry::{self, Command, Outcome};

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ThingTypeProperties {
    thing_type_description: Option<String>,
    #[serde(default)]
    searchable_attributes: Vec<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    thing_type_properties: Option<ThingTypeProperties>,
    tags: Option<Vec<super::tags::Tag>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeprecateBody {
    #[serde(default)]
    undo_deprecate: bool,
}

fn document(t: &ThingType) -> serde_json::Value {
    let mut props = json!({ "searchableAttributes": t.searchable_attributes });
    if let Some(d) = &t.description {
        props["thingTypeDescription"] = json!(d);
    }
    let mut meta = json!({ "deprecated": t.deprecated, "creationDate": t.creation_date });
    if let Some(d) = t.deprecation_date {
        meta["deprecationDate"] = json!(d);
    }
    json!({
        "thingTypeName": t.thing_type_name, "thingTypeId": t.thing_type_id, "thingTypeArn": t.thing_type_arn,
        "thingTypeProperties": props, "thingTypeMetadata": meta,
    })
}

/// CreateThingType.
pub async fn create_thing_type(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b = call.json::<CreateBody>()?;
    let tags = super::tags::tag_map(b.tags);
    crate::tags::check(&tags)?;
    let p = b.thing_type_properties.unwrap_or_default();
    let command = Command::CreateThingType {
        name: name.into_inner(),
        description: p.thing_type_description,
        searchable: p.searchable_attributes,
        arn_prefix: registry::arn_prefix(call.region()),
        id: registry::new_id(),
        now_s: now_ms() / 1000,
    };
    match proposals::registry(&api, command).await? {
        Outcome::ThingType(t) => {
            super::tags::tag_created(&api, &t.thing_type_arn, tags).await?;
            Ok(HttpResponse::Ok().json(
            json!({ "thingTypeName": t.thing_type_name, "thingTypeArn": t.thing_type_arn, "thingTypeId": t.thing_type_id }),
        ))
        }
        other => Err(proposals::unexpected(&other)),
    }
}

/// DescribeThingType.
pub async fn describe_thing_type(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    let t = api.services.meta.state().registry.thing_type(&name).ok_or_else(|| registry::types::not_found(&name))?;
    Ok(HttpResponse::Ok().json(document(&t)))
}

/// DeprecateThingType (and its undo).
pub async fn deprecate_thing_type(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let undo = call.json::<DeprecateBody>()?.undo_deprecate;
    let command = Command::DeprecateThingType { name: name.into_inner(), undo, now_s: now_ms() / 1000 };
    proposals::registry(&api, command).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// DeleteThingType: only a type deprecated for the configured wait.
pub async fn delete_thing_type(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    let wait_s = api.services.broker.config.thing_type_deletion_wait_secs;
    let command = Command::DeleteThingType { name: name.into_inner(), now_s: now_ms() / 1000, wait_s };
    proposals::registry(&api, command).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListFilter {
    thing_type_name: Option<String>,
}

/// ListThingTypes.
pub async fn list_thing_types(api: web::Data<Api>, call: Call) -> ApiResult {
    let (page, query): (TokenQuery, ListFilter) = (call.query()?, call.query()?);
    let mut all = api.services.meta.state().registry.thing_types();
    if let Some(n) = &query.thing_type_name {
        all.retain(|t| &t.thing_type_name == n);
    }
    let (page, next) = page_after(&all, |t| &t.thing_type_name, page.next_token.as_deref(), page.size(50, 250));
    page_response(json!({ "thingTypes": page.iter().map(document).collect::<Vec<_>>() }), next)
}
