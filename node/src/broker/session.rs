//! The delivery side of an MQTT session, sans I/O: the queue of messages waiting for a
//! client, the in-flight window with packet ids, acknowledgements, and resending after a
//! reconnect. It survives the network connection when the session is persistent.
//!
//! Invariant: a QoS 1/2 message leaves `queue`/`inflight` only when the client has
//! acknowledged it (PUBACK / PUBCOMP) or it expired; its stored copy (if any) is deleted
//! at the same moment, through the `StoreOp`s this module hands back.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use ferrite_mqtt::packet::{QoS, SubOptions};

use super::message::Message;

/// A message addressed to this session, with the per-subscription view of it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub msg: Arc<Message>,
    /// min(publish QoS, subscription QoS).
    pub qos: QoS,
    /// Retain flag as the subscriber sees it (retain-as-published / retained on subscribe).
    pub retain: bool,
    /// MQTT 5 subscription identifiers of every matching subscription.
    pub subscription_ids: Vec<u32>,
    /// Key suffix of the stored copy, for persistent sessions.
    pub store_seq: Option<u64>,
}

/// Where an in-flight message is in its QoS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightState {
    /// QoS 1 sent, waiting for PUBACK.
    AwaitAck,
    /// QoS 2 sent, waiting for PUBREC.
    AwaitRec,
    /// PUBREL sent, waiting for PUBCOMP.
    AwaitComp,
}

/// One message in the in-flight window.
#[derive(Debug, Clone)]
pub struct Inflight {
    pub packet_id: u16,
    pub out: Outgoing,
    pub state: InflightState,
}

/// What the connection must put on the wire.
#[derive(Debug, Clone)]
pub enum Send {
    /// A PUBLISH; `packet_id` is `None` for QoS 0.
    Publish { packet_id: Option<u16>, dup: bool, out: Outgoing },
    /// A PUBREL for a QoS 2 message whose PUBREC arrived.
    PubRel { packet_id: u16 },
}

/// A change to the stored copy of a queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// The message is done: delete its record.
    Delete(u64),
    /// The message is in flight with this packet id and state (QoS 2 needs them after
    /// a restart to keep exactly-once).
    Mark { seq: u64, packet_id: u16, released: bool },
    /// A stored message with this id is done: the session's copies on other nodes drop it.
    Consumed(u128),
}

/// The store operations of a stored message that is done (acknowledged or expired).
fn finished(out: &Outgoing, store: &mut Vec<StoreOp>) {
    if let Some(seq) = out.store_seq {
        store.push(StoreOp::Delete(seq));
        if out.msg.id != 0 {
            store.push(StoreOp::Consumed(out.msg.id));
        }
    }
}

/// A subscription held by the session (the router holds the index copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSubscription {
    pub options: SubOptions,
    pub subscription_id: Option<u32>,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFull {
    /// The queue is at its limit; the message was dropped.
    Dropped,
}

/// Delivery state of one client's session.
#[derive(Debug)]
pub struct SessionState {
    pub subscriptions: HashMap<String, SessionSubscription>,
    queue: VecDeque<Outgoing>,
    inflight: VecDeque<Inflight>,
    next_packet_id: u16,
    /// How many QoS 1/2 messages may be unacknowledged at once.
    window: usize,
    max_queue: usize,
    /// Inbound QoS 2 packet ids received but not yet released by the client.
    pub awaiting_release: HashSet<u16>,
}

impl SessionState {
    /// A new, empty session with the given in-flight window and queue limit.
    pub fn new(window: usize, max_queue: usize) -> SessionState {
        SessionState {
            subscriptions: HashMap::new(),
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            next_packet_id: 1,
            window: window.max(1),
            max_queue,
            awaiting_release: HashSet::new(),
        }
    }

    /// Sets the window for a new connection: min(server window, client receive maximum).
    pub fn set_window(&mut self, window: usize) {
        self.window = window.max(1);
    }

    /// Messages waiting (not yet sent) plus in flight.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.inflight.len()
    }

    /// No more QoS 1/2 messages may go out until one is acknowledged.
    pub fn window_full(&self) -> bool {
        self.inflight.len() >= self.window
    }

    /// Messages in flight.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Drops the queued QoS 0 messages (for a client whose socket takes nothing); how many.
    pub fn shed_at_most_once(&mut self) -> usize {
        let before = self.queue.len();
        self.queue.retain(|o| o.qos != QoS::AtMostOnce);
        before - self.queue.len()
    }

    /// Adds a message for the client. QoS 0 messages beyond the limit are dropped
    /// silently by MQTT's rules; QoS 1/2 ones are dropped with an error the caller logs
    /// and counts (they are never acknowledged to their publisher as stored).
    pub fn enqueue(&mut self, out: Outgoing) -> Result<(), QueueFull> {
        if self.queue.len() >= self.max_queue {
            return Err(QueueFull::Dropped);
        }
        self.queue.push_back(out);
        Ok(())
    }

    /// Puts back an in-flight message recovered from storage (after a restart).
    pub fn restore_inflight(&mut self, packet_id: u16, released: bool, out: Outgoing) {
        let state = if released { InflightState::AwaitComp } else { InflightState::AwaitRec };
        self.inflight.push_back(Inflight { packet_id, out, state });
        self.next_packet_id = self.next_packet_id.max(packet_id.wrapping_add(1)).max(1);
    }

    fn allocate_packet_id(&mut self) -> u16 {
        loop {
            let id = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            if self.next_packet_id == 0 {
                self.next_packet_id = 1;
            }
            if !self.inflight.iter().any(|i| i.packet_id == id) {
                return id;
            }
        }
    }

    /// Moves queued messages into flight while the window allows; returns what to send.
    /// Expired messages are dropped here (their records deleted).
    pub fn drain(&mut self, now_ms: u64, sends: &mut Vec<Send>, store: &mut Vec<StoreOp>) {
        while let Some(front) = self.queue.front() {
            if front.qos != QoS::AtMostOnce && self.inflight.len() >= self.window {
                break;
            }
            let out = self.queue.pop_front().expect("front exists");
            if out.msg.remaining_expiry(now_ms).is_none() {
                finished(&out, store);
                continue;
            }
            if out.qos == QoS::AtMostOnce {
                sends.push(Send::Publish { packet_id: None, dup: false, out });
                continue;
            }
            let packet_id = self.allocate_packet_id();
            let state = if out.qos == QoS::AtLeastOnce { InflightState::AwaitAck } else { InflightState::AwaitRec };
            if let (QoS::ExactlyOnce, Some(seq)) = (out.qos, out.store_seq) {
                store.push(StoreOp::Mark { seq, packet_id, released: false });
            }
            self.inflight.push_back(Inflight { packet_id, out: out.clone(), state });
            sends.push(Send::Publish { packet_id: Some(packet_id), dup: false, out });
        }
    }

    /// Everything in flight again, for a resumed session: PUBLISH with DUP, or PUBREL.
    pub fn resend_inflight(&self, sends: &mut Vec<Send>) {
        for i in &self.inflight {
            match i.state {
                InflightState::AwaitComp => sends.push(Send::PubRel { packet_id: i.packet_id }),
                _ => sends.push(Send::Publish { packet_id: Some(i.packet_id), dup: true, out: i.out.clone() }),
            }
        }
    }

    fn take(&mut self, packet_id: u16, expect: InflightState) -> Option<Inflight> {
        let pos = self.inflight.iter().position(|i| i.packet_id == packet_id && i.state == expect)?;
        self.inflight.remove(pos)
    }

    /// PUBACK from the client. Returns false for an unknown packet id.
    pub fn on_puback(&mut self, packet_id: u16, store: &mut Vec<StoreOp>) -> bool {
        match self.take(packet_id, InflightState::AwaitAck) {
            Some(i) => {
                finished(&i.out, store);
                true
            }
            None => false,
        }
    }

    /// PUBREC from the client: answer with PUBREL (or drop the message on an error
    /// reason code, as MQTT 5 says). Returns false for an unknown packet id.
    pub fn on_pubrec(&mut self, packet_id: u16, reason_code: u8, store: &mut Vec<StoreOp>) -> bool {
        if reason_code >= 0x80 {
            return match self.take(packet_id, InflightState::AwaitRec) {
                Some(i) => {
                    finished(&i.out, store);
                    true
                }
                None => false,
            };
        }
        match self.inflight.iter_mut().find(|i| i.packet_id == packet_id) {
            Some(i) if i.state != InflightState::AwaitAck => {
                i.state = InflightState::AwaitComp;
                if let Some(seq) = i.out.store_seq {
                    store.push(StoreOp::Mark { seq, packet_id, released: true });
                }
                true
            }
            _ => false,
        }
    }

    /// PUBCOMP from the client. Returns false for an unknown packet id.
    pub fn on_pubcomp(&mut self, packet_id: u16, store: &mut Vec<StoreOp>) -> bool {
        match self.take(packet_id, InflightState::AwaitComp) {
            Some(i) => {
                finished(&i.out, store);
                true
            }
            None => false,
        }
    }

    /// Forgets an in-flight message that cannot be delivered (larger than the client's
    /// maximum packet size, or expired), as if it had been acknowledged.
    pub fn discard(&mut self, packet_id: u16, store: &mut Vec<StoreOp>) {
        if let Some(pos) = self.inflight.iter().position(|i| i.packet_id == packet_id) {
            if let Some(i) = self.inflight.remove(pos) {
                finished(&i.out, store);
            }
        }
    }

    /// Drops every QoS 0 message still queued (on disconnect: QoS 0 is not kept for an
    /// offline client) and returns how many.
    pub fn drop_qos0(&mut self) -> usize {
        let before = self.queue.len();
        self.queue.retain(|o| o.qos != QoS::AtMostOnce);
        before - self.queue.len()
    }

    /// The ids of every message queued or in flight.
    pub fn message_ids(&self) -> impl Iterator<Item = u128> + '_ {
        self.inflight.iter().map(|i| i.out.msg.id).chain(self.queue.iter().map(|o| o.msg.id))
    }

    /// Removes the queued (not in-flight) message with id `id`: a copy of a session whose
    /// owner, on another node, has seen it consumed.
    pub fn remove_queued(&mut self, id: u128) -> Option<Outgoing> {
        let pos = self.queue.iter().position(|o| o.msg.id == id)?;
        self.queue.remove(pos)
    }

    /// Removes and returns everything queued and in flight (a shared-subscription member
    /// leaving hands its messages back to the group).
    pub fn take_all(&mut self) -> Vec<Outgoing> {
        let mut v: Vec<Outgoing> = self.inflight.drain(..).map(|i| i.out).collect();
        v.extend(self.queue.drain(..));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ferrite_mqtt::packet::Properties;

    fn out(qos: QoS, seq: Option<u64>) -> Outgoing {
        let msg = Message {
            topic: "t".into(),
            payload: Bytes::from_static(b"x"),
            qos,
            retain: false,
            properties: Properties::default(),
            publisher: None,
            created_ms: 0,
            rule_hops: 0,
            id: 0,
            wire: Default::default(),
        };
        Outgoing { msg: Arc::new(msg), qos, retain: false, subscription_ids: vec![], store_seq: seq }
    }

    #[test]
    fn window_limits_inflight_and_ack_frees_it() {
        let mut s = SessionState::new(2, 100);
        for i in 0..3 {
            s.enqueue(out(QoS::AtLeastOnce, Some(i))).unwrap();
        }
        let (mut sends, mut store) = (vec![], vec![]);
        s.drain(0, &mut sends, &mut store);
        assert_eq!(sends.len(), 2);
        assert!(s.on_puback(1, &mut store));
        assert_eq!(store, vec![StoreOp::Delete(0)]);
        sends.clear();
        s.drain(0, &mut sends, &mut store);
        assert_eq!(sends.len(), 1);
        assert!(!s.on_puback(1, &mut store), "a second PUBACK for the same id is unknown");
    }

    #[test]
    fn qos2_handshake_marks_and_deletes() {
        let mut s = SessionState::new(10, 100);
        s.enqueue(out(QoS::ExactlyOnce, Some(7))).unwrap();
        let (mut sends, mut store) = (vec![], vec![]);
        s.drain(0, &mut sends, &mut store);
        assert_eq!(store, vec![StoreOp::Mark { seq: 7, packet_id: 1, released: false }]);
        assert!(s.on_pubrec(1, 0, &mut store));
        assert!(!s.on_puback(1, &mut store));
        let mut resend = vec![];
        s.resend_inflight(&mut resend);
        assert!(matches!(resend[0], Send::PubRel { packet_id: 1 }));
        assert!(s.on_pubcomp(1, &mut store));
        assert_eq!(store.last(), Some(&StoreOp::Delete(7)));
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn resend_sets_dup_for_unacknowledged_publishes() {
        let mut s = SessionState::new(10, 100);
        s.enqueue(out(QoS::AtLeastOnce, None)).unwrap();
        let (mut sends, mut store) = (vec![], vec![]);
        s.drain(0, &mut sends, &mut store);
        let mut resend = vec![];
        s.resend_inflight(&mut resend);
        assert!(matches!(resend[0], Send::Publish { dup: true, packet_id: Some(1), .. }));
    }

    #[test]
    fn expired_messages_are_not_sent() {
        let mut s = SessionState::new(10, 100);
        let mut o = out(QoS::AtLeastOnce, Some(3));
        Arc::make_mut(&mut o.msg).properties.message_expiry_interval = Some(1);
        s.enqueue(o).unwrap();
        let (mut sends, mut store) = (vec![], vec![]);
        s.drain(5_000, &mut sends, &mut store);
        assert!(sends.is_empty());
        assert_eq!(store, vec![StoreOp::Delete(3)]);
    }

    #[test]
    fn queue_limit_is_enforced() {
        let mut s = SessionState::new(1, 1);
        s.enqueue(out(QoS::AtLeastOnce, None)).unwrap();
        assert_eq!(s.enqueue(out(QoS::AtLeastOnce, None)), Err(QueueFull::Dropped));
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_use() {
        let mut s = SessionState::new(10, 100);
        s.next_packet_id = u16::MAX;
        s.enqueue(out(QoS::AtLeastOnce, None)).unwrap();
        s.enqueue(out(QoS::AtLeastOnce, None)).unwrap();
        let (mut sends, mut store) = (vec![], vec![]);
        s.drain(0, &mut sends, &mut store);
        let ids: Vec<u16> = s.inflight.iter().map(|i| i.packet_id).collect();
        assert_eq!(ids, vec![u16::MAX, 1]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Enqueue(u8),
        Drain,
        AckOldest,
        AckNewest,
        Reconnect,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..3).prop_map(Op::Enqueue),
            Just(Op::Drain),
            Just(Op::AckOldest),
            Just(Op::AckNewest),
            Just(Op::Reconnect)
        ]
    }

    /// Completes whatever handshake the in-flight message with `pid` is in.
    fn complete(s: &mut SessionState, pid: u16, store: &mut Vec<StoreOp>) -> bool {
        if s.on_puback(pid, store) {
            return true;
        }
        if s.on_pubrec(pid, 0, store) {
            return s.on_pubcomp(pid, store);
        }
        s.on_pubcomp(pid, store)
    }

    proptest::proptest! {
        /// Whatever the order of enqueues, drains, acknowledgements and reconnects, the
        /// window holds, packet ids in flight are unique, and every QoS 1/2 message is
        /// deleted from storage exactly once, after its acknowledgement.
        #[test]
        fn session_state_machine_keeps_its_invariants(ops in proptest::collection::vec(op(), 1..200), window in 1usize..8) {
            let mut s = SessionState::new(window, 1000);
            let mut next_seq = 0u64;
            let mut acked = std::collections::HashSet::new();
            let mut store = Vec::new();
            for op in ops {
                let mut sends = Vec::new();
                match op {
                    Op::Enqueue(q) => {
                        let qos = QoS::from_u8(q).unwrap();
                        let seq = (qos != QoS::AtMostOnce).then(|| { next_seq += 1; next_seq });
                        s.enqueue(out(qos, seq)).unwrap();
                    }
                    Op::Drain => s.drain(0, &mut sends, &mut store),
                    Op::AckOldest | Op::AckNewest => {
                        let pick = if matches!(op, Op::AckOldest) { s.inflight.front() } else { s.inflight.back() };
                        if let Some(i) = pick.cloned() {
                            proptest::prop_assert!(complete(&mut s, i.packet_id, &mut store));
                            proptest::prop_assert!(acked.insert(i.out.store_seq.unwrap()));
                        }
                    }
                    Op::Reconnect => s.resend_inflight(&mut sends),
                }
                proptest::prop_assert!(s.inflight.len() <= window);
                let mut ids: Vec<u16> = s.inflight.iter().map(|i| i.packet_id).collect();
                ids.sort_unstable();
                ids.dedup();
                proptest::prop_assert_eq!(ids.len(), s.inflight.len());
            }
            // Drain and acknowledge everything left.
            loop {
                let mut sends = Vec::new();
                s.drain(0, &mut sends, &mut store);
                let Some(i) = s.inflight.front().cloned() else { break };
                proptest::prop_assert!(complete(&mut s, i.packet_id, &mut store));
                acked.insert(i.out.store_seq.unwrap());
            }
            proptest::prop_assert_eq!(s.pending(), 0);
            let deleted: Vec<u64> = store.iter().filter_map(|o| match o { StoreOp::Delete(seq) => Some(*seq), _ => None }).collect();
            let unique: std::collections::HashSet<u64> = deleted.iter().copied().collect();
            proptest::prop_assert_eq!(unique.len(), deleted.len(), "a record deleted twice");
            proptest::prop_assert_eq!(unique.len() as u64, next_seq, "every stored message deleted once");
        }
    }
}
