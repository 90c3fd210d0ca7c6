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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ferrite_cluster::{Batch, Channel, QuicNet};
use ferrite_mqtt::packet::{QoS, SubOptions};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::broker::message::Message;
use crate::broker::router::{Router, Subscriber};

use super::outbox::{Held, Outbox};

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
    /// A table that talks to peers through `net`, forwarding through `outbox`.
    pub fn new(net: Arc<QuicNet>, outbox: Arc<Outbox>) -> Arc<ClusterRoutes> {
        Arc::new(ClusterRoutes {
            net,
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

    /// A local subscription to `filter` (without any `$share/` prefix) was added.
    pub fn added(&self, filter: &str) {
        self.broadcast(|local| {
            let n = local.counts.entry(filter.to_string()).or_insert(0);
            *n += 1;
            (*n == 1).then(|| {
                local.version += 1;
                RouteUpdate {
                    version: local.version,
                    full: false,
                    add: vec![filter.to_string()],
                    remove: Vec::new(),
                    ask: false,
                }
            })
        });
    }

    /// A local subscription to `filter` was removed.
    pub fn removed(&self, filter: &str) {
        self.broadcast(|local| {
            let n = local.counts.get_mut(filter)?;
            *n -= 1;
            if *n > 0 {
                return None;
            }
            local.counts.remove(filter);
            local.version += 1;
            Some(RouteUpdate {
                version: local.version,
                full: false,
                add: Vec::new(),
                remove: vec![filter.to_string()],
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
        if update.full {
            let fresh: HashSet<String> = update.add.into_iter().collect();
            for gone in known.filters.difference(&fresh) {
                self.remote.unsubscribe(gone, None, &name);
            }
            for new in fresh.difference(&known.filters) {
                self.remote.subscribe(new, None, sub());
            }
            known.filters = fresh;
        } else {
            for f in update.add {
                self.remote.subscribe(&f, None, sub());
                known.filters.insert(f);
            }
            for f in update.remove {
                self.remote.unsubscribe(&f, None, &name);
                known.filters.remove(&f);
            }
        }
        known.version = update.version;
    }

    /// Forwards `msg` once to every peer with a route matching its topic. A QoS 1/2 copy
    /// is written to the outbox in `batch` (which becomes durable) and sent once the
    /// returned hold is dropped, after the batch has been handed to the store.
    pub fn forward(&self, msg: &Message, batch: &mut Batch) -> Option<Held> {
        if self.remote.is_empty() {
            return None;
        }
        let mut matches = Vec::new();
        self.remote.matches(&msg.topic, |_| true, &mut matches);
        if matches.is_empty() {
            return None;
        }
        let mut nodes: Vec<u64> = matches.into_iter().map(|m| m.subscriber.handle).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let mut bytes = Vec::with_capacity(msg.payload.len() + msg.topic.len() + 32);
        msg.encode(&mut bytes);
        if msg.qos != QoS::AtMostOnce {
            return Some(self.outbox.hold(&nodes, bytes, batch));
        }
        for node in nodes {
            if !self.outbox.send_plain(node, &bytes) {
                tracing::debug!(peer = node, topic = %msg.topic, "a QoS 0 publish was not forwarded: the peer's queue is full or it is unreachable");
            }
        }
        None
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
    fn forward(&self, msg: &Arc<Message>, batch: &mut Batch) -> Option<crate::broker::hooks::Forwards> {
        ClusterRoutes::forward(self, msg, batch).map(|held| Box::new(held) as crate::broker::hooks::Forwards)
    }

    fn added(&self, filter: &str) {
        ClusterRoutes::added(self, filter);
    }

    fn removed(&self, filter: &str) {
        ClusterRoutes::removed(self, filter);
    }
}
