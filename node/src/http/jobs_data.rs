//! The `iot-jobs-data` API (signed for the service `iot-jobs-data`): what a device or its
//! gateway calls over HTTPS to run its jobs. Its paths are the control plane's, told apart
//! by the signature's service (`routes.rs`).

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::call::{Call, IotJobsData};
use super::error::ApiResult;
use super::Api;
use crate::broker::message::now_ms;
use crate::jobs::{self, documents, requests, Command, Outcome};
use ferrite_aws::AwsError;

type DataCall = Call<IotJobsData>;

fn malformed((_, message): requests::Malformed) -> AwsError {
    AwsError::invalid_request(message)
}

fn body(call: &DataCall) -> Result<serde_json::Map<String, Value>, AwsError> {
    requests::object(&call.body).map_err(malformed)
}

/// `$next` as botocore sends it (percent-encoded) or as typed.
fn job_id(raw: &str) -> String {
    ferrite_aws::percent::decode(raw).unwrap_or_else(|| raw.to_string())
}

/// GetPendingJobExecutions.
pub async fn get_pending_job_executions(api: web::Data<Api>, _call: DataCall, thing: web::Path<String>) -> ApiResult {
    let st = api.services.meta.state().jobs.read();
    let (in_progress, queued) = st.pending(&thing);
    Ok(HttpResponse::Ok().json(documents::pending(&in_progress, &queued)))
}

/// StartNextPendingJobExecution (`PUT /things/{thing}/jobs/$next`).
pub async fn start_next_pending_job_execution(
    api: web::Data<Api>,
    call: DataCall,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (thing, job) = path.into_inner();
    if job_id(&job) != "$next" {
        return Err(AwsError::new(
            405,
            "MethodNotAllowedException",
            "PUT is allowed only on /things/{thing}/jobs/$next",
        ));
    }
    let s = requests::start_next(&body(&call)?).map_err(malformed)?;
    let now = now_ms();
    let command = Command::StartNext {
        thing,
        status_details: s.status_details,
        step_timeout_minutes: s.step_timeout_minutes,
        now,
        minute_ms: api.services.jobs.minute_ms(),
    };
    match super::proposals::jobs(&api, command).await? {
        Outcome::Execution(Some(found)) => {
            let (e, document) = &*found;
            Ok(HttpResponse::Ok()
                .json(json!({ "execution": documents::data_execution(e, Some(document), false, now) })))
        }
        Outcome::Execution(None) => Ok(HttpResponse::Ok().json(json!({}))),
        other => Err(super::proposals::unexpected(&other)),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DescribeQuery {
    include_job_document: Option<bool>,
    execution_number: Option<u64>,
}

/// DescribeJobExecution (`iot-jobs-data`; the job id may be `$next`).
pub async fn describe_job_execution(
    api: web::Data<Api>,
    call: DataCall,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (thing, job) = path.into_inner();
    let job = job_id(&job);
    let q: DescribeQuery = call.query()?;
    let st = api.services.meta.state().jobs.read();
    let e = st.describe(&thing, &job, q.execution_number).ok_or_else(|| jobs::execution_not_found(&job, &thing))?;
    let document =
        st.jobs.get(&e.job_id).map(|j| j.document.as_str()).filter(|_| q.include_job_document.unwrap_or(true));
    Ok(HttpResponse::Ok().json(json!({ "execution": documents::data_execution(e, document, false, now_ms()) })))
}

/// UpdateJobExecution.
pub async fn update_job_execution(api: web::Data<Api>, call: DataCall, path: web::Path<(String, String)>) -> ApiResult {
    let (thing, job) = path.into_inner();
    let u = requests::update(&body(&call)?).map_err(malformed)?;
    let command = Command::UpdateExecution {
        job_id: job_id(&job),
        thing,
        update: u.update,
        now: now_ms(),
        minute_ms: api.services.jobs.minute_ms(),
    };
    match super::proposals::jobs(&api, command).await? {
        Outcome::Execution(Some(found)) => {
            let (e, document) = &*found;
            let mut v = json!({});
            if u.include_state {
                v["executionState"] = documents::execution_state(e);
            }
            if u.include_document {
                v["jobDocument"] = json!(document);
            }
            Ok(HttpResponse::Ok().json(v))
        }
        other => Err(super::proposals::unexpected(&other)),
    }
}
