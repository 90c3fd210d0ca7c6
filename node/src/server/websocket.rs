//! MQTT over WebSocket: the HTTP upgrade on `/mqtt`, then a bridge that turns binary
//! WebSocket messages into the byte stream the connection actor reads.

use std::sync::Arc;

use ferrite_mqtt::websocket;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::connection::Connection;
use super::Origin;
use crate::services::Services;

/// How long a client has to finish the WebSocket upgrade (as long as it has for CONNECT).
const UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Upgrades one accepted socket and runs its MQTT connection.
pub async fn accept<S>(stream: S, mut origin: Origin, services: Arc<Services>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let peer = origin.peer;
    let config = websocket::config(services.broker.config.max_packet_size());
    let upgrade = Arc::new(parking_lot::Mutex::new(None::<Upgrade>));
    let seen = upgrade.clone();
    // The error type is tungstenite's callback contract, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let check = move |req: &Request, resp: Response| {
        *seen.lock() = Some(Upgrade::of(req));
        websocket::check_upgrade(req, resp)
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config));
    let ws = match tokio::time::timeout(UPGRADE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "websocket handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(peer = %peer, "no websocket upgrade in time, closing");
            return;
        }
    };
    if let Some(upgrade) = upgrade.lock().take() {
        origin.presigned = upgrade.presigned_key(&services);
    }
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (actor_side, bridge_side) = tokio::io::duplex(64 * 1024);
    let (actor_r, actor_w) = tokio::io::split(actor_side);
    Connection::start(services, actor_r, actor_w, origin);
    let (mut bridge_r, mut bridge_w) = tokio::io::split(bridge_side);
    let inbound = async move {
        while let Some(msg) = ws_rx.next().await {
            match msg {
                Ok(WsMessage::Binary(data)) => {
                    if bridge_w.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Ok(WsMessage::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = bridge_w.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match bridge_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws_tx.send(WsMessage::Binary(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = ws_tx.close().await;
    };
    tokio::pin!(inbound);
    tokio::pin!(outbound);
    tokio::select! {
        // The connection ended (closed, or no CONNECT in time): stop reading the client.
        _ = &mut outbound => {}
        // The client ended: let the connection finish writing.
        _ = &mut inbound => outbound.await,
    }
}

/// What SigV4 covers of the upgrade request, kept for checking a presigned URL once the
/// handshake is done.
struct Upgrade {
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

/// The SigV4 service the AWS SDKs presign the `/mqtt` upgrade for.
const DEVICE_GATEWAY: &str = "iotdevicegateway";

impl Upgrade {
    fn of(req: &Request) -> Upgrade {
        let headers = req.headers().iter().map(|(k, v)| (k.as_str(), v.as_bytes()));
        Upgrade {
            path: req.uri().path().to_string(),
            query: req.uri().query().unwrap_or("").to_string(),
            headers: ferrite_aws::sigv4::header_list(headers),
        }
    }

    /// For an upgrade presigned with SigV4 (AWS's `websockets_with_default_aws_signing`):
    /// the access key that signed it, or why the signature is refused. `None` for an
    /// upgrade that is not presigned.
    fn presigned_key(&self, services: &Services) -> Option<Result<String, String>> {
        let signature = format!("{}=", ferrite_aws::sigv4::PRESIGNED_SIGNATURE);
        if !self.query.split('&').any(|p| p.starts_with(&signature)) {
            return None;
        }
        let req = ferrite_aws::sigv4::Request {
            method: "GET",
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: b"",
        };
        let now = (crate::broker::message::now_ms() / 1000) as i64;
        let keys = &services.meta.state().access_keys;
        let verified =
            ferrite_aws::sigv4::verify_presigned(&req, &[DEVICE_GATEWAY], now, |key| match keys.lookup(key) {
                crate::access_keys::Lookup::Valid(secret) => Some(secret),
                _ => None,
            });
        Some(
            verified
                .map(|signer| signer.access_key)
                .map_err(|e| format!("the presigned URL is refused: {}", e.message)),
        )
    }
}
