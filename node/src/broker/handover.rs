//! A persistent session leaving one node for another (session takeover): the
//! old node takes it out of its tables, kicking a live connection with 0x8E, and encodes
//! its subscriptions and queued messages; the new node builds a session from them.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ferrite_cluster::{decode_rows, encode_rows, Batch, Table};
use ferrite_mqtt::packet::ProtocolVersion;
use ferrite_mqtt::topic;

use super::session::{Outgoing, SessionSubscription};
use super::{
    decode_options, decode_queued, encode_options, encode_queued, queue_key, reason, shard_of, sub_key, Broker, Kick,
    Kinds, SessionHandle, SessionInner,
};

/// This node's claim of a client id (`cluster/takeover.rs`): what `open_session` is given.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// The claim's epoch in the `owners` group (0 on a node alone).
    pub epoch: u64,
    /// The session the previous owner handed over, if it did.
    pub export: Option<SessionExport>,
}

/// A session on its way between nodes.
#[derive(Debug, Clone, Default)]
pub struct SessionExport {
    /// The session expiry interval in seconds.
    pub expiry: u32,
    /// The protocol version the session was opened with.
    pub protocol: Option<ProtocolVersion>,
    /// Raw filters (with any `$share/` prefix) and their options.
    pub subscriptions: Vec<(String, SessionSubscription)>,
    /// Queued and in-flight messages, oldest first (in-flight ones are sent again).
    pub queue: Vec<Outgoing>,
}

fn protocol_byte(p: Option<ProtocolVersion>) -> u8 {
    match p {
        Some(ProtocolVersion::V31) => 3,
        Some(ProtocolVersion::V311) => 4,
        _ => 5,
    }
}

impl SessionExport {
    /// Rows: `m` (expiry, protocol), `s` + filter (options), `q` (a queue record).
    pub fn encode(&self) -> Vec<u8> {
        let mut rows =
            vec![(b"m".to_vec(), [&self.expiry.to_be_bytes()[..], &[protocol_byte(self.protocol)]].concat())];
        for (filter, s) in &self.subscriptions {
            rows.push(([b"s", filter.as_bytes()].concat(), encode_options(&s.options, s.subscription_id)));
        }
        for out in &self.queue {
            let mut bytes = Vec::with_capacity(out.msg.payload.len() + out.msg.topic.len() + 32);
            out.msg.encode(&mut bytes);
            rows.push((b"q".to_vec(), encode_queued(out, 0, false, &bytes)));
        }
        encode_rows(&rows)
    }

    /// The inverse of [`SessionExport::encode`]; `None` for bytes it did not produce.
    pub fn decode(bytes: &[u8]) -> Option<SessionExport> {
        let mut export = SessionExport::default();
        for (k, v) in decode_rows(bytes)? {
            match k.first()? {
                b'm' => {
                    export.expiry = u32::from_be_bytes(v.get(0..4)?.try_into().ok()?);
                    export.protocol = Some(match v.get(4)? {
                        3 => ProtocolVersion::V31,
                        4 => ProtocolVersion::V311,
                        _ => ProtocolVersion::V5,
                    });
                }
                b's' => {
                    let filter = String::from_utf8(k[1..].to_vec()).ok()?;
                    let (options, subscription_id) = decode_options(&v)?;
                    export.subscriptions.push((filter, SessionSubscription { options, subscription_id }));
                }
                b'q' => export.queue.push(decode_queued(&v, 0)?.out),
                _ => return None,
            }
        }
        Some(export)
    }
}

impl Broker {
    /// Hands `client_id`'s session to the node whose claim `epoch` took it: a live
    /// connection is kicked with 0x8E (session taken over). A persistent session stays here
    /// as a replica when sessions are replicated (`replica.rs`); otherwise its routes and
    /// records go. `None` when this node owns no such session (a replica here only learns
    /// the newer epoch).
    pub fn export_session(&self, client_id: &str, epoch: u64) -> Option<SessionExport> {
        let mut shard = self.sessions[shard_of(client_id)].lock();
        let session = shard.get(client_id).cloned()?;
        let (kicked, export, kept) = {
            let mut inner = session.inner.lock();
            if inner.ended {
                return None;
            }
            if inner.replica {
                inner.epoch = inner.epoch.max(epoch);
                return None;
            }
            let kicked = inner.conn.take();
            session.online.store(false, Ordering::Relaxed);
            let subscriptions = inner.state.subscriptions.iter().map(|(f, s)| (f.clone(), s.clone())).collect();
            let kept = inner.state.take_all();
            let queue = kept.iter().cloned().map(|mut o| {
                o.store_seq = None;
                o
            });
            let export = SessionExport {
                expiry: inner.expiry_interval,
                protocol: Some(inner.protocol),
                subscriptions,
                queue: queue.collect(),
            };
            (kicked, export, kept)
        };
        if self.replicating() && export.expiry > 0 {
            drop(shard);
            self.demote(&session, epoch, kept);
        } else {
            let mut batch = Batch::new();
            let _ = self.end_session(&session, &mut shard, &mut batch);
            drop(shard);
            self.store.submit(batch);
        }
        if let Some(conn) = kicked {
            self.metrics.session_takeovers_total.inc();
            conn.kick.do_send(Kick(reason::SESSION_TAKEN_OVER));
        }
        tracing::info!(
            client_id,
            subscriptions = export.subscriptions.len(),
            queued = export.queue.len(),
            "session handed over to another node"
        );
        Some(export)
    }

    /// Builds a session from another node's export; its records go into `batch` when it
    /// is persistent.
    pub(super) fn session_from_export(
        &self,
        client_id: &str,
        export: SessionExport,
        expiry: u32,
        protocol: ProtocolVersion,
        generation: u64,
        batch: &mut Batch,
    ) -> Arc<SessionHandle> {
        let handle = self.new_handle(client_id.into(), expiry, protocol, generation);
        let mut inner = handle.inner.lock();
        self.replace_subscriptions(&handle, &mut inner, export.subscriptions, Kinds::All, expiry > 0, batch);
        for mut out in export.queue {
            if expiry > 0 {
                self.store_queued(client_id, &mut out, batch);
            }
            if inner.state.enqueue(out).is_err() {
                self.metrics.messages_dropped_queue_full_total.inc();
            }
        }
        batch.set_durable();
        drop(inner);
        self.metrics.subscriptions.set(self.router.len() as i64);
        handle
    }

    /// Makes `subscriptions` the session's: the ones it had and these lack leave (index,
    /// records), these go into the index (those of a kind `kinds` takes) and, with
    /// `persist`, into `batch`. A filter that does not parse is skipped.
    pub(super) fn replace_subscriptions(
        &self,
        session: &Arc<SessionHandle>,
        inner: &mut SessionInner,
        subscriptions: Vec<(String, SessionSubscription)>,
        kinds: Kinds,
        persist: bool,
        batch: &mut Batch,
    ) {
        let wanted: HashSet<&str> = subscriptions.iter().map(|(f, _)| f.as_str()).collect();
        let gone: Vec<String> =
            inner.state.subscriptions.keys().filter(|f| !wanted.contains(f.as_str())).cloned().collect();
        for raw in gone {
            inner.state.subscriptions.remove(&raw);
            batch.delete(Table::Subscriptions, sub_key(&session.client_id, &raw));
            self.unindex_subscription(session, &raw, kinds);
        }
        for (raw, s) in subscriptions {
            if topic::parse_subscription(&raw, &self.config.topic_limits).is_err() {
                continue;
            }
            if persist {
                let options = encode_options(&s.options, s.subscription_id);
                batch.put(Table::Subscriptions, sub_key(&session.client_id, &raw), options);
            }
            self.index_subscription(session, &raw, &s, kinds);
            inner.state.subscriptions.insert(raw, s);
        }
    }

    /// Writes a record of `out` for `client_id`'s queue into `batch` under a new sequence.
    pub(super) fn store_queued(&self, client_id: &str, out: &mut Outgoing, batch: &mut Batch) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut bytes = Vec::with_capacity(out.msg.payload.len() + out.msg.topic.len() + 48);
        out.msg.encode(&mut bytes);
        batch.put(Table::Queue, queue_key(client_id, seq), encode_queued(out, 0, false, &bytes));
        out.store_seq = Some(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use ferrite_mqtt::packet::{QoS, SubOptions};

    #[test]
    fn an_export_survives_encoding() {
        let msg = Message {
            topic: "a/b".into(),
            payload: bytes::Bytes::from_static(b"hello"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            publisher: None,
            created_ms: 1,
            rule_hops: 0,
            id: 0,
            wire: Default::default(),
        };
        let export = SessionExport {
            expiry: 300,
            protocol: Some(ProtocolVersion::V311),
            subscriptions: vec![(
                "a/#".into(),
                SessionSubscription {
                    options: SubOptions { qos: QoS::AtLeastOnce, ..Default::default() },
                    subscription_id: Some(4),
                },
            )],
            queue: vec![Outgoing {
                msg: Arc::new(msg),
                qos: QoS::AtLeastOnce,
                retain: false,
                subscription_ids: vec![4],
                store_seq: None,
            }],
        };
        let back = SessionExport::decode(&export.encode()).unwrap();
        assert_eq!(back.expiry, 300);
        assert_eq!(back.protocol, Some(ProtocolVersion::V311));
        assert_eq!(back.subscriptions.len(), 1);
        assert_eq!(back.subscriptions[0].1.subscription_id, Some(4));
        assert_eq!(&back.queue[0].msg.payload[..], b"hello");
        assert!(SessionExport::decode(b"\x00\x00\x00\x01z\x00\x00\x00\x00").is_none());
    }
}
