//! The fleet indexing routes of the `iot` API: Update/GetIndexingConfiguration, ListIndices,
//! DescribeIndex, SearchIndex and the aggregations (GetStatistics, GetCardinality,
//! GetPercentiles, GetBucketsAggregation). The configuration is a `meta` command; searches
//! read this node's own index.

use actix_web::{web, HttpResponse};
use ferrite_aws::fleet_query::{self, Query};
use serde_json::{json, Value};

use super::call::Call;
use super::error::ApiResult;
use super::proposals::unexpected;
use super::Api;
use crate::fleet_index::config::{Command as IndexingCommand, Field, IndexingConfiguration, ThingIndexing};
use crate::meta::{Command, Outcome};
use ferrite_aws::AwsError;

/// The two indices AWS names.
const THINGS: &str = "AWS_Things";
const GROUPS: &str = "AWS_ThingGroups";

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ThingBody {
    thing_indexing_mode: Option<String>,
    thing_connectivity_indexing_mode: Option<String>,
    device_defender_indexing_mode: Option<String>,
    named_shadow_indexing_mode: Option<String>,
    custom_fields: Option<Vec<Field>>,
    filter: Option<FilterBody>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FilterBody {
    named_shadow_names: Option<Vec<String>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GroupBody {
    thing_group_indexing_mode: Option<String>,
    custom_fields: Option<Vec<Field>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigBody {
    thing_indexing_configuration: Option<ThingBody>,
    thing_group_indexing_configuration: Option<GroupBody>,
}

/// UpdateIndexingConfiguration: each part given replaces the stored one.
pub async fn update_configuration(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: ConfigBody = call.json()?;
    let mut config = api.services.meta.state().indexing.get();
    if let Some(t) = b.thing_indexing_configuration {
        let mode = t
            .thing_indexing_mode
            .ok_or_else(|| AwsError::invalid_request("thingIndexingConfiguration.thingIndexingMode is required"))?;
        config.things = ThingIndexing {
            thing_indexing_mode: mode,
            thing_connectivity_indexing_mode: t.thing_connectivity_indexing_mode.unwrap_or_else(|| "OFF".into()),
            named_shadow_indexing_mode: t.named_shadow_indexing_mode.unwrap_or_else(|| "OFF".into()),
            device_defender_indexing_mode: t.device_defender_indexing_mode.unwrap_or_else(|| "OFF".into()),
            named_shadow_names: t.filter.and_then(|f| f.named_shadow_names).unwrap_or_default(),
            custom_fields: t.custom_fields.unwrap_or_default(),
        };
    }
    if let Some(g) = b.thing_group_indexing_configuration {
        config.thing_group_indexing_mode = g.thing_group_indexing_mode.ok_or_else(|| {
            AwsError::invalid_request("thingGroupIndexingConfiguration.thingGroupIndexingMode is required")
        })?;
        config.thing_group_custom_fields = g.custom_fields.unwrap_or_default();
    }
    config.check()?;
    match crate::meta::propose(&api.services.meta, Command::Indexing(IndexingCommand::Set { config })).await? {
        Outcome::Indexing => Ok(HttpResponse::Ok().json(json!({}))),
        other => Err(unexpected(&other)),
    }
}

/// GetIndexingConfiguration.
pub async fn get_configuration(api: web::Data<Api>, _call: Call) -> ApiResult {
    Ok(HttpResponse::Ok().json(api.services.meta.state().indexing.get().document()))
}

fn indices(config: &IndexingConfiguration) -> Vec<&'static str> {
    let mut out = Vec::new();
    if config.things_on() {
        out.push(THINGS);
    }
    if config.groups_on() {
        out.push(GROUPS);
    }
    out
}

/// ListIndices.
pub async fn list_indices(api: web::Data<Api>, _call: Call) -> ApiResult {
    Ok(HttpResponse::Ok().json(json!({ "indexNames": indices(&api.services.fleet_index.config()) })))
}

fn no_index(name: &str) -> AwsError {
    AwsError::new(
        404,
        "ResourceNotFoundException",
        format!("The index {name} does not exist: turn its indexing on (UpdateIndexingConfiguration)"),
    )
}

/// DescribeIndex.
pub async fn describe_index(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    let config = api.services.fleet_index.config();
    if !indices(&config).contains(&name.as_str()) {
        return Err(no_index(&name));
    }
    let schema = if name.as_str() == THINGS { config.thing_schema() } else { "THING_GROUPS" };
    Ok(HttpResponse::Ok().json(json!({ "indexName": name.as_str(), "indexStatus": "ACTIVE", "schema": schema })))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    index_name: Option<String>,
    query_string: Option<String>,
    next_token: Option<String>,
    max_results: Option<usize>,
    percents: Option<Vec<f64>>,
    aggregation_field: Option<String>,
    buckets_aggregation_type: Option<Value>,
}

/// The index a search names (AWS_Things by default) if it is on, and its parsed query;
/// a malformed query is AWS's InvalidQueryException with where.
fn prepare(api: &Api, b: &SearchBody) -> Result<(String, Query), AwsError> {
    let name = b.index_name.clone().unwrap_or_else(|| THINGS.into());
    if !indices(&api.services.fleet_index.config()).contains(&name.as_str()) {
        return Err(no_index(&name));
    }
    let text = b.query_string.as_deref().ok_or_else(|| AwsError::invalid_request("queryString is required"))?;
    Ok((name, parse_query(text)?))
}

/// A fleet indexing query, or AWS's InvalidQueryException saying where it went wrong
/// (search, aggregations, dynamic groups, fleet metrics).
pub(super) fn parse_query(text: &str) -> Result<Query, AwsError> {
    fleet_query::parse(text).map_err(|e| {
        let why = format!("Invalid query at line {}, column {} (offset {}): {}", e.line, e.column, e.offset, e.message);
        AwsError::new(400, "InvalidQueryException", why)
    })
}

/// SearchIndex.
pub async fn search(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: SearchBody = call.json()?;
    let (name, query) = prepare(&api, &b)?;
    let size = b.max_results.unwrap_or(100).clamp(1, 500);
    let index = &api.services.fleet_index;
    let mut answer = if name == THINGS {
        let (things, next) = index.search_things(&query, b.next_token.as_deref(), size);
        json!({ "things": things, "nextToken": next })
    } else {
        let (groups, next) = index.search_groups(&query, b.next_token.as_deref(), size);
        json!({ "thingGroups": groups, "nextToken": next })
    };
    if answer["nextToken"].is_null() {
        answer.as_object_mut().map(|o| o.remove("nextToken"));
    }
    Ok(HttpResponse::Ok().json(answer))
}

/// The values of the aggregation field in the matching things.
fn values(api: &Api, b: &SearchBody) -> Result<Vec<Value>, AwsError> {
    let (name, query) = prepare(api, b)?;
    if name != THINGS {
        return Err(AwsError::invalid_request("Aggregations are on the AWS_Things index"));
    }
    let field =
        b.aggregation_field.as_deref().ok_or_else(|| AwsError::invalid_request("aggregationField is required"))?;
    Ok(api.services.fleet_index.thing_values(&query, field))
}

/// GetStatistics.
pub async fn statistics(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: SearchBody = call.json()?;
    let s = fleet_query::statistics(&values(&api, &b)?);
    let mut doc = json!({ "count": s.count });
    for (key, v) in s.named().into_iter().skip(1) {
        if let Some(v) = v {
            doc[key] = json!(v);
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "statistics": doc })))
}

/// GetCardinality.
pub async fn cardinality(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: SearchBody = call.json()?;
    Ok(HttpResponse::Ok().json(json!({ "cardinality": fleet_query::cardinality(&values(&api, &b)?) })))
}

/// GetPercentiles (AWS's default percents when none are given).
pub async fn percentiles(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: SearchBody = call.json()?;
    let percents = b.percents.clone().unwrap_or_else(|| fleet_query::DEFAULT_PERCENTS.to_vec());
    if percents.iter().any(|p| !(0.0..=100.0).contains(p)) {
        return Err(AwsError::invalid_request("percents must be between 0 and 100"));
    }
    let pairs = fleet_query::percentiles(&values(&api, &b)?, &percents);
    let out: Vec<Value> = pairs.into_iter().map(|(p, v)| json!({ "percent": p, "value": v })).collect();
    Ok(HttpResponse::Ok().json(json!({ "percentiles": out })))
}

/// GetBucketsAggregation (terms, at most `maxBuckets`, 10 by default).
pub async fn buckets(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: SearchBody = call.json()?;
    let max = b
        .buckets_aggregation_type
        .as_ref()
        .and_then(|t| t.pointer("/termsAggregation/maxBuckets"))
        .and_then(Value::as_u64)
        .unwrap_or(10)
        .clamp(1, 10_000) as usize;
    let values = values(&api, &b)?;
    let total = values.len();
    let out: Vec<Value> =
        fleet_query::buckets(&values, max).into_iter().map(|(k, n)| json!({ "keyValue": k, "count": n })).collect();
    Ok(HttpResponse::Ok().json(json!({ "totalCount": total, "buckets": out })))
}
