//! What a rule sees besides its SQL: the message (topic, payload parsed at most once), the
//! connection facts that context functions read, and the `Host` that answers lookups
//! (shadows, registry, HTTP functions, secrets) which the node implements.

use std::cell::OnceCell;

use crate::projection::{parse_projected, Projection};
use crate::value::{parse_json, Value};

/// A message payload as raw bytes, parsed as JSON the first time a rule needs it and shared by
/// every rule that runs on the message.
#[derive(Debug)]
pub struct Payload<'a> {
    raw: &'a [u8],
    parsed: OnceCell<Value>,
    projection: Option<&'a Projection>,
}

impl<'a> Payload<'a> {
    /// Wraps raw payload bytes; nothing is parsed yet.
    pub fn new(raw: &'a [u8]) -> Payload<'a> {
        Payload { raw, parsed: OnceCell::new(), projection: None }
    }

    /// Wraps raw payload bytes that will be parsed keeping only the projected top-level
    /// members (the whole text is still validated, so a non-JSON payload is still Binary).
    /// Only rules whose [`Statement::projection`](crate::Statement::projection) is covered by
    /// it may read this payload. `None` parses everything.
    pub fn with_projection(raw: &'a [u8], projection: Option<&'a Projection>) -> Payload<'a> {
        Payload { raw, parsed: OnceCell::new(), projection }
    }

    /// The bytes as published.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The payload as the dialect sees it: the JSON value, or `Binary` when it is not JSON.
    pub fn document(&self) -> &Value {
        self.parsed.get_or_init(|| {
            let parsed = match self.projection {
                Some(p) => parse_projected(self.raw, p),
                None => parse_json(self.raw),
            };
            parsed.unwrap_or_else(|_| Value::Binary(self.raw.to_vec()))
        })
    }

    /// Whether the payload is JSON (so attribute reads can find anything).
    pub fn is_json(&self) -> bool {
        !matches!(self.document(), Value::Binary(_))
    }
}

/// The protocol a message arrived over; `clientid()` and `traceid()` depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// MQTT (any version, over TCP, TLS or WebSocket).
    #[default]
    Mqtt,
    /// The HTTP Publish API.
    Http,
}

/// MQTT 5 properties of the message, for `get_mqtt_property` and `get_user_properties`.
#[derive(Debug, Clone, Default)]
pub struct MqttProperties {
    /// Payload format indicator: `Some(true)` for UTF-8 data.
    pub payload_format_utf8: Option<bool>,
    /// Content type.
    pub content_type: Option<String>,
    /// Response topic.
    pub response_topic: Option<String>,
    /// Correlation data.
    pub correlation_data: Option<Vec<u8>>,
    /// User properties in order (a key may repeat).
    pub user_properties: Vec<(String, String)>,
}

/// The account id rules see in `accountid()` until accounts exist.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// Everything about one message that a rule can read.
#[derive(Debug)]
pub struct MessageContext<'a> {
    /// The topic as `topic()` sees it (Basic Ingest prefix already removed).
    pub topic: &'a str,
    /// The payload.
    pub payload: &'a Payload<'a>,
    /// The publishing client's id, when it came over MQTT.
    pub client_id: Option<&'a str>,
    /// The authenticated principal (certificate id, user).
    pub principal: Option<&'a str>,
    /// The MQTT trace id.
    pub trace_id: Option<&'a str>,
    /// The publisher's IP address.
    pub source_ip: Option<&'a str>,
    /// The account that owns the rule.
    pub account_id: &'a str,
    /// When the rules engine saw the message, epoch milliseconds.
    pub timestamp_ms: i64,
    /// How it arrived.
    pub protocol: Protocol,
    /// Its MQTT 5 properties.
    pub properties: &'a MqttProperties,
}

impl<'a> MessageContext<'a> {
    /// A message published over MQTT to `topic` with nothing else known: no client id,
    /// principal, trace id or source address, the default account, timestamp 0. Callers that
    /// know more set the fields with struct update syntax.
    pub fn new(topic: &'a str, payload: &'a Payload<'a>, properties: &'a MqttProperties) -> MessageContext<'a> {
        MessageContext {
            topic,
            payload,
            client_id: None,
            principal: None,
            trace_id: None,
            source_ip: None,
            account_id: DEFAULT_ACCOUNT_ID,
            timestamp_ms: 0,
            protocol: Protocol::Mqtt,
            properties,
        }
    }
}

/// A secret from the local secrets store.
#[derive(Debug, Clone)]
pub enum Secret {
    /// Text (often JSON).
    String(String),
    /// Bytes.
    Binary(Vec<u8>),
}

/// Lookups that leave the rule: the node implements these against its own state. An `Err` makes
/// the rule's evaluation fail (its error action runs); `Ok(None)` means "not found" (Undefined).
pub trait Host {
    /// `get_thing_shadow(thing, [shadow])`: the shadow document.
    fn thing_shadow(&self, thing: &str, shadow: Option<&str>) -> Result<Option<Value>, String>;
    /// `get_registry_data('DescribeThing' | 'ListThingGroupsForThing', thing)`.
    fn registry_data(&self, api: &str, thing: &str) -> Result<Option<Value>, String>;
    /// `aws_lambda(function, input)`: calls an HTTP function with the input and returns its JSON.
    fn call_function(&self, function: &str, input: &Value) -> Result<Value, String>;
    /// `get_secret(id, ...)`: a secret by id.
    fn secret(&self, id: &str) -> Result<Option<Secret>, String>;
}

/// A host with nothing in it: every lookup fails with a message saying so. The CLI and the test
/// corpus use it.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHost;

impl Host for NoHost {
    fn thing_shadow(&self, thing: &str, _: Option<&str>) -> Result<Option<Value>, String> {
        Err(format!("no shadow store is available here (asked for thing `{thing}`)"))
    }
    fn registry_data(&self, _: &str, thing: &str) -> Result<Option<Value>, String> {
        Err(format!("no registry is available here (asked for thing `{thing}`)"))
    }
    fn call_function(&self, function: &str, _: &Value) -> Result<Value, String> {
        Err(format!("no functions can be called here (asked for `{function}`)"))
    }
    fn secret(&self, id: &str) -> Result<Option<Secret>, String> {
        Err(format!("no secrets store is available here (asked for `{id}`)"))
    }
}
