//! An inbound PUBLISH: topic aliases, the checks before routing (topic, authorization, size,
//! payload format, receive maximum) and the acknowledgement once it is routed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::identity::authz::Action;
use ferrite_mqtt::packet::{reason, Ack, Packet, Publish, QoS};
use ferrite_mqtt::topic::{self, TopicLimits};

/// What inbound publishes read and change of a connection.
#[derive(Debug, Default)]
pub struct Inbound {
    /// Topic aliases the client set (MQTT 5).
    pub aliases: HashMap<u16, Arc<str>>,
    /// QoS 1/2 publishes not yet fully acknowledged (bounded by our receive maximum).
    pub unacked: usize,
}

/// The limits an inbound publish is checked against.
#[derive(Debug, Clone)]
pub struct Limits<'a> {
    /// Aliases the client may use.
    pub topic_alias_maximum: u16,
    /// Topic length and depth.
    pub topics: &'a TopicLimits,
    /// Largest payload.
    pub max_payload: usize,
    /// QoS 1/2 publishes the client may have unacknowledged.
    pub receive_maximum: u16,
}

/// Why a PUBLISH is not routed, and so what the connection does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Answer a negative PUBACK/PUBREC with this reason code and keep the connection.
    Nack(u8, &'static str),
    /// Close the connection: the client broke the protocol (DISCONNECT with this code).
    Violation(u8, &'static str),
    /// No policy allows `action`: a negative acknowledgement when `nack` (MQTT 5, QoS 1/2),
    /// otherwise the connection closes (MQTT 3.1.1 and QoS 0 have no negative
    /// acknowledgement, so AWS IoT closes).
    NotAuthorized {
        /// The action no policy allows.
        action: &'static str,
        /// Answer with a negative acknowledgement instead of closing.
        nack: bool,
    },
}

/// The denied "action" of a publish to a topic only AWS IoT's services publish to (a
/// response, delta, document, notification or event): refused before any policy.
pub const RESERVED: &str = "publishing to a reserved topic";

/// What a client may not do in publishing to `topic` (retained when `retain`), if anything:
/// a reserved topic first, then `iot:Publish`, then `iot:RetainPublish`. Inbound PUBLISH
/// and the will, when it is due, are decided by this one rule.
pub fn denied_action(
    topic: &str,
    retain: bool,
    allowed: &mut impl FnMut(Action, &str) -> bool,
) -> Option<&'static str> {
    if !ferrite_aws::reserved::client_may_publish(topic) {
        Some(RESERVED)
    } else if !allowed(Action::Publish, topic) {
        Some("iot:Publish")
    } else if retain && !allowed(Action::RetainPublish, topic) {
        Some("iot:RetainPublish")
    } else {
        None
    }
}

/// A refusal that MQTT 5 answers with a negative acknowledgement of a QoS 1/2 publish, and
/// that closes the connection otherwise.
fn nack_or_close(v5: bool, qos: QoS, code: u8, why: &'static str) -> Refusal {
    if v5 && qos != QoS::AtMostOnce {
        Refusal::Nack(code, why)
    } else {
        Refusal::Violation(code, why)
    }
}

/// Checks `p` before it is routed: resolves an inbound topic alias (rewriting `p.topic`),
/// then the topic, the policies (`allowed`), the payload size and its UTF-8 promise.
pub fn check(
    p: &mut Publish,
    v5: bool,
    inbound: &mut Inbound,
    limits: &Limits<'_>,
    mut allowed: impl FnMut(Action, &str) -> bool,
) -> Result<(), Refusal> {
    if let Some(alias) = p.properties.topic_alias {
        if alias == 0 || alias > limits.topic_alias_maximum {
            return Err(Refusal::Violation(reason::TOPIC_ALIAS_INVALID, "topic alias is 0 or above the maximum"));
        }
        if p.topic.is_empty() {
            match inbound.aliases.get(&alias) {
                Some(t) => p.topic = t.to_string(),
                None => return Err(Refusal::Violation(reason::PROTOCOL_ERROR, "unknown topic alias")),
            }
        } else {
            inbound.aliases.insert(alias, p.topic.as_str().into());
        }
    }
    if !p.properties.subscription_identifiers.is_empty() {
        return Err(Refusal::Violation(
            reason::PROTOCOL_ERROR,
            "PUBLISH from a client must not carry subscription identifiers",
        ));
    }
    if let Err(e) = topic::validate_topic_name(&p.topic, limits.topics) {
        return Err(nack_or_close(v5, p.qos, e.reason_code, e.message));
    }
    if let Some(action) = denied_action(&p.topic, p.retain, &mut allowed) {
        return Err(Refusal::NotAuthorized { action, nack: v5 && p.qos != QoS::AtMostOnce });
    }
    if p.payload.len() > limits.max_payload {
        // 0x95 is not a valid PUBACK code: the spec's answer is DISCONNECT 0x95.
        return Err(Refusal::Violation(
            reason::PACKET_TOO_LARGE,
            "payload is larger than the maximum (default 128 KiB)",
        ));
    }
    if p.properties.payload_format_indicator == Some(1) && std::str::from_utf8(&p.payload).is_err() {
        return Err(nack_or_close(
            v5,
            p.qos,
            reason::PAYLOAD_FORMAT_INVALID,
            "payload format indicator says UTF-8 but the payload is not",
        ));
    }
    Ok(())
}

/// Counts a QoS 1/2 publish against our receive maximum (after de-duplication: a resent
/// QoS 2 publish is not counted again).
pub fn count_unacked(qos: QoS, inbound: &mut Inbound, limits: &Limits<'_>) -> Result<(), Refusal> {
    if qos == QoS::AtMostOnce {
        return Ok(());
    }
    inbound.unacked += 1;
    if inbound.unacked > limits.receive_maximum as usize {
        return Err(Refusal::Violation(
            reason::RECEIVE_MAXIMUM_EXCEEDED,
            "more unacknowledged publishes than the receive maximum",
        ));
    }
    Ok(())
}

/// A persistent subscriber's queue was full and MQTT 3.1.1 cannot say so: the connection
/// closes without acknowledging, so the client sends the message again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseUnacknowledged;

/// The acknowledgement to send (none for QoS 0) once a routed publish is durable: success,
/// or QUOTA_EXCEEDED when a persistent subscriber refused it.
pub fn after_route(p: &Publish, v5: bool, refused_by_persistent: bool) -> Result<Option<Packet>, CloseUnacknowledged> {
    let code = if refused_by_persistent { reason::QUOTA_EXCEEDED } else { reason::SUCCESS };
    if code != reason::SUCCESS && !v5 {
        return Err(CloseUnacknowledged);
    }
    Ok(ack(p, code))
}

/// The acknowledgement of `p` with `code`: PUBACK for QoS 1, PUBREC for QoS 2, none for QoS 0.
pub fn ack(p: &Publish, code: u8) -> Option<Packet> {
    match (p.qos, p.packet_id) {
        (QoS::AtLeastOnce, Some(pid)) => Some(Packet::PubAck(Ack { reason_code: code, ..Ack::ok(pid) })),
        (QoS::ExactlyOnce, Some(pid)) => Some(Packet::PubRec(Ack { reason_code: code, ..Ack::ok(pid) })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_mqtt::packet::Properties;

    fn publish(topic: &str, qos: QoS) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id: (qos != QoS::AtMostOnce).then_some(7),
            properties: Properties::default(),
            payload: bytes::Bytes::from_static(b"{}"),
        }
    }

    fn limits(topics: &TopicLimits) -> Limits<'_> {
        Limits { topic_alias_maximum: 4, topics, max_payload: 16, receive_maximum: 2 }
    }

    #[test]
    fn an_alias_is_learned_then_stands_for_its_topic() {
        let t = TopicLimits::default();
        let mut inbound = Inbound::default();
        let mut p = publish("a/b", QoS::AtMostOnce);
        p.properties.topic_alias = Some(2);
        assert_eq!(check(&mut p, true, &mut inbound, &limits(&t), |_, _| true), Ok(()));
        let mut p = publish("", QoS::AtMostOnce);
        p.properties.topic_alias = Some(2);
        assert_eq!(check(&mut p, true, &mut inbound, &limits(&t), |_, _| true), Ok(()));
        assert_eq!(p.topic, "a/b");
        let mut p = publish("", QoS::AtMostOnce);
        p.properties.topic_alias = Some(3);
        assert_eq!(
            check(&mut p, true, &mut inbound, &limits(&t), |_, _| true),
            Err(Refusal::Violation(reason::PROTOCOL_ERROR, "unknown topic alias"))
        );
        p.properties.topic_alias = Some(5);
        assert!(matches!(
            check(&mut p, true, &mut inbound, &limits(&t), |_, _| true),
            Err(Refusal::Violation(reason::TOPIC_ALIAS_INVALID, _))
        ));
    }

    #[test]
    fn a_bad_topic_is_a_nack_for_mqtt5_qos1_and_a_disconnect_otherwise() {
        let t = TopicLimits::default();
        let mut inbound = Inbound::default();
        let bad = |qos| publish("a/#", qos);
        assert!(matches!(
            check(&mut bad(QoS::AtLeastOnce), true, &mut inbound, &limits(&t), |_, _| true),
            Err(Refusal::Nack(reason::TOPIC_NAME_INVALID, _))
        ));
        assert!(matches!(
            check(&mut bad(QoS::AtMostOnce), true, &mut inbound, &limits(&t), |_, _| true),
            Err(Refusal::Violation(reason::TOPIC_NAME_INVALID, _))
        ));
        assert!(matches!(
            check(&mut bad(QoS::AtLeastOnce), false, &mut inbound, &limits(&t), |_, _| true),
            Err(Refusal::Violation(reason::TOPIC_NAME_INVALID, _))
        ));
    }

    #[test]
    fn reserved_response_topics_are_refused_before_any_policy() {
        let t = TopicLimits::default();
        let mut inbound = Inbound::default();
        let mut forged = publish("$aws/things/lamp/shadow/update/accepted", QoS::AtLeastOnce);
        let refused = check(&mut forged, true, &mut inbound, &limits(&t), |_, _| true);
        assert_eq!(refused, Err(Refusal::NotAuthorized { action: RESERVED, nack: true }));
        let mut forged = publish("$aws/events/presence/disconnected/other", QoS::AtMostOnce);
        let refused = check(&mut forged, false, &mut inbound, &limits(&t), |_, _| true);
        assert_eq!(refused, Err(Refusal::NotAuthorized { action: RESERVED, nack: false }));
        let mut request = publish("$aws/things/lamp/shadow/update", QoS::AtMostOnce);
        assert_eq!(check(&mut request, true, &mut inbound, &limits(&t), |_, _| true), Ok(()));
    }

    #[test]
    fn policies_decide_publish_and_retain_separately() {
        let t = TopicLimits::default();
        let mut inbound = Inbound::default();
        let mut p = publish("a", QoS::AtMostOnce);
        p.retain = true;
        let only_publish = |a: Action, _: &str| a == Action::Publish;
        assert_eq!(
            check(&mut p, false, &mut inbound, &limits(&t), only_publish),
            Err(Refusal::NotAuthorized { action: "iot:RetainPublish", nack: false })
        );
        let mut p = publish("a", QoS::AtLeastOnce);
        assert_eq!(
            check(&mut p, true, &mut inbound, &limits(&t), |_, _| false),
            Err(Refusal::NotAuthorized { action: "iot:Publish", nack: true })
        );
    }

    #[test]
    fn size_and_utf8_promises_are_checked() {
        let t = TopicLimits::default();
        let mut inbound = Inbound::default();
        let mut p = publish("a", QoS::AtLeastOnce);
        p.payload = bytes::Bytes::from(vec![b'x'; 17]);
        assert!(matches!(
            check(&mut p, true, &mut inbound, &limits(&t), |_, _| true),
            Err(Refusal::Violation(reason::PACKET_TOO_LARGE, _))
        ));
        let mut p = publish("a", QoS::AtLeastOnce);
        p.payload = bytes::Bytes::from_static(&[0xff, 0xfe]);
        p.properties.payload_format_indicator = Some(1);
        assert!(matches!(
            check(&mut p, true, &mut inbound, &limits(&t), |_, _| true),
            Err(Refusal::Nack(reason::PAYLOAD_FORMAT_INVALID, _))
        ));
    }

    #[test]
    fn the_receive_maximum_counts_only_qos1_and_2() {
        let t = TopicLimits::default();
        let mut inbound = Inbound::default();
        assert_eq!(count_unacked(QoS::AtMostOnce, &mut inbound, &limits(&t)), Ok(()));
        assert_eq!(count_unacked(QoS::AtLeastOnce, &mut inbound, &limits(&t)), Ok(()));
        assert_eq!(count_unacked(QoS::ExactlyOnce, &mut inbound, &limits(&t)), Ok(()));
        assert!(matches!(
            count_unacked(QoS::AtLeastOnce, &mut inbound, &limits(&t)),
            Err(Refusal::Violation(reason::RECEIVE_MAXIMUM_EXCEEDED, _))
        ));
    }

    #[test]
    fn a_full_persistent_queue_is_quota_exceeded_or_an_unacknowledged_close() {
        let p = publish("a", QoS::ExactlyOnce);
        assert_eq!(after_route(&p, true, false), Ok(Some(Packet::PubRec(Ack::ok(7)))));
        let Ok(Some(Packet::PubRec(nack))) = after_route(&p, true, true) else { panic!("a PUBREC") };
        assert_eq!(nack.reason_code, reason::QUOTA_EXCEEDED);
        assert_eq!(after_route(&p, false, true), Err(CloseUnacknowledged));
        assert_eq!(after_route(&publish("a", QoS::AtMostOnce), true, false), Ok(None));
    }
}
