//! MQTT control packets as plain data, shared by MQTT 3.1.1 and 5.0.
//!
//! One representation serves both protocol versions: fields that only exist in 5.0
//! (properties, reason codes on acknowledgements) are simply left at their defaults
//! when a 3.1.1 peer is involved, and the codec drops them when encoding for 3.1.1.

use bytes::Bytes;

/// The protocol level byte of CONNECT; decides how every later packet is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1 (`MQIsdp`, level 3): treated like 3.1.1 on the wire after CONNECT.
    V31,
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5.0 (level 5).
    V5,
}

impl ProtocolVersion {
    /// True for MQTT 5.0, the only version with properties and reason codes everywhere.
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// Quality of service of a publish or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// At most once.
    #[default]
    AtMostOnce = 0,
    /// At least once (PUBACK).
    AtLeastOnce = 1,
    /// Exactly once (PUBREC/PUBREL/PUBCOMP).
    ExactlyOnce = 2,
}

impl QoS {
    /// Parses the two QoS bits; 3 is not a QoS.
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// MQTT 5.0 properties. One struct for every packet type keeps the codec small; the
/// codec rejects a property that is not allowed in the packet it arrives in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// 1 when the payload is UTF-8 text, 0 (or absent) for bytes.
    pub payload_format_indicator: Option<u8>,
    /// Seconds a message may wait for delivery before it is dropped.
    pub message_expiry_interval: Option<u32>,
    /// The payload's MIME type, passed through untouched.
    pub content_type: Option<String>,
    /// Where a request/response peer should publish its answer.
    pub response_topic: Option<String>,
    /// Opaque bytes that tie a response to its request.
    pub correlation_data: Option<Bytes>,
    /// May repeat in PUBLISH sent to a client (one per matching subscription).
    pub subscription_identifiers: Vec<u32>,
    /// Seconds the session outlives the connection (0: ends with it).
    pub session_expiry_interval: Option<u32>,
    /// The client id the server chose for a CONNECT with an empty one.
    pub assigned_client_identifier: Option<String>,
    /// A keep-alive the server imposes instead of the client's.
    pub server_keep_alive: Option<u16>,
    /// The extended authentication method (CONNECT, AUTH).
    pub authentication_method: Option<String>,
    /// The extended authentication method's data.
    pub authentication_data: Option<Bytes>,
    /// 0 when the client wants no reason strings or user properties on errors.
    pub request_problem_information: Option<u8>,
    /// Seconds to wait after a disconnection before publishing the will.
    pub will_delay_interval: Option<u32>,
    /// 1 when the client asks for `response_information` in CONNACK.
    pub request_response_information: Option<u8>,
    /// The basis for response topics, answered to `request_response_information`.
    pub response_information: Option<String>,
    /// Another server the client should use (with reason code 0x9C or 0x9D).
    pub server_reference: Option<String>,
    /// A human-readable reason for a reason code, for diagnostics only.
    pub reason_string: Option<String>,
    /// How many QoS 1/2 publishes the sender of this property accepts unacknowledged.
    pub receive_maximum: Option<u16>,
    /// The highest topic alias the sender of this property accepts.
    pub topic_alias_maximum: Option<u16>,
    /// A number standing in for the topic of a PUBLISH.
    pub topic_alias: Option<u16>,
    /// The highest QoS the server supports (CONNACK).
    pub maximum_qos: Option<u8>,
    /// 0 when the server does not support retained messages (CONNACK).
    pub retain_available: Option<u8>,
    /// Application name-value pairs, in order; names may repeat.
    pub user_properties: Vec<(String, String)>,
    /// The largest packet the sender of this property accepts.
    pub maximum_packet_size: Option<u32>,
    /// 0 when the server refuses wildcard filters (CONNACK).
    pub wildcard_subscription_available: Option<u8>,
    /// 0 when the server does not support subscription identifiers (CONNACK).
    pub subscription_identifiers_available: Option<u8>,
    /// 0 when the server does not support `$share` (CONNACK).
    pub shared_subscription_available: Option<u8>,
}

impl Properties {
    /// True when no property is set, so encoders can write a zero length.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }
}

/// The will message a client registers in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Where the will is published.
    pub topic: String,
    /// What is published.
    pub payload: Bytes,
    /// The QoS it is published with.
    pub qos: QoS,
    /// Whether it is published retained.
    pub retain: bool,
    /// Will properties (5.0): will delay interval, expiry, content type, ...
    pub properties: Properties,
}

/// CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol version the client speaks; every later packet is framed for it.
    pub protocol: ProtocolVersion,
    /// Clean session (3.1.1) / clean start (5.0).
    pub clean_start: bool,
    /// Seconds within which the client promises to send something (0: no limit).
    pub keep_alive: u16,
    /// CONNECT properties (5.0).
    pub properties: Properties,
    /// The client identifier; empty asks the server to assign one.
    pub client_id: String,
    /// The will message, published if the connection ends without DISCONNECT.
    pub will: Option<Will>,
    /// The user name, for authentication.
    pub username: Option<String>,
    /// The password, for authentication.
    pub password: Option<Bytes>,
}

/// CONNACK. `reason_code` is the 5.0 reason code; the codec maps it to a 3.1.1
/// return code when encoding for an older client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a stored session.
    pub session_present: bool,
    /// 0 accepts the connection; 0x80 and above refuse it.
    pub reason_code: u8,
    /// CONNACK properties (5.0): the server's limits and assignments.
    pub properties: Properties,
}

/// PUBLISH. `topic` may be empty when a 5.0 topic alias stands in for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Set on a redelivery of a QoS 1/2 publish.
    pub dup: bool,
    /// The delivery guarantee of this copy.
    pub qos: QoS,
    /// Whether the server keeps it as the topic's retained message (or it was one).
    pub retain: bool,
    /// The topic name; empty when a topic alias stands in for it.
    pub topic: String,
    /// Present exactly when `qos > 0`.
    pub packet_id: Option<u16>,
    /// PUBLISH properties (5.0).
    pub properties: Properties,
    /// The application message.
    pub payload: Bytes,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The packet identifier of the publish being acknowledged.
    pub packet_id: u16,
    /// 0 = success. Only written on the wire for 5.0.
    pub reason_code: u8,
    /// Properties (5.0), e.g. a reason string.
    pub properties: Properties,
}

impl Ack {
    /// A successful acknowledgement with no properties.
    pub fn ok(packet_id: u16) -> Ack {
        Ack { packet_id, reason_code: 0, properties: Properties::default() }
    }
}

/// Per-filter options of SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    /// The maximum QoS the subscriber wants to receive.
    pub qos: QoS,
    /// Do not send the subscriber its own publishes (5.0).
    pub no_local: bool,
    /// Keep the retain flag of forwarded publishes as published (5.0).
    pub retain_as_published: bool,
    /// 0: send retained at subscribe, 1: only if the subscription is new, 2: never.
    pub retain_handling: u8,
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Identifies the request; the acknowledgement echoes it.
    pub packet_id: u16,
    /// Properties (5.0), e.g. a subscription identifier.
    pub properties: Properties,
    /// The topic filters with their options, in request order.
    pub filters: Vec<(String, SubOptions)>,
}

/// SUBACK. For 3.1.1 every reason code >= 0x80 is written as 0x80.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The packet identifier of the request it answers.
    pub packet_id: u16,
    /// Properties (5.0), e.g. a reason string.
    pub properties: Properties,
    /// One reason code per filter of the request, in order.
    pub reason_codes: Vec<u8>,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Identifies the request; the acknowledgement echoes it.
    pub packet_id: u16,
    /// Properties (5.0), e.g. a subscription identifier.
    pub properties: Properties,
    /// The topic filters, in request order.
    pub filters: Vec<String>,
}

/// UNSUBACK. Reason codes are only written for 5.0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// The packet identifier of the request it answers.
    pub packet_id: u16,
    /// Properties (5.0), e.g. a reason string.
    pub properties: Properties,
    /// One reason code per filter of the request, in order.
    pub reason_codes: Vec<u8>,
}

/// DISCONNECT (both directions in 5.0, client to server only in 3.1.1) and AUTH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Why the connection ends (DISCONNECT) or the authentication step (AUTH).
    pub reason_code: u8,
    /// Properties (5.0): reason string, session expiry, server reference, authentication.
    pub properties: Properties,
}

/// Every MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Opens a connection (client to server); boxed, as it is the largest.
    Connect(Box<Connect>),
    /// Answers CONNECT.
    ConnAck(ConnAck),
    /// Carries an application message, either direction.
    Publish(Publish),
    /// Acknowledges a QoS 1 publish.
    PubAck(Ack),
    /// First answer to a QoS 2 publish: received.
    PubRec(Ack),
    /// Second step of QoS 2: release the packet id.
    PubRel(Ack),
    /// Last step of QoS 2: complete.
    PubComp(Ack),
    /// Asks for messages on topic filters.
    Subscribe(Subscribe),
    /// Answers SUBSCRIBE.
    SubAck(SubAck),
    /// Removes subscriptions.
    Unsubscribe(Unsubscribe),
    /// Answers UNSUBSCRIBE.
    UnsubAck(UnsubAck),
    /// Keep-alive from the client.
    PingReq,
    /// Answers PINGREQ.
    PingResp,
    /// Ends the connection, with a reason in 5.0.
    Disconnect(Disconnect),
    /// An extended authentication step (5.0).
    Auth(Disconnect),
}

/// MQTT 5.0 reason codes the broker uses by name.
pub mod reason {
    /// Success; also granted QoS 0 and normal disconnection.
    pub const SUCCESS: u8 = 0x00;
    /// SUBACK: subscribed with maximum QoS 1.
    pub const GRANTED_QOS_1: u8 = 0x01;
    /// SUBACK: subscribed with maximum QoS 2.
    pub const GRANTED_QOS_2: u8 = 0x02;
    /// DISCONNECT: close, but publish the will anyway.
    pub const DISCONNECT_WITH_WILL: u8 = 0x04;
    /// PUBACK/PUBREC: accepted, but nobody subscribes to the topic.
    pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
    /// UNSUBACK: there was no such subscription.
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    /// A failure with no more specific code.
    pub const UNSPECIFIED_ERROR: u8 = 0x80;
    /// The packet could not be parsed.
    pub const MALFORMED_PACKET: u8 = 0x81;
    /// The packet was well-formed but broke the protocol.
    pub const PROTOCOL_ERROR: u8 = 0x82;
    /// Valid, but refused by this server.
    pub const IMPLEMENTATION_SPECIFIC: u8 = 0x83;
    /// CONNACK: the protocol level is not supported.
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    /// CONNACK: the client identifier is refused.
    pub const CLIENT_ID_NOT_VALID: u8 = 0x85;
    /// CONNACK: authentication failed.
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 0x86;
    /// The client may not do this.
    pub const NOT_AUTHORIZED: u8 = 0x87;
    /// CONNACK: the server cannot take the connection now.
    pub const SERVER_UNAVAILABLE: u8 = 0x88;
    /// The server is busy; try later.
    pub const SERVER_BUSY: u8 = 0x89;
    /// DISCONNECT: the server is stopping.
    pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
    /// The authentication method is not supported or does not match.
    pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
    /// DISCONNECT: nothing arrived within 1.5 keep-alive intervals.
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    /// DISCONNECT: another connection took the client id.
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    /// The topic filter is not valid (or not allowed).
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    /// The topic name is not valid (or not allowed).
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    /// The packet identifier is already in use.
    pub const PACKET_ID_IN_USE: u8 = 0x91;
    /// No exchange uses this packet identifier.
    pub const PACKET_ID_NOT_FOUND: u8 = 0x92;
    /// DISCONNECT: more unacknowledged publishes than receive maximum.
    pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    /// DISCONNECT: the topic alias is 0, over the maximum, or unknown.
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    /// The packet exceeds the maximum packet size.
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    /// DISCONNECT: the client publishes too fast.
    pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
    /// An implementation or administrative quota is exceeded.
    pub const QUOTA_EXCEEDED: u8 = 0x97;
    /// The payload does not match its payload format indicator.
    pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
    /// The server does not support retained messages.
    pub const RETAIN_NOT_SUPPORTED: u8 = 0x9A;
    /// The QoS is higher than the server's maximum.
    pub const QOS_NOT_SUPPORTED: u8 = 0x9B;
    /// The server does not support `$share` subscriptions.
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0x9E;
    /// The client connects too often.
    pub const CONNECTION_RATE_EXCEEDED: u8 = 0x9F;
    /// DISCONNECT: the connection lasted as long as it may.
    pub const MAXIMUM_CONNECT_TIME: u8 = 0xA0;
    /// The server does not support subscription identifiers.
    pub const SUBSCRIPTION_IDS_NOT_SUPPORTED: u8 = 0xA1;
    /// The server does not support wildcard filters.
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0xA2;
}
