//! The web console (`/console/`): its files, built into the binary from `node/console/`, and
//! what the page needs that no AWS operation gives: the node's endpoints (`config.json`)
//! and the CA devices trust (`ca.pem`). Everything else the console does goes through the
//! same signed API operations as the CLI, signed in the browser.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::Api;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

/// The content type of a console file, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "text/plain; charset=utf-8",
    }
}

/// One embedded file, or `None`.
fn asset(path: &str) -> Option<&'static [u8]> {
    assets::ASSETS.iter().find(|(name, _)| *name == path).map(|(_, bytes)| *bytes)
}

/// What the page may load and run: its own files only, WebSockets to the node's listeners,
/// and never inside another site's frame (the console acts with the signed-in key).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

fn serve(path: &str) -> HttpResponse {
    match asset(path) {
        Some(bytes) => HttpResponse::Ok()
            .content_type(content_type(path))
            // The files change only with the binary; a page reload after an upgrade refetches.
            .insert_header(("Cache-Control", "no-cache"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
            .insert_header(("X-Frame-Options", "DENY"))
            .insert_header(("Referrer-Policy", "no-referrer"))
            .body(bytes),
        None => HttpResponse::NotFound().content_type("text/plain").body(format!("no console file {path:?}")),
    }
}

/// `GET /console` and `GET /console/`: the page.
pub(super) async fn index(req: HttpRequest) -> HttpResponse {
    if req.path() == "/console" {
        return HttpResponse::MovedPermanently().insert_header(("Location", "/console/")).finish();
    }
    serve("index.html")
}

/// `GET /console/{path}`: one of the console's files.
pub(super) async fn file(path: web::Path<String>) -> HttpResponse {
    serve(path.as_str())
}

/// Where the node's listeners are, for the page: ports as bound (port 0 chose one).
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    pub mqtt: u16,
    pub ws: u16,
    pub http: u16,
    pub mqtts: u16,
    pub wss: u16,
    pub https: u16,
}

/// `GET /console/config.json`: version, region, account and the node's endpoints under the
/// host name the browser used.
pub(super) async fn config(api: web::Data<Api>, req: HttpRequest) -> HttpResponse {
    let host = super::request_host(&req);
    let e = api.endpoints;
    let at = |port: u16| format!("{host}:{port}");
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "region": api.services.broker.config.region,
        "accountId": crate::registry::account_id(),
        "endpoints": {
            "mqtt": at(e.mqtt), "ws": at(e.ws), "http": at(e.http),
            "mqtts": at(e.mqtts), "wss": at(e.wss), "https": at(e.https),
        },
    }))
}

/// `GET /console/ca.pem`: the CA that signs device certificates (and, by default, the node's
/// server certificate): what a device must trust.
pub(super) async fn ca(api: web::Data<Api>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .insert_header(("Content-Disposition", "attachment; filename=\"ca.pem\""))
        .body(api.issuer.ca_pem.clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_is_embedded_and_typed() {
        assert!(super::asset("index.html").is_some_and(|b| b.starts_with(b"<!doctype html>")));
        assert_eq!(super::content_type("app.js"), "text/javascript; charset=utf-8");
        assert!(super::asset("../Cargo.toml").is_none());
    }
}
