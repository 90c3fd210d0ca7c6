//! Replicated state machines (docs/ARCHITECTURE.md): every write to registry, shadow and rule
//! state is a command proposed to the [`Group`] that owns it, committed through Raft
//! (raft-rs) and then applied, in log order, by the group's [`StateMachine`] on every member.
//!
//! A node alone in its cluster runs the same code with a one-member group: a command is
//! committed once its log entry is fsync'd. Each group runs on its own thread, which owns the
//! raft-rs `RawNode`: proposals that arrive together are appended with one fsync (entries and
//! hard state in one RocksDB write), then applied one by one; each apply's writes and the new
//! applied index go to RocksDB in one batch. After a crash, committed entries above the
//! applied index are applied again on open.
//!
//! Any member takes proposals: a follower's go to the leader inside Raft, and the member that
//! proposed answers its caller when it applies the entry itself (the entry's context names
//! the proposing node and its sequence number). Reads use ReadIndex: they run once the
//! member has applied everything the leader had committed when the read arrived, and after
//! every proposal this member made before it.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::dedup::{self, Applied};
use parking_lot::Mutex;
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType, Message, MessageType, Snapshot,
};
use raft::{RawNode, SnapshotStatus, StateRole};

use crate::raft_log::{self, LogStore};
use crate::storage::{Batch, Store, StoreError, Table};
use crate::transport::{Inbox, Member, MemberChange, Transport};

/// The state a group replicates. Implementations must be deterministic: the same commands
/// in the same order leave every member in the same state, so anything random or
/// time-dependent (ids, timestamps) belongs in the command, chosen by the proposer.
pub trait StateMachine: Send + Sync + 'static {
    /// What applying a command answers to its proposer (members that did not propose
    /// drop it).
    type Output: Send + 'static;

    /// Applies one committed command. Durable effects go into `writes`, which is written
    /// atomically with the applied index as soon as this returns; a command the state
    /// rejects (a conflict, a missing resource) changes nothing and says so in its output.
    fn apply(&self, index: u64, command: &[u8], writes: &mut Batch) -> Self::Output;

    /// Everything the state holds, encoded: what a member too far behind the compacted log
    /// receives instead of the entries it missed.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state with `data` from [`StateMachine::snapshot`] on another
    /// member; the durable part goes into `writes`, written with the snapshot's index.
    fn restore(&self, data: &[u8], writes: &mut Batch) -> Result<(), String>;

    /// Runs once the writes of a [`StateMachine::restore`] are on disk (a machine that
    /// caches what it reads from the store drops its cache here).
    fn after_restore(&self) {}

    /// Runs after applied entries' writes are on disk: everything applied so far can be
    /// read back from the store (a machine may shrink a cache of what it wrote here).
    fn after_write(&self) {}

    /// Applies a command whose output nobody waits for (another member proposed it).
    /// Machines whose output is costly to build (documents answering a request) skip
    /// building it here; the state must change exactly as `apply` changes it.
    fn apply_unobserved(&self, index: u64, command: &[u8], writes: &mut Batch) {
        let _ = self.apply(index, command, writes);
    }

    /// True when `apply` never reads the store (it keeps what it needs in memory): then the
    /// writes of all entries applied in one round go to the store as one write, before any
    /// of their answers, instead of one write per entry.
    fn applies_from_memory(&self) -> bool {
        false
    }

    /// True when commands proposed together may share one log entry (applied one after the
    /// other, all with that entry's index). Machines that use the index as an identity (an
    /// epoch) must say no.
    fn batches_commands(&self) -> bool {
        false
    }
}

/// Why a proposal or read was not answered by the state machine.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
    /// The log could not be written; the command was not applied.
    #[error("the group log could not be written: {0}")]
    Storage(Arc<StoreError>),
    /// The group has stopped (the node is shutting down).
    #[error("the group has stopped")]
    Stopped,
    /// No answer in time (no leader could be reached): the command may still take effect.
    #[error("no answer from the group's leader within {0:?}; the outcome is unknown")]
    Timeout(Duration),
    /// The leader changed while the command was on its way: it may or may not take effect,
    /// so the caller retries against the new leader instead of waiting for a timeout.
    #[error("the group's leader changed before the command was committed; the outcome is unknown")]
    LeaderChanged,
    /// Raft refused a membership change.
    #[error("the membership change was refused: {0}")]
    Refused(String),
}

/// Called with a proposal's outcome, on the group's thread, in log order.
pub type Done<O> = Box<dyn FnOnce(Result<O, GroupError>) + Send>;

/// A read run on the group's thread, in log order.
type Query<S> = Box<dyn FnOnce(Result<&S, GroupError>) + Send>;

/// What a member knows about its group, for `ferrite cluster status` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group id.
    pub group: u32,
    /// The group's name (`meta`, `shard-3`).
    pub name: String,
    /// The leader this member knows of (0: none).
    pub leader: u64,
    /// The current term.
    pub term: u64,
    /// `leader`, `follower`, `candidate` or `pre-candidate`.
    pub role: &'static str,
    /// The highest index known committed.
    pub commit: u64,
    /// The highest index applied here.
    pub applied: u64,
    /// The voters.
    pub voters: Vec<u64>,
    /// On the leader: each member's highest replicated index.
    pub matched: Vec<(u64, u64)>,
    /// Commands this member proposed again (leader changed, or no answer in time).
    pub proposals_retried: u64,
    /// Proposals this member answered with an error, counted by kind in the order of
    /// [`FAILURE_KINDS`].
    pub proposals_failed: [u64; 5],
}

/// The kinds of [`GroupStatus::proposals_failed`], in order.
pub const FAILURE_KINDS: [&str; 5] = ["timeout", "leader_changed", "refused", "stopped", "storage"];

impl GroupError {
    /// This error's kind in [`FAILURE_KINDS`].
    fn kind_index(&self) -> usize {
        match self {
            GroupError::Timeout(_) => 0,
            GroupError::LeaderChanged => 1,
            GroupError::Refused(_) => 2,
            GroupError::Stopped => 3,
            GroupError::Storage(_) => 4,
        }
    }
}

enum Op<S: StateMachine> {
    Propose(Vec<u8>, Done<S::Output>),
    Read(Query<S>),
    Step(Box<Message>),
    Change(MemberChange, Vec<u8>, Done<()>),
    /// Hand leadership to the most caught-up other voter (a planned stop).
    TransferLeadership,
}

/// One replicated group: its state machine, its log and the thread that drives it.
pub struct Group<S: StateMachine> {
    id: u32,
    state: Arc<S>,
    status: Arc<Mutex<GroupStatus>>,
    inbox: Inbox,
    tx: Option<Sender<Op<S>>>,
    worker: Option<thread::JoinHandle<()>>,
}

impl<S: StateMachine> std::fmt::Debug for Group<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<S: StateMachine> Drop for Group<S> {
    /// Stops taking messages, finishes every queued operation and returns.
    fn drop(&mut self) {
        self.inbox.unregister(self.id);
        drop(self.tx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Most operations taken from the queue for one Raft round.
const MAX_DRAIN: usize = 4096;
/// One Raft tick.
const TICK: Duration = Duration::from_millis(100);
/// Ticks without a heartbeat before a follower campaigns (1 to 2 s, randomized by raft-rs).
const ELECTION_TICKS: usize = 10;
/// Ticks between the leader's heartbeats.
const HEARTBEAT_TICKS: usize = 3;
/// How long a proposal or read waits for a leader before its caller gets a timeout.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Encodes who proposed an entry: (node, sequence number).
fn proposal_context(node: u64, seq: u64) -> Vec<u8> {
    let mut c = node.to_be_bytes().to_vec();
    c.extend_from_slice(&seq.to_be_bytes());
    c
}

/// Most commands one log entry carries.
const MAX_BATCH_COMMANDS: usize = 256;
/// Most command bytes one log entry carries.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The context of an entry carrying several commands: the proposer, then each command's
/// sequence number. Never 16 bytes long, so it is never taken for a single command's.
fn batch_context(node: u64, seqs: &[u64]) -> Vec<u8> {
    let mut c = Vec::with_capacity(12 + 8 * seqs.len());
    c.extend_from_slice(&node.to_be_bytes());
    c.extend_from_slice(&(seqs.len() as u32).to_be_bytes());
    for seq in seqs {
        c.extend_from_slice(&seq.to_be_bytes());
    }
    c
}

/// The proposer and sequence numbers of a batch entry's context.
fn batch_sequences(context: &[u8]) -> Option<(u64, Vec<u64>)> {
    let node = u64::from_be_bytes(context.get(..8)?.try_into().ok()?);
    let count = u32::from_be_bytes(context.get(8..12)?.try_into().ok()?) as usize;
    if count < 2 || context.len() != 12 + 8 * count {
        return None;
    }
    let seqs = context[12..].chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes"))).collect();
    Some((node, seqs))
}

/// Several commands as one entry's data: each as a 4-byte length and its bytes.
fn encode_batch(commands: &[&[u8]]) -> Vec<u8> {
    let mut data = Vec::with_capacity(commands.iter().map(|c| c.len() + 4).sum());
    for c in commands {
        data.extend_from_slice(&(c.len() as u32).to_be_bytes());
        data.extend_from_slice(c);
    }
    data
}

/// The commands of a batch entry; `None` when the data is cut short.
fn decode_batch(mut data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
        out.push(data.get(4..4 + len)?);
        data = &data[4 + len..];
    }
    Some(out)
}

/// The sequence number of an entry this node proposed.
fn own_sequence(context: &[u8], node: u64) -> Option<u64> {
    proposer_sequence(context).filter(|(who, _)| *who == node).map(|(_, seq)| seq)
}

/// A single-node membership change in the joint-consensus form raft-rs applies.
fn conf_change_v2(mut c: ConfChange) -> ConfChangeV2 {
    let mut single = ConfChangeSingle::default();
    single.set_change_type(c.get_change_type());
    single.node_id = c.node_id;
    let mut v2 = ConfChangeV2::default();
    v2.mut_changes().push(single);
    v2.set_context(c.take_context());
    v2
}

/// Replays commands a single-member log written before Raft left unapplied, then removes
/// them: those entries are raw commands, not Raft entries.
fn replay_pre_raft_log<S: StateMachine>(store: &Store, group: u32, state: &S) -> Result<(), StoreError> {
    let applied = raft_log::stored_applied(store, group)?;
    for (key, command) in store.scan_prefix(Table::GroupLog, &group.to_be_bytes())? {
        let index = u64::from_be_bytes(key[4..12].try_into().unwrap_or_default());
        let mut writes = Batch::new();
        if index > applied {
            state.apply(index, &command, &mut writes);
            writes.put(Table::GroupState, raft_log::applied_key(group), index.to_be_bytes().to_vec());
        }
        writes.delete(Table::GroupLog, key);
        store.write_now(writes)?;
    }
    Ok(())
}

impl<S: StateMachine> Group<S> {
    /// Opens group `id` on a node alone in its cluster; see [`Group::open_member`].
    pub fn open(store: Arc<Store>, id: u32, name: &str, state: S) -> Result<Group<S>, StoreError> {
        Group::open_member(store, id, name, state, &Member::single())
    }

    /// Opens this node's member of group `id` over `store`, applying any committed entries a
    /// crash left unapplied, and starts its thread. `name` names the thread (`group-meta`,
    /// `group-shard-3`).
    pub fn open_member(
        store: Arc<Store>,
        id: u32,
        name: &str,
        state: S,
        member: &Member,
    ) -> Result<Group<S>, StoreError> {
        let state = Arc::new(state);
        if store.get(Table::GroupState, &[&id.to_be_bytes()[..], b"conf"].concat())?.is_none() {
            replay_pre_raft_log(&store, id, &*state)?;
        }
        let applied = Arc::new(AtomicU64::new(raft_log::stored_applied(&store, id)?));
        let applied_proposals = match store.get(Table::GroupState, &applied_proposals_key(id))? {
            None => Applied::default(),
            Some(bytes) => Applied::decode(&bytes).ok_or_else(|| {
                StoreError::Corrupt(format!("group {name}: the applied-proposals record cannot be decoded"))
            })?,
        };
        // Numbers never reused: above the clock in microseconds and above any applied before.
        let now_micros =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let next_seq = now_micros.max(applied_proposals.high(member.id));
        let applied_proposals = Arc::new(Mutex::new(applied_proposals));
        let (snapshot_state, snapshot_record) = (state.clone(), applied_proposals.clone());
        let (log, init) = LogStore::load(
            &store,
            id,
            &member.initial_voters,
            applied.clone(),
            Box::new(move || dedup::wrap_snapshot(&snapshot_record.lock(), &snapshot_state.snapshot())),
        )?;
        store.write_now(init)?;
        let status = Arc::new(Mutex::new(GroupStatus { group: id, name: name.to_string(), ..Default::default() }));
        let (tx, rx) = crossbeam_channel::unbounded();
        let step_tx = tx.clone();
        member.inbox.register(
            id,
            Arc::new(move |msg| {
                let _ = step_tx.send(Op::Step(Box::new(msg)));
            }),
        );
        let config = raft::Config {
            id: member.id,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            applied: applied.load(Ordering::SeqCst),
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        config.validate().map_err(|e| StoreError::Corrupt(format!("raft config: {e}")))?;
        let logger = crate::raft_logger::for_group(name);
        let raw = RawNode::new(&config, log, &logger).map_err(|e| StoreError::Corrupt(format!("raft state: {e}")))?;
        let worker = Worker {
            group: id,
            node: member.id,
            raw,
            state: state.clone(),
            store: store.clone(),
            transport: member.transport.clone(),
            on_change: member.on_change.clone(),
            compact_above: member.compact_log_above.max(2),
            applied,
            status: status.clone(),
            next_seq,
            proposals: BTreeMap::new(),
            waiting: VecDeque::new(),
            reads: VecDeque::new(),
            in_raft: BTreeMap::new(),
            sent_to: raft::INVALID_ID,
            applied_proposals,
            applied_proposals_dirty: false,
            retried: 0,
            failed: [0; 5],
        };
        let worker = thread::Builder::new()
            .name(format!("group-{name}"))
            .spawn(move || worker.run(&rx))
            .expect("spawning a group thread");
        Ok(Group { id, state, status, inbox: member.inbox.clone(), tx: Some(tx), worker: Some(worker) })
    }

    /// The state machine, for reads that may lag behind proposals still in flight (on a
    /// cluster member, behind the leader). Use [`Group::read`] when the read must see every
    /// write acknowledged before it.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// What this member knows about the group now.
    pub fn status(&self) -> GroupStatus {
        self.status.lock().clone()
    }

    fn send(&self, op: Op<S>) -> Result<(), Op<S>> {
        match &self.tx {
            Some(tx) => tx.send(op).map_err(|e| e.into_inner()),
            None => Err(op),
        }
    }

    /// Proposes `command`; `done` runs on the group's thread with the state machine's
    /// output once the command is committed and applied, in log order (so responses sent
    /// from `done` leave in the order the commands took effect).
    pub fn propose(&self, command: Vec<u8>, done: Done<S::Output>) {
        if let Err(Op::Propose(_, done)) = self.send(Op::Propose(command, done)) {
            done(Err(GroupError::Stopped));
        }
    }

    /// [`Group::propose`] for async callers.
    pub fn propose_wait(&self, command: Vec<u8>) -> impl Future<Output = Result<S::Output, GroupError>> + use<S> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.propose(
            command,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        async move { rx.await.unwrap_or(Err(GroupError::Stopped)) }
    }

    /// Runs `f` on the group's thread, on the state after every write acknowledged before
    /// this call and every proposal this member made before it has been applied: a
    /// linearizable read. `f` runs in log order with the `done` callbacks of proposals, so
    /// what it sends leaves in order with their responses.
    pub fn query(&self, f: impl FnOnce(Result<&S, GroupError>) + Send + 'static) {
        if let Err(Op::Read(f)) = self.send(Op::Read(Box::new(f))) {
            f(Err(GroupError::Stopped));
        }
    }

    /// [`Group::query`] for async callers.
    pub fn read<R, F>(&self, f: F) -> impl Future<Output = Result<R, GroupError>> + use<S, R, F>
    where
        R: Send + 'static,
        F: FnOnce(&S) -> R + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.query(move |s| {
            let _ = tx.send(s.map(f));
        });
        async move { rx.await.unwrap_or(Err(GroupError::Stopped)) }
    }

    /// A planned stop: when this member leads the group, hands leadership to the most
    /// caught-up other voter and waits (at most `within`) until it has taken over, so that
    /// commands under way are not lost with the leader. True when this member no longer
    /// leads (or never did).
    pub async fn hand_over_leadership(&self, within: Duration) -> bool {
        let me = |s: &GroupStatus| s.role == "leader";
        if !me(&self.status()) {
            return true;
        }
        let deadline = Instant::now() + within;
        let mut asked = Instant::now() - TICK * 10;
        while Instant::now() < deadline {
            if !me(&self.status()) {
                return true;
            }
            // Asked again now and then: a transfer the target could not finish (it was
            // behind, or an election intervened) is abandoned by raft-rs after an election timeout.
            if asked.elapsed() >= TICK * 10 && self.send(Op::TransferLeadership).is_err() {
                return false;
            }
            if asked.elapsed() >= TICK * 10 {
                asked = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        !me(&self.status())
    }

    /// Adds or removes a voter; answers once the change is committed and applied here.
    /// `context` reaches every member's [`Member::on_change`] (a new node's address).
    pub fn change_members(
        &self,
        change: MemberChange,
        context: Vec<u8>,
    ) -> impl Future<Output = Result<(), GroupError>> + use<S> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), GroupError>>();
        let done: Done<()> = Box::new(move |r| {
            let _ = tx.send(r);
        });
        if let Err(Op::Change(_, _, done)) = self.send(Op::Change(change, context, done)) {
            done(Err(GroupError::Stopped));
        }
        async move { rx.await.unwrap_or(Err(GroupError::Stopped)) }
    }
}

/// What code that walks all of a node's groups needs of each, whatever its state machine:
/// status, leadership handover, membership changes.
pub trait AnyGroup {
    /// [`Group::status`].
    fn status(&self) -> GroupStatus;
    /// [`Group::hand_over_leadership`].
    fn hand_over_leadership(&self, within: Duration) -> Pin<Box<dyn Future<Output = bool> + '_>>;
    /// [`Group::change_members`].
    fn change_members(
        &self,
        change: MemberChange,
        context: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<(), GroupError>>>>;
}

impl<S: StateMachine> AnyGroup for Group<S> {
    fn status(&self) -> GroupStatus {
        Group::status(self)
    }
    fn hand_over_leadership(&self, within: Duration) -> Pin<Box<dyn Future<Output = bool> + '_>> {
        Box::pin(Group::hand_over_leadership(self, within))
    }
    fn change_members(
        &self,
        change: MemberChange,
        context: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<(), GroupError>>>> {
        Box::pin(Group::change_members(self, change, context))
    }
}

/// A proposal waiting for its entry to be applied here.
enum Pending<O> {
    Command(Done<O>, Instant),
    Change(Done<()>, Instant),
}

impl<O> Pending<O> {
    fn deadline(&self) -> Instant {
        match self {
            Pending::Command(_, d) | Pending::Change(_, d) => *d,
        }
    }

    fn fail(self, e: GroupError) {
        match self {
            Pending::Command(done, _) => done(Err(e)),
            Pending::Change(done, _) => done(Err(e)),
        }
    }
}

/// A proposal not yet accepted by Raft (no leader known yet).
enum Unsent {
    Command(Vec<u8>),
    Change(ConfChange),
}

/// Reads that arrived together and share one ReadIndex request.
struct PendingRead<S: StateMachine> {
    seq: u64,
    index: Option<u64>,
    asked: Instant,
    deadline: Instant,
    queries: Vec<Query<S>>,
}

/// The group thread's state.
struct Worker<S: StateMachine> {
    group: u32,
    node: u64,
    raw: RawNode<LogStore>,
    state: Arc<S>,
    store: Arc<Store>,
    transport: Arc<dyn Transport>,
    on_change: Option<crate::transport::OnMemberChange>,
    /// Entries kept before compacting; a tenth of them stay after, for briefly slow followers.
    compact_above: usize,
    applied: Arc<AtomicU64>,
    status: Arc<Mutex<GroupStatus>>,
    next_seq: u64,
    proposals: BTreeMap<u64, Pending<S::Output>>,
    waiting: VecDeque<(u64, Unsent)>,
    reads: VecDeque<PendingRead<S>>,
    /// Proposals handed to Raft (with the command, to propose again), and the leader they went to.
    in_raft: BTreeMap<u64, InRaft>,
    sent_to: u64,
    /// The proposals this group has applied, by proposer (replicated: see `dedup`).
    applied_proposals: Arc<Mutex<Applied>>,
    /// `applied_proposals` changed since it was last written.
    applied_proposals_dirty: bool,
    /// Commands proposed again, and proposals failed by kind (for the status).
    retried: u64,
    failed: [u64; 5],
}

/// A proposal Raft has: its command (none for a membership change) and when it was sent.
struct InRaft {
    command: Option<Vec<u8>>,
    sent: Instant,
}

/// A command handed to Raft that is neither applied nor known lost after this long is
/// proposed again (its message to the leader may have been lost); the applied-proposals
/// record makes the second copy a no-op if the first one lands too.
const PROPOSE_AGAIN_AFTER: Duration = Duration::from_secs(2);

/// Where a group's applied-proposals record is kept.
fn applied_proposals_key(group: u32) -> Vec<u8> {
    [&group.to_be_bytes()[..], b"applied-proposals"].concat()
}

/// The proposer and sequence number of a single command's context.
fn proposer_sequence(context: &[u8]) -> Option<(u64, u64)> {
    let (who, seq) = context.split_at_checked(8)?;
    Some((u64::from_be_bytes(who.try_into().ok()?), u64::from_be_bytes(seq.try_into().ok()?)))
}

impl<S: StateMachine> Worker<S> {
    fn run(mut self, rx: &Receiver<Op<S>>) {
        let voters = self.raw.store().conf().voters.clone();
        if voters == [self.node] {
            // Alone in the group: no need to wait an election timeout for votes that cannot come.
            let _ = self.raw.campaign();
        }
        let mut next_tick = Instant::now() + TICK;
        loop {
            let first = match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut queries = Vec::new();
            for op in first.into_iter().chain(rx.try_iter().take(MAX_DRAIN)) {
                self.handle(op, &mut queries);
            }
            if !queries.is_empty() {
                self.start_read(queries);
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + TICK;
                self.raw.tick();
                self.on_tick(now);
            }
            self.send_waiting();
            // Before `on_ready` answers proposers: whoever got an answer from this
            // iteration sees the role and leader it was answered under.
            self.publish_status();
            if let Err(e) = self.on_ready() {
                tracing::error!(group = self.group, error = %e, "the group log could not be written; the group stops");
                self.fail_all(GroupError::Storage(Arc::new(e)));
                return;
            }
            self.release_reads();
            self.propose_again_on_leader_change();
            self.publish_status();
        }
        // Stopping: answer what can still be answered locally, fail the rest.
        let _ = self.on_ready();
        self.release_reads();
        self.fail_all(GroupError::Stopped);
    }

    fn handle(&mut self, op: Op<S>, queries: &mut Vec<Query<S>>) {
        match op {
            Op::Propose(command, done) => {
                self.next_seq += 1;
                self.proposals.insert(self.next_seq, Pending::Command(done, Instant::now() + ANSWER_WITHIN));
                self.waiting.push_back((self.next_seq, Unsent::Command(command)));
            }
            Op::Change(change, context, done) => {
                self.next_seq += 1;
                let (change_type, node_id) = match change {
                    MemberChange::Add(n) => (ConfChangeType::AddNode, n),
                    MemberChange::Remove(n) => (ConfChangeType::RemoveNode, n),
                };
                let cc = ConfChange { change_type, node_id, context: context.into(), ..Default::default() };
                self.proposals.insert(self.next_seq, Pending::Change(done, Instant::now() + ANSWER_WITHIN));
                self.waiting.push_back((self.next_seq, Unsent::Change(cc)));
            }
            Op::Read(query) => queries.push(query),
            Op::TransferLeadership => self.transfer_leadership(),
            Op::Step(msg) => {
                if let Err(e) = self.raw.step(*msg) {
                    tracing::debug!(group = self.group, error = %e, "a raft message was not taken");
                }
            }
        }
    }

    /// On the leader: asks the voter that has replicated the most of the log to take over
    /// (raft-rs sends it what it lacks, then tells it to campaign at once).
    fn transfer_leadership(&mut self) {
        if self.raw.raft.state != StateRole::Leader {
            return;
        }
        let me = self.node;
        let voters = self.raw.store().conf().voters.clone();
        let best = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != me && voters.contains(id))
            .max_by_key(|(id, pr)| (pr.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id);
        if let Some(to) = best {
            tracing::info!(group = self.group, to, "handing leadership over before stopping");
            self.raw.transfer_leader(to);
        }
    }

    /// Takes the commands at the front of the queue that fit in one entry, when this
    /// machine batches and there are at least two.
    fn take_batch(&mut self) -> Option<Vec<(u64, Unsent)>> {
        if !self.state.batches_commands() {
            return None;
        }
        let mut bytes = 0;
        let mut count = 0;
        for (seq, unsent) in &self.waiting {
            let Unsent::Command(data) = unsent else { break };
            if count == MAX_BATCH_COMMANDS || (count > 0 && bytes + data.len() > MAX_BATCH_BYTES) {
                break;
            }
            if self.proposals.contains_key(seq) {
                bytes += data.len();
                count += 1;
            }
        }
        if count < 2 {
            return None;
        }
        let mut batch = Vec::with_capacity(count);
        while batch.len() < count {
            let (seq, unsent) = self.waiting.pop_front().expect("counted above");
            if self.proposals.contains_key(&seq) {
                batch.push((seq, unsent));
            }
        }
        Some(batch)
    }

    /// Proposes several commands as one entry; false when Raft dropped it (they are queued
    /// again for the next round).
    fn propose_batch(&mut self, batch: Vec<(u64, Unsent)>) -> bool {
        let seqs: Vec<u64> = batch.iter().map(|(seq, _)| *seq).collect();
        let commands: Vec<&[u8]> = batch
            .iter()
            .filter_map(|(_, u)| match u {
                Unsent::Command(data) => Some(data.as_slice()),
                Unsent::Change(_) => None,
            })
            .collect();
        match self.raw.propose(batch_context(self.node, &seqs), encode_batch(&commands)) {
            Ok(()) => {
                let sent = Instant::now();
                for (seq, unsent) in batch {
                    if let Unsent::Command(data) = unsent {
                        self.in_raft.insert(seq, InRaft { command: Some(data), sent });
                    }
                }
                self.sent_to = self.raw.raft.leader_id;
                true
            }
            Err(raft::Error::ProposalDropped) => {
                for item in batch.into_iter().rev() {
                    self.waiting.push_front(item);
                }
                false
            }
            Err(e) => {
                for seq in seqs {
                    if let Some(p) = self.proposals.remove(&seq) {
                        self.failed[2] += 1;
                        p.fail(GroupError::Refused(e.to_string()));
                    }
                }
                true
            }
        }
    }

    /// Hands waiting proposals to Raft, in order, once a leader is known.
    fn send_waiting(&mut self) {
        while self.raw.raft.leader_id != raft::INVALID_ID {
            if let Some(batch) = self.take_batch() {
                if !self.propose_batch(batch) {
                    return;
                }
                continue;
            }
            let Some((seq, unsent)) = self.waiting.pop_front() else { return };
            if !self.proposals.contains_key(&seq) {
                continue; // timed out while waiting
            }
            let context = proposal_context(self.node, seq);
            let result = match &unsent {
                Unsent::Command(data) => self.raw.propose(context, data.clone()),
                Unsent::Change(cc) => self.raw.propose_conf_change(context, cc.clone()),
            };
            match result {
                Ok(()) => {
                    let command = match unsent {
                        Unsent::Command(data) => Some(data),
                        Unsent::Change(_) => None,
                    };
                    self.in_raft.insert(seq, InRaft { command, sent: Instant::now() });
                    self.sent_to = self.raw.raft.leader_id;
                }
                Err(raft::Error::ProposalDropped) => {
                    // A leader transfer or a pending membership change: try again next round.
                    self.waiting.push_front((seq, unsent));
                    return;
                }
                Err(e) => {
                    if let Some(p) = self.proposals.remove(&seq) {
                        self.failed[2] += 1;
                        p.fail(GroupError::Refused(e.to_string()));
                    }
                }
            }
        }
    }

    fn start_read(&mut self, queries: Vec<Query<S>>) {
        self.next_seq += 1;
        let now = Instant::now();
        let seq = self.next_seq;
        self.reads.push_back(PendingRead { seq, index: None, asked: now, deadline: now + ANSWER_WITHIN, queries });
        self.raw.read_index(seq.to_be_bytes().to_vec());
    }

    fn on_tick(&mut self, now: Instant) {
        // Reads whose ReadIndex request went unanswered (no leader yet, a lost message) ask again.
        for read in self.reads.iter_mut().filter(|r| r.index.is_none() && now - r.asked >= TICK) {
            read.asked = now;
            self.raw.read_index(read.seq.to_be_bytes().to_vec());
        }
        let expired: Vec<u64> =
            self.proposals.iter().filter(|(_, p)| p.deadline() <= now).map(|(seq, _)| *seq).collect();
        for seq in expired {
            self.in_raft.remove(&seq);
            if let Some(p) = self.proposals.remove(&seq) {
                self.failed[0] += 1;
                p.fail(GroupError::Timeout(ANSWER_WITHIN));
            }
        }
        // Commands Raft has had for a while without an answer: their message may have been
        // lost on the way to the leader. Proposed again while a leader is known.
        if self.raw.raft.leader_id != raft::INVALID_ID {
            let stale: Vec<u64> = self
                .in_raft
                .iter()
                .filter(|(_, i)| i.command.is_some() && now.duration_since(i.sent) >= PROPOSE_AGAIN_AFTER)
                .map(|(seq, _)| *seq)
                .collect();
            let items: BTreeMap<u64, InRaft> =
                stale.into_iter().filter_map(|seq| self.in_raft.remove(&seq).map(|i| (seq, i))).collect();
            self.propose_again(items);
        }
        while self.reads.front().is_some_and(|r| r.deadline <= now) {
            if let Some(read) = self.reads.pop_front() {
                for q in read.queries {
                    q(Err(GroupError::Timeout(ANSWER_WITHIN)));
                }
            }
        }
    }

    fn send_messages(&mut self, messages: Vec<Message>) {
        for msg in messages {
            let (to, snapshot) = (msg.to, msg.get_msg_type() == MessageType::MsgSnapshot);
            self.transport.send(self.group, msg);
            if snapshot {
                // If the snapshot is lost, the follower's next rejection makes the leader send it again.
                self.raw.report_snapshot(to, SnapshotStatus::Finish);
            }
        }
    }

    /// Handles one raft-rs `Ready`: persist, send, apply, in the order raft-rs requires.
    fn on_ready(&mut self) -> Result<(), StoreError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut rd = self.raw.ready();
        self.send_messages(rd.take_messages());
        if !rd.snapshot().is_empty() {
            self.install_snapshot(rd.snapshot().clone())?;
        }
        for rs in rd.take_read_states() {
            let Ok(seq) = rs.request_ctx.as_slice().try_into().map(u64::from_be_bytes) else { continue };
            if let Some(read) = self.reads.iter_mut().find(|r| r.seq == seq) {
                read.index.get_or_insert(rs.index);
            }
        }
        self.apply_entries(rd.take_committed_entries())?;
        let mut batch = Batch::new();
        self.raw.mut_store().append(rd.entries(), &mut batch);
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state(hs, &mut batch);
        }
        if !batch.is_empty() {
            batch.set_durable();
            self.store.write_now(batch)?;
        }
        self.send_messages(rd.take_persisted_messages());
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            let mut batch = Batch::new();
            self.raw.mut_store().set_commit(commit, &mut batch);
            self.store.write_now(batch)?;
        }
        self.send_messages(light.take_messages());
        self.apply_entries(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.maybe_compact()
    }

    fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StoreError> {
        let index = snapshot.get_metadata().index;
        let mut writes = Batch::new();
        let (record, data) = dedup::unwrap_snapshot(&snapshot.data)
            .map_err(|e| StoreError::Corrupt(format!("snapshot at index {index}: {e}")))?;
        if let Err(e) = self.state.restore(data, &mut writes) {
            return Err(StoreError::Corrupt(format!("snapshot at index {index}: {e}")));
        }
        writes.put(Table::GroupState, applied_proposals_key(self.group), record.encode());
        *self.applied_proposals.lock() = record;
        self.applied_proposals_dirty = false;
        self.raw.mut_store().apply_snapshot(&snapshot, &mut writes);
        writes.put(Table::GroupState, raft_log::applied_key(self.group), index.to_be_bytes().to_vec());
        writes.set_durable();
        self.store.write_now(writes)?;
        self.applied.store(index, Ordering::SeqCst);
        self.state.after_restore();
        tracing::info!(group = self.group, index, bytes = snapshot.data.len(), "installed a snapshot from the leader");
        Ok(())
    }

    /// True when `who`'s proposal `seq` was applied before (a copy proposed again after its
    /// outcome was unknown): it is skipped. Otherwise records it as applied now.
    fn already_applied(&mut self, who: u64, seq: u64) -> bool {
        if who == self.node {
            self.in_raft.remove(&seq);
        }
        let mut record = self.applied_proposals.lock();
        if record.contains(who, seq) {
            tracing::debug!(
                group = self.group,
                proposer = who,
                seq,
                "a command proposed again was applied once already; skipped"
            );
            return true;
        }
        record.insert(who, seq);
        self.applied_proposals_dirty = true;
        false
    }

    /// Puts the applied-proposals record into `writes` when it changed: it is written with
    /// the applied index it belongs to.
    fn write_applied_proposals(&mut self, writes: &mut Batch) {
        if std::mem::take(&mut self.applied_proposals_dirty) {
            writes.put(Table::GroupState, applied_proposals_key(self.group), self.applied_proposals.lock().encode());
        }
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), StoreError> {
        let together = self.state.applies_from_memory();
        let mut writes = Batch::new();
        let mut answers: Vec<Box<dyn FnOnce()>> = Vec::new();
        let mut last = None;
        for entry in entries {
            let index = entry.index;
            let mut answer: Option<Box<dyn FnOnce()>> = None;
            let own = own_sequence(&entry.context, self.node).and_then(|seq| self.proposals.remove(&seq));
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => {}
                EntryType::EntryNormal if batch_sequences(&entry.context).is_some() => {
                    let (who, seqs) = batch_sequences(&entry.context).expect("checked by the guard");
                    let commands = decode_batch(&entry.data).unwrap_or_else(|| {
                        tracing::error!(group = self.group, index, "a cut-short batch entry was skipped");
                        Vec::new()
                    });
                    for (command, seq) in commands.into_iter().zip(seqs) {
                        if self.already_applied(who, seq) {
                            continue;
                        }
                        let mine = (who == self.node).then(|| self.proposals.remove(&seq)).flatten();
                        match mine {
                            Some(Pending::Command(done, _)) => {
                                let out = self.state.apply(index, command, &mut writes);
                                answers.push(Box::new(move || done(Ok(out))));
                            }
                            _ => self.state.apply_unobserved(index, command, &mut writes),
                        }
                    }
                }
                EntryType::EntryNormal => {
                    let retried =
                        proposer_sequence(&entry.context).is_some_and(|(who, seq)| self.already_applied(who, seq));
                    match own {
                        _ if retried => {}
                        Some(Pending::Command(done, _)) => {
                            let out = self.state.apply(index, &entry.data, &mut writes);
                            answer = Some(Box::new(move || done(Ok(out))));
                        }
                        _ => self.state.apply_unobserved(index, &entry.data, &mut writes),
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let change = if entry.get_entry_type() == EntryType::EntryConfChange {
                        ConfChange::parse_from_bytes(&entry.data).map(conf_change_v2)
                    } else {
                        ConfChangeV2::parse_from_bytes(&entry.data)
                    };
                    let result = match &change {
                        Ok(cc) => self.raw.apply_conf_change(cc).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match result {
                        Ok(conf) => {
                            tracing::info!(group = self.group, voters = ?conf.voters, "membership changed");
                            self.raw.mut_store().set_conf(conf, &mut writes);
                            if let (Some(hook), Ok(cc)) = (&self.on_change, &change) {
                                for single in cc.get_changes() {
                                    let change = match single.get_change_type() {
                                        ConfChangeType::RemoveNode => MemberChange::Remove(single.node_id),
                                        _ => MemberChange::Add(single.node_id),
                                    };
                                    hook(change, &cc.context);
                                }
                            }
                        }
                        Err(e) => tracing::warn!(group = self.group, error = %e, "a membership change was not applied"),
                    }
                    if let Some(Pending::Change(done, _)) = own {
                        answer = Some(Box::new(move || done(Ok(()))));
                    }
                }
            }
            writes.put(Table::GroupState, raft_log::applied_key(self.group), index.to_be_bytes().to_vec());
            answers.extend(answer);
            last = Some(index);
            // A membership change is written on its own: the conf state must be on disk
            // before anything that follows it is answered.
            let alone = !together || entry.get_entry_type() != EntryType::EntryNormal;
            if alone {
                self.write_applied_proposals(&mut writes);
                self.store.write_now(std::mem::take(&mut writes))?;
                self.state.after_write();
                self.applied.store(index, Ordering::SeqCst);
                for answer in answers.drain(..) {
                    answer();
                }
            }
        }
        // Written already, entry by entry, unless this machine applies rounds together.
        if let Some(index) = last.filter(|_| !writes.is_empty()) {
            self.write_applied_proposals(&mut writes);
            self.store.write_now(writes)?;
            self.state.after_write();
            self.applied.store(index, Ordering::SeqCst);
            for answer in answers {
                answer();
            }
        }
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<(), StoreError> {
        if self.raw.store().len() <= self.compact_above {
            return Ok(());
        }
        let keep = (self.compact_above / 10) as u64;
        let to = self.applied.load(Ordering::SeqCst).saturating_sub(keep);
        let mut batch = Batch::new();
        self.raw.mut_store().compact(to, &mut batch);
        self.store.write_now(batch)
    }

    /// A command forwarded to a leader that has since lost its place may be lost with it:
    /// it is proposed again to the new leader (a copy that lands twice is applied once).
    /// A membership change fails instead (outcome unknown): its caller checks the voters.
    fn propose_again_on_leader_change(&mut self) {
        if self.in_raft.is_empty() || self.raw.raft.leader_id == self.sent_to {
            return;
        }
        let all = std::mem::take(&mut self.in_raft);
        self.propose_again(all);
    }

    /// Queues `items` again at the front of the waiting proposals, in their order.
    fn propose_again(&mut self, items: BTreeMap<u64, InRaft>) {
        for (seq, item) in items.into_iter().rev() {
            match item.command {
                Some(command) if self.proposals.contains_key(&seq) => {
                    self.retried += 1;
                    self.waiting.push_front((seq, Unsent::Command(command)));
                }
                Some(_) => {}
                None => {
                    if let Some(p) = self.proposals.remove(&seq) {
                        self.failed[1] += 1;
                        p.fail(GroupError::LeaderChanged);
                    }
                }
            }
        }
    }

    /// Runs reads whose index is applied and that no earlier own proposal still precedes.
    fn release_reads(&mut self) {
        let applied = self.applied.load(Ordering::SeqCst);
        let oldest_proposal = self.proposals.keys().next().copied().unwrap_or(u64::MAX);
        while let Some(read) = self.reads.front() {
            let ready = read.index.is_some_and(|i| i <= applied) && oldest_proposal > read.seq;
            if !ready {
                return;
            }
            if let Some(read) = self.reads.pop_front() {
                for q in read.queries {
                    q(Ok(&*self.state));
                }
            }
        }
    }

    fn publish_status(&self) {
        let raft = &self.raw.raft;
        let role = match raft.state {
            StateRole::Leader => "leader",
            StateRole::Follower => "follower",
            StateRole::Candidate => "candidate",
            StateRole::PreCandidate => "pre-candidate",
        };
        let matched = if raft.state == StateRole::Leader {
            let mut m: Vec<(u64, u64)> = raft.prs().iter().map(|(id, p)| (*id, p.matched)).collect();
            m.sort_unstable();
            m
        } else {
            Vec::new()
        };
        let mut s = self.status.lock();
        s.leader = raft.leader_id;
        s.term = raft.term;
        s.role = role;
        s.commit = raft.raft_log.committed;
        s.applied = self.applied.load(Ordering::SeqCst);
        s.voters = self.raw.store().conf().voters.clone();
        s.voters.sort_unstable();
        s.matched = matched;
        s.proposals_retried = self.retried;
        s.proposals_failed = self.failed;
    }

    fn fail_all(&mut self, e: GroupError) {
        for (_, p) in std::mem::take(&mut self.proposals) {
            self.failed[e.kind_index()] += 1;
            p.fail(e.clone());
        }
        for read in std::mem::take(&mut self.reads) {
            for q in read.queries {
                q(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::LocalNetwork;

    /// A counter that adds each command's byte to a total stored under one key.
    #[derive(Default)]
    struct Sum(Mutex<u64>);

    impl StateMachine for Sum {
        type Output = u64;
        fn apply(&self, _index: u64, command: &[u8], writes: &mut Batch) -> u64 {
            let mut total = self.0.lock();
            *total += u64::from(command[0]);
            writes.put(Table::Meta, b"sum".to_vec(), total.to_be_bytes().to_vec());
            *total
        }
        fn snapshot(&self) -> Vec<u8> {
            self.0.lock().to_be_bytes().to_vec()
        }
        fn restore(&self, data: &[u8], writes: &mut Batch) -> Result<(), String> {
            let total = u64::from_be_bytes(data.try_into().map_err(|_| "not 8 bytes".to_string())?);
            *self.0.lock() = total;
            writes.put(Table::Meta, b"sum".to_vec(), data.to_vec());
            Ok(())
        }
    }

    fn stored_sum(store: &Store) -> u64 {
        store.get(Table::Meta, b"sum").unwrap().map(|v| u64::from_be_bytes(v.try_into().unwrap())).unwrap_or(0)
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
    }

    /// Proposes the commands 1..=n all at once and waits for every answer, in order.
    fn propose_one_to<S: StateMachine<Output = u64>>(group: &Group<S>, n: u8) -> Vec<u64> {
        block_on(async {
            let waits: Vec<_> = (1..=n).map(|i| group.propose_wait(vec![i])).collect();
            let mut out = Vec::new();
            for w in waits {
                out.push(w.await.unwrap());
            }
            out
        })
    }

    /// What a [`Sum`] answers to the commands 1..=n in order.
    fn running_totals(n: u64) -> Vec<u64> {
        (1..=n).scan(0, |s, i| Some(*s + i).inspect(|v| *s = *v)).collect()
    }

    #[test]
    fn proposals_apply_in_order_and_answer_their_proposer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let group = Group::open(store.clone(), 1, "t", Sum::default()).unwrap();
        assert_eq!(propose_one_to(&group, 100), running_totals(100));
        assert_eq!(stored_sum(&store), 5050);
        let status = group.status();
        assert_eq!((status.role, status.leader, status.voters), ("leader", 1, vec![1]));
    }

    /// [`Sum`] that lets commands share entries and applies from memory.
    #[derive(Default)]
    struct BatchedSum(Sum);

    impl StateMachine for BatchedSum {
        type Output = u64;
        fn apply(&self, index: u64, command: &[u8], writes: &mut Batch) -> u64 {
            self.0.apply(index, command, writes)
        }
        fn snapshot(&self) -> Vec<u8> {
            self.0.snapshot()
        }
        fn restore(&self, data: &[u8], writes: &mut Batch) -> Result<(), String> {
            self.0.restore(data, writes)
        }
        fn applies_from_memory(&self) -> bool {
            true
        }
        fn batches_commands(&self) -> bool {
            true
        }
    }

    #[test]
    fn commands_proposed_together_share_entries_and_still_answer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let group = Group::open(store.clone(), 1, "t", BatchedSum::default()).unwrap();
        let before = group.status().commit;
        assert_eq!(propose_one_to(&group, 200), running_totals(200));
        assert_eq!(stored_sum(&store), 20100);
        let entries = group.status().commit - before;
        assert!(entries < 200, "200 commands took {entries} entries: none were batched");
    }

    #[test]
    fn batch_contexts_and_data_round_trip_and_are_never_taken_for_single_ones() {
        let context = batch_context(3, &[7, 9, 12]);
        assert_eq!(batch_sequences(&context), Some((3, vec![7, 9, 12])));
        assert_eq!(own_sequence(&context, 3), None);
        assert_eq!(batch_sequences(&proposal_context(3, 7)), None);
        let data = encode_batch(&[b"ab", b"", b"cde"]);
        assert_eq!(decode_batch(&data), Some(vec![&b"ab"[..], b"", b"cde"]));
        assert_eq!(decode_batch(&data[..data.len() - 1]), None);
    }

    #[test]
    fn a_read_sees_every_earlier_proposal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let group = Group::open(store, 1, "t", Sum::default()).unwrap();
        for _ in 0..50 {
            group.propose(vec![2], Box::new(|_| {}));
        }
        let seen = block_on(group.read(|s: &Sum| *s.0.lock())).unwrap();
        assert_eq!(seen, 100);
    }

    #[test]
    fn the_log_and_state_survive_a_restart_and_continue() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(Store::open(dir.path()).unwrap());
            let group = Group::open(store.clone(), 7, "t", Sum::default()).unwrap();
            block_on(group.propose_wait(vec![5])).unwrap();
            block_on(group.propose_wait(vec![6])).unwrap();
        }
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let applied = raft_log::stored_applied(&store, 7).unwrap();
        let group = Group::open(store.clone(), 7, "t", Sum(Mutex::new(stored_sum(&store)))).unwrap();
        assert_eq!(block_on(group.propose_wait(vec![1])).unwrap(), 12);
        assert!(raft_log::stored_applied(&store, 7).unwrap() > applied, "new entries continue the log");
    }

    #[test]
    fn commands_a_pre_raft_log_left_unapplied_are_applied_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut b = Batch::new();
        b.put(Table::GroupState, raft_log::applied_key(7), 1u64.to_be_bytes().to_vec());
        b.put(Table::GroupLog, raft_log::entry_key(7, 2), vec![10]);
        b.put(Table::GroupLog, raft_log::entry_key(7, 3), vec![20]);
        b.put(Table::GroupLog, raft_log::entry_key(8, 1), vec![99]);
        store.write_now(b).unwrap();
        let group = Group::open(store.clone(), 7, "t", Sum::default()).unwrap();
        assert_eq!(stored_sum(&store), 30, "group 8's entry is not group 7's");
        assert_eq!(block_on(group.propose_wait(vec![1])).unwrap(), 31);
    }

    #[test]
    fn a_stopped_group_refuses_proposals() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut group = Group::open(store, 1, "t", Sum::default()).unwrap();
        drop(group.tx.take());
        assert!(matches!(block_on(group.propose_wait(vec![1])), Err(GroupError::Stopped)));
        assert!(matches!(block_on(group.read(|_| ())), Err(GroupError::Stopped)));
    }

    /// Three members of group 1 on one in-process network, each with its own store.
    struct Trio {
        network: Arc<LocalNetwork>,
        _dirs: Vec<tempfile::TempDir>,
        groups: Vec<Group<Sum>>,
    }

    fn trio() -> Trio {
        let network = LocalNetwork::new();
        let mut dirs = Vec::new();
        let mut groups = Vec::new();
        for id in 1..=3u64 {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Store::open(dir.path()).unwrap());
            let member = network.member(id, &[1, 2, 3]);
            groups.push(Group::open_member(store, 1, &format!("n{id}"), Sum::default(), &member).unwrap());
            dirs.push(dir);
        }
        Trio { network, _dirs: dirs, groups }
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn leader(groups: &[Group<Sum>]) -> Option<usize> {
        groups.iter().position(|g| g.status().role == "leader")
    }

    #[test]
    fn three_members_elect_a_leader_and_any_member_takes_writes() {
        let t = trio();
        wait_for("a leader", || leader(&t.groups).is_some());
        let follower = (leader(&t.groups).unwrap() + 1) % 3;
        assert_eq!(block_on(t.groups[follower].propose_wait(vec![4])).unwrap(), 4);
        for g in &t.groups {
            assert_eq!(block_on(g.read(|s: &Sum| *s.0.lock())).unwrap(), 4, "a linearizable read on every member");
        }
    }

    #[test]
    fn losing_the_leader_elects_another_and_nothing_acknowledged_is_lost() {
        let t = trio();
        wait_for("a leader", || leader(&t.groups).is_some());
        let old = leader(&t.groups).unwrap();
        for _ in 0..10 {
            block_on(t.groups[old].propose_wait(vec![1])).unwrap();
        }
        t.network.isolate(old as u64 + 1);
        let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
        let started = Instant::now();
        wait_for("a new leader", || others.iter().any(|i| t.groups[*i].status().role == "leader"));
        assert!(started.elapsed() < Duration::from_secs(5), "election took {:?}", started.elapsed());
        assert_eq!(block_on(t.groups[others[0]].propose_wait(vec![1])).unwrap(), 11);
        t.network.heal(old as u64 + 1);
        wait_for("the old leader to catch up", || *t.groups[old].state().0.lock() == 11);
    }

    #[test]
    fn commands_under_way_when_the_leader_is_lost_are_answered_and_applied_once() {
        let t = trio();
        wait_for("a leader", || leader(&t.groups).is_some());
        let old = leader(&t.groups).unwrap();
        let from = (old + 1) % 3;
        let network = t.network.clone();
        // The leader is cut off while a follower's commands are on their way to it: some
        // reached it (and maybe the others), some did not. Each is proposed again to the
        // next leader; none may fail and none may count twice.
        let cut = thread::spawn(move || {
            thread::sleep(Duration::from_millis(3));
            network.isolate(old as u64 + 1);
        });
        let answers = block_on(async {
            let waits: Vec<_> = (0..300).map(|_| t.groups[from].propose_wait(vec![1])).collect();
            let mut out = Vec::new();
            for w in waits {
                out.push(w.await);
            }
            out
        });
        cut.join().unwrap();
        let failed: Vec<_> = answers.iter().filter(|a| a.is_err()).collect();
        assert!(failed.is_empty(), "{} of 300 failed, e.g. {:?}", failed.len(), failed.first());
        let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
        for i in &others {
            wait_for("the total on a member", || *t.groups[*i].state().0.lock() == 300);
        }
        t.network.heal(old as u64 + 1);
        wait_for("the old leader to agree", || *t.groups[old].state().0.lock() == 300);
        thread::sleep(Duration::from_millis(300));
        for g in &t.groups {
            assert_eq!(*g.state().0.lock(), 300, "every command applied exactly once");
        }
    }

    #[test]
    fn a_member_far_behind_catches_up_from_a_snapshot() {
        let t = trio();
        wait_for("a leader", || leader(&t.groups).is_some());
        let behind = (leader(&t.groups).unwrap() + 1) % 3;
        t.network.isolate(behind as u64 + 1);
        let writes = (crate::transport::COMPACT_LOG_ABOVE + 100) as u64;
        let mut acknowledged = 0u64;
        // Under load the leader may change; proposals it dropped answer "outcome unknown",
        // so keep writing to whoever leads until the log is long enough.
        while *t.groups[(behind + 1) % 3].state().0.lock() < writes {
            wait_for("a leader", || leader(&t.groups).is_some_and(|l| l != behind));
            let lead = leader(&t.groups).unwrap();
            let (tx, rx) = crossbeam_channel::unbounded();
            for _ in 0..2000 {
                let tx = tx.clone();
                t.groups[lead].propose(vec![1], Box::new(move |r| tx.send(r.is_ok()).unwrap()));
            }
            acknowledged += rx.iter().take(2000).filter(|ok| *ok).count() as u64;
        }
        t.network.heal(behind as u64 + 1);
        let total = || *t.groups[(behind + 1) % 3].state().0.lock();
        wait_for("the snapshot", || *t.groups[behind].state().0.lock() == total());
        assert!(total() >= acknowledged, "an acknowledged write was lost");
        // The status is published after the round that applied the snapshot.
        wait_for("the status", || t.groups[behind].status().applied > crate::transport::COMPACT_LOG_ABOVE as u64);
    }

    #[test]
    fn a_new_member_joins_and_an_old_one_leaves() {
        let t = trio();
        wait_for("a leader", || leader(&t.groups).is_some());
        let lead = leader(&t.groups).unwrap();
        block_on(t.groups[lead].propose_wait(vec![3])).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let fourth = Group::open_member(store, 1, "n4", Sum::default(), &t.network.member(4, &[])).unwrap();
        block_on(t.groups[lead].change_members(MemberChange::Add(4), Vec::new())).unwrap();
        wait_for("the new member to catch up", || *fourth.state().0.lock() == 3);
        wait_for("four voters", || fourth.status().voters == vec![1, 2, 3, 4]);
        let leaving = (lead + 1) % 3;
        block_on(t.groups[lead].change_members(MemberChange::Remove(leaving as u64 + 1), Vec::new())).unwrap();
        assert_eq!(block_on(fourth.propose_wait(vec![1])).unwrap(), 4);
        assert!(!t.groups[lead].status().voters.contains(&(leaving as u64 + 1)));
    }
}
