//! Bulk registration routes of the `iot` API: Start/Describe/List/StopThingRegistrationTask(s)
//! and ListThingRegistrationTaskReports, and the report files those links point at (fetched
//! without signing, with the task's secret in the link, as AWS's presigned S3 links are).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::call::Call;
use super::error::ApiResult;
use super::paging::{page_response, TokenQuery};
use super::Api;
use crate::broker::message::now_ms;
use crate::meta::Command;
use crate::provisioning::tasks::STATUSES;
use crate::provisioning::{task_not_found, Command as ProvisioningCommand};
use crate::provisioning_runtime::bulk::{TaskInput, REPORTS};
use ferrite_aws::AwsError;

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct StartBody {
    template_body: Option<String>,
    input_file_bucket: Option<String>,
    input_file_key: Option<String>,
    role_arn: Option<String>,
}

/// StartThingRegistrationTask: `inputFileKey` is a path on this node or an http(s) URL.
pub async fn start_task(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: StartBody = call.json()?;
    let required =
        |v: Option<String>, name: &str| v.ok_or_else(|| AwsError::invalid_request(format!("{name} is required")));
    let input = TaskInput {
        template_body: required(b.template_body, "templateBody")?,
        input_file_bucket: required(b.input_file_bucket, "inputFileBucket")?,
        input_file_key: required(b.input_file_key, "inputFileKey")?,
        role_arn: required(b.role_arn, "roleArn")?,
    };
    let task_id = api.services.provisioning.start_task(input).await?;
    Ok(HttpResponse::Ok().json(json!({ "taskId": task_id })))
}

/// DescribeThingRegistrationTask.
pub async fn describe_task(api: web::Data<Api>, _call: Call, id: web::Path<String>) -> ApiResult {
    let t = api.services.meta.state().provisioning.task(&id).ok_or_else(|| task_not_found(&id))?;
    Ok(HttpResponse::Ok().json(t.describe()))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    next_token: Option<String>,
    max_results: Option<usize>,
    status: Option<String>,
}

/// ListThingRegistrationTasks (newest first, optionally of one status).
pub async fn list_tasks(api: web::Data<Api>, call: Call) -> ApiResult {
    let q: ListQuery = call.query()?;
    if let Some(s) = q.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(AwsError::invalid_request(format!("Invalid status {s:?}")));
    }
    let ids: Vec<String> = api
        .services
        .meta
        .state()
        .provisioning
        .tasks()
        .into_iter()
        .filter(|t| q.status.as_deref().is_none_or(|s| t.status == s))
        .map(|t| t.task_id)
        .collect();
    let start = q.next_token.as_deref().and_then(|after| ids.iter().position(|i| i == after)).map_or(0, |p| p + 1);
    let size = TokenQuery { next_token: None, max_results: q.max_results }.size(25, 250);
    let end = (start + size).min(ids.len());
    let next = (end < ids.len()).then(|| ids[end - 1].clone());
    page_response(json!({ "taskIds": &ids[start..end] }), next)
}

/// StopThingRegistrationTask.
pub async fn stop_task(api: web::Data<Api>, _call: Call, id: web::Path<String>) -> ApiResult {
    let command = ProvisioningCommand::StopTask { task_id: id.into_inner(), now_s: now_ms() / 1000 };
    crate::meta::propose(&api.services.meta, Command::Provisioning(command)).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ReportsQuery {
    report_type: Option<String>,
    next_token: Option<String>,
}

/// ListThingRegistrationTaskReports: one link per report, on the node that ran the task.
pub async fn list_reports(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let q: ReportsQuery = call.query()?;
    let kind = q.report_type.ok_or_else(|| AwsError::invalid_request("reportType is required: RESULTS or ERRORS"))?;
    if !REPORTS.contains(&kind.as_str()) {
        return Err(AwsError::invalid_request(format!("Invalid reportType {kind:?}: RESULTS or ERRORS")));
    }
    let t = api.services.meta.state().provisioning.task(&id).ok_or_else(|| task_not_found(&id))?;
    let info = call.req.connection_info();
    let base = format!("{}://{}", info.scheme(), info.host());
    let links = if q.next_token.is_some() {
        Vec::new()
    } else {
        vec![format!(
            "{base}/thing-registration-reports/{}/{}?token={}",
            t.task_id,
            kind.to_ascii_lowercase(),
            t.report_token
        )]
    };
    Ok(HttpResponse::Ok().json(json!({ "resourceLinks": links, "reportType": kind })))
}

#[derive(serde::Deserialize, Default)]
struct TokenParam {
    token: Option<String>,
}

/// A report file: the link ListThingRegistrationTaskReports gave (its token is the
/// credential).
pub async fn report_file(api: web::Data<Api>, req: HttpRequest, path: web::Path<(String, String)>) -> ApiResult {
    let (id, kind) = path.into_inner();
    let q = web::Query::<TokenParam>::from_query(req.query_string()).map(|q| q.into_inner()).unwrap_or_default();
    let t = api.services.meta.state().provisioning.task(&id).ok_or_else(|| task_not_found(&id))?;
    let kind = kind.to_ascii_uppercase();
    if q.token.as_deref() != Some(t.report_token.as_str()) || !REPORTS.contains(&kind.as_str()) {
        return Err(AwsError::new(403, "AccessDeniedException", "The report link is not valid"));
    }
    let runtime = &api.services.provisioning;
    if t.node != api.services.broker.cluster.node_id {
        return Err(AwsError::new(
            404,
            "ResourceNotFoundException",
            format!("The reports of task {id} are on node {}: ask that node's API", t.node),
        ));
    }
    let path = runtime.report_path(&id, &kind);
    let text = std::fs::read(&path).map_err(|e| {
        AwsError::new(404, "ResourceNotFoundException", format!("The {kind} report of task {id} is not there: {e}"))
    })?;
    Ok(HttpResponse::Ok().content_type("application/x-ndjson").body(text))
}
