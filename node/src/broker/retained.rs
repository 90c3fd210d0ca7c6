//! Retained messages: one per topic, in memory for fast SUBSCRIBE answers, and in the
//! storage engine so they survive restarts.

use std::collections::HashMap;
use std::sync::Arc;

use ferrite_cluster::{Batch, Store, StoreError, Table};
use parking_lot::RwLock;

use super::message::Message;
use crate::mqtt::topic;

/// The retained-message table.
#[derive(Default)]
pub struct Retained {
    map: RwLock<HashMap<Arc<str>, Arc<Message>>>,
}

impl Retained {
    /// Loads every stored retained message.
    pub fn load(store: &Store) -> Result<Retained, StoreError> {
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
