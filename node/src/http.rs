//! The HTTP listener (actix-web): `/health` for load balancers, `/metrics` for Prometheus,
//! and the AWS-compatible API, authenticated with SigV4: so far the `iot-data` shadow
//! routes (issue 6 in progress).

use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;

use crate::broker::message::now_ms;
use crate::broker::Broker;
use crate::credentials::Credentials;
use crate::shadow::topics::{Operation, Request as ShadowRequest, MAX_SHADOW_NAME, MAX_THING_NAME};
use crate::shadow::ShadowError;
use crate::sigv4;

/// What the API handlers share.
struct Api {
    broker: Arc<Broker>,
    credentials: Credentials,
}

/// AWS's restJson1 error: the status, `x-amzn-ErrorType` and `{"message"}`.
fn aws_error(status: u16, error_type: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .insert_header(("x-amzn-ErrorType", error_type))
        .json(json!({ "message": message }))
}

/// Checks the request's SigV4 signature for `service`; the error response when it fails.
fn authenticate(api: &Api, req: &HttpRequest, body: &[u8], service: &str) -> Result<(), Box<HttpResponse>> {
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
    sigv4::verify(&signed, &[service], now, |k| api.credentials.secret(k))
        .map(|_| ())
        .map_err(|e| Box::new(aws_error(e.status, e.error_type, &e.message)))
}

fn shadow_error(e: &ShadowError) -> HttpResponse {
    let error_type = match e.code {
        400 => "InvalidRequestException",
        404 => "ResourceNotFoundException",
        409 => "ConflictException",
        413 => "RequestEntityTooLargeException",
        429 => "ThrottlingException",
        _ => "InternalFailureException",
    };
    aws_error(e.code, error_type, &e.message)
}

#[derive(serde::Deserialize)]
struct ShadowQuery {
    name: Option<String>,
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

/// GetThingShadow, UpdateThingShadow and DeleteThingShadow.
async fn thing_shadow(
    api: web::Data<Api>,
    req: HttpRequest,
    thing: web::Path<String>,
    query: web::Query<ShadowQuery>,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(refused) = authenticate(&api, &req, &body, "iotdata") {
        return *refused;
    }
    let op = match *req.method() {
        actix_web::http::Method::GET => Operation::Get,
        actix_web::http::Method::POST => Operation::Update,
        _ => Operation::Delete,
    };
    let shadow = query.name.as_deref();
    if !valid_name(&thing, MAX_THING_NAME) || shadow.is_some_and(|s| !valid_name(s, MAX_SHADOW_NAME)) {
        return aws_error(400, "InvalidRequestException", "Invalid thing or shadow name");
    }
    let request = ShadowRequest { thing: &thing, shadow, op };
    let payload: &[u8] = if op == Operation::Update { &body } else { b"" };
    match api.broker.shadows.apply(&api.broker, &request, payload, now_ms() / 1000) {
        Ok(doc) => HttpResponse::Ok().content_type("application/json").body(doc.to_string()),
        Err(e) => shadow_error(&e),
    }
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
) -> HttpResponse {
    if let Err(refused) = authenticate(&api, &req, &body, "iotdata") {
        return *refused;
    }
    let names = match api.broker.shadows.named_shadows(&api.broker, &thing) {
        Ok(n) => n,
        Err(e) => return shadow_error(&e),
    };
    let page = query.page_size.unwrap_or(25).clamp(1, 100);
    // The token is the last name of the previous page.
    let start = query.next_token.as_deref().map_or(0, |after| names.partition_point(|n| n.as_str() <= after));
    let results: Vec<&String> = names[start..].iter().take(page).collect();
    let mut doc = json!({ "results": results, "timestamp": now_ms() / 1000 });
    if start + page < names.len() {
        doc["nextToken"] = json!(results.last());
    }
    HttpResponse::Ok().json(doc)
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

/// Starts the HTTP server on an already-bound listener.
pub fn serve(
    listener: std::net::TcpListener,
    broker: Arc<Broker>,
    credentials: Credentials,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(broker.clone());
    let api = web::Data::new(Api { broker, credentials });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(api.clone())
            .app_data(web::PayloadConfig::new(256 * 1024))
            .route("/health", web::get().to(health))
            .route("/metrics", web::get().to(metrics))
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
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}
