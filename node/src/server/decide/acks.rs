//! PUBACK, PUBREC, PUBREL and PUBCOMP from the client: what they change in the session's
//! delivery state and what the connection answers.

use crate::broker::session::{SessionState, StoreOp};
use ferrite_mqtt::packet::{reason, Ack, Packet};

/// What an acknowledgement from the client leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// The packet to answer (PUBREL for a PUBREC, PUBCOMP for a PUBREL).
    pub reply: Option<Packet>,
    /// False when the packet id was not one the session was waiting for.
    pub known: bool,
    /// One of the client's QoS 2 publishes finished (it no longer counts against our
    /// receive maximum).
    pub released_inbound: bool,
}

/// Applies `packet` to `state`; records to delete or rewrite go into `ops`.
pub fn on_ack(state: &mut SessionState, packet: &Packet, ops: &mut Vec<StoreOp>) -> Acked {
    let mut acked = Acked { reply: None, known: true, released_inbound: false };
    match packet {
        Packet::PubAck(ack) => acked.known = state.on_puback(ack.packet_id, ops),
        Packet::PubRec(ack) => {
            let known = state.on_pubrec(ack.packet_id, ack.reason_code, ops);
            if ack.reason_code < 0x80 {
                let mut rel = Ack::ok(ack.packet_id);
                if !known {
                    rel.reason_code = reason::PACKET_ID_NOT_FOUND;
                }
                acked.reply = Some(Packet::PubRel(rel));
            }
        }
        Packet::PubComp(ack) => acked.known = state.on_pubcomp(ack.packet_id, ops),
        Packet::PubRel(ack) => {
            let found = state.awaiting_release.remove(&ack.packet_id);
            let mut comp = Ack::ok(ack.packet_id);
            if !found {
                comp.reason_code = reason::PACKET_ID_NOT_FOUND;
            }
            acked.released_inbound = found;
            acked.reply = Some(Packet::PubComp(comp));
        }
        _ => {}
    }
    acked
}

/// Starts the receiver side of an inbound QoS 2 publish: false when the packet id is
/// already awaiting PUBREL (a resend, to be acknowledged again but not routed again).
pub fn begin_inbound_qos2(state: &mut SessionState, packet_id: u16) -> bool {
    state.awaiting_release.insert(packet_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pubrel_is_answered_with_pubcomp_and_frees_the_packet_id() {
        let mut state = SessionState::new(4, 10);
        let mut ops = Vec::new();
        assert!(begin_inbound_qos2(&mut state, 9));
        assert!(!begin_inbound_qos2(&mut state, 9), "a resend is not routed again");
        let acked = on_ack(&mut state, &Packet::PubRel(Ack::ok(9)), &mut ops);
        assert_eq!(acked.reply, Some(Packet::PubComp(Ack::ok(9))));
        assert!(acked.released_inbound);
        let again = on_ack(&mut state, &Packet::PubRel(Ack::ok(9)), &mut ops);
        let Some(Packet::PubComp(comp)) = again.reply else { panic!("a PUBCOMP") };
        assert_eq!(comp.reason_code, reason::PACKET_ID_NOT_FOUND);
        assert!(!again.released_inbound);
    }

    #[test]
    fn acknowledgements_of_unknown_ids_are_reported() {
        let mut state = SessionState::new(4, 10);
        let mut ops = Vec::new();
        assert!(!on_ack(&mut state, &Packet::PubAck(Ack::ok(3)), &mut ops).known);
        assert!(!on_ack(&mut state, &Packet::PubComp(Ack::ok(3)), &mut ops).known);
        let rec = on_ack(&mut state, &Packet::PubRec(Ack::ok(3)), &mut ops);
        let Some(Packet::PubRel(rel)) = rec.reply else { panic!("a PUBREL") };
        assert_eq!(rel.reason_code, reason::PACKET_ID_NOT_FOUND);
        let failed = Ack { reason_code: 0x80, ..Ack::ok(3) };
        assert_eq!(on_ack(&mut state, &Packet::PubRec(failed), &mut ops).reply, None, "a failed PUBREC ends the flow");
        assert!(ops.is_empty());
    }
}
