//! The custom-authorizer routes of the `iot` API: CreateAuthorizer, DescribeAuthorizer,
//! UpdateAuthorizer, ListAuthorizers, DeleteAuthorizer, SetDefaultAuthorizer,
//! DescribeDefaultAuthorizer and TestInvokeAuthorizer. `authorizerFunctionArn` is the
//! `http://` or `https://` URL of the service that decides (Ferrite's stand-in for a Lambda function).

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::call::Call;
use ferrite_aws::AwsError;

use super::error::ApiResult;
use super::paging::{marker_page, marker_response, MarkerQuery};
use super::{proposals, Api};
use crate::broker::message::now_ms;
use crate::identity::authorizers::{authorizer_not_found, AuthorizerRecord};
use crate::identity::{custom_auth, Command};
use crate::registry::arn_prefix;

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthorizerBody {
    authorizer_function_arn: Option<String>,
    token_key_name: Option<String>,
    token_signing_public_keys: Option<BTreeMap<String, String>>,
    status: Option<String>,
    signing_disabled: Option<bool>,
    enable_caching_for_http: Option<bool>,
    tags: Option<Vec<super::tags::Tag>>,
}

/// Checks what a usable authorizer needs: an `http://` or `https://` endpoint, a valid status,
/// and for signed tokens a token key name and PEM public keys.
fn validate(r: &AuthorizerRecord) -> Result<(), AwsError> {
    ferrite_http_client::parse_url(&r.authorizer_function_arn).map_err(|e| {
        AwsError::invalid_request(format!(
            "authorizerFunctionArn must be the http:// or https:// URL of the authorizer service: {e}"
        ))
    })?;
    if r.status != "ACTIVE" && r.status != "INACTIVE" {
        return Err(AwsError::invalid_request(format!("Invalid status {:?}: use ACTIVE or INACTIVE", r.status)));
    }
    if !r.signing_disabled {
        if r.token_key_name.as_deref().unwrap_or("").is_empty() {
            return Err(AwsError::invalid_request("tokenKeyName is required unless signingDisabled is true"));
        }
        if r.token_signing_public_keys.is_empty() {
            return Err(AwsError::invalid_request("tokenSigningPublicKeys is required unless signingDisabled is true"));
        }
        for (name, pem) in &r.token_signing_public_keys {
            if x509_parser::pem::parse_x509_pem(pem.as_bytes()).is_err() {
                return Err(AwsError::invalid_request(format!(
                    "tokenSigningPublicKeys[{name}] is not a PEM public key"
                )));
            }
        }
    }
    Ok(())
}

fn describe(r: &AuthorizerRecord) -> Value {
    json!({
        "authorizerName": r.authorizer_name,
        "authorizerArn": r.authorizer_arn,
        "authorizerFunctionArn": r.authorizer_function_arn,
        "tokenKeyName": r.token_key_name,
        "tokenSigningPublicKeys": r.token_signing_public_keys,
        "status": r.status,
        "creationDate": r.creation_date,
        "lastModifiedDate": r.last_modified_date,
        "signingDisabled": r.signing_disabled,
        "enableCachingForHttp": r.enable_caching_for_http,
    })
}

/// The answer of CreateAuthorizer and UpdateAuthorizer.
fn name_and_arn(r: &AuthorizerRecord) -> Value {
    json!({ "authorizerName": r.authorizer_name, "authorizerArn": r.authorizer_arn })
}

/// DescribeAuthorizer.
pub async fn describe_authorizer(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    let r = api.services.meta.state().identity.authorizer(&name).ok_or_else(|| authorizer_not_found(&name))?;
    Ok(HttpResponse::Ok().json(json!({ "authorizerDescription": describe(&r) })))
}

/// CreateAuthorizer.
pub async fn create_authorizer(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let name = name.into_inner();
    if name.is_empty() || name.len() > 128 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
        return Err(AwsError::invalid_request(format!(
            "Invalid authorizer name {name:?}: use 1 to 128 letters, digits, _ and -"
        )));
    }
    let mut b: AuthorizerBody = call.json()?;
    let tags = super::tags::tag_map(b.tags.take());
    let now = now_ms() / 1000;
    let record = AuthorizerRecord {
        authorizer_arn: format!("{}authorizer/{name}", arn_prefix(call.region())),
        authorizer_name: name,
        authorizer_function_arn: b
            .authorizer_function_arn
            .ok_or_else(|| AwsError::invalid_request("authorizerFunctionArn is required"))?,
        token_key_name: b.token_key_name,
        token_signing_public_keys: b.token_signing_public_keys.unwrap_or_default(),
        status: b.status.unwrap_or_else(|| "ACTIVE".into()),
        signing_disabled: b.signing_disabled.unwrap_or(false),
        enable_caching_for_http: b.enable_caching_for_http.unwrap_or(false),
        creation_date: now,
        last_modified_date: now,
    };
    validate(&record)?;
    let answer = name_and_arn(&record);
    let arn = record.authorizer_arn.clone();
    crate::tags::check(&tags)?;
    proposals::identity_change(&api, Command::CreateAuthorizer { record }).await?;
    super::tags::tag_created(&api, &arn, tags).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// UpdateAuthorizer: the fields given replace the stored ones.
pub async fn update_authorizer(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: AuthorizerBody = call.json()?;
    let mut record = api.services.meta.state().identity.authorizer(&name).ok_or_else(|| authorizer_not_found(&name))?;
    if let Some(f) = b.authorizer_function_arn {
        record.authorizer_function_arn = f;
    }
    if let Some(k) = b.token_key_name {
        record.token_key_name = Some(k);
    }
    if let Some(keys) = b.token_signing_public_keys {
        record.token_signing_public_keys = keys;
    }
    if let Some(s) = b.status {
        record.status = s;
    }
    if let Some(c) = b.enable_caching_for_http {
        record.enable_caching_for_http = c;
    }
    record.last_modified_date = now_ms() / 1000;
    validate(&record)?;
    let answer = name_and_arn(&record);
    proposals::identity_change(&api, Command::UpdateAuthorizer { record }).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// DeleteAuthorizer.
pub async fn delete_authorizer(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    proposals::identity_change(&api, Command::DeleteAuthorizer { name: name.into_inner() }).await?;
    Ok(HttpResponse::Ok().finish())
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    page_size: Option<usize>,
    marker: Option<String>,
    is_ascending_order: Option<bool>,
    status: Option<String>,
}

/// ListAuthorizers.
pub async fn list_authorizers(api: web::Data<Api>, call: Call) -> ApiResult {
    let query: ListQuery = call.query()?;
    let mut all = api.services.meta.state().identity.authorizer_list();
    if let Some(s) = &query.status {
        all.retain(|a| a.status == *s);
    }
    let page_query = MarkerQuery {
        page_size: query.page_size,
        marker: query.marker,
        is_ascending_order: Some(query.is_ascending_order.unwrap_or(true)),
    };
    let (page, next) = marker_page(all, |a| (0, a.authorizer_name.clone()), &page_query);
    let items: Vec<Value> = page
        .iter()
        .map(|a| json!({ "authorizerName": a.authorizer_name, "authorizerArn": a.authorizer_arn }))
        .collect();
    marker_response(json!({ "authorizers": items }), next)
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DefaultBody {
    authorizer_name: Option<String>,
}

/// DescribeDefaultAuthorizer.
pub async fn describe_default_authorizer(api: web::Data<Api>, _call: Call) -> ApiResult {
    let r = api.services.meta.state().identity.default_authorizer().ok_or_else(|| authorizer_not_found("(default)"))?;
    Ok(HttpResponse::Ok().json(json!({ "authorizerDescription": describe(&r) })))
}

/// SetDefaultAuthorizer.
pub async fn set_default_authorizer(api: web::Data<Api>, call: Call) -> ApiResult {
    let name = call
        .json::<DefaultBody>()?
        .authorizer_name
        .ok_or_else(|| AwsError::invalid_request("authorizerName is required"))?;
    let r = api.services.meta.state().identity.authorizer(&name).ok_or_else(|| authorizer_not_found(&name))?;
    proposals::identity_change(&api, Command::SetDefaultAuthorizer { name }).await?;
    Ok(HttpResponse::Ok().json(name_and_arn(&r)))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TestInvokeBody {
    token: Option<String>,
    token_signature: Option<String>,
    mqtt_context: Option<MqttContext>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MqttContext {
    username: Option<String>,
    password: Option<String>,
    client_id: Option<String>,
}

/// TestInvokeAuthorizer: calls the authorizer with a made-up MQTT connection and returns its
/// answer.
pub async fn test_invoke_authorizer(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let record = api.services.meta.state().identity.authorizer(&name).ok_or_else(|| authorizer_not_found(&name))?;
    let b: TestInvokeBody = call.json()?;
    let mut query = BTreeMap::new();
    if let (Some(key), Some(token)) = (&record.token_key_name, &b.token) {
        query.insert(key.clone(), token.clone());
    }
    if let Some(sig) = &b.token_signature {
        query.insert(custom_auth::SIGNATURE_KEY.to_string(), sig.clone());
    }
    let token = custom_auth::token_of(&record, &query).map_err(AwsError::invalid_request)?;
    let mqtt = b.mqtt_context.unwrap_or_default();
    use base64::Engine as _;
    let presented = custom_auth::Presented {
        username: mqtt.username,
        password: mqtt.password.and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok()),
        client_id: mqtt.client_id.unwrap_or_default(),
        source_ip: call.req.peer_addr().map(|a| a.ip()),
        server_name: None,
        tls: false,
        connection_id: crate::registry::new_id(),
    };
    let event = custom_auth::event(&presented, token.as_deref(), !record.signing_disabled);
    let verdict = custom_auth::invoke(&record, &event)
        .await
        .map_err(|e| AwsError::new(400, "InvalidResponseException", format!("The authorizer failed: {e}")))?;
    let answer = match verdict {
        None => json!({ "isAuthenticated": false }),
        Some(v) => json!({
            "isAuthenticated": true,
            "principalId": v.principal_id,
            "policyDocuments": v.document_texts,
            "disconnectAfterInSeconds": v.disconnect_after.map(|d| d.as_secs()),
            "refreshAfterInSeconds": v.refresh_after.map(|d| d.as_secs()),
        }),
    };
    Ok(HttpResponse::Ok().json(answer))
}
