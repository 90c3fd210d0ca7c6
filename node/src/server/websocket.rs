//! MQTT over WebSocket: the HTTP upgrade on `/mqtt`, then a bridge that turns binary
//! WebSocket messages into the byte stream the connection actor reads.

use std::sync::Arc;

use ferrite_mqtt::websocket;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::connection::Connection;
use super::Origin;
use crate::services::Services;

/// How long a client has to finish the WebSocket upgrade (as long as it has for CONNECT).
const UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Upgrades one accepted socket and runs its MQTT connection.
pub async fn accept<S>(stream: S, origin: Origin, services: Arc<Services>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let peer = origin.peer;
    let config = websocket::config(services.broker.config.max_packet_size());
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, websocket::check_upgrade, Some(config));
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
