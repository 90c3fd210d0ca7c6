//! Tag routes of the `iot` API: TagResource, UntagResource, ListTagsForResource, and the
//! `tags` the Create calls take (applied once the resource exists). Tags are `meta` state
//! (`tags.rs`).

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::call::Call;
use super::error::ApiResult;
use super::Api;
use crate::meta::{Command, Meta};
use crate::tags::{self, Command as TagsCommand};
use ferrite_aws::AwsError;

/// AWS's `Tag` in a `TagList`.
#[derive(serde::Deserialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    key: String,
    value: Option<String>,
}

/// A `TagList` as a map.
pub fn tag_map(tags: Option<Vec<Tag>>) -> BTreeMap<String, String> {
    tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value.unwrap_or_default())).collect()
}

/// `k=v&k2=v2` (CreateTopicRule's `x-amz-tagging` header) as a map.
pub fn tagging_header(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (ferrite_aws::percent::decode_lossy(k).into_owned(), ferrite_aws::percent::decode_lossy(v).into_owned())
        })
        .collect()
}

/// Does the resource (`kind/name`) exist?
fn exists(meta: &Meta, resource: &str) -> bool {
    let (kind, name) = resource.split_once('/').unwrap_or((resource, ""));
    match kind {
        "thinggroup" => meta.registry.thing_group(name).is_some(),
        "thingtype" => meta.registry.thing_type(name).is_some(),
        "policy" => meta.identity.policy(name).is_some(),
        "cacert" => meta.identity.ca_certificate(name).is_some(),
        "authorizer" => meta.identity.authorizer(name).is_some(),
        "rule" => meta.topic_rules.get(name).is_some(),
        "job" => meta.jobs.read().jobs.contains_key(name),
        "jobtemplate" => meta.jobs.read().templates.contains_key(name),
        "provisioningtemplate" => meta.provisioning.template(name).is_some(),
        "fleetmetric" => meta.fleet_metrics.get(name).is_some(),
        _ => false,
    }
}

fn checked(api: &Api, arn: &str) -> Result<String, AwsError> {
    let resource = tags::resource_of(arn)?;
    if !exists(api.services.meta.state(), &resource) {
        return Err(AwsError::new(404, "ResourceNotFoundException", format!("The resource {arn} does not exist")));
    }
    Ok(resource)
}

async fn propose(api: &Api, command: TagsCommand) -> Result<(), AwsError> {
    crate::meta::propose(&api.services.meta, Command::Tags(command)).await.map(|_| ())
}

/// Tags a resource a Create call just made (nothing to do without tags).
pub async fn tag_created(api: &Api, arn: &str, tags: BTreeMap<String, String>) -> Result<(), AwsError> {
    if tags.is_empty() {
        return Ok(());
    }
    tags::check(&tags)?;
    let resource = tags::resource_of(arn)?;
    propose(api, TagsCommand::Tag { resource, tags }).await
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TagBody {
    resource_arn: Option<String>,
    tags: Option<Vec<Tag>>,
    tag_keys: Option<Vec<String>>,
}

/// TagResource.
pub async fn tag_resource(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: TagBody = call.json()?;
    let arn = b.resource_arn.ok_or_else(|| AwsError::invalid_request("resourceArn is required"))?;
    let resource = checked(&api, &arn)?;
    let tags = tag_map(b.tags);
    tags::check(&tags)?;
    propose(&api, TagsCommand::Tag { resource, tags }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// UntagResource.
pub async fn untag_resource(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: TagBody = call.json()?;
    let arn = b.resource_arn.ok_or_else(|| AwsError::invalid_request("resourceArn is required"))?;
    let resource = checked(&api, &arn)?;
    propose(&api, TagsCommand::Untag { resource, keys: b.tag_keys.unwrap_or_default() }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    resource_arn: Option<String>,
}

/// ListTagsForResource (one page: a resource has at most 50 tags).
pub async fn list_tags(api: web::Data<Api>, call: Call) -> ApiResult {
    let q: ListQuery = call.query()?;
    let arn = q.resource_arn.ok_or_else(|| AwsError::invalid_request("resourceArn is required"))?;
    let resource = checked(&api, &arn)?;
    let tags: Vec<_> = api
        .services
        .meta
        .state()
        .tags
        .of(&resource)
        .into_iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "tags": tags })))
}
