//! The broker core shared by every connection: the session table, the routing index,
//! retained messages and persistence of sessions.
//!
//! It is not an actor. Every connection actor calls into it on its own arbiter thread,
//! so publishing never funnels through one mailbox; shared structures use sharded or
//! read-mostly locks held for microseconds. Connection actors are reached through
//! [`ConnLink`] recipients.
//!
//! Invariant: a QoS 1/2 publish is acknowledged only after the [`Batch`] that `route`
//! filled (queue records of persistent subscribers, the retained message) is durable.

pub mod handover;
pub mod hooks;
pub mod lifecycle;
pub mod message;
pub mod publisher;
pub mod replica;
pub mod retained;
pub mod router;
pub mod session;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Message as ActixMessage, Recipient};
use ferrite_cluster::{Batch, Store, StoreError, Table};
use ferrite_mqtt::packet::{reason, ProtocolVersion, QoS, SubOptions, Will};
use ferrite_mqtt::topic::{self, TopicLimits};
use parking_lot::Mutex;

use crate::metrics::Metrics;
use hooks::{Forwards, Peers, PublishObserver};
use message::{now_ms, Message};
use retained::Retained;
use router::{Match, Router, Subscriber};
use session::{Outgoing, SessionState, SessionSubscription, StoreOp};

/// Limits and defaults of the broker (AWS IoT Core's quotas by default).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub topic_limits: TopicLimits,
    /// Largest accepted payload, in bytes (AWS: 128 KiB).
    pub max_payload: usize,
    /// Longest accepted client id, in bytes (AWS: 128).
    pub max_client_id_len: usize,
    /// Subscriptions per connection (AWS: 50).
    pub max_subscriptions: usize,
    /// Messages the broker has in flight to one client (QoS 1/2).
    pub max_inflight: usize,
    /// Messages queued for one session beyond the in-flight window.
    pub max_queued: usize,
    /// QoS 1/2 publishes one client may have unacknowledged (our receive maximum).
    pub receive_maximum: u16,
    /// Topic aliases a client may use towards us.
    pub topic_alias_maximum: u16,
    /// Session expiry for MQTT 3.1.1 clients with clean session = 0, seconds.
    pub default_session_expiry: u32,
    /// Upper bound on the session expiry a client may ask for, seconds.
    pub max_session_expiry: u32,
    /// Keep alive the server imposes when a client asks for none or more (0: accept any).
    pub max_keep_alive: u16,
    /// Keep alive the server imposes when a client asks for less (AWS: 30).
    pub min_keep_alive: u16,
    /// Bytes a connection may have written but not yet taken by its socket; past it QoS 0
    /// messages to it are dropped and QoS 1/2 wait in its session.
    pub max_outbound_bytes: usize,
    /// A client whose socket takes nothing for this long, with bytes waiting, is disconnected.
    pub stalled_client_timeout: std::time::Duration,
    /// Shadow requests one thing may make per second, all its shadows together (AWS: 20;
    /// 0: unlimited). Over it, requests are rejected with 429.
    pub shadow_requests_per_second_per_thing: u32,
    /// Seconds a deprecated thing type must wait before it can be deleted (AWS: 300).
    pub thing_type_deletion_wait_secs: u64,
    /// Region in the ARNs IoT policies are evaluated against.
    pub region: String,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            topic_limits: TopicLimits::default(),
            max_payload: 128 * 1024,
            max_client_id_len: 128,
            max_subscriptions: 50,
            max_inflight: 64,
            max_queued: 10_000,
            receive_maximum: 1024,
            topic_alias_maximum: 16,
            default_session_expiry: 3600,
            max_session_expiry: 7 * 24 * 3600,
            max_keep_alive: 1200,
            min_keep_alive: 30,
            max_outbound_bytes: 1 << 20,
            stalled_client_timeout: std::time::Duration::from_secs(60),
            shadow_requests_per_second_per_thing: 20,
            thing_type_deletion_wait_secs: 300,
            region: "us-east-1".into(),
        }
    }
}

impl BrokerConfig {
    /// Largest MQTT packet we accept: payload limit plus room for topic and properties.
    pub fn max_packet_size(&self) -> usize {
        self.max_payload + 64 * 1024
    }
}

/// Tells a connection actor that its session has messages to send.
#[derive(ActixMessage, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Wake;

/// Tells a connection actor to close, with the MQTT 5 reason code to send.
#[derive(ActixMessage, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Kick(pub u8);

/// How the broker reaches the connection currently attached to a session.
#[derive(Clone)]
pub struct ConnLink {
    pub generation: u64,
    pub wake: Recipient<Wake>,
    pub kick: Recipient<Kick>,
}

/// Mutable part of a session, behind the session's own lock.
pub struct SessionInner {
    pub state: SessionState,
    /// Seconds the session outlives its connection; 0: ends with it.
    pub expiry_interval: u32,
    pub conn: Option<ConnLink>,
    /// Increases at every connect; stale connections and timers compare against it.
    pub generation: u64,
    pub protocol: ProtocolVersion,
    /// Set once the session has been discarded; late callers must not use it.
    pub ended: bool,
    /// True once anything of this session was written to storage; a session that never
    /// was persistent has no records to delete when it ends.
    pub stored: bool,
    /// The claim epoch of the session's owner (`cluster/owners.rs`; 0 on a node alone).
    pub epoch: u64,
    /// Set when this is a copy of a session another node owns (`replica.rs`).
    pub replica: bool,
    /// Messages another node's copy of this session saw consumed before they arrived here.
    pub consumed_elsewhere: replica::ConsumedElsewhere,
}

/// A session, shared by the session table, the routing index and its connection.
pub struct SessionHandle {
    pub client_id: Arc<str>,
    pub inner: Mutex<SessionInner>,
    online: AtomicBool,
    wake_pending: AtomicBool,
    /// The [`DeferredWakes`] that last took this session (its id; 0: none), so that one
    /// publisher holds a session once however many of its publishes reach it.
    deferred_by: AtomicU64,
    /// Messages dropped because the queue was full (for rate-limited logging).
    dropped: AtomicU64,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle").field("client_id", &self.client_id).finish()
    }
}

impl SessionHandle {
    /// True while a connection is attached.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Lets the next `notify` send a [`Wake`] again; the actor calls this before draining.
    pub fn clear_wake(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }

    /// Sends one [`Wake`] to the attached connection unless one is already on its way.
    fn notify(&self) {
        if self.wake_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let link = self.inner.lock().conn.as_ref().map(|c| c.wake.clone());
        match link {
            Some(w) => w.do_send(Wake),
            None => self.wake_pending.store(false, Ordering::Release),
        }
    }
}

/// Sessions a publisher's connection wakes once it has routed the publishes it read in one
/// go, instead of after each: a subscriber then drains and writes the run of messages in one
/// socket write, and each subscriber is woken (a message to another thread) once per run.
/// Each publisher wakes what its own publishes reached, so a publisher whose actor is held
/// up (its socket full) never delays another's subscribers.
pub struct DeferredWakes {
    id: u64,
    sessions: Vec<Arc<SessionHandle>>,
}

impl Default for DeferredWakes {
    fn default() -> DeferredWakes {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        DeferredWakes { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), sessions: Vec::new() }
    }
}

impl DeferredWakes {
    /// Adds `routed`'s sessions (unless a wake is already on its way to them, or this set
    /// holds them already). True when the set was empty before: the caller schedules
    /// [`DeferredWakes::wake_all`].
    fn add(&mut self, wakes: Vec<Arc<SessionHandle>>) -> bool {
        let was_empty = self.sessions.is_empty();
        for s in wakes {
            if !s.wake_pending.load(Ordering::Acquire) && s.deferred_by.swap(self.id, Ordering::AcqRel) != self.id {
                self.sessions.push(s);
            }
        }
        was_empty && !self.sessions.is_empty()
    }

    /// Wakes every session added since the last call.
    pub fn wake_all(&mut self) {
        for s in self.sessions.drain(..) {
            // Released first: a message this publisher queues after this is added anew.
            let _ = s.deferred_by.compare_exchange(self.id, 0, Ordering::AcqRel, Ordering::Relaxed);
            s.notify();
        }
    }
}

/// What `open_session` hands back to a new connection.
pub struct Opened {
    pub session: Arc<SessionHandle>,
    pub session_present: bool,
    pub generation: u64,
    /// The session expiry actually granted (capped), seconds.
    pub expiry_interval: u32,
}

const SHARDS: usize = 64;

/// Which subscriptions of a session go into (or out of) the routing index: a replica's
/// shared ones never do (`replica.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kinds {
    All,
    Plain,
    Shared,
}

impl Kinds {
    fn takes(self, group: Option<&str>) -> bool {
        match self {
            Kinds::All => true,
            Kinds::Plain => group.is_none(),
            Kinds::Shared => group.is_some(),
        }
    }
}

/// What the broker knows of its cluster: its own id and address, and the peers.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// This node's id (1 on a node alone).
    pub node_id: u64,
    /// The QUIC address peers reach this node on (none on a node alone).
    pub address: Option<std::net::SocketAddr>,
    /// The QUIC endpoint (none on a node alone).
    pub net: Option<Arc<ferrite_cluster::QuicNet>>,
}

/// The broker core.
pub struct Broker {
    pub config: BrokerConfig,
    pub router: Router<Arc<SessionHandle>>,
    pub retained: Arc<Retained>,
    /// The retained group: every retained change, applied on every node.
    pub retained_group: ferrite_cluster::Group<retained::RetainedMachine>,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    /// Orders lifecycle (presence) events.
    pub lifecycle_versions: lifecycle::VersionCounter,
    /// This node's place in its cluster.
    pub cluster: ClusterView,
    /// The other nodes' routes (none on a node alone).
    peers: Option<Arc<dyn Peers>>,
    /// What runs after each local publish (shadows, rules).
    observer: Arc<dyn PublishObserver>,
    sessions: Vec<Mutex<HashMap<Arc<str>, Arc<SessionHandle>>>>,
    next_seq: AtomicU64,
    next_generation: AtomicU64,
    /// Expiry timers of sessions recovered at start, armed once the runtime runs.
    recovered_expiries: Mutex<Vec<(Arc<SessionHandle>, Duration)>>,
}

fn shard_of(client_id: &str) -> usize {
    // FNV-1a: stable and cheap; the table only needs spread, not security.
    use std::hash::Hasher as _;
    let mut h = fnv::FnvHasher::default();
    h.write(client_id.as_bytes());
    (h.finish() % SHARDS as u64) as usize
}

fn queue_key(client_id: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(client_id.len() + 9);
    k.extend_from_slice(client_id.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn sub_key(client_id: &str, filter: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(client_id.len() + filter.len() + 1);
    k.extend_from_slice(client_id.as_bytes());
    k.push(0);
    k.extend_from_slice(filter.as_bytes());
    k
}

fn client_prefix(client_id: &str) -> Vec<u8> {
    let mut k = client_id.as_bytes().to_vec();
    k.push(0);
    k
}

fn encode_options(o: &SubOptions, sub_id: Option<u32>) -> Vec<u8> {
    let mut v = vec![
        o.qos as u8 | (u8::from(o.no_local) << 2) | (u8::from(o.retain_as_published) << 3) | (o.retain_handling << 4),
    ];
    if let Some(id) = sub_id {
        v.extend_from_slice(&id.to_be_bytes());
    }
    v
}

fn decode_options(v: &[u8]) -> Option<(SubOptions, Option<u32>)> {
    let b = *v.first()?;
    let o = SubOptions {
        qos: QoS::from_u8(b & 3)?,
        no_local: b & 4 != 0,
        retain_as_published: b & 8 != 0,
        retain_handling: (b >> 4) & 3,
    };
    let id = (v.len() == 5).then(|| u32::from_be_bytes([v[1], v[2], v[3], v[4]]));
    Some((o, id))
}

/// Queue record: qos, retain, packet id, released flag, subscription ids, message.
fn encode_queued(out: &Outgoing, packet_id: u16, released: bool, msg_bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(msg_bytes.len() + 8 + out.subscription_ids.len() * 4);
    v.push(out.qos as u8);
    v.push(u8::from(out.retain));
    v.extend_from_slice(&packet_id.to_be_bytes());
    v.push(u8::from(released));
    v.push(out.subscription_ids.len().min(255) as u8);
    for id in out.subscription_ids.iter().take(255) {
        v.extend_from_slice(&id.to_be_bytes());
    }
    v.extend_from_slice(msg_bytes);
    v
}

struct QueuedRecord {
    out: Outgoing,
    packet_id: u16,
    released: bool,
}

fn decode_queued(v: &[u8], seq: u64) -> Option<QueuedRecord> {
    if v.len() < 6 {
        return None;
    }
    let qos = QoS::from_u8(v[0])?;
    let retain = v[1] != 0;
    let packet_id = u16::from_be_bytes([v[2], v[3]]);
    let released = v[4] != 0;
    let n = v[5] as usize;
    let ids_end = 6 + n * 4;
    let ids = v.get(6..ids_end)?;
    let subscription_ids = ids.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    let msg = Message::decode(&v[ids_end..])?;
    Some(QueuedRecord {
        out: Outgoing { msg: Arc::new(msg), qos, retain, subscription_ids, store_seq: Some(seq) },
        packet_id,
        released,
    })
}

/// Session row: expiry, disconnect time, protocol, then (newer rows) whether it is a
/// replica and the owner's claim epoch.
fn encode_session_meta(
    expiry: u32,
    disconnected_ms: u64,
    protocol: ProtocolVersion,
    replica: bool,
    epoch: u64,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(22);
    v.extend_from_slice(&expiry.to_be_bytes());
    v.extend_from_slice(&disconnected_ms.to_be_bytes());
    v.push(match protocol {
        ProtocolVersion::V31 => 3,
        ProtocolVersion::V311 => 4,
        ProtocolVersion::V5 => 5,
    });
    v.push(u8::from(replica));
    v.extend_from_slice(&epoch.to_be_bytes());
    v
}

/// The retained group's id in the group log.
pub const RETAINED_GROUP: u32 = 1000;

/// Publishes to `$aws/rules/{rule}/...` go to that rule only (AWS's Basic Ingest).
pub const BASIC_INGEST_PREFIX: &str = "$aws/rules/";

/// How [`Broker::publish_and_wait`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The durable part (QoS 1/2 copies for persistent sessions, a retained message) was
    /// written.
    pub stored: bool,
    /// A persistent subscriber's queue was full (MQTT 5 answers QUOTA_EXCEEDED).
    pub refused_by_persistent: bool,
}

/// Result of routing one message.
pub struct Routed {
    /// Sessions that received the message.
    pub matched: usize,
    /// A persistent session could not queue this QoS 1/2 message (its queue is full):
    /// the publish must not be acknowledged as delivered.
    pub refused_by_persistent: bool,
    /// Some receiving session has more than half its queue limit waiting: the publisher
    /// should slow down (backpressure) before the queue overflows and drops.
    pub congested: bool,
    /// Sessions to wake once the batch has been handed to the store.
    wakes: Vec<Arc<SessionHandle>>,
    /// For a retained message: answers whether the retained group committed it. A QoS 1/2
    /// retained publish is acknowledged only after that.
    pub retained: Option<tokio::sync::oneshot::Receiver<bool>>,
    /// Copies for other nodes, sent when this is dropped (after the batch was submitted).
    forwards: Option<Forwards>,
}

impl Routed {
    /// Wakes every session that got the message. Call after the batch was submitted,
    /// so that a subscriber's acknowledgement (a delete) is ordered after the put.
    pub fn wake(self) {
        for s in self.wakes {
            s.notify();
        }
    }
}

impl Broker {
    /// Builds the broker over `store`, recovering retained messages and persistent
    /// sessions (subscriptions, queues, in-flight QoS 2 state) written before a restart.
    /// `member` is this node in the retained group; `peers` the cluster's route table (none on
    /// a node alone); `observer` what runs after each publish.
    pub fn open(
        config: BrokerConfig,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        cluster: ClusterView,
        member: &ferrite_cluster::Member,
        peers: Option<Arc<dyn Peers>>,
        observer: Arc<dyn PublishObserver>,
    ) -> Result<Arc<Broker>, StoreError> {
        let retained = Arc::new(Retained::load(&*store)?);
        metrics.retained_messages.set(retained.len() as i64);
        let retained_group = ferrite_cluster::Group::open_member(
            store.clone(),
            RETAINED_GROUP,
            "retained",
            retained::RetainedMachine::new(retained.clone(), store.clone()),
            member,
        )?;
        let broker = Arc::new(Broker {
            config,
            router: Router::default(),
            retained,
            retained_group,
            store,
            metrics,
            lifecycle_versions: lifecycle::VersionCounter::starting_at(now_ms()),
            cluster,
            peers,
            observer,
            sessions: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_seq: AtomicU64::new(1),
            next_generation: AtomicU64::new(1),
            recovered_expiries: Mutex::new(Vec::new()),
        });
        broker.recover_sessions()?;
        Ok(broker)
    }

    fn recover_sessions(self: &Arc<Self>) -> Result<(), StoreError> {
        let mut max_seq = 0u64;
        let now = now_ms();
        let mut expired = Vec::new();
        for (key, value) in self.store.scan_prefix(Table::Sessions, b"")? {
            let Ok(client_id) = String::from_utf8(key) else { continue };
            if value.len() < 13 {
                continue;
            }
            let expiry = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
            let disconnected = u64::from_be_bytes(value[4..12].try_into().expect("8 bytes"));
            // 0: the client was connected when the node stopped (a crash, or a shutdown
            // that did not get to record the disconnect): its expiry starts now.
            let disconnected = if disconnected == 0 { now } else { disconnected };
            let protocol = match value[12] {
                3 => ProtocolVersion::V31,
                4 => ProtocolVersion::V311,
                _ => ProtocolVersion::V5,
            };
            let replica = value.get(13).is_some_and(|f| *f == 1);
            let epoch = value.get(14..22).map_or(0, |e| u64::from_be_bytes(e.try_into().expect("8 bytes")));
            let remaining_ms = (expiry as u64 * 1000).saturating_sub(now.saturating_sub(disconnected));
            if !replica && expiry != u32::MAX && remaining_ms == 0 {
                expired.push(client_id);
                continue;
            }
            let handle = self.new_handle(client_id.as_str().into(), expiry, protocol, 0);
            let prefix = client_prefix(&client_id);
            {
                let mut inner = handle.inner.lock();
                inner.epoch = epoch;
                inner.replica = replica;
                for (k, v) in self.store.scan_prefix(Table::Subscriptions, &prefix)? {
                    let Ok(filter) = String::from_utf8(k[prefix.len()..].to_vec()) else { continue };
                    let Some((options, sub_id)) = decode_options(&v) else {
                        crate::metrics::undecodable_record("subscription", &filter, "bad subscription options");
                        continue;
                    };
                    let s = SessionSubscription { options, subscription_id: sub_id };
                    // A replica is never a shared-subscription member (replica.rs).
                    self.index_subscription(&handle, &filter, &s, if replica { Kinds::Plain } else { Kinds::All });
                    inner.state.subscriptions.insert(filter, s);
                }
                for (k, v) in self.store.scan_prefix(Table::Queue, &prefix)? {
                    let Some(seq_bytes) = k.get(prefix.len()..).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
                        continue;
                    };
                    let seq = u64::from_be_bytes(seq_bytes);
                    max_seq = max_seq.max(seq);
                    let Some(rec) = decode_queued(&v, seq) else {
                        crate::metrics::undecodable_record(
                            "queued message",
                            &format!("{client_id}/{seq}"),
                            "bad record",
                        );
                        continue;
                    };
                    if !replica && rec.packet_id != 0 && rec.out.qos == QoS::ExactlyOnce {
                        inner.state.restore_inflight(rec.packet_id, rec.released, rec.out);
                    } else if inner.state.enqueue(rec.out).is_err() {
                        self.metrics.messages_dropped_queue_full_total.inc();
                    }
                }
            }
            self.sessions[shard_of(&client_id)].lock().insert(handle.client_id.clone(), handle.clone());
            if replica {
                self.metrics.session_replicas.inc();
                continue; // a replica lives as long as its owner says (replica.rs)
            }
            self.metrics.sessions.inc();
            if expiry != u32::MAX {
                self.recovered_expiries.lock().push((handle, Duration::from_millis(remaining_ms)));
            }
        }
        self.next_seq.store(max_seq + 1, Ordering::Relaxed);
        self.metrics.subscriptions.set(self.router.len() as i64);
        let mut batch = Batch::new();
        for client_id in expired {
            self.delete_session_records(&client_id, &mut batch)?;
        }
        self.store.write_now(batch)?;
        tracing::info!(sessions = self.metrics.sessions.get(), retained = self.retained.len(), "recovered state");
        Ok(())
    }

    fn new_handle(
        &self,
        client_id: Arc<str>,
        expiry: u32,
        protocol: ProtocolVersion,
        generation: u64,
    ) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            client_id,
            inner: Mutex::new(SessionInner {
                state: SessionState::new(self.config.max_inflight, self.config.max_queued),
                expiry_interval: expiry,
                conn: None,
                generation,
                protocol,
                ended: false,
                stored: expiry > 0,
                epoch: 0,
                replica: false,
                consumed_elsewhere: Default::default(),
            }),
            online: AtomicBool::new(false),
            wake_pending: AtomicBool::new(false),
            deferred_by: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// The client ids of every session on this node.
    pub fn session_ids(&self) -> Vec<String> {
        self.sessions.iter().flat_map(|s| s.lock().keys().map(|k| k.to_string()).collect::<Vec<_>>()).collect()
    }

    /// Looks up a session by client id.
    pub fn session(&self, client_id: &str) -> Option<Arc<SessionHandle>> {
        self.sessions[shard_of(client_id)].lock().get(client_id).cloned()
    }

    /// The generation of the connection attached to `client_id`'s session now, if one is:
    /// it changes with every connection, so it tells one connection from the next.
    pub fn connection_generation(&self, client_id: &str) -> Option<u64> {
        let session = self.session(client_id)?;
        let inner = session.inner.lock();
        inner.conn.is_some().then_some(inner.generation)
    }

    /// Attaches a new connection to the client's session: resumes it (clean start = 0
    /// and one exists) or starts a fresh one. A connection already attached is kicked
    /// with 0x8E (session taken over). `claim` is this node's claim of the client id in a
    /// cluster: its epoch, and the session another node handed over, which replaces any
    /// local one (merged with a local replica's messages, `replica.rs`).
    pub fn open_session(
        self: &Arc<Self>,
        client_id: &str,
        clean_start: bool,
        expiry_interval: u32,
        protocol: ProtocolVersion,
        claim: handover::Claim,
        link: impl FnOnce(u64) -> ConnLink,
    ) -> Opened {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let expiry = expiry_interval.min(self.config.max_session_expiry);
        let mut shard = self.sessions[shard_of(client_id)].lock();
        let existing = shard.get(client_id).cloned();
        let mut kicked = None;
        let mut batch = Batch::new();
        let mut leftovers = Vec::new();
        let imported = claim.export.filter(|_| !clean_start);
        // A persistent session (or a copy of one) was here: replicas hear when it ends.
        let mut had_persistent = false;
        // A replica here is resumed in place, the imported session merged into it: it never
        // leaves the routing index, so no forwarded message arrives while it is missing.
        let resume_here = |old: &Arc<SessionHandle>| imported.is_none() || old.inner.lock().replica;
        let resumed = match existing {
            Some(old) if !clean_start && resume_here(&old) => Some(old),
            Some(old) => {
                {
                    let mut inner = old.inner.lock();
                    kicked = inner.conn.take();
                    had_persistent = inner.expiry_interval > 0;
                }
                leftovers = self.end_session(&old, &mut shard, &mut batch);
                None
            }
            None => None,
        };
        let session_present = resumed.is_some() || imported.is_some();
        let mut absorb = None;
        let session = match (resumed, imported) {
            (Some(s), import) => {
                absorb = import;
                s
            }
            (None, Some(export)) => {
                let s = self.session_from_export(client_id, export, expiry, protocol, generation, &mut batch);
                shard.insert(s.client_id.clone(), s.clone());
                self.metrics.sessions.inc();
                s
            }
            (None, None) => {
                let s = self.new_handle(client_id.into(), expiry, protocol, generation);
                shard.insert(s.client_id.clone(), s.clone());
                self.metrics.sessions.inc();
                s
            }
        };
        drop(shard);
        {
            let mut inner = session.inner.lock();
            if let Some(old) = inner.conn.take() {
                kicked = Some(old);
            }
            had_persistent |= session_present && inner.expiry_interval > 0;
            self.promote(&session, &mut inner);
            if let Some(export) = absorb {
                self.absorb_export(&session, &mut inner, export, expiry > 0, &mut batch);
            }
            inner.epoch = inner.epoch.max(claim.epoch);
            inner.generation = generation;
            inner.expiry_interval = expiry;
            inner.stored |= expiry > 0;
            inner.protocol = protocol;
            inner.conn = Some(link(generation));
            if expiry > 0 {
                batch.put(
                    Table::Sessions,
                    client_id.as_bytes().to_vec(),
                    encode_session_meta(expiry, 0, protocol, false, inner.epoch),
                );
            } else if session_present {
                // A persistent session resumed as a non-persistent one: forget it on disk.
                let _ = self.delete_session_records(client_id, &mut batch);
            }
        }
        session.online.store(true, Ordering::Relaxed);
        session.wake_pending.store(false, Ordering::Relaxed);
        self.store.submit(batch);
        if expiry > 0 {
            self.mirror_settings(&session, !session_present);
        } else if had_persistent {
            self.mirror(client_id, session.inner.lock().epoch, replica::Record::End);
        }
        self.redistribute(leftovers);
        if let Some(old) = kicked {
            self.metrics.session_takeovers_total.inc();
            old.kick.do_send(Kick(reason::SESSION_TAKEN_OVER));
        }
        Opened { session, session_present, generation, expiry_interval: expiry }
    }

    /// Removes a session from the routing index and the table and deletes its records.
    fn end_session(
        &self,
        session: &Arc<SessionHandle>,
        shard: &mut HashMap<Arc<str>, Arc<SessionHandle>>,
        batch: &mut Batch,
    ) -> Vec<(String, Outgoing)> {
        let mut inner = session.inner.lock();
        if inner.ended {
            return Vec::new();
        }
        inner.ended = true;
        let is_replica = inner.replica;
        let mut shared_leftovers = Vec::new();
        let subs: Vec<String> = inner.state.subscriptions.keys().cloned().collect();
        for raw in &subs {
            self.unindex_subscription(session, raw, Kinds::All);
        }
        // A replica's messages are its owner's to hand back.
        let has_shared = !is_replica && subs.iter().any(|s| s.starts_with("$share/"));
        let stored = inner.stored;
        let pending = inner.state.take_all();
        if has_shared {
            for out in pending {
                if out.qos != QoS::AtMostOnce {
                    shared_leftovers.push((out.msg.topic.to_string(), out));
                }
            }
        }
        drop(inner);
        if shard.get(&session.client_id).is_some_and(|s| Arc::ptr_eq(s, session)) {
            shard.remove(&session.client_id);
            if is_replica {
                self.metrics.session_replicas.dec();
            } else {
                self.metrics.sessions.dec();
            }
        }
        if stored {
            let _ = self.delete_session_records(&session.client_id, batch);
        }
        self.metrics.subscriptions.set(self.router.len() as i64);
        shared_leftovers
    }

    fn delete_session_records(&self, client_id: &str, batch: &mut Batch) -> Result<(), StoreError> {
        batch.delete(Table::Sessions, client_id.as_bytes().to_vec());
        let prefix = client_prefix(client_id);
        for (k, _) in self.store.scan_prefix(Table::Subscriptions, &prefix)? {
            batch.delete(Table::Subscriptions, k);
        }
        for (k, _) in self.store.scan_prefix(Table::Queue, &prefix)? {
            batch.delete(Table::Queue, k);
        }
        Ok(())
    }

    /// Detaches the connection of `generation` from its session. A non-persistent
    /// session ends now; a persistent one stays, keeps its QoS 1/2 queue and expires
    /// after its interval. The will, if any, is published now or after its delay.
    pub fn close_session(self: &Arc<Self>, session: &Arc<SessionHandle>, generation: u64, will: Option<Will>) {
        let expiry;
        {
            let mut inner = session.inner.lock();
            if inner.generation != generation || inner.ended || inner.replica {
                // Taken over: the new connection owns the session now (on this node, or on
                // another, which left a replica here).
                return;
            }
            inner.conn = None;
            session.online.store(false, Ordering::Relaxed);
            expiry = inner.expiry_interval;
            if expiry > 0 {
                inner.state.drop_qos0();
                let meta = encode_session_meta(expiry, now_ms(), inner.protocol, false, inner.epoch);
                let mut batch = Batch::new();
                batch.put(Table::Sessions, session.client_id.as_bytes().to_vec(), meta);
                self.store.submit(batch);
            }
        }
        if expiry == 0 {
            let mut batch = Batch::new();
            let leftovers = {
                let mut shard = self.sessions[shard_of(&session.client_id)].lock();
                self.end_session(session, &mut shard, &mut batch)
            };
            self.store.submit(batch);
            self.redistribute(leftovers);
        } else if expiry != u32::MAX {
            self.schedule_expiry(session.clone(), generation, Duration::from_secs(expiry as u64));
        }
        if let Some(will) = will {
            let delay = will.properties.will_delay_interval.unwrap_or(0).min(expiry);
            if delay == 0 {
                self.publish_will(&session.client_id, will);
            } else {
                let broker = self.clone();
                let session = session.clone();
                actix_rt::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(delay as u64)).await;
                    let still_away = {
                        let inner = session.inner.lock();
                        inner.generation == generation || inner.ended
                    };
                    if still_away {
                        broker.publish_will(&session.client_id, will);
                    }
                });
            }
        }
    }

    fn schedule_expiry(self: &Arc<Self>, session: Arc<SessionHandle>, generation: u64, after: Duration) {
        let broker = self.clone();
        let task = async move {
            tokio::time::sleep(after).await;
            let current = {
                let inner = session.inner.lock();
                inner.generation == generation && inner.conn.is_none() && !inner.ended && !inner.replica
            };
            if current {
                tracing::info!(client_id = %session.client_id, "session expired");
                let mut batch = Batch::new();
                let leftovers = {
                    let mut shard = broker.sessions[shard_of(&session.client_id)].lock();
                    broker.end_session(&session, &mut shard, &mut batch)
                };
                broker.store.submit(batch);
                broker.redistribute(leftovers);
                let epoch = session.inner.lock().epoch;
                broker.mirror(&session.client_id, epoch, replica::Record::End);
            }
        };
        actix_rt::spawn(task);
    }

    /// Arms the expiry timers of sessions recovered from storage; call once inside the
    /// actix system.
    pub fn arm_recovered_timers(self: &Arc<Self>) {
        let recovered = std::mem::take(&mut *self.recovered_expiries.lock());
        for (session, after) in recovered {
            self.schedule_expiry(session, 0, after);
        }
    }

    /// Hands messages of a departed shared-subscription member back to the group.
    fn redistribute(&self, leftovers: Vec<(String, Outgoing)>) {
        if leftovers.is_empty() {
            return;
        }
        let mut batch = Batch::new();
        let mut wakes = Vec::new();
        for (_, out) in leftovers {
            let routed = self.route_shared_only(&out.msg, &mut batch);
            wakes.push(routed);
        }
        self.store.submit(batch);
        for w in wakes {
            w.wake();
        }
    }

    fn route_shared_only(&self, msg: &Arc<Message>, batch: &mut Batch) -> Routed {
        let mut matches = Vec::new();
        self.router.matches(&msg.topic, |s| s.is_online(), &mut matches);
        matches.retain(|m| m.shared.is_some());
        let copies = self.forward_to_peers(msg, true, &mut matches, batch);
        let mut routed = self.deliver(msg, matches, batch);
        routed.forwards = copies;
        routed
    }

    /// Sends `msg` to the peers that want it: every node with a matching subscription
    /// (unless `shared_only`), and for each shared group whose pick here is not online, a
    /// node with a member of it; such a group's local pick leaves `matches`.
    fn forward_to_peers(
        &self,
        msg: &Arc<Message>,
        shared_only: bool,
        matches: &mut Vec<Match<Arc<SessionHandle>>>,
        batch: &mut Batch,
    ) -> Option<Forwards> {
        let peers = self.peers.as_ref()?;
        let served_here: Vec<Arc<str>> =
            matches.iter().filter(|m| m.subscriber.handle.is_online()).filter_map(|m| m.shared.clone()).collect();
        let sent = peers.forward(msg, shared_only, &|group| served_here.iter().any(|g| &**g == group), batch);
        if !sent.groups_elsewhere.is_empty() {
            matches.retain(|m| m.shared.as_ref().is_none_or(|g| !sent.groups_elsewhere.contains(g)));
        }
        sent.copies
    }

    /// Publishes a will message now (no delay).
    pub fn publish_will(&self, client_id: &str, will: Will) {
        self.metrics.wills_published_total.inc();
        tracing::info!(client_id, topic = %will.topic, "publishing will message");
        let msg = Arc::new(Message {
            topic: will.topic.as_str().into(),
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            properties: Message::forwarded_properties(&will.properties),
            publisher: Some(client_id.into()),
            created_ms: now_ms(),
            rule_hops: 0,
            id: message::new_id(),
            wire: Default::default(),
        });
        self.publish_now(&msg);
    }

    /// Routes, stores (without waiting for the write) and finishes a message the node
    /// publishes itself (wills, shadow responses).
    pub fn publish_now(&self, msg: &Arc<Message>) {
        let mut batch = Batch::new();
        let routed = self.route(msg, &mut batch);
        self.store.submit(batch);
        self.finish_publish(routed, msg);
    }

    /// Publishes a message on behalf of something that waits for the answer (a rule's
    /// republish, the HTTP Publish API): routes it now, then the returned future waits until
    /// its durable part is written, finishes it, and says whether storage succeeded and
    /// whether a persistent subscriber's full queue refused it.
    pub fn publish_tracked(self: &Arc<Self>, msg: Arc<Message>) -> impl std::future::Future<Output = Published> {
        let mut batch = Batch::new();
        let mut routed = self.route(&msg, &mut batch);
        let refused_by_persistent = routed.refused_by_persistent;
        let retained = routed.retained.take();
        let stored = if batch.is_durable() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.store.commit(
                batch,
                Box::new(move |r| {
                    let _ = tx.send(r.is_ok());
                }),
            );
            Some(rx)
        } else {
            self.store.submit(batch);
            None
        };
        let broker = self.clone();
        async move {
            let stored = match stored {
                Some(rx) => rx.await.unwrap_or(false),
                None => true,
            };
            broker.finish_publish(routed, &msg);
            let retained_stored = match retained {
                Some(rx) => rx.await.unwrap_or(false),
                None => true,
            };
            Published { stored: stored && retained_stored, refused_by_persistent }
        }
    }

    /// [`Broker::publish_tracked`], awaited.
    pub async fn publish_and_wait(self: &Arc<Self>, msg: &Arc<Message>) -> Published {
        self.publish_tracked(msg.clone()).await
    }

    /// Finishes a routed message: wakes the sessions it was queued for, then serves it if it
    /// is a shadow request, then runs the rules its topic matches. Neither shadows nor rules
    /// delay delivery to subscribers. Every caller of [`Broker::route`] finishes with this
    /// (Basic Ingest messages ran their rule in `route`).
    pub fn finish_publish(&self, routed: Routed, msg: &Arc<Message>) {
        routed.wake();
        self.observe(msg);
    }

    /// [`Broker::finish_publish`] for a connection routing a run of publishes: the sessions
    /// to wake join `wakes`. Returns true when `wakes` was empty before (the caller
    /// schedules its [`DeferredWakes::wake_all`]).
    pub fn finish_publish_deferred(&self, mut routed: Routed, msg: &Arc<Message>, wakes: &mut DeferredWakes) -> bool {
        let schedule = wakes.add(std::mem::take(&mut routed.wakes));
        drop(routed);
        self.observe(msg);
        schedule
    }

    /// Hands a routed publish to the layers above (rules, shadows); a Basic Ingest publish
    /// already went to its rule in `route`.
    fn observe(&self, msg: &Arc<Message>) {
        if !msg.topic.starts_with(BASIC_INGEST_PREFIX) {
            self.observer.published(msg);
        }
    }

    /// Delivers a message the node originates to one client's matching subscriptions on this
    /// node and to no one else (the provisioning API answers the connection that asked:
    /// its answers carry private keys). Not retained, not forwarded, no rules.
    pub fn publish_to_client(&self, client_id: &str, msg: &Arc<Message>) {
        let mut matches = Vec::new();
        self.router.matches(&msg.topic, |s| s.is_online(), &mut matches);
        matches.retain(|m| &*m.subscriber.client_id == client_id);
        let mut batch = Batch::new();
        let routed = self.deliver(msg, matches, &mut batch);
        self.store.submit(batch);
        routed.wake();
    }

    /// Publishes a message the node itself originates (shadow responses) at QoS 1, as if a
    /// client had published it: subscribers, retained-free, rules included.
    pub fn publish_internal(&self, topic: String, doc: serde_json::Value) {
        self.publish_now(&Arc::new(Message::internal(topic, doc)));
    }

    /// Routes one message: updates the retained table, queues the message for every
    /// matching session (persisting QoS 1/2 copies for persistent sessions into `batch`)
    /// and returns the sessions to wake; [`Broker::finish_publish`] finishes it.
    pub fn route(&self, msg: &Arc<Message>, batch: &mut Batch) -> Routed {
        if let Some(rest) = msg.topic.strip_prefix(BASIC_INGEST_PREFIX) {
            // Basic Ingest: the named rule only, never subscribers or the retained table.
            let (rule, topic) = rest.split_once('/').unwrap_or((rest, ""));
            if !self.observer.ingest(rule, topic, msg) {
                tracing::debug!(rule, "Basic Ingest publish for a rule that is not loaded; dropped");
            }
            return Routed {
                matched: 0,
                refused_by_persistent: false,
                congested: false,
                wakes: Vec::new(),
                retained: None,
                forwards: None,
            };
        }
        let retained = msg.retain.then(|| self.retain(msg));
        let mut matches = Vec::new();
        self.router.matches(&msg.topic, |s| s.is_online(), &mut matches);
        let forwards = self.forward_to_peers(msg, false, &mut matches, batch);
        let mut routed = self.deliver(msg, matches, batch);
        routed.retained = retained;
        routed.forwards = forwards;
        routed
    }

    /// Proposes `msg` as its topic's retained message to the retained group; the receiver
    /// answers whether it was committed (and applied here).
    fn retain(&self, msg: &Message) -> tokio::sync::oneshot::Receiver<bool> {
        let mut bytes = Vec::with_capacity(msg.payload.len() + msg.topic.len() + 32);
        msg.encode(&mut bytes);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (table, metrics) = (self.retained.clone(), self.metrics.clone());
        self.retained_group.propose(
            bytes,
            Box::new(move |r| {
                if let Err(e) = &r {
                    tracing::error!(error = %e, "a retained message was not committed");
                }
                metrics.retained_messages.set(table.len() as i64);
                let _ = tx.send(r.is_ok());
            }),
        );
        rx
    }

    fn deliver(&self, msg: &Arc<Message>, mut matches: Vec<Match<Arc<SessionHandle>>>, batch: &mut Batch) -> Routed {
        // One copy per session: the highest QoS of its matching subscriptions and all
        // their subscription identifiers.
        matches.sort_by_key(|m| Arc::as_ptr(&m.subscriber.handle) as usize);
        let mut wakes = Vec::with_capacity(matches.len());
        let mut encoded: Option<Vec<u8>> = None;
        let mut refused_by_persistent = false;
        let mut congested = false;
        let mut i = 0;
        while i < matches.len() {
            let handle = matches[i].subscriber.handle.clone();
            let mut qos = None::<QoS>;
            let mut retain = false;
            let mut ids = Vec::new();
            while i < matches.len() && Arc::ptr_eq(&matches[i].subscriber.handle, &handle) {
                let s = &matches[i].subscriber;
                i += 1;
                if s.options.no_local && msg.publisher.as_deref() == Some(&*s.client_id) {
                    continue;
                }
                let q = msg.qos.min(s.options.qos);
                qos = Some(qos.map_or(q, |old| old.max(q)));
                retain |= s.options.retain_as_published && msg.retain;
                ids.extend(s.subscription_id);
            }
            let Some(qos) = qos else { continue };
            let mut out = Outgoing { msg: msg.clone(), qos, retain, subscription_ids: ids, store_seq: None };
            let mut inner = handle.inner.lock();
            if inner.ended {
                continue;
            }
            if !inner.consumed_elsewhere.is_empty() && inner.consumed_elsewhere.take(msg.id) {
                continue; // the client had it from another node's copy of the session
            }
            if inner.conn.is_none() && qos == QoS::AtMostOnce {
                continue; // QoS 0 is not queued for offline clients
            }
            if inner.expiry_interval > 0 && qos != QoS::AtMostOnce {
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                let bytes = encoded.get_or_insert_with(|| {
                    let mut b = Vec::with_capacity(msg.payload.len() + msg.topic.len() + 32);
                    msg.encode(&mut b);
                    b
                });
                batch.put(Table::Queue, queue_key(&handle.client_id, seq), encode_queued(&out, 0, false, bytes));
                batch.set_durable();
                out.store_seq = Some(seq);
            }
            let persistent_copy = out.store_seq;
            if inner.state.enqueue(out).is_err() {
                if let Some(seq) = persistent_copy {
                    // Undo the stored copy: this publish will not be acknowledged as a success.
                    batch.delete(Table::Queue, queue_key(&handle.client_id, seq));
                    refused_by_persistent |= !inner.replica;
                }
                let dropped = handle.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                self.metrics.messages_dropped_queue_full_total.inc();
                if dropped.is_power_of_two() {
                    tracing::warn!(client_id = %handle.client_id, dropped, "session queue full, message dropped");
                }
                continue;
            }
            let online = inner.conn.is_some();
            congested |= online && inner.state.pending() > self.config.max_queued / 2;
            drop(inner);
            if online {
                wakes.push(handle);
            }
        }
        Routed { matched: wakes.len(), refused_by_persistent, congested, wakes, retained: None, forwards: None }
    }

    /// Client ids with a live connection on this node, sorted.
    pub fn connected_clients(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .sessions
            .iter()
            .flat_map(|shard| {
                shard.lock().values().filter(|h| h.is_online()).map(|h| h.client_id.to_string()).collect::<Vec<_>>()
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Adds a subscription to the local index, and its filter to the cluster's routes.
    fn router_subscribe(&self, filter: &str, group: Option<&str>, sub: Subscriber<Arc<SessionHandle>>) -> bool {
        let fresh = self.router.subscribe(filter, group, sub);
        if let (true, Some(peers)) = (fresh, &self.peers) {
            peers.added(filter, group);
        }
        fresh
    }

    /// Puts `session`'s subscription `raw` into the routing index, if it is of a kind
    /// `kinds` takes: what recovery, an imported session and a replica do with the
    /// subscriptions they hold.
    fn index_subscription(&self, session: &Arc<SessionHandle>, raw: &str, s: &SessionSubscription, kinds: Kinds) {
        let Ok(p) = topic::parse_subscription(raw, &self.config.topic_limits) else { return };
        if kinds.takes(p.share_group) {
            let sub = Subscriber {
                client_id: session.client_id.clone(),
                handle: session.clone(),
                options: s.options,
                subscription_id: s.subscription_id,
            };
            self.router_subscribe(p.filter, p.share_group, sub);
        }
    }

    /// Takes `session`'s subscription `raw` out of the routing index, if it is of a kind
    /// `kinds` takes.
    fn unindex_subscription(&self, session: &SessionHandle, raw: &str, kinds: Kinds) {
        let Ok(p) = topic::parse_subscription(raw, &self.config.topic_limits) else { return };
        if kinds.takes(p.share_group) {
            self.router_unsubscribe(p.filter, p.share_group, &session.client_id);
        }
    }

    /// Removes a subscription from the local index and, with its last one, the filter from
    /// the cluster's routes.
    fn router_unsubscribe(&self, filter: &str, group: Option<&str>, client_id: &str) -> bool {
        let removed = self.router.unsubscribe(filter, group, client_id);
        if let (true, Some(peers)) = (removed, &self.peers) {
            peers.removed(filter, group);
        }
        removed
    }

    /// A presence event another node broadcast: told to the layers above, delivered to no one.
    pub fn peer_presence(&self, msg: &Message) {
        self.observer.peer_presence(msg);
    }

    /// Delivers a publish another node forwarded to this node's subscribers: no forward, no
    /// rules, no retained-table change (the ingress node did those). Shared groups get it
    /// only when the ingress node chose this node for them (`groups`, as
    /// `$share/{group}/{filter}`); with `groups_only` (a departed member's message handed
    /// back) plain subscribers do not. Persistent sessions' copies go into `batch`; wake
    /// the result once the batch has been handed to the store.
    pub fn deliver_forwarded(
        &self,
        msg: Arc<Message>,
        groups: &[Arc<str>],
        groups_only: bool,
        batch: &mut Batch,
    ) -> Routed {
        let mut matches = Vec::new();
        self.router.matches(&msg.topic, |s| s.is_online(), &mut matches);
        matches.retain(|m| m.shared.as_ref().map_or(!groups_only, |g| groups.contains(g)));
        if !groups.is_empty() && groups.len() > matches.iter().filter(|m| m.shared.is_some()).count() {
            tracing::debug!(topic = %msg.topic, "a shared-subscription group this node was chosen for has no member here any more");
        }
        self.deliver(&msg, matches, batch)
    }

    /// Turns the session module's store operations into writes.
    pub fn apply_store_ops(&self, session: &SessionHandle, ops: &[StoreOp]) {
        if ops.is_empty() {
            return;
        }
        let mut batch = Batch::new();
        let mut consumed = Vec::new();
        for op in ops {
            match op {
                StoreOp::Consumed(id) => consumed.push(*id),
                StoreOp::Delete(seq) => batch.delete(Table::Queue, queue_key(&session.client_id, *seq)),
                StoreOp::Mark { seq, packet_id, released } => {
                    // Rewrite the record with its packet id; the message is unchanged.
                    let key = queue_key(&session.client_id, *seq);
                    if let Ok(Some(mut v)) = self.store.get(Table::Queue, &key) {
                        if v.len() >= 5 {
                            v[2..4].copy_from_slice(&packet_id.to_be_bytes());
                            v[4] = u8::from(*released);
                            batch.put(Table::Queue, key, v);
                        }
                    }
                }
            }
        }
        self.store.submit(batch);
        if !consumed.is_empty() && self.replicating() {
            let epoch = session.inner.lock().epoch;
            self.mirror(&session.client_id, epoch, replica::Record::Consumed(consumed));
        }
    }

    /// Adds (or replaces) a subscription of `session`. Returns whether it is new, or
    /// the reason code to refuse it with.
    /// A persistent session's subscription record goes into `batch`, marked durable: the
    /// caller answers SUBACK once the batch is written, so an acknowledged subscription
    /// survives a crash.
    pub fn subscribe(
        &self,
        session: &Arc<SessionHandle>,
        raw_filter: &str,
        options: SubOptions,
        subscription_id: Option<u32>,
        batch: &mut Batch,
    ) -> Result<bool, u8> {
        let parsed = topic::parse_subscription(raw_filter, &self.config.topic_limits).map_err(|e| e.reason_code)?;
        if parsed.share_group.is_some() && options.no_local {
            return Err(reason::PROTOCOL_ERROR);
        }
        let mut inner = session.inner.lock();
        if !inner.state.subscriptions.contains_key(raw_filter)
            && inner.state.subscriptions.len() >= self.config.max_subscriptions
        {
            return Err(reason::QUOTA_EXCEEDED);
        }
        let fresh = self.router_subscribe(
            parsed.filter,
            parsed.share_group,
            Subscriber { client_id: session.client_id.clone(), handle: session.clone(), options, subscription_id },
        );
        inner.state.subscriptions.insert(raw_filter.to_string(), SessionSubscription { options, subscription_id });
        if inner.expiry_interval > 0 {
            batch.put(
                Table::Subscriptions,
                sub_key(&session.client_id, raw_filter),
                encode_options(&options, subscription_id),
            );
            batch.set_durable();
        }
        drop(inner);
        self.metrics.subscriptions.set(self.router.len() as i64);
        self.mirror_settings(session, false);
        Ok(fresh)
    }

    /// Queues the retained messages a new subscription should get (retain handling 0,
    /// or 1 when the subscription is new; never for shared subscriptions).
    pub fn send_retained(
        &self,
        session: &Arc<SessionHandle>,
        raw_filter: &str,
        options: SubOptions,
        subscription_id: Option<u32>,
        fresh: bool,
    ) {
        if raw_filter.starts_with("$share/") || options.retain_handling == 2 || (options.retain_handling == 1 && !fresh)
        {
            return;
        }
        let now = now_ms();
        let mut inner = session.inner.lock();
        for msg in self.retained.matching(raw_filter) {
            if msg.remaining_expiry(now).is_none() {
                continue;
            }
            let out = Outgoing {
                qos: msg.qos.min(options.qos),
                msg,
                retain: true,
                subscription_ids: subscription_id.into_iter().collect(),
                store_seq: None,
            };
            if inner.state.enqueue(out).is_err() {
                self.metrics.messages_dropped_queue_full_total.inc();
            }
        }
    }

    /// Removes a subscription; returns false when there was none.
    pub fn unsubscribe(&self, session: &Arc<SessionHandle>, raw_filter: &str) -> bool {
        let mut inner = session.inner.lock();
        if inner.state.subscriptions.remove(raw_filter).is_none() {
            return false;
        }
        if let Ok(p) = topic::parse_subscription(raw_filter, &self.config.topic_limits) {
            self.router_unsubscribe(p.filter, p.share_group, &session.client_id);
        }
        if inner.expiry_interval > 0 {
            let mut batch = Batch::new();
            batch.delete(Table::Subscriptions, sub_key(&session.client_id, raw_filter));
            self.store.submit(batch);
        }
        drop(inner);
        self.metrics.subscriptions.set(self.router.len() as i64);
        self.mirror_settings(session, false);
        true
    }

    /// Sends every connected client a DISCONNECT with `reason_code` (e.g. 0x8B, server
    /// shutting down) and closes it; persistent sessions stay stored.
    pub fn disconnect_all(&self, reason_code: u8) -> usize {
        let mut kicked = 0;
        for shard in &self.sessions {
            for session in shard.lock().values() {
                if let Some(link) = session.inner.lock().conn.as_ref() {
                    link.kick.do_send(Kick(reason_code));
                    kicked += 1;
                }
            }
        }
        kicked
    }

    /// Messages queued or awaiting acknowledgement for connected clients: what a graceful
    /// stop gives time to finish before it disconnects them.
    pub fn deliveries_pending(&self) -> usize {
        let mut pending = 0;
        for shard in &self.sessions {
            for session in shard.lock().values() {
                let inner = session.inner.lock();
                if inner.conn.is_some() {
                    pending += inner.state.pending();
                }
            }
        }
        pending
    }

    /// Number of sessions this node owns (replicas of other nodes' sessions aside).
    pub fn session_count(&self) -> usize {
        self.sessions.iter().map(|s| s.lock().values().filter(|h| !h.inner.lock().replica).count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use actix::{Actor, Context, Handler};
    use ferrite_mqtt::packet::SubOptions;

    use super::*;

    /// A connection stand-in: counts the wakes and kicks the broker sends it.
    #[derive(Default)]
    struct Probe {
        wakes: Arc<AtomicUsize>,
        kicks: Arc<Mutex<Vec<u8>>>,
    }

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<Wake> for Probe {
        type Result = ();
        fn handle(&mut self, _: Wake, _: &mut Context<Self>) {
            self.wakes.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Handler<Kick> for Probe {
        type Result = ();
        fn handle(&mut self, kick: Kick, _: &mut Context<Self>) {
            self.kicks.lock().push(kick.0);
        }
    }

    /// Counts what the broker hands up after each publish.
    #[derive(Default)]
    struct Seen {
        published: AtomicUsize,
        ingested: Mutex<Vec<String>>,
    }

    impl PublishObserver for Seen {
        fn ingest(&self, rule: &str, topic: &str, _msg: &Arc<Message>) -> bool {
            self.ingested.lock().push(format!("{rule}:{topic}"));
            rule == "known"
        }

        fn published(&self, _msg: &Arc<Message>) {
            self.published.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn open(dir: &std::path::Path, seen: Arc<Seen>) -> Arc<Broker> {
        let store = Arc::new(Store::open(dir).expect("a store"));
        let member = ferrite_cluster::Member::single();
        let view = ClusterView { node_id: 1, address: None, net: None };
        Broker::open(BrokerConfig::default(), store, Arc::default(), view, &member, None, seen).expect("a broker")
    }

    fn link(probe: &actix::Addr<Probe>) -> impl FnOnce(u64) -> ConnLink + '_ {
        move |generation| ConnLink { generation, wake: probe.clone().recipient(), kick: probe.clone().recipient() }
    }

    fn message(topic: &str, qos: QoS) -> Arc<Message> {
        let mut msg = Message::internal(topic.to_string(), serde_json::json!({"v": 1}));
        msg.qos = qos;
        Arc::new(msg)
    }

    #[actix_rt::test]
    async fn a_publish_reaches_a_matching_subscriber_and_the_observer() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Seen::default());
        let broker = open(dir.path(), seen.clone());
        let probe = Probe::default();
        let wakes = probe.wakes.clone();
        let addr = probe.start();
        let opened = broker.open_session("sub", true, 0, ProtocolVersion::V5, Default::default(), link(&addr));
        assert!(!opened.session_present);
        let qos1 = SubOptions { qos: QoS::AtLeastOnce, ..SubOptions::default() };
        assert_eq!(broker.subscribe(&opened.session, "a/+", qos1, None, &mut Batch::new()), Ok(true));
        let published = broker.publish_and_wait(&message("a/b", QoS::AtLeastOnce)).await;
        assert!(published.stored && !published.refused_by_persistent);
        broker.publish_and_wait(&message("other", QoS::AtLeastOnce)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "one wake for the one matching message");
        assert_eq!(opened.session.inner.lock().state.pending(), 1);
        assert_eq!(seen.published.load(Ordering::SeqCst), 2, "the observer sees every publish");
    }

    #[actix_rt::test]
    async fn basic_ingest_goes_to_the_observer_only() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Seen::default());
        let broker = open(dir.path(), seen.clone());
        let addr = Probe::default().start();
        let opened = broker.open_session("sub", true, 0, ProtocolVersion::V5, Default::default(), link(&addr));
        broker.subscribe(&opened.session, "#", SubOptions::default(), None, &mut Batch::new()).unwrap();
        broker.publish_and_wait(&message("$aws/rules/known/t/1", QoS::AtMostOnce)).await;
        assert_eq!(*seen.ingested.lock(), vec!["known:t/1".to_string()]);
        assert_eq!(seen.published.load(Ordering::SeqCst), 0);
        assert_eq!(opened.session.inner.lock().state.pending(), 0, "no subscriber sees Basic Ingest");
    }

    #[actix_rt::test]
    async fn an_offline_persistent_session_stores_qos1_copies_and_skips_qos0() {
        let dir = tempfile::tempdir().unwrap();
        let broker = open(dir.path(), Arc::default());
        let addr = Probe::default().start();
        let opened = broker.open_session("keep", false, 3600, ProtocolVersion::V311, Default::default(), link(&addr));
        let qos1 = SubOptions { qos: QoS::AtLeastOnce, ..SubOptions::default() };
        let mut batch = Batch::new();
        broker.subscribe(&opened.session, "q", qos1, None, &mut batch).unwrap();
        assert!(batch.is_durable(), "a persistent session's subscription is written before SUBACK");
        broker.store.submit(batch);
        broker.close_session(&opened.session, opened.generation, None);
        broker.publish_and_wait(&message("q", QoS::AtMostOnce)).await;
        assert!(broker.publish_and_wait(&message("q", QoS::AtLeastOnce)).await.stored);
        assert_eq!(opened.session.inner.lock().state.pending(), 1, "only the QoS 1 copy waits");
        let stored = broker.store.scan_prefix(Table::Queue, &client_prefix("keep")).unwrap();
        assert_eq!(stored.len(), 1, "the waiting copy is in storage before the publish is answered");
        let again = broker.open_session("keep", false, 3600, ProtocolVersion::V311, Default::default(), link(&addr));
        assert!(again.session_present);
    }

    #[actix_rt::test]
    async fn a_second_connection_takes_the_session_over_and_kicks_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let broker = open(dir.path(), Arc::default());
        let first = Probe::default();
        let kicks = first.kicks.clone();
        let first = first.start();
        let second = Probe::default().start();
        broker.open_session("dup", false, 60, ProtocolVersion::V5, Default::default(), link(&first));
        let again = broker.open_session("dup", false, 60, ProtocolVersion::V5, Default::default(), link(&second));
        assert!(again.session_present);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(*kicks.lock(), vec![reason::SESSION_TAKEN_OVER]);
    }

    /// A cluster stand-in for the replica tests: records what the broker mirrors.
    #[derive(Default)]
    struct Mirrored(Mutex<Vec<Vec<u8>>>);

    impl Peers for Mirrored {
        fn forward(
            &self,
            _msg: &Arc<Message>,
            _shared_only: bool,
            _served_here: &dyn Fn(&str) -> bool,
            _batch: &mut Batch,
        ) -> hooks::Forwarded {
            hooks::Forwarded::default()
        }
        fn added(&self, _filter: &str, _group: Option<&str>) {}
        fn removed(&self, _filter: &str, _group: Option<&str>) {}
        fn replicates_sessions(&self) -> bool {
            true
        }
        fn mirror(&self, record: Vec<u8>) {
            self.0.lock().push(record);
        }
    }

    fn open_member(dir: &std::path::Path, node_id: u64, peers: Arc<Mirrored>) -> Arc<Broker> {
        let store = Arc::new(Store::open(dir).expect("a store"));
        let member = ferrite_cluster::Member::single();
        let view = ClusterView { node_id, address: None, net: None };
        let peers: Arc<dyn Peers> = peers;
        Broker::open(
            BrokerConfig::default(),
            store,
            Arc::default(),
            view,
            &member,
            Some(peers),
            Arc::new(hooks::NoObserver),
        )
        .expect("a broker")
    }

    /// Hands every record `from` mirrored so far to `to`, as the outbox would.
    fn relay(from: &Mirrored, to: &Broker) {
        let mut batch = Batch::new();
        for record in from.0.lock().drain(..) {
            to.apply_replica_record(&record, &mut batch);
        }
        to.store.write_now(batch).unwrap();
    }

    #[actix_rt::test]
    async fn a_replica_follows_its_owner_and_resumes_what_the_owner_had_not_delivered() {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mirror_a, mirror_b) = (Arc::new(Mirrored::default()), Arc::new(Mirrored::default()));
        let owner = open_member(dir_a.path(), 1, mirror_a.clone());
        let other = open_member(dir_b.path(), 2, mirror_b.clone());
        let addr = Probe::default().start();
        let claim = handover::Claim { epoch: 5, export: None };
        let opened = owner.open_session("dev", false, 3600, ProtocolVersion::V5, claim, link(&addr));
        let qos1 = SubOptions { qos: QoS::AtLeastOnce, ..Default::default() };
        owner.subscribe(&opened.session, "t/#", qos1, None, &mut Batch::new()).unwrap();
        relay(&mirror_a, &other);
        let copy = other.session("dev").expect("a replica");
        assert!(copy.inner.lock().replica);
        assert_eq!(other.metrics.session_replicas.get(), 1);
        assert_eq!(other.session_count(), 0, "a replica is not a session this node owns");

        // Two messages reach both copies; the owner's client acknowledges the first.
        let (m1, m2) = (message("t/1", QoS::AtLeastOnce), message("t/2", QoS::AtLeastOnce));
        for m in [&m1, &m2] {
            let mut batch = Batch::new();
            owner.route(m, &mut batch).wake();
            other.deliver_forwarded(m.clone(), &[], false, &mut batch).wake();
        }
        assert_eq!(copy.inner.lock().state.pending(), 2);
        let (mut sends, mut ops) = (Vec::new(), Vec::new());
        {
            let mut inner = opened.session.inner.lock();
            inner.state.drain(now_ms(), &mut sends, &mut ops);
            let first = match &sends[0] {
                session::Send::Publish { packet_id: Some(id), .. } => *id,
                other => panic!("expected a QoS 1 publish, got {other:?}"),
            };
            assert!(inner.state.on_puback(first, &mut ops));
        }
        owner.apply_store_ops(&opened.session, &ops);
        relay(&mirror_a, &other);
        assert_eq!(copy.inner.lock().state.message_ids().collect::<Vec<_>>(), vec![m2.id]);

        // The owner is gone; the client resumes on the other node from the replica.
        let claim = handover::Claim { epoch: 9, export: None };
        let resumed = other.open_session("dev", false, 3600, ProtocolVersion::V5, claim, link(&addr));
        assert!(resumed.session_present);
        assert!(Arc::ptr_eq(&resumed.session, &copy), "resumed in place");
        assert!(!resumed.session.inner.lock().replica);
        assert_eq!(resumed.session.inner.lock().state.message_ids().collect::<Vec<_>>(), vec![m2.id]);
        assert_eq!((other.metrics.session_replicas.get(), other.session_count()), (0, 1));

        // A late record from the old owner (older epoch) cannot end the new owner's session,
        // and the new owner's settings reach the old node, whose claim hook made it a replica.
        owner.export_session("dev", 9);
        assert!(owner.session("dev").unwrap().inner.lock().replica);
        other.mirror("dev", 5, replica::Record::End);
        relay(&mirror_b, &owner);
        assert!(owner.session("dev").is_some_and(|s| s.inner.lock().replica));
        owner.mirror("dev", 5, replica::Record::End);
        relay(&mirror_a, &other);
        assert!(other.session("dev").is_some(), "an older owner's End is ignored");
    }

    #[actix_rt::test]
    async fn what_a_client_consumed_elsewhere_leaves_every_copy_owned_ones_too() {
        let dir = tempfile::tempdir().unwrap();
        let owner = open_member(dir.path(), 1, Arc::default());
        let addr = Probe::default().start();
        let opened = owner.open_session("dev", false, 3600, ProtocolVersion::V5, Default::default(), link(&addr));
        let qos1 = SubOptions { qos: QoS::AtLeastOnce, ..Default::default() };
        owner.subscribe(&opened.session, "t/#", qos1, None, &mut Batch::new()).unwrap();
        owner.close_session(&opened.session, opened.generation, None);
        let (m1, m2) = (message("t/1", QoS::AtLeastOnce), message("t/2", QoS::AtLeastOnce));
        let mut batch = Batch::new();
        owner.route(&m1, &mut batch).wake();
        // Another node's copy saw m1 and m2 consumed; m2 has not arrived here yet.
        let consumed = replica::Addressed {
            client_id: "dev".into(),
            epoch: 7,
            record: replica::Record::Consumed(vec![m1.id, m2.id]),
        };
        owner.apply_replica_record(&consumed.encode(), &mut batch);
        owner.route(&m2, &mut batch).wake();
        owner.store.write_now(batch).unwrap();
        assert_eq!(opened.session.inner.lock().state.pending(), 0);
        let end = replica::Addressed { client_id: "dev".into(), epoch: 7, record: replica::Record::End };
        owner.apply_replica_record(&end.encode(), &mut Batch::new());
        assert!(owner.session("dev").is_some(), "an owned session ignores another node's End");
    }
}
