//! Sans-IO encoder and decoder for MQTT 3.1, 3.1.1 and 5.0 control packets.
//!
//! The codec only turns bytes into [`Packet`]s and back; it owns no socket and keeps no
//! session state, so the broker, the load generator (a client) and the fuzzer all share it.
//! It checks everything that can be judged from one packet alone (framing, flags, UTF-8,
//! property placement and duplicates). Checks that need session state (topic aliases,
//! receive maximum, a second CONNECT, topic name syntax) are left to the caller.
//!
//! The decoder is deliberately exactly as strict as the encoder is able to write: every
//! packet [`decode`] returns is re-encoded by [`encode`] (for the same version) into bytes
//! that decode to an equal packet. The fuzz target relies on that.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::packet::*;
use DecodeError::{Malformed, Protocol};

/// Largest value a variable byte integer (at most four bytes) can carry.
const MAX_VARINT: u32 = 268_435_455;
/// Longest string or binary field a two-byte length prefix can describe.
const MAX_FIELD: usize = u16::MAX as usize;

// Control packet types (the high nibble of the first byte).
const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const PUBREC: u8 = 5;
const PUBREL: u8 = 6;
const PUBCOMP: u8 = 7;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;
const UNSUBACK: u8 = 11;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;
const AUTH: u8 = 15;

// MQTT 5.0 property identifiers (section 2.2.2.2).
const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
const SERVER_KEEP_ALIVE: u8 = 0x13;
const AUTHENTICATION_METHOD: u8 = 0x15;
const AUTHENTICATION_DATA: u8 = 0x16;
const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
const WILL_DELAY_INTERVAL: u8 = 0x18;
const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
const RESPONSE_INFORMATION: u8 = 0x1A;
const SERVER_REFERENCE: u8 = 0x1C;
const REASON_STRING: u8 = 0x1F;
const RECEIVE_MAXIMUM: u8 = 0x21;
const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
const TOPIC_ALIAS: u8 = 0x23;
const MAXIMUM_QOS: u8 = 0x24;
const RETAIN_AVAILABLE: u8 = 0x25;
const USER_PROPERTY: u8 = 0x26;
const MAXIMUM_PACKET_SIZE: u8 = 0x27;
const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Why a byte stream could not be decoded; each maps to the MQTT 5.0 reason code a server
/// sends (or, for 3.1.1, a close of the connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes break the wire format (reason code 0x81).
    Malformed(&'static str),
    /// The packet is well formed but breaks a protocol rule (reason code 0x82).
    Protocol(&'static str),
    /// The packet is larger than the caller's limit (reason code 0x95).
    TooLarge {
        /// Total size of the packet: fixed header plus remaining length.
        size: usize,
        /// The limit it was checked against.
        max: usize,
    },
    /// CONNECT named a protocol name/level this codec does not speak (reason code 0x84).
    UnsupportedVersion(u8),
}

impl DecodeError {
    /// The MQTT 5.0 reason code to put in the CONNACK or DISCONNECT that reports this error.
    pub fn reason_code(&self) -> u8 {
        match self {
            DecodeError::Malformed(_) => reason::MALFORMED_PACKET,
            DecodeError::Protocol(_) => reason::PROTOCOL_ERROR,
            DecodeError::TooLarge { .. } => reason::PACKET_TOO_LARGE,
            DecodeError::UnsupportedVersion(_) => reason::UNSUPPORTED_PROTOCOL_VERSION,
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(why) => write!(f, "malformed packet: {why}"),
            DecodeError::Protocol(why) => write!(f, "protocol error: {why}"),
            DecodeError::TooLarge { size, max } => {
                write!(f, "packet of {size} bytes exceeds the maximum of {max} bytes")
            }
            DecodeError::UnsupportedVersion(level) => {
                write!(f, "unsupported protocol name or level {level}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// The error for a field that runs past the end of its packet.
const TRUNCATED: DecodeError = Malformed("packet ends inside a field");

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// Decodes one packet from the front of `buf` and advances past it. Returns `Ok(None)` when
/// `buf` does not yet hold a whole packet; nothing is consumed then.
///
/// `version` is `None` before CONNECT has been seen: then the only acceptable packet is
/// CONNECT (anything else is a protocol error). CONNECT is decoded for whatever protocol it
/// names, whatever `version` says; the caller decides whether a second CONNECT is an error.
///
/// `max_packet_size` limits the total packet size (fixed header plus remaining length); a
/// larger packet is reported as [`DecodeError::TooLarge`] as soon as its fixed header is
/// readable, without waiting for the body.
///
/// On `Err` the connection must be closed: how much of `buf` was consumed is unspecified.
/// PUBLISH payloads and binary fields share `buf`'s allocation (no copy).
pub fn decode(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some((header_len, size)) = frame_bounds(buf, version, max_packet_size)? else {
        return Ok(None);
    };
    let first = buf[0];
    let mut frame = buf.split_to(size).freeze();
    frame.advance(header_len);
    let mut body = Reader { buf: frame };
    let packet = decode_body(first, &mut body, version == Some(ProtocolVersion::V5))?;
    body.finish()?;
    Ok(Some(packet))
}

/// The size in bytes of the packet at the front of `buf` once it has all arrived, or `None`
/// while its fixed header is incomplete or its body has not all arrived. Checks what
/// [`decode`] checks first (the first byte, the remaining length's encoding, the size
/// limit), so a reader can cut packets out of a stream without decoding them twice.
pub fn frame_size(
    buf: &[u8],
    version: Option<ProtocolVersion>,
    max_packet_size: usize,
) -> Result<Option<usize>, DecodeError> {
    Ok(frame_bounds(buf, version, max_packet_size)?.map(|(_, size)| size))
}

/// The fixed header's length and the whole packet's size, once the whole packet is in `buf`.
fn frame_bounds(
    buf: &[u8],
    version: Option<ProtocolVersion>,
    max_packet_size: usize,
) -> Result<Option<(usize, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    check_fixed_header(first, version)?;
    let Some((remaining, len_bytes)) = parse_varint(&buf[1..])? else {
        return Ok(None);
    };
    let header_len = 1 + len_bytes;
    let size = header_len + remaining as usize;
    if size > max_packet_size {
        return Err(DecodeError::TooLarge { size, max: max_packet_size });
    }
    if buf.len() < size {
        return Ok(None);
    }
    Ok(Some((header_len, size)))
}

/// Validates the first byte (packet type and flags) before anything else is read, so bad
/// streams are rejected as early as possible.
fn check_fixed_header(first: u8, version: Option<ProtocolVersion>) -> Result<(), DecodeError> {
    let kind = first >> 4;
    let flags = first & 0x0F;
    if kind == 0 {
        return Err(Malformed("reserved packet type 0"));
    }
    match version {
        None if kind != CONNECT => return Err(Protocol("the first packet must be CONNECT")),
        Some(v) if kind == AUTH && !v.is_v5() => return Err(Malformed("AUTH does not exist before MQTT 5.0")),
        _ => {}
    }
    match kind {
        PUBLISH => {
            let qos = (flags >> 1) & 0x03;
            if qos == 3 {
                return Err(Malformed("PUBLISH with QoS 3"));
            }
            if qos == 0 && flags & 0x08 != 0 {
                return Err(Malformed("DUP flag set on a QoS 0 PUBLISH"));
            }
        }
        PUBREL | SUBSCRIBE | UNSUBSCRIBE if flags != 0b0010 => {
            return Err(Malformed("fixed header flags must be 0010"));
        }
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => {}
        _ if flags != 0 => return Err(Malformed("fixed header flags must be 0000")),
        _ => {}
    }
    Ok(())
}

/// Reads a variable byte integer from the front of `bytes`: `Ok(None)` when more bytes are
/// needed, an error when it is longer than four bytes or not minimally encoded.
fn parse_varint(bytes: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value = 0u32;
    for (i, &byte) in bytes.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(Malformed("variable byte integer is not minimally encoded"));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        Err(Malformed("variable byte integer longer than four bytes"))
    } else {
        Ok(None)
    }
}

/// A cursor over the body of one complete packet; running out of bytes is malformed.
struct Reader {
    buf: Bytes,
}

impl Reader {
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(TRUNCATED);
        }
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(TRUNCATED);
        }
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.buf.len() < 4 {
            return Err(TRUNCATED);
        }
        Ok(self.buf.get_u32())
    }

    fn varint(&mut self) -> Result<u32, DecodeError> {
        let (value, len) = parse_varint(&self.buf)?.ok_or(TRUNCATED)?;
        self.buf.advance(len);
        Ok(value)
    }

    /// Splits off the next `len` bytes without copying them.
    fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if self.buf.len() < len {
            return Err(TRUNCATED);
        }
        Ok(self.buf.split_to(len))
    }

    /// Binary data: a two-byte length, then that many bytes.
    fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 encoded string: valid UTF-8 and free of U+0000.
    fn string(&mut self) -> Result<String, DecodeError> {
        let raw = self.binary()?;
        let text = std::str::from_utf8(&raw).map_err(|_| Malformed("string is not valid UTF-8"))?;
        if text.contains('\0') {
            return Err(Malformed("string contains U+0000"));
        }
        Ok(text.to_owned())
    }

    /// A non-zero packet identifier.
    fn packet_id(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(Malformed("packet identifier 0")),
            id => Ok(id),
        }
    }

    /// Everything left in the packet (PUBLISH payload, SUBACK reason codes).
    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Fails when bytes are left over after the last field.
    fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Malformed("unexpected bytes after the last field"))
        }
    }
}

/// Decodes the variable header and payload of a packet whose fixed header was checked.
fn decode_body(first: u8, r: &mut Reader, v5: bool) -> Result<Packet, DecodeError> {
    let packet = match first >> 4 {
        CONNECT => Packet::Connect(Box::new(decode_connect(r)?)),
        CONNACK => Packet::ConnAck(decode_connack(r, v5)?),
        PUBLISH => Packet::Publish(decode_publish(first, r, v5)?),
        PUBACK => Packet::PubAck(decode_ack(r, v5)?),
        PUBREC => Packet::PubRec(decode_ack(r, v5)?),
        PUBREL => Packet::PubRel(decode_ack(r, v5)?),
        PUBCOMP => Packet::PubComp(decode_ack(r, v5)?),
        SUBSCRIBE => Packet::Subscribe(decode_subscribe(r, v5)?),
        SUBACK => Packet::SubAck(decode_suback(r, v5)?),
        UNSUBSCRIBE => Packet::Unsubscribe(decode_unsubscribe(r, v5)?),
        UNSUBACK => Packet::UnsubAck(decode_unsuback(r, v5)?),
        PINGREQ => Packet::PingReq,
        PINGRESP => Packet::PingResp,
        DISCONNECT => Packet::Disconnect(decode_disconnect(r, v5)?),
        AUTH if v5 => Packet::Auth(decode_auth(r)?),
        _ => return Err(Malformed("reserved packet type")),
    };
    Ok(packet)
}

/// CONNECT (section 3.1): the packet that chooses the protocol version.
fn decode_connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    let protocol = match (&name[..], level) {
        (b"MQTT", 4) => ProtocolVersion::V311,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQIsdp", 3) => ProtocolVersion::V31,
        _ => return Err(DecodeError::UnsupportedVersion(level)),
    };
    let v5 = protocol.is_v5();
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(Malformed("CONNECT reserved flag is set"));
    }
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(Malformed("will QoS or will retain set without a will"));
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(Malformed("will QoS 3"))?;
    if !v5 && has_password && !has_username {
        return Err(Malformed("password flag set without user name flag"));
    }
    let keep_alive = r.u16()?;
    let properties = read_properties_if(v5, r, PropCtx::Connect)?;
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = read_properties_if(v5, r, PropCtx::Will)?;
        let topic = r.string()?;
        let payload = r.binary()?;
        Some(Will { topic, payload, qos: will_qos, retain: will_retain, properties })
    } else {
        None
    };
    let username = if has_username { Some(r.string()?) } else { None };
    let password = if has_password { Some(r.binary()?) } else { None };
    Ok(Connect {
        protocol,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

/// CONNACK (section 3.2); 3.1.1 return codes are mapped to 5.0 reason codes.
fn decode_connack(r: &mut Reader, v5: bool) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(Malformed("CONNACK reserved flags are set"));
    }
    let session_present = flags & 0x01 != 0;
    let code = r.u8()?;
    let reason_code = if v5 { code } else { connack_code_from_v3(code)? };
    if session_present && reason_code != reason::SUCCESS {
        return Err(Protocol("session present set on a refused connection"));
    }
    let properties = read_properties_if(v5, r, PropCtx::ConnAck)?;
    Ok(ConnAck { session_present, reason_code, properties })
}

/// Maps a 3.1.1 CONNACK return code to the 5.0 reason code with the same meaning.
fn connack_code_from_v3(code: u8) -> Result<u8, DecodeError> {
    match code {
        0 => Ok(reason::SUCCESS),
        1 => Ok(reason::UNSUPPORTED_PROTOCOL_VERSION),
        2 => Ok(reason::CLIENT_ID_NOT_VALID),
        3 => Ok(reason::SERVER_UNAVAILABLE),
        4 => Ok(reason::BAD_USERNAME_OR_PASSWORD),
        5 => Ok(reason::NOT_AUTHORIZED),
        _ => Err(Malformed("reserved CONNACK return code")),
    }
}

/// PUBLISH (section 3.3). The payload is split off the frame without copying.
fn decode_publish(first: u8, r: &mut Reader, v5: bool) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((first >> 1) & 0x03).ok_or(Malformed("PUBLISH with QoS 3"))?;
    let topic = r.string()?;
    let packet_id = if qos == QoS::AtMostOnce { None } else { Some(r.packet_id()?) };
    let properties = read_properties_if(v5, r, PropCtx::Publish)?;
    Ok(Publish {
        dup: first & 0x08 != 0,
        qos,
        retain: first & 0x01 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP (sections 3.4 to 3.7).
fn decode_ack(r: &mut Reader, v5: bool) -> Result<Ack, DecodeError> {
    let packet_id = r.packet_id()?;
    let (reason_code, properties) =
        if v5 { read_optional_reason(r, PropCtx::Ack)? } else { (reason::SUCCESS, Properties::default()) };
    Ok(Ack { packet_id, reason_code, properties })
}

/// SUBSCRIBE (section 3.8).
fn decode_subscribe(r: &mut Reader, v5: bool) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = read_properties_if(v5, r, PropCtx::Subscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let options = decode_sub_options(r.u8()?, v5)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(Protocol("SUBSCRIBE without topic filters"));
    }
    Ok(Subscribe { packet_id, properties, filters })
}

/// The subscription options byte (3.1.1: requested QoS only; 5.0 section 3.8.3.1).
fn decode_sub_options(byte: u8, v5: bool) -> Result<SubOptions, DecodeError> {
    if !v5 {
        if byte & 0xFC != 0 {
            return Err(Malformed("reserved subscription option bits are set"));
        }
        let qos = QoS::from_u8(byte).ok_or(Malformed("subscription QoS 3"))?;
        return Ok(SubOptions { qos, ..SubOptions::default() });
    }
    if byte & 0xC0 != 0 {
        return Err(Malformed("reserved subscription option bits are set"));
    }
    // 5.0 calls a maximum QoS of 3 a protocol error (3.8.3.1), unlike 3.1.1.
    let qos = QoS::from_u8(byte & 0x03).ok_or(Protocol("subscription QoS 3"))?;
    let retain_handling = (byte >> 4) & 0x03;
    if retain_handling == 3 {
        return Err(Protocol("retain handling 3"));
    }
    Ok(SubOptions { qos, no_local: byte & 0x04 != 0, retain_as_published: byte & 0x08 != 0, retain_handling })
}

/// SUBACK (section 3.9); 3.1.1 only knows the codes 0, 1, 2 and 0x80.
fn decode_suback(r: &mut Reader, v5: bool) -> Result<SubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = read_properties_if(v5, r, PropCtx::SubAck)?;
    let reason_codes = r.rest().to_vec();
    if reason_codes.is_empty() {
        return Err(Protocol("SUBACK without reason codes"));
    }
    if !v5 && reason_codes.iter().any(|&code| !matches!(code, 0 | 1 | 2 | 0x80)) {
        return Err(Malformed("reserved SUBACK return code"));
    }
    Ok(SubAck { packet_id, properties, reason_codes })
}

/// UNSUBSCRIBE (section 3.10).
fn decode_unsubscribe(r: &mut Reader, v5: bool) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = read_properties_if(v5, r, PropCtx::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(Protocol("UNSUBSCRIBE without topic filters"));
    }
    Ok(Unsubscribe { packet_id, properties, filters })
}

/// UNSUBACK (section 3.11); only 5.0 carries properties and reason codes.
fn decode_unsuback(r: &mut Reader, v5: bool) -> Result<UnsubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    if !v5 {
        return Ok(UnsubAck { packet_id, properties: Properties::default(), reason_codes: vec![] });
    }
    let properties = read_properties(r, PropCtx::UnsubAck)?;
    let reason_codes = r.rest().to_vec();
    if reason_codes.is_empty() {
        return Err(Protocol("UNSUBACK without reason codes"));
    }
    Ok(UnsubAck { packet_id, properties, reason_codes })
}

/// DISCONNECT (section 3.14): empty in 3.1.1, optional reason and properties in 5.0.
fn decode_disconnect(r: &mut Reader, v5: bool) -> Result<Disconnect, DecodeError> {
    let (reason_code, properties) =
        if v5 { read_optional_reason(r, PropCtx::Disconnect)? } else { (reason::SUCCESS, Properties::default()) };
    Ok(Disconnect { reason_code, properties })
}

/// AUTH (section 3.15): either empty, or a reason code followed by properties.
fn decode_auth(r: &mut Reader) -> Result<Disconnect, DecodeError> {
    if r.is_empty() {
        return Ok(Disconnect { reason_code: reason::SUCCESS, properties: Properties::default() });
    }
    let reason_code = r.u8()?;
    let properties = read_properties(r, PropCtx::Auth)?;
    Ok(Disconnect { reason_code, properties })
}

/// The optional reason code and optional properties that end 5.0 acknowledgements and
/// DISCONNECT: a missing reason code means success, missing properties mean none.
fn read_optional_reason(r: &mut Reader, ctx: PropCtx) -> Result<(u8, Properties), DecodeError> {
    if r.is_empty() {
        return Ok((reason::SUCCESS, Properties::default()));
    }
    let reason_code = r.u8()?;
    if r.is_empty() {
        return Ok((reason_code, Properties::default()));
    }
    Ok((reason_code, read_properties(r, ctx)?))
}

/// Which packet (or will) a property block belongs to; decides the allowed identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PropCtx {
    Connect,
    Will,
    ConnAck,
    Publish,
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

/// A set of property identifiers as a bit mask (every identifier is below 64).
const fn ids(list: &[u8]) -> u64 {
    let mut mask = 0;
    let mut i = 0;
    while i < list.len() {
        mask |= 1 << list[i];
        i += 1;
    }
    mask
}

/// Every identifier defined by MQTT 5.0.
const KNOWN_PROPERTIES: u64 = ids(&[
    PAYLOAD_FORMAT_INDICATOR,
    MESSAGE_EXPIRY_INTERVAL,
    CONTENT_TYPE,
    RESPONSE_TOPIC,
    CORRELATION_DATA,
    SUBSCRIPTION_IDENTIFIER,
    SESSION_EXPIRY_INTERVAL,
    ASSIGNED_CLIENT_IDENTIFIER,
    SERVER_KEEP_ALIVE,
    AUTHENTICATION_METHOD,
    AUTHENTICATION_DATA,
    REQUEST_PROBLEM_INFORMATION,
    WILL_DELAY_INTERVAL,
    REQUEST_RESPONSE_INFORMATION,
    RESPONSE_INFORMATION,
    SERVER_REFERENCE,
    REASON_STRING,
    RECEIVE_MAXIMUM,
    TOPIC_ALIAS_MAXIMUM,
    TOPIC_ALIAS,
    MAXIMUM_QOS,
    RETAIN_AVAILABLE,
    USER_PROPERTY,
    MAXIMUM_PACKET_SIZE,
    WILDCARD_SUBSCRIPTION_AVAILABLE,
    SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    SHARED_SUBSCRIPTION_AVAILABLE,
]);

impl PropCtx {
    /// The identifiers allowed in this packet (MQTT 5.0 section 2.2.2.2).
    fn allowed(self) -> u64 {
        match self {
            PropCtx::Connect => ids(&[
                SESSION_EXPIRY_INTERVAL,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                REQUEST_PROBLEM_INFORMATION,
                REQUEST_RESPONSE_INFORMATION,
                RECEIVE_MAXIMUM,
                TOPIC_ALIAS_MAXIMUM,
                USER_PROPERTY,
                MAXIMUM_PACKET_SIZE,
            ]),
            PropCtx::Will => ids(&[
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                CONTENT_TYPE,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                WILL_DELAY_INTERVAL,
                USER_PROPERTY,
            ]),
            PropCtx::ConnAck => ids(&[
                SESSION_EXPIRY_INTERVAL,
                ASSIGNED_CLIENT_IDENTIFIER,
                SERVER_KEEP_ALIVE,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                RESPONSE_INFORMATION,
                SERVER_REFERENCE,
                REASON_STRING,
                RECEIVE_MAXIMUM,
                TOPIC_ALIAS_MAXIMUM,
                MAXIMUM_QOS,
                RETAIN_AVAILABLE,
                USER_PROPERTY,
                MAXIMUM_PACKET_SIZE,
                WILDCARD_SUBSCRIPTION_AVAILABLE,
                SUBSCRIPTION_IDENTIFIER_AVAILABLE,
                SHARED_SUBSCRIPTION_AVAILABLE,
            ]),
            PropCtx::Publish => ids(&[
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                CONTENT_TYPE,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                SUBSCRIPTION_IDENTIFIER,
                TOPIC_ALIAS,
                USER_PROPERTY,
            ]),
            PropCtx::Ack | PropCtx::SubAck | PropCtx::UnsubAck => ids(&[REASON_STRING, USER_PROPERTY]),
            PropCtx::Subscribe => ids(&[SUBSCRIPTION_IDENTIFIER, USER_PROPERTY]),
            PropCtx::Unsubscribe => ids(&[USER_PROPERTY]),
            PropCtx::Disconnect => ids(&[SESSION_EXPIRY_INTERVAL, SERVER_REFERENCE, REASON_STRING, USER_PROPERTY]),
            PropCtx::Auth => ids(&[AUTHENTICATION_METHOD, AUTHENTICATION_DATA, REASON_STRING, USER_PROPERTY]),
        }
    }

    fn allows(self, id: u8) -> bool {
        id < 64 && self.allowed() & (1 << id) != 0
    }
}

/// Reads a property block for 5.0; 3.1.1 packets have none.
fn read_properties_if(v5: bool, r: &mut Reader, ctx: PropCtx) -> Result<Properties, DecodeError> {
    if v5 {
        read_properties(r, ctx)
    } else {
        Ok(Properties::default())
    }
}

/// Reads a property length and the properties it covers (MQTT 5.0 section 2.2.2).
fn read_properties(r: &mut Reader, ctx: PropCtx) -> Result<Properties, DecodeError> {
    let len = r.varint()? as usize;
    if len > r.buf.len() {
        return Err(Malformed("property length exceeds the packet"));
    }
    let mut block = Reader { buf: r.buf.split_to(len) };
    let mut props = Properties::default();
    while !block.is_empty() {
        let id = u8::try_from(block.varint()?).unwrap_or(u8::MAX);
        if id >= 64 || KNOWN_PROPERTIES & (1 << id) == 0 {
            return Err(Malformed("unknown property identifier"));
        }
        if !ctx.allows(id) {
            return Err(Malformed("property not allowed in this packet"));
        }
        read_property(&mut block, id, ctx, &mut props)?;
    }
    if props.authentication_data.is_some() && props.authentication_method.is_none() {
        return Err(Protocol("authentication data without authentication method"));
    }
    Ok(props)
}

/// Stores a property that may appear at most once.
fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(Protocol("property appears more than once"));
    }
    *slot = Some(value);
    Ok(())
}

/// A byte property whose only legal values are 0 and 1.
fn read_flag(r: &mut Reader) -> Result<u8, DecodeError> {
    match r.u8()? {
        v @ (0 | 1) => Ok(v),
        _ => Err(Protocol("property value must be 0 or 1")),
    }
}

/// Reads the value of property `id` (already checked to be allowed) into `p`.
fn read_property(r: &mut Reader, id: u8, ctx: PropCtx, p: &mut Properties) -> Result<(), DecodeError> {
    match id {
        PAYLOAD_FORMAT_INDICATOR => set_once(&mut p.payload_format_indicator, r.u8()?),
        MESSAGE_EXPIRY_INTERVAL => set_once(&mut p.message_expiry_interval, r.u32()?),
        CONTENT_TYPE => set_once(&mut p.content_type, r.string()?),
        RESPONSE_TOPIC => set_once(&mut p.response_topic, r.string()?),
        CORRELATION_DATA => set_once(&mut p.correlation_data, r.binary()?),
        SUBSCRIPTION_IDENTIFIER => {
            let value = r.varint()?;
            if value == 0 {
                return Err(Protocol("subscription identifier 0"));
            }
            if ctx == PropCtx::Subscribe && !p.subscription_identifiers.is_empty() {
                return Err(Protocol("property appears more than once"));
            }
            p.subscription_identifiers.push(value);
            Ok(())
        }
        SESSION_EXPIRY_INTERVAL => set_once(&mut p.session_expiry_interval, r.u32()?),
        ASSIGNED_CLIENT_IDENTIFIER => set_once(&mut p.assigned_client_identifier, r.string()?),
        SERVER_KEEP_ALIVE => set_once(&mut p.server_keep_alive, r.u16()?),
        AUTHENTICATION_METHOD => set_once(&mut p.authentication_method, r.string()?),
        AUTHENTICATION_DATA => set_once(&mut p.authentication_data, r.binary()?),
        REQUEST_PROBLEM_INFORMATION => set_once(&mut p.request_problem_information, read_flag(r)?),
        WILL_DELAY_INTERVAL => set_once(&mut p.will_delay_interval, r.u32()?),
        REQUEST_RESPONSE_INFORMATION => set_once(&mut p.request_response_information, read_flag(r)?),
        RESPONSE_INFORMATION => set_once(&mut p.response_information, r.string()?),
        SERVER_REFERENCE => set_once(&mut p.server_reference, r.string()?),
        REASON_STRING => set_once(&mut p.reason_string, r.string()?),
        RECEIVE_MAXIMUM => match r.u16()? {
            0 => Err(Protocol("receive maximum 0")),
            v => set_once(&mut p.receive_maximum, v),
        },
        TOPIC_ALIAS_MAXIMUM => set_once(&mut p.topic_alias_maximum, r.u16()?),
        TOPIC_ALIAS => set_once(&mut p.topic_alias, r.u16()?),
        MAXIMUM_QOS => set_once(&mut p.maximum_qos, read_flag(r)?),
        RETAIN_AVAILABLE => set_once(&mut p.retain_available, read_flag(r)?),
        USER_PROPERTY => {
            let key = r.string()?;
            let value = r.string()?;
            p.user_properties.push((key, value));
            Ok(())
        }
        MAXIMUM_PACKET_SIZE => match r.u32()? {
            0 => Err(Protocol("maximum packet size 0")),
            v => set_once(&mut p.maximum_packet_size, v),
        },
        WILDCARD_SUBSCRIPTION_AVAILABLE => set_once(&mut p.wildcard_subscription_available, read_flag(r)?),
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => set_once(&mut p.subscription_identifiers_available, read_flag(r)?),
        SHARED_SUBSCRIPTION_AVAILABLE => set_once(&mut p.shared_subscription_available, read_flag(r)?),
        _ => Err(Malformed("unknown property identifier")),
    }
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

/// Appends the encoding of `packet` for `version` to `out`. Never panics; what the wire
/// format cannot carry is clamped or skipped rather than written wrongly:
///
/// * CONNECT is always written for its own `Connect::protocol` (it is the packet that picks
///   the version); `version` is ignored for it.
/// * For 3.1 / 3.1.1 all properties, acknowledgement reason codes, UNSUBACK reason codes and
///   5.0-only subscription options are dropped; a password without a user name is dropped;
///   CONNACK reason codes are mapped to 3.1.1 return codes and SUBACK codes other than
///   0, 1, 2 become 0x80. AUTH is not written at all (nothing is appended).
/// * Strings longer than 65535 bytes are truncated at the last character boundary that
///   fits, binary fields (payloads of wills, passwords, correlation/auth data) at 65535.
/// * Properties not allowed in the packet, or with a value the spec forbids (receive maximum
///   or maximum packet size 0, a 0/1 flag above 1, subscription identifier 0 or above
///   268435455, authentication data without a method, more than one subscription
///   identifier in SUBSCRIBE) are skipped. Retain handling above 2 is written as 2.
/// * DUP is cleared on QoS 0 PUBLISH and the packet id is omitted; a QoS > 0 PUBLISH
///   without a packet id is written with id 0 (which the peer will reject).
/// * Session present is cleared in a CONNACK that refuses the connection.
/// * A packet whose remaining length would exceed 268435455 bytes is not written at all.
///
/// Strings containing U+0000 are written as they are (the peer will reject them).
pub fn encode(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) {
    let version = match packet {
        Packet::Connect(connect) => connect.protocol,
        _ => version,
    };
    if matches!(packet, Packet::Auth(_)) && !version.is_v5() {
        return;
    }
    let mut counter = Counter(0);
    write_body(&mut counter, packet, version);
    let len = counter.0;
    if len > MAX_VARINT as usize {
        return;
    }
    out.reserve(1 + 4 + len);
    out.put_u8(header_byte(packet));
    write_varint(out, len);
    write_body(out, packet, version);
}

/// Where encoded bytes go: a buffer, or a counter that measures lengths ahead of writing,
/// so the length prefixes are known without encoding twice into scratch memory.
trait Sink {
    fn write_u8(&mut self, v: u8);
    fn write_u16(&mut self, v: u16);
    fn write_u32(&mut self, v: u32);
    fn write_slice(&mut self, v: &[u8]);
}

/// A [`Sink`] that only counts bytes.
struct Counter(usize);

impl Sink for Counter {
    fn write_u8(&mut self, _: u8) {
        self.0 = self.0.saturating_add(1);
    }
    fn write_u16(&mut self, _: u16) {
        self.0 = self.0.saturating_add(2);
    }
    fn write_u32(&mut self, _: u32) {
        self.0 = self.0.saturating_add(4);
    }
    fn write_slice(&mut self, v: &[u8]) {
        self.0 = self.0.saturating_add(v.len());
    }
}

impl Sink for BytesMut {
    fn write_u8(&mut self, v: u8) {
        self.put_u8(v);
    }
    fn write_u16(&mut self, v: u16) {
        self.put_u16(v);
    }
    fn write_u32(&mut self, v: u32) {
        self.put_u32(v);
    }
    fn write_slice(&mut self, v: &[u8]) {
        self.put_slice(v);
    }
}

/// Number of bytes `f` writes.
fn measure(f: impl FnOnce(&mut Counter)) -> usize {
    let mut counter = Counter(0);
    f(&mut counter);
    counter.0
}

/// Writes a variable byte integer; values above the four-byte maximum are clamped (callers
/// check lengths before writing, so that never happens on a written packet).
fn write_varint<S: Sink>(s: &mut S, value: usize) {
    let mut v = value.min(MAX_VARINT as usize);
    loop {
        let byte = (v % 128) as u8;
        v /= 128;
        if v == 0 {
            s.write_u8(byte);
            return;
        }
        s.write_u8(byte | 0x80);
    }
}

/// The longest prefix of `s` that fits a two-byte length and ends on a character boundary.
fn truncate_str(s: &str) -> &str {
    if s.len() <= MAX_FIELD {
        return s;
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A UTF-8 string with its two-byte length (truncated, see [`encode`]).
fn write_str<S: Sink>(s: &mut S, v: &str) {
    write_bin(s, truncate_str(v).as_bytes());
}

/// Binary data with its two-byte length (truncated to 65535 bytes).
fn write_bin<S: Sink>(s: &mut S, v: &[u8]) {
    let v = &v[..v.len().min(MAX_FIELD)];
    s.write_u16(v.len() as u16);
    s.write_slice(v);
}

/// The first byte of the fixed header: type and flags.
fn header_byte(packet: &Packet) -> u8 {
    let (kind, flags) = match packet {
        Packet::Connect(_) => (CONNECT, 0),
        Packet::ConnAck(_) => (CONNACK, 0),
        Packet::Publish(p) => {
            let qos = p.qos as u8;
            let dup = p.dup && qos > 0;
            (PUBLISH, (dup as u8) << 3 | qos << 1 | p.retain as u8)
        }
        Packet::PubAck(_) => (PUBACK, 0),
        Packet::PubRec(_) => (PUBREC, 0),
        Packet::PubRel(_) => (PUBREL, 0b0010),
        Packet::PubComp(_) => (PUBCOMP, 0),
        Packet::Subscribe(_) => (SUBSCRIBE, 0b0010),
        Packet::SubAck(_) => (SUBACK, 0),
        Packet::Unsubscribe(_) => (UNSUBSCRIBE, 0b0010),
        Packet::UnsubAck(_) => (UNSUBACK, 0),
        Packet::PingReq => (PINGREQ, 0),
        Packet::PingResp => (PINGRESP, 0),
        Packet::Disconnect(_) => (DISCONNECT, 0),
        Packet::Auth(_) => (AUTH, 0),
    };
    kind << 4 | flags
}

/// Everything after the remaining length.
fn write_body<S: Sink>(s: &mut S, packet: &Packet, version: ProtocolVersion) {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => write_connect(s, c),
        Packet::ConnAck(c) => write_connack(s, c, v5),
        Packet::Publish(p) => write_publish(s, p, v5),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            s.write_u16(a.packet_id);
            if v5 {
                write_optional_reason(s, a.reason_code, &a.properties, PropCtx::Ack);
            }
        }
        Packet::Subscribe(sub) => write_subscribe(s, sub, v5),
        Packet::SubAck(ack) => write_suback(s, ack, v5),
        Packet::Unsubscribe(unsub) => {
            s.write_u16(unsub.packet_id);
            write_properties_if(v5, s, &unsub.properties, PropCtx::Unsubscribe);
            for filter in &unsub.filters {
                write_str(s, filter);
            }
        }
        Packet::UnsubAck(ack) => {
            s.write_u16(ack.packet_id);
            if v5 {
                write_properties(s, &ack.properties, PropCtx::UnsubAck);
                s.write_slice(&ack.reason_codes);
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) if v5 => {
            write_optional_reason(s, d.reason_code, &d.properties, PropCtx::Disconnect);
        }
        Packet::Disconnect(_) => {}
        Packet::Auth(d) => {
            let props_len = properties_len(&d.properties, PropCtx::Auth);
            if d.reason_code != reason::SUCCESS || props_len != 0 {
                s.write_u8(d.reason_code);
                write_varint(s, props_len);
                write_property_list(s, &d.properties, PropCtx::Auth);
            }
        }
    }
}

/// CONNECT for the protocol it names.
fn write_connect<S: Sink>(s: &mut S, c: &Connect) {
    let v5 = c.protocol.is_v5();
    let (name, level) = match c.protocol {
        ProtocolVersion::V31 => ("MQIsdp", 3),
        ProtocolVersion::V311 => ("MQTT", 4),
        ProtocolVersion::V5 => ("MQTT", 5),
    };
    let password = c.password.as_ref().filter(|_| v5 || c.username.is_some());
    let mut flags = 0u8;
    if c.clean_start {
        flags |= 0x02;
    }
    if let Some(will) = &c.will {
        flags |= 0x04 | (will.qos as u8) << 3;
        if will.retain {
            flags |= 0x20;
        }
    }
    if password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    write_str(s, name);
    s.write_u8(level);
    s.write_u8(flags);
    s.write_u16(c.keep_alive);
    write_properties_if(v5, s, &c.properties, PropCtx::Connect);
    write_str(s, &c.client_id);
    if let Some(will) = &c.will {
        write_properties_if(v5, s, &will.properties, PropCtx::Will);
        write_str(s, &will.topic);
        write_bin(s, &will.payload);
    }
    if let Some(username) = &c.username {
        write_str(s, username);
    }
    if let Some(password) = password {
        write_bin(s, password);
    }
}

/// CONNACK; for 3.1.1 the reason code becomes a return code.
fn write_connack<S: Sink>(s: &mut S, c: &ConnAck, v5: bool) {
    let code = if v5 { c.reason_code } else { connack_code_to_v3(c.reason_code) };
    let session_present = c.session_present && code == reason::SUCCESS;
    s.write_u8(session_present as u8);
    s.write_u8(code);
    write_properties_if(v5, s, &c.properties, PropCtx::ConnAck);
}

/// Maps a 5.0 CONNACK reason code to the closest 3.1.1 return code.
fn connack_code_to_v3(code: u8) -> u8 {
    match code {
        reason::SUCCESS => 0,
        reason::UNSUPPORTED_PROTOCOL_VERSION => 1,
        reason::CLIENT_ID_NOT_VALID => 2,
        reason::BAD_USERNAME_OR_PASSWORD => 4,
        reason::NOT_AUTHORIZED | reason::BAD_AUTHENTICATION_METHOD => 5,
        // Server unavailable / busy / shutting down, and every other refusal.
        _ => 3,
    }
}

/// PUBLISH: topic, packet id for QoS > 0, properties (5.0), payload.
fn write_publish<S: Sink>(s: &mut S, p: &Publish, v5: bool) {
    write_str(s, &p.topic);
    if p.qos != QoS::AtMostOnce {
        s.write_u16(p.packet_id.unwrap_or(0));
    }
    write_properties_if(v5, s, &p.properties, PropCtx::Publish);
    s.write_slice(&p.payload);
}

/// SUBSCRIBE: packet id, properties (5.0), filters with their options.
fn write_subscribe<S: Sink>(s: &mut S, sub: &Subscribe, v5: bool) {
    s.write_u16(sub.packet_id);
    write_properties_if(v5, s, &sub.properties, PropCtx::Subscribe);
    for (filter, options) in &sub.filters {
        write_str(s, filter);
        let mut byte = options.qos as u8;
        if v5 {
            byte |= (options.no_local as u8) << 2
                | (options.retain_as_published as u8) << 3
                | options.retain_handling.min(2) << 4;
        }
        s.write_u8(byte);
    }
}

/// SUBACK: packet id, properties (5.0), one code per filter.
fn write_suback<S: Sink>(s: &mut S, ack: &SubAck, v5: bool) {
    s.write_u16(ack.packet_id);
    if v5 {
        write_properties(s, &ack.properties, PropCtx::SubAck);
        s.write_slice(&ack.reason_codes);
        return;
    }
    for &code in &ack.reason_codes {
        s.write_u8(if code <= 2 { code } else { 0x80 });
    }
}

/// The 5.0 tail of acknowledgements and DISCONNECT: nothing when the reason is success and
/// there are no properties, the reason code alone when there are no properties.
fn write_optional_reason<S: Sink>(s: &mut S, code: u8, props: &Properties, ctx: PropCtx) {
    let props_len = properties_len(props, ctx);
    if code == reason::SUCCESS && props_len == 0 {
        return;
    }
    s.write_u8(code);
    if props_len != 0 {
        write_varint(s, props_len);
        write_property_list(s, props, ctx);
    }
}

/// A property block for 5.0; nothing for 3.1.1.
fn write_properties_if<S: Sink>(v5: bool, s: &mut S, props: &Properties, ctx: PropCtx) {
    if v5 {
        write_properties(s, props, ctx);
    }
}

/// Property length followed by the properties.
fn write_properties<S: Sink>(s: &mut S, props: &Properties, ctx: PropCtx) {
    write_varint(s, properties_len(props, ctx));
    write_property_list(s, props, ctx);
}

/// Length of the properties of `props` that are written for `ctx`.
fn properties_len(props: &Properties, ctx: PropCtx) -> usize {
    measure(|c| write_property_list(c, props, ctx))
}

/// Writes single properties, skipping those not allowed in the packet.
struct PropWriter<'a, S> {
    s: &'a mut S,
    ctx: PropCtx,
}

impl<S: Sink> PropWriter<'_, S> {
    /// Writes the identifier when it is allowed; tells whether the value should follow.
    fn id(&mut self, id: u8) -> bool {
        let allowed = self.ctx.allows(id);
        if allowed {
            self.s.write_u8(id);
        }
        allowed
    }

    fn byte(&mut self, id: u8, value: Option<u8>) {
        if let Some(v) = value {
            if self.id(id) {
                self.s.write_u8(v);
            }
        }
    }

    fn flag(&mut self, id: u8, value: Option<u8>) {
        self.byte(id, value.filter(|&v| v <= 1));
    }

    fn u16(&mut self, id: u8, value: Option<u16>) {
        if let Some(v) = value {
            if self.id(id) {
                self.s.write_u16(v);
            }
        }
    }

    fn u32(&mut self, id: u8, value: Option<u32>) {
        if let Some(v) = value {
            if self.id(id) {
                self.s.write_u32(v);
            }
        }
    }

    fn varint(&mut self, id: u8, value: u32) {
        if self.id(id) {
            write_varint(self.s, value as usize);
        }
    }

    fn str(&mut self, id: u8, value: Option<&str>) {
        if let Some(v) = value {
            if self.id(id) {
                write_str(self.s, v);
            }
        }
    }

    fn bin(&mut self, id: u8, value: Option<&[u8]>) {
        if let Some(v) = value {
            if self.id(id) {
                write_bin(self.s, v);
            }
        }
    }

    fn pair(&mut self, id: u8, key: &str, value: &str) {
        if self.id(id) {
            write_str(self.s, key);
            write_str(self.s, value);
        }
    }
}

/// The properties themselves, in identifier order (user properties in their own order).
fn write_property_list<S: Sink>(s: &mut S, p: &Properties, ctx: PropCtx) {
    let mut w = PropWriter { s, ctx };
    w.byte(PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
    w.u32(MESSAGE_EXPIRY_INTERVAL, p.message_expiry_interval);
    w.str(CONTENT_TYPE, p.content_type.as_deref());
    w.str(RESPONSE_TOPIC, p.response_topic.as_deref());
    w.bin(CORRELATION_DATA, p.correlation_data.as_deref());
    let sub_id_limit = if ctx == PropCtx::Subscribe { 1 } else { usize::MAX };
    let sub_ids = p.subscription_identifiers.iter().filter(|&&v| (1..=MAX_VARINT).contains(&v));
    for &sub_id in sub_ids.take(sub_id_limit) {
        w.varint(SUBSCRIPTION_IDENTIFIER, sub_id);
    }
    w.u32(SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
    w.str(ASSIGNED_CLIENT_IDENTIFIER, p.assigned_client_identifier.as_deref());
    w.u16(SERVER_KEEP_ALIVE, p.server_keep_alive);
    w.str(AUTHENTICATION_METHOD, p.authentication_method.as_deref());
    let auth_data = p.authentication_data.as_deref().filter(|_| p.authentication_method.is_some());
    w.bin(AUTHENTICATION_DATA, auth_data);
    w.flag(REQUEST_PROBLEM_INFORMATION, p.request_problem_information);
    w.u32(WILL_DELAY_INTERVAL, p.will_delay_interval);
    w.flag(REQUEST_RESPONSE_INFORMATION, p.request_response_information);
    w.str(RESPONSE_INFORMATION, p.response_information.as_deref());
    w.str(SERVER_REFERENCE, p.server_reference.as_deref());
    w.str(REASON_STRING, p.reason_string.as_deref());
    w.u16(RECEIVE_MAXIMUM, p.receive_maximum.filter(|&v| v != 0));
    w.u16(TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
    w.u16(TOPIC_ALIAS, p.topic_alias);
    w.flag(MAXIMUM_QOS, p.maximum_qos);
    w.flag(RETAIN_AVAILABLE, p.retain_available);
    for (key, value) in &p.user_properties {
        w.pair(USER_PROPERTY, key, value);
    }
    w.u32(MAXIMUM_PACKET_SIZE, p.maximum_packet_size.filter(|&v| v != 0));
    w.flag(WILDCARD_SUBSCRIPTION_AVAILABLE, p.wildcard_subscription_available);
    w.flag(SUBSCRIPTION_IDENTIFIER_AVAILABLE, p.subscription_identifiers_available);
    w.flag(SHARED_SUBSCRIPTION_AVAILABLE, p.shared_subscription_available);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ProtocolVersion::{V31, V311, V5};

    const NO_LIMIT: usize = usize::MAX;

    fn enc(packet: &Packet, version: ProtocolVersion) -> BytesMut {
        let mut out = BytesMut::new();
        encode(packet, version, &mut out);
        out
    }

    /// Decodes a whole byte slice; asserts that a successful decode consumes all of it.
    fn dec(bytes: &[u8], version: Option<ProtocolVersion>) -> Result<Option<Packet>, DecodeError> {
        let mut buf = BytesMut::from(bytes);
        let result = decode(&mut buf, version, NO_LIMIT);
        if let Ok(Some(_)) = result {
            assert!(buf.is_empty(), "decode left {} bytes", buf.len());
        }
        result
    }

    fn dec_ok(bytes: &[u8], version: Option<ProtocolVersion>) -> Packet {
        match dec(bytes, version) {
            Ok(Some(packet)) => packet,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    fn malformed(bytes: &[u8], version: Option<ProtocolVersion>) {
        assert!(
            matches!(dec(bytes, version), Err(DecodeError::Malformed(_))),
            "expected Malformed for {bytes:02x?}, got {:?}",
            dec(bytes, version)
        );
    }

    fn protocol(bytes: &[u8], version: Option<ProtocolVersion>) {
        assert!(
            matches!(dec(bytes, version), Err(DecodeError::Protocol(_))),
            "expected Protocol for {bytes:02x?}, got {:?}",
            dec(bytes, version)
        );
    }

    /// Builds a packet from a first byte and a body, adding the remaining length.
    fn frame(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_u8(first);
        write_varint(&mut out, body.len());
        out.put_slice(body);
        out.to_vec()
    }

    fn connect_body(name: &[u8], level: u8, flags: u8, tail: &[u8]) -> Vec<u8> {
        let mut body = vec![0, name.len() as u8];
        body.extend_from_slice(name);
        body.extend_from_slice(&[level, flags, 0, 60]);
        body.extend_from_slice(tail);
        body
    }

    /// A 5.0 PUBLISH (QoS 0, topic "t") carrying the given raw property bytes.
    fn publish_with_props(props: &[u8]) -> Vec<u8> {
        let mut body = vec![0, 1, b't', props.len() as u8];
        body.extend_from_slice(props);
        frame(0x30, &body)
    }

    fn simple_connect(protocol: ProtocolVersion) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive: 60,
            properties: Properties::default(),
            client_id: "c1".into(),
            will: None,
            username: None,
            password: None,
        }
    }

    // ---- fixed header -------------------------------------------------------------------

    #[test]
    fn empty_buffer_needs_more() {
        assert_eq!(dec(&[], None), Ok(None));
        assert_eq!(dec(&[], Some(V5)), Ok(None));
    }

    #[test]
    fn truncated_packets_need_more_and_consume_nothing() {
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "a/b".into(),
            packet_id: Some(7),
            properties: Properties::default(),
            payload: Bytes::from_static(b"hello"),
        });
        let bytes = enc(&packet, V311);
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(decode(&mut buf, Some(V311), NO_LIMIT), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut);
        }
        assert_eq!(dec(&bytes, Some(V311)), Ok(Some(packet)));
    }

    #[test]
    fn partial_remaining_length_needs_more() {
        assert_eq!(dec(&[0x30, 0x80], Some(V5)), Ok(None));
        assert_eq!(dec(&[0x30, 0x80, 0x80, 0x80], Some(V5)), Ok(None));
    }

    #[test]
    fn fifth_remaining_length_byte_is_malformed() {
        malformed(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF], Some(V5));
        malformed(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], Some(V311));
    }

    #[test]
    fn non_minimal_remaining_length_is_malformed() {
        malformed(&[0xC0, 0x80, 0x00], Some(V311));
    }

    #[test]
    fn largest_remaining_length_is_accepted_up_to_the_limit() {
        let header = [0x30, 0xFF, 0xFF, 0xFF, 0x7F];
        let mut buf = BytesMut::from(&header[..]);
        assert_eq!(decode(&mut buf, Some(V5), NO_LIMIT), Ok(None));
        assert_eq!(decode(&mut buf, Some(V5), 1000), Err(DecodeError::TooLarge { size: 5 + 268_435_455, max: 1000 }));
    }

    #[test]
    fn oversized_packet_is_rejected_from_the_header_alone() {
        // Remaining length 200 (two bytes), none of the body present yet.
        let mut buf = BytesMut::from(&[0x30, 0xC8, 0x01][..]);
        assert_eq!(decode(&mut buf, Some(V311), 100), Err(DecodeError::TooLarge { size: 203, max: 100 }));
        // Exactly at the limit is fine.
        let bytes = frame(0xC0, &[]);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(decode(&mut buf, Some(V311), 2), Ok(Some(Packet::PingReq)));
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(decode(&mut buf, Some(V311), 1), Err(DecodeError::TooLarge { size: 2, max: 1 }));
    }

    #[test]
    fn frame_size_waits_for_the_whole_packet_and_checks_what_decode_checks() {
        // PINGREQ then the first three bytes of a PUBLISH with remaining length 5.
        let bytes = [0xC0, 0x00, 0x30, 0x05, 0x00];
        assert_eq!(frame_size(&bytes[..1], Some(V311), NO_LIMIT), Ok(None));
        assert_eq!(frame_size(&bytes, Some(V311), NO_LIMIT), Ok(Some(2)));
        assert_eq!(frame_size(&bytes[2..], Some(V311), NO_LIMIT), Ok(None));
        assert_eq!(
            frame_size(&[0x30, 0xC8, 0x01], Some(V311), 100),
            Err(DecodeError::TooLarge { size: 203, max: 100 })
        );
        assert!(frame_size(&[0x00, 0x00], Some(V5), NO_LIMIT).is_err());
        assert!(frame_size(&[0xC0, 0x00], None, NO_LIMIT).is_err(), "only CONNECT comes first");
    }

    #[test]
    fn reserved_packet_type_is_malformed() {
        malformed(&[0x00, 0x00], Some(V5));
        malformed(&[0x00, 0x00], None);
    }

    #[test]
    fn only_connect_before_connect() {
        protocol(&[0xC0, 0x00], None);
        protocol(&[0x30, 0x00], None);
        protocol(&[0xF0, 0x00], None);
        // Rejected from the first byte, without waiting for the rest.
        protocol(&[0x82], None);
    }

    #[test]
    fn flag_rules() {
        let ack_body = [0x00, 0x01];
        // PUBREL, SUBSCRIBE and UNSUBSCRIBE need 0010.
        for kind in [PUBREL, SUBSCRIBE, UNSUBSCRIBE] {
            for flags in [0x0, 0x1, 0x4, 0x8, 0x3] {
                malformed(&frame(kind << 4 | flags, &ack_body), Some(V311));
                malformed(&frame(kind << 4 | flags, &ack_body), Some(V5));
            }
        }
        assert_eq!(dec_ok(&frame(0x62, &ack_body), Some(V311)), Packet::PubRel(Ack::ok(1)));
        // Every other non-PUBLISH type needs 0000.
        for kind in [CONNACK, PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK, PINGREQ, PINGRESP] {
            malformed(&frame(kind << 4 | 0x2, &ack_body), Some(V5));
            malformed(&frame(kind << 4 | 0x1, &ack_body), Some(V311));
        }
        malformed(&frame(0xE1, &[]), Some(V5));
        malformed(&frame(0xF8, &[]), Some(V5));
        malformed(&frame(0x11, &connect_body(b"MQTT", 4, 0x02, &[0, 0])), None);
    }

    #[test]
    fn publish_qos3_and_dup_on_qos0_are_malformed() {
        malformed(&frame(0x36, &[0, 1, b't', 0, 1]), Some(V311));
        malformed(&frame(0x38, &[0, 1, b't']), Some(V311));
        // DUP with QoS 1 is fine.
        let p = dec_ok(&frame(0x3A, &[0, 1, b't', 0, 9]), Some(V311));
        assert!(matches!(p, Packet::Publish(Publish { dup: true, packet_id: Some(9), .. })));
    }

    #[test]
    fn auth_only_exists_in_v5() {
        malformed(&[0xF0, 0x00], Some(V311));
        malformed(&[0xF0, 0x00], Some(V31));
        assert_eq!(
            dec_ok(&[0xF0, 0x00], Some(V5)),
            Packet::Auth(Disconnect { reason_code: 0, properties: Properties::default() })
        );
        // Reason without a property length is not a valid AUTH.
        malformed(&[0xF0, 0x01, 0x18], Some(V5));
        let mut out = BytesMut::new();
        encode(&Packet::Auth(Disconnect { reason_code: 0x18, properties: Properties::default() }), V311, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn several_packets_in_one_buffer() {
        let mut buf = BytesMut::new();
        encode(&Packet::PingReq, V5, &mut buf);
        encode(&Packet::PubAck(Ack::ok(3)), V5, &mut buf);
        buf.put_u8(0xD0); // start of a PINGRESP
        assert_eq!(decode(&mut buf, Some(V5), NO_LIMIT), Ok(Some(Packet::PingReq)));
        assert_eq!(decode(&mut buf, Some(V5), NO_LIMIT), Ok(Some(Packet::PubAck(Ack::ok(3)))));
        assert_eq!(decode(&mut buf, Some(V5), NO_LIMIT), Ok(None));
        buf.put_u8(0x00);
        assert_eq!(decode(&mut buf, Some(V5), NO_LIMIT), Ok(Some(Packet::PingResp)));
        assert!(buf.is_empty());
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        malformed(&frame(0xC0, &[0]), Some(V5));
        malformed(&frame(0xE0, &[0]), Some(V311));
        malformed(&frame(0x40, &[0, 1, 0]), Some(V311));
        malformed(&frame(0xB0, &[0, 1, 0]), Some(V311));
        malformed(&frame(0x20, &[0, 0, 0]), Some(V311));
    }

    // ---- strings ------------------------------------------------------------------------

    #[test]
    fn strings_must_be_utf8_without_nul() {
        malformed(&frame(0x30, &[0, 2, 0xC3, 0x28]), Some(V311));
        malformed(&frame(0x30, &[0, 3, b'a', 0, b'b']), Some(V311));
        // Encoded surrogate halves are not UTF-8 either.
        malformed(&frame(0x30, &[0, 3, 0xED, 0xA0, 0x80]), Some(V311));
        let p = dec_ok(&frame(0x30, &[0, 2, 0xC3, 0xA9, b'x']), Some(V311));
        assert!(matches!(p, Packet::Publish(Publish { ref topic, .. }) if topic == "é"));
    }

    #[test]
    fn string_length_beyond_packet_is_malformed() {
        malformed(&frame(0x30, &[0, 9, b'a']), Some(V311));
        malformed(&frame(0x30, &[0]), Some(V311));
    }

    #[test]
    fn long_strings_are_truncated_on_a_char_boundary() {
        let topic = "é".repeat(40_000); // 80_000 bytes
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.clone(),
            packet_id: None,
            properties: Properties::default(),
            payload: Bytes::new(),
        });
        let Packet::Publish(decoded) = dec_ok(&enc(&packet, V5), Some(V5)) else {
            panic!("not a publish");
        };
        assert_eq!(decoded.topic.len(), 65_534);
        assert!(topic.starts_with(&decoded.topic));
    }

    #[test]
    fn packet_too_big_for_the_wire_is_not_written() {
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            properties: Properties::default(),
            payload: Bytes::from(vec![0u8; MAX_VARINT as usize]),
        });
        assert!(enc(&packet, V311).is_empty());
    }

    // ---- CONNECT ------------------------------------------------------------------------

    #[test]
    fn connect_versions() {
        let tail = [0, 2, b'c', b'1'];
        let v311 = dec_ok(&frame(0x10, &connect_body(b"MQTT", 4, 0x02, &tail)), None);
        assert_eq!(v311, Packet::Connect(Box::new(simple_connect(V311))));
        let v31 = dec_ok(&frame(0x10, &connect_body(b"MQIsdp", 3, 0x02, &tail)), None);
        assert_eq!(v31, Packet::Connect(Box::new(simple_connect(V31))));
        let v5_tail = [0, 0, 2, b'c', b'1'];
        let v5 = dec_ok(&frame(0x10, &connect_body(b"MQTT", 5, 0x02, &v5_tail)), Some(V311));
        // A 5.0 CONNECT decodes even when the caller already holds a version.
        assert_eq!(v5, Packet::Connect(Box::new(simple_connect(V5))));
    }

    #[test]
    fn connect_unknown_protocol() {
        let tail = [0, 0];
        let cases: [(&[u8], u8); 4] = [(b"MQTT", 6), (b"MQTT", 3), (b"MQIsdp", 4), (b"HTTP", 4)];
        for (name, level) in cases {
            assert_eq!(
                dec(&frame(0x10, &connect_body(name, level, 0x02, &tail)), None),
                Err(DecodeError::UnsupportedVersion(level))
            );
        }
        assert_eq!(DecodeError::UnsupportedVersion(6).reason_code(), 0x84);
    }

    #[test]
    fn connect_flag_rules() {
        let tail = [0, 0];
        let v5_tail = [0, 0, 0];
        // Reserved bit.
        malformed(&frame(0x10, &connect_body(b"MQTT", 4, 0x03, &tail)), None);
        malformed(&frame(0x10, &connect_body(b"MQTT", 5, 0x01, &v5_tail)), None);
        // Will QoS / retain without will flag.
        malformed(&frame(0x10, &connect_body(b"MQTT", 4, 0x08, &tail)), None);
        malformed(&frame(0x10, &connect_body(b"MQTT", 4, 0x20, &tail)), None);
        malformed(&frame(0x10, &connect_body(b"MQTT", 5, 0x10, &v5_tail)), None);
        // Will QoS 3.
        let will = [0, 0, 0, 1, b't', 0, 0];
        malformed(&frame(0x10, &connect_body(b"MQTT", 4, 0x1C, &will)), None);
        // Will QoS 2 with retain is fine.
        let p = dec_ok(&frame(0x10, &connect_body(b"MQTT", 4, 0x34, &will)), None);
        let Packet::Connect(c) = p else { panic!("not a connect") };
        let w = c.will.expect("will");
        assert_eq!((w.qos, w.retain, w.topic.as_str()), (QoS::ExactlyOnce, true, "t"));
    }

    #[test]
    fn password_without_username() {
        let tail = [0, 0, 0, 2, b'p', b'w'];
        malformed(&frame(0x10, &connect_body(b"MQTT", 4, 0x40, &tail)), None);
        malformed(&frame(0x10, &connect_body(b"MQIsdp", 3, 0x40, &tail)), None);
        let v5_tail = [0, 0, 0, 0, 2, b'p', b'w'];
        let p = dec_ok(&frame(0x10, &connect_body(b"MQTT", 5, 0x40, &v5_tail)), None);
        let Packet::Connect(c) = p else { panic!("not a connect") };
        assert_eq!((c.username, c.password), (None, Some(Bytes::from_static(b"pw"))));
        // Encoding for 3.1.1 drops such a password instead of writing a malformed packet.
        let mut c = simple_connect(V311);
        c.password = Some(Bytes::from_static(b"pw"));
        let decoded = dec_ok(&enc(&Packet::Connect(Box::new(c.clone())), V311), None);
        c.password = None;
        assert_eq!(decoded, Packet::Connect(Box::new(c)));
    }

    #[test]
    fn connect_is_written_for_its_own_protocol() {
        let c = Packet::Connect(Box::new(simple_connect(V5)));
        assert_eq!(enc(&c, V311), enc(&c, V5));
        assert_eq!(dec_ok(&enc(&c, V311), None), c);
    }

    #[test]
    fn connect_with_everything_v5() {
        let connect = Connect {
            protocol: V5,
            clean_start: false,
            keep_alive: 0,
            properties: Properties {
                session_expiry_interval: Some(3600),
                receive_maximum: Some(10),
                maximum_packet_size: Some(1 << 20),
                topic_alias_maximum: Some(5),
                request_problem_information: Some(0),
                request_response_information: Some(1),
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(b"\x00\x01")),
                user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
                ..Properties::default()
            },
            client_id: String::new(),
            will: Some(Will {
                topic: "will/t".into(),
                payload: Bytes::from_static(b"bye"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Properties {
                    will_delay_interval: Some(5),
                    payload_format_indicator: Some(1),
                    content_type: Some("text/plain".into()),
                    ..Properties::default()
                },
            }),
            username: Some("u".into()),
            password: Some(Bytes::from_static(b"p")),
        };
        let packet = Packet::Connect(Box::new(connect));
        assert_eq!(dec_ok(&enc(&packet, V5), None), packet);
    }

    #[test]
    fn connect_spec_example_bytes() {
        // 3.1.1 CONNECT, clean session, keep alive 10, client id "abc".
        let bytes =
            [0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x0A, 0x00, 0x03, b'a', b'b', b'c'];
        let expected = Connect { keep_alive: 10, client_id: "abc".into(), ..simple_connect(V311) };
        let packet = Packet::Connect(Box::new(expected));
        assert_eq!(dec_ok(&bytes, None), packet);
        assert_eq!(&enc(&packet, V311)[..], &bytes[..]);
    }

    // ---- properties ---------------------------------------------------------------------

    #[test]
    fn duplicate_property_is_protocol_error() {
        protocol(&publish_with_props(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]), Some(V5));
        protocol(&publish_with_props(&[0x23, 0, 1, 0x23, 0, 1]), Some(V5));
    }

    #[test]
    fn user_properties_repeat_in_order() {
        let props = [0x26, 0, 1, b'k', 0, 1, b'2', 0x26, 0, 1, b'k', 0, 1, b'1'];
        let Packet::Publish(p) = dec_ok(&publish_with_props(&props), Some(V5)) else { panic!("not a publish") };
        let expected = vec![("k".to_string(), "2".to_string()), ("k".into(), "1".into())];
        assert_eq!(p.properties.user_properties, expected);
    }

    #[test]
    fn subscription_identifiers() {
        protocol(&publish_with_props(&[0x0B, 0x00]), Some(V5));
        let Packet::Publish(p) = dec_ok(&publish_with_props(&[0x0B, 0x05, 0x0B, 0x80, 0x01]), Some(V5)) else {
            panic!("not a publish")
        };
        assert_eq!(p.properties.subscription_identifiers, vec![5, 128]);
        // Non-minimal variable byte integer.
        malformed(&publish_with_props(&[0x0B, 0x85, 0x00]), Some(V5));
        // SUBSCRIBE allows exactly one.
        let sub = |props: &[u8]| {
            let mut body = vec![0, 1, props.len() as u8];
            body.extend_from_slice(props);
            body.extend_from_slice(&[0, 1, b'#', 0]);
            frame(0x82, &body)
        };
        let Packet::Subscribe(s) = dec_ok(&sub(&[0x0B, 0x07]), Some(V5)) else { panic!("not a subscribe") };
        assert_eq!(s.properties.subscription_identifiers, vec![7]);
        protocol(&sub(&[0x0B, 0x07, 0x0B, 0x08]), Some(V5));
        protocol(&sub(&[0x0B, 0x00]), Some(V5));
    }

    #[test]
    fn zero_values_that_are_protocol_errors() {
        let connack = |props: &[u8]| {
            let mut body = vec![0, 0, props.len() as u8];
            body.extend_from_slice(props);
            frame(0x20, &body)
        };
        protocol(&connack(&[0x21, 0, 0]), Some(V5));
        protocol(&connack(&[0x27, 0, 0, 0, 0]), Some(V5));
        protocol(&connack(&[0x24, 2]), Some(V5));
        protocol(&connack(&[0x25, 7]), Some(V5));
        protocol(&connack(&[0x28, 2]), Some(V5));
        protocol(&connack(&[0x29, 2]), Some(V5));
        protocol(&connack(&[0x2A, 2]), Some(V5));
        let Packet::ConnAck(c) = dec_ok(&connack(&[0x21, 0, 1, 0x24, 1]), Some(V5)) else { panic!("not a connack") };
        assert_eq!((c.properties.receive_maximum, c.properties.maximum_qos), (Some(1), Some(1)));
        let connect = |props: &[u8]| {
            let mut tail = vec![props.len() as u8];
            tail.extend_from_slice(props);
            tail.extend_from_slice(&[0, 0]);
            frame(0x10, &connect_body(b"MQTT", 5, 0x02, &tail))
        };
        protocol(&connect(&[0x17, 2]), None);
        protocol(&connect(&[0x19, 2]), None);
        protocol(&connect(&[0x16, 0, 0]), None);
        assert!(dec(&connect(&[0x15, 0, 1, b'm', 0x16, 0, 0]), None).is_ok());
    }

    #[test]
    fn unknown_or_misplaced_property_is_malformed() {
        malformed(&publish_with_props(&[0x04, 0]), Some(V5));
        malformed(&publish_with_props(&[0x7F, 0]), Some(V5));
        malformed(&publish_with_props(&[0x80, 0x01, 0]), Some(V5));
        // Session expiry is a CONNECT/CONNACK/DISCONNECT property, not a PUBLISH one.
        malformed(&publish_with_props(&[0x11, 0, 0, 0, 1]), Some(V5));
        // Topic alias does not belong in PUBACK, reason string not in UNSUBSCRIBE.
        malformed(&frame(0x40, &[0, 1, 0, 3, 0x23, 0, 1]), Some(V5));
        malformed(&frame(0xA2, &[0, 1, 4, 0x1F, 0, 1, b'x', 0, 1, b'a']), Some(V5));
        // Will delay is only allowed among will properties.
        let connect = frame(0x10, &connect_body(b"MQTT", 5, 0x02, &[5, 0x18, 0, 0, 0, 1, 0, 0]));
        malformed(&connect, None);
    }

    #[test]
    fn property_length_beyond_packet_is_malformed() {
        malformed(&frame(0x30, &[0, 1, b't', 9, 0x01, 1]), Some(V5));
        // A property value running past its block is malformed too.
        malformed(&frame(0x30, &[0, 1, b't', 2, 0x02, 0, 0, 0, 0]), Some(V5));
    }

    #[test]
    fn encoder_skips_properties_the_packet_cannot_carry() {
        let props = Properties {
            topic_alias: Some(3),
            reason_string: Some("why".into()),
            receive_maximum: Some(0),
            ..Properties::default()
        };
        let ack = Packet::PubAck(Ack { packet_id: 1, reason_code: 0, properties: props.clone() });
        let Packet::PubAck(decoded) = dec_ok(&enc(&ack, V5), Some(V5)) else { panic!("not a puback") };
        assert_eq!(decoded.properties.reason_string.as_deref(), Some("why"));
        assert_eq!(decoded.properties.topic_alias, None);
        let connack = Packet::ConnAck(ConnAck { session_present: false, reason_code: 0, properties: props });
        let Packet::ConnAck(decoded) = dec_ok(&enc(&connack, V5), Some(V5)) else { panic!("not a connack") };
        assert_eq!(decoded.properties.receive_maximum, None);
        assert_eq!(decoded.properties.topic_alias, None);
    }

    #[test]
    fn v311_drops_properties() {
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "t".into(),
            packet_id: None,
            properties: Properties { message_expiry_interval: Some(1), ..Properties::default() },
            payload: Bytes::from_static(b"x"),
        });
        assert_eq!(&enc(&packet, V311)[..], &[0x31, 0x04, 0, 1, b't', b'x'][..]);
    }

    // ---- PUBLISH ------------------------------------------------------------------------

    #[test]
    fn publish_packet_id_rules() {
        malformed(&frame(0x32, &[0, 1, b't', 0, 0]), Some(V311));
        malformed(&frame(0x34, &[0, 1, b't', 0]), Some(V311));
        let p = dec_ok(&frame(0x30, &[0, 1, b't', 0, 0]), Some(V311));
        assert!(matches!(p, Packet::Publish(Publish { packet_id: None, ref payload, .. }) if payload[..] == [0, 0]));
        // 5.0 allows an empty topic (a topic alias stands in for it).
        let p = dec_ok(&frame(0x30, &[0, 0, 3, 0x23, 0, 1, b'x']), Some(V5));
        assert!(matches!(p, Packet::Publish(Publish { ref topic, .. }) if topic.is_empty()));
    }

    #[test]
    fn publish_payload_is_not_copied() {
        let bytes = frame(0x30, &[0, 1, b't', b'p', b'a', b'y']);
        let mut buf = BytesMut::from(&bytes[..]);
        let start = buf.as_ptr() as usize;
        let end = start + buf.len();
        let Ok(Some(Packet::Publish(p))) = decode(&mut buf, Some(V311), NO_LIMIT) else { panic!("not a publish") };
        let at = p.payload.as_ptr() as usize;
        assert!(at >= start && at + p.payload.len() <= end);
        assert_eq!(&p.payload[..], b"pay");
    }

    #[test]
    fn publish_encoder_clamps() {
        let mut publish = Publish {
            dup: true,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            packet_id: Some(5),
            properties: Properties::default(),
            payload: Bytes::new(),
        };
        assert_eq!(&enc(&Packet::Publish(publish.clone()), V311)[..], &[0x30, 3, 0, 1, b't'][..]);
        publish.qos = QoS::AtLeastOnce;
        publish.packet_id = None;
        let bytes = enc(&Packet::Publish(publish), V311);
        assert_eq!(&bytes[..], &[0x3A, 5, 0, 1, b't', 0, 0][..]);
        malformed(&bytes, Some(V311));
    }

    // ---- acknowledgements ---------------------------------------------------------------

    #[test]
    fn v5_ack_short_forms() {
        assert_eq!(dec_ok(&[0x40, 2, 0, 1], Some(V5)), Packet::PubAck(Ack::ok(1)));
        let with_reason = Ack { reason_code: 0x10, ..Ack::ok(1) };
        assert_eq!(dec_ok(&[0x50, 3, 0, 1, 0x10], Some(V5)), Packet::PubRec(with_reason.clone()));
        assert_eq!(dec_ok(&[0x70, 4, 0, 1, 0x10, 0], Some(V5)), Packet::PubComp(with_reason.clone()));
        malformed(&[0x40, 1, 0], Some(V5));
        malformed(&[0x40, 2, 0, 0], Some(V5));
        // Encoding picks the shortest form.
        assert_eq!(&enc(&Packet::PubAck(Ack::ok(1)), V5)[..], &[0x40, 2, 0, 1][..]);
        assert_eq!(&enc(&Packet::PubRel(with_reason.clone()), V5)[..], &[0x62, 3, 0, 1, 0x10][..]);
        let with_props =
            Ack { properties: Properties { reason_string: Some("r".into()), ..Properties::default() }, ..Ack::ok(1) };
        assert_eq!(&enc(&Packet::PubAck(with_props), V5)[..], &[0x40, 8, 0, 1, 0, 4, 0x1F, 0, 1, b'r'][..]);
        // 3.1.1 writes the packet id only.
        assert_eq!(&enc(&Packet::PubRec(with_reason), V311)[..], &[0x50, 2, 0, 1][..]);
        malformed(&[0x50, 3, 0, 1, 0x10], Some(V311));
    }

    #[test]
    fn v311_connack_mapping() {
        let table = [
            (0x00, 0),
            (0x84, 1),
            (0x85, 2),
            (0x88, 3),
            (0x89, 3),
            (0x8B, 3),
            (0x86, 4),
            (0x87, 5),
            (0x8C, 5),
            (0x80, 3),
            (0x9F, 3),
        ];
        for (reason_code, v3) in table {
            let packet =
                Packet::ConnAck(ConnAck { session_present: false, reason_code, properties: Properties::default() });
            assert_eq!(&enc(&packet, V311)[..], &[0x20, 2, 0, v3][..], "reason {reason_code:#x}");
        }
        for (v3, reason_code) in [(0, 0x00), (1, 0x84), (2, 0x85), (3, 0x88), (4, 0x86), (5, 0x87)] {
            let packet = dec_ok(&[0x20, 2, 0, v3], Some(V311));
            let Packet::ConnAck(c) = packet else { panic!("not a connack") };
            assert_eq!(c.reason_code, reason_code);
        }
        malformed(&[0x20, 2, 0, 6], Some(V311));
        malformed(&[0x20, 2, 0x02, 0], Some(V311));
        protocol(&[0x20, 2, 0x01, 5], Some(V311));
        let present = dec_ok(&[0x20, 2, 1, 0], Some(V311));
        assert!(matches!(present, Packet::ConnAck(ConnAck { session_present: true, .. })));
    }

    #[test]
    fn refused_connack_never_claims_a_session() {
        let packet =
            Packet::ConnAck(ConnAck { session_present: true, reason_code: 0x87, properties: Properties::default() });
        assert_eq!(&enc(&packet, V5)[..], &[0x20, 3, 0, 0x87, 0][..]);
    }

    // ---- SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK -------------------------------------

    fn subscribe_v311(options: u8) -> Vec<u8> {
        frame(0x82, &[0, 1, 0, 1, b'a', options])
    }

    fn subscribe_v5(options: u8) -> Vec<u8> {
        frame(0x82, &[0, 1, 0, 0, 1, b'a', options])
    }

    #[test]
    fn subscribe_options_v311() {
        malformed(&subscribe_v311(3), Some(V311));
        malformed(&subscribe_v311(0x04), Some(V311));
        malformed(&subscribe_v311(0x80), Some(V311));
        let p = dec_ok(&subscribe_v311(2), Some(V311));
        let Packet::Subscribe(s) = p else { panic!("not a subscribe") };
        assert_eq!(s.filters, vec![("a".to_string(), SubOptions { qos: QoS::ExactlyOnce, ..SubOptions::default() })]);
    }

    #[test]
    fn subscribe_options_v5() {
        protocol(&subscribe_v5(3), Some(V5));
        protocol(&subscribe_v5(0x30), Some(V5));
        malformed(&subscribe_v5(0x40), Some(V5));
        malformed(&subscribe_v5(0x80), Some(V5));
        let Packet::Subscribe(s) = dec_ok(&subscribe_v5(0x2D), Some(V5)) else { panic!("not a subscribe") };
        let expected =
            SubOptions { qos: QoS::AtLeastOnce, no_local: true, retain_as_published: true, retain_handling: 2 };
        assert_eq!(s.filters[0].1, expected);
        // Retain handling beyond 2 is clamped when encoding.
        let packet = Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: vec![("a".into(), SubOptions { retain_handling: 9, ..SubOptions::default() })],
        });
        assert_eq!(enc(&packet, V5).last(), Some(&0x20));
    }

    #[test]
    fn subscribe_needs_filters_and_packet_id() {
        protocol(&frame(0x82, &[0, 1]), Some(V311));
        protocol(&frame(0x82, &[0, 1, 0]), Some(V5));
        malformed(&frame(0x82, &[0, 0, 0, 1, b'a', 0]), Some(V311));
        malformed(&frame(0x82, &[0, 1, 0, 1, b'a']), Some(V311));
        protocol(&frame(0xA2, &[0, 1]), Some(V311));
        protocol(&frame(0xA2, &[0, 1, 0]), Some(V5));
        malformed(&frame(0xA2, &[0, 0, 0, 1, b'a']), Some(V311));
    }

    #[test]
    fn suback_v311_codes() {
        let packet = Packet::SubAck(SubAck {
            packet_id: 2,
            properties: Properties::default(),
            reason_codes: vec![0, 1, 2, 0x80, 0x87, 0x9E, 0x05],
        });
        assert_eq!(&enc(&packet, V311)[..], &[0x90, 9, 0, 2, 0, 1, 2, 0x80, 0x80, 0x80, 0x80][..]);
        malformed(&[0x90, 3, 0, 2, 0x87], Some(V311));
        protocol(&[0x90, 2, 0, 2], Some(V311));
        let Packet::SubAck(s) = dec_ok(&[0x90, 4, 0, 2, 0, 0x87], Some(V5)) else { panic!("not a suback") };
        assert_eq!(s.reason_codes, vec![0x87]);
    }

    #[test]
    fn unsuback_versions() {
        let packet =
            Packet::UnsubAck(UnsubAck { packet_id: 4, properties: Properties::default(), reason_codes: vec![0x11] });
        assert_eq!(&enc(&packet, V311)[..], &[0xB0, 2, 0, 4][..]);
        assert_eq!(&enc(&packet, V5)[..], &[0xB0, 4, 0, 4, 0, 0x11][..]);
        assert_eq!(
            dec_ok(&[0xB0, 2, 0, 4], Some(V311)),
            Packet::UnsubAck(UnsubAck { packet_id: 4, properties: Properties::default(), reason_codes: vec![] })
        );
        assert_eq!(dec_ok(&[0xB0, 4, 0, 4, 0, 0x11], Some(V5)), packet);
        protocol(&[0xB0, 3, 0, 4, 0], Some(V5));
    }

    // ---- PING / DISCONNECT --------------------------------------------------------------

    #[test]
    fn ping_and_disconnect() {
        assert_eq!(&enc(&Packet::PingReq, V311)[..], &[0xC0, 0][..]);
        assert_eq!(&enc(&Packet::PingResp, V5)[..], &[0xD0, 0][..]);
        malformed(&[0xC0, 1, 0], Some(V311));
        let normal = Disconnect { reason_code: 0, properties: Properties::default() };
        assert_eq!(dec_ok(&[0xE0, 0], Some(V5)), Packet::Disconnect(normal.clone()));
        assert_eq!(dec_ok(&[0xE0, 0], Some(V311)), Packet::Disconnect(normal.clone()));
        assert_eq!(dec_ok(&[0xE0, 2, 0, 0], Some(V5)), Packet::Disconnect(normal.clone()));
        assert_eq!(&enc(&Packet::Disconnect(normal), V5)[..], &[0xE0, 0][..]);
        let with_will = Disconnect { reason_code: 0x04, properties: Properties::default() };
        assert_eq!(dec_ok(&[0xE0, 1, 4], Some(V5)), Packet::Disconnect(with_will.clone()));
        assert_eq!(&enc(&Packet::Disconnect(with_will.clone()), V5)[..], &[0xE0, 1, 4][..]);
        assert_eq!(&enc(&Packet::Disconnect(with_will), V311)[..], &[0xE0, 0][..]);
        malformed(&[0xE0, 1, 4], Some(V311));
    }

    // ---- errors -------------------------------------------------------------------------

    #[test]
    fn error_reason_codes_and_display() {
        assert_eq!(DecodeError::Malformed("x").reason_code(), 0x81);
        assert_eq!(DecodeError::Protocol("x").reason_code(), 0x82);
        assert_eq!(DecodeError::TooLarge { size: 2, max: 1 }.reason_code(), 0x95);
        assert_eq!(DecodeError::UnsupportedVersion(9).reason_code(), 0x84);
        assert_eq!(DecodeError::Malformed("bad").to_string(), "malformed packet: bad");
        assert!(DecodeError::TooLarge { size: 2, max: 1 }.to_string().contains("2 bytes"));
    }

    // ---- property tests -----------------------------------------------------------------

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>().prop_filter("no U+0000", |c| *c != '\0'), 0..6)
            .prop_map(|chars| chars.into_iter().collect())
    }

    fn blob() -> impl Strategy<Value = Bytes> {
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from)
    }

    fn flag() -> impl Strategy<Value = Option<u8>> {
        prop::option::of(0u8..=1)
    }

    fn qos() -> impl Strategy<Value = QoS> {
        prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
    }

    fn packet_id() -> impl Strategy<Value = u16> {
        1..=u16::MAX
    }

    /// Any valid combination of every property; callers keep the ones their packet allows.
    fn all_properties() -> impl Strategy<Value = Properties> {
        use prop::collection::vec;
        use prop::option::of;
        let a = (
            of(any::<u8>()),
            of(any::<u32>()),
            of(text()),
            of(text()),
            of(blob()),
            vec(1..=268_435_455u32, 0..3),
            of(any::<u32>()),
            of(text()),
            of(any::<u16>()),
            of(text()),
        );
        let b = (
            of(blob()),
            flag(),
            of(any::<u32>()),
            flag(),
            of(text()),
            of(text()),
            of(text()),
            of(1..=u16::MAX),
            of(any::<u16>()),
            of(any::<u16>()),
        );
        let c = (flag(), flag(), vec((text(), text()), 0..3), of(1..=u32::MAX), flag(), flag(), flag());
        (a, b, c).prop_map(|(a, b, c)| {
            let mut p = Properties {
                payload_format_indicator: a.0,
                message_expiry_interval: a.1,
                content_type: a.2,
                response_topic: a.3,
                correlation_data: a.4,
                subscription_identifiers: a.5,
                session_expiry_interval: a.6,
                assigned_client_identifier: a.7,
                server_keep_alive: a.8,
                authentication_method: a.9,
                authentication_data: b.0,
                request_problem_information: b.1,
                will_delay_interval: b.2,
                request_response_information: b.3,
                response_information: b.4,
                server_reference: b.5,
                reason_string: b.6,
                receive_maximum: b.7,
                topic_alias_maximum: b.8,
                topic_alias: b.9,
                maximum_qos: c.0,
                retain_available: c.1,
                user_properties: c.2,
                maximum_packet_size: c.3,
                wildcard_subscription_available: c.4,
                subscription_identifiers_available: c.5,
                shared_subscription_available: c.6,
            };
            if p.authentication_method.is_none() {
                p.authentication_data = None;
            }
            p
        })
    }

    // The spec's table of where each property may appear (MQTT 5.0 section 2.2.2.2),
    // written out independently of the codec's own table.

    fn connect_props(p: Properties) -> Properties {
        Properties {
            session_expiry_interval: p.session_expiry_interval,
            authentication_method: p.authentication_method,
            authentication_data: p.authentication_data,
            request_problem_information: p.request_problem_information,
            request_response_information: p.request_response_information,
            receive_maximum: p.receive_maximum,
            topic_alias_maximum: p.topic_alias_maximum,
            user_properties: p.user_properties,
            maximum_packet_size: p.maximum_packet_size,
            ..Properties::default()
        }
    }

    fn will_props(p: Properties) -> Properties {
        Properties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            will_delay_interval: p.will_delay_interval,
            user_properties: p.user_properties,
            ..Properties::default()
        }
    }

    fn connack_props(p: Properties) -> Properties {
        Properties {
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            subscription_identifiers: vec![],
            request_problem_information: None,
            will_delay_interval: None,
            request_response_information: None,
            topic_alias: None,
            ..p
        }
    }

    fn publish_props(p: Properties) -> Properties {
        Properties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            subscription_identifiers: p.subscription_identifiers,
            topic_alias: p.topic_alias,
            user_properties: p.user_properties,
            ..Properties::default()
        }
    }

    fn reason_props(p: Properties) -> Properties {
        Properties { reason_string: p.reason_string, user_properties: p.user_properties, ..Properties::default() }
    }

    fn subscribe_props(p: Properties) -> Properties {
        Properties {
            subscription_identifiers: p.subscription_identifiers.into_iter().take(1).collect(),
            user_properties: p.user_properties,
            ..Properties::default()
        }
    }

    fn unsubscribe_props(p: Properties) -> Properties {
        Properties { user_properties: p.user_properties, ..Properties::default() }
    }

    fn disconnect_props(p: Properties) -> Properties {
        Properties {
            session_expiry_interval: p.session_expiry_interval,
            server_reference: p.server_reference,
            reason_string: p.reason_string,
            user_properties: p.user_properties,
            ..Properties::default()
        }
    }

    fn auth_props(p: Properties) -> Properties {
        Properties {
            authentication_method: p.authentication_method,
            authentication_data: p.authentication_data,
            reason_string: p.reason_string,
            user_properties: p.user_properties,
            ..Properties::default()
        }
    }

    /// Properties for a packet: none before 5.0, otherwise often none, else a random
    /// selection of the allowed ones.
    fn props(v5: bool, keep: fn(Properties) -> Properties) -> BoxedStrategy<Properties> {
        if v5 {
            prop_oneof![1 => Just(Properties::default()), 3 => all_properties().prop_map(keep)].boxed()
        } else {
            Just(Properties::default()).boxed()
        }
    }

    /// A reason code: any byte for 5.0, success only before.
    fn code(v5: bool) -> BoxedStrategy<u8> {
        if v5 {
            prop_oneof![Just(0u8), any::<u8>()].boxed()
        } else {
            Just(0).boxed()
        }
    }

    fn will(v5: bool) -> impl Strategy<Value = Will> {
        (text(), blob(), qos(), any::<bool>(), props(v5, will_props))
            .prop_map(|(topic, payload, qos, retain, properties)| Will { topic, payload, qos, retain, properties })
    }

    fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
        let v5 = version.is_v5();
        (
            any::<bool>(),
            any::<u16>(),
            props(v5, connect_props),
            text(),
            prop::option::of(will(v5)),
            prop::option::of(text()),
            prop::option::of(blob()),
        )
            .prop_map(move |(clean_start, keep_alive, properties, client_id, will, username, password)| {
                let password = password.filter(|_| v5 || username.is_some());
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    properties,
                    client_id,
                    will,
                    username,
                    password,
                }))
            })
    }

    fn connack(v5: bool) -> impl Strategy<Value = Packet> {
        let codes = if v5 {
            any::<u8>().boxed()
        } else {
            prop::sample::select(vec![0u8, 0x84, 0x85, 0x86, 0x87, 0x88]).boxed()
        };
        (any::<bool>(), codes, props(v5, connack_props)).prop_map(|(present, reason_code, properties)| {
            let session_present = present && reason_code == 0;
            Packet::ConnAck(ConnAck { session_present, reason_code, properties })
        })
    }

    fn publish(v5: bool) -> impl Strategy<Value = Packet> {
        (any::<bool>(), qos(), any::<bool>(), text(), packet_id(), props(v5, publish_props), blob()).prop_map(
            |(dup, qos, retain, topic, id, properties, payload)| {
                let at_most_once = qos == QoS::AtMostOnce;
                Packet::Publish(Publish {
                    dup: dup && !at_most_once,
                    qos,
                    retain,
                    topic,
                    packet_id: if at_most_once { None } else { Some(id) },
                    properties,
                    payload,
                })
            },
        )
    }

    fn ack(v5: bool) -> impl Strategy<Value = Ack> {
        (packet_id(), code(v5), props(v5, reason_props)).prop_map(|(packet_id, reason_code, properties)| Ack {
            packet_id,
            reason_code,
            properties,
        })
    }

    fn sub_options(v5: bool) -> BoxedStrategy<SubOptions> {
        if v5 {
            (qos(), any::<bool>(), any::<bool>(), 0u8..=2)
                .prop_map(|(qos, no_local, retain_as_published, retain_handling)| SubOptions {
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                })
                .boxed()
        } else {
            qos().prop_map(|qos| SubOptions { qos, ..SubOptions::default() }).boxed()
        }
    }

    fn subscribe(v5: bool) -> impl Strategy<Value = Packet> {
        let filters = prop::collection::vec((text(), sub_options(v5)), 1..4);
        (packet_id(), props(v5, subscribe_props), filters).prop_map(|(packet_id, properties, filters)| {
            Packet::Subscribe(Subscribe { packet_id, properties, filters })
        })
    }

    fn suback(v5: bool) -> impl Strategy<Value = Packet> {
        let code = if v5 { any::<u8>().boxed() } else { prop::sample::select(vec![0u8, 1, 2, 0x80]).boxed() };
        (packet_id(), props(v5, reason_props), prop::collection::vec(code, 1..4)).prop_map(
            |(packet_id, properties, reason_codes)| Packet::SubAck(SubAck { packet_id, properties, reason_codes }),
        )
    }

    fn unsubscribe(v5: bool) -> impl Strategy<Value = Packet> {
        (packet_id(), props(v5, unsubscribe_props), prop::collection::vec(text(), 1..4)).prop_map(
            |(packet_id, properties, filters)| Packet::Unsubscribe(Unsubscribe { packet_id, properties, filters }),
        )
    }

    fn unsuback(v5: bool) -> impl Strategy<Value = Packet> {
        let codes = if v5 { prop::collection::vec(any::<u8>(), 1..4).boxed() } else { Just(vec![]).boxed() };
        (packet_id(), props(v5, reason_props), codes).prop_map(|(packet_id, properties, reason_codes)| {
            Packet::UnsubAck(UnsubAck { packet_id, properties, reason_codes })
        })
    }

    fn disconnect(v5: bool, keep: fn(Properties) -> Properties) -> impl Strategy<Value = Disconnect> {
        (code(v5), props(v5, keep)).prop_map(|(reason_code, properties)| Disconnect { reason_code, properties })
    }

    /// Every packet that `version` can represent.
    fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
        let v5 = version.is_v5();
        let common = prop_oneof![
            connect(version),
            connack(v5),
            publish(v5),
            ack(v5).prop_map(Packet::PubAck),
            ack(v5).prop_map(Packet::PubRec),
            ack(v5).prop_map(Packet::PubRel),
            ack(v5).prop_map(Packet::PubComp),
            subscribe(v5),
            suback(v5),
            unsubscribe(v5),
            unsuback(v5),
            Just(Packet::PingReq),
            Just(Packet::PingResp),
            disconnect(v5, disconnect_props).prop_map(Packet::Disconnect),
        ];
        if v5 {
            prop_oneof![14 => common, 1 => disconnect(true, auth_props).prop_map(Packet::Auth)].boxed()
        } else {
            common.boxed()
        }
    }

    fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
        prop_oneof![Just(V31), Just(V311), Just(V5)].prop_flat_map(|v| (Just(v), packet(v)))
    }

    /// What the fuzz target does: decode everything, re-encode each packet, decode again
    /// and compare. Must never panic.
    fn decode_all(data: &[u8], start: Option<ProtocolVersion>) {
        let mut buf = BytesMut::from(data);
        let mut version = start;
        while let Ok(Some(packet)) = decode(&mut buf, version, NO_LIMIT) {
            let encode_as = match (&packet, version) {
                (Packet::Connect(c), _) => c.protocol,
                (_, Some(v)) => v,
                (_, None) => panic!("non-CONNECT decoded before CONNECT"),
            };
            let mut again = enc(&packet, encode_as);
            let len = again.len();
            assert_eq!(decode(&mut again, version, len), Ok(Some(packet.clone())));
            assert!(again.is_empty());
            if let (Packet::Connect(c), None) = (&packet, version) {
                version = Some(c.protocol);
            }
        }
    }

    fn versioned_publish() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
        prop_oneof![Just(V311), Just(V5)].prop_flat_map(|v| (Just(v), publish(v.is_v5())))
    }

    proptest! {
        #[test]
        fn a_shared_publish_copy_is_the_packet_encoded_alone(
            (version, packet) in versioned_publish(),
            packet_id in packet_id(),
            dup in any::<bool>(),
        ) {
            let Packet::Publish(mut p) = packet else { unreachable!() };
            let shared = crate::shared_publish::SharedPublish::encode(p.clone(), version).expect("encodable");
            p.packet_id = (p.qos != QoS::AtMostOnce).then_some(packet_id);
            p.dup = dup && p.qos != QoS::AtMostOnce;
            let mut copy = BytesMut::from(&b"before"[..]);
            shared.write_to(&mut copy, p.packet_id, p.dup);
            prop_assert_eq!(&copy[6..], &enc(&Packet::Publish(p), version)[..]);
            prop_assert_eq!(shared.len(), copy.len() - 6);
        }

        #[test]
        fn round_trip((version, packet) in versioned_packet()) {
            let mut buf = enc(&packet, version);
            let len = buf.len();
            prop_assert!(len >= 2);
            buf.put_slice(b"\xC0"); // the next packet's first byte must stay put
            let decoded = decode(&mut buf, Some(version), len);
            prop_assert_eq!(decoded, Ok(Some(packet.clone())));
            prop_assert_eq!(&buf[..], b"\xC0");
            if let Packet::Connect(_) = packet {
                let mut buf = enc(&packet, version);
                prop_assert_eq!(decode(&mut buf, None, len), Ok(Some(packet)));
            }
        }

        #[test]
        fn one_byte_at_a_time((version, packet) in versioned_packet()) {
            let bytes = enc(&packet, version);
            let mut buf = BytesMut::new();
            for (i, &byte) in bytes.iter().enumerate() {
                buf.put_u8(byte);
                let result = decode(&mut buf, Some(version), usize::MAX);
                if i + 1 < bytes.len() {
                    prop_assert_eq!(result, Ok(None));
                    prop_assert_eq!(buf.len(), i + 1);
                } else {
                    prop_assert_eq!(result, Ok(Some(packet.clone())));
                    prop_assert!(buf.is_empty());
                }
            }
        }

        #[test]
        fn too_small_limit_is_too_large((version, packet) in versioned_packet()) {
            let mut buf = enc(&packet, version);
            let len = buf.len();
            let result = decode(&mut buf, Some(version), len - 1);
            prop_assert_eq!(result, Err(DecodeError::TooLarge { size: len, max: len - 1 }));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
            for version in [None, Some(V31), Some(V311), Some(V5)] {
                decode_all(&data, version);
            }
        }

        #[test]
        fn mutated_packets_never_panic_and_re_encode(
            (version, packet) in versioned_packet(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = enc(&packet, version).to_vec();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            for start in [None, Some(version)] {
                decode_all(&bytes, start);
            }
        }
    }
}
