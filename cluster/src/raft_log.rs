//! A group's Raft log and hard state in RocksDB, behind raft-rs's [`Storage`] trait.
//!
//! Entries live in [`Table::GroupLog`] under big-endian (group, index) keys, so a group's
//! log sorts in index order and compaction deletes one contiguous range. The hard state,
//! the membership (conf state) and the compaction point live in [`Table::GroupState`].
//! Entries since the last compaction are also kept in memory: raft reads them on every
//! append to a follower, and the log is compacted behind the applied index, which keeps
//! that window small.
//!
//! Writes are not made here: each change returns what to write in the caller's [`Batch`],
//! so that a `Ready`'s entries and hard state reach the disk in one atomic, fsync'd write.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::storage::{Batch, Store, StoreError, Table};

/// Where the logs of a new group's initial members start (after this index, at this term).
pub(crate) const BOOTSTRAP_INDEX: u64 = 5;

/// Produces the state machine's snapshot data at the applied index.
pub(crate) type Snapshotter = Box<dyn Fn() -> Vec<u8> + Send>;

/// The key of entry `index` of `group`.
pub(crate) fn entry_key(group: u32, index: u64) -> Vec<u8> {
    let mut k = group.to_be_bytes().to_vec();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn state_key(group: u32, what: &[u8]) -> Vec<u8> {
    let mut k = group.to_be_bytes().to_vec();
    k.extend_from_slice(what);
    k
}

/// The key of a group's last applied index (kept from the single-member design).
pub(crate) fn applied_key(group: u32) -> Vec<u8> {
    group.to_be_bytes().to_vec()
}

/// The last applied index of `group`, 0 when nothing was applied.
pub(crate) fn stored_applied(store: &Store, group: u32) -> Result<u64, StoreError> {
    Ok(store
        .get(Table::GroupState, &applied_key(group))?
        .and_then(|v| v.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

fn decode<M: protobuf::Message>(bytes: &[u8]) -> Result<M, StoreError> {
    M::parse_from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("raft record: {e}")))
}

fn encode<M: protobuf::Message>(m: &M) -> Vec<u8> {
    m.write_to_bytes().unwrap_or_default()
}

/// One group's log: what raft-rs reads through [`Storage`], and the changes the group
/// thread makes to it.
pub(crate) struct LogStore {
    group: u32,
    hard: HardState,
    conf: ConfState,
    /// The index and term of the last entry removed by compaction or a snapshot.
    compacted: (u64, u64),
    /// Entries after `compacted.0`, in order.
    entries: VecDeque<Entry>,
    /// The state machine's applied index, shared with the group thread.
    applied: Arc<AtomicU64>,
    snapshotter: Snapshotter,
}

impl LogStore {
    /// Loads `group`'s log. A group with no stored membership is new: it starts with
    /// `voters` (empty for a node that joins an existing group and waits for the leader),
    /// after the `applied` index any earlier single-member design reached.
    pub(crate) fn load(
        store: &Store,
        group: u32,
        voters: &[u64],
        applied: Arc<AtomicU64>,
        snapshotter: Snapshotter,
    ) -> Result<(LogStore, Batch), StoreError> {
        let mut init = Batch::new();
        let (conf, new_group) = match store.get(Table::GroupState, &state_key(group, b"conf"))? {
            Some(bytes) => (decode::<ConfState>(&bytes)?, false),
            None => {
                let cs = ConfState { voters: voters.to_vec(), ..Default::default() };
                init.put(Table::GroupState, state_key(group, b"conf"), encode(&cs));
                (cs, true)
            }
        };
        let stored_hard = store.get(Table::GroupState, &state_key(group, b"hard"))?;
        if new_group && !voters.is_empty() && stored_hard.is_none() && applied.load(Ordering::SeqCst) == 0 {
            // A new group's initial members start their logs after a common position, so a
            // node added later (which has no log) is sent a snapshot with the membership.
            applied.store(BOOTSTRAP_INDEX, Ordering::SeqCst);
            init.put(Table::GroupState, applied_key(group), BOOTSTRAP_INDEX.to_be_bytes().to_vec());
        }
        let applied_at = applied.load(Ordering::SeqCst);
        // A log the single-member design left (or a new group's start): everything up to
        // `applied` is state already.
        let pre_raft = stored_hard.is_none() && applied_at > 0;
        let mut hard = match stored_hard {
            Some(bytes) => decode::<HardState>(&bytes)?,
            None if pre_raft => HardState { term: 1, commit: applied_at, ..Default::default() },
            None => HardState::default(),
        };
        // Applied entries were committed, even if the hard state saying so was not yet written.
        hard.commit = hard.commit.max(applied_at);
        let compacted = match store.get(Table::GroupState, &state_key(group, b"snap"))? {
            Some(v) if v.len() == 16 => (
                u64::from_be_bytes(v[..8].try_into().unwrap_or_default()),
                u64::from_be_bytes(v[8..].try_into().unwrap_or_default()),
            ),
            _ if pre_raft => (applied_at, 1),
            _ => (0, 0),
        };
        let mut entries = VecDeque::new();
        for (key, value) in store.scan_prefix(Table::GroupLog, &group.to_be_bytes())? {
            let index = u64::from_be_bytes(key[4..12].try_into().unwrap_or_default());
            if index > compacted.0 {
                entries.push_back(decode::<Entry>(&value)?);
            }
        }
        let mut log = LogStore { group, hard, conf, compacted, entries, applied, snapshotter };
        if pre_raft {
            let hard = log.hard.clone();
            log.set_hard_state(&hard, &mut init);
            log.mark_compacted(compacted.0, compacted.1, &mut init);
        }
        Ok((log, init))
    }

    /// The index of the last entry in the log.
    pub(crate) fn last(&self) -> u64 {
        self.compacted.0 + self.entries.len() as u64
    }

    /// The current membership.
    pub(crate) fn conf(&self) -> &ConfState {
        &self.conf
    }

    /// Appends `entries` (replacing any conflicting suffix) into `batch`.
    pub(crate) fn append(&mut self, entries: &[Entry], batch: &mut Batch) {
        let Some(first) = entries.first() else { return };
        let old_last = self.last();
        let keep = first.index.saturating_sub(self.compacted.0 + 1) as usize;
        self.entries.truncate(keep);
        for e in entries {
            batch.put(Table::GroupLog, entry_key(self.group, e.index), encode(e));
            self.entries.push_back(e.clone());
        }
        for stale in self.last() + 1..=old_last {
            batch.delete(Table::GroupLog, entry_key(self.group, stale));
        }
    }

    /// Records a new hard state into `batch`.
    pub(crate) fn set_hard_state(&mut self, hard: &HardState, batch: &mut Batch) {
        self.hard = hard.clone();
        batch.put(Table::GroupState, state_key(self.group, b"hard"), encode(hard));
    }

    /// Records the commit index raft reported after an advance.
    pub(crate) fn set_commit(&mut self, commit: u64, batch: &mut Batch) {
        if commit > self.hard.commit {
            let mut hard = self.hard.clone();
            hard.commit = commit;
            self.set_hard_state(&hard, batch);
        }
    }

    /// Records a new membership into `batch`.
    pub(crate) fn set_conf(&mut self, conf: ConfState, batch: &mut Batch) {
        batch.put(Table::GroupState, state_key(self.group, b"conf"), encode(&conf));
        self.conf = conf;
    }

    /// Replaces the whole log by `snapshot`'s position (the state machine restores its data).
    pub(crate) fn apply_snapshot(&mut self, snapshot: &Snapshot, batch: &mut Batch) {
        let meta = snapshot.get_metadata();
        batch.delete_range(Table::GroupLog, entry_key(self.group, 0), entry_key(self.group, u64::MAX));
        self.entries.clear();
        self.mark_compacted(meta.index, meta.term, batch);
        let mut hard = self.hard.clone();
        hard.commit = hard.commit.max(meta.index);
        hard.term = hard.term.max(meta.term);
        self.set_hard_state(&hard, batch);
        self.set_conf(meta.get_conf_state().clone(), batch);
    }

    /// Drops entries up to and including `index` (at most the applied index).
    pub(crate) fn compact(&mut self, index: u64, batch: &mut Batch) {
        let index = index.min(self.applied.load(Ordering::SeqCst)).min(self.last());
        if index <= self.compacted.0 {
            return;
        }
        let Ok(term) = self.term(index) else { return };
        batch.delete_range(Table::GroupLog, entry_key(self.group, 0), entry_key(self.group, index + 1));
        let drop = (index - self.compacted.0) as usize;
        self.entries.drain(..drop);
        self.mark_compacted(index, term, batch);
    }

    /// How many entries the log holds in memory and on disk.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn mark_compacted(&mut self, index: u64, term: u64, batch: &mut Batch) {
        self.compacted = (index, term);
        let mut v = index.to_be_bytes().to_vec();
        v.extend_from_slice(&term.to_be_bytes());
        batch.put(Table::GroupState, state_key(self.group, b"snap"), v);
    }
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard.clone(), self.conf.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.compacted.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.compacted.0 - 1) as usize;
        let to = (high - self.compacted.0 - 1) as usize;
        let mut out: Vec<Entry> = self.entries.range(from..to).cloned().collect();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        if index == self.compacted.0 {
            return Ok(self.compacted.1);
        }
        if index < self.compacted.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if index > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(index - self.compacted.0 - 1) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.compacted.0 + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    /// The state machine's state at the applied index, which is at or after every index a
    /// follower can be missing once the log before it was compacted.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let applied = self.applied.load(Ordering::SeqCst);
        if applied < request_index || applied < self.compacted.0 {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let term = self.term(applied)?;
        let metadata =
            SnapshotMetadata { conf_state: Some(self.conf.clone()).into(), index: applied, term, ..Default::default() };
        Ok(Snapshot { data: (self.snapshotter)().into(), metadata: Some(metadata).into(), ..Default::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry { index, term, data: vec![index as u8].into(), ..Default::default() }
    }

    fn open(store: &Store) -> LogStore {
        let applied = Arc::new(AtomicU64::new(stored_applied(store, 3).unwrap()));
        LogStore::load(store, 3, &[], applied, Box::new(|| b"state".to_vec())).unwrap().0
    }

    #[test]
    fn appended_entries_and_hard_state_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut log = open(&store);
        let mut b = Batch::new();
        log.append(&[entry(1, 1), entry(2, 1), entry(3, 2)], &mut b);
        log.set_hard_state(&HardState { term: 2, vote: 1, commit: 2, ..Default::default() }, &mut b);
        store.write_now(b).unwrap();
        let log = open(&store);
        assert_eq!(log.last(), 3);
        assert_eq!(log.term(3).unwrap(), 2);
        assert_eq!(log.initial_state().unwrap().hard_state.vote, 1);
    }

    #[test]
    fn a_new_groups_initial_members_start_after_the_bootstrap_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let applied = Arc::new(AtomicU64::new(0));
        let (log, init) = LogStore::load(&store, 3, &[1, 2], applied.clone(), Box::new(Vec::new)).unwrap();
        store.write_now(init).unwrap();
        assert_eq!((log.first_index().unwrap(), log.term(BOOTSTRAP_INDEX).unwrap()), (BOOTSTRAP_INDEX + 1, 1));
        assert_eq!(log.initial_state().unwrap().conf_state.voters, vec![1, 2]);
        assert_eq!(stored_applied(&store, 3).unwrap(), BOOTSTRAP_INDEX);
        let applied = Arc::new(AtomicU64::new(BOOTSTRAP_INDEX));
        let (again, _) = LogStore::load(&store, 3, &[1, 2], applied, Box::new(Vec::new)).unwrap();
        assert_eq!(again.first_index().unwrap(), BOOTSTRAP_INDEX + 1, "a restart keeps the position");
    }

    #[test]
    fn a_conflicting_append_replaces_the_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut log = open(&store);
        let mut b = Batch::new();
        log.append(&[entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)], &mut b);
        log.append(&[entry(3, 2)], &mut b);
        store.write_now(b).unwrap();
        let log = open(&store);
        assert_eq!(log.last(), 3);
        assert_eq!(log.term(3).unwrap(), 2);
        assert_eq!(store.scan_prefix(Table::GroupLog, &3u32.to_be_bytes()).unwrap().len(), 3);
    }

    #[test]
    fn compaction_stops_at_the_applied_index_and_snapshots_start_there() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut log = open(&store);
        let mut b = Batch::new();
        log.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>(), &mut b);
        log.applied.store(6, Ordering::SeqCst);
        log.compact(9, &mut b);
        store.write_now(b).unwrap();
        assert_eq!(log.first_index().unwrap(), 7);
        assert!(matches!(
            log.entries(5, 8, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(log.entries(7, 11, None, GetEntriesContext::empty(false)).unwrap().len(), 4);
        let snap = log.snapshot(5, 2).unwrap();
        assert_eq!((snap.get_metadata().index, &snap.data[..]), (6, &b"state"[..]));
        let reopened = open(&store);
        assert_eq!((reopened.first_index().unwrap(), reopened.last()), (7, 10));
    }
}
