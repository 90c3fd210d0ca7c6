//! The cluster route table (docs/ARCHITECTURE.md): which nodes have subscribers for which
//! topic filters, so that a publish is forwarded once to each node that needs it.
//!
//! Each node is the only author of its own routes. When its first local subscription to a
//! filter appears or its last one goes, it sends a delta (its route version, the filters
//! added or removed) to every peer on the routes stream; when a connection to a peer comes
//! up it sends its whole table instead, so a peer that missed deltas while cut off is right
//! again. Subscriptions themselves never go through consensus: their churn is too high.
//!
//! Forwarded publishes are delivered by the receiving node to its own subscribers only: no
//! second forward, no rules (they ran on the ingress node), no retained-table change. QoS 1/2
//! copies go through the durable [`Outbox`]; QoS 0 ones are sent once.
//!
//! Shared subscriptions are cluster-wide: a node advertises a group member's route as
//! `$share/{group}/{filter}`, and the ingress node gives each message to one member of each
//! group: its own online member if it has one, otherwise one node with a member (reachable
//! ones first, round-robin), named in the forwarded frame ([`wrap_shared`]). A receiver
//! gives a message to its members of only the groups the frame names.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ferrite_cluster::{Batch, Channel, QuicNet};
use ferrite_mqtt::packet::{QoS, SubOptions};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::broker::hooks::Forwarded;
use crate::broker::message::Message;
use crate::broker::router::{Router, Subscriber};

use super::outbox::{Held, Outbox};

/// The first byte of a forwarded message that names the shared groups its receiver serves:
/// `[SHARED] only:u8 count:u8 (len:u16 group-key)* message`; `only` = 1: for those groups
/// alone (a departed member's message handed back), not for plain subscribers. A plain
/// message starts with its format version (1 or 2), a session replica record with 0xA5.
pub const SHARED: u8 = 0xA6;

/// The first byte of a presence event broadcast to every peer (`broadcast_presence`).
pub const PRESENCE: u8 = 0xA7;

/// What a forwarded frame asks its receiver to deliver.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Serve {
    /// Shared groups (`$share/{group}/{filter}`) the receiver gives the message to.
    pub groups: Vec<Arc<str>>,
    /// Only those groups: not the receiver's plain subscribers.
    pub groups_only: bool,
}

/// A forwarded message for which the receiver serves `groups`, and with `groups_only`
/// nothing else.
pub fn wrap_shared(groups: &[Arc<str>], groups_only: bool, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3 + groups.iter().map(|g| g.len() + 2).sum::<usize>());
    out.push(SHARED);
    out.push(u8::from(groups_only));
    out.push(groups.len().min(255) as u8);
    for g in groups.iter().take(255) {
        out.extend_from_slice(&(g.len().min(u16::MAX as usize) as u16).to_be_bytes());
        out.extend_from_slice(&g.as_bytes()[..g.len().min(u16::MAX as usize)]);
    }
    out.extend_from_slice(message);
    out
}

/// What a frame [`wrap_shared`] made serves, and its message; a frame without groups comes
/// back whole, serving plain subscribers. `None` for a truncated frame.
pub fn unwrap_shared(frame: &[u8]) -> Option<(Serve, &[u8])> {
    if frame.first() != Some(&SHARED) {
        return Some((Serve::default(), frame));
    }
    let (&only, rest) = frame[1..].split_first()?;
    let (&count, mut rest) = rest.split_first()?;
    let mut groups = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (len, tail) = rest.split_at_checked(2)?;
        let (key, tail) = tail.split_at_checked(u16::from_be_bytes([len[0], len[1]]) as usize)?;
        groups.push(Arc::from(std::str::from_utf8(key).ok()?));
        rest = tail;
    }
    Some((Serve { groups, groups_only: only == 1 }, rest))
}

/// The route-table key of a subscription: the filter, or `$share/{group}/{filter}`.
fn route_key(filter: &str, group: Option<&str>) -> String {
    match group {
        Some(g) => format!("$share/{g}/{filter}"),
        None => filter.to_string(),
    }
}

/// The filter and group a route-table key names.
fn split_route_key(key: &str) -> (&str, Option<&str>) {
    match key.strip_prefix("$share/").and_then(|rest| rest.split_once('/')) {
        Some((group, filter)) => (filter, Some(group)),
        None => (key, None),
    }
}

/// One routes message: a node's whole table (`full`) or a change to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RouteUpdate {
    /// The author's route version after this update.
    version: u64,
    /// True: `add` is the whole table and replaces what the receiver had.
    full: bool,
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
    /// The sender has just started listening for routes and asks for the receiver's whole
    /// table: connections that came up before that missed the exchange on connect.
    #[serde(default)]
    ask: bool,
}

/// This node's filters, counted by local subscriptions.
#[derive(Default)]
struct LocalRoutes {
    counts: HashMap<String, usize>,
    version: u64,
}

/// What a peer told us about its routes.
#[derive(Default)]
struct PeerRoutes {
    version: u64,
    filters: HashSet<String>,
}

/// The route table of a clustered node.
pub struct ClusterRoutes {
    net: Arc<QuicNet>,
    /// Persistent sessions keep replicas on every other node (`broker/replica.rs`).
    replicate_sessions: bool,
    outbox: Arc<Outbox>,
    local: Mutex<LocalRoutes>,
    remote: Router<u64>,
    peers: Mutex<HashMap<u64, PeerRoutes>>,
}

impl std::fmt::Debug for ClusterRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRoutes").field("remote", &self.remote.len()).finish_non_exhaustive()
    }
}

/// The name a peer's routes carry in the remote trie.
fn peer_name(node: u64) -> Arc<str> {
    format!("node-{node}").into()
}

impl ClusterRoutes {
    /// A table that talks to peers through `net`, forwarding through `outbox`; with
    /// `replicate_sessions`, session replica records go to every peer too.
    pub fn new(net: Arc<QuicNet>, outbox: Arc<Outbox>, replicate_sessions: bool) -> Arc<ClusterRoutes> {
        Arc::new(ClusterRoutes {
            net,
            replicate_sessions,
            outbox,
            local: Mutex::new(LocalRoutes::default()),
            remote: Router::default(),
            peers: Mutex::new(HashMap::new()),
        })
    }

    /// Starts exchanging route tables with peers.
    pub fn serve(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.net.on_channel(
            Channel::Routes,
            Arc::new(move |from, bytes| {
                if let Some(me) = me.upgrade() {
                    me.on_update(from, &bytes);
                }
            }),
        );
        let me = Arc::downgrade(self);
        self.net.on_connect(Arc::new(move |peer| {
            if let Some(me) = me.upgrade() {
                me.send_full(peer, false);
            }
        }));
        // Connections made while the node was starting came up before these handlers: their
        // tables were dropped here and ours never went out. Exchange them now.
        for (peer, _) in self.net.peers() {
            self.send_full(peer, true);
        }
        let me = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("routes-prune".into()).spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            let Some(me) = me.upgrade() else { return };
            me.forget_removed_peers();
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start pruning the routes of removed nodes");
        }
    }

    /// Drops the routes of nodes no longer in the address book (removed from the cluster),
    /// so nothing more is forwarded to them.
    fn forget_removed_peers(&self) {
        let members: HashSet<u64> = self.net.peers().into_iter().map(|(id, _)| id).collect();
        let mut peers = self.peers.lock();
        let gone: Vec<u64> = peers.keys().copied().filter(|p| !members.contains(p)).collect();
        for node in gone {
            let name = peer_name(node);
            if let Some(known) = peers.remove(&node) {
                for key in &known.filters {
                    let (filter, group) = split_route_key(key);
                    self.remote.unsubscribe(filter, group, &name);
                }
                tracing::info!(
                    node,
                    routes = known.filters.len(),
                    "dropped the routes of a node that left the cluster"
                );
            }
        }
    }

    fn send(&self, peer: u64, update: &RouteUpdate) {
        let bytes = serde_json::to_vec(update).unwrap_or_default();
        if !self.net.send_channel(peer, Channel::Routes, bytes) {
            tracing::debug!(peer, "a route update was not queued; the peer resyncs on reconnect");
        }
    }

    fn send_full(&self, peer: u64, ask: bool) {
        let update = {
            let local = self.local.lock();
            RouteUpdate {
                version: local.version,
                full: true,
                add: local.counts.keys().cloned().collect(),
                remove: Vec::new(),
                ask,
            }
        };
        self.send(peer, &update);
    }

    fn broadcast(&self, change: impl FnOnce(&mut LocalRoutes) -> Option<RouteUpdate>) {
        // Holding the lock while queueing keeps deltas in version order on every stream.
        let mut local = self.local.lock();
        if let Some(update) = change(&mut local) {
            for (peer, _) in self.net.peers() {
                self.send(peer, &update);
            }
        }
    }

    /// A local subscription to `filter` (in shared group `group`) was added.
    pub fn added(&self, filter: &str, group: Option<&str>) {
        let key = route_key(filter, group);
        self.broadcast(|local| {
            let n = local.counts.entry(key.clone()).or_insert(0);
            *n += 1;
            (*n == 1).then(|| {
                local.version += 1;
                RouteUpdate {
                    version: local.version,
                    full: false,
                    add: vec![key.clone()],
                    remove: Vec::new(),
                    ask: false,
                }
            })
        });
    }

    /// A local subscription to `filter` (in shared group `group`) was removed.
    pub fn removed(&self, filter: &str, group: Option<&str>) {
        let key = route_key(filter, group);
        self.broadcast(|local| {
            let n = local.counts.get_mut(&key)?;
            *n -= 1;
            if *n > 0 {
                return None;
            }
            local.counts.remove(&key);
            local.version += 1;
            Some(RouteUpdate {
                version: local.version,
                full: false,
                add: Vec::new(),
                remove: vec![key.clone()],
                ask: false,
            })
        });
    }

    fn on_update(&self, from: u64, bytes: &[u8]) {
        let Ok(update) = serde_json::from_slice::<RouteUpdate>(bytes) else {
            tracing::warn!(peer = from, "an undecodable route update was dropped");
            return;
        };
        if update.ask {
            self.send_full(from, false);
        }
        let mut peers = self.peers.lock();
        let known = peers.entry(from).or_default();
        if !update.full && update.version <= known.version {
            return; // older than what we have
        }
        let name = peer_name(from);
        let sub = || Subscriber {
            client_id: name.clone(),
            handle: from,
            options: SubOptions::default(),
            subscription_id: None,
        };
        let add = |key: &str| {
            let (filter, group) = split_route_key(key);
            self.remote.subscribe(filter, group, sub());
        };
        let remove = |key: &str| {
            let (filter, group) = split_route_key(key);
            self.remote.unsubscribe(filter, group, &name);
        };
        if update.full {
            let fresh: HashSet<String> = update.add.into_iter().collect();
            for gone in known.filters.difference(&fresh) {
                remove(gone);
            }
            for new in fresh.difference(&known.filters) {
                add(new);
            }
            known.filters = fresh;
        } else {
            for f in update.add {
                add(&f);
                known.filters.insert(f);
            }
            for f in update.remove {
                remove(&f);
                known.filters.remove(&f);
            }
        }
        known.version = update.version;
    }

    /// Forwards `msg` once to every peer with a route matching its topic (unless
    /// `shared_only`), and to one peer per matching shared group not `served_here`. A QoS
    /// 1/2 copy is written to the outbox in `batch` (which becomes durable) and sent once
    /// the returned holds are dropped, after the batch has been handed to the store.
    pub fn forward(
        &self,
        msg: &Message,
        shared_only: bool,
        served_here: &dyn Fn(&str) -> bool,
        batch: &mut Batch,
    ) -> (Vec<Held>, Vec<Arc<str>>) {
        if self.remote.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let mut matches = Vec::new();
        self.remote.matches(&msg.topic, |node| self.net.connected(*node), &mut matches);
        let mut plain: Vec<u64> = Vec::new();
        let mut groups: BTreeMap<u64, Vec<Arc<str>>> = BTreeMap::new();
        let mut elsewhere = Vec::new();
        for m in matches {
            match m.shared {
                None if !shared_only => plain.push(m.subscriber.handle),
                None => {}
                Some(group) if !served_here(&group) => {
                    groups.entry(m.subscriber.handle).or_default().push(group.clone());
                    elsewhere.push(group);
                }
                Some(_) => {}
            }
        }
        plain.sort_unstable();
        plain.dedup();
        plain.retain(|n| !groups.contains_key(n));
        if plain.is_empty() && groups.is_empty() {
            return (Vec::new(), elsewhere);
        }
        let mut bytes = Vec::with_capacity(msg.payload.len() + msg.topic.len() + 48);
        msg.encode(&mut bytes);
        let mut frames: Vec<(Vec<u64>, Vec<u8>)> = Vec::with_capacity(1 + groups.len());
        for (node, served) in groups {
            frames.push((vec![node], wrap_shared(&served, shared_only, &bytes)));
        }
        if !plain.is_empty() {
            frames.push((plain, bytes));
        }
        let mut held = Vec::new();
        for (nodes, frame) in frames {
            if msg.qos != QoS::AtMostOnce {
                held.push(self.outbox.hold(&nodes, frame, batch));
                continue;
            }
            for node in nodes {
                if !self.outbox.send_plain(node, &frame) {
                    tracing::debug!(peer = node, topic = %msg.topic, "a QoS 0 publish was not forwarded: the peer's queue is full or it is unreachable");
                }
            }
        }
        (held, elsewhere)
    }

    /// Sends a lifecycle presence event to every connected peer, best effort (no outbox, no
    /// route needed): each node's fleet index learns every device's connectivity. A peer
    /// that is unreachable learns the device's state at its next change.
    pub fn broadcast_presence(&self, msg: &Message) {
        let mut frame = vec![PRESENCE];
        msg.encode(&mut frame);
        for (peer, _) in self.net.peers() {
            if self.net.connected(peer) && !self.outbox.send_plain(peer, &frame) {
                tracing::debug!(peer, "a presence event was not broadcast: the peer's queue is full");
            }
        }
    }

    /// Forwarded QoS 1/2 copies not yet acknowledged, per peer.
    pub fn outbox_pending(&self) -> Vec<(u64, usize, usize)> {
        self.outbox.pending()
    }

    /// The filters peer `node` has routes for, sorted (for status and tests).
    pub fn peer_filters(&self, node: u64) -> Vec<String> {
        let mut v: Vec<String> =
            self.peers.lock().get(&node).map(|p| p.filters.iter().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }
}

impl crate::broker::hooks::Peers for ClusterRoutes {
    fn forward(
        &self,
        msg: &Arc<Message>,
        shared_only: bool,
        served_here: &dyn Fn(&str) -> bool,
        batch: &mut Batch,
    ) -> Forwarded {
        let (held, groups_elsewhere) = ClusterRoutes::forward(self, msg, shared_only, served_here, batch);
        let copies = (!held.is_empty()).then(|| Box::new(held) as crate::broker::hooks::Forwards);
        Forwarded { copies, groups_elsewhere }
    }

    fn added(&self, filter: &str, group: Option<&str>) {
        ClusterRoutes::added(self, filter, group);
    }

    fn removed(&self, filter: &str, group: Option<&str>) {
        ClusterRoutes::removed(self, filter, group);
    }

    fn replicates_sessions(&self) -> bool {
        self.replicate_sessions
    }

    fn mirror(&self, record: Vec<u8>) {
        let members: Vec<u64> = self.net.peers().into_iter().map(|(id, _)| id).collect();
        if !members.is_empty() {
            self.outbox.send_reliable(&members, record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_frames_round_trip_and_plain_frames_pass_through() {
        let groups: Vec<Arc<str>> = vec!["$share/g/a/#".into(), "$share/h/b".into()];
        let frame = wrap_shared(&groups, true, b"\x02message");
        let (serve, message) = unwrap_shared(&frame).unwrap();
        assert_eq!(serve, Serve { groups, groups_only: true });
        assert_eq!(message, b"\x02message");
        assert_eq!(unwrap_shared(b"\x02plain").unwrap(), (Serve::default(), &b"\x02plain"[..]));
        assert!(unwrap_shared(&frame[..6]).is_none());
    }

    proptest::proptest! {
        #[test]
        fn shared_frames_round_trip_and_garbage_never_panics(
            groups in proptest::collection::vec("[a-z$/+#]{0,30}", 0..5),
            only in proptest::prelude::any::<bool>(),
            message in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96),
        ) {
            let groups: Vec<Arc<str>> = groups.into_iter().map(Arc::from).collect();
            let frame = wrap_shared(&groups, only, &message);
            let (serve, rest) = unwrap_shared(&frame).unwrap();
            proptest::prop_assert_eq!(serve, Serve { groups, groups_only: only });
            proptest::prop_assert_eq!(rest, &message[..]);
            let _ = unwrap_shared(&[&[SHARED][..], &garbage].concat());
        }
    }

    #[test]
    fn route_keys_name_groups() {
        assert_eq!(route_key("a/+", Some("g")), "$share/g/a/+");
        assert_eq!(split_route_key("$share/g/a/+"), ("a/+", Some("g")));
        assert_eq!(split_route_key("a/+"), ("a/+", None));
    }
}
