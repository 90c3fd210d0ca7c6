//! An application message as the broker routes and stores it, independent of the
//! connection it arrived on (no packet id, no topic alias).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferrite_mqtt::packet::{Properties, QoS};

use super::wire::WireCache;

/// A routed message. Shared (`Arc`) between every subscriber it is delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Properties forwarded to subscribers: payload format, expiry, content type,
    /// response topic, correlation data, user properties.
    pub properties: Properties,
    /// The publishing client, for no-local subscriptions.
    pub publisher: Option<Arc<str>>,
    /// Wall-clock milliseconds at arrival, for message expiry across restarts.
    pub created_ms: u64,
    /// How many rule republishes led to this message (not stored). The rule runtime stops
    /// at its hop limit, so a rule that republishes to a topic it reads cannot
    /// loop forever.
    pub rule_hops: u8,
    /// Names this message on every node it reaches, so a session's copies on other nodes
    /// can drop what its owner consumed (`broker/replica.rs`); 0 for records stored before
    /// messages had one.
    pub id: u128,
    /// The PUBLISH packets of this message already encoded for its subscribers (not stored).
    pub wire: WireCache,
}

/// A fresh message id: random, so nodes need not agree on anything to make them unique.
pub fn new_id() -> u128 {
    rand::random::<u128>() | 1
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Message {
    /// A JSON document the node itself publishes (shadow responses, lifecycle events) at
    /// QoS 1, not retained.
    pub fn internal(topic: String, doc: serde_json::Value) -> Message {
        Message {
            topic: topic.into(),
            payload: Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
            publisher: None,
            created_ms: now_ms(),
            rule_hops: 0,
            id: new_id(),
            wire: Default::default(),
        }
    }

    /// Keeps only the properties a broker forwards from a PUBLISH.
    pub fn forwarded_properties(p: &Properties) -> Properties {
        Properties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
            ..Properties::default()
        }
    }

    /// Seconds of life left at `now_ms`: `Some(None)` for no expiry, `None` once the
    /// message has expired.
    pub fn remaining_expiry(&self, now_ms: u64) -> Option<Option<u32>> {
        match self.properties.message_expiry_interval {
            None => Some(None),
            Some(secs) => {
                let elapsed = now_ms.saturating_sub(self.created_ms) / 1000;
                (elapsed < secs as u64).then(|| Some(secs - elapsed as u32))
            }
        }
    }

    /// Serializes for the storage engine (retained messages and session queues).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(2); // format version
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        out.push(self.qos as u8 | (u8::from(self.retain) << 2));
        put_bytes(out, self.topic.as_bytes());
        put_bytes(out, &self.payload);
        put_opt_bytes(out, self.publisher.as_deref().map(str::as_bytes));
        let p = &self.properties;
        out.push(p.payload_format_indicator.map_or(0xFF, |v| v));
        match p.message_expiry_interval {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_be_bytes());
            }
            None => out.push(0),
        }
        put_opt_bytes(out, p.content_type.as_deref().map(str::as_bytes));
        put_opt_bytes(out, p.response_topic.as_deref().map(str::as_bytes));
        put_opt_bytes(out, p.correlation_data.as_deref());
        out.extend_from_slice(&(p.user_properties.len() as u32).to_be_bytes());
        for (k, v) in &p.user_properties {
            put_bytes(out, k.as_bytes());
            put_bytes(out, v.as_bytes());
        }
    }

    /// Parses what [`Message::encode`] wrote; `None` for a corrupt record.
    pub fn decode(buf: &[u8]) -> Option<Message> {
        let mut r = Reader { buf };
        let id = match r.u8()? {
            1 => 0,
            2 => u128::from_be_bytes(r.take(16)?.try_into().ok()?),
            _ => return None,
        };
        let created_ms = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
        let flags = r.u8()?;
        let qos = QoS::from_u8(flags & 3)?;
        let retain = flags & 4 != 0;
        let topic: Arc<str> = r.string()?.into();
        let payload = Bytes::copy_from_slice(r.bytes()?);
        let publisher = r.opt_bytes()?.map(|b| String::from_utf8(b.to_vec()).ok()).map(|s| s.map(Arc::from));
        let publisher = match publisher {
            Some(None) => return None,
            Some(Some(s)) => Some(s),
            None => None,
        };
        let mut p = Properties::default();
        let pfi = r.u8()?;
        p.payload_format_indicator = (pfi != 0xFF).then_some(pfi);
        if r.u8()? == 1 {
            p.message_expiry_interval = Some(u32::from_be_bytes(r.take(4)?.try_into().ok()?));
        }
        p.content_type = r.opt_string()?;
        p.response_topic = r.opt_string()?;
        p.correlation_data = r.opt_bytes()?.map(Bytes::copy_from_slice);
        let n = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
        for _ in 0..n {
            let k = r.string()?;
            let v = r.string()?;
            p.user_properties.push((k, v));
        }
        Some(Message {
            topic,
            payload,
            qos,
            retain,
            properties: p,
            publisher,
            created_ms,
            rule_hops: 0,
            id,
            wire: Default::default(),
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_opt_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
        None => out.push(0),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    /// Outer `None`: corrupt; inner `None`: absent.
    fn opt_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.bytes()?)),
            _ => None,
        }
    }
    fn opt_string(&mut self) -> Option<Option<String>> {
        match self.opt_bytes()? {
            None => Some(None),
            Some(b) => Some(Some(String::from_utf8(b.to_vec()).ok()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn stored_messages_round_trip(
            topic in "[a-z/]{1,20}", payload in proptest::collection::vec(any::<u8>(), 0..64),
            qos in 0u8..3, retain: bool, expiry in proptest::option::of(any::<u32>()),
            ct in proptest::option::of("[a-z]{0,8}"), publisher in proptest::option::of("[a-z]{1,8}"),
            ups in proptest::collection::vec(("[a-z]{0,4}", "[a-z]{0,4}"), 0..3),
            created in any::<u64>(), id in any::<u128>(),
        ) {
            let m = Message {
                topic: topic.into(), payload: payload.into(), qos: QoS::from_u8(qos).unwrap(), retain,
                properties: Properties { message_expiry_interval: expiry, content_type: ct, user_properties: ups, ..Default::default() },
                publisher: publisher.map(Arc::from), created_ms: created, rule_hops: 0, id, wire: Default::default(),
            };
            let mut buf = Vec::new();
            m.encode(&mut buf);
            prop_assert_eq!(Message::decode(&buf), Some(m));
        }

        #[test]
        fn decoding_garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Message::decode(&buf);
        }
    }
}
