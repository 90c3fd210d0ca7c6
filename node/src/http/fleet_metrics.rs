//! Fleet metric routes of the `iot` API: Create/Describe/List/Update/DeleteFleetMetric. The
//! records are `meta` commands; each node computes the values from its own index
//! (`fleet_runtime`) and exports them on `/metrics`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::call::Call;
use super::error::ApiResult;
use super::paging::{page_after, page_response, TokenQuery};
use super::Api;
use crate::broker::message::now_ms;
use crate::fleet_index::metrics::{not_found, AggregationType, Command as MetricCommand, FleetMetric};
use crate::meta::Command;
use crate::registry::arn_prefix;
use ferrite_aws::AwsError;

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetricBody {
    query_string: Option<String>,
    aggregation_type: Option<AggregationType>,
    period: Option<u64>,
    aggregation_field: Option<String>,
    description: Option<String>,
    query_version: Option<String>,
    index_name: Option<String>,
    unit: Option<String>,
    expected_version: Option<u64>,
    tags: Option<Vec<super::tags::Tag>>,
}

fn check(m: &FleetMetric) -> Result<(), AwsError> {
    if m.metric_name.is_empty()
        || m.metric_name.len() > 128
        || !m.metric_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-:".contains(&b))
    {
        return Err(AwsError::invalid_request("metricName must be 1 to 128 of [a-zA-Z0-9_\\-:]"));
    }
    if !(60..=86_400).contains(&m.period) {
        return Err(AwsError::invalid_request("period must be 60 to 86400 seconds"));
    }
    if m.index_name != "AWS_Things" {
        return Err(AwsError::invalid_request("Fleet metrics aggregate the AWS_Things index"));
    }
    m.aggregation_type.check()?;
    super::fleet_index::parse_query(&m.query_string).map(|_| ())
}

async fn propose(api: &Api, command: MetricCommand) -> Result<(), AwsError> {
    crate::meta::propose(&api.services.meta, Command::FleetMetric(command)).await.map(|_| ())
}

/// CreateFleetMetric.
pub async fn create(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: MetricBody = call.json()?;
    let required = |what: &str| AwsError::invalid_request(format!("{what} is required"));
    let now = now_ms() / 1000;
    let name = name.into_inner();
    let metric = FleetMetric {
        metric_arn: format!("{}fleetmetric/{name}", arn_prefix(call.region())),
        metric_name: name,
        query_string: b.query_string.ok_or_else(|| required("queryString"))?,
        aggregation_type: b.aggregation_type.ok_or_else(|| required("aggregationType"))?,
        period: b.period.ok_or_else(|| required("period"))?,
        aggregation_field: b.aggregation_field.ok_or_else(|| required("aggregationField"))?,
        description: b.description,
        query_version: b.query_version.unwrap_or_else(|| "2017-09-30".into()),
        index_name: b.index_name.unwrap_or_else(|| "AWS_Things".into()),
        unit: b.unit,
        creation_date: now,
        last_modified_date: now,
        version: 1,
    };
    check(&metric)?;
    if !api.services.meta.state().indexing.get().things_on() {
        return Err(AwsError::invalid_request("Fleet metrics need thing indexing: turn it on first"));
    }
    let tags = super::tags::tag_map(b.tags);
    crate::tags::check(&tags)?;
    let (name, arn) = (metric.metric_name.clone(), metric.metric_arn.clone());
    propose(&api, MetricCommand::Create { metric }).await?;
    super::tags::tag_created(&api, &arn, tags).await?;
    Ok(HttpResponse::Ok().json(json!({ "metricName": name, "metricArn": arn })))
}

/// DescribeFleetMetric.
pub async fn describe(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    let m = api.services.meta.state().fleet_metrics.get(&name).ok_or_else(|| not_found(&name))?;
    Ok(HttpResponse::Ok().json(m.describe()))
}

/// ListFleetMetrics.
pub async fn list(api: web::Data<Api>, call: Call) -> ApiResult {
    let q: TokenQuery = call.query()?;
    let all = api.services.meta.state().fleet_metrics.list();
    let (page, next) = page_after(&all, |m| m.metric_name.as_str(), q.next_token.as_deref(), q.size(50, 250));
    let items: Vec<_> =
        page.iter().map(|m| json!({ "metricName": m.metric_name, "metricArn": m.metric_arn })).collect();
    page_response(json!({ "fleetMetrics": items }), next)
}

/// UpdateFleetMetric: what is given replaces the stored value.
pub async fn update(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: MetricBody = call.json()?;
    let mut m = api.services.meta.state().fleet_metrics.get(&name).ok_or_else(|| not_found(&name))?;
    if let Some(v) = b.query_string {
        m.query_string = v;
    }
    if let Some(v) = b.aggregation_type {
        m.aggregation_type = v;
    }
    if let Some(v) = b.period {
        m.period = v;
    }
    if let Some(v) = b.aggregation_field {
        m.aggregation_field = v;
    }
    if let Some(v) = b.description {
        m.description = Some(v);
    }
    if let Some(v) = b.query_version {
        m.query_version = v;
    }
    if let Some(v) = b.index_name {
        m.index_name = v;
    }
    if let Some(v) = b.unit {
        m.unit = Some(v);
    }
    m.last_modified_date = now_ms() / 1000;
    check(&m)?;
    propose(&api, MetricCommand::Update { metric: m, expected_version: b.expected_version }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeleteQuery {
    expected_version: Option<u64>,
}

/// DeleteFleetMetric.
pub async fn delete(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let q: DeleteQuery = call.query()?;
    propose(&api, MetricCommand::Delete { name: name.into_inner(), expected_version: q.expected_version }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}
