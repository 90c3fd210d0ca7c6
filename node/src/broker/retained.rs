//! Retained messages: one per topic, in memory for fast SUBSCRIBE answers, and in the
//! storage engine so they survive restarts.
//!
//! Every change goes through the retained group (docs/ARCHITECTURE.md), which every node of a
//! cluster applies: a SUBSCRIBE on any node gets the retained messages published on any
//! node, and every node agrees on which message is the last one for a topic.

use std::collections::HashMap;
use std::sync::Arc;

use ferrite_cluster::{Batch, ReadRows, StateMachine, Store, StoreError, Table};
use ferrite_mqtt::topic;
use parking_lot::RwLock;

use super::message::Message;

/// The retained-message table.
#[derive(Default)]
pub struct Retained {
    map: RwLock<HashMap<Arc<str>, Arc<Message>>>,
}

impl Retained {
    /// Loads every stored retained message.
    pub fn load(store: &impl ReadRows) -> Result<Retained, StoreError> {
        let mut map = HashMap::new();
        for (key, value) in store.scan_prefix(Table::Retained, b"")? {
            match Message::decode(&value) {
                Some(m) => {
                    map.insert(m.topic.clone(), Arc::new(m));
                }
                None => tracing::warn!(key = %String::from_utf8_lossy(&key), "skipping a corrupt retained message"),
            }
        }
        Ok(Retained { map: RwLock::new(map) })
    }

    /// Stores (or, for an empty payload, deletes) the retained message of `msg.topic`,
    /// adding the write to `batch`.
    pub fn set(&self, msg: &Arc<Message>, batch: &mut Batch) {
        let key = msg.topic.as_bytes().to_vec();
        if msg.payload.is_empty() {
            self.map.write().remove(&msg.topic);
            batch.delete(Table::Retained, key);
        } else {
            let mut buf = Vec::with_capacity(msg.payload.len() + msg.topic.len() + 32);
            msg.encode(&mut buf);
            self.map.write().insert(msg.topic.clone(), msg.clone());
            batch.put(Table::Retained, key, buf);
        }
    }

    /// Takes over `other`'s messages (a restored snapshot).
    pub fn replace(&self, other: Retained) {
        *self.map.write() = other.map.into_inner();
    }

    /// The retained message of one topic.
    pub fn get(&self, topic: &str) -> Option<Arc<Message>> {
        self.map.read().get(topic).cloned()
    }

    /// Every retained message whose topic matches `filter` (a linear scan: retained
    /// sets are small next to publish rates; see docs/decisions.md).
    pub fn matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let map = self.map.read();
        if !filter.contains(['+', '#']) {
            return map.get(filter).cloned().into_iter().collect();
        }
        map.values().filter(|m| topic::matches(filter, &m.topic)).cloned().collect()
    }

    /// How many topics hold a retained message.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// True when no message is retained.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All retained messages, sorted by topic (for listing).
    pub fn all(&self) -> Vec<Arc<Message>> {
        let mut v: Vec<_> = self.map.read().values().cloned().collect();
        v.sort_by(|a, b| a.topic.cmp(&b.topic));
        v
    }
}

/// The retained group's state machine: each command is one retained PUBLISH (an empty
/// payload clears the topic), applied on every node in the same order.
pub struct RetainedMachine {
    table: Arc<Retained>,
    store: Arc<Store>,
}

impl RetainedMachine {
    /// The machine over the node's retained table.
    pub fn new(table: Arc<Retained>, store: Arc<Store>) -> RetainedMachine {
        RetainedMachine { table, store }
    }
}

impl StateMachine for RetainedMachine {
    type Output = ();

    fn apply(&self, index: u64, command: &[u8], writes: &mut Batch) {
        match Message::decode(command) {
            Some(msg) => self.table.set(&Arc::new(msg), writes),
            None => tracing::error!(index, "undecodable retained command skipped"),
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let rows = self.store.scan_prefix(Table::Retained, b"").unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading retained messages for a snapshot failed");
            Vec::new()
        });
        ferrite_cluster::encode_rows(&rows)
    }

    fn restore(&self, data: &[u8], writes: &mut Batch) -> Result<(), String> {
        let rows = ferrite_cluster::decode_rows(data).ok_or("a truncated retained snapshot")?;
        let rows = ferrite_cluster::MemRows { table: Some(Table::Retained), rows: rows.into_iter().collect() };
        let fresh = Retained::load(&rows).map_err(|e| e.to_string())?;
        // Topics are UTF-8, which never contains the byte 0xFF: this range is every key.
        writes.delete_range(Table::Retained, Vec::new(), vec![0xff]);
        for (k, v) in rows.rows {
            writes.put(Table::Retained, k, v);
        }
        self.table.replace(fresh);
        Ok(())
    }

    /// Everything `apply` reads is in memory.
    fn applies_from_memory(&self) -> bool {
        true
    }
}
