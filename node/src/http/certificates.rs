//! The certificate and principal routes of the `iot` API: CreateKeysAndCertificate,
//! CreateCertificateFromCsr, RegisterCACertificate, RegisterCertificate,
//! RegisterCertificateWithoutCA, Describe/Update/Delete(CA)Certificate, ListCertificates,
//! ListCertificatesByCA, ListCACertificates, AttachThingPrincipal, DetachThingPrincipal,
//! ListThingPrincipals and ListPrincipalThings. Changes are `meta` group commands.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::call::Call;
use ferrite_aws::AwsError;

use super::error::ApiResult;
use super::paging::{marker_page, marker_response, page_after, page_response, MarkerQuery, TokenQuery};
use super::{proposals, Api};
use crate::broker::message::now_ms;
use crate::identity::certs::{self, CaCertificate, Certificate, Registration, RegistrationConfig, DEVICE_STATUSES};
use crate::identity::Command;
use crate::registry::{arn_prefix, new_id};

fn now_s() -> u64 {
    now_ms() / 1000
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ActiveQuery {
    set_as_active: Option<bool>,
    allow_auto_registration: Option<bool>,
}

fn device_record(region: &str, parsed: &certs::Parsed, pem: String, ca: Option<String>, status: &str) -> Certificate {
    Certificate::device(parsed, &arn_prefix(region), pem, ca, status, now_s())
}

/// Registers a device certificate record: AWS's `{certificateArn, certificateId}` answer.
async fn register_device(api: &Api, record: Certificate) -> Result<Value, AwsError> {
    let answer = json!({ "certificateArn": record.certificate_arn, "certificateId": record.certificate_id });
    proposals::identity_change(api, Command::RegisterCertificate { record }).await?;
    Ok(answer)
}

fn status_of(set_as_active: Option<bool>) -> &'static str {
    if set_as_active.unwrap_or(false) {
        "ACTIVE"
    } else {
        "INACTIVE"
    }
}

/// CreateKeysAndCertificate: a new key pair and a certificate signed by the node's CA.
pub async fn create_keys_and_certificate(api: web::Data<Api>, call: Call) -> ApiResult {
    let query: ActiveQuery = call.query()?;
    let issued = api.issuer.issue_with_new_key().map_err(|e| {
        tracing::error!(error = %e, "cannot issue a certificate");
        AwsError::new(500, "InternalFailureException", "Internal service failure")
    })?;
    let parsed = certs::parse_der(&issued.der)?;
    let record =
        device_record(call.region(), &parsed, issued.certificate_pem.clone(), None, status_of(query.set_as_active));
    let mut answer = register_device(&api, record).await?;
    let (public, private) = issued.key_pair.unwrap_or_default();
    answer["certificatePem"] = json!(issued.certificate_pem);
    answer["keyPair"] = json!({ "PublicKey": public, "PrivateKey": private });
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CsrBody {
    certificate_signing_request: Option<String>,
}

/// CreateCertificateFromCsr.
pub async fn create_certificate_from_csr(api: web::Data<Api>, call: Call) -> ApiResult {
    let query: ActiveQuery = call.query()?;
    let b: CsrBody = call.json()?;
    let csr = b
        .certificate_signing_request
        .ok_or_else(|| AwsError::invalid_request("certificateSigningRequest is required"))?;
    let issued = api.issuer.issue_for_csr(&csr).map_err(AwsError::invalid_request)?;
    let parsed = certs::parse_der(&issued.der)?;
    let record =
        device_record(call.region(), &parsed, issued.certificate_pem.clone(), None, status_of(query.set_as_active));
    let mut answer = register_device(&api, record).await?;
    answer["certificatePem"] = json!(issued.certificate_pem);
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RegisterCaBody {
    ca_certificate: Option<String>,
    verification_certificate: Option<String>,
    registration_config: Option<RegistrationConfig>,
    certificate_mode: Option<String>,
    tags: Option<Vec<super::tags::Tag>>,
}

/// Checks a CA's `registrationConfig`: a JITP template body that parses, or the name of a
/// JITP template that exists (and not both).
fn check_registration_config(api: &Api, config: &RegistrationConfig) -> Result<(), AwsError> {
    match (&config.template_body, &config.template_name) {
        (Some(_), Some(_)) => {
            Err(AwsError::invalid_request("registrationConfig takes templateBody or templateName, not both"))
        }
        (Some(body), None) => ferrite_aws::provisioning::parse(body)
            .map(|_| ())
            .map_err(|e| AwsError::invalid_request(format!("registrationConfig.templateBody: {e}"))),
        (None, Some(name)) => match api.services.meta.state().provisioning.template(name) {
            Some(t) if t.kind == "JITP" => Ok(()),
            Some(_) => Err(AwsError::invalid_request(format!("The provisioning template {name} is not of type JITP"))),
            None => Err(crate::provisioning::template_not_found(name)),
        },
        (None, None) => Ok(()),
    }
}

/// RegisterCACertificate, as AWS checks it: in DEFAULT mode the `verificationCertificate`
/// must be signed by the CA (the caller holds its key) and name the account's registration
/// code (GetRegistrationCode) as its subject's common name; SNI_ONLY needs neither.
pub async fn register_ca_certificate(api: web::Data<Api>, call: Call) -> ApiResult {
    let query: ActiveQuery = call.query()?;
    let b: RegisterCaBody = call.json()?;
    let pem = b.ca_certificate.ok_or_else(|| AwsError::invalid_request("caCertificate is required"))?;
    let parsed = certs::parse_pem(&pem)?;
    if !parsed.is_ca {
        return Err(certs::validation_error("The certificate is not a CA certificate (basic constraints CA:FALSE)"));
    }
    let mode = b.certificate_mode.unwrap_or_else(|| "DEFAULT".into());
    match mode.as_str() {
        "DEFAULT" => {
            let v = b.verification_certificate.ok_or_else(|| {
                AwsError::invalid_request(
                    "verificationCertificate is required in DEFAULT mode: a certificate signed by the CA whose common name is the registration code (GetRegistrationCode)",
                )
            })?;
            let verification = certs::parse_pem(&v)?;
            if !certs::signed_by(&verification.der, &parsed.der) {
                return Err(certs::validation_error(
                    "The verification certificate is not signed by the CA certificate",
                ));
            }
            let code = api.services.meta.state().provisioning.registration_code();
            let cn = certs::common_name(&verification.der);
            if code.is_none() || cn != code {
                return Err(certs::validation_error(
                    "The verification certificate's common name is not the registration code (GetRegistrationCode)",
                ));
            }
        }
        "SNI_ONLY" => {}
        other => {
            return Err(AwsError::invalid_request(format!("Invalid certificateMode {other:?}: DEFAULT or SNI_ONLY")))
        }
    }
    if let Some(config) = &b.registration_config {
        check_registration_config(&api, config)?;
    }
    let arn = format!("{}cacert/{}", arn_prefix(call.region()), parsed.id);
    let registration = Registration::new(&parsed, arn, status_of(query.set_as_active), pem, now_s(), new_id());
    let auto = if query.allow_auto_registration.unwrap_or(false) { "ENABLE" } else { "DISABLE" };
    let record = CaCertificate {
        registration,
        auto_registration_status: auto.to_string(),
        certificate_mode: mode,
        registration_config: b.registration_config,
    };
    let arn = record.certificate_arn.clone();
    let tags = super::tags::tag_map(b.tags);
    crate::tags::check(&tags)?;
    proposals::identity_change(&api, Command::RegisterCaCertificate { record }).await?;
    super::tags::tag_created(&api, &arn, tags).await?;
    Ok(HttpResponse::Ok().json(json!({ "certificateArn": arn, "certificateId": parsed.id })))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    certificate_pem: Option<String>,
    ca_certificate_pem: Option<String>,
    status: Option<String>,
}

fn initial_status(status: Option<String>, set_as_active: Option<bool>) -> Result<String, AwsError> {
    match status {
        Some(s) if DEVICE_STATUSES.contains(&s.as_str()) => Ok(s),
        Some(s) => Err(AwsError::invalid_request(format!("Invalid status {s:?}"))),
        None => Ok(status_of(set_as_active).to_string()),
    }
}

/// RegisterCertificate: a device certificate signed by a registered CA (the one given, or
/// any registered CA that signed it).
pub async fn register_certificate(api: web::Data<Api>, call: Call) -> ApiResult {
    let query: ActiveQuery = call.query()?;
    let b: RegisterBody = call.json()?;
    let pem = b.certificate_pem.ok_or_else(|| AwsError::invalid_request("certificatePem is required"))?;
    let parsed = certs::parse_pem(&pem)?;
    let status = initial_status(b.status, query.set_as_active)?;
    let identity = &api.services.meta.state().identity;
    let ca = match b.ca_certificate_pem {
        Some(ca_pem) => {
            let ca = certs::parse_pem(&ca_pem)?;
            let record = identity
                .ca_certificate(&ca.id)
                .ok_or_else(|| certs::validation_error("The CA certificate is not registered (RegisterCACertificate)"))?;
            if !certs::signed_by(&parsed.der, &ca.der) {
                return Err(certs::validation_error("The certificate is not signed by the given CA certificate"));
            }
            record
        }
        None => identity
            .ca_certificates()
            .into_iter()
            .find(|ca| certs::parse_pem(&ca.certificate_pem).is_ok_and(|c| certs::signed_by(&parsed.der, &c.der)))
            .ok_or_else(|| {
                certs::validation_error(
                    "The certificate is not signed by a registered CA certificate; register the CA first or use RegisterCertificateWithoutCA",
                )
            })?,
    };
    if ca.status != "ACTIVE" {
        return Err(certs::state_error(format!("The CA certificate {} is not ACTIVE", ca.certificate_id)));
    }
    let record = device_record(call.region(), &parsed, pem, Some(ca.registration.certificate_id), &status);
    Ok(HttpResponse::Ok().json(register_device(&api, record).await?))
}

/// RegisterCertificateWithoutCA.
pub async fn register_certificate_without_ca(api: web::Data<Api>, call: Call) -> ApiResult {
    let b: RegisterBody = call.json()?;
    let pem = b.certificate_pem.ok_or_else(|| AwsError::invalid_request("certificatePem is required"))?;
    let parsed = certs::parse_pem(&pem)?;
    let status = initial_status(b.status, None)?;
    let record = device_record(call.region(), &parsed, pem, None, &status);
    Ok(HttpResponse::Ok().json(register_device(&api, record).await?))
}

fn describe(c: &Certificate) -> Value {
    json!({ "certificateDescription": {
        "certificateArn": c.certificate_arn,
        "certificateId": c.certificate_id,
        "caCertificateId": c.ca_certificate_id,
        "status": c.status,
        "certificatePem": c.certificate_pem,
        "ownedBy": crate::registry::account_id(),
        "creationDate": c.creation_date,
        "lastModifiedDate": c.last_modified_date,
        "customerVersion": c.customer_version,
        "generationId": c.generation_id,
        "validity": { "notBefore": c.not_before, "notAfter": c.not_after },
        "certificateMode": "DEFAULT",
    }})
}

fn describe_ca(c: &CaCertificate) -> Value {
    json!({ "certificateDescription": {
        "certificateArn": c.certificate_arn,
        "certificateId": c.certificate_id,
        "status": c.status,
        "certificatePem": c.certificate_pem,
        "ownedBy": crate::registry::account_id(),
        "creationDate": c.creation_date,
        "autoRegistrationStatus": c.auto_registration_status,
        "lastModifiedDate": c.last_modified_date,
        "customerVersion": c.customer_version,
        "generationId": c.generation_id,
        "validity": { "notBefore": c.not_before, "notAfter": c.not_after },
        "certificateMode": c.certificate_mode,
    }})
}

/// DescribeCACertificate's `registrationConfig`, when the CA has one.
fn registration_config_doc(c: &CaCertificate) -> Option<Value> {
    c.registration_config.as_ref().map(|r| serde_json::to_value(r).unwrap_or_default())
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CertificateQuery {
    new_status: Option<String>,
    new_auto_registration_status: Option<String>,
    force_delete: Option<bool>,
}

/// DescribeCertificate.
pub async fn describe_certificate(api: web::Data<Api>, _call: Call, id: web::Path<String>) -> ApiResult {
    let c = api.services.meta.state().identity.certificate(&id).ok_or_else(|| certs::not_found(&id))?;
    Ok(HttpResponse::Ok().json(describe(&c)))
}

/// UpdateCertificate: a new status.
pub async fn update_certificate(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let query: CertificateQuery = call.query()?;
    let status = query.new_status.ok_or_else(|| AwsError::invalid_request("newStatus is required"))?;
    if !DEVICE_STATUSES.contains(&status.as_str()) {
        return Err(AwsError::invalid_request(format!("Invalid newStatus {status:?}")));
    }
    let command = Command::UpdateCertificate { id: id.into_inner(), status, now_s: now_s(), generation_id: new_id() };
    proposals::identity_change(&api, command).await?;
    Ok(HttpResponse::Ok().finish())
}

/// DeleteCertificate (`forceDelete` detaches its policies first).
pub async fn delete_certificate(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let query: CertificateQuery = call.query()?;
    let command = Command::DeleteCertificate { id: id.into_inner(), force: query.force_delete.unwrap_or(false) };
    proposals::identity_change(&api, command).await?;
    Ok(HttpResponse::Ok().finish())
}

/// DescribeCACertificate.
pub async fn describe_ca_certificate(api: web::Data<Api>, _call: Call, id: web::Path<String>) -> ApiResult {
    let c = api
        .services
        .meta
        .state()
        .identity
        .ca_certificate(&id)
        .ok_or_else(|| crate::registry::things::missing("CA certificate", &id))?;
    let mut doc = describe_ca(&c);
    if let Some(config) = registration_config_doc(&c) {
        doc["registrationConfig"] = config;
    }
    Ok(HttpResponse::Ok().json(doc))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UpdateCaBody {
    registration_config: Option<RegistrationConfig>,
    remove_auto_registration: Option<bool>,
}

/// UpdateCACertificate: a new status, auto-registration status and/or registration config.
pub async fn update_ca_certificate(api: web::Data<Api>, call: Call, id: web::Path<String>) -> ApiResult {
    let query: CertificateQuery = call.query()?;
    let body: UpdateCaBody = call.json()?;
    if let Some(config) = &body.registration_config {
        check_registration_config(&api, config)?;
    }
    let status = query.new_status;
    if status.as_deref().is_some_and(|s| s != "ACTIVE" && s != "INACTIVE") {
        return Err(AwsError::invalid_request("newStatus must be ACTIVE or INACTIVE"));
    }
    let auto = query.new_auto_registration_status;
    if auto.as_deref().is_some_and(|s| s != "ENABLE" && s != "DISABLE") {
        return Err(AwsError::invalid_request("newAutoRegistrationStatus must be ENABLE or DISABLE"));
    }
    let auto = if body.remove_auto_registration == Some(true) { Some("DISABLE".to_string()) } else { auto };
    let command = Command::UpdateCaCertificate {
        id: id.into_inner(),
        status,
        auto_registration: auto,
        registration_config: body.registration_config,
        now_s: now_s(),
        generation_id: new_id(),
    };
    proposals::identity_change(&api, command).await?;
    Ok(HttpResponse::Ok().finish())
}

/// DeleteCACertificate.
pub async fn delete_ca_certificate(api: web::Data<Api>, _call: Call, id: web::Path<String>) -> ApiResult {
    proposals::identity_change(&api, Command::DeleteCaCertificate { id: id.into_inner() }).await?;
    Ok(HttpResponse::Ok().finish())
}

fn summary(c: &Certificate) -> Value {
    json!({
        "certificateArn": c.certificate_arn,
        "certificateId": c.certificate_id,
        "status": c.status,
        "certificateMode": "DEFAULT",
        "creationDate": c.creation_date,
    })
}

/// ListCertificates.
pub async fn list_certificates(api: web::Data<Api>, call: Call) -> ApiResult {
    let query: MarkerQuery = call.query()?;
    let all = api.services.meta.state().identity.certificates(None);
    let (page, next) = marker_page(all, |c| (c.creation_date, c.certificate_id.clone()), &query);
    marker_response(json!({ "certificates": page.iter().map(summary).collect::<Vec<_>>() }), next)
}

/// ListCertificatesByCA.
pub async fn list_certificates_by_ca(api: web::Data<Api>, call: Call, ca: web::Path<String>) -> ApiResult {
    let query: MarkerQuery = call.query()?;
    let all = api.services.meta.state().identity.certificates(Some(&ca));
    let (page, next) = marker_page(all, |c| (c.creation_date, c.certificate_id.clone()), &query);
    marker_response(json!({ "certificates": page.iter().map(summary).collect::<Vec<_>>() }), next)
}

/// ListCACertificates.
pub async fn list_ca_certificates(api: web::Data<Api>, call: Call) -> ApiResult {
    let query: MarkerQuery = call.query()?;
    let all = api.services.meta.state().identity.ca_certificates();
    let (page, next) = marker_page(all, |c| (c.creation_date, c.certificate_id.clone()), &query);
    let items: Vec<Value> = page
        .iter()
        .map(|c| {
            json!({
                "certificateArn": c.certificate_arn,
                "certificateId": c.certificate_id,
                "status": c.status,
                "creationDate": c.creation_date,
            })
        })
        .collect();
    marker_response(json!({ "certificates": items }), next)
}

/// The `x-amzn-principal` header of the principal operations.
fn principal_header(call: &Call) -> Result<String, AwsError> {
    call.req
        .headers()
        .get("x-amzn-principal")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| AwsError::invalid_request("The x-amzn-principal header (principal) is required"))
}

/// ListThingPrincipals.
pub async fn list_thing_principals(api: web::Data<Api>, call: Call, thing: web::Path<String>) -> ApiResult {
    let query: TokenQuery = call.query()?;
    let meta = api.services.meta.state();
    if meta.registry.thing(&thing).is_none() {
        return Err(crate::registry::things::missing("Thing", &thing));
    }
    let all = meta.identity.principals_of_thing(&thing);
    let (page, next) = page_after(&all, |p| p.as_str(), query.next_token.as_deref(), query.size(25, 250));
    page_response(json!({ "principals": page }), next)
}

/// AttachThingPrincipal.
pub async fn attach_thing_principal(api: web::Data<Api>, call: Call, thing: web::Path<String>) -> ApiResult {
    let principal = principal_header(&call)?;
    proposals::identity_change(&api, Command::AttachThingPrincipal { thing: thing.into_inner(), principal }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// DetachThingPrincipal.
pub async fn detach_thing_principal(api: web::Data<Api>, call: Call, thing: web::Path<String>) -> ApiResult {
    let principal = principal_header(&call)?;
    proposals::identity_change(&api, Command::DetachThingPrincipal { thing: thing.into_inner(), principal }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// ListPrincipalThings.
pub async fn list_principal_things(api: web::Data<Api>, call: Call) -> ApiResult {
    let principal = principal_header(&call)?;
    let query: TokenQuery = call.query()?;
    let all = api.services.meta.state().identity.things_of_principal(&principal);
    let (page, next) = page_after(&all, |p| p.as_str(), query.next_token.as_deref(), query.size(25, 250));
    page_response(json!({ "things": page }), next)
}
