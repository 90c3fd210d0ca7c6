//! The jobs operations of the `iot` API: jobs, job executions, job templates and the event
//! configuration. Changes are `jobs` commands proposed to the `meta` group; reads go to its
//! applied state.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::call::Call;
use super::error::ApiResult;
use super::paging::{page_after, page_response, TokenQuery};
use super::Api;
use crate::broker::message::now_ms;
use crate::jobs::documents;
use crate::jobs::model::{self, Job, JobConfig, JobTemplate, Rollout, SchedulingConfig, TargetSelection};
use crate::jobs::{self, Command, Outcome};
use ferrite_aws::AwsError;

/// The largest job document AWS accepts.
const MAX_DOCUMENT: usize = 32 * 1024;

fn check_id(kind: &str, id: &str) -> Result<(), AwsError> {
    if jobs::is_job_id(id) {
        Ok(())
    } else {
        Err(AwsError::invalid_request(format!("{kind} {id:?} must be 1 to 64 characters of [a-zA-Z0-9_-]")))
    }
}

/// Fetches a `documentSource` once (an http(s) URL here, where AWS reads S3: docs/jobs.md).
async fn fetch_document(url: &str) -> Result<String, AwsError> {
    let target = ferrite_http_client::parse_url(url)
        .map_err(|e| AwsError::invalid_request(format!("documentSource {url:?} is not an http(s) URL: {e}")))?;
    let (status, body) = ferrite_http_client::call("GET", &target, &[], b"", std::time::Duration::from_secs(10))
        .await
        .map_err(|e| AwsError::invalid_request(format!("documentSource {url:?} could not be fetched: {e}")))?;
    if status != 200 {
        return Err(AwsError::invalid_request(format!("documentSource {url:?} answered HTTP {status}")));
    }
    String::from_utf8(body).map_err(|_| AwsError::invalid_request(format!("documentSource {url:?} is not UTF-8 text")))
}

/// A job document must be a JSON object of at most 32 KB.
fn check_document(document: &str) -> Result<(), AwsError> {
    if document.len() > MAX_DOCUMENT {
        return Err(AwsError::invalid_request(format!("The job document is over {MAX_DOCUMENT} bytes")));
    }
    match serde_json::from_str::<Value>(document) {
        Ok(Value::Object(_)) => Ok(()),
        Ok(_) => Err(AwsError::invalid_request("The job document must be a JSON object")),
        Err(e) => Err(AwsError::invalid_request(format!("The job document is not valid JSON: {e}"))),
    }
}

/// The document of a job or template: `document`, or `documentSource` fetched now.
async fn document_of(document: Option<String>, source: Option<&str>) -> Result<Option<String>, AwsError> {
    match (document, source) {
        (Some(_), Some(_)) => Err(AwsError::invalid_request("Give document or documentSource, not both")),
        (Some(d), None) => Ok(Some(d)),
        (None, Some(url)) => fetch_document(url).await.map(Some),
        (None, None) => Ok(None),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateJobBody {
    targets: Option<Vec<String>>,
    document_source: Option<String>,
    document: Option<String>,
    target_selection: Option<TargetSelection>,
    job_template_arn: Option<String>,
    document_parameters: Option<BTreeMap<String, String>>,
    scheduling_config: Option<SchedulingConfig>,
    tags: Option<Vec<super::tags::Tag>>,
    #[serde(flatten)]
    config: JobConfig,
}

fn template_id(arn: &str) -> &str {
    arn.rsplit_once("jobtemplate/").map_or(arn, |(_, id)| id)
}

/// CreateJob.
pub async fn create_job(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let id = id.into_inner();
    check_id("jobId", &id)?;
    let b: CreateJobBody = call.json()?;
    let tags = super::tags::tag_map(b.tags);
    crate::tags::check(&tags)?;
    let targets = b.targets.unwrap_or_default();
    if targets.is_empty() || targets.len() > 100 {
        return Err(AwsError::invalid_request("targets must name 1 to 100 thing or thing group ARNs"));
    }
    let mut config = b.config;
    let own = document_of(b.document, b.document_source.as_deref()).await?;
    let mut template_windows = None;
    let (document, before) = match &b.job_template_arn {
        Some(arn) => {
            let t = api.services.meta.state().jobs.read().templates.get(template_id(arn)).cloned();
            let t = t.ok_or_else(|| AwsError::not_found(format!("Job template {arn} not found")))?;
            let template_doc = own
                .or(t.document.clone())
                .ok_or_else(|| AwsError::invalid_request(format!("Job template {arn} has no document")))?;
            config = config.or(t.config);
            template_windows = Some(t.maintenance_windows);
            let params = b.document_parameters.clone().unwrap_or_default();
            (model::substitute(&template_doc, &params)?, Some(template_doc))
        }
        None => {
            if b.document_parameters.is_some() {
                return Err(AwsError::invalid_request("documentParameters need a jobTemplateArn"));
            }
            let d = own.ok_or_else(|| {
                AwsError::invalid_request("A job needs a document, a documentSource or a jobTemplateArn")
            })?;
            (d, None)
        }
    };
    check_document(&document)?;
    config.check()?;
    let mut rollout = Rollout::default();
    let mut scheduling = b.scheduling_config;
    if let Some(windows) = template_windows.filter(|w| !w.is_empty()) {
        let s = scheduling.get_or_insert_with(SchedulingConfig::default);
        if s.maintenance_windows.is_empty() {
            s.maintenance_windows = windows;
        }
    }
    if let Some(s) = &scheduling {
        model::check_windows(&s.maintenance_windows)?;
        rollout.start_at = s.start_time.as_deref().map(model::parse_date_time).transpose()?;
        rollout.end_at = s.end_time.as_deref().map(model::parse_date_time).transpose()?;
        if let (Some(a), Some(e)) = (rollout.start_at, rollout.end_at) {
            if e <= a {
                return Err(AwsError::invalid_request("schedulingConfig.endTime must come after startTime"));
            }
        }
        if let Some(b) = &s.end_behavior {
            if !matches!(b.as_str(), "STOP_ROLLOUT" | "CANCEL" | "FORCE_CANCEL") {
                return Err(AwsError::invalid_request(format!(
                    "endBehavior must be STOP_ROLLOUT, CANCEL or FORCE_CANCEL, not {b:?}"
                )));
            }
        }
    }
    let now = now_ms();
    let job = Job {
        job_arn: format!("{}job/{id}", crate::registry::arn_prefix(call.region())),
        job_id: id,
        targets,
        target_selection: b.target_selection.unwrap_or_default(),
        document,
        document_before_substitution: before,
        document_source: b.document_source,
        job_template_arn: b.job_template_arn,
        document_parameters: b.document_parameters,
        scheduling_config: scheduling,
        config,
        status: model::JobStatus::InProgress,
        force_canceled: false,
        reason_code: None,
        comment: None,
        created_at: now,
        last_updated_at: now,
        completed_at: None,
        rollout,
    };
    match super::proposals::jobs(&api, Command::CreateJob { job: Box::new(job), now }).await? {
        Outcome::Job(j) => {
            super::tags::tag_created(&api, &j.job_arn, tags).await?;
            Ok(job_answer(&j))
        }
        other => Err(super::proposals::unexpected(&other)),
    }
}

fn job_answer(j: &Job) -> HttpResponse {
    let mut v = json!({ "jobArn": j.job_arn, "jobId": j.job_id });
    if let Some(d) = &j.config.description {
        v["description"] = json!(d);
    }
    HttpResponse::Ok().json(v)
}

/// DescribeJob: the job with its execution counts.
pub async fn describe_job(api: web::Data<Api>, _call: Call, id: web::Path<String>) -> ApiResult {
    let st = api.services.meta.state().jobs.read();
    let j = st.jobs.get(id.as_str()).ok_or_else(|| jobs::job_not_found(&id))?;
    let mut job = documents::job(j);
    job["jobProcessDetails"] = st.process_details(j);
    let mut v = json!({ "job": job });
    if let Some(s) = &j.document_source {
        v["documentSource"] = json!(s);
    }
    Ok(HttpResponse::Ok().json(v))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListJobsQuery {
    status: Option<String>,
    target_selection: Option<String>,
    thing_group_name: Option<String>,
    thing_group_id: Option<String>,
}

/// ListJobs, filtered by status, target selection or target group.
pub async fn list_jobs(api: web::Data<Api>, call: Call) -> ApiResult {
    let (page, q): (TokenQuery, ListJobsQuery) = (call.query()?, call.query()?);
    let meta = api.services.meta.state();
    let group = match (&q.thing_group_name, &q.thing_group_id) {
        (Some(n), _) => Some(n.clone()),
        (None, Some(id)) => {
            let found = meta.registry.thing_groups(None, false).into_iter().find(|g| &g.id == id).map(|g| g.name);
            Some(found.unwrap_or_else(|| format!("\0{id}")))
        }
        (None, None) => None,
    };
    let st = meta.jobs.read();
    let jobs: Vec<&Job> = st
        .jobs
        .values()
        .filter(|j| q.status.as_deref().is_none_or(|s| j.status.name() == s))
        .filter(|j| q.target_selection.as_deref().is_none_or(|s| json!(j.target_selection) == json!(s)))
        .filter(|j| group.as_deref().is_none_or(|g| j.targets.iter().any(|t| t.ends_with(&format!(":thinggroup/{g}")))))
        .collect();
    let (page, next) = page_after(&jobs, |j| &j.job_id, page.next_token.as_deref(), page.size(50, 250));
    let jobs: Vec<Value> = page.iter().map(|j| documents::job_summary(j)).collect();
    page_response(json!({ "jobs": jobs }), next)
}

/// UpdateJob: the blocks given replace the job's.
pub async fn update_job(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let config: JobConfig = call.json()?;
    config.check()?;
    let command = Command::UpdateJob { job_id: id.into_inner(), config: Box::new(config), now: now_ms() };
    super::proposals::jobs(&api, command).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ForceQuery {
    force: Option<bool>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CancelBody {
    reason_code: Option<String>,
    comment: Option<String>,
}

/// CancelJob.
pub async fn cancel_job(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let (q, b): (ForceQuery, CancelBody) = (call.query()?, call.json()?);
    let command = Command::CancelJob {
        job_id: id.into_inner(),
        force: q.force.unwrap_or(false),
        reason_code: b.reason_code,
        comment: b.comment,
        now: now_ms(),
    };
    match super::proposals::jobs(&api, command).await? {
        Outcome::Job(j) => Ok(job_answer(&j)),
        other => Err(super::proposals::unexpected(&other)),
    }
}

/// DeleteJob.
pub async fn delete_job(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let q: ForceQuery = call.query()?;
    super::proposals::jobs(
        &api,
        Command::DeleteJob { job_id: id.into_inner(), force: q.force.unwrap_or(false), now: now_ms() },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SubstitutionQuery {
    before_substitution: Option<bool>,
}

/// GetJobDocument.
pub async fn get_job_document(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let q: SubstitutionQuery = call.query()?;
    let st = api.services.meta.state().jobs.read();
    let j = st.jobs.get(id.as_str()).ok_or_else(|| jobs::job_not_found(&id))?;
    let document = match (q.before_substitution, &j.document_before_substitution) {
        (Some(true), Some(before)) => before,
        _ => &j.document,
    };
    Ok(HttpResponse::Ok().json(json!({ "document": document })))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ExecutionsQuery {
    status: Option<String>,
    job_id: Option<String>,
}

fn thing_arn(api: &Api, thing: &str, region: &str) -> String {
    api.services
        .meta
        .state()
        .registry
        .thing(thing)
        .map(|t| t.thing_arn)
        .unwrap_or_else(|| format!("{}thing/{thing}", crate::registry::arn_prefix(region)))
}

/// ListJobExecutionsForJob.
pub async fn list_job_executions_for_job(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let (page, q): (TokenQuery, ExecutionsQuery) = (call.query()?, call.query()?);
    let executions: Vec<model::Execution> = {
        let st = api.services.meta.state().jobs.read();
        if !st.jobs.contains_key(id.as_str()) {
            return Err(jobs::job_not_found(&id));
        }
        st.of_job(&id).filter(|e| q.status.as_deref().is_none_or(|s| e.status.name() == s)).cloned().collect()
    };
    let (page, next) =
        page_after(&executions, |e| e.thing_name.as_str(), page.next_token.as_deref(), page.size(50, 250));
    let summaries: Vec<Value> = page
        .iter()
        .map(|e| {
            json!({
                "thingArn": thing_arn(&api, &e.thing_name, call.region()),
                "jobExecutionSummary": documents::control_summary(e),
            })
        })
        .collect();
    page_response(json!({ "executionSummaries": summaries }), next)
}

/// ListJobExecutionsForThing.
pub async fn list_job_executions_for_thing(api: web::Data<Api>, call: Call, thing: web::Path<String>) -> ApiResult {
    let (page, q): (TokenQuery, ExecutionsQuery) = (call.query()?, call.query()?);
    let executions: Vec<model::Execution> = {
        let st = api.services.meta.state().jobs.read();
        st.of_thing(&thing)
            .filter(|e| q.status.as_deref().is_none_or(|s| e.status.name() == s))
            .filter(|e| q.job_id.as_deref().is_none_or(|j| e.job_id == j))
            .cloned()
            .collect()
    };
    let (page, next) = page_after(&executions, |e| e.job_id.as_str(), page.next_token.as_deref(), page.size(50, 250));
    let summaries: Vec<Value> = page
        .iter()
        .map(|e| json!({ "jobId": e.job_id, "jobExecutionSummary": documents::control_summary(e) }))
        .collect();
    page_response(json!({ "executionSummaries": summaries }), next)
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ExecutionNumberQuery {
    execution_number: Option<u64>,
}

/// DescribeJobExecution (`iot`).
pub async fn describe_job_execution(api: web::Data<Api>, call: Call, path: web::Path<(String, String)>) -> ApiResult {
    let (thing, job) = path.into_inner();
    let q: ExecutionNumberQuery = call.query()?;
    let e = api.services.meta.state().jobs.read().attempt(&thing, &job, q.execution_number).cloned();
    let e = e.ok_or_else(|| jobs::execution_not_found(&job, &thing))?;
    let arn = thing_arn(&api, &thing, call.region());
    Ok(HttpResponse::Ok().json(json!({ "execution": documents::control_execution(&e, &arn, now_ms()) })))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CancelExecutionBody {
    expected_version: Option<u64>,
    status_details: Option<BTreeMap<String, String>>,
}

/// CancelJobExecution.
pub async fn cancel_job_execution(api: web::Data<Api>, call: Call, path: web::Path<(String, String)>) -> ApiResult {
    let (thing, job) = path.into_inner();
    let (q, b): (ForceQuery, CancelExecutionBody) = (call.query()?, call.json()?);
    let command = Command::CancelExecution {
        job_id: job,
        thing,
        force: q.force.unwrap_or(false),
        expected_version: b.expected_version,
        status_details: b.status_details,
        now: now_ms(),
    };
    super::proposals::jobs(&api, command).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// DeleteJobExecution.
pub async fn delete_job_execution(
    api: web::Data<Api>,
    call: Call,
    path: web::Path<(String, String, String)>,
) -> ApiResult {
    let (thing, job, number) = path.into_inner();
    let number: u64 =
        number.parse().map_err(|_| AwsError::invalid_request(format!("executionNumber {number:?} is not a number")))?;
    let q: ForceQuery = call.query()?;
    let command = Command::DeleteExecution {
        job_id: job,
        thing,
        execution_number: number,
        force: q.force.unwrap_or(false),
        now: now_ms(),
    };
    super::proposals::jobs(&api, command).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TargetsBody {
    targets: Option<Vec<String>>,
    comment: Option<String>,
}

/// AssociateTargetsWithJob (CONTINUOUS jobs).
pub async fn associate_targets_with_job(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let b: TargetsBody = call.json()?;
    let targets = b.targets.unwrap_or_default();
    if targets.is_empty() {
        return Err(AwsError::invalid_request("targets must name at least one thing or thing group ARN"));
    }
    let command = Command::AssociateTargets { job_id: id.into_inner(), targets, comment: b.comment, now: now_ms() };
    match super::proposals::jobs(&api, command).await? {
        Outcome::Job(j) => Ok(job_answer(&j)),
        other => Err(super::proposals::unexpected(&other)),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TemplateBody {
    job_arn: Option<String>,
    document_source: Option<String>,
    document: Option<String>,
    #[serde(default)]
    maintenance_windows: Vec<model::MaintenanceWindow>,
    tags: Option<Vec<super::tags::Tag>>,
    #[serde(flatten)]
    config: JobConfig,
}

/// CreateJobTemplate (from a document or an existing job).
pub async fn create_job_template(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let id = id.into_inner();
    check_id("jobTemplateId", &id)?;
    let b: TemplateBody = call.json()?;
    let tags = super::tags::tag_map(b.tags);
    crate::tags::check(&tags)?;
    let mut config = b.config;
    if config.description.is_none() {
        return Err(AwsError::invalid_request("description is required"));
    }
    config.check()?;
    let mut document = document_of(b.document, b.document_source.as_deref()).await?;
    if let Some(arn) = &b.job_arn {
        let job_id = arn.rsplit_once("job/").map_or(arn.as_str(), |(_, id)| id);
        let j = api.services.meta.state().jobs.read().jobs.get(job_id).cloned();
        let j = j.ok_or_else(|| jobs::job_not_found(job_id))?;
        document = document.or(Some(j.document_before_substitution.unwrap_or(j.document)));
        let c = j.config;
        config.job_executions_rollout_config = config.job_executions_rollout_config.or(c.job_executions_rollout_config);
        config.abort_config = config.abort_config.or(c.abort_config);
        config.timeout_config = config.timeout_config.or(c.timeout_config);
        config.job_executions_retry_config = config.job_executions_retry_config.or(c.job_executions_retry_config);
    }
    let Some(document) = document else {
        return Err(AwsError::invalid_request("A job template needs a document, a documentSource or a jobArn"));
    };
    model::check_windows(&b.maintenance_windows)?;
    if document.len() > MAX_DOCUMENT {
        return Err(AwsError::invalid_request(format!("The job document is over {MAX_DOCUMENT} bytes")));
    }
    let arn = format!("{}jobtemplate/{id}", crate::registry::arn_prefix(call.region()));
    let template = JobTemplate {
        job_template_id: id.clone(),
        job_template_arn: arn.clone(),
        document: Some(document),
        document_source: b.document_source,
        config,
        maintenance_windows: b.maintenance_windows,
        created_at: now_ms(),
    };
    super::proposals::jobs(&api, Command::CreateTemplate { template: Box::new(template) }).await?;
    super::tags::tag_created(&api, &arn, tags).await?;
    Ok(HttpResponse::Ok().json(json!({ "jobTemplateArn": arn, "jobTemplateId": id })))
}

/// DescribeJobTemplate.
pub async fn describe_job_template(api: web::Data<Api>, _call: Call, id: web::Path<String>) -> ApiResult {
    let st = api.services.meta.state().jobs.read();
    let t = st.templates.get(id.as_str()).ok_or_else(|| AwsError::not_found(format!("Job template {id} not found")))?;
    Ok(HttpResponse::Ok().json(documents::template(t)))
}

/// ListJobTemplates.
pub async fn list_job_templates(api: web::Data<Api>, call: Call) -> ApiResult {
    let page: TokenQuery = call.query()?;
    let templates: Vec<JobTemplate> = api.services.meta.state().jobs.read().templates.values().cloned().collect();
    let (page, next) =
        page_after(&templates, |t| t.job_template_id.as_str(), page.next_token.as_deref(), page.size(50, 250));
    let list: Vec<Value> = page
        .iter()
        .map(|t| {
            let mut v = json!({
                "jobTemplateArn": t.job_template_arn,
                "jobTemplateId": t.job_template_id,
                "createdAt": documents::seconds(t.created_at),
            });
            if let Some(d) = &t.config.description {
                v["description"] = json!(d);
            }
            v
        })
        .collect();
    page_response(json!({ "jobTemplates": list }), next)
}

/// DeleteJobTemplate.
pub async fn delete_job_template(api: web::Data<Api>, _call: Call, id: web::Path<String>) -> ApiResult {
    super::proposals::jobs(&api, Command::DeleteTemplate { job_template_id: id.into_inner() }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
struct Enabled {
    #[serde(rename = "Enabled")]
    enabled: Option<bool>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct EventConfigurationsBody {
    #[serde(default)]
    event_configurations: BTreeMap<String, Enabled>,
}

/// UpdateEventConfigurations.
pub async fn update_event_configurations(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: EventConfigurationsBody = call.json()?;
    let configurations = b.event_configurations.into_iter().map(|(k, v)| (k, v.enabled.unwrap_or(false))).collect();
    super::proposals::jobs(&api, Command::SetEventConfigurations { configurations, now: now_ms() }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// DescribeEventConfigurations: every event type, enabled or not.
pub async fn describe_event_configurations(api: web::Data<Api>, _call: Call) -> ApiResult {
    let st = api.services.meta.state().jobs.read();
    let configurations: serde_json::Map<String, Value> =
        jobs::EVENT_TYPES.iter().map(|t| (t.to_string(), json!({ "Enabled": st.events.on(t) }))).collect();
    let mut v = json!({ "eventConfigurations": configurations });
    if st.events.created > 0 {
        v["creationDate"] = documents::seconds(st.events.created);
        v["lastModifiedDate"] = documents::seconds(st.events.modified);
    }
    Ok(HttpResponse::Ok().json(v))
}
