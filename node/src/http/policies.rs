//! The IoT policy routes of the `iot` API: CreatePolicy, GetPolicy, DeletePolicy,
//! ListPolicies, the policy-version routes, AttachPolicy, DetachPolicy, ListAttachedPolicies,
//! ListTargetsForPolicy, GetEffectivePolicies and TestAuthorization. Changes are `meta`
//! group commands; documents are validated (with line and column) before they are proposed.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ferrite_aws::policy::{self, Decision, PolicyDocument, ThingContext};
use serde_json::{json, Value};

use super::call::Call;
use ferrite_aws::AwsError;

use super::error::ApiResult;
use super::paging::{marker_page, marker_response, MarkerQuery};
use super::{proposals, Api};
use crate::broker::message::now_ms;
use crate::identity::policies::{self, PolicyRecord, PolicyVersionRecord, Target};
use crate::identity::{cert_id_of_arn, Applied, Command};
use crate::registry::{arn_prefix, new_id};

fn now_s() -> u64 {
    now_ms() / 1000
}

/// AWS's policy-name rule: 1 to 128 of letters, digits and `_+=,.@-`.
fn check_policy_name(name: &str) -> Result<(), AwsError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AwsError::invalid_request(format!(
            "Invalid policy name {name:?}: use 1 to 128 letters, digits and _+=,.@-"
        )))
    }
}

fn version_id(raw: &str) -> Result<u32, AwsError> {
    raw.parse::<u32>().map_err(|_| AwsError::invalid_request(format!("Invalid policy version id {raw:?}")))
}

fn identity(api: &Api) -> &crate::identity::Identity {
    &api.services.meta.state().identity
}

fn policy_of(api: &Api, name: &str) -> Result<PolicyRecord, AwsError> {
    identity(api).policy(name).ok_or_else(|| policies::policy_not_found(name))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DocumentBody {
    policy_document: Option<String>,
}

/// The `tags` of a Create call's body.
#[derive(serde::Deserialize, Default)]
struct TagsBody {
    tags: Option<Vec<super::tags::Tag>>,
}

/// The checked `policyDocument` of the body: a document that does not parse is refused
/// with its line and column.
fn document_of(call: &Call) -> Result<String, AwsError> {
    let b: DocumentBody = call.json()?;
    let text = b.policy_document.ok_or_else(|| AwsError::invalid_request("policyDocument is required"))?;
    policies::parse_document(&text)?;
    Ok(text)
}

/// CreatePolicy: version 1 is the default.
pub async fn create_policy(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let name = name.into_inner();
    check_policy_name(&name)?;
    let document = document_of(&call)?;
    let now = now_s();
    let record = PolicyRecord {
        policy_name: name.clone(),
        policy_arn: format!("{}policy/{name}", arn_prefix(call.region())),
        default_version_id: 1,
        versions: BTreeMap::from([(1, PolicyVersionRecord { document: document.clone(), create_date: now })]),
        next_version_id: 2,
        creation_date: now,
        last_modified_date: now,
        generation_id: new_id(),
    };
    let arn = record.policy_arn.clone();
    let tags = super::tags::tag_map(call.json::<TagsBody>()?.tags);
    crate::tags::check(&tags)?;
    proposals::identity_change(&api, Command::CreatePolicy { record }).await?;
    super::tags::tag_created(&api, &arn, tags).await?;
    Ok(HttpResponse::Ok().json(json!({
        "policyName": name, "policyArn": arn, "policyDocument": document, "policyVersionId": "1",
    })))
}

/// GetPolicy: the default version's document.
pub async fn get_policy(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    let p = policy_of(&api, &name)?;
    Ok(HttpResponse::Ok().json(json!({
        "policyName": p.policy_name,
        "policyArn": p.policy_arn,
        "policyDocument": p.default_document(),
        "defaultVersionId": p.default_version_id.to_string(),
        "creationDate": p.creation_date,
        "lastModifiedDate": p.last_modified_date,
        "generationId": p.generation_id,
    })))
}

/// DeletePolicy.
pub async fn delete_policy(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    proposals::identity_change(&api, Command::DeletePolicy { name: name.into_inner() }).await?;
    Ok(HttpResponse::Ok().finish())
}

fn policy_summary(p: &PolicyRecord) -> Value {
    json!({ "policyName": p.policy_name, "policyArn": p.policy_arn })
}

/// ListPolicies.
pub async fn list_policies(api: web::Data<Api>, call: Call) -> ApiResult {
    let query = call.query::<MarkerQuery>()?.ascending_by_default();
    let (page, next) = marker_page(identity(&api).policy_list(), |p| (0, p.policy_name.clone()), &query);
    marker_response(json!({ "policies": page.iter().map(policy_summary).collect::<Vec<_>>() }), next)
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct VersionQuery {
    set_as_default: Option<bool>,
}

/// ListPolicyVersions: newest first.
pub async fn list_policy_versions(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    let p = policy_of(&api, &name)?;
    let versions: Vec<Value> = p
        .versions
        .iter()
        .rev()
        .map(|(id, v)| {
            json!({ "versionId": id.to_string(), "isDefaultVersion": *id == p.default_version_id, "createDate": v.create_date })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "policyVersions": versions })))
}

/// CreatePolicyVersion (at most five versions; `setAsDefault` makes it the default).
pub async fn create_policy_version(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let name = name.into_inner();
    let query: VersionQuery = call.query()?;
    let document = document_of(&call)?;
    let arn = policy_of(&api, &name)?.policy_arn;
    let command = Command::CreatePolicyVersion {
        name,
        document: document.clone(),
        set_as_default: query.set_as_default.unwrap_or(false),
        now_s: now_s(),
        generation_id: new_id(),
    };
    match proposals::identity(&api, command).await? {
        Applied::PolicyVersion { version_id, is_default } => Ok(HttpResponse::Ok().json(json!({
            "policyArn": arn,
            "policyDocument": document,
            "policyVersionId": version_id.to_string(),
            "isDefaultVersion": is_default,
        }))),
        other => Err(proposals::unexpected(&other)),
    }
}

/// GetPolicyVersion.
pub async fn get_policy_version(api: web::Data<Api>, _call: Call, path: web::Path<(String, String)>) -> ApiResult {
    let (name, raw_version) = path.into_inner();
    let version = version_id(&raw_version)?;
    let p = policy_of(&api, &name)?;
    let v = p.versions.get(&version).ok_or_else(|| policies::version_not_found(&name, &raw_version))?;
    Ok(HttpResponse::Ok().json(json!({
        "policyArn": p.policy_arn,
        "policyName": p.policy_name,
        "policyDocument": v.document,
        "policyVersionId": version.to_string(),
        "isDefaultVersion": version == p.default_version_id,
        "creationDate": v.create_date,
        "lastModifiedDate": v.create_date,
        "generationId": p.generation_id,
    })))
}

/// SetDefaultPolicyVersion.
pub async fn set_default_policy_version(
    api: web::Data<Api>,
    _call: Call,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (name, raw_version) = path.into_inner();
    let version_id = version_id(&raw_version)?;
    proposals::identity_change(
        &api,
        Command::SetDefaultPolicyVersion { name, version_id, now_s: now_s(), generation_id: new_id() },
    )
    .await?;
    Ok(HttpResponse::Ok().finish())
}

/// DeletePolicyVersion.
pub async fn delete_policy_version(api: web::Data<Api>, _call: Call, path: web::Path<(String, String)>) -> ApiResult {
    let (name, raw_version) = path.into_inner();
    proposals::identity_change(&api, Command::DeletePolicyVersion { name, version_id: version_id(&raw_version)? })
        .await?;
    Ok(HttpResponse::Ok().finish())
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TargetBody {
    target: Option<String>,
}

/// The `target` (a certificate or thing-group ARN) of AttachPolicy and DetachPolicy.
fn target_of(call: &Call) -> Result<String, AwsError> {
    call.json::<TargetBody>()?.target.ok_or_else(|| AwsError::invalid_request("target is required"))
}

/// AttachPolicy.
pub async fn attach_policy(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    proposals::identity_change(&api, Command::AttachPolicy { name: name.into_inner(), target: target_of(&call)? })
        .await?;
    Ok(HttpResponse::Ok().finish())
}

/// DetachPolicy.
pub async fn detach_policy(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    proposals::identity_change(&api, Command::DetachPolicy { name: name.into_inner(), target: target_of(&call)? })
        .await?;
    Ok(HttpResponse::Ok().finish())
}

/// The ARN in a greedy path label, percent-decoded.
fn arn_label(call: &Call, key: &str) -> Result<String, AwsError> {
    call.req
        .match_info()
        .get(key)
        .and_then(ferrite_aws::percent::decode)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AwsError::invalid_request(format!("{key} is required")))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AttachedQuery {
    recursive: Option<bool>,
    page_size: Option<usize>,
    marker: Option<String>,
}

/// ListAttachedPolicies: the policies attached to a certificate or thing group (with
/// `recursive`, also those of the group's ancestors).
pub async fn list_attached_policies(api: web::Data<Api>, call: Call) -> ApiResult {
    let query: AttachedQuery = call.query()?;
    let target = arn_label(&call, "target")?;
    let meta = api.services.meta.state();
    let mut targets = vec![Target::of_arn(&target)?];
    match &targets[0] {
        Target::Certificate(id) if meta.identity.certificate(id).is_none() => {
            return Err(crate::identity::certs::not_found(id))
        }
        Target::ThingGroup(g) => match meta.registry.thing_group(g) {
            None => return Err(crate::registry::things::missing("Thing group", g)),
            Some((_, chain)) if query.recursive.unwrap_or(false) => {
                targets.extend(chain.into_iter().map(|(n, _)| Target::ThingGroup(n)));
            }
            Some(_) => {}
        },
        _ => {}
    }
    let names: Vec<String> = meta.identity.documents_for(&targets).into_iter().map(|(n, _)| n).collect();
    let records: Vec<PolicyRecord> = names.iter().filter_map(|n| meta.identity.policy(n)).collect();
    let page_query =
        MarkerQuery { page_size: query.page_size, marker: query.marker.clone(), is_ascending_order: Some(true) };
    let (page, next) = marker_page(records, |p| (0, p.policy_name.clone()), &page_query);
    marker_response(json!({ "policies": page.iter().map(policy_summary).collect::<Vec<_>>() }), next)
}

/// ListTargetsForPolicy.
pub async fn list_targets_for_policy(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let query = call.query::<MarkerQuery>()?.ascending_by_default();
    policy_of(&api, &name)?;
    let targets = identity(&api).policy_targets(&name);
    let (page, next) = marker_page(targets, |t| (0, t.clone()), &query);
    marker_response(json!({ "targets": page }), next)
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PrincipalBody {
    principal: Option<String>,
    #[serde(default)]
    auth_infos: Vec<AuthInfo>,
    #[serde(default)]
    policy_names_to_add: Vec<String>,
    #[serde(default)]
    policy_names_to_skip: Vec<String>,
}

#[derive(serde::Deserialize, serde::Serialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct AuthInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    action_type: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ThingNameQuery {
    thing_name: Option<String>,
    client_id: Option<String>,
}

/// The targets whose policies apply to `principal` (a certificate ARN), with the groups of
/// `thing` (and their ancestors).
fn principal_targets(api: &Api, principal: &str, thing: Option<&str>) -> Result<Vec<Target>, AwsError> {
    let meta = api.services.meta.state();
    let id = cert_id_of_arn(principal).ok_or_else(|| {
        AwsError::invalid_request(format!("Invalid principal {principal:?}: expected a certificate ARN"))
    })?;
    if meta.identity.certificate(id).is_none() {
        return Err(crate::identity::certs::not_found(id));
    }
    let mut targets = vec![Target::Certificate(id.to_string())];
    if let Some(thing) = thing {
        if meta.registry.thing(thing).is_none() {
            return Err(crate::registry::things::missing("Thing", thing));
        }
        for (group, _) in meta.registry.groups_of_thing(thing) {
            if let Some((_, chain)) = meta.registry.thing_group(&group) {
                targets.extend(chain.into_iter().map(|(n, _)| Target::ThingGroup(n)));
            }
            targets.push(Target::ThingGroup(group));
        }
    }
    Ok(targets)
}

/// GetEffectivePolicies.
pub async fn get_effective_policies(api: web::Data<Api>, call: Call) -> ApiResult {
    let query: ThingNameQuery = call.query()?;
    let b: PrincipalBody = call.json()?;
    let meta = api.services.meta.state();
    let targets = match (&b.principal, &query.thing_name) {
        (Some(p), thing) => principal_targets(&api, p, thing.as_deref())?,
        (None, Some(thing)) => {
            let principals = meta.identity.principals_of_thing(thing);
            let mut all = Vec::new();
            for p in principals {
                all.extend(principal_targets(&api, &p, Some(thing))?);
            }
            all
        }
        (None, None) => return Err(AwsError::invalid_request("principal or thingName is required")),
    };
    let effective: Vec<Value> = meta
        .identity
        .documents_for(&targets)
        .into_iter()
        .filter_map(|(name, _)| meta.identity.policy(&name))
        .map(|p| json!({ "policyName": p.policy_name, "policyArn": p.policy_arn, "policyDocument": p.default_document() }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "effectivePolicies": effective })))
}

fn action_name(action_type: &str) -> Result<&'static str, AwsError> {
    Ok(match action_type {
        "PUBLISH" => "iot:Publish",
        "SUBSCRIBE" => "iot:Subscribe",
        "RECEIVE" => "iot:Receive",
        "CONNECT" => "iot:Connect",
        other => {
            return Err(AwsError::invalid_request(format!(
                "Invalid actionType {other:?}: use PUBLISH, SUBSCRIBE, RECEIVE or CONNECT"
            )))
        }
    })
}

/// TestAuthorization: evaluates each authInfo against the principal's policies (plus
/// `policyNamesToAdd`, minus `policyNamesToSkip`) and says which policies allowed or denied.
pub async fn test_authorization(api: web::Data<Api>, call: Call) -> ApiResult {
    let query: ThingNameQuery = call.query()?;
    let b: PrincipalBody = call.json()?;
    if b.auth_infos.is_empty() {
        return Err(AwsError::invalid_request("authInfos is required"));
    }
    let meta = api.services.meta.state();
    let client_id = query.client_id.unwrap_or_default();
    let mut fields = BTreeMap::new();
    let mut docs: Vec<(String, Arc<PolicyDocument>)> = Vec::new();
    let mut thing = None;
    if let Some(principal) = &b.principal {
        let attached = meta.registry.thing(&client_id).filter(|_| meta.identity.is_attached(&client_id, principal));
        let targets = principal_targets(&api, principal, attached.as_ref().map(|t| t.thing_name.as_str()))?;
        docs = meta.identity.documents_for(&targets);
        if let Some(c) = cert_id_of_arn(principal).and_then(|id| meta.identity.certificate(id)) {
            if let Ok(parsed) = crate::identity::certs::parse_pem(&c.certificate_pem) {
                fields = crate::identity::certs::policy_variables(&parsed.der);
            }
        }
        thing = attached;
    }
    docs.retain(|(n, _)| !b.policy_names_to_skip.contains(n));
    for added in meta.identity.documents_named(&b.policy_names_to_add)? {
        if !docs.iter().any(|(n, _)| *n == added.0) {
            docs.push(added);
        }
    }
    let mut ctx = policy::Context::new(&client_id, now_s());
    ctx.certificate = b.principal.as_ref().map(|_| &fields);
    ctx.thing = thing.as_ref().map(|t| ThingContext {
        name: &t.thing_name,
        type_name: t.thing_type_name.as_deref(),
        attributes: &t.attributes,
    });
    let summary =
        |name: &String| json!({ "policyName": name, "policyArn": meta.identity.policy_arn(name).unwrap_or_default() });
    let mut results = Vec::new();
    for info in &b.auth_infos {
        let action = action_name(info.action_type.as_deref().unwrap_or(""))?;
        if info.resources.is_empty() {
            return Err(AwsError::invalid_request("each authInfo needs resources"));
        }
        let (mut allowed, mut explicit) = (Vec::new(), Vec::new());
        let mut decision = Decision::Allow;
        for resource in &info.resources {
            let e = policy::evaluate_explained(docs.iter().map(|(_, d)| &**d), action, resource, &ctx);
            let by = e.statement.and_then(|s| docs.get(s.document)).map(|(n, _)| n.clone());
            match e.decision {
                Decision::Allow => allowed.extend(by),
                Decision::ExplicitDeny => {
                    explicit.extend(by);
                    decision = Decision::ExplicitDeny;
                }
                Decision::ImplicitDeny if decision == Decision::Allow => decision = Decision::ImplicitDeny,
                Decision::ImplicitDeny => {}
            }
        }
        allowed.sort();
        allowed.dedup();
        explicit.sort();
        explicit.dedup();
        let implicit: Vec<&String> =
            if decision == Decision::ImplicitDeny { docs.iter().map(|(n, _)| n).collect() } else { Vec::new() };
        results.push(json!({
            "authInfo": info,
            "allowed": { "policies": if decision == Decision::Allow { allowed.iter().map(summary).collect() } else { Vec::new() } },
            "denied": {
                "implicitDeny": { "policies": implicit.into_iter().map(summary).collect::<Vec<_>>() },
                "explicitDeny": { "policies": explicit.iter().map(summary).collect::<Vec<_>>() },
            },
            "authDecision": match decision {
                Decision::Allow => "ALLOWED",
                Decision::ExplicitDeny => "EXPLICIT_DENY",
                Decision::ImplicitDeny => "IMPLICIT_DENY",
            },
            "missingContextValues": [],
        }));
    }
    Ok(HttpResponse::Ok().json(json!({ "authResults": results })))
}
