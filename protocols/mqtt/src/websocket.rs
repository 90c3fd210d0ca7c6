//! MQTT over WebSocket (feature `websocket`): which HTTP upgrades are accepted (path `/mqtt`,
//! subprotocol `mqtt` or `mqttv3.1` echoed back) and how large a frame or message may be.
//! The node's listener and the WebSocket fuzz target share these, so the target exercises
//! the node's real rules.

use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::{HeaderValue, StatusCode};
use tungstenite::protocol::WebSocketConfig;

/// Only this path is upgraded; other paths get 404.
pub const PATH: &str = "/mqtt";

/// Bytes a WebSocket frame may add around the largest MQTT packet.
const FRAMING_SLACK: usize = 64;

/// Accepts an upgrade on [`PATH`], choosing the MQTT subprotocol the client offered;
/// anything else is answered 404 with the path to use.
#[allow(clippy::result_large_err)] // the signature tungstenite's handshake callback requires
pub fn check_upgrade(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    if req.uri().path() != PATH {
        let mut e = ErrorResponse::new(Some(format!("MQTT over WebSocket is served on {PATH}\n")));
        *e.status_mut() = StatusCode::NOT_FOUND;
        return Err(e);
    }
    let offered = req.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or("");
    let offers = |name: &str| offered.split(',').any(|p| p.trim() == name);
    let chosen = if offers("mqtt") {
        Some("mqtt")
    } else if offers("mqttv3.1") {
        Some("mqttv3.1")
    } else {
        None
    };
    if let Some(chosen) = chosen {
        resp.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(chosen));
    }
    Ok(resp)
}

/// No frame or message larger than the largest MQTT packet a client may send (tungstenite's
/// defaults would buffer 64 MiB per connection, before CONNECT).
pub fn config(max_packet_size: usize) -> WebSocketConfig {
    let max = max_packet_size.saturating_add(FRAMING_SLACK);
    WebSocketConfig { max_message_size: Some(max), max_frame_size: Some(max), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade(path: &str, protocols: Option<&str>) -> Request {
        let mut b = Request::builder().uri(path);
        if let Some(p) = protocols {
            b = b.header("sec-websocket-protocol", p);
        }
        b.body(()).expect("valid request")
    }

    #[test]
    fn mqtt_is_preferred_and_echoed() {
        let resp = check_upgrade(&upgrade("/mqtt", Some("mqttv3.1, mqtt")), Response::default()).expect("accepted");
        assert_eq!(resp.headers()["sec-websocket-protocol"], "mqtt");
        let resp = check_upgrade(&upgrade("/mqtt", Some("mqttv3.1")), Response::default()).expect("accepted");
        assert_eq!(resp.headers()["sec-websocket-protocol"], "mqttv3.1");
        let resp = check_upgrade(&upgrade("/mqtt", None), Response::default()).expect("accepted");
        assert!(resp.headers().get("sec-websocket-protocol").is_none());
    }

    #[test]
    fn other_paths_get_404() {
        let e = check_upgrade(&upgrade("/", Some("mqtt")), Response::default()).unwrap_err();
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn frames_are_capped_near_the_largest_packet() {
        let c = config(128 * 1024);
        assert_eq!(c.max_message_size, Some(128 * 1024 + FRAMING_SLACK));
        assert_eq!(c.max_frame_size, Some(128 * 1024 + FRAMING_SLACK));
        assert_eq!(config(usize::MAX).max_frame_size, Some(usize::MAX));
    }
}
