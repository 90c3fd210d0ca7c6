//! The node's services together, for the listeners and the HTTP API above them: the broker
//! core, the `meta` group (registry, identity, topic rules), the shadows, the rule engine and
//! the cluster's routing and takeover. `node.rs` builds it; nothing below this layer sees it.

use std::sync::Arc;

use ferrite_cluster::{AnyGroup, Group, GroupStatus};

use crate::broker::hooks::PublishObserver;
use crate::broker::message::{now_ms, Message};
use crate::broker::Broker;
use crate::cluster::routes::ClusterRoutes;
use crate::cluster::takeover::Takeover;
use crate::jobs_runtime::JobsRuntime;
use crate::meta::Meta;
use crate::provisioning_runtime::ProvisioningRuntime;
use crate::rules::RuleEngine;
use crate::shadow::ShadowService;

/// Everything a connection or an API call may use.
pub struct Services {
    /// Sessions, routing, retained messages.
    pub broker: Arc<Broker>,
    /// The `meta` replicated group: registry, identity, API-created rules.
    pub meta: Arc<Group<Meta>>,
    /// Device shadows.
    pub shadows: Arc<ShadowService>,
    /// The rules running on every publish.
    pub rules: Arc<RuleEngine>,
    /// Which peers have subscribers for which filters (none on a node alone).
    pub routes: Option<Arc<ClusterRoutes>>,
    /// Client-id ownership and session handover between nodes (none on a node alone).
    pub takeover: Option<Arc<Takeover>>,
    /// Jobs requests over MQTT, jobs notifications and time-driven work.
    pub jobs: Arc<JobsRuntime>,
    /// The provisioning MQTT API, just-in-time registration, bulk registration.
    pub provisioning: Arc<ProvisioningRuntime>,
    /// This node's fleet index.
    pub fleet_index: Arc<crate::fleet_index::FleetIndex>,
    /// Dynamic thing groups and fleet metrics.
    pub fleet: Arc<crate::fleet_runtime::FleetRuntime>,
    /// AWS IoT v2 log events.
    pub iot_log: Arc<crate::iot_logging::IotLog>,
    /// The node's data directory (backups carry its TLS files and root access key).
    pub data_dir: std::path::PathBuf,
    /// The last hour of headline figures, for the console.
    pub history: Arc<crate::stats_history::History>,
}

impl Services {
    /// Every group this node runs, meta first, then the shadow shards, retained messages and
    /// (in a cluster) client-id owners: what status, readiness, metrics, membership changes
    /// and the leadership handover walk.
    pub fn groups(&self) -> Vec<&dyn AnyGroup> {
        let mut groups: Vec<&dyn AnyGroup> = vec![&*self.meta];
        groups.extend(self.shadows.groups().iter().map(|g| g as &dyn AnyGroup));
        groups.push(&self.broker.retained_group);
        if let Some(t) = &self.takeover {
            groups.push(&t.owners);
        }
        groups
    }

    /// The status of every group, in [`Services::groups`] order.
    pub fn group_statuses(&self) -> Vec<GroupStatus> {
        self.groups().iter().map(|g| g.status()).collect()
    }

    /// A planned stop: every group this node leads hands leadership to another member, all
    /// at once, waiting at most `within`. Returns how many groups still have this node as
    /// leader (0 on a node alone, whose groups have no one to hand over to).
    pub async fn hand_over_leadership(&self, within: std::time::Duration) -> usize {
        if self.broker.cluster.net.is_none() {
            return 0;
        }
        let handovers = self.groups().into_iter().map(|g| g.hand_over_leadership(within));
        futures_util::future::join_all(handovers).await.into_iter().filter(|done| !done).count()
    }

    /// Every reason this node cannot serve writes now (empty: ready): stopping, or a
    /// group problem (`cluster::readiness`).
    pub fn readiness_problems(&self) -> Vec<String> {
        use crate::cluster::readiness;
        let mut found = Vec::new();
        if readiness::stopping() {
            found.push("the node is stopping".to_string());
        }
        let cluster = &self.broker.cluster;
        if let Some(net) = &cluster.net {
            found.extend(readiness::problems(cluster.node_id, &self.group_statuses(), |peer| net.connected(peer)));
        }
        found
    }

    /// The cluster's Prometheus metrics for this node (`cluster::metrics`).
    pub fn render_cluster_metrics(&self) -> String {
        let peers: Vec<crate::cluster::metrics::PeerFigures> = match &self.broker.cluster.net {
            Some(net) => net
                .peers()
                .into_iter()
                .map(|(id, _)| {
                    let (messages, bytes) = self.peer_outbox_with_bytes(id);
                    (id, net.connected(id), messages, bytes)
                })
                .collect(),
            None => Vec::new(),
        };
        let client_ids = self.takeover.as_ref().map(|t| t.owners.state().len());
        crate::cluster::metrics::render(
            self.readiness_problems().is_empty(),
            &self.group_statuses(),
            &peers,
            client_ids,
        )
    }

    /// The filters peer `node` has subscribers for, as this node knows them.
    pub fn peer_routes(&self, node: u64) -> Vec<String> {
        self.routes.as_ref().map(|r| r.peer_filters(node)).unwrap_or_default()
    }

    /// Forwarded QoS 1/2 publishes peer `node` has not acknowledged yet.
    pub fn peer_outbox(&self, node: u64) -> usize {
        self.peer_outbox_with_bytes(node).0
    }

    /// Forwarded QoS 1/2 publishes peer `node` has not acknowledged, and their bytes.
    pub fn peer_outbox_with_bytes(&self, node: u64) -> (usize, usize) {
        let pending = self.routes.as_ref().map(|r| r.outbox_pending()).unwrap_or_default();
        pending.into_iter().find(|(peer, _, _)| *peer == node).map_or((0, 0), |(_, n, b)| (n, b))
    }
}

/// What runs after each publish: shadow requests on their reserved topics, then the rules
/// the topic matches. Neither delays delivery to subscribers.
pub struct Reactions {
    /// Serves `$aws/things/+/shadow/...` requests.
    pub shadows: Arc<ShadowService>,
    /// Runs the rules.
    pub rules: Arc<RuleEngine>,
    /// Serves `$aws/things/+/jobs/...` requests.
    pub jobs: Arc<JobsRuntime>,
    /// Serves the provisioning MQTT API's requests.
    pub provisioning: Arc<ProvisioningRuntime>,
    /// Learns other nodes' devices' connects and disconnects.
    pub fleet_index: Arc<crate::fleet_index::FleetIndex>,
}

impl PublishObserver for Reactions {
    fn ingest(&self, rule: &str, topic: &str, msg: &Arc<Message>) -> bool {
        self.rules.ingest(rule, topic, msg)
    }

    fn published(&self, msg: &Arc<Message>) {
        if let Some(req) = crate::shadow::topics::parse(&msg.topic) {
            self.shadows.handle(msg.publisher.clone(), req, &msg.payload, now_ms() / 1000);
        } else if let Some(req) = crate::jobs::topics::parse(&msg.topic) {
            self.jobs.handle(req, &msg.payload);
        } else if let (Some(req), Some(client)) = (crate::provisioning::wire::parse(&msg.topic), &msg.publisher) {
            self.provisioning.handle(client.clone(), req, &msg.payload);
        }
        self.rules.on_publish(msg);
    }

    fn peer_presence(&self, msg: &Message) {
        if let Some(state) = crate::fleet_index::documents::presence(&msg.topic, &msg.payload) {
            self.fleet_index.connectivity_changed(&state.0, state.1);
        }
    }
}
