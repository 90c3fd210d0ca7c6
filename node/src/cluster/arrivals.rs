//! The receiving side of forwarded publishes (docs/ARCHITECTURE.md); [`super::outbox`] is
//! the sending side and describes the protocol.
//!
//! Per origin node it keeps the highest sequence it has delivered (`hwm`), stored in the
//! same durable batch as the session copies the frame produced, so an acknowledgement is
//! only sent for what survives a crash here. It is built once the broker exists, from the
//! broker's delivery entry point, and only then takes over the publishes channel: a frame
//! that arrives earlier is not acknowledged, so its sender sends it again.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use ferrite_cluster::{Batch, Channel, QuicNet, Store, StoreError, Table};
use parking_lot::Mutex;

use super::outbox::{u64_at, Outbox, ACK, PLAIN, RELIABLE, RESEND};
use crate::broker::message::Message;
use crate::broker::Broker;

/// The meta key of the highest sequence delivered from `origin`.
fn hwm_key(origin: u64) -> Vec<u8> {
    [&b"outbox/in/"[..], &origin.to_be_bytes()].concat()
}

/// Delivers a forwarded message on this node, adding its durable writes to the batch, and
/// returns what to run once the batch has been handed to the store (waking sessions).
pub type Deliver = Box<dyn Fn(&[u8], &mut Batch) -> Option<Box<dyn FnOnce() + Send>> + Send + Sync>;

/// Delivery into `broker`'s local sessions (and its replicas' records). The network's handler holds the arrivals, and
/// the broker holds the network through its peers: the broker is held weakly.
pub fn into_broker(broker: &Arc<Broker>) -> Deliver {
    let weak: Weak<Broker> = Arc::downgrade(broker);
    Box::new(move |bytes: &[u8], batch: &mut Batch| {
        if bytes.first() == Some(&crate::broker::replica::RECORD) {
            weak.upgrade()?.apply_replica_record(bytes, batch);
            return None;
        }
        if bytes.first() == Some(&super::routes::PRESENCE) {
            match Message::decode(&bytes[1..]) {
                Some(msg) => weak.upgrade()?.peer_presence(&msg),
                None => tracing::warn!("an undecodable presence event from a peer was dropped"),
            }
            return None;
        }
        let Some((serve, msg)) = super::routes::unwrap_shared(bytes).and_then(|(s, m)| Some((s, Message::decode(m)?)))
        else {
            tracing::warn!("an undecodable forwarded publish was dropped");
            return None;
        };
        let broker = weak.upgrade()?;
        let routed = broker.deliver_forwarded(Arc::new(msg), &serve.groups, serve.groups_only, batch);
        Some(Box::new(move || routed.wake()) as Box<dyn FnOnce() + Send>)
    })
}

/// What this node has received from its peers' outboxes.
pub struct Arrivals {
    net: Arc<QuicNet>,
    store: Arc<Store>,
    /// Per origin: the highest sequence accepted (in memory, ahead of the disk) and the
    /// highest known durable.
    accepted: Mutex<HashMap<u64, (u64, u64)>>,
    deliver: Deliver,
}

impl std::fmt::Debug for Arrivals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arrivals").finish_non_exhaustive()
    }
}

impl Arrivals {
    /// Reads what earlier runs delivered, then takes the publishes channel: data frames
    /// are delivered through `deliver`, acknowledgements go to `outbox`.
    pub fn serve(
        net: Arc<QuicNet>,
        store: Arc<Store>,
        outbox: Arc<Outbox>,
        deliver: Deliver,
    ) -> Result<(), StoreError> {
        let mut accepted = HashMap::new();
        for (key, value) in store.scan_prefix(Table::Meta, b"outbox/in/")? {
            if let (Some(origin), Some(hwm)) = (u64_at(&key, 10), u64_at(&value, 0)) {
                accepted.insert(origin, (hwm, hwm));
            }
        }
        let me = Arc::new(Arrivals { net: net.clone(), store, accepted: Mutex::new(accepted), deliver });
        let outbox = Arc::downgrade(&outbox);
        net.on_channel(
            Channel::Publishes,
            Arc::new(move |from, frame| {
                let Some((&kind, rest)) = frame.split_first() else { return };
                match kind {
                    PLAIN => me.deliver_now(rest),
                    RELIABLE => {
                        let (Some(seq), Some(prev)) = (u64_at(rest, 0), u64_at(rest, 8)) else { return };
                        me.reliable(from, seq, prev, &rest[16..]);
                    }
                    _ => {
                        if let Some(outbox) = outbox.upgrade() {
                            outbox.answered(from, kind, rest);
                        }
                    }
                }
            }),
        );
        Ok(())
    }

    fn deliver_now(&self, message: &[u8]) {
        let mut b = Batch::new();
        let after = (self.deliver)(message, &mut b);
        self.store.submit(b);
        if let Some(after) = after {
            after();
        }
    }

    fn reliable(self: &Arc<Self>, from: u64, seq: u64, prev: u64, message: &[u8]) {
        {
            let mut all = self.accepted.lock();
            let (accepted, durable) = all.entry(from).or_insert((0, 0));
            let (accepted, durable) = (accepted, *durable);
            if seq <= *accepted {
                drop(all);
                return self.answer(from, ACK, &[durable]); // a duplicate: the sender missed our ack
            }
            if prev != *accepted {
                let a = *accepted;
                drop(all);
                return self.answer(from, RESEND, &[durable, a]);
            }
            *accepted = seq;
        }
        let mut b = Batch::new();
        let after = (self.deliver)(message, &mut b);
        b.put(Table::Meta, hwm_key(from), seq.to_be_bytes().to_vec());
        b.set_durable();
        let me = Arc::downgrade(self);
        self.store.commit(
            b,
            Box::new(move |r| match (r, me.upgrade()) {
                (Ok(()), Some(me)) => {
                    if let Some(entry) = me.accepted.lock().get_mut(&from) {
                        entry.1 = entry.1.max(seq);
                    }
                    me.answer(from, ACK, &[seq]);
                }
                (Err(e), _) => tracing::error!(peer = from, error = %e, "a forwarded publish could not be stored; the sender will resend it after a restart"),
                _ => {}
            }),
        );
        if let Some(after) = after {
            after();
        }
    }

    fn answer(&self, to: u64, kind: u8, values: &[u64]) {
        let mut frame = Vec::with_capacity(1 + 8 * values.len());
        frame.push(kind);
        for v in values {
            frame.extend_from_slice(&v.to_be_bytes());
        }
        let _ = self.net.send_channel(to, Channel::Publishes, frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwm_keys_carry_the_origin() {
        assert_eq!(u64_at(&hwm_key(9), 10), Some(9));
    }
}
