//! Copies of persistent sessions on the other nodes of a cluster, so that a node's death
//! loses none of the QoS 1/2 messages its sessions had queued (docs/ARCHITECTURE.md).
//!
//! The node a session's client id is claimed by owns it; every other node keeps a replica:
//! an offline session with the same subscriptions (shared ones excepted), marked as a copy.
//! Replicas are filled the way every session is: each node's route table names the filters
//! of its replicas, so every QoS 1/2 message for the session reaches every copy, through the
//! same durable outboxes as any forward. The owner tells the replicas, through the outbox,
//! what only it knows, in [`Record`]s:
//! - `Upsert`: the session's expiry, protocol and subscriptions, at connect (`fresh` when it
//!   started empty) and at every subscription change;
//! - `Consumed`: ids of messages its client acknowledged (or that expired);
//! - `End`: the session is gone (expired, or replaced by a non-persistent one).
//!
//! Records carry the owner's claim epoch (`cluster/owners.rs`); a replica takes the highest
//! epoch it has seen, from records and from claims it applies, and ignores `Upsert` and
//! `End` from older owners, so a late record from a previous owner cannot undo a newer one.
//! A `Consumed` applies to any copy, an owned one too (a node that has not yet applied the
//! claim that moved the session away would otherwise deliver those messages again); one that
//! arrives before its message is remembered for a while, so the message is dropped when it
//! comes.
//!
//! When a client resumes its session on a node holding a replica, the session is the
//! previous owner's export merged with the replica (messages by id), or, when the previous
//! owner cannot be reached, the replica alone: at least once, never lost. The previous
//! owner keeps what it had as a replica.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use ferrite_cluster::{Batch, Table};
use ferrite_mqtt::packet::{ProtocolVersion, QoS};

use super::handover::SessionExport;
use super::session::Outgoing;
use super::{encode_session_meta, queue_key, shard_of, Broker, Kinds, SessionHandle};

/// The first byte of a replica record on the outbox stream (a forwarded message starts
/// with its format version, 1 or 2).
pub const RECORD: u8 = 0xA5;

/// Consumed ids a replica remembers before their messages arrive.
const EARLY_CONSUMED: usize = 4096;

/// Ids another node's copy of a session reported consumed that had not arrived here yet,
/// oldest first: the message is dropped when it comes.
#[derive(Debug, Default)]
pub struct ConsumedElsewhere {
    ids: VecDeque<u128>,
}

impl ConsumedElsewhere {
    /// True when nothing is remembered (the common case, checked first on every delivery).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// True (and forgotten) when message `id` was consumed elsewhere.
    pub fn take(&mut self, id: u128) -> bool {
        match self.ids.iter().position(|c| *c == id) {
            Some(pos) => {
                self.ids.remove(pos);
                true
            }
            None => false,
        }
    }

    fn remember(&mut self, id: u128) {
        if self.ids.len() >= EARLY_CONSUMED {
            self.ids.pop_front();
        }
        self.ids.push_back(id);
    }
}

/// What an owner tells its replicas.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// The session's settings and subscriptions (its export without the queue); `fresh`:
    /// it started empty, so the replica drops what it holds.
    Upsert { fresh: bool, session: Vec<u8> },
    /// Messages the client acknowledged (or that expired).
    Consumed(Vec<u128>),
    /// The session ended.
    End,
}

/// A record with its session and the owner's claim epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Addressed {
    pub client_id: String,
    pub epoch: u64,
    pub record: Record,
}

impl Addressed {
    /// `[RECORD] kind epoch client_len client body`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![RECORD];
        out.push(match self.record {
            Record::Upsert { .. } => b'U',
            Record::Consumed(_) => b'C',
            Record::End => b'E',
        });
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&(self.client_id.len() as u16).to_be_bytes());
        out.extend_from_slice(self.client_id.as_bytes());
        match &self.record {
            Record::Upsert { fresh, session } => {
                out.push(u8::from(*fresh));
                out.extend_from_slice(session);
            }
            Record::Consumed(ids) => {
                for id in ids {
                    out.extend_from_slice(&id.to_be_bytes());
                }
            }
            Record::End => {}
        }
        out
    }

    /// The inverse of [`Addressed::encode`]; `None` for bytes it did not produce.
    pub fn decode(bytes: &[u8]) -> Option<Addressed> {
        let (&magic, rest) = bytes.split_first()?;
        if magic != RECORD {
            return None;
        }
        let (&kind, rest) = rest.split_first()?;
        let (epoch, rest) = rest.split_at_checked(8)?;
        let epoch = u64::from_be_bytes(epoch.try_into().ok()?);
        let (len, rest) = rest.split_at_checked(2)?;
        let (client, body) = rest.split_at_checked(u16::from_be_bytes(len.try_into().ok()?) as usize)?;
        let client_id = String::from_utf8(client.to_vec()).ok()?;
        let record = match kind {
            b'U' => {
                let (&fresh, session) = body.split_first()?;
                Record::Upsert { fresh: fresh != 0, session: session.to_vec() }
            }
            b'C' => {
                if body.len() % 16 != 0 {
                    return None;
                }
                Record::Consumed(
                    body.chunks_exact(16).map(|c| u128::from_be_bytes(c.try_into().expect("16 bytes"))).collect(),
                )
            }
            b'E' if body.is_empty() => Record::End,
            _ => return None,
        };
        Some(Addressed { client_id, epoch, record })
    }
}

impl Broker {
    /// True when this node keeps replicas of its persistent sessions on its peers.
    pub(super) fn replicating(&self) -> bool {
        self.peers.as_ref().is_some_and(|p| p.replicates_sessions())
    }

    /// Sends `record` about `client_id` to every peer (nothing on a node alone).
    pub(super) fn mirror(&self, client_id: &str, epoch: u64, record: Record) {
        if let (true, Some(peers)) = (self.replicating(), &self.peers) {
            peers.mirror(Addressed { client_id: client_id.to_string(), epoch, record }.encode());
        }
    }

    /// Tells the replicas an owned persistent session's settings and subscriptions.
    pub(super) fn mirror_settings(&self, session: &SessionHandle, fresh: bool) {
        if !self.replicating() {
            return;
        }
        let (epoch, settings) = {
            let inner = session.inner.lock();
            if inner.replica || inner.expiry_interval == 0 || inner.ended {
                return;
            }
            let export = SessionExport {
                expiry: inner.expiry_interval,
                protocol: Some(inner.protocol),
                subscriptions: inner.state.subscriptions.iter().map(|(f, s)| (f.clone(), s.clone())).collect(),
                queue: Vec::new(),
            };
            (inner.epoch, export.encode())
        };
        self.mirror(&session.client_id, epoch, Record::Upsert { fresh, session: settings });
    }

    /// Applies a record another node's owner sent; its writes go into `batch`.
    pub fn apply_replica_record(&self, bytes: &[u8], batch: &mut Batch) {
        let Some(Addressed { client_id, epoch, record }) = Addressed::decode(bytes) else {
            tracing::warn!("an undecodable session replica record was dropped");
            return;
        };
        let existing = self.session(&client_id);
        // Owned here: this node's claim is newer than the sender's, or the sender's claim is
        // not applied here yet (applying it turns this session into a replica with the
        // subscriptions it hands over). Settings and ends from elsewhere do not apply to it;
        // what a client consumed elsewhere does (else the session would deliver it again).
        let owned = existing.as_ref().is_some_and(|s| {
            let inner = s.inner.lock();
            !inner.replica && !inner.ended
        });
        if owned && !matches!(record, Record::Consumed(_)) {
            return;
        }
        match record {
            Record::Upsert { fresh, session } => {
                let Some(settings) = SessionExport::decode(&session) else {
                    tracing::warn!(client_id, "an undecodable session replica record was dropped");
                    return;
                };
                self.upsert_replica(&client_id, epoch, fresh, settings, existing, batch);
            }
            Record::Consumed(ids) => {
                let Some(session) = existing else { return };
                let mut inner = session.inner.lock();
                for id in ids {
                    match inner.state.remove_queued(id) {
                        Some(out) => {
                            if let Some(seq) = out.store_seq {
                                batch.delete(Table::Queue, queue_key(&client_id, seq));
                            }
                        }
                        None => inner.consumed_elsewhere.remember(id),
                    }
                }
            }
            Record::End => {
                let Some(session) = existing else { return };
                if session.inner.lock().epoch > epoch {
                    return;
                }
                let mut shard = self.sessions[shard_of(&client_id)].lock();
                let _ = self.end_session(&session, &mut shard, batch);
            }
        }
    }

    fn upsert_replica(
        &self,
        client_id: &str,
        epoch: u64,
        fresh: bool,
        settings: SessionExport,
        existing: Option<Arc<SessionHandle>>,
        batch: &mut Batch,
    ) {
        let protocol = settings.protocol.unwrap_or(ProtocolVersion::V5);
        let session = match existing.filter(|s| !s.inner.lock().ended) {
            Some(s) => s,
            None => {
                let s = self.new_handle(client_id.into(), settings.expiry, protocol, 0);
                {
                    let mut inner = s.inner.lock();
                    inner.replica = true;
                    inner.epoch = epoch;
                }
                let mut shard = self.sessions[shard_of(client_id)].lock();
                shard.insert(s.client_id.clone(), s.clone());
                self.metrics.session_replicas.inc();
                s
            }
        };
        let mut inner = session.inner.lock();
        if inner.epoch > epoch {
            return; // a newer owner's settings are already here
        }
        inner.epoch = epoch;
        inner.expiry_interval = settings.expiry.max(1);
        inner.protocol = protocol;
        if fresh {
            for out in inner.state.take_all() {
                if let Some(seq) = out.store_seq {
                    batch.delete(Table::Queue, queue_key(client_id, seq));
                }
            }
        }
        self.replace_subscriptions(&session, &mut inner, settings.subscriptions, Kinds::Plain, true, batch);
        inner.stored = true;
        batch.put(
            Table::Sessions,
            client_id.as_bytes().to_vec(),
            encode_session_meta(inner.expiry_interval, 0, protocol, true, epoch),
        );
        self.metrics.subscriptions.set(self.router.len() as i64);
    }

    /// Turns the owned session `session` into a replica (its client was claimed by another
    /// node with claim `epoch`): its connection is gone, its stored messages stay, its
    /// shared subscriptions leave the router (a replica is never a group member).
    pub(super) fn demote(&self, session: &Arc<SessionHandle>, epoch: u64, kept: Vec<Outgoing>) {
        let mut batch = Batch::new();
        let mut inner = session.inner.lock();
        inner.replica = true;
        inner.epoch = inner.epoch.max(epoch);
        for out in kept {
            if out.store_seq.is_some() && out.qos != QoS::AtMostOnce {
                let _ = inner.state.enqueue(out);
            }
        }
        for raw in inner.state.subscriptions.keys() {
            self.unindex_subscription(session, raw, Kinds::Shared);
        }
        batch.put(
            Table::Sessions,
            session.client_id.as_bytes().to_vec(),
            encode_session_meta(inner.expiry_interval, 0, inner.protocol, true, inner.epoch),
        );
        drop(inner);
        self.store.submit(batch);
        self.metrics.sessions.dec();
        self.metrics.session_replicas.inc();
        self.metrics.subscriptions.set(self.router.len() as i64);
    }

    /// Turns a replica into the owned session a client resumes: its shared subscriptions
    /// join the router again. The caller holds its lock and writes its meta row.
    pub(super) fn promote(&self, session: &Arc<SessionHandle>, inner: &mut super::SessionInner) {
        if !std::mem::replace(&mut inner.replica, false) {
            return;
        }
        for (raw, s) in &inner.state.subscriptions {
            self.index_subscription(session, raw, s, Kinds::Shared);
        }
        self.metrics.session_replicas.dec();
        self.metrics.sessions.inc();
    }

    /// Makes a replica being resumed here (already promoted) the session the previous
    /// owner handed over: its subscriptions become the export's, and its queue the
    /// export's messages followed by those only the replica held (by id). With `persist`,
    /// the new records go into `batch`.
    pub(super) fn absorb_export(
        &self,
        session: &Arc<SessionHandle>,
        inner: &mut super::SessionInner,
        export: SessionExport,
        persist: bool,
        batch: &mut Batch,
    ) {
        let client_id = &*session.client_id;
        self.replace_subscriptions(session, inner, export.subscriptions, Kinds::All, persist, batch);
        let held = inner.state.take_all();
        let exported: HashSet<u128> = export.queue.iter().map(|o| o.msg.id).filter(|id| *id != 0).collect();
        for mut out in export.queue {
            if persist && out.qos != QoS::AtMostOnce {
                self.store_queued(client_id, &mut out, batch);
                batch.set_durable();
            }
            if inner.state.enqueue(out).is_err() {
                self.metrics.messages_dropped_queue_full_total.inc();
            }
        }
        let mut only_here = 0usize;
        for out in held {
            if exported.contains(&out.msg.id) {
                if let Some(seq) = out.store_seq {
                    batch.delete(Table::Queue, queue_key(client_id, seq));
                }
                continue;
            }
            only_here += 1;
            if inner.state.enqueue(out).is_err() {
                self.metrics.messages_dropped_queue_full_total.inc();
            }
        }
        if only_here > 0 {
            tracing::info!(
                client_id,
                only_here,
                "messages only this node's replica held were added to the resumed session"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_encoding_and_garbage_is_refused() {
        for record in
            [Record::Upsert { fresh: true, session: vec![1, 2, 3] }, Record::Consumed(vec![7, u128::MAX]), Record::End]
        {
            let a = Addressed { client_id: "dev-1".into(), epoch: 42, record };
            assert_eq!(Addressed::decode(&a.encode()), Some(a.clone()));
        }
        assert_eq!(Addressed::decode(&[RECORD, b'C', 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b'x', 9]), None);
        assert_eq!(Addressed::decode(&[2, b'E']), None);
    }

    proptest::proptest! {
        #[test]
        fn any_record_round_trips_and_garbage_never_panics(
            client in "[a-z0-9/-]{0,40}", epoch in proptest::prelude::any::<u64>(), kind in 0u8..3,
            fresh in proptest::prelude::any::<bool>(),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            ids in proptest::collection::vec(proptest::prelude::any::<u128>(), 0..8),
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96),
        ) {
            let record = match kind {
                0 => Record::Upsert { fresh, session: body },
                1 => Record::Consumed(ids),
                _ => Record::End,
            };
            let a = Addressed { client_id: client, epoch, record };
            proptest::prop_assert_eq!(Addressed::decode(&a.encode()), Some(a));
            let _ = Addressed::decode(&garbage);
            let _ = Addressed::decode(&[&[RECORD][..], &garbage].concat());
        }
    }

    #[test]
    fn an_early_consumption_drops_the_message_once() {
        let mut r = ConsumedElsewhere::default();
        r.remember(5);
        assert!(r.take(5));
        assert!(!r.take(5) && r.is_empty());
        for id in 0..(EARLY_CONSUMED as u128 + 10) {
            r.remember(id);
        }
        assert!(!r.take(0), "the oldest are forgotten past the bound");
    }
}
