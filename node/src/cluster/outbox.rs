//! The durable per-peer outbox for forwarded QoS 1/2 publishes (docs/ARCHITECTURE.md): a
//! forward is never fire-and-forget.
//!
//! Sender: the ingress node writes each forwarded copy to the `outbox` table in the same
//! durable batch as the publish's own session copies, so the PUBACK (sent after that batch
//! is fsync'd) implies the copy survives a crash. Each copy gets a sequence number unique
//! for the pair (this node, peer) forever: the node's boot epoch in the high 32 bits, a
//! counter in the low 32. Copies are sent in sequence order, each frame naming the sequence
//! of the frame before it (`prev`), and stay in the outbox until the peer acknowledges them.
//!
//! Receiver ([`super::arrivals`]): it keeps, per origin node, the highest sequence it has delivered (`hwm`),
//! stored in the same durable batch as the session copies the frame produced. A frame with
//! a sequence at or below `hwm` is a duplicate: acknowledged, not delivered. A frame whose
//! `prev` is `hwm` continues the chain: delivered, and acknowledged once durable. Any other
//! frame means something before it was lost (a full queue, a dropped connection): the
//! receiver answers "resend after hwm" (with what of it is already durable) and the sender
//! resends every unacknowledged copy from there. A sender that knows nothing (a restart) finds the receiver's `hwm` the same
//! way, on its first frame. Unacknowledged copies are also resent when a connection comes
//! up and when they wait too long, so partitions and crashes on either side lose nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ferrite_cluster::{Batch, Channel, QuicNet, Store, StoreError, Table};
use parking_lot::Mutex;

/// A QoS 0 publish, sent once: `[PLAIN] message`.
pub(super) const PLAIN: u8 = 0;
/// A copy from the outbox: `[RELIABLE] seq prev message`.
pub(super) const RELIABLE: u8 = 1;
/// Everything up to `hwm` is durable here: `[ACK] hwm`.
pub(super) const ACK: u8 = 2;
/// A frame did not continue the chain: `[RESEND] durable accepted`, everything up to
/// `durable` is stored here, send again what follows `accepted`.
pub(super) const RESEND: u8 = 3;

/// Unacknowledged copies older than this are sent again.
const RESEND_AFTER: Duration = Duration::from_secs(2);

/// Bytes of unacknowledged copies kept in memory per peer; beyond it (a peer down for a
/// while) copies are only on disk and are read back when their turn to be sent comes.
const IN_MEMORY_PER_PEER: usize = 8 << 20;

/// A peer gone from the address book (removed from the cluster) this long has its copies
/// dropped: nobody will acknowledge them.
const FORGET_REMOVED_AFTER: Duration = Duration::from_secs(60);

/// The key of the node's boot epoch in the meta table.
const EPOCH_KEY: &[u8] = b"outbox/epoch";

/// The outbox key of copy `seq` for `peer`.
fn entry_key(peer: u64, seq: u64) -> Vec<u8> {
    [peer.to_be_bytes(), seq.to_be_bytes()].concat()
}

/// The big-endian number at `at`, if the bytes are there.
pub(super) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// One unacknowledged copy.
struct Entry {
    /// The copy, when it fits the peer's memory budget; otherwise only on disk.
    message: Option<Arc<Vec<u8>>>,
    /// Its size in bytes.
    len: usize,
    /// False until the batch holding it has been handed to the store: a copy is never
    /// sent before its own write is queued, so an acknowledgement's delete follows its put.
    released: bool,
}

/// What this node has sent to one peer.
#[derive(Default)]
struct PeerOutbox {
    next: u64,
    entries: BTreeMap<u64, Entry>,
    /// The peer's `hwm` as last heard.
    acked: u64,
    /// The sequence of the last frame sent, the `prev` of the next one.
    last_sent: u64,
    /// When the peer last acknowledged something (or the chain was last restarted).
    progress: Option<Instant>,
    /// Bytes of `entries` held in memory.
    in_memory: usize,
    /// Since when the peer has not been in the address book (it left the cluster).
    absent_since: Option<Instant>,
}

impl PeerOutbox {
    /// Adds a copy, in memory while the peer's budget allows.
    fn insert(&mut self, seq: u64, message: &Arc<Vec<u8>>, released: bool) {
        let len = message.len();
        let message = (self.in_memory + len <= IN_MEMORY_PER_PEER).then(|| {
            self.in_memory += len;
            message.clone()
        });
        self.entries.insert(seq, Entry { message, len, released });
    }
}

/// Copies held by one routed publish until its batch is handed to the store; dropping
/// the hold releases them for sending.
pub struct Held {
    outbox: Weak<Outbox>,
    copies: Vec<(u64, u64)>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(outbox) = self.outbox.upgrade() {
            outbox.release(&self.copies);
        }
    }
}

/// The outbox of a clustered node, both directions.
pub struct Outbox {
    net: Arc<QuicNet>,
    store: Arc<Store>,
    epoch: u64,
    peers: Mutex<HashMap<u64, PeerOutbox>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens the outbox: a new boot epoch, and the copies an earlier run left unacknowledged.
    pub fn open(net: Arc<QuicNet>, store: Arc<Store>) -> Result<Arc<Outbox>, StoreError> {
        let epoch = store.get(Table::Meta, EPOCH_KEY)?.and_then(|v| u64_at(&v, 0)).unwrap_or(0) + 1;
        let mut b = Batch::new();
        b.put(Table::Meta, EPOCH_KEY, epoch.to_be_bytes().to_vec());
        b.set_durable();
        store.write_now(b)?;
        let mut peers: HashMap<u64, PeerOutbox> = HashMap::new();
        for (key, value) in store.scan_prefix(Table::Outbox, b"")? {
            let (Some(peer), Some(seq)) = (u64_at(&key, 0), u64_at(&key, 8)) else { continue };
            peers.entry(peer).or_default().insert(seq, &Arc::new(value), true);
        }
        let left: usize = peers.values().map(|p| p.entries.len()).sum();
        if left > 0 {
            tracing::info!(copies = left, "resending forwarded publishes left unacknowledged by the last run");
        }
        let outbox = Arc::new(Outbox { net, store, epoch, peers: Mutex::new(peers) });
        outbox.start_resending();
        Ok(outbox)
    }

    /// Resends on every new connection and, from a timer, whatever waits too long.
    fn start_resending(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.net.on_connect(Arc::new(move |peer| {
            if let Some(me) = me.upgrade() {
                me.restart_chain(peer, None);
            }
        }));
        let me = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("outbox-resend".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(500));
                let Some(me) = me.upgrade() else { return };
                me.resend_stale();
            })
            .expect("spawning a thread");
        // Copies left by an earlier run go out as soon as their peers are reachable.
        let peers: Vec<u64> = self.peers.lock().keys().copied().collect();
        for peer in peers {
            self.restart_chain(peer, None);
        }
    }

    /// Forwards an encoded QoS 0 message to `peer`, once.
    pub fn send_plain(&self, peer: u64, message: &[u8]) -> bool {
        self.net.send_channel(peer, Channel::Publishes, [&[PLAIN][..], message].concat())
    }

    /// Puts a copy of an encoded QoS 1/2 message for each of `peers` into `batch` (made
    /// durable) and holds them until the returned [`Held`] is dropped.
    pub fn hold(self: &Arc<Self>, peers: &[u64], message: Vec<u8>, batch: &mut Batch) -> Held {
        let held = self.hold_copies(peers, message, batch);
        batch.set_durable();
        held
    }

    /// Sends `message` to each of `peers` through the outbox (reliably, in order) without
    /// waiting for an fsync: for records whose loss in a power cut costs only duplicates
    /// (session replica records).
    pub fn send_reliable(self: &Arc<Self>, peers: &[u64], message: Vec<u8>) {
        let mut batch = Batch::new();
        let held = self.hold_copies(peers, message, &mut batch);
        self.store.submit(batch);
        drop(held);
    }

    fn hold_copies(self: &Arc<Self>, peers: &[u64], message: Vec<u8>, batch: &mut Batch) -> Held {
        let message = Arc::new(message);
        let mut copies = Vec::with_capacity(peers.len());
        let mut all = self.peers.lock();
        for &peer in peers {
            let p = all.entry(peer).or_default();
            p.next += 1;
            let seq = (self.epoch << 32) | (p.next & 0xFFFF_FFFF);
            batch.put(Table::Outbox, entry_key(peer, seq), message.as_slice());
            p.insert(seq, &message, false);
            copies.push((peer, seq));
        }
        Held { outbox: Arc::downgrade(self), copies }
    }

    fn release(&self, copies: &[(u64, u64)]) {
        let mut touched = Vec::new();
        {
            let mut all = self.peers.lock();
            for &(peer, seq) in copies {
                if let Some(e) = all.get_mut(&peer).and_then(|p| p.entries.get_mut(&seq)) {
                    e.released = true;
                    touched.push(peer);
                }
            }
        }
        for peer in touched {
            self.pump(peer);
        }
    }

    /// Sends the released copies that follow the last frame sent, in order.
    fn pump(&self, peer: u64) {
        let mut all = self.peers.lock();
        let Some(p) = all.get_mut(&peer) else { return };
        let after = p.last_sent;
        let mut last = after;
        for (&seq, e) in p.entries.range(after + 1..) {
            if !e.released {
                break;
            }
            let from_disk;
            let message: &[u8] = match &e.message {
                Some(m) => m,
                None => match self.store.get(Table::Outbox, &entry_key(peer, seq)) {
                    Ok(Some(m)) => {
                        from_disk = m;
                        &from_disk
                    }
                    // Not written yet, or unreadable: the resend timer tries again.
                    _ => break,
                },
            };
            let mut frame = Vec::with_capacity(17 + message.len());
            frame.push(RELIABLE);
            frame.extend_from_slice(&seq.to_be_bytes());
            frame.extend_from_slice(&last.to_be_bytes());
            frame.extend_from_slice(message);
            if !self.net.send_channel(peer, Channel::Publishes, frame) {
                break; // the resend timer starts the chain again from what the peer has
            }
            last = seq;
        }
        p.last_sent = last;
    }

    /// Starts sending `peer`'s unacknowledged copies again: after what the peer said it
    /// has (`(durable, accepted)`), or after what it last acknowledged.
    fn restart_chain(&self, peer: u64, told: Option<(u64, u64)>) {
        {
            let mut all = self.peers.lock();
            let p = all.entry(peer).or_default();
            p.last_sent = match told {
                // Trusted even when lower than before: a peer that lost its data starts over.
                Some((durable, accepted)) => {
                    p.acked = durable;
                    accepted
                }
                None => p.acked,
            };
            p.progress = Some(Instant::now());
        }
        self.acknowledged(peer, 0);
        self.pump(peer);
    }

    /// Drops the copies `peer` has made durable.
    fn acknowledged(&self, peer: u64, hwm: u64) {
        let mut b = Batch::new();
        {
            let mut all = self.peers.lock();
            let Some(p) = all.get_mut(&peer) else { return };
            if hwm > p.acked {
                p.acked = hwm;
                p.progress = Some(Instant::now());
            }
            let keep = p.entries.split_off(&(p.acked + 1));
            for (seq, e) in std::mem::replace(&mut p.entries, keep) {
                if e.message.is_some() {
                    p.in_memory -= e.len;
                }
                b.delete(Table::Outbox, entry_key(peer, seq));
            }
        }
        if !b.is_empty() {
            self.store.submit(b);
        }
    }

    fn resend_stale(&self) {
        self.forget_removed_peers();
        let stale: Vec<u64> = self
            .peers
            .lock()
            .iter()
            .filter(|(_, p)| {
                p.entries.first_key_value().is_some_and(|(_, e)| e.released)
                    && p.progress.is_none_or(|t| t.elapsed() >= RESEND_AFTER)
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in stale {
            if self.net.connected(peer) {
                tracing::debug!(peer, "resending unacknowledged forwarded publishes");
                self.restart_chain(peer, None);
            }
        }
    }

    /// Drops the copies of peers that have been out of the address book (removed from the
    /// cluster) for [`FORGET_REMOVED_AFTER`].
    fn forget_removed_peers(&self) {
        let members: std::collections::HashSet<u64> = self.net.peers().into_iter().map(|(id, _)| id).collect();
        let mut b = Batch::new();
        self.peers.lock().retain(|&peer, p| {
            if members.contains(&peer) {
                p.absent_since = None;
                return true;
            }
            let since = *p.absent_since.get_or_insert_with(Instant::now);
            if since.elapsed() < FORGET_REMOVED_AFTER {
                return true;
            }
            if !p.entries.is_empty() {
                tracing::warn!(
                    peer,
                    copies = p.entries.len(),
                    "dropping forwarded publishes for a node that left the cluster"
                );
            }
            for seq in p.entries.keys() {
                b.delete(Table::Outbox, entry_key(peer, *seq));
            }
            false
        });
        if !b.is_empty() {
            self.store.submit(b);
        }
    }

    /// Handles an acknowledgement or resend request from `from` (the other frames of the
    /// publishes stream are [`super::arrivals`]'s).
    pub fn answered(&self, from: u64, kind: u8, rest: &[u8]) {
        match kind {
            ACK => {
                if let Some(hwm) = u64_at(rest, 0) {
                    self.acknowledged(from, hwm);
                }
            }
            RESEND => {
                if let (Some(durable), Some(accepted)) = (u64_at(rest, 0), u64_at(rest, 8)) {
                    self.restart_chain(from, Some((durable, accepted)));
                }
            }
            other => tracing::warn!(peer = from, kind = other, "an unknown forwarded-publish frame was dropped"),
        }
    }

    /// Unacknowledged copies per peer, and their bytes (for status, metrics and tests).
    pub fn pending(&self) -> Vec<(u64, usize, usize)> {
        let mut v: Vec<(u64, usize, usize)> = self
            .peers
            .lock()
            .iter()
            .map(|(p, o)| (*p, o.entries.len(), o.entries.values().map(|e| e.len).sum()))
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_peer_then_sequence() {
        let mut keys = vec![entry_key(2, 1 << 32 | 1), entry_key(1, 2 << 32 | 1), entry_key(1, 1 << 32 | 7)];
        keys.sort();
        assert_eq!(keys, vec![entry_key(1, 1 << 32 | 7), entry_key(1, 2 << 32 | 1), entry_key(2, 1 << 32 | 1)]);
    }

    #[test]
    fn copies_beyond_the_memory_budget_are_kept_on_disk_only() {
        let mut p = PeerOutbox::default();
        let big = Arc::new(vec![0u8; IN_MEMORY_PER_PEER / 2 + 1]);
        p.insert(1, &big, true);
        p.insert(2, &big, true);
        assert!(p.entries[&1].message.is_some());
        assert!(p.entries[&2].message.is_none());
        assert_eq!((p.in_memory, p.entries[&2].len), (big.len(), big.len()));
    }
}
