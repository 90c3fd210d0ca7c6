//! The HTTP listener (actix-web): `/health` for load balancers and `/metrics` for
//! Prometheus. The AWS-compatible API joins it in a later issue.

use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};

use crate::broker::Broker;

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
pub fn serve(listener: std::net::TcpListener, broker: Arc<Broker>) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(broker);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/health", web::get().to(health))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}
