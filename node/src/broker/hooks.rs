//! What the broker core needs from the layers above it, as narrow traits defined here and
//! implemented there (the rules and shadows, the cluster's route table). `node.rs` hands the
//! implementations to [`super::Broker::open`]; the core never names the modules behind them.

use std::sync::Arc;

use ferrite_cluster::Batch;

use super::message::Message;

/// Runs on every message the broker routed, after its local subscribers were woken: shadow
/// requests are served and rules run here. It must not wait: it only evaluates and queues.
pub trait PublishObserver: Send + Sync {
    /// A Basic Ingest message (`$aws/rules/RULE/topic`): runs rule `rule` alone on it, as if
    /// published to `topic`; false when no such rule is loaded.
    fn ingest(&self, rule: &str, topic: &str, msg: &Arc<Message>) -> bool;

    /// A message published on this node (never one another node forwarded).
    fn published(&self, msg: &Arc<Message>);

    /// A lifecycle presence event of a device connected to another node, broadcast to every
    /// node (the fleet index's connectivity); not delivered to subscribers (they get the
    /// event through the routes as any publish).
    fn peer_presence(&self, _msg: &Message) {}
}

/// Nothing above the broker: for tools and tests that run the core alone.
pub struct NoObserver;

impl PublishObserver for NoObserver {
    fn ingest(&self, _rule: &str, _topic: &str, _msg: &Arc<Message>) -> bool {
        false
    }

    fn published(&self, _msg: &Arc<Message>) {}
}

/// Copies of a publish on their way to other nodes; they leave when this is dropped, after
/// the batch holding their durable records was submitted.
pub type Forwards = Box<dyn Send>;

/// What [`Peers::forward`] did.
#[derive(Default)]
pub struct Forwarded {
    /// The copies on their way, if any peer wanted one.
    pub copies: Option<Forwards>,
    /// Shared subscription groups (`$share/{group}/{filter}`) a member on another node
    /// serves this message for: this node must not give it to a member of its own.
    pub groups_elsewhere: Vec<Arc<str>>,
}

/// The other nodes of a cluster, as routing sees them: which of them want a message, and
/// which filters this node's subscribers have.
pub trait Peers: Send + Sync {
    /// Queues `msg` for every peer with a matching filter (its durable copies go into
    /// `batch`), and for one peer per matching shared group `served_here` says no to
    /// (a group is cluster-wide: one member in the cluster gets each message). With
    /// `shared_only`, only the groups.
    fn forward(
        &self,
        msg: &Arc<Message>,
        shared_only: bool,
        served_here: &dyn Fn(&str) -> bool,
        batch: &mut Batch,
    ) -> Forwarded;

    /// This node has its first subscriber for `filter` (in shared group `group`).
    fn added(&self, filter: &str, group: Option<&str>);

    /// This node's last subscriber for `filter` (in shared group `group`) left.
    fn removed(&self, filter: &str, group: Option<&str>);

    /// True when persistent sessions keep replicas on the other nodes (`replica.rs`).
    fn replicates_sessions(&self) -> bool;

    /// Sends a session replica record to every other member, reliably and in order.
    fn mirror(&self, record: Vec<u8>);
}
