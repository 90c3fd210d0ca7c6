//! A message leaving for the client: the PUBLISH packet for its protocol version, with the
//! message's properties, the remaining expiry, subscription identifiers and an outbound
//! topic alias when the client allows them. A PUBLISH with nothing particular to the client
//! is a copy of the message's shared encoding (`broker/wire.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use ferrite_mqtt::codec;
use ferrite_mqtt::packet::{Packet, Properties, ProtocolVersion, Publish};
use ferrite_mqtt::shared_publish::SharedPublish;

use crate::broker::session::Outgoing;
use crate::broker::wire;

/// What outbound publishes read and change of a connection.
#[derive(Debug, Default)]
pub struct Outbound {
    /// The client speaks MQTT 5 (properties, aliases).
    pub v5: bool,
    /// Aliases the client accepts from us.
    pub alias_max: u16,
    /// Aliases given so far.
    pub aliases: HashMap<Arc<str>, u16>,
}

/// The PUBLISH for `out`, or `None` when the message expired before it could leave.
pub fn publish_packet(
    outbound: &mut Outbound,
    out: &Outgoing,
    packet_id: Option<u16>,
    dup: bool,
    now_ms: u64,
) -> Option<Publish> {
    let mut properties = Properties::default();
    if outbound.v5 {
        properties = out.msg.properties.clone();
        properties.message_expiry_interval = out.msg.remaining_expiry(now_ms)?;
        properties.subscription_identifiers = out.subscription_ids.clone();
    }
    let mut topic = out.msg.topic.to_string();
    if outbound.alias_max > 0 {
        if let Some(alias) = outbound.aliases.get(&out.msg.topic) {
            properties.topic_alias = Some(*alias);
            topic.clear();
        } else if outbound.aliases.len() < outbound.alias_max as usize {
            let alias = outbound.aliases.len() as u16 + 1;
            outbound.aliases.insert(out.msg.topic.clone(), alias);
            properties.topic_alias = Some(alias);
        }
    }
    Some(Publish {
        dup,
        qos: out.qos,
        retain: out.retain,
        topic,
        packet_id,
        properties,
        payload: out.msg.payload.clone(),
    })
}

/// Appends the PUBLISH for `out` to `buf` and returns its length, or `None` when the
/// message expired before it could leave (nothing is appended).
pub fn write_publish(
    outbound: &mut Outbound,
    version: ProtocolVersion,
    out: &Outgoing,
    packet_id: Option<u16>,
    dup: bool,
    now_ms: u64,
    buf: &mut BytesMut,
) -> Option<usize> {
    let start = buf.len();
    let same_for_everyone = !outbound.v5
        || (outbound.alias_max == 0
            && out.subscription_ids.is_empty()
            && out.msg.properties.message_expiry_interval.is_none());
    if same_for_everyone {
        let key = wire::shape(outbound.v5, out.qos as u8, out.retain);
        let shared = out.msg.wire.get_or_encode(key, || {
            let publish =
                publish_packet(&mut Outbound { v5: outbound.v5, ..Outbound::default() }, out, None, false, now_ms)?;
            SharedPublish::encode(publish, version)
        });
        if let Some(shared) = shared {
            shared.write_to(buf, packet_id, dup);
            return Some(buf.len() - start);
        }
    }
    let publish = publish_packet(outbound, out, packet_id, dup, now_ms)?;
    codec::encode(&Packet::Publish(publish), version, buf);
    Some(buf.len() - start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use ferrite_mqtt::packet::QoS;

    fn outgoing(topic: &str, expiry: Option<u32>, created_ms: u64) -> Outgoing {
        let mut msg = Message::internal(topic.to_string(), serde_json::json!({}));
        msg.properties.message_expiry_interval = expiry;
        msg.created_ms = created_ms;
        Outgoing {
            msg: Arc::new(msg),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![5],
            store_seq: None,
        }
    }

    #[test]
    fn the_first_publish_of_a_topic_sets_an_alias_and_later_ones_use_it() {
        let mut o = Outbound { v5: true, alias_max: 1, ..Outbound::default() };
        let first = publish_packet(&mut o, &outgoing("a/b", None, 0), Some(1), false, 0).unwrap();
        assert_eq!((first.topic.as_str(), first.properties.topic_alias), ("a/b", Some(1)));
        let second = publish_packet(&mut o, &outgoing("a/b", None, 0), Some(2), false, 0).unwrap();
        assert_eq!((second.topic.as_str(), second.properties.topic_alias), ("", Some(1)));
        let other = publish_packet(&mut o, &outgoing("c", None, 0), Some(3), false, 0).unwrap();
        assert_eq!((other.topic.as_str(), other.properties.topic_alias), ("c", None), "no alias left");
        assert_eq!(first.properties.subscription_identifiers, vec![5]);
    }

    #[test]
    fn a_copy_of_the_shared_encoding_is_what_the_client_would_get_encoded_alone() {
        use ferrite_mqtt::packet::ProtocolVersion::{V311, V5};
        let mut plain = outgoing("a/b", None, 0);
        plain.subscription_ids.clear();
        let with_ids = outgoing("a/b", None, 0); // subscription id 5: particular to the client
        for (version, out, alias_max) in [(V311, &plain, 0), (V5, &plain, 0), (V5, &with_ids, 0), (V5, &plain, 2)] {
            let shared_before = format!("{:?}", out.msg.wire);
            for (packet_id, dup) in [(Some(1), false), (Some(700), true)] {
                let mut o = Outbound { v5: version.is_v5(), alias_max, ..Outbound::default() };
                let mut buf = BytesMut::new();
                let n = write_publish(&mut o, version, out, packet_id, dup, 0, &mut buf).unwrap();
                let mut alone = Outbound { v5: version.is_v5(), alias_max, ..Outbound::default() };
                let p = publish_packet(&mut alone, out, packet_id, dup, 0).unwrap();
                let mut expected = BytesMut::new();
                codec::encode(&Packet::Publish(p), version, &mut expected);
                assert_eq!(
                    (n, &buf[..]),
                    (expected.len(), &expected[..]),
                    "{version:?} alias_max {alias_max} before {shared_before}"
                );
            }
        }
        assert!(
            format!("{:?}", plain.msg.wire).contains("shapes: [2, 10]"),
            "3.1.1 and 5 QoS 1 shapes: {:?}",
            plain.msg.wire
        );
    }

    #[test]
    fn expiry_counts_down_and_an_expired_message_does_not_leave() {
        let mut o = Outbound { v5: true, ..Outbound::default() };
        let p = publish_packet(&mut o, &outgoing("t", Some(10), 1_000), None, false, 4_000).unwrap();
        assert_eq!(p.properties.message_expiry_interval, Some(7));
        assert_eq!(publish_packet(&mut o, &outgoing("t", Some(10), 1_000), None, false, 11_000), None);
        let mut old = Outbound::default();
        let p = publish_packet(&mut old, &outgoing("t", Some(10), 1_000), None, true, 11_000).unwrap();
        assert!(p.dup && p.properties == Properties::default(), "MQTT 3.1.1 carries no properties");
    }
}
