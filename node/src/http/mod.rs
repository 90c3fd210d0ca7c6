//! The HTTP listener (actix-web): `/health` for load balancers, `/metrics` for Prometheus,
//! and the AWS-compatible API, authenticated with SigV4: the `iot-data` routes (shadows,
//! publish, retained messages) and the `iot` registry routes here, topic rules in
//! `topic_rules`. Handlers are thin: changes become commands proposed to the group that owns
//! the state (DESIGN section 4).

mod authorizers;
mod certificates;
mod cluster;
mod policies;
mod topic_rules;

use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;

use crate::broker::message::now_ms;
use crate::broker::Broker;
use crate::credentials::Credentials;
use crate::registry::things::RegistryError;
use crate::registry::{self, is_resource_name, Outcome};
use crate::shadow::topics::{Operation, Request as ShadowRequest, MAX_SHADOW_NAME, MAX_THING_NAME};
use crate::shadow::ShadowError;
use crate::sigv4;

/// What the API handlers share.
struct Api {
    broker: Arc<Broker>,
    credentials: Credentials,
    /// Signs the certificates CreateKeysAndCertificate and CreateCertificateFromCsr create.
    issuer: crate::identity::tls::CertIssuer,
}

/// AWS's restJson1 error: the status, `x-amzn-ErrorType` and `{"message"}`.
fn aws_error(status: u16, error_type: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .insert_header(("x-amzn-ErrorType", error_type))
        .json(json!({ "message": message }))
}

/// An AWS API error; actix builds the response (status, `x-amzn-ErrorType`, `{"message"}`)
/// when a handler returns it, so handlers can use `?`.
#[derive(Debug)]
struct AwsError {
    status: u16,
    error_type: &'static str,
    message: String,
}

impl AwsError {
    fn new(status: u16, error_type: &'static str, message: impl Into<String>) -> AwsError {
        AwsError { status, error_type, message: message.into() }
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl actix_web::ResponseError for AwsError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.status).unwrap_or_default()
    }

    fn error_response(&self) -> HttpResponse {
        aws_error(self.status, self.error_type, &self.message)
    }
}

impl From<sigv4::SigError> for AwsError {
    fn from(e: sigv4::SigError) -> AwsError {
        AwsError::new(e.status, e.error_type, e.message)
    }
}

impl From<crate::registry::things::RegistryError> for AwsError {
    fn from(e: crate::registry::things::RegistryError) -> AwsError {
        AwsError::new(e.status, e.error_type, e.message)
    }
}

impl From<ShadowError> for AwsError {
    fn from(e: ShadowError) -> AwsError {
        let error_type = match e.code {
            400 => "InvalidRequestException",
            404 => "ResourceNotFoundException",
            409 => "ConflictException",
            413 => "RequestEntityTooLargeException",
            429 => "ThrottlingException",
            _ => "InternalFailureException",
        };
        AwsError::new(e.code, error_type, e.message)
    }
}

/// What API handlers return.
type ApiResult = Result<HttpResponse, AwsError>;

/// Checks the request's SigV4 signature for `service`; the error response when it fails.
fn authenticate(api: &Api, req: &HttpRequest, body: &[u8], service: &str) -> Result<sigv4::Signer, AwsError> {
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let signed = sigv4::Request {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query().unwrap_or(""),
        headers: &headers,
        body,
    };
    let now = (now_ms() / 1000) as i64;
    Ok(sigv4::verify(&signed, &[service], now, |k| api.credentials.secret(k))?)
}

#[derive(serde::Deserialize)]
struct ShadowQuery {
    name: Option<String>,
}

/// GetThingShadow, UpdateThingShadow and DeleteThingShadow.
async fn thing_shadow(
    api: web::Data<Api>,
    req: HttpRequest,
    thing: web::Path<String>,
    query: web::Query<ShadowQuery>,
    body: web::Bytes,
) -> ApiResult {
    authenticate(&api, &req, &body, "iotdata")?;
    let op = match *req.method() {
        actix_web::http::Method::GET => Operation::Get,
        actix_web::http::Method::POST => Operation::Update,
        _ => Operation::Delete,
    };
    let shadow = query.name.as_deref();
    if !is_resource_name(&thing, MAX_THING_NAME) || shadow.is_some_and(|s| !is_resource_name(s, MAX_SHADOW_NAME)) {
        return Err(AwsError::new(400, "InvalidRequestException", "Invalid thing or shadow name"));
    }
    let request = ShadowRequest { thing: thing.to_string(), shadow: shadow.map(str::to_string), op };
    let payload: &[u8] = if op == Operation::Update { &body } else { b"" };
    let doc = api.broker.shadows.apply(&api.broker, request, payload, now_ms() / 1000).await?;
    Ok(HttpResponse::Ok().content_type("application/json").body(doc.to_string()))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    next_token: Option<String>,
    page_size: Option<usize>,
}

/// ListNamedShadowsForThing: names in order, `pageSize` at a time (default 25, AWS's).
async fn list_named_shadows(
    api: web::Data<Api>,
    req: HttpRequest,
    thing: web::Path<String>,
    query: web::Query<ListQuery>,
    body: web::Bytes,
) -> ApiResult {
    authenticate(&api, &req, &body, "iotdata")?;
    let names = api.broker.shadows.named_shadows(&thing).await?;
    let (results, next) =
        page_after(&names, |n| n.as_str(), query.next_token.as_deref(), query.page_size.unwrap_or(25).clamp(1, 100));
    page_response(json!({ "results": results, "timestamp": now_ms() / 1000 }), next)
}

async fn health(broker: web::Data<Arc<Broker>>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "sessions": broker.session_count(),
        "connections": broker.metrics.connections.get(),
    }))
}

async fn metrics(broker: web::Data<Arc<Broker>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(broker.metrics.render() + &broker.rules.render_metrics())
}

/// Decodes `%XX` escapes of a path segment (the topic labels of the data-plane routes).
fn percent_decoded(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The topic label after `prefix` in the request's raw path.
fn topic_label(req: &HttpRequest, prefix: &str) -> Option<String> {
    percent_decoded(req.uri().path().strip_prefix(prefix)?)
}

#[derive(serde::Deserialize)]
struct PublishQuery {
    qos: Option<u8>,
    retain: Option<bool>,
}

/// Publish: the body goes to the topic as if an MQTT client had published it. A QoS 1
/// publish answers 200 only once it is durable.
async fn publish(
    api: web::Data<Api>,
    req: HttpRequest,
    query: web::Query<PublishQuery>,
    body: web::Bytes,
) -> ApiResult {
    authenticate(&api, &req, &body, "iotdata")?;
    let Some(topic) = topic_label(&req, "/topics/") else {
        return Err(AwsError::new(400, "InvalidRequestException", "The topic is not valid percent-encoded UTF-8"));
    };
    let broker = &api.broker;
    if let Err(e) = crate::mqtt::topic::validate_topic_name(&topic, &broker.config.topic_limits) {
        return Err(AwsError::new(400, "InvalidRequestException", format!("Invalid topic {topic:?}: {}", e.message)));
    }
    if body.len() > broker.config.max_payload {
        return Err(AwsError::new(
            413,
            "RequestEntityTooLargeException",
            "The payload exceeds the maximum size allowed",
        ));
    }
    let qos = match query.qos.unwrap_or(0) {
        0 => crate::mqtt::packet::QoS::AtMostOnce,
        1 => crate::mqtt::packet::QoS::AtLeastOnce,
        _ => return Err(AwsError::new(400, "InvalidRequestException", "qos must be 0 or 1")),
    };
    let msg = Arc::new(crate::broker::message::Message {
        topic: topic.as_str().into(),
        payload: body.clone(),
        qos,
        retain: query.retain.unwrap_or(false),
        properties: crate::mqtt::packet::Properties::default(),
        publisher: None,
        created_ms: now_ms(),
        rule_hops: 0,
    });
    if !broker.publish_and_wait(&msg).await.stored {
        return Err(AwsError::new(500, "InternalFailureException", "Internal service failure"));
    }
    Ok(HttpResponse::Ok().finish())
}

/// GetRetainedMessage.
async fn get_retained(api: web::Data<Api>, req: HttpRequest, body: web::Bytes) -> ApiResult {
    use base64::Engine as _;
    authenticate(&api, &req, &body, "iotdata")?;
    let Some(topic) = topic_label(&req, "/retainedMessage/") else {
        return Err(AwsError::new(400, "InvalidRequestException", "The topic is not valid percent-encoded UTF-8"));
    };
    let m = api.broker.retained.get(&topic).ok_or_else(|| {
        AwsError::new(404, "ResourceNotFoundException", format!("No retained message exists for topic '{topic}'"))
    })?;
    Ok(HttpResponse::Ok().json(json!({
        "topic": &*m.topic,
        "payload": base64::engine::general_purpose::STANDARD.encode(&m.payload),
        "qos": m.qos as u8,
        "lastModifiedTime": m.created_ms,
    })))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetainedQuery {
    next_token: Option<String>,
    max_results: Option<usize>,
}

/// ListRetainedMessages: summaries in topic order, `maxResults` at a time (default 50).
async fn list_retained(
    api: web::Data<Api>,
    req: HttpRequest,
    query: web::Query<RetainedQuery>,
    body: web::Bytes,
) -> ApiResult {
    authenticate(&api, &req, &body, "iotdata")?;
    let all = api.broker.retained.all();
    let size = query.max_results.unwrap_or(50).clamp(1, 200);
    let (page, next) = page_after(&all, |m| &m.topic, query.next_token.as_deref(), size);
    let topics: Vec<serde_json::Value> = page
        .iter()
        .map(|m| json!({ "topic": &*m.topic, "payloadSize": m.payload.len(), "qos": m.qos as u8, "lastModifiedTime": m.created_ms }))
        .collect();
    page_response(json!({ "retainedTopics": topics }), next)
}

/// A registry call's JSON answer, or its AWS error.
fn respond(result: Result<serde_json::Value, RegistryError>) -> ApiResult {
    Ok(HttpResponse::Ok().json(result?))
}

/// Proposes a registry command to the `meta` group and waits until it is committed and
/// applied.
async fn registry_command(api: &Api, command: registry::Command) -> Result<Outcome, RegistryError> {
    match crate::meta::propose(&api.broker.meta, crate::meta::Command::Registry(command)).await? {
        crate::meta::Outcome::Registry(o) => Ok(o),
        other => Err(unexpected(&other)),
    }
}

/// A command answered with an outcome of the wrong kind: a bug, reported as AWS's 500.
fn unexpected(outcome: &dyn std::fmt::Debug) -> RegistryError {
    tracing::error!(?outcome, "a command answered an unexpected outcome");
    crate::registry::things::internal_failure()
}

/// The registry as this node has applied it, for reads.
fn registry(api: &Api) -> &registry::Registry {
    &api.broker.meta.state().registry
}

/// The JSON body of a control-plane call (an empty body is the defaults).
fn json_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AwsError> {
    if body.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|_| {
        AwsError::new(400, "InvalidRequestException", "The request body is not valid JSON for this operation")
    })
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AttributePayload {
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    merge: bool,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ThingBody {
    thing_type_name: Option<String>,
    attribute_payload: Option<AttributePayload>,
    expected_version: Option<u64>,
    #[serde(default)]
    remove_thing_type: bool,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThingQuery {
    expected_version: Option<u64>,
}

/// CreateThing, DescribeThing, UpdateThing and DeleteThing.
async fn thing(
    api: web::Data<Api>,
    req: HttpRequest,
    name: web::Path<String>,
    query: web::Query<ThingQuery>,
    body: web::Bytes,
) -> ApiResult {
    let signer = authenticate(&api, &req, &body, "iot")?;
    let b: ThingBody = json_body(&body)?;
    let result = match *req.method() {
        actix_web::http::Method::POST => {
            let thing = crate::registry::things::NewThing {
                name: name.to_string(),
                thing_type: b.thing_type_name,
                attributes: b.attribute_payload.unwrap_or_default().attributes,
            };
            let command = registry::Command::CreateThing {
                thing,
                arn_prefix: registry::arn_prefix(&signer.region),
                id: registry::new_id(),
            };
            match registry_command(&api, command).await? {
                Outcome::Thing(t) => {
                    Ok(json!({ "thingName": t.thing_name, "thingArn": t.thing_arn, "thingId": t.thing_id }))
                }
                other => Err(unexpected(&other)),
            }
        }
        actix_web::http::Method::GET => match registry(&api).thing(&name) {
            Some(t) => {
                let mut doc = serde_json::to_value(&t).unwrap_or_default();
                doc["defaultClientId"] = json!(t.thing_name);
                Ok(doc)
            }
            None => Err(crate::registry::things::RegistryError {
                status: 404,
                error_type: "ResourceNotFoundException",
                message: format!("Thing {name} cannot be found."),
            }),
        },
        actix_web::http::Method::PATCH => {
            let payload = b.attribute_payload;
            let update = crate::registry::things::ThingUpdate {
                merge: payload.as_ref().is_some_and(|p| p.merge),
                attributes: payload.map(|p| p.attributes),
                expected_version: b.expected_version,
                thing_type: b.thing_type_name,
                remove_thing_type: b.remove_thing_type,
            };
            registry_command(&api, registry::Command::UpdateThing { name: name.to_string(), update })
                .await
                .map(|_| json!({}))
        }
        _ => {
            let command =
                registry::Command::DeleteThing { name: name.to_string(), expected_version: query.expected_version };
            registry_command(&api, command).await.map(|_| json!({}))
        }
    };
    respond(result)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListThingsQuery {
    next_token: Option<String>,
    max_results: Option<usize>,
    attribute_name: Option<String>,
    attribute_value: Option<String>,
    thing_type_name: Option<String>,
    use_prefix_attribute_value: Option<bool>,
}

/// ListThings: in name order, `maxResults` at a time (default 50, at most 250).
async fn list_things(
    api: web::Data<Api>,
    req: HttpRequest,
    query: web::Query<ListThingsQuery>,
    body: web::Bytes,
) -> ApiResult {
    authenticate(&api, &req, &body, "iot")?;
    let filter = match (&query.attribute_name, &query.attribute_value) {
        (Some(n), Some(v)) => Some((n.as_str(), v.as_str(), query.use_prefix_attribute_value.unwrap_or(false))),
        (None, None) => None,
        _ => return Err(AwsError::new(400, "InvalidRequestException", "attributeName and attributeValue go together")),
    };
    let mut things = registry(&api).list_things(filter);
    if let Some(t) = &query.thing_type_name {
        things.retain(|x| x.thing_type_name.as_deref() == Some(t.as_str()));
    }
    let size = query.max_results.unwrap_or(50).clamp(1, 250);
    let (page, next) = page_after(&things, |t| &t.thing_name, query.next_token.as_deref(), size);
    let things: Vec<serde_json::Value> = page
        .iter()
        .map(|t| {
            let mut doc = json!({
                "thingName": t.thing_name, "thingArn": t.thing_arn, "attributes": t.attributes, "version": t.version,
            });
            if let Some(ty) = &t.thing_type_name {
                doc["thingTypeName"] = json!(ty);
            }
            doc
        })
        .collect();
    page_response(json!({ "things": things }), next)
}

/// DescribeEndpoint: the host name clients used to reach this node (devices connect to the
/// same host's MQTT port).
async fn describe_endpoint(api: web::Data<Api>, req: HttpRequest, body: web::Bytes) -> ApiResult {
    authenticate(&api, &req, &body, "iot")?;
    let host = req.connection_info().host().to_string();
    let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h).to_string();
    Ok(HttpResponse::Ok().json(json!({ "endpointAddress": host })))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ThingTypeProperties {
    thing_type_description: Option<String>,
    #[serde(default)]
    searchable_attributes: Vec<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ThingTypeBody {
    thing_type_properties: Option<ThingTypeProperties>,
    #[serde(default)]
    undo_deprecate: bool,
}

fn thing_type_document(t: &crate::registry::types::ThingType) -> serde_json::Value {
    let mut props = json!({ "searchableAttributes": t.searchable_attributes });
    if let Some(d) = &t.description {
        props["thingTypeDescription"] = json!(d);
    }
    let mut meta = json!({ "deprecated": t.deprecated, "creationDate": t.creation_date });
    if let Some(d) = t.deprecation_date {
        meta["deprecationDate"] = json!(d);
    }
    json!({
        "thingTypeName": t.thing_type_name, "thingTypeId": t.thing_type_id, "thingTypeArn": t.thing_type_arn,
        "thingTypeProperties": props, "thingTypeMetadata": meta,
    })
}

/// CreateThingType, DescribeThingType, DeleteThingType, and `/deprecate`.
async fn thing_type(api: web::Data<Api>, req: HttpRequest, path: web::Path<String>, body: web::Bytes) -> ApiResult {
    let signer = authenticate(&api, &req, &body, "iot")?;
    let b: ThingTypeBody = json_body(&body)?;
    let now = now_ms() / 1000;
    let (name, deprecate) = match path.strip_suffix("/deprecate") {
        Some(n) => (n.to_string(), true),
        None => (path.to_string(), false),
    };
    let result = match (req.method().clone(), deprecate) {
        (actix_web::http::Method::POST, true) => {
            let command = registry::Command::DeprecateThingType { name, undo: b.undo_deprecate, now_s: now };
            registry_command(&api, command).await.map(|_| json!({}))
        }
        (actix_web::http::Method::POST, false) => {
            let p = b.thing_type_properties.unwrap_or_default();
            let command = registry::Command::CreateThingType {
                name,
                description: p.thing_type_description,
                searchable: p.searchable_attributes,
                arn_prefix: registry::arn_prefix(&signer.region),
                id: registry::new_id(),
                now_s: now,
            };
            match registry_command(&api, command).await? {
                Outcome::ThingType(t) => Ok(
                    json!({ "thingTypeName": t.thing_type_name, "thingTypeArn": t.thing_type_arn, "thingTypeId": t.thing_type_id }),
                ),
                other => Err(unexpected(&other)),
            }
        }
        (actix_web::http::Method::GET, false) => registry(&api)
            .thing_type(&name)
            .map(|t| thing_type_document(&t))
            .ok_or_else(|| crate::registry::types::not_found(&name)),
        (actix_web::http::Method::DELETE, false) => {
            let wait_s = api.broker.config.thing_type_deletion_wait_secs;
            let command = registry::Command::DeleteThingType { name, now_s: now, wait_s };
            registry_command(&api, command).await.map(|_| json!({}))
        }
        _ => return Err(AwsError::new(405, "MethodNotAllowedException", "Method not allowed")),
    };
    respond(result)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListTypesQuery {
    next_token: Option<String>,
    max_results: Option<usize>,
    thing_type_name: Option<String>,
}

/// ListThingTypes.
async fn list_thing_types(
    api: web::Data<Api>,
    req: HttpRequest,
    query: web::Query<ListTypesQuery>,
    body: web::Bytes,
) -> ApiResult {
    authenticate(&api, &req, &body, "iot")?;
    let mut all = registry(&api).thing_types();
    if let Some(n) = &query.thing_type_name {
        all.retain(|t| &t.thing_type_name == n);
    }
    let size = query.max_results.unwrap_or(50).clamp(1, 250);
    let (page, next) = page_after(&all, |t| &t.thing_type_name, query.next_token.as_deref(), size);
    page_response(json!({ "thingTypes": page.iter().map(thing_type_document).collect::<Vec<_>>() }), next)
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ThingGroupProperties {
    thing_group_description: Option<String>,
    attribute_payload: Option<AttributePayload>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ThingGroupBody {
    parent_group_name: Option<String>,
    thing_group_properties: Option<ThingGroupProperties>,
    expected_version: Option<u64>,
}

/// CreateThingGroup, DescribeThingGroup, UpdateThingGroup and DeleteThingGroup.
async fn thing_group(
    api: web::Data<Api>,
    req: HttpRequest,
    name: web::Path<String>,
    query: web::Query<ThingQuery>,
    body: web::Bytes,
) -> ApiResult {
    let signer = authenticate(&api, &req, &body, "iot")?;
    let b: ThingGroupBody = json_body(&body)?;
    let result = match *req.method() {
        actix_web::http::Method::POST => {
            let props = b.thing_group_properties.unwrap_or_default();
            let attributes = props.attribute_payload.unwrap_or_default().attributes;
            let command = registry::Command::CreateThingGroup {
                name: name.to_string(),
                parent: b.parent_group_name,
                description: props.thing_group_description,
                attributes,
                arn_prefix: registry::arn_prefix(&signer.region),
                id: registry::new_id(),
                now_s: now_ms() / 1000,
            };
            match registry_command(&api, command).await? {
                Outcome::Group(g) => {
                    Ok(json!({ "thingGroupName": g.name, "thingGroupArn": g.arn, "thingGroupId": g.id }))
                }
                other => Err(unexpected(&other)),
            }
        }
        actix_web::http::Method::GET => match registry(&api).thing_group(&name) {
            Some((g, chain)) => {
                let mut props = json!({ "attributePayload": { "attributes": g.attributes } });
                if let Some(d) = &g.description {
                    props["thingGroupDescription"] = json!(d);
                }
                let mut meta = json!({
                    "creationDate": g.creation_date,
                    "rootToParentThingGroups": chain.iter().map(|(n, a)| json!({ "groupName": n, "groupArn": a })).collect::<Vec<_>>(),
                });
                if let Some(p) = &g.parent {
                    meta["parentGroupName"] = json!(p);
                }
                Ok(json!({
                    "thingGroupName": g.name, "thingGroupId": g.id, "thingGroupArn": g.arn, "version": g.version,
                    "thingGroupProperties": props, "thingGroupMetadata": meta,
                }))
            }
            None => Err(crate::registry::groups::not_found(&name)),
        },
        actix_web::http::Method::DELETE => {
            let command = registry::Command::DeleteThingGroup {
                name: name.to_string(),
                expected_version: query.expected_version,
            };
            registry_command(&api, command).await.map(|_| json!({}))
        }
        actix_web::http::Method::PATCH => {
            let props = b.thing_group_properties.unwrap_or_default();
            let command = registry::Command::UpdateThingGroup {
                name: name.to_string(),
                description: props.thing_group_description,
                attributes: props.attribute_payload.map(|p| (p.attributes, p.merge)),
                expected_version: b.expected_version,
            };
            match registry_command(&api, command).await? {
                Outcome::Version(version) => Ok(json!({ "version": version })),
                other => Err(unexpected(&other)),
            }
        }
        _ => return Err(AwsError::new(405, "MethodNotAllowedException", "Method not allowed")),
    };
    respond(result)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MembershipBody {
    thing_group_name: Option<String>,
    thing_group_arn: Option<String>,
    thing_name: Option<String>,
    thing_arn: Option<String>,
}

/// AddThingToThingGroup and RemoveThingFromThingGroup (by name or ARN).
async fn membership(api: web::Data<Api>, req: HttpRequest, body: web::Bytes) -> ApiResult {
    authenticate(&api, &req, &body, "iot")?;
    let Ok(b) = serde_json::from_slice::<MembershipBody>(&body) else {
        return Err(AwsError::new(
            400,
            "InvalidRequestException",
            "The request body is not valid JSON for this operation",
        ));
    };
    let after_slash = |arn: Option<String>| arn.and_then(|a| a.rsplit_once('/').map(|(_, n)| n.to_string()));
    let (Some(group), Some(thing)) =
        (b.thing_group_name.or(after_slash(b.thing_group_arn)), b.thing_name.or(after_slash(b.thing_arn)))
    else {
        return Err(AwsError::new(
            400,
            "InvalidRequestException",
            "Name the thing group and the thing (by name or ARN)",
        ));
    };
    let add = req.path().ends_with("/addThingToThingGroup");
    registry_command(&api, registry::Command::SetMembership { group, thing, member: add }).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupListQuery {
    next_token: Option<String>,
    max_results: Option<usize>,
    parent_group: Option<String>,
    name_prefix_filter: Option<String>,
    recursive: Option<bool>,
}

/// ListThingGroups.
async fn list_thing_groups(
    api: web::Data<Api>,
    req: HttpRequest,
    query: web::Query<GroupListQuery>,
    body: web::Bytes,
) -> ApiResult {
    authenticate(&api, &req, &body, "iot")?;
    let mut groups = registry(&api).thing_groups(query.parent_group.as_deref(), query.recursive.unwrap_or(false));
    if let Some(prefix) = &query.name_prefix_filter {
        groups.retain(|g| g.name.starts_with(prefix.as_str()));
    }
    let size = query.max_results.unwrap_or(50).clamp(1, 250);
    let (page, next) = page_after(&groups, |g| &g.name, query.next_token.as_deref(), size);
    page_response(
        json!({ "thingGroups": page.iter().map(|g| json!({ "groupName": g.name, "groupArn": g.arn })).collect::<Vec<_>>() }),
        next,
    )
}

/// ListThingsInThingGroup.
async fn things_in_group(
    api: web::Data<Api>,
    req: HttpRequest,
    name: web::Path<String>,
    query: web::Query<GroupListQuery>,
    body: web::Bytes,
) -> ApiResult {
    authenticate(&api, &req, &body, "iot")?;
    let names = registry(&api).things_in_group(&name, query.recursive.unwrap_or(false))?;
    let size = query.max_results.unwrap_or(50).clamp(1, 250);
    let (page, next) = page_after(&names, |n| n.as_str(), query.next_token.as_deref(), size);
    page_response(json!({ "things": page }), next)
}

/// ListThingGroupsForThing.
async fn groups_of_thing(
    api: web::Data<Api>,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult {
    authenticate(&api, &req, &body, "iot")?;
    let groups: Vec<serde_json::Value> = registry(&api)
        .groups_of_thing(&name)
        .into_iter()
        .map(|(n, a)| json!({ "groupName": n, "groupArn": a }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "thingGroups": groups })))
}

/// A list call's answer: `doc`, with `nextToken` when more pages follow.
fn page_response(mut doc: serde_json::Value, next: Option<String>) -> ApiResult {
    if let Some(t) = next {
        doc["nextToken"] = json!(t);
    }
    Ok(HttpResponse::Ok().json(doc))
}

/// One page of `items` (sorted by `key`) after the `after` token, and the next token when
/// more follow: the key of the page's last item.
fn page_after<'i, T>(
    items: &'i [T],
    key: impl Fn(&T) -> &str,
    after: Option<&str>,
    size: usize,
) -> (&'i [T], Option<String>) {
    let start = after.map_or(0, |a| items.partition_point(|i| key(i) <= a));
    let end = (start + size).min(items.len());
    let page = &items[start..end];
    let next = (end < items.len()).then(|| page.last().map(|i| key(i).to_string())).flatten();
    (page, next)
}

/// True for API routes (not the health, metrics and cluster-status endpoints).
fn is_api_path(path: &str) -> bool {
    !matches!(path, "/health" | "/metrics" | "/cluster/status")
}

/// Starts the HTTP server on an already-bound listener.
pub fn serve(
    listener: std::net::TcpListener,
    broker: Arc<Broker>,
    credentials: Credentials,
    issuer: crate::identity::tls::CertIssuer,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(broker.clone());
    let barrier = broker.clone();
    let api = web::Data::new(Api { broker, credentials, issuer });
    Ok(HttpServer::new(move || {
        let barrier = barrier.clone();
        App::new()
            .wrap_fn(move |req, srv| {
                use actix_web::dev::Service as _;
                // A read on any member sees every change acknowledged before it, on any member:
                // wait until this node has applied what the meta leader had committed.
                let wait = (req.method() == actix_web::http::Method::GET && is_api_path(req.path()))
                    .then(|| barrier.meta.read(|_| ()));
                let call = srv.call(req);
                async move {
                    if let Some(wait) = wait {
                        if let Err(e) = wait.await {
                            tracing::warn!(error = %e, "a read could not catch up with the meta group");
                            return Err(actix_web::error::ErrorServiceUnavailable(
                                "this node cannot reach a majority of the cluster; try another node",
                            ));
                        }
                    }
                    call.await
                }
            })
            .app_data(data.clone())
            .app_data(api.clone())
            .app_data(web::PayloadConfig::new(256 * 1024))
            .route("/health", web::get().to(health))
            .route("/metrics", web::get().to(metrics))
            .route("/cluster/status", web::get().to(cluster::status))
            .route("/cluster/sessions", web::get().to(cluster::sessions))
            .route("/cluster/members", web::post().to(cluster::join))
            .route("/cluster/members/{id}", web::delete().to(cluster::leave))
            .route(
                "/things/{thingName}/shadow",
                web::route()
                    .guard(
                        actix_web::guard::Any(actix_web::guard::Get())
                            .or(actix_web::guard::Post())
                            .or(actix_web::guard::Delete()),
                    )
                    .to(thing_shadow),
            )
            .route("/api/things/shadow/ListNamedShadowsForThing/{thingName}", web::get().to(list_named_shadows))
            .route("/topics/{topic:.*}", web::post().to(publish))
            .route("/things", web::get().to(list_things))
            .route("/rules", web::get().to(topic_rules::list_topic_rules))
            .route("/rules/{ruleName}/{verb}", web::post().to(topic_rules::set_enabled))
            .route("/rules/{ruleName}", web::route().to(topic_rules::topic_rule))
            .route("/things/{thingName}/thing-groups", web::get().to(groups_of_thing))
            .route("/things/{thingName}/principals", web::route().to(certificates::thing_principals))
            .route("/principals/things", web::get().to(certificates::principal_things))
            .route("/keys-and-certificate", web::post().to(certificates::create_keys_and_certificate))
            .route("/certificates", web::post().to(certificates::create_certificate_from_csr))
            .route("/certificates", web::get().to(certificates::list_certificates))
            .route("/certificates/{id}", web::route().to(certificates::certificate))
            .route("/certificates-by-ca/{id}", web::get().to(certificates::list_certificates_by_ca))
            .route("/certificate/register", web::post().to(certificates::register_certificate))
            .route("/certificate/register-no-ca", web::post().to(certificates::register_certificate_without_ca))
            .route("/cacertificate", web::post().to(certificates::register_ca_certificate))
            .route("/cacertificates", web::get().to(certificates::list_ca_certificates))
            .route("/cacertificate/{id}", web::route().to(certificates::ca_certificate))
            .route("/thing-groups", web::get().to(list_thing_groups))
            .route("/thing-groups/addThingToThingGroup", web::put().to(membership))
            .route("/thing-groups/removeThingFromThingGroup", web::put().to(membership))
            .route("/thing-groups/{name}/things", web::get().to(things_in_group))
            .route("/thing-groups/{name}", web::route().to(thing_group))
            .route("/things/{thingName}", web::route().to(thing))
            .route("/endpoint", web::get().to(describe_endpoint))
            .route("/thing-types", web::get().to(list_thing_types))
            .route("/thing-types/{name:.*}", web::route().to(thing_type))
            .route("/policies", web::get().to(policies::list_policies))
            .route("/policies/{name}/version", web::route().to(policies::policy_versions))
            .route("/policies/{name}/version/{version}", web::route().to(policies::policy_version))
            .route("/policies/{name}", web::route().to(policies::policy))
            .route("/target-policies/{name}", web::route().to(policies::target_policy))
            .route("/attached-policies/{target:.*}", web::post().to(policies::attached_policies))
            .route("/policy-targets/{name}", web::post().to(policies::policy_targets))
            .route("/effective-policies", web::post().to(policies::effective_policies))
            .route("/test-authorization", web::post().to(policies::test_authorization))
            .route("/authorizers/", web::get().to(authorizers::list_authorizers))
            .route("/authorizers", web::get().to(authorizers::list_authorizers))
            .route("/authorizer/{name}/test", web::post().to(authorizers::test_invoke_authorizer))
            .route("/authorizer/{name}", web::route().to(authorizers::authorizer))
            .route("/default-authorizer", web::route().to(authorizers::default_authorizer))
            .route("/retainedMessage", web::get().to(list_retained))
            .route("/retainedMessage/{topic:.*}", web::get().to(get_retained))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}
