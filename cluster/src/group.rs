//! Replicated state machines (DESIGN section 4): every write to registry, shadow and rule
//! state is a command proposed to the [`Group`] that owns it, made durable in the group's
//! log, and then applied, in log order, by the group's [`StateMachine`].
//!
//! Today a group has one member, this node: a proposal is committed once its log entry is
//! fsync'd. The cluster work replaces the commit step with raft-rs; the state machines, the
//! commands and every caller stay as they are, which is why all state goes through here
//! even on a single node.
//!
//! Each group runs on its own thread. Proposals that arrive together are appended with one
//! fsync (group commit), then applied one by one; after each apply, the machine's writes,
//! the new applied index and the removal of the applied log entry go to RocksDB in one
//! atomic batch. After a crash, entries above the applied index are applied again on open.

use std::future::Future;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender};

use crate::storage::{Batch, Store, StoreError, Table};

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
}

/// Called with a proposal's outcome, on the group's thread, in log order.
pub type Done<O> = Box<dyn FnOnce(Result<O, GroupError>) + Send>;

/// A read run on the group's thread, in log order.
type Query<S> = Box<dyn FnOnce(Result<&S, GroupError>) + Send>;

enum Op<S: StateMachine> {
    Propose(Vec<u8>, Done<S::Output>),
    Read(Query<S>),
}

/// One replicated group: its state machine, its log and the thread that applies it.
pub struct Group<S: StateMachine> {
    id: u32,
    state: Arc<S>,
    tx: Option<Sender<Op<S>>>,
    worker: Option<thread::JoinHandle<()>>,
}

impl<S: StateMachine> std::fmt::Debug for Group<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<S: StateMachine> Drop for Group<S> {
    /// Finishes every queued proposal before returning.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Most operations taken from the queue for one group commit.
const MAX_DRAIN: usize = 1024;

fn log_key(group: u32, index: u64) -> Vec<u8> {
    let mut k = group.to_be_bytes().to_vec();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn applied_index(store: &Store, group: u32) -> Result<u64, StoreError> {
    Ok(store
        .get(Table::GroupState, &group.to_be_bytes())?
        .and_then(|v| v.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

/// The group's cursor over its log: the next index to assign.
struct Log {
    group: u32,
    store: Arc<Store>,
    last: u64,
}

impl Log {
    /// Applies `command` at `index` and writes its effects with the applied index.
    fn apply<S: StateMachine>(&self, state: &S, index: u64, command: &[u8]) -> Result<S::Output, StoreError> {
        let mut writes = Batch::new();
        let out = state.apply(index, command, &mut writes);
        writes.put(Table::GroupState, self.group.to_be_bytes().to_vec(), index.to_be_bytes().to_vec());
        writes.delete(Table::GroupLog, log_key(self.group, index));
        self.store.write_now(writes)?;
        Ok(out)
    }
}

impl<S: StateMachine> Group<S> {
    /// Opens group `id` over `store`, applying any committed entries a crash left unapplied,
    /// and starts its thread. `name` names the thread (`group-meta`, `group-shard-3`).
    pub fn open(store: Arc<Store>, id: u32, name: &str, state: S) -> Result<Group<S>, StoreError> {
        let state = Arc::new(state);
        let applied = applied_index(&store, id)?;
        let mut log = Log { group: id, store: store.clone(), last: applied };
        let pending = store.scan_prefix(Table::GroupLog, &id.to_be_bytes())?;
        for (key, command) in pending {
            let index = u64::from_be_bytes(key[4..12].try_into().unwrap_or_default());
            if index <= applied {
                continue;
            }
            log.apply(&*state, index, &command)?;
            log.last = index;
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let worker_state = state.clone();
        let worker = thread::Builder::new()
            .name(format!("group-{name}"))
            .spawn(move || run(log, &*worker_state, rx))
            .expect("spawning a group thread");
        Ok(Group { id, state, tx: Some(tx), worker: Some(worker) })
    }

    /// The state machine, for reads that may lag behind proposals still in flight (on a
    /// cluster member, behind the leader). Use [`Group::read`] when the read must see every
    /// write acknowledged before it.
    pub fn state(&self) -> &S {
        &self.state
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

    /// Runs `f` on the group's thread, on the state after every proposal made before this
    /// call has been applied: a linearizable read. `f` runs in log order with the `done`
    /// callbacks of proposals, so what it sends leaves in order with their responses.
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
}

/// The group thread: appends what arrived together with one fsync, then applies it.
fn run<S: StateMachine>(mut log: Log, state: &S, rx: Receiver<Op<S>>) {
    while let Ok(first) = rx.recv() {
        let ops: Vec<Op<S>> = std::iter::once(first).chain(rx.try_iter().take(MAX_DRAIN)).collect();
        let mut entries = Batch::new();
        let mut index = log.last;
        for op in &ops {
            if let Op::Propose(command, _) = op {
                index += 1;
                entries.put(Table::GroupLog, log_key(log.group, index), command.clone());
            }
        }
        let appended = if entries.is_empty() {
            Ok(())
        } else {
            entries.set_durable();
            log.store.write_now(entries).map_err(|e| {
                tracing::error!(group = log.group, error = %e, "appending to the group log failed");
                Arc::new(e)
            })
        };
        for op in ops {
            match op {
                Op::Read(f) => f(Ok(state)),
                Op::Propose(_, done) if appended.is_err() => {
                    done(Err(GroupError::Storage(appended.clone().unwrap_err())));
                }
                Op::Propose(command, done) => {
                    log.last += 1;
                    let result = log.apply(state, log.last, &command).map_err(|e| {
                        tracing::error!(group = log.group, index = log.last, error = %e, "writing applied state failed");
                        GroupError::Storage(Arc::new(e))
                    });
                    done(result);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

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
    }

    fn stored_sum(store: &Store) -> u64 {
        store.get(Table::Meta, b"sum").unwrap().map(|v| u64::from_be_bytes(v.try_into().unwrap())).unwrap_or(0)
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn proposals_apply_in_order_and_answer_their_proposer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let group = Group::open(store.clone(), 1, "t", Sum::default()).unwrap();
        let outputs: Vec<u64> = block_on(async {
            let waits: Vec<_> = (1..=100u8).map(|i| group.propose_wait(vec![i])).collect();
            let mut out = Vec::new();
            for w in waits {
                out.push(w.await.unwrap());
            }
            out
        });
        let expected: Vec<u64> = (1..=100u64).scan(0, |s, i| Some(*s + i).inspect(|v| *s = *v)).collect();
        assert_eq!(outputs, expected);
        assert_eq!(stored_sum(&store), 5050);
        assert!(store.scan_prefix(Table::GroupLog, b"").unwrap().is_empty(), "applied entries are removed");
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
    fn committed_but_unapplied_entries_are_applied_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(Store::open(dir.path()).unwrap());
            let group = Group::open(store.clone(), 7, "t", Sum::default()).unwrap();
            block_on(group.propose_wait(vec![5])).unwrap();
            // A crash after the log append and before the apply leaves entries like these.
            let mut b = Batch::new();
            b.put(Table::GroupLog, log_key(7, 2), vec![10]);
            b.put(Table::GroupLog, log_key(7, 3), vec![20]);
            b.put(Table::GroupLog, log_key(8, 1), vec![99]);
            store.write_now(b).unwrap();
        }
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let state = Sum(Mutex::new(stored_sum(&store)));
        let group = Group::open(store.clone(), 7, "t", state).unwrap();
        assert_eq!(stored_sum(&store), 35, "group 8's entry is not group 7's");
        assert_eq!(block_on(group.propose_wait(vec![1])).unwrap(), 36);
        assert_eq!(applied_index(&store, 7).unwrap(), 4, "new entries continue the log");
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
}
