//! How a group's Raft messages reach the same group on other nodes.
//!
//! A group hands every outgoing message to its node's [`Transport`]; whatever carries it
//! (QUIC between processes, [`LocalNetwork`] inside one process for tests) hands it to the
//! receiving node's [`Inbox`], which passes it to that node's member of the group. Delivery
//! is best effort: Raft retries what is lost.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;
use raft::eraftpb::Message;

/// Carries Raft messages to other nodes. `msg.to` names the node.
pub trait Transport: Send + Sync + 'static {
    /// Sends `msg` to the member of `group` on node `msg.to`, or drops it.
    fn send(&self, group: u32, msg: Message);
}

/// The transport of a node alone in its cluster: there is nobody to send to.
#[derive(Debug, Default)]
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&self, group: u32, msg: Message) {
        tracing::trace!(group, to = msg.to, "no peers: dropping a raft message");
    }
}

type Deliver = Arc<dyn Fn(Message) + Send + Sync>;

/// Where a node's groups receive their messages, by group id.
#[derive(Clone, Default)]
pub struct Inbox {
    groups: Arc<RwLock<HashMap<u32, Deliver>>>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").field("groups", &self.groups.read().len()).finish()
    }
}

impl Inbox {
    /// Hands `msg` to this node's member of `group`; false when the node has no such group.
    pub fn deliver(&self, group: u32, msg: Message) -> bool {
        let deliver = self.groups.read().get(&group).cloned();
        match deliver {
            Some(f) => {
                f(msg);
                true
            }
            None => false,
        }
    }

    pub(crate) fn register(&self, group: u32, deliver: Deliver) {
        self.groups.write().insert(group, deliver);
    }

    pub(crate) fn unregister(&self, group: u32) {
        self.groups.write().remove(&group);
    }
}

/// A change to a group's voters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// Adds node N as a voter.
    Add(u64),
    /// Removes node N.
    Remove(u64),
}

/// Runs on every member when a membership change is applied: (change, the context the
/// proposer attached, such as the new node's address).
pub type OnMemberChange = Arc<dyn Fn(MemberChange, &[u8]) + Send + Sync>;

/// This node's place in its cluster, which every group it runs shares.
#[derive(Clone)]
pub struct Member {
    /// This node's Raft id (never 0).
    pub id: u64,
    /// The voters a group starts with when it has no stored membership yet: every initial
    /// node lists the same ones. Empty on a node that joins a running cluster, whose groups
    /// wait for the leader to add them.
    pub initial_voters: Vec<u64>,
    /// Carries messages to the other nodes.
    pub transport: Arc<dyn Transport>,
    /// Receives messages from the other nodes.
    pub inbox: Inbox,
    /// Told about applied membership changes (the node's address book).
    pub on_change: Option<OnMemberChange>,
    /// Log entries a group keeps before it compacts its log behind the applied index; a
    /// member further behind than that catches up from a snapshot.
    pub compact_log_above: usize,
}

/// The default of [`Member::compact_log_above`].
pub const COMPACT_LOG_ABOVE: usize = 20_000;

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member").field("id", &self.id).field("initial_voters", &self.initial_voters).finish()
    }
}

impl Member {
    /// A node alone in its cluster: every group has this one voter.
    pub fn single() -> Member {
        Member {
            id: 1,
            initial_voters: vec![1],
            transport: Arc::new(NoPeers),
            inbox: Inbox::default(),
            on_change: None,
            compact_log_above: COMPACT_LOG_ABOVE,
        }
    }
}

/// Several nodes in one process, connected by function calls: for tests and benches of
/// replication without sockets. Links can be cut per node to make partitions.
#[derive(Default)]
pub struct LocalNetwork {
    nodes: RwLock<HashMap<u64, Inbox>>,
    isolated: RwLock<HashSet<u64>>,
}

impl std::fmt::Debug for LocalNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNetwork").field("nodes", &self.nodes.read().len()).finish()
    }
}

struct LocalLink {
    from: u64,
    network: Arc<LocalNetwork>,
}

impl Transport for LocalLink {
    fn send(&self, group: u32, msg: Message) {
        let cut = {
            let isolated = self.network.isolated.read();
            isolated.contains(&self.from) || isolated.contains(&msg.to)
        };
        if cut {
            return;
        }
        let inbox = self.network.nodes.read().get(&msg.to).cloned();
        if let Some(inbox) = inbox {
            inbox.deliver(group, msg);
        }
    }
}

impl LocalNetwork {
    /// An empty network.
    pub fn new() -> Arc<LocalNetwork> {
        Arc::default()
    }

    /// Adds node `id`, one of `initial_voters` (or empty to join later).
    pub fn member(self: &Arc<Self>, id: u64, initial_voters: &[u64]) -> Member {
        let inbox = Inbox::default();
        self.nodes.write().insert(id, inbox.clone());
        let transport = Arc::new(LocalLink { from: id, network: self.clone() });
        Member {
            id,
            initial_voters: initial_voters.to_vec(),
            transport,
            inbox,
            on_change: None,
            compact_log_above: COMPACT_LOG_ABOVE,
        }
    }

    /// Cuts every link of node `id` (both directions).
    pub fn isolate(&self, id: u64) {
        self.isolated.write().insert(id);
    }

    /// Restores the links of node `id`.
    pub fn heal(&self, id: u64) {
        self.isolated.write().remove(&id);
    }
}
