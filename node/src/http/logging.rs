//! AWS IoT v2 logging routes of the `iot` API: Set/GetV2LoggingOptions and
//! Set/List/DeleteV2LoggingLevel. The configuration is `meta` state; the events are written
//! by `iot_logging`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::call::Call;
use super::error::ApiResult;
use super::paging::{page_after, page_response, TokenQuery};
use super::Api;
use crate::iot_logging::config::{check_level, check_target, Command as LoggingCommand, Options};
use crate::meta::Command;
use ferrite_aws::AwsError;

async fn propose(api: &Api, command: LoggingCommand) -> Result<(), AwsError> {
    crate::meta::propose(&api.services.meta, Command::Logging(command)).await.map(|_| ())
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OptionsBody {
    role_arn: Option<String>,
    default_log_level: Option<String>,
    disable_all_logs: Option<bool>,
}

/// SetV2LoggingOptions.
pub async fn set_options(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: OptionsBody = call.json()?;
    let level = b.default_log_level.unwrap_or_else(|| "ERROR".into());
    check_level(&level)?;
    let options = Options {
        role_arn: b.role_arn,
        default_log_level: level,
        disable_all_logs: b.disable_all_logs.unwrap_or(false),
    };
    propose(&api, LoggingCommand::SetOptions { options }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// GetV2LoggingOptions (AWS's NotConfiguredException before any were set).
pub async fn get_options(api: web::Data<Api>, _call: Call) -> ApiResult {
    let o = api.services.meta.state().logging.options().ok_or_else(|| {
        AwsError::new(404, "NotConfiguredException", "V2 logging is not configured: SetV2LoggingOptions first")
    })?;
    Ok(HttpResponse::Ok().json(json!({
        "roleArn": o.role_arn, "defaultLogLevel": o.default_log_level, "disableAllLogs": o.disable_all_logs,
    })))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TargetBody {
    target_type: Option<String>,
    target_name: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LevelBody {
    log_target: Option<TargetBody>,
    log_level: Option<String>,
}

/// SetV2LoggingLevel.
pub async fn set_level(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: LevelBody = call.json()?;
    let target = b.log_target.ok_or_else(|| AwsError::invalid_request("logTarget is required"))?;
    let target_type =
        target.target_type.ok_or_else(|| AwsError::invalid_request("logTarget.targetType is required"))?;
    check_target(&target_type)?;
    let level = b.log_level.ok_or_else(|| AwsError::invalid_request("logLevel is required"))?;
    check_level(&level)?;
    let target_name = target.target_name.unwrap_or_default();
    if target_type != "DEFAULT" && target_name.is_empty() {
        return Err(AwsError::invalid_request("logTarget.targetName is required for this targetType"));
    }
    propose(&api, LoggingCommand::SetLevel { target_type, target_name, level }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    target_type: Option<String>,
    target_name: Option<String>,
}

/// ListV2LoggingLevels (optionally of one target type).
pub async fn list_levels(api: web::Data<Api>, call: Call) -> ApiResult {
    let (page, q): (TokenQuery, ListQuery) = (call.query()?, call.query()?);
    if let Some(t) = &q.target_type {
        check_target(t)?;
    }
    let keyed: Vec<(String, serde_json::Value)> = api
        .services
        .meta
        .state()
        .logging
        .levels()
        .into_iter()
        .filter(|(t, _, _)| q.target_type.as_deref().is_none_or(|want| want == t))
        .map(|(t, n, l)| {
            let doc = json!({ "logTarget": { "targetType": t, "targetName": n }, "logLevel": l });
            (format!("{t}\u{1}{n}"), doc)
        })
        .collect();
    let (items, next) = page_after(&keyed, |(k, _)| k.as_str(), page.next_token.as_deref(), page.size(50, 250));
    page_response(json!({ "logTargetConfigurations": items.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>() }), next)
}

/// DeleteV2LoggingLevel.
pub async fn delete_level(api: web::Data<Api>, call: Call) -> ApiResult {
    let q: ListQuery = call.query()?;
    let target_type = q.target_type.ok_or_else(|| AwsError::invalid_request("targetType is required"))?;
    check_target(&target_type)?;
    let target_name = q.target_name.unwrap_or_default();
    propose(&api, LoggingCommand::DeleteLevel { target_type, target_name }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}
