//! raft-rs logs through `slog`; the node logs through `tracing`. This drain forwards every
//! raft record to `tracing` (target `raft`) as structured fields: `group`, `raft_id` and
//! `term` where the record has them, the other key-value pairs in `details`. So elections and
//! leader changes appear in the node's log (text or JSON lines) next to everything else.

use std::fmt::{self, Write as _};

use slog::{Drain, Key, Level, OwnedKVList, Record, Serializer, KV};

/// Forwards slog records to tracing.
struct TracingDrain;

/// Collects a record's key-value pairs: the ones the node names as fields, and the rest as
/// `key=value` text.
#[derive(Default)]
struct Pairs {
    group: String,
    raft_id: String,
    term: String,
    details: String,
}

impl Serializer for Pairs {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let slot = match key {
            "group" => &mut self.group,
            "raft_id" => &mut self.raft_id,
            "term" => &mut self.term,
            _ => {
                let space = if self.details.is_empty() { "" } else { " " };
                let _ = write!(self.details, "{space}{key}={val}");
                return Ok(());
            }
        };
        if slot.is_empty() {
            let _ = write!(slot, "{val}");
        }
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut p = Pairs::default();
        let _ = record.kv().serialize(record, &mut p);
        let _ = values.serialize(record, &mut p);
        let msg = record.msg();
        let (group, raft_id, term, details) = (&p.group, &p.raft_id, &p.term, &p.details);
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "raft", %group, %raft_id, %term, %details, "{msg}")
            }
            Level::Warning => tracing::warn!(target: "raft", %group, %raft_id, %term, %details, "{msg}"),
            Level::Info => tracing::info!(target: "raft", %group, %raft_id, %term, %details, "{msg}"),
            Level::Debug => tracing::debug!(target: "raft", %group, %raft_id, %term, %details, "{msg}"),
            Level::Trace => tracing::trace!(target: "raft", %group, %raft_id, %term, %details, "{msg}"),
        }
        Ok(())
    }
}

/// The logger a group hands to raft-rs, tagged with the group's name.
pub(crate) fn for_group(name: &str) -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!("group" => name.to_string()))
}
