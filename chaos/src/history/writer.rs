//! Appending records while a run is going on.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use serde_json::Value;

use super::{HistoryError, Op, OpType, Outcome, Process};

/// Appends records to a history, one line each, flushed at once so that a crash of the
/// harness loses at most the line being written.
///
/// Shared by every client thread: a record's time is taken under the lock, so the lines of
/// the file are in time order and a completion is never written before its invocation.
#[derive(Debug)]
pub struct HistoryWriter<W: Write = File> {
    out: Mutex<W>,
    start: Instant,
}

impl HistoryWriter<File> {
    /// Opens (or creates) a history file for appending; times count from now.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| HistoryError::Open { path: path.to_owned(), source })?;
        Ok(Self::new(file))
    }
}

impl<W: Write> HistoryWriter<W> {
    /// Writes to `out`; times count from now.
    pub fn new(out: W) -> Self {
        HistoryWriter { out: Mutex::new(out), start: Instant::now() }
    }

    /// Nanoseconds since the writer was made: the clock every record uses.
    pub fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Stamps `op` with the current time, appends it and returns it as written.
    pub fn append(&self, mut op: Op) -> Result<Op, HistoryError> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        op.time_ns = self.elapsed_ns();
        let mut line = serde_json::to_vec(&op).expect("a history record always serializes");
        line.push(b'\n');
        out.write_all(&line).and_then(|()| out.flush()).map_err(HistoryError::Write)?;
        Ok(op)
    }

    /// Records that client `process` starts operation `f`; keep the result to complete it.
    pub fn invoke(
        &self,
        process: u64,
        f: &str,
        key: Option<&str>,
        value: Value,
        node: Option<u64>,
    ) -> Result<Op, HistoryError> {
        let mut op = Op::new(Process::Client(process), OpType::Invoke, f).value(value);
        op.key = key.map(str::to_owned);
        op.node = node;
        self.append(op)
    }

    /// Records the outcome of `invoke` (same process, operation, key and node).
    pub fn complete(&self, invoke: &Op, outcome: Outcome, value: Value) -> Result<Op, HistoryError> {
        let mut op = Op::new(invoke.process, outcome.into(), invoke.f.clone()).value(value);
        op.key.clone_from(&invoke.key);
        op.node = invoke.node;
        self.append(op)
    }

    /// Records a fault the nemesis injected (or repaired): `f` is its kind, `value` the detail.
    pub fn fault(&self, f: &str, value: Value) -> Result<Op, HistoryError> {
        self.append(Op::new(Process::Nemesis, OpType::Info, f).value(value))
    }

    /// Gives back the underlying writer.
    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::thread;

    use serde_json::json;

    use super::*;
    use crate::history::{load, parse, History};

    fn temp_path(name: &str) -> std::path::PathBuf {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("ferrite-chaos-{}-{n}-{name}", std::process::id()))
    }

    #[test]
    fn records_written_are_read_back_in_order() {
        let writer = HistoryWriter::new(Vec::new());
        let invoke = writer.invoke(1, "write", Some("thing-1"), json!(7), Some(2)).unwrap();
        writer.fault("partition", json!({"isolated": [2]})).unwrap();
        let ok = writer.complete(&invoke, Outcome::Ok, json!({"version": 1})).unwrap();
        let ops = parse(writer.into_inner().as_slice()).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0], invoke);
        assert_eq!(ops[1].process, Process::Nemesis);
        assert_eq!(ops[2], ok);
        assert_eq!(ok.key.as_deref(), Some("thing-1"));
        assert_eq!(ok.node, Some(2));
        assert!(ops[0].time_ns <= ops[1].time_ns && ops[1].time_ns <= ops[2].time_ns);
    }

    #[test]
    fn a_file_is_appended_to_and_each_line_is_on_disk_at_once() {
        let path = temp_path("append.jsonl");
        let writer = HistoryWriter::create(&path).unwrap();
        let invoke = writer.invoke(1, "read", Some("k"), Value::Null, None).unwrap();
        assert_eq!(load(&path).unwrap(), vec![invoke.clone()]);
        drop(writer);
        let writer = HistoryWriter::create(&path).unwrap();
        writer.complete(&invoke, Outcome::Info, Value::Null).unwrap();
        assert_eq!(load(&path).unwrap().len(), 2);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn concurrent_clients_produce_a_history_that_pairs() {
        let writer = Arc::new(HistoryWriter::new(Vec::new()));
        let threads: Vec<_> = (0..8)
            .map(|process| {
                let writer = Arc::clone(&writer);
                thread::spawn(move || {
                    for i in 0..50 {
                        let invoke = writer.invoke(process, "write", Some("k"), json!(i), None).unwrap();
                        writer.complete(&invoke, Outcome::Ok, Value::Null).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let writer = Arc::into_inner(writer).unwrap();
        let ops = parse(writer.into_inner().as_slice()).unwrap();
        assert!(ops.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
        let history = History::from_ops(&ops).unwrap();
        assert_eq!(history.ops.len(), 400);
        assert!(history.ops.iter().all(|op| op.outcome == Outcome::Ok));
    }
}
