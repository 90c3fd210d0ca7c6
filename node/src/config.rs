//! Node configuration: built-in defaults, an optional TOML file, then command-line
//! flags, in increasing precedence. Every flag has a key in the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

use crate::broker::BrokerConfig;

/// The `[limits]` table: AWS IoT Core's quotas by default.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_payload_bytes: Option<usize>,
    pub max_client_id_bytes: Option<usize>,
    pub max_topic_bytes: Option<usize>,
    pub max_topic_slashes: Option<usize>,
    pub max_subscriptions_per_connection: Option<usize>,
    pub max_inflight: Option<usize>,
    pub max_queued_messages: Option<usize>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub default_session_expiry_secs: Option<u32>,
    pub max_session_expiry_secs: Option<u32>,
    pub max_keep_alive_secs: Option<u16>,
    pub min_keep_alive_secs: Option<u16>,
    pub max_outbound_bytes: Option<usize>,
    pub stalled_client_timeout_secs: Option<u64>,
    pub shadow_requests_per_second_per_thing: Option<u32>,
    pub thing_type_deletion_wait_secs: Option<u64>,
    /// `[limits.max_connections]`: the most sockets each device listener holds.
    #[serde(default)]
    pub max_connections: ListenerConnections,
}

/// The `[limits.max_connections]` table: a cap per device listener (unset: bounded only by
/// the listener's fair share of the node's open-files limit).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListenerConnections {
    pub mqtt: Option<usize>,
    pub ws: Option<usize>,
    pub mqtts: Option<usize>,
    pub wss: Option<usize>,
    pub https: Option<usize>,
}

impl ListenerConnections {
    /// The caps in the order of `server::admission::LISTENERS`.
    pub fn caps(&self) -> [Option<usize>; 5] {
        [self.mqtt, self.ws, self.mqtts, self.wss, self.https]
    }
}

/// The `[auth]` table: how each listener authenticates its clients.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// Let clients on the plain MQTT and WebSocket listeners connect without credentials and
    /// do anything, even when those listeners are not on loopback. Without it, anonymous
    /// access exists only on loopback listeners.
    pub allow_anonymous: Option<bool>,
    /// Methods of the plain MQTT listener (default `["anonymous"]`).
    pub mqtt: Option<Vec<String>>,
    /// Methods of the plain WebSocket listener (default `["anonymous"]`).
    pub ws: Option<Vec<String>>,
    /// Methods of the MQTT-over-TLS listener (default `["certificate", "custom"]`).
    pub mqtts: Option<Vec<String>>,
    /// Methods of the secure WebSocket listener (default `["certificate", "custom"]`).
    pub wss: Option<Vec<String>>,
    /// Methods of MQTT on the HTTPS port (default `["certificate", "custom"]`).
    pub https: Option<Vec<String>>,
    /// JWT authentication settings (needed by listeners with the `jwt` method).
    pub jwt: Option<JwtFile>,
}

/// The `[auth.jwt]` table: tokens signed by keys in a JWKS file, sent as the MQTT password.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    /// The JWKS file with the public keys tokens are signed with.
    pub jwks_file: PathBuf,
    /// The `iss` a token must carry, if set.
    pub issuer: Option<String>,
    /// The `aud` a token must name, if set.
    pub audience: Option<String>,
    /// The claim that must equal the MQTT client id (default `sub`; `""` turns the check off).
    pub client_id_claim: Option<String>,
    /// The IoT policies (by name) that JWT-authenticated clients get.
    #[serde(default)]
    pub policies: Vec<String>,
    /// The claim that lists more policy names for the client, if set.
    pub policies_claim: Option<String>,
    /// Seconds of clock skew allowed for `exp` and `nbf` (default 30).
    pub leeway_secs: Option<u64>,
}

/// The TOML configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub data_dir: Option<PathBuf>,
    /// Listen addresses: `HOST:PORT`, HOST an IP address or a host name (resolved at start).
    pub mqtt_addr: Option<String>,
    pub ws_addr: Option<String>,
    pub http_addr: Option<String>,
    pub mqtts_addr: Option<String>,
    pub wss_addr: Option<String>,
    pub https_addr: Option<String>,
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub log_level: Option<String>,
    /// Logs as JSON lines (`--log-json`).
    pub log_json: Option<bool>,
    pub workers: Option<usize>,
    pub rules_dir: Option<PathBuf>,
    /// Seconds a stopping node (SIGTERM) waits for deliveries and rule actions under way.
    pub shutdown_drain_secs: Option<u64>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub tls: crate::identity::tls::TlsFiles,
    #[serde(default)]
    pub auth: AuthFile,
    #[serde(default)]
    pub cluster: crate::cluster::ClusterFile,
    #[serde(default)]
    pub jobs: JobsFile,
    #[serde(default)]
    pub provisioning: ProvisioningFile,
}

/// The `[provisioning]` table.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningFile {
    /// How long a certificate ownership token from the provisioning MQTT API stays valid,
    /// in seconds (default 3600).
    pub ownership_token_secs: Option<u64>,
}

/// The `[jobs]` table.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JobsFile {
    /// How long a jobs "minute" is, in ms (timeouts, rollout rates): 60000 but in tests and
    /// demos, which shorten it to watch a rollout or a timeout in seconds.
    pub minute_ms: Option<u64>,
}

impl ConfigFile {
    /// Parses a config file's text (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<ConfigFile> {
        toml::from_str(text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// Everything `ferrite serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub mqtt_addr: SocketAddr,
    pub ws_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// MQTT over TLS (client certificates).
    pub mqtts_addr: SocketAddr,
    /// MQTT over secure WebSocket, path /mqtt.
    pub wss_addr: SocketAddr,
    /// HTTPS for the API, and MQTT for clients that negotiate ALPN `x-amzn-mqtt-ca`.
    pub https_addr: SocketAddr,
    /// Server certificate and issuing CA files (generated when absent).
    pub tls: crate::identity::tls::TlsFiles,
    /// Anonymous access on plain listeners even off loopback.
    pub allow_anonymous: bool,
    /// The `[auth]` table as given.
    pub auth: AuthFile,
    /// The account id in ARNs, when configured.
    pub account_id: Option<String>,
    pub log_level: String,
    /// Logs as JSON lines.
    pub log_json: bool,
    pub workers: usize,
    /// Directory of `.sql` rule files, watched for changes (None: no rules).
    pub rules_dir: Option<PathBuf>,
    pub broker: BrokerConfig,
    /// Per device listener, the most sockets it may hold (order of `server::admission::LISTENERS`).
    pub max_connections: [Option<usize>; 5],
    /// How long a stopping node waits for deliveries and rule actions under way.
    pub shutdown_drain: std::time::Duration,
    /// Cluster membership (None: the node runs alone).
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// How long a jobs minute is, in ms (`[jobs] minute_ms`).
    pub jobs_minute_ms: u64,
    /// How long a certificate ownership token stays valid, in seconds
    /// (`[provisioning] ownership_token_secs`).
    pub ownership_token_secs: u64,
}

impl NodeConfig {
    /// Applies the `[limits]` table over the defaults.
    pub fn apply_limits(broker: &mut BrokerConfig, l: &LimitsFile) {
        if let Some(v) = l.max_payload_bytes {
            broker.max_payload = v;
        }
        if let Some(v) = l.max_client_id_bytes {
            broker.max_client_id_len = v;
        }
        if let Some(v) = l.max_topic_bytes {
            broker.topic_limits.max_bytes = v;
        }
        if let Some(v) = l.max_topic_slashes {
            broker.topic_limits.max_slashes = v;
        }
        if let Some(v) = l.max_subscriptions_per_connection {
            broker.max_subscriptions = v;
        }
        if let Some(v) = l.max_inflight {
            broker.max_inflight = v;
        }
        if let Some(v) = l.max_queued_messages {
            broker.max_queued = v;
        }
        if let Some(v) = l.receive_maximum {
            broker.receive_maximum = v.max(1);
        }
        if let Some(v) = l.topic_alias_maximum {
            broker.topic_alias_maximum = v;
        }
        if let Some(v) = l.default_session_expiry_secs {
            broker.default_session_expiry = v;
        }
        if let Some(v) = l.max_session_expiry_secs {
            broker.max_session_expiry = v;
        }
        if let Some(v) = l.max_keep_alive_secs {
            broker.max_keep_alive = v;
        }
        if let Some(v) = l.min_keep_alive_secs {
            broker.min_keep_alive = v;
        }
        if let Some(v) = l.max_outbound_bytes {
            broker.max_outbound_bytes = v;
        }
        if let Some(v) = l.stalled_client_timeout_secs {
            broker.stalled_client_timeout = std::time::Duration::from_secs(v);
        }
        if let Some(v) = l.shadow_requests_per_second_per_thing {
            broker.shadow_requests_per_second_per_thing = v;
        }
        if let Some(v) = l.thing_type_deletion_wait_secs {
            broker.thing_type_deletion_wait_secs = v;
        }
    }
}
