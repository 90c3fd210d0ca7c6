//! The provisioning routes of the `iot` API: Create/Describe/List/Update/Delete
//! ProvisioningTemplate and its versions, CreateProvisioningClaim, RegisterThing and
//! Get/DeleteRegistrationCode. Template state is `meta` group commands; provisioning runs
//! through `provisioning_runtime`, the same path devices use.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::call::Call;
use super::error::ApiResult;
use super::paging::{page_after, page_response, TokenQuery};
use super::proposals::unexpected;
use super::Api;
use crate::broker::message::now_ms;
use crate::identity::certs::{self, Certificate};
use crate::meta::{Command, Outcome};
use crate::provisioning::templates::{Hook, TemplateRecord, TemplateUpdate, Version, TYPES};
use crate::provisioning::{self, Command as ProvisioningCommand};
use crate::provisioning_runtime::Subject;
use crate::registry::arn_prefix;
use ferrite_aws::AwsError;

/// How long a provisioning claim certificate is valid (AWS's five minutes).
const CLAIM_VALIDITY_SECS: i64 = 300;

fn now_s() -> u64 {
    now_ms() / 1000
}

async fn propose(api: &Api, command: ProvisioningCommand) -> Result<provisioning::Outcome, AwsError> {
    match crate::meta::propose(&api.services.meta, Command::Provisioning(command)).await? {
        Outcome::Provisioning(o) => Ok(o),
        other => Err(unexpected(&other)),
    }
}

/// A template body that can work, or AWS's InvalidRequestException with the reason.
fn checked_body(body: Option<String>) -> Result<String, AwsError> {
    let body = body.ok_or_else(|| AwsError::invalid_request("templateBody is required"))?;
    ferrite_aws::provisioning::parse(&body).map_err(|e| AwsError::invalid_request(format!("templateBody: {e}")))?;
    Ok(body)
}

/// A hook whose target is an http(s) URL.
fn checked_hook(hook: Option<HookBody>) -> Result<Option<Hook>, AwsError> {
    let Some(h) = hook else { return Ok(None) };
    let target = h.target_arn.ok_or_else(|| AwsError::invalid_request("preProvisioningHook.targetArn is required"))?;
    ferrite_http_client::parse_url(&target).map_err(|e| {
        AwsError::invalid_request(format!(
            "preProvisioningHook.targetArn must be an http(s) URL here (the hook is called over HTTP): {e}"
        ))
    })?;
    Ok(Some(Hook { target_arn: target, payload_version: h.payload_version.unwrap_or_else(|| "2020-04-01".into()) }))
}

fn template_of(api: &Api, name: &str) -> Result<TemplateRecord, AwsError> {
    api.services.meta.state().provisioning.template(name).ok_or_else(|| provisioning::template_not_found(name))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct HookBody {
    target_arn: Option<String>,
    payload_version: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    template_name: Option<String>,
    description: Option<String>,
    template_body: Option<String>,
    enabled: Option<bool>,
    provisioning_role_arn: Option<String>,
    pre_provisioning_hook: Option<HookBody>,
    tags: Option<Vec<super::tags::Tag>>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// CreateProvisioningTemplate.
pub async fn create_template(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: CreateBody = call.json()?;
    let name = b.template_name.ok_or_else(|| AwsError::invalid_request("templateName is required"))?;
    if name.is_empty() || name.len() > 36 || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return Err(AwsError::invalid_request("templateName must be 1 to 36 of [0-9A-Za-z_-]"));
    }
    let body = checked_body(b.template_body)?;
    let kind = b.kind.unwrap_or_else(|| "FLEET_PROVISIONING".into());
    if !TYPES.contains(&kind.as_str()) {
        return Err(AwsError::invalid_request(format!("Invalid type {kind:?}: FLEET_PROVISIONING or JITP")));
    }
    let hook = checked_hook(b.pre_provisioning_hook)?;
    if hook.is_some() && kind == "JITP" {
        return Err(AwsError::invalid_request("A JITP template cannot have a preProvisioningHook"));
    }
    let role = b.provisioning_role_arn.ok_or_else(|| AwsError::invalid_request("provisioningRoleArn is required"))?;
    let tags = super::tags::tag_map(b.tags);
    crate::tags::check(&tags)?;
    let now = now_s();
    let arn = format!("{}provisioningtemplate/{name}", arn_prefix(call.region()));
    let record = TemplateRecord {
        template_name: name.clone(),
        template_arn: arn.clone(),
        description: b.description,
        enabled: b.enabled.unwrap_or(false),
        kind,
        provisioning_role_arn: role,
        pre_provisioning_hook: hook,
        default_version_id: 1,
        versions: vec![Version { version_id: 1, body, creation_date: now }],
        next_version_id: 2,
        creation_date: now,
        last_modified_date: now,
    };
    propose(&api, ProvisioningCommand::CreateTemplate { record }).await?;
    super::tags::tag_created(&api, &arn, tags).await?;
    Ok(HttpResponse::Ok().json(json!({ "templateArn": arn, "templateName": name, "defaultVersionId": 1 })))
}

/// DescribeProvisioningTemplate.
pub async fn describe_template(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(template_of(&api, &name)?.describe()))
}

/// ListProvisioningTemplates.
pub async fn list_templates(api: web::Data<Api>, call: Call) -> ApiResult {
    let query: TokenQuery = call.query()?;
    let all = api.services.meta.state().provisioning.templates();
    let (page, next) = page_after(&all, |t| t.template_name.as_str(), query.next_token.as_deref(), query.size(25, 250));
    page_response(json!({ "templates": page.iter().map(TemplateRecord::summary).collect::<Vec<_>>() }), next)
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    description: Option<String>,
    enabled: Option<bool>,
    default_version_id: Option<u32>,
    provisioning_role_arn: Option<String>,
    pre_provisioning_hook: Option<HookBody>,
    remove_pre_provisioning_hook: Option<bool>,
}

/// UpdateProvisioningTemplate.
pub async fn update_template(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: UpdateBody = call.json()?;
    let update = TemplateUpdate {
        description: b.description,
        enabled: b.enabled,
        default_version_id: b.default_version_id,
        provisioning_role_arn: b.provisioning_role_arn,
        pre_provisioning_hook: checked_hook(b.pre_provisioning_hook)?,
        remove_pre_provisioning_hook: b.remove_pre_provisioning_hook.unwrap_or(false),
    };
    propose(&api, ProvisioningCommand::UpdateTemplate { name: name.into_inner(), update, now_s: now_s() }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// DeleteProvisioningTemplate.
pub async fn delete_template(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    propose(&api, ProvisioningCommand::DeleteTemplate { name: name.into_inner() }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct VersionBody {
    template_body: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct VersionQuery {
    set_as_default: Option<bool>,
}

/// CreateProvisioningTemplateVersion.
pub async fn create_version(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let b: VersionBody = call.json()?;
    let q: VersionQuery = call.query()?;
    let body = checked_body(b.template_body)?;
    let name = name.into_inner();
    let arn = template_of(&api, &name)?.template_arn;
    let command = ProvisioningCommand::CreateVersion {
        name: name.clone(),
        body,
        set_as_default: q.set_as_default.unwrap_or(false),
        now_s: now_s(),
    };
    match propose(&api, command).await? {
        provisioning::Outcome::Version { version_id, is_default } => Ok(HttpResponse::Ok().json(json!({
            "templateArn": arn, "templateName": name, "versionId": version_id, "isDefaultVersion": is_default,
        }))),
        other => Err(unexpected(&other)),
    }
}

fn version_id(text: &str) -> Result<u32, AwsError> {
    text.parse().map_err(|_| AwsError::invalid_request(format!("Invalid versionId {text:?}")))
}

/// DescribeProvisioningTemplateVersion.
pub async fn describe_version(api: web::Data<Api>, _call: Call, path: web::Path<(String, String)>) -> ApiResult {
    let (name, id) = path.into_inner();
    let id = version_id(&id)?;
    let t = template_of(&api, &name)?;
    let v = t.versions.iter().find(|v| v.version_id == id).ok_or_else(|| {
        AwsError::new(404, "ResourceNotFoundException", format!("The provisioning template {name} has no version {id}"))
    })?;
    Ok(HttpResponse::Ok().json(t.version_doc(v, true)))
}

/// ListProvisioningTemplateVersions.
pub async fn list_versions(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let query: TokenQuery = call.query()?;
    let t = template_of(&api, &name)?;
    let keyed: Vec<(String, Value)> =
        t.versions.iter().map(|v| (format!("{:010}", v.version_id), t.version_doc(v, false))).collect();
    let (page, next) = page_after(&keyed, |(k, _)| k.as_str(), query.next_token.as_deref(), query.size(25, 250));
    page_response(json!({ "versions": page.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>() }), next)
}

/// DeleteProvisioningTemplateVersion.
pub async fn delete_version(api: web::Data<Api>, _call: Call, path: web::Path<(String, String)>) -> ApiResult {
    let (name, id) = path.into_inner();
    propose(&api, ProvisioningCommand::DeleteVersion { name, version_id: version_id(&id)? }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// CreateProvisioningClaim: a certificate valid for five minutes that may use the
/// provisioning MQTT API of this one template, and nothing else, without any policy.
pub async fn create_claim(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let name = name.into_inner();
    template_of(&api, &name)?;
    let issued = api.issuer.issue_with_new_key_for(time::Duration::seconds(CLAIM_VALIDITY_SECS)).map_err(|e| {
        tracing::error!(error = %e, "cannot issue a provisioning claim");
        AwsError::internal()
    })?;
    let parsed = certs::parse_der(&issued.der)?;
    let mut record = Certificate::device(
        &parsed,
        &arn_prefix(call.region()),
        issued.certificate_pem.clone(),
        None,
        "ACTIVE",
        now_s(),
    );
    record.provisioning_claim = Some(name);
    let id = record.certificate_id.clone();
    super::proposals::identity_change(&api, crate::identity::Command::RegisterCertificate { record }).await?;
    let (public, private) = issued.key_pair.unwrap_or_default();
    Ok(HttpResponse::Ok().json(json!({
        "certificateId": id,
        "certificatePem": issued.certificate_pem,
        "keyPair": { "PublicKey": public, "PrivateKey": private },
        "expiration": parsed.not_after,
    })))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RegisterThingBody {
    template_body: Option<String>,
    parameters: Option<Map<String, Value>>,
}

/// RegisterThing: provisions a template body with the parameters given.
pub async fn register_thing(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: RegisterThingBody = call.json()?;
    let body = checked_body(b.template_body)?;
    let parameters = b.parameters.unwrap_or_default();
    let done = api
        .services
        .provisioning
        .provision(&body, None, None, parameters, &Subject::default())
        .await
        .map_err(|r| r.to_aws())?;
    let mut answer = json!({ "resourceArns": done.resource_arns });
    let pem = done.certificate_pem.or_else(|| {
        let (id, _) = done.made.certificate.as_ref()?;
        api.services.meta.state().identity.certificate(id).map(|c| c.certificate_pem.clone())
    });
    if let Some(pem) = pem {
        answer["certificatePem"] = json!(pem);
    }
    Ok(HttpResponse::Ok().json(answer))
}

/// GetRegistrationCode: the account's code (made once), the common name a CA's
/// verification certificate must carry.
pub async fn get_registration_code(api: web::Data<Api>, _call: Call) -> ApiResult {
    if let Some(code) = api.services.meta.state().provisioning.registration_code() {
        return Ok(HttpResponse::Ok().json(json!({ "registrationCode": code })));
    }
    let code: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
    match propose(&api, ProvisioningCommand::SetRegistrationCode { code }).await? {
        provisioning::Outcome::RegistrationCode(code) => {
            Ok(HttpResponse::Ok().json(json!({ "registrationCode": code })))
        }
        other => Err(unexpected(&other)),
    }
}

/// DeleteRegistrationCode.
pub async fn delete_registration_code(api: web::Data<Api>, _call: Call) -> ApiResult {
    propose(&api, ProvisioningCommand::DeleteRegistrationCode).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}
