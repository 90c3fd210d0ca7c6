//! The PUBLISH packets of one message, encoded once for all of its subscribers.
//!
//! Every subscriber that takes a message in the same shape (protocol version, QoS, retain
//! flag, and no per-subscriber property: no subscription identifier, topic alias or
//! counting-down expiry) gets a copy of the same bytes; the connections patch only the
//! packet id and DUP (`ferrite_mqtt::shared_publish`). A message usually reaches its
//! subscribers in one or two shapes, so two slots are kept; a third shape is encoded per
//! copy, as every shape was before.

use std::sync::OnceLock;

use ferrite_mqtt::shared_publish::SharedPublish;

/// One encoded shape: its key (see [`shape`]) and the packet.
type Slot = OnceLock<(u8, Option<SharedPublish>)>;

/// Encoded shapes of a message; empty until a connection first needs one.
#[derive(Default)]
pub struct WireCache {
    slots: [Slot; 2],
}

/// The key of a shape.
pub fn shape(v5: bool, qos: u8, retain: bool) -> u8 {
    (v5 as u8) << 3 | qos << 1 | retain as u8
}

impl WireCache {
    /// The packet of shape `key`, encoded by `encode` on first use; `None` when both slots
    /// hold other shapes (the caller encodes its own copy) or the packet cannot be encoded.
    pub fn get_or_encode(&self, key: u8, encode: impl FnOnce() -> Option<SharedPublish>) -> Option<&SharedPublish> {
        let mut encode = Some(encode);
        for slot in &self.slots {
            let (k, packet) = slot.get_or_init(|| (key, encode.take().and_then(|f| f())));
            if *k == key {
                return packet.as_ref();
            }
        }
        None
    }
}

impl Clone for WireCache {
    /// A copy of a message is a new message to encode (its fields may be changed).
    fn clone(&self) -> WireCache {
        WireCache::default()
    }
}

impl PartialEq for WireCache {
    /// Encodings are derived from the message; they never make two messages differ.
    fn eq(&self, _: &WireCache) -> bool {
        true
    }
}

impl Eq for WireCache {}

impl std::fmt::Debug for WireCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shapes: Vec<u8> = self.slots.iter().filter_map(|s| s.get().map(|(k, _)| *k)).collect();
        f.debug_struct("WireCache").field("shapes", &shapes).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_mqtt::packet::{ProtocolVersion, Publish, QoS};

    fn packet(qos: QoS) -> Option<SharedPublish> {
        let p = Publish {
            dup: false,
            qos,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            properties: Default::default(),
            payload: bytes::Bytes::from_static(b"x"),
        };
        SharedPublish::encode(p, ProtocolVersion::V311)
    }

    #[test]
    fn two_shapes_are_kept_and_a_third_is_left_to_the_caller() {
        let cache = WireCache::default();
        let mut encodes = 0;
        for _ in 0..3 {
            for q in [QoS::AtMostOnce, QoS::AtLeastOnce] {
                let got = cache.get_or_encode(shape(false, q as u8, false), || {
                    encodes += 1;
                    packet(q)
                });
                assert_eq!(got, packet(q).as_ref());
            }
        }
        assert_eq!(encodes, 2, "each shape encoded once");
        assert_eq!(cache.get_or_encode(shape(true, 2, false), || packet(QoS::ExactlyOnce)), None);
    }
}
