//! The HTTP listener (actix-web): `/health` for load balancers, `/metrics` for Prometheus,
//! and the AWS-compatible API. `routes` lists every operation with its method; each
//! handler is one AWS operation, in the module of its resource, and starts from a
//! [`call::Call`], which has verified the SigV4 signature before anything else is looked
//! at. Every refusal is an [`error::AwsError`]. Handlers are thin: changes become commands
//! proposed to the group that owns the state (`proposals`), reads use applied state.

mod authorizers;
mod backup;
mod call;
mod certificates;
mod cluster;
pub mod console;
mod data_plane;
mod error;
mod fleet_index;
mod fleet_metrics;
mod jobs;
mod jobs_data;
mod logging;
mod paging;
mod policies;
mod proposals;
mod provisioning;
mod registration_tasks;
mod routes;
mod tags;
mod thing_groups;
mod thing_types;
mod things;
mod topic_rules;

use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use crate::credentials::Credentials;
use crate::services::Services;
use ferrite_aws::AwsError;

/// What the API handlers share.
struct Api {
    services: Arc<Services>,
    credentials: Credentials,
    /// Signs the certificates CreateKeysAndCertificate and CreateCertificateFromCsr create.
    issuer: std::sync::Arc<crate::identity::tls::CertIssuer>,
    /// The node's listeners, for the console.
    endpoints: console::Endpoints,
}

async fn health(api: web::Data<Api>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "sessions": api.services.broker.session_count(),
        "connections": api.services.broker.metrics.connections_open.get(),
    }))
}

async fn metrics(api: web::Data<Api>) -> HttpResponse {
    let mut certificates = String::new();
    let cas = api.services.meta.state().identity.ca_certificates();
    crate::certificate_metrics::render(
        &mut certificates,
        cas.into_iter().map(|c| (c.registration.certificate_id, c.registration.not_after)),
    );
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(
        api.services.broker.metrics.render()
            + &api.services.rules.render_metrics()
            + &api.services.render_cluster_metrics()
            + &api.services.fleet.render()
            + &certificates,
    )
}

/// True for API routes (not the health, metrics and cluster-status endpoints).
fn is_api_path(path: &str) -> bool {
    !matches!(path, "/health" | "/ready" | "/metrics" | "/cluster/status" | "/console")
        && !path.starts_with("/console/")
}

/// The host name the client used to reach this node (the Host header without its port):
/// where devices and the console reach the node's other listeners.
fn request_host(req: &actix_web::HttpRequest) -> String {
    let host = req.connection_info().host().to_string();
    match host.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h.to_string(),
        _ => host,
    }
}

/// `GET /stats/history` (signed): the last hour of connections and PUBLISH counts, for the
/// console's chart.
async fn stats_history(api: web::Data<Api>, _call: call::Call) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "intervalSeconds": crate::stats_history::INTERVAL.as_secs(),
        "samples": api.services.history.samples(),
    }))
}

/// Starts the HTTP server on an already-bound listener.
pub fn serve(
    listener: std::net::TcpListener,
    services: Arc<Services>,
    credentials: Credentials,
    issuer: std::sync::Arc<crate::identity::tls::CertIssuer>,
    endpoints: console::Endpoints,
) -> std::io::Result<actix_web::dev::Server> {
    let barrier = services.meta.clone();
    let api = web::Data::new(Api { services, credentials, issuer, endpoints });
    Ok(HttpServer::new(move || {
        let barrier = barrier.clone();
        App::new()
            .wrap_fn(move |req, srv| {
                use actix_web::dev::Service as _;
                // A read on any member sees every change acknowledged before it, on any member:
                // wait until this node has applied what the meta leader had committed.
                let wait = (req.method() == actix_web::http::Method::GET && is_api_path(req.path()))
                    .then(|| barrier.read(|_| ()));
                let call = srv.call(req);
                async move {
                    if let Some(wait) = wait {
                        if let Err(e) = wait.await {
                            tracing::warn!(error = %e, "a read could not catch up with the meta group");
                            return Err(AwsError::new(
                                503,
                                "ServiceUnavailableException",
                                "this node cannot reach a majority of the cluster; try another node",
                            )
                            .into());
                        }
                    }
                    call.await
                }
            })
            .wrap_fn({
                let metrics = api.services.broker.metrics.clone();
                move |req, srv| {
                    use actix_web::dev::Service as _;
                    let started = std::time::Instant::now();
                    let labels = format!(
                        "method=\"{}\",route=\"{}\"",
                        req.method(),
                        req.match_pattern().unwrap_or_else(|| "unknown".into())
                    );
                    let call = srv.call(req);
                    let metrics = metrics.clone();
                    async move {
                        let answer = call.await;
                        metrics.api_request_duration_seconds.observe(&labels, started.elapsed());
                        answer
                    }
                }
            })
            .app_data(api.clone())
            .configure(routes::configure)
            .default_service(web::to(error::unknown_operation))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}
