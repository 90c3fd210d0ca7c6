//! The QUIC transport between nodes (quinn, mutual TLS with the cluster CA).
//!
//! One connection per pair of nodes: the node with the lower id dials, the other accepts,
//! and both send over it. Each kind of traffic has its own streams, so that one kind never
//! waits behind another: Raft messages on one long-lived stream per direction, every Raft
//! snapshot on a stream of its own (a large snapshot never delays heartbeats), and one
//! stream per direction for each [`Channel`] the node uses (route deltas, forwarded
//! publishes, requests between nodes). A lost connection is redialled with exponential
//! backoff; what was queued for a peer while it was unreachable is dropped when the queue is
//! full (Raft resends, and the other channels resynchronise on reconnect).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use protobuf::Message as _;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use raft::eraftpb::{Message, MessageType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{mpsc, watch};

use crate::transport::{Inbox, Transport};

/// The name every node certificate carries and every node checks: node certificates are
/// trusted because the cluster CA signed them, not because of their address.
pub const NODE_SERVER_NAME: &str = "ferrite-cluster-node";

/// Traffic kinds besides Raft, each on its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Channel {
    /// Subscription route deltas and resyncs.
    Routes = 3,
    /// Publishes forwarded to the nodes with matching subscribers.
    Publishes = 4,
    /// Requests and answers between nodes.
    Requests = 5,
}

impl Channel {
    fn of(byte: u8) -> Option<Channel> {
        match byte {
            3 => Some(Channel::Routes),
            4 => Some(Channel::Publishes),
            5 => Some(Channel::Requests),
            _ => None,
        }
    }
}

const STREAM_HELLO: u8 = 0;
const STREAM_RAFT: u8 = 1;
const STREAM_SNAPSHOT: u8 = 2;

/// Messages waiting for one peer before the oldest are dropped.
const QUEUE: usize = 16_384;
/// Largest frame accepted from a peer (a snapshot can be large).
const MAX_FRAME: usize = 1 << 30;

/// What a node needs to join the cluster's QUIC mesh.
#[derive(Debug)]
pub struct QuicConfig {
    /// This node's id.
    pub node: u64,
    /// The UDP address to listen on.
    pub listen: SocketAddr,
    /// The cluster CA certificate (DER): the only issuer trusted for peers.
    pub ca: CertificateDer<'static>,
    /// This node's certificate chain, signed by the cluster CA, naming [`NODE_SERVER_NAME`].
    pub chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    pub key: PrivateKeyDer<'static>,
}

/// Receives one channel's messages: (sending node, message).
pub type Handler = Arc<dyn Fn(u64, Vec<u8>) + Send + Sync>;

/// Runs when a connection to a peer is (re)established: (peer).
pub type OnConnect = Arc<dyn Fn(u64) + Send + Sync>;

enum Outgoing {
    Raft(u32, Message),
    Channel(Channel, Vec<u8>),
}

struct Peer {
    addr: crate::PeerAddress,
    tx: mpsc::Sender<Outgoing>,
    /// The current connection, set by the dialer or the acceptor.
    conn: watch::Sender<Option<Connection>>,
}

/// The node's QUIC endpoint and its peers.
pub struct QuicNet {
    node: u64,
    endpoint: Endpoint,
    runtime: tokio::runtime::Handle,
    peers: RwLock<HashMap<u64, Arc<Peer>>>,
    inbox: Inbox,
    handlers: RwLock<HashMap<Channel, Handler>>,
    on_connect: RwLock<Vec<OnConnect>>,
    client: quinn::ClientConfig,
}

impl std::fmt::Debug for QuicNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicNet").field("node", &self.node).finish_non_exhaustive()
    }
}

/// Why the QUIC endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// The certificates or keys were refused.
    #[error("cluster TLS: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("cluster address {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_millis(500)));
    t.max_idle_timeout(quinn::IdleTimeout::try_from(Duration::from_secs(3)).ok());
    t.max_concurrent_uni_streams(1024u32.into());
    Arc::new(t)
}

fn tls(config: &QuicConfig) -> Result<(quinn::ServerConfig, quinn::ClientConfig), QuicError> {
    let tls_err = |e: &dyn std::fmt::Display| QuicError::Tls(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(config.ca.clone()).map_err(|e| tls_err(&e))?;
    let roots = Arc::new(roots);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| tls_err(&e))?;
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(config.chain.clone(), config.key.clone_key())
        .map_err(|e| tls_err(&e))?;
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(&e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(config.chain.clone(), config.key.clone_key())
        .map_err(|e| tls_err(&e))?;
    let mut server =
        quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server).map_err(|e| tls_err(&e))?));
    server.transport_config(transport_config());
    let mut client = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client).map_err(|e| tls_err(&e))?));
    client.transport_config(transport_config());
    Ok((server, client))
}

async fn write_frame(stream: &mut SendStream, parts: &[&[u8]]) -> Result<(), quinn::WriteError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    stream.write_all(&(len as u32).to_be_bytes()).await?;
    for p in parts {
        stream.write_all(p).await?;
    }
    Ok(())
}

async fn read_frame(stream: &mut RecvStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.ok()?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return None;
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

impl QuicNet {
    /// Binds the endpoint on `runtime` and starts accepting peers. Raft messages received
    /// are handed to `inbox`.
    pub fn start(config: QuicConfig, inbox: Inbox, runtime: tokio::runtime::Handle) -> Result<Arc<QuicNet>, QuicError> {
        let (server, client) = tls(&config)?;
        let endpoint = {
            let _entered = runtime.enter();
            Endpoint::server(server, config.listen).map_err(|e| QuicError::Bind(config.listen, e))?
        };
        let net = Arc::new(QuicNet {
            node: config.node,
            endpoint,
            runtime: runtime.clone(),
            peers: RwLock::new(HashMap::new()),
            inbox,
            handlers: RwLock::new(HashMap::new()),
            on_connect: RwLock::new(Vec::new()),
            client,
        });
        runtime.spawn(net.clone().accept_loop());
        Ok(net)
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    /// Sets who receives `channel`'s messages.
    pub fn on_channel(&self, channel: Channel, handler: Handler) {
        self.handlers.write().insert(channel, handler);
    }

    /// Adds a hook run whenever a connection to a peer comes up.
    pub fn on_connect(&self, hook: OnConnect) {
        self.on_connect.write().push(hook);
    }

    /// The peers this node knows, with their addresses.
    pub fn peers(&self) -> Vec<(u64, crate::PeerAddress)> {
        let mut v: Vec<_> = self.peers.read().iter().map(|(id, p)| (*id, p.addr.clone())).collect();
        v.sort_unstable();
        v
    }

    /// True when a connection to `peer` is up.
    pub fn connected(&self, peer: u64) -> bool {
        self.peers
            .read()
            .get(&peer)
            .is_some_and(|p| p.conn.borrow().as_ref().is_some_and(|c| c.close_reason().is_none()))
    }

    /// Adds (or moves) peer `id` at `addr` and starts sending to it (a host name is
    /// resolved at every dial).
    pub fn add_peer(self: &Arc<Self>, id: u64, addr: crate::PeerAddress) {
        if id == self.node {
            return;
        }
        let mut peers = self.peers.write();
        if peers.get(&id).is_some_and(|p| p.addr == addr) {
            return;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let (conn, conn_rx) = watch::channel(None);
        let peer = Arc::new(Peer { addr, tx, conn });
        peers.insert(id, peer.clone());
        drop(peers);
        self.runtime.spawn(self.clone().send_loop(id, peer.clone(), rx, conn_rx));
        if self.node < id {
            self.runtime.spawn(self.clone().dial_loop(id, peer));
        }
    }

    /// Stops talking to peer `id`.
    pub fn remove_peer(&self, id: u64) {
        if let Some(peer) = self.peers.write().remove(&id) {
            if let Some(c) = peer.conn.borrow().as_ref() {
                c.close(0u32.into(), b"removed from the cluster");
            }
        }
    }

    /// Queues `message` for `peer` on `channel`; false when the peer is unknown or its
    /// queue is full.
    pub fn send_channel(&self, peer: u64, channel: Channel, message: Vec<u8>) -> bool {
        let peer = self.peers.read().get(&peer).cloned();
        peer.is_some_and(|p| p.tx.try_send(Outgoing::Channel(channel, message)).is_ok())
    }

    /// Dials `id` whenever there is no live connection, with exponential backoff.
    async fn dial_loop(self: Arc<Self>, id: u64, peer: Arc<Peer>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if !self.peers.read().get(&id).is_some_and(|p| Arc::ptr_eq(p, &peer)) {
                return; // removed or moved
            }
            let attempt = match peer.addr.resolve().await {
                Ok(addr) => match self.endpoint.connect_with(self.client.clone(), addr, NODE_SERVER_NAME) {
                    Ok(connecting) => connecting.await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(format!("cannot resolve {}: {e}", peer.addr)),
            };
            match attempt {
                Ok(conn) => {
                    backoff = Duration::from_millis(50);
                    let hello = async {
                        let mut s = conn.open_uni().await.ok()?;
                        s.write_all(&[STREAM_HELLO]).await.ok()?;
                        s.write_all(&self.node.to_be_bytes()).await.ok()?;
                        s.finish().ok()
                    };
                    if hello.await.is_some() {
                        self.connected_to(id, &peer, conn.clone());
                        let reason = conn.closed().await;
                        tracing::info!(peer = id, reason = %reason, "cluster connection lost");
                    }
                }
                Err(e) => tracing::debug!(peer = id, addr = %peer.addr, error = %e, "dialling a cluster peer failed"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn connected_to(self: &Arc<Self>, id: u64, peer: &Arc<Peer>, conn: Connection) {
        tracing::info!(peer = id, addr = %conn.remote_address(), "cluster connection up");
        peer.conn.send_replace(Some(conn.clone()));
        self.runtime.spawn(self.clone().receive_loop(id, conn));
        for hook in self.on_connect.read().iter() {
            hook(id);
        }
    }

    async fn accept_loop(self: Arc<Self>) {
        while let Some(incoming) = self.endpoint.accept().await {
            let net = self.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "a cluster connection was refused");
                        return;
                    }
                };
                // The dialer names itself on its first stream.
                let Ok(mut hello) = conn.accept_uni().await else { return };
                let mut buf = [0u8; 9];
                if hello.read_exact(&mut buf).await.is_err() || buf[0] != STREAM_HELLO {
                    return;
                }
                let id = u64::from_be_bytes(buf[1..].try_into().unwrap_or_default());
                if id >= net.node {
                    // The lower id dials; a higher one dialling means two nodes share an id.
                    tracing::warn!(peer = id, "a connection from a node with an id not below ours was closed");
                    conn.close(1u32.into(), b"the lower node id dials");
                    return;
                }
                // Its certificate is from the cluster CA: a member this node may not have heard
                // of yet (this node joined after it). Its address is where it dialled from.
                if !net.peers.read().contains_key(&id) {
                    net.add_peer(id, conn.remote_address().into());
                }
                let peer = net.peers.read().get(&id).cloned();
                if let Some(peer) = peer {
                    net.connected_to(id, &peer, conn);
                }
            });
        }
    }

    /// Reads every stream the peer opens on `conn`.
    async fn receive_loop(self: Arc<Self>, from: u64, conn: Connection) {
        while let Ok(mut stream) = conn.accept_uni().await {
            let net = self.clone();
            tokio::spawn(async move {
                let mut kind = [0u8; 1];
                if stream.read_exact(&mut kind).await.is_err() {
                    return;
                }
                while let Some(frame) = read_frame(&mut stream).await {
                    net.received(from, kind[0], frame);
                }
            });
        }
    }

    fn received(&self, from: u64, kind: u8, frame: Vec<u8>) {
        match kind {
            STREAM_RAFT | STREAM_SNAPSHOT => {
                let Some((group, msg)) = frame.split_at_checked(4) else { return };
                let group = u32::from_be_bytes(group.try_into().unwrap_or_default());
                match Message::parse_from_bytes(msg) {
                    Ok(msg) => {
                        self.inbox.deliver(group, msg);
                    }
                    Err(e) => tracing::warn!(peer = from, error = %e, "an undecodable raft message was dropped"),
                }
            }
            other => {
                let handler = Channel::of(other).and_then(|c| self.handlers.read().get(&c).cloned());
                match handler {
                    Some(h) => h(from, frame),
                    None => tracing::debug!(peer = from, kind = other, "a message for no handler was dropped"),
                }
            }
        }
    }

    /// Writes what is queued for `id` on the current connection, one stream per kind.
    async fn send_loop(
        self: Arc<Self>,
        id: u64,
        peer: Arc<Peer>,
        mut rx: mpsc::Receiver<Outgoing>,
        mut conn_rx: watch::Receiver<Option<Connection>>,
    ) {
        let mut streams: HashMap<u8, SendStream> = HashMap::new();
        let mut current: Option<usize> = None;
        while let Some(out) = rx.recv().await {
            if !self.peers.read().get(&id).is_some_and(|p| Arc::ptr_eq(p, &peer)) {
                return;
            }
            let conn = conn_rx.borrow_and_update().clone();
            let Some(conn) = conn.filter(|c| c.close_reason().is_none()) else {
                continue; // not connected: drop, Raft resends and channels resync
            };
            if current != Some(conn.stable_id()) {
                streams.clear();
                current = Some(conn.stable_id());
            }
            let (kind, parts): (u8, Vec<Vec<u8>>) = match out {
                Outgoing::Raft(group, msg) => {
                    let kind =
                        if msg.get_msg_type() == MessageType::MsgSnapshot { STREAM_SNAPSHOT } else { STREAM_RAFT };
                    (kind, vec![group.to_be_bytes().to_vec(), msg.write_to_bytes().unwrap_or_default()])
                }
                Outgoing::Channel(channel, bytes) => (channel as u8, vec![bytes]),
            };
            if kind == STREAM_SNAPSHOT {
                // Its own stream, written in the background: heartbeats keep flowing.
                tokio::spawn(async move {
                    let Ok(mut s) = conn.open_uni().await else { return };
                    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
                    if s.write_all(&[STREAM_SNAPSHOT]).await.is_ok() && write_frame(&mut s, &refs).await.is_ok() {
                        let _ = s.finish();
                    }
                });
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = streams.entry(kind) {
                let opened = async {
                    let mut s = conn.open_uni().await.ok()?;
                    s.write_all(&[kind]).await.ok()?;
                    Some(s)
                };
                match opened.await {
                    Some(s) => {
                        slot.insert(s);
                    }
                    None => continue,
                }
            }
            let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
            if let Some(s) = streams.get_mut(&kind) {
                if write_frame(s, &refs).await.is_err() {
                    streams.remove(&kind);
                }
            }
        }
    }
}

impl Transport for QuicNet {
    fn send(&self, group: u32, msg: Message) {
        let peer = self.peers.read().get(&msg.to).cloned();
        if let Some(p) = peer {
            let _ = p.tx.try_send(Outgoing::Raft(group, msg));
        }
    }
}

impl Drop for QuicNet {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"node stopping");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{Group, StateMachine};
    use crate::storage::{Batch, Store};
    use crate::transport::Member;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use std::time::Instant;

    /// A cluster CA and a certificate for each of `nodes`.
    fn certificates(nodes: usize) -> (CertificateDer<'static>, Vec<(CertificateDer<'static>, PrivateKeyDer<'static>)>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let certs = (0..nodes)
            .map(|_| {
                let key = KeyPair::generate().unwrap();
                let cert = CertificateParams::new(vec![NODE_SERVER_NAME.to_string()])
                    .unwrap()
                    .signed_by(&key, &issuer)
                    .unwrap();
                (cert.der().clone(), PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            })
            .collect();
        (ca.der().clone(), certs)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    fn mesh(rt: &tokio::runtime::Runtime, n: usize) -> Vec<(Arc<QuicNet>, Inbox)> {
        let (ca, certs) = certificates(n);
        let nets: Vec<(Arc<QuicNet>, Inbox)> = certs
            .into_iter()
            .enumerate()
            .map(|(i, (cert, key))| {
                let inbox = Inbox::default();
                let config = QuicConfig {
                    node: i as u64 + 1,
                    listen: "127.0.0.1:0".parse().unwrap(),
                    ca: ca.clone(),
                    chain: vec![cert],
                    key,
                };
                (QuicNet::start(config, inbox.clone(), rt.handle().clone()).unwrap(), inbox)
            })
            .collect();
        for (a, _) in &nets {
            for (b, _) in &nets {
                a.add_peer(b.node, b.local_addr().unwrap().into());
            }
        }
        nets
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn channel_messages_reach_the_peer_over_mutual_tls() {
        let rt = runtime();
        let nets = mesh(&rt, 2);
        let got = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = got.clone();
        nets[1].0.on_channel(Channel::Publishes, Arc::new(move |from, m| sink.lock().push((from, m))));
        wait_for("the connection", || nets[0].0.connected(2) && nets[1].0.connected(1));
        for i in 0..100u8 {
            assert!(nets[0].0.send_channel(2, Channel::Publishes, vec![i; 3]));
        }
        wait_for("100 messages", || got.lock().len() == 100);
        assert_eq!(got.lock()[99], (1, vec![99; 3]), "in order, from node 1");
    }

    #[test]
    fn a_node_with_a_certificate_from_another_ca_is_refused() {
        let rt = runtime();
        let nets = mesh(&rt, 1);
        let (other_ca, mut other) = certificates(1);
        let (cert, key) = other.remove(0);
        let config =
            QuicConfig { node: 2, listen: "127.0.0.1:0".parse().unwrap(), ca: other_ca, chain: vec![cert], key };
        let intruder = QuicNet::start(config, Inbox::default(), rt.handle().clone()).unwrap();
        nets[0].0.add_peer(2, intruder.local_addr().unwrap().into());
        intruder.add_peer(1, nets[0].0.local_addr().unwrap().into());
        std::thread::sleep(Duration::from_millis(500));
        assert!(!nets[0].0.connected(2) && !intruder.connected(1));
    }

    #[derive(Default)]
    struct Count(parking_lot::Mutex<u64>);

    impl StateMachine for Count {
        type Output = u64;
        fn apply(&self, _index: u64, _command: &[u8], _writes: &mut Batch) -> u64 {
            let mut n = self.0.lock();
            *n += 1;
            *n
        }
        fn snapshot(&self) -> Vec<u8> {
            self.0.lock().to_be_bytes().to_vec()
        }
        fn restore(&self, data: &[u8], _writes: &mut Batch) -> Result<(), String> {
            *self.0.lock() = u64::from_be_bytes(data.try_into().map_err(|_| "8 bytes")?);
            Ok(())
        }
    }

    #[test]
    fn a_raft_group_replicates_over_quic() {
        let rt = runtime();
        let nets = mesh(&rt, 3);
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let groups: Vec<Group<Count>> = nets
            .iter()
            .zip(&dirs)
            .map(|((net, inbox), dir)| {
                let member = Member {
                    id: net.node,
                    initial_voters: vec![1, 2, 3],
                    transport: net.clone(),
                    inbox: inbox.clone(),
                    on_change: None,
                    compact_log_above: crate::transport::COMPACT_LOG_ABOVE,
                };
                let store = Arc::new(Store::open(dir.path()).unwrap());
                Group::open_member(store, 9, "q", Count::default(), &member).unwrap()
            })
            .collect();
        wait_for("a leader", || groups.iter().any(|g| g.status().role == "leader"));
        let answer = rt.block_on(groups[2].propose_wait(b"x".to_vec())).unwrap();
        assert_eq!(answer, 1);
        wait_for("every member to apply", || groups.iter().all(|g| *g.state().0.lock() == 1));
    }
}
