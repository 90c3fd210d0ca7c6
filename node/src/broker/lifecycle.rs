//! AWS IoT lifecycle events: the documents the node publishes on
//! `$aws/events/presence/{connected,disconnected}/{clientId}` and
//! `$aws/events/subscriptions/{subscribed,unsubscribed}/{clientId}`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

/// Why a connection ended, in AWS's `disconnectReason` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client sent DISCONNECT.
    ClientInitiated,
    /// The client broke the protocol (malformed packet, second CONNECT, oversized publish).
    ClientError,
    /// The socket closed or failed without a DISCONNECT.
    ConnectionLost,
    /// Another connection took over the client id.
    DuplicateClientId,
    /// No packet within 1.5 times the keep-alive.
    KeepAliveTimeout,
    /// The node failed (storage).
    ServerError,
    /// The node is shutting down.
    ServerInitiated,
    /// The client's credentials stopped being valid (certificate revoked or deactivated) or
    /// it did something its policy does not allow.
    AuthError,
}

impl DisconnectReason {
    /// AWS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ClientInitiated => "CLIENT_INITIATED_DISCONNECT",
            DisconnectReason::ClientError => "CLIENT_ERROR",
            DisconnectReason::ConnectionLost => "CONNECTION_LOST",
            DisconnectReason::DuplicateClientId => "DUPLICATE_CLIENTID",
            DisconnectReason::KeepAliveTimeout => "MQTT_KEEP_ALIVE_TIMEOUT",
            DisconnectReason::ServerError => "SERVER_ERROR",
            DisconnectReason::ServerInitiated => "SERVER_INITIATED_DISCONNECT",
            DisconnectReason::AuthError => "AUTH_ERROR",
        }
    }
}

/// The principal events name for clients of anonymous listeners.
pub const ANONYMOUS_PRINCIPAL: &str = "anonymous";

/// Orders a client's presence events: increases with every event, across restarts too (it
/// starts from the wall clock in milliseconds).
#[derive(Debug)]
pub struct VersionCounter(AtomicU64);

impl VersionCounter {
    /// A counter starting at `start`.
    pub fn starting_at(start: u64) -> VersionCounter {
        VersionCounter(AtomicU64::new(start))
    }

    /// The next version number.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Client ids with `#` or `+` get no lifecycle events (they cannot be topic levels).
pub fn has_events(client_id: &str) -> bool {
    !client_id.contains(['#', '+'])
}

/// What happened to a connection, for [`presence`].
pub enum Presence<'a> {
    /// The client connected from this address.
    Connected {
        /// The peer's IP address.
        ip: &'a str,
    },
    /// The client's connection ended.
    Disconnected(DisconnectReason),
}

/// The topic and document of a presence event.
pub fn presence(
    client_id: &str,
    session_id: &str,
    principal: &str,
    event: Presence<'_>,
    timestamp_ms: u64,
    version: u64,
) -> (String, Value) {
    let mut doc = json!({
        "clientId": client_id,
        "timestamp": timestamp_ms,
        "sessionIdentifier": session_id,
        "principalIdentifier": principal,
        "versionNumber": version,
    });
    let kind = match event {
        Presence::Connected { ip } => {
            doc["eventType"] = json!("connected");
            doc["ipAddress"] = json!(ip);
            "connected"
        }
        Presence::Disconnected(reason) => {
            doc["eventType"] = json!("disconnected");
            doc["clientInitiatedDisconnect"] = json!(reason == DisconnectReason::ClientInitiated);
            doc["disconnectReason"] = json!(reason.as_str());
            "disconnected"
        }
    };
    (format!("$aws/events/presence/{kind}/{client_id}"), doc)
}

/// The topic and document of a subscribed (or unsubscribed) event.
pub fn subscriptions(
    client_id: &str,
    session_id: &str,
    principal: &str,
    subscribed: bool,
    topics: &[String],
    timestamp_ms: u64,
) -> (String, Value) {
    let kind = if subscribed { "subscribed" } else { "unsubscribed" };
    let doc = json!({
        "clientId": client_id,
        "timestamp": timestamp_ms,
        "eventType": kind,
        "sessionIdentifier": session_id,
        "principalIdentifier": principal,
        "topics": topics,
    });
    (format!("$aws/events/subscriptions/{kind}/{client_id}"), doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnected_documents_name_the_reason_and_who_initiated() {
        let (topic, doc) =
            presence("dev-1", "s1", "anonymous", Presence::Disconnected(DisconnectReason::ClientInitiated), 5, 9);
        assert_eq!(topic, "$aws/events/presence/disconnected/dev-1");
        assert_eq!(
            doc,
            json!({"clientId": "dev-1", "timestamp": 5, "eventType": "disconnected", "sessionIdentifier": "s1",
                   "principalIdentifier": "anonymous", "clientInitiatedDisconnect": true,
                   "disconnectReason": "CLIENT_INITIATED_DISCONNECT", "versionNumber": 9})
        );
        let (_, doc) =
            presence("d", "s", "anonymous", Presence::Disconnected(DisconnectReason::KeepAliveTimeout), 5, 9);
        assert_eq!(doc["clientInitiatedDisconnect"], json!(false));
        assert_eq!(doc["disconnectReason"], json!("MQTT_KEEP_ALIVE_TIMEOUT"));
    }

    #[test]
    fn connected_and_subscription_documents_follow_aws() {
        let (topic, doc) = presence("d", "s", "anonymous", Presence::Connected { ip: "127.0.0.1" }, 1, 2);
        assert_eq!(topic, "$aws/events/presence/connected/d");
        assert_eq!(doc["ipAddress"], json!("127.0.0.1"));
        assert_eq!(doc["eventType"], json!("connected"));
        let (topic, doc) = subscriptions("d", "s", "cert-1", false, &["a/b".to_string()], 3);
        assert_eq!(topic, "$aws/events/subscriptions/unsubscribed/d");
        assert_eq!(doc["topics"], json!(["a/b"]));
        assert_eq!(doc["principalIdentifier"], json!("cert-1"));
        assert!(!has_events("a+b") && !has_events("a#") && has_events("dev-1"));
    }
}
