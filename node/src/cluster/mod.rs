//! A node as a member of a cluster (docs/ARCHITECTURE.md): its id, its QUIC endpoint, the peers
//! it knows, and the [`Member`] every Raft group of the node is opened with.
//!
//! Without a `[cluster]` table the node is alone: every group has the single voter 1 and
//! nothing listens for peers. With one, the node starts its QUIC endpoint, trusts only
//! nodes with certificates from the cluster CA, and starts (or rejoins) its groups with the
//! configured members.

pub mod arrivals;
pub mod certs;
pub mod cli;
pub mod local;
pub mod metrics;
pub mod outbox;
pub mod owners;
pub mod readiness;
pub mod routes;
pub mod takeover;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use ferrite_cluster::{Batch, Inbox, Member, MemberChange, PeerAddress, QuicConfig, QuicNet, Store, Table};
use serde::Deserialize;

/// The `[cluster]` table of the config file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// This node's id: a positive number, unique in the cluster, never reused.
    pub node_id: Option<u64>,
    /// The UDP address peers reach this node's QUIC endpoint on (`HOST:PORT`, HOST an IP
    /// address or a host name).
    pub addr: Option<String>,
    /// The other initial members (or, with `join`, any running members) as `ID@HOST:PORT`.
    #[serde(default)]
    pub peers: Vec<String>,
    /// The cluster CA certificate (PEM) from `ferrite cluster init`.
    pub ca_cert: Option<PathBuf>,
    /// The cluster CA key (PEM), needed on the first start to issue this node's certificate.
    pub ca_key: Option<PathBuf>,
    /// Start as a new node of a running cluster: wait to be added (`ferrite cluster join`)
    /// instead of forming the cluster with `peers`.
    pub join: Option<bool>,
    /// Raft log entries each group keeps before compacting (default 20000); a member further
    /// behind catches up from a snapshot.
    pub log_compaction_entries: Option<usize>,
    /// Keep a replica of every persistent session on every other node (default true), so a
    /// node's death loses none of its sessions' queued QoS 1/2 messages.
    pub replicate_sessions: Option<bool>,
}

/// The resolved cluster settings of a node.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's id.
    pub node_id: u64,
    /// The QUIC listen address.
    pub addr: SocketAddr,
    /// The peers named in the configuration.
    pub peers: Vec<(u64, PeerAddress)>,
    /// The cluster CA certificate.
    pub ca_cert: PathBuf,
    /// The cluster CA key, if given.
    pub ca_key: Option<PathBuf>,
    /// Joining a running cluster.
    pub join: bool,
    /// Raft log entries kept before compaction.
    pub log_compaction_entries: usize,
    /// Persistent sessions keep replicas on every other node.
    pub replicate_sessions: bool,
}

/// Parses `ID@HOST:PORT` (HOST: an IP address or a host name, resolved at every dial).
pub fn parse_peer(text: &str) -> anyhow::Result<(u64, PeerAddress)> {
    let (id, addr) =
        text.split_once('@').with_context(|| format!("peer {text:?}: expected ID@HOST:PORT, e.g. 2@10.0.0.2:7000"))?;
    let id: u64 = id
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("peer {text:?}: the id must be a positive number"))?;
    let addr = addr.parse::<PeerAddress>().map_err(|e| anyhow::anyhow!("peer {text:?}: {e}"))?;
    Ok((id, addr))
}

impl ClusterConfig {
    /// Resolves the table (flags already merged into it); `None` when the node runs alone.
    pub fn resolve(file: &ClusterFile) -> anyhow::Result<Option<ClusterConfig>> {
        let Some(node_id) = file.node_id else {
            anyhow::ensure!(
                file.peers.is_empty() && file.addr.is_none() && file.join.is_none(),
                "cluster settings need a node id: set [cluster] node_id or --node-id"
            );
            return Ok(None);
        };
        anyhow::ensure!(node_id > 0, "the node id must be a positive number");
        let addr = file
            .addr
            .as_deref()
            .context("a cluster node needs a cluster address: set [cluster] addr or --cluster-addr")?;
        let addr = crate::address::resolve_address("[cluster] addr", addr).map_err(anyhow::Error::msg)?;
        let ca_cert = file
            .ca_cert
            .clone()
            .context("a cluster node needs the cluster CA: set [cluster] ca_cert or --cluster-ca-cert (make one with `ferrite cluster init`)")?;
        let mut peers = Vec::new();
        for p in &file.peers {
            let (id, peer_addr) = parse_peer(p)?;
            anyhow::ensure!(id != node_id, "peer {p:?} has this node's own id {node_id}");
            anyhow::ensure!(!peers.iter().any(|(i, _)| *i == id), "peer id {id} is listed twice");
            peers.push((id, peer_addr));
        }
        let join = file.join.unwrap_or(false);
        anyhow::ensure!(!join || !peers.is_empty(), "a joining node needs at least one running member in peers");
        let log_compaction_entries = file.log_compaction_entries.unwrap_or(ferrite_cluster::COMPACT_LOG_ABOVE);
        anyhow::ensure!(log_compaction_entries >= 10, "log_compaction_entries must be at least 10");
        Ok(Some(ClusterConfig {
            node_id,
            addr,
            peers,
            ca_cert,
            ca_key: file.ca_key.clone(),
            join,
            log_compaction_entries,
            replicate_sessions: file.replicate_sessions.unwrap_or(true),
        }))
    }

    /// The voters groups start with: this node and its peers, or nobody when joining.
    pub fn initial_voters(&self) -> Vec<u64> {
        if self.join {
            return Vec::new();
        }
        let mut v: Vec<u64> = std::iter::once(self.node_id).chain(self.peers.iter().map(|(id, _)| *id)).collect();
        v.sort_unstable();
        v
    }
}

/// The key under which a learned peer address is kept.
fn peer_key(id: u64) -> Vec<u8> {
    let mut k = b"cluster/peer/".to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Peer addresses learned from membership changes, kept across restarts.
fn stored_peers(store: &Store) -> anyhow::Result<Vec<(u64, PeerAddress)>> {
    let mut out = Vec::new();
    for (k, v) in store.scan_prefix(Table::Meta, b"cluster/peer/")? {
        let Some(id) = k.get(13..21).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes) else { continue };
        match std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()) {
            Some(addr) => out.push((id, addr)),
            None => crate::metrics::undecodable_record("cluster peer address", &id.to_string(), "not HOST:PORT"),
        }
    }
    Ok(out)
}

/// This node's membership and, in a cluster, its QUIC endpoint.
pub struct Cluster {
    /// What the node's groups are opened with.
    pub member: Member,
    /// The QUIC endpoint (none on a node alone).
    pub net: Option<Arc<QuicNet>>,
    /// This node's settings (none on a node alone).
    pub config: Option<ClusterConfig>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("member", &self.member).finish_non_exhaustive()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Cluster {
    /// A node alone.
    pub fn single() -> Cluster {
        Cluster { member: Member::single(), net: None, config: None, runtime: None }
    }

    /// Starts the QUIC endpoint for `config` and connects to the known peers.
    pub fn start(config: &ClusterConfig, data_dir: &Path, store: &Arc<Store>) -> anyhow::Result<Cluster> {
        let identity = certs::node_identity(data_dir, config.node_id, &config.ca_cert, config.ca_key.as_deref())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cluster-net")
            .enable_all()
            .build()
            .context("cannot start the cluster network thread")?;
        let inbox = Inbox::default();
        let quic = QuicConfig {
            node: config.node_id,
            listen: config.addr,
            ca: identity.ca,
            chain: identity.chain,
            key: identity.key,
        };
        let net = QuicNet::start(quic, inbox.clone(), runtime.handle().clone())?;
        let mut peers = stored_peers(store)?;
        peers.extend(config.peers.iter().cloned());
        for (id, addr) in peers {
            net.add_peer(id, addr);
        }
        let book_net = net.clone();
        let book_store = store.clone();
        let on_change: ferrite_cluster::transport::OnMemberChange = Arc::new(move |change, context| {
            let mut b = Batch::new();
            match change {
                MemberChange::Add(id) => {
                    let Some(addr) = std::str::from_utf8(context).ok().and_then(|s| s.parse::<PeerAddress>().ok())
                    else {
                        return;
                    };
                    b.put(Table::Meta, peer_key(id), addr.to_string().into_bytes());
                    book_net.add_peer(id, addr);
                }
                MemberChange::Remove(id) => {
                    book_net.remove_peer(id);
                    b.delete(Table::Meta, peer_key(id));
                }
            }
            if let Err(e) = book_store.write_now(b) {
                tracing::error!(error = %e, "saving the cluster address book failed");
            }
        });
        let member = Member {
            id: config.node_id,
            initial_voters: config.initial_voters(),
            transport: net.clone(),
            inbox,
            on_change: Some(on_change),
            compact_log_above: config.log_compaction_entries,
        };
        Ok(Cluster { member, net: Some(net), config: Some(config.clone()), runtime: Some(runtime) })
    }

    /// The QUIC address actually bound (none on a node alone).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.net.as_ref().and_then(|n| n.local_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(parse_peer("2@127.0.0.1:7002").unwrap(), (2, "127.0.0.1:7002".parse().unwrap()));
        assert!(parse_peer("127.0.0.1:7002").unwrap_err().to_string().contains("ID@HOST:PORT"));
        assert!(parse_peer("0@127.0.0.1:7002").unwrap_err().to_string().contains("positive"));
        assert!(parse_peer("2@localhost").is_err());
    }

    #[test]
    fn a_config_without_a_node_id_is_a_node_alone_and_a_partial_one_is_refused() {
        assert!(ClusterConfig::resolve(&ClusterFile::default()).unwrap().is_none());
        let partial = ClusterFile { peers: vec!["2@127.0.0.1:1".into()], ..Default::default() };
        assert!(ClusterConfig::resolve(&partial).unwrap_err().to_string().contains("node id"));
        let file = ClusterFile {
            node_id: Some(1),
            addr: Some("127.0.0.1:7001".parse().unwrap()),
            peers: vec!["3@127.0.0.1:7003".into(), "2@127.0.0.1:7002".into()],
            ca_cert: Some("ca.pem".into()),
            ..Default::default()
        };
        assert_eq!(ClusterConfig::resolve(&file).unwrap().unwrap().initial_voters(), vec![1, 2, 3]);
        let joining = ClusterFile { join: Some(true), ..file };
        assert!(ClusterConfig::resolve(&joining).unwrap().unwrap().initial_voters().is_empty());
    }
}
