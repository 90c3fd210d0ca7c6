//! RocksDB storage with group commit.
//!
//! Writers hand a [`Batch`] to [`Store::commit`]; one writer thread merges every batch
//! that is waiting into a single RocksDB `WriteBatch` and writes it with one fsync when
//! any of them asked for durability. The callback of each batch runs only after its
//! data is in the write-ahead log (and synced, when asked): that is the invariant the
//! broker relies on before it acknowledges a publish.

use std::path::Path;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

/// The column families the node uses; each keeps one kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// Persistent session metadata, keyed by client id.
    Sessions,
    /// Subscriptions of persistent sessions, keyed by client id, 0, filter.
    Subscriptions,
    /// Queued and in-flight messages of persistent sessions, keyed by client id, 0, seq.
    Queue,
    /// Retained messages, keyed by topic.
    Retained,
    /// Node-level metadata (format version, counters).
    Meta,
    /// Device shadows, keyed by thing name, 0, shadow name (empty for the classic shadow).
    Shadows,
    /// Registry records, keyed by kind, 0, name (`thing\0lamp`).
    Registry,
    /// Replicated-group log entries not yet applied, keyed by group id and index (both
    /// big-endian, so a group's entries sort in log order).
    GroupLog,
    /// Per-group bookkeeping (the last applied index), keyed by group id.
    GroupState,
    /// QoS 1/2 publishes forwarded to peers and not yet acknowledged by them, keyed by
    /// peer id and sequence (both big-endian).
    Outbox,
}

impl Table {
    /// Every table, in the order they are created.
    pub const ALL: [Table; 10] = [
        Table::Sessions,
        Table::Subscriptions,
        Table::Queue,
        Table::Retained,
        Table::Meta,
        Table::Shadows,
        Table::Registry,
        Table::GroupLog,
        Table::GroupState,
        Table::Outbox,
    ];

    /// The RocksDB column family name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Sessions => "sessions",
            Table::Subscriptions => "subscriptions",
            Table::Queue => "queue",
            Table::Retained => "retained",
            Table::Meta => "meta",
            Table::Shadows => "shadows",
            Table::Registry => "registry",
            Table::GroupLog => "group_log",
            Table::GroupState => "group_state",
            Table::Outbox => "outbox",
        }
    }
}

/// Errors from the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB refused an operation.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// The store is shutting down and takes no more writes.
    #[error("the storage writer has stopped")]
    Closed,
    /// A stored record could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// One change in a [`Batch`].
#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>),
    Delete,
    /// Deletes keys from the op's key up to (not including) this one.
    DeleteRange(Vec<u8>),
}

/// A set of puts and deletes applied atomically.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    ops: Vec<(Table, Vec<u8>, Op)>,
    durable: bool,
}

impl Batch {
    /// An empty, non-durable batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Puts `value` under `key` in `table`.
    pub fn put(&mut self, table: Table, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((table, key.into(), Op::Put(value.into())));
    }

    /// Deletes `key` from `table`.
    pub fn delete(&mut self, table: Table, key: impl Into<Vec<u8>>) {
        self.ops.push((table, key.into(), Op::Delete));
    }

    /// Deletes every key of `table` from `from` up to, not including, `to`.
    pub fn delete_range(&mut self, table: Table, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        self.ops.push((table, from.into(), Op::DeleteRange(to.into())));
    }

    /// Asks for the batch to be fsync'd before its callback runs.
    pub fn set_durable(&mut self) {
        self.durable = true;
    }

    /// True when the batch must be fsync'd.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Moves every operation of `other` into `self`, keeping durability if either asked.
    pub fn append(&mut self, other: Batch) {
        self.durable |= other.durable;
        self.ops.extend(other.ops);
    }
}

/// A key and its value, as scans return them.
pub type Row = (Vec<u8>, Vec<u8>);

/// Reads rows by key prefix: the store itself, or rows held in memory (a snapshot being
/// restored), so that state machines load the same way from either.
pub trait ReadRows {
    /// Every key/value pair in `table` whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<Row>, StoreError>;
}

/// Rows of one table held in memory, in key order.
#[derive(Debug, Default, Clone)]
pub struct MemRows {
    /// The table the rows belong to.
    pub table: Option<Table>,
    /// The rows.
    pub rows: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
}

impl ReadRows for MemRows {
    fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<Row>, StoreError> {
        if self.table.is_some_and(|t| t != table) {
            return Ok(Vec::new());
        }
        Ok(self
            .rows
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl ReadRows for Store {
    fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<Row>, StoreError> {
        Store::scan_prefix(self, table, prefix)
    }
}

/// Encodes rows as a snapshot: each key and value preceded by its length (u32, big-endian).
pub fn encode_rows(rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.iter().map(|(k, v)| k.len() + v.len() + 8).sum());
    for (k, v) in rows {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// Decodes [`encode_rows`] output; `None` when it is truncated.
pub fn decode_rows(mut bytes: &[u8]) -> Option<Vec<Row>> {
    let mut rows = Vec::new();
    let take = |bytes: &mut &[u8]| -> Option<Vec<u8>> {
        let (len, rest) = bytes.split_at_checked(4)?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let (item, rest) = rest.split_at_checked(len)?;
        *bytes = rest;
        Some(item.to_vec())
    };
    while !bytes.is_empty() {
        let k = take(&mut bytes)?;
        let v = take(&mut bytes)?;
        rows.push((k, v));
    }
    Some(rows)
}

/// Called once a batch is written (or failed to be).
pub type Callback = Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>;

struct Job {
    batch: Batch,
    done: Option<Callback>,
}

/// The node's RocksDB database and its group-commit writer thread.
pub struct Store {
    db: Arc<DB>,
    tx: Option<Sender<Job>>,
    writer: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.db.path()).finish_non_exhaustive()
    }
}

impl Drop for Store {
    /// Finishes every queued write and releases the database before returning, so the
    /// same directory can be opened again at once.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Upper bound on jobs merged into one RocksDB write; keeps latency bounded under load.
const MAX_GROUP: usize = 4096;

impl Store {
    /// Opens (creating if needed) the database at `path` with every [`Table`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        let cfs = Table::ALL.iter().map(|t| ColumnFamilyDescriptor::new(t.name(), Options::default()));
        let db = Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?);
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let writer_db = db.clone();
        let writer = thread::Builder::new()
            .name("ferrite-store-writer".into())
            .spawn(move || writer_loop(&writer_db, rx))
            .expect("spawning the storage writer thread");
        Ok(Store { db, tx: Some(tx), writer: Some(writer) })
    }

    /// Queues `batch` for the next group commit; `done` runs after it is written.
    pub fn commit(&self, batch: Batch, done: Callback) {
        let job = Job { batch, done: Some(done) };
        let refused = match &self.tx {
            Some(tx) => tx.send(job).err().map(|e| e.into_inner()),
            None => Some(job),
        };
        if let Some(cb) = refused.and_then(|j| j.done) {
            cb(Err(Arc::new(StoreError::Closed)));
        }
    }

    /// Queues `batch` for the next group commit without waiting for it.
    pub fn submit(&self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job { batch, done: None });
        }
    }

    /// Writes `batch` now on the calling thread (start-up and tests).
    pub fn write_now(&self, batch: Batch) -> Result<(), StoreError> {
        write_group(&self.db, batch)
    }

    /// Reads one value.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let cf = self.db.cf_handle(table.name()).expect("column family exists");
        Ok(self.db.get_cf(&cf, key)?)
    }

    /// Every key/value pair in `table` whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<Row>, StoreError> {
        let cf = self.db.cf_handle(table.name()).expect("column family exists");
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(&cf, rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

impl Store {
    /// Calls `each` with every row of `tables` as of one moment (one RocksDB snapshot across
    /// all column families), table by table in key order: a consistent copy of the node's
    /// state while writes go on. Returns how many rows it gave; stops at `each`'s first error.
    pub fn export(
        &self,
        tables: &[Table],
        mut each: impl FnMut(Table, &[u8], &[u8]) -> Result<(), String>,
    ) -> Result<u64, String> {
        let snapshot = self.db.snapshot();
        let mut rows = 0;
        for table in tables {
            let cf = self.db.cf_handle(table.name()).expect("column family exists");
            for item in snapshot.iterator_cf(&cf, rocksdb::IteratorMode::Start) {
                let (k, v) = item.map_err(|e| format!("reading {}: {e}", table.name()))?;
                each(*table, &k, &v)?;
                rows += 1;
            }
        }
        Ok(rows)
    }

    /// Whether `table` holds no row.
    pub fn is_empty(&self, table: Table) -> Result<bool, StoreError> {
        let cf = self.db.cf_handle(table.name()).expect("column family exists");
        Ok(self.db.iterator_cf(&cf, rocksdb::IteratorMode::Start).next().transpose()?.is_none())
    }
}

fn write_group(db: &DB, batch: Batch) -> Result<(), StoreError> {
    let mut wb = WriteBatch::default();
    for (table, key, value) in &batch.ops {
        let cf = db.cf_handle(table.name()).expect("column family exists");
        match value {
            Op::Put(v) => wb.put_cf(&cf, key, v),
            Op::Delete => wb.delete_cf(&cf, key),
            Op::DeleteRange(to) => wb.delete_range_cf(&cf, key, to),
        }
    }
    let mut wo = WriteOptions::default();
    wo.set_sync(batch.durable);
    db.write_opt(wb, &wo)?;
    Ok(())
}

fn writer_loop(db: &DB, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut merged = Batch::new();
        let mut callbacks = Vec::new();
        let mut take = |job: Job| {
            merged.append(job.batch);
            if let Some(cb) = job.done {
                callbacks.push(cb);
            }
        };
        take(first);
        for job in rx.try_iter().take(MAX_GROUP) {
            take(job);
        }
        let result = write_group(db, merged).map_err(|e| {
            tracing::error!(error = %e, "storage write failed");
            Arc::new(e)
        });
        for cb in callbacks {
            cb(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn committed_batch_is_readable_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut b = Batch::new();
            b.put(Table::Retained, b"a/b".to_vec(), b"hello".to_vec());
            b.set_durable();
            let (tx, rx) = mpsc::channel();
            store.commit(b, Box::new(move |r| tx.send(r.is_ok()).unwrap()));
            assert!(rx.recv().unwrap());
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get(Table::Retained, b"a/b").unwrap(), Some(b"hello".to_vec()));
    }

    #[test]
    fn rows_round_trip_and_truncated_rows_do_not_decode() {
        let rows = vec![(b"a".to_vec(), b"1".to_vec()), (b"thing\0x".to_vec(), vec![0; 300]), (vec![], vec![])];
        let bytes = encode_rows(&rows);
        assert_eq!(decode_rows(&bytes), Some(rows));
        assert_eq!(decode_rows(&bytes[..bytes.len() - 1]), None);
    }

    #[test]
    fn delete_range_removes_only_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = Batch::new();
        for i in 0u8..10 {
            b.put(Table::Meta, vec![i], vec![i]);
        }
        b.delete_range(Table::Meta, vec![2], vec![5]);
        store.write_now(b).unwrap();
        let keys: Vec<u8> = store.scan_prefix(Table::Meta, b"").unwrap().into_iter().map(|(k, _)| k[0]).collect();
        assert_eq!(keys, vec![0, 1, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn scan_prefix_stops_at_prefix_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = Batch::new();
        b.put(Table::Queue, b"c1\0\x01".to_vec(), b"x".to_vec());
        b.put(Table::Queue, b"c1\0\x02".to_vec(), b"y".to_vec());
        b.put(Table::Queue, b"c2\0\x01".to_vec(), b"z".to_vec());
        store.write_now(b).unwrap();
        let rows = store.scan_prefix(Table::Queue, b"c1\0").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].1, b"y");
    }

    #[test]
    fn many_concurrent_commits_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let (tx, rx) = mpsc::channel();
        for i in 0u32..500 {
            let mut b = Batch::new();
            b.put(Table::Meta, i.to_be_bytes().to_vec(), vec![1]);
            b.set_durable();
            let tx = tx.clone();
            store.commit(b, Box::new(move |r| tx.send(r.is_ok()).unwrap()));
        }
        drop(tx);
        assert_eq!(rx.iter().filter(|ok| *ok).count(), 500);
        assert_eq!(store.scan_prefix(Table::Meta, b"").unwrap().len(), 500);
    }
}
