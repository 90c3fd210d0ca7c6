//! A `shard` group's state machine (docs/ARCHITECTURE.md): the shadows whose thing names hash to
//! this shard. Updates and deletes are commands in the shard's log; gets are linearizable
//! reads. Each shadow is kept in memory once touched and in the `shadows` column family.

use std::collections::HashMap;
use std::sync::Arc;

use ferrite_cluster::{Batch, StateMachine, Store, StoreError, Table};
use parking_lot::Mutex;
use serde_json::Value;

use super::document::Shadow;
use super::topics::{shadow_key, Operation};
use ferrite_aws::AwsError;

/// A change to one shadow. The time is the proposer's, so every member computes the same
/// metadata timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `Update` or `Delete` (a get is a read, not a command).
    pub op: Operation,
    /// Seconds since the epoch, as the proposer saw it.
    pub now_s: u64,
    /// The thing.
    pub thing: String,
    /// The named shadow, or `None` for the classic one.
    pub shadow: Option<String>,
    /// The request document.
    pub payload: Vec<u8>,
}

impl Command {
    /// `op, now_s (u64 BE), thing length (u8), thing, shadow length (u8, 255 for none),
    /// shadow, payload`. Names are at most 128 bytes, so one byte holds their lengths.
    pub fn encode(&self) -> Vec<u8> {
        let shadow = self.shadow.as_deref();
        let mut out = Vec::with_capacity(12 + self.thing.len() + shadow.map_or(0, str::len) + self.payload.len());
        out.push(match self.op {
            Operation::Get => 0,
            Operation::Update => 1,
            Operation::Delete => 2,
        });
        out.extend_from_slice(&self.now_s.to_be_bytes());
        out.push(self.thing.len() as u8);
        out.extend_from_slice(self.thing.as_bytes());
        match shadow {
            Some(s) => {
                out.push(s.len() as u8);
                out.extend_from_slice(s.as_bytes());
            }
            None => out.push(255),
        }
        out.extend_from_slice(&self.payload);
        out
    }

    /// The inverse of [`Command::encode`]; `None` for bytes it did not produce.
    pub fn decode(bytes: &[u8]) -> Option<Command> {
        let op = match *bytes.first()? {
            0 => Operation::Get,
            1 => Operation::Update,
            2 => Operation::Delete,
            _ => return None,
        };
        let now_s = u64::from_be_bytes(bytes.get(1..9)?.try_into().ok()?);
        let thing_len = *bytes.get(9)? as usize;
        let thing = std::str::from_utf8(bytes.get(10..10 + thing_len)?).ok()?.to_string();
        let mut at = 10 + thing_len;
        let shadow = match *bytes.get(at)? {
            255 => {
                at += 1;
                None
            }
            n => {
                let s = std::str::from_utf8(bytes.get(at + 1..at + 1 + n as usize)?).ok()?.to_string();
                at += 1 + n as usize;
                Some(s)
            }
        };
        Some(Command { op, now_s, thing, shadow, payload: bytes[at..].to_vec() })
    }
}

/// What an applied command answers: the `accepted` document, and for updates the
/// `documents` and (when `desired` and `reported` differ) `delta` ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// Published on `.../accepted` and returned by the HTTP API.
    pub accepted: Value,
    /// Published on `.../update/documents`.
    pub documents: Option<Value>,
    /// Published on `.../update/delta`.
    pub delta: Option<Value>,
}

/// The shadows of one shard.
#[derive(Debug)]
pub struct ShadowShard {
    store: Arc<Store>,
    /// Decoded shadows this shard read or wrote; emptied after a write once it holds more
    /// than `cache_limit` (everything in it is on disk then).
    cache: Mutex<HashMap<Vec<u8>, Shadow>>,
    cache_limit: usize,
    /// This shard's number and the number of shards: which things it owns.
    placement: (u32, u32),
    /// Told of every applied change (the fleet index), once set.
    observer: Observer,
}

/// A [`ShadowObserver`] slot, set once.
#[derive(Default)]
struct Observer(std::sync::OnceLock<ShadowObserver>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "Observer(set)" } else { "Observer(none)" })
    }
}

/// What learns of every applied shadow change: the thing, the shadow's name (`None`: the
/// classic shadow) and its indexed document (`None`: deleted).
pub type ShadowObserver = Arc<dyn Fn(&str, Option<&str>, Option<Value>) + Send + Sync>;

/// Shadows one shard keeps decoded in memory before it empties its cache.
pub const CACHED_SHADOWS: usize = 50_000;

/// The shard (of `shards`) that owns `thing`'s shadows. 64-bit FNV-1a of the name's bytes
/// (the `fnv` crate): the same on every node and every version, which placement needs.
pub fn shard_of(thing: &str, shards: u32) -> u32 {
    use std::hash::Hasher as _;
    let mut h = fnv::FnvHasher::default();
    h.write(thing.as_bytes());
    (h.finish() % u64::from(shards.max(1))) as u32
}

fn internal(thing: &str, what: &str, e: &dyn std::fmt::Display) -> AwsError {
    tracing::error!(thing, error = %e, "{what} a shadow failed");
    AwsError::internal()
}

impl ShadowShard {
    /// The only shard, reading shadows it has not seen yet from `store`.
    pub fn new(store: Arc<Store>) -> ShadowShard {
        ShadowShard::for_shard(store, 0, 1)
    }

    /// Shard `index` of `shards`, reading shadows it has not seen yet from `store`.
    pub fn for_shard(store: Arc<Store>, index: u32, shards: u32) -> ShadowShard {
        ShadowShard {
            store,
            cache: Mutex::new(HashMap::new()),
            cache_limit: CACHED_SHADOWS,
            placement: (index, shards),
            observer: Observer::default(),
        }
    }

    /// Tells `observer` of every change applied from now on.
    pub fn observe(&self, observer: ShadowObserver) {
        let _ = self.observer.0.set(observer);
    }

    /// The same shard with another bound on its cache (tests).
    pub fn with_cache_limit(mut self, limit: usize) -> ShadowShard {
        self.cache_limit = limit;
        self
    }

    /// The stored shadows of the things this shard owns.
    fn own_rows(&self) -> Result<Vec<ferrite_cluster::Row>, StoreError> {
        let (index, shards) = self.placement;
        let mut rows = self.store.scan_prefix(Table::Shadows, b"")?;
        rows.retain(|(k, _)| {
            let thing = k.split(|b| *b == 0).next().unwrap_or_default();
            shard_of(&String::from_utf8_lossy(thing), shards) == index
        });
        Ok(rows)
    }

    fn load(&self, thing: &str, key: &[u8]) -> Result<Shadow, AwsError> {
        if let Some(s) = self.cache.lock().get(key) {
            return Ok(s.clone());
        }
        let Some(stored) = self.store.get(Table::Shadows, key).map_err(|e| internal(thing, "reading", &e))? else {
            return Ok(Shadow::default());
        };
        // A shadow that was acknowledged but cannot be read back is refused, never served or
        // overwritten as if it did not exist.
        Shadow::decode(&stored).ok_or_else(|| {
            crate::metrics::undecodable_record("shadow", &String::from_utf8_lossy(key), "not a shadow document");
            AwsError::internal()
        })
    }

    /// `get`: the current document, or 404.
    pub fn get(
        &self,
        thing: &str,
        shadow: Option<&str>,
        client_token: Option<&str>,
        now_s: u64,
    ) -> Result<Value, AwsError> {
        let current = self.load(thing, &shadow_key(thing, shadow))?;
        current.get(shadow.unwrap_or(thing), client_token, now_s)
    }

    /// The names of a thing's named shadows that exist, in name order.
    pub fn named_shadows(&self, thing: &str) -> Result<Vec<String>, AwsError> {
        let prefix = shadow_key(thing, None);
        let rows = self.store.scan_prefix(Table::Shadows, &prefix).map_err(|e| internal(thing, "listing", &e))?;
        let mut names: Vec<String> = rows
            .into_iter()
            .filter_map(|(k, v)| {
                let name = String::from_utf8(k[prefix.len()..].to_vec()).ok()?;
                let exists = match Shadow::decode(&v) {
                    Some(s) => s.exists(),
                    None => {
                        crate::metrics::undecodable_record("shadow", &name, "not a shadow document");
                        true // listed: it exists, even though it cannot be read
                    }
                };
                (!name.is_empty() && exists).then_some(name)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Applies `c`; the answer documents are built only when `respond`.
    fn run(&self, c: &Command, writes: &mut Batch, respond: bool) -> Result<Applied, AwsError> {
        let key = shadow_key(&c.thing, c.shadow.as_deref());
        let current = self.load(&c.thing, &key)?;
        let mut next = current.clone();
        let name = c.shadow.as_deref().unwrap_or(&c.thing);
        let applied = match c.op {
            Operation::Get if !respond => Applied { accepted: Value::Null, documents: None, delta: None },
            Operation::Get => Applied {
                accepted: next.get(name, client_token(&c.payload).as_deref(), c.now_s)?,
                documents: None,
                delta: None,
            },
            Operation::Delete => Applied {
                accepted: next.delete(name, client_token(&c.payload).as_deref(), c.now_s)?,
                documents: None,
                delta: None,
            },
            Operation::Update => {
                let u = next.update_with(&c.payload, c.now_s, respond)?;
                Applied { accepted: u.accepted, documents: Some(u.documents), delta: u.delta }
            }
        };
        if next != current {
            writes.put(Table::Shadows, key.clone(), next.encode());
            if let Some(observe) = self.observer.0.get() {
                observe(&c.thing, c.shadow.as_deref(), next.index_doc());
            }
        }
        self.cache.lock().insert(key, next);
        Ok(applied)
    }
}

/// `clientToken` of a get/delete request body (which may be empty).
pub fn client_token(payload: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(payload).ok()?;
    doc.get("clientToken")?.as_str().map(str::to_string)
}

impl StateMachine for ShadowShard {
    type Output = Result<Applied, AwsError>;

    fn apply(&self, index: u64, command: &[u8], writes: &mut Batch) -> Self::Output {
        let Some(c) = Command::decode(command) else {
            tracing::error!(index, "undecodable shadow command skipped");
            return Err(AwsError::internal());
        };
        self.run(&c, writes, true)
    }

    fn apply_unobserved(&self, index: u64, command: &[u8], writes: &mut Batch) {
        match Command::decode(command) {
            Some(c) => {
                let _ = self.run(&c, writes, false);
            }
            None => tracing::error!(index, "undecodable shadow command skipped"),
        }
    }

    /// The shadows of every thing this shard owns, as stored.
    fn snapshot(&self) -> Vec<u8> {
        let rows = self.own_rows().unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading shadows for a snapshot failed");
            Vec::new()
        });
        ferrite_cluster::encode_rows(&rows)
    }

    fn restore(&self, data: &[u8], writes: &mut Batch) -> Result<(), String> {
        let rows = ferrite_cluster::decode_rows(data).ok_or("a truncated shadow snapshot")?;
        for (k, _) in self.own_rows().map_err(|e| e.to_string())? {
            writes.delete(Table::Shadows, k);
        }
        for (k, v) in rows {
            writes.put(Table::Shadows, k, v);
        }
        Ok(())
    }

    fn after_restore(&self) {
        self.cache.lock().clear();
    }

    /// A shard's memory is bounded: past the limit the cache is emptied, once what it holds
    /// is written (a shadow read later is decoded from the store again).
    fn after_write(&self) {
        let mut cache = self.cache.lock();
        if cache.len() > self.cache_limit {
            cache.clear();
        }
    }

    /// Everything `apply` reads is in memory.
    fn applies_from_memory(&self) -> bool {
        true
    }

    /// Updates of many things share log entries: the index is not an identity here.
    fn batches_commands(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_the_fnv1a_of_the_name_as_stored_shards_expect() {
        // Fixed values: a change here moves existing shadows to another shard.
        assert_eq!(shard_of("", 4), (0xcbf2_9ce4_8422_2325u64 % 4) as u32);
        assert_eq!(shard_of("lamp-1", 4), 1);
        assert_eq!(shard_of("lamp-2", 4), 0);
        assert_eq!(shard_of("anything", 1), 0);
    }
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn commands_round_trip(
            op in prop_oneof![Just(Operation::Get), Just(Operation::Update), Just(Operation::Delete)],
            now_s in any::<u64>(),
            thing in "[a-zA-Z0-9:_-]{1,128}",
            shadow in proptest::option::of("[a-zA-Z0-9:_-]{1,64}"),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let c = Command { op, now_s, thing, shadow, payload };
            prop_assert_eq!(Command::decode(&c.encode()), Some(c));
        }
    }

    #[test]
    fn truncated_commands_do_not_decode() {
        let c = Command {
            op: Operation::Update,
            now_s: 5,
            thing: "lamp".into(),
            shadow: Some("cfg".into()),
            payload: vec![],
        };
        let bytes = c.encode();
        for n in 0..bytes.len() {
            assert_eq!(Command::decode(&bytes[..n]), None, "{n} bytes");
        }
    }

    #[test]
    fn an_update_is_stored_and_a_rejected_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let shard = ShadowShard::new(store.clone());
        let update = |payload: &str| Command {
            op: Operation::Update,
            now_s: 100,
            thing: "lamp".into(),
            shadow: None,
            payload: payload.as_bytes().to_vec(),
        };
        let mut writes = Batch::new();
        let ok = shard.apply(1, &update(r#"{"state":{"desired":{"on":true}}}"#).encode(), &mut writes).unwrap();
        assert_eq!(ok.accepted["version"], 1);
        assert!(ok.delta.is_some());
        assert!(!writes.is_empty());
        let mut none = Batch::new();
        let conflict = shard.apply(2, &update(r#"{"state":{"desired":{"on":false}},"version":7}"#).encode(), &mut none);
        assert_eq!(conflict.unwrap_err().status, 409);
        assert!(none.is_empty());
        assert_eq!(shard.get("lamp", None, None, 101).unwrap()["state"]["desired"]["on"], true);
    }

    #[test]
    fn the_cache_is_bounded_and_what_it_dropped_reads_back_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let shard = ShadowShard::new(store.clone()).with_cache_limit(10);
        for i in 0..25u64 {
            let c = Command {
                op: Operation::Update,
                now_s: 100,
                thing: format!("t{i}"),
                shadow: None,
                payload: format!(r#"{{"state":{{"reported":{{"n":{i}}}}}}}"#).into_bytes(),
            };
            let mut writes = Batch::new();
            shard.apply(i + 1, &c.encode(), &mut writes).unwrap();
            store.write_now(writes).unwrap();
            shard.after_write();
            assert!(shard.cache.lock().len() <= 10, "bounded after every write");
        }
        for i in 0..25u64 {
            assert_eq!(shard.get(&format!("t{i}"), None, None, 101).unwrap()["state"]["reported"]["n"], i);
        }
    }

    fn update(payload: String) -> Vec<u8> {
        Command { op: Operation::Update, now_s: 100, thing: "lamp".into(), shadow: None, payload: payload.into_bytes() }
            .encode()
    }

    #[test]
    fn an_undecodable_stored_shadow_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let key = shadow_key("lamp", None);
        let mut b = Batch::new();
        b.put(Table::Shadows, key.clone(), b"{not a shadow".to_vec());
        store.write_now(b).unwrap();
        let shard = ShadowShard::new(store.clone());
        assert_eq!(shard.get("lamp", None, None, 1).unwrap_err().status, 500);
        let mut writes = Batch::new();
        let refused = shard.apply(1, &update(r#"{"state":{"desired":{"on":true}}}"#.into()), &mut writes);
        assert_eq!(refused.unwrap_err().status, 500);
        assert!(writes.is_empty(), "the stored record is not overwritten");
        assert_eq!(store.get(Table::Shadows, &key).unwrap().as_deref(), Some(&b"{not a shadow"[..]));
    }

    /// JSON values nested up to 9 levels, objects and arrays mixed.
    fn nested() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            any::<i32>().prop_map(serde_json::Value::from),
            "[a-z]{0,4}".prop_map(serde_json::Value::from),
            Just(serde_json::Value::Bool(true)),
        ];
        leaf.prop_recursive(9, 40, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..3).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-c]", inner, 1..3)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn whatever_is_accepted_reads_back_identical_after_a_restart(
            values in proptest::collection::btree_map("[a-d]", nested(), 1..3),
            chain in prop_oneof![0usize..8, 118usize..128],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut desired = serde_json::Value::Object(values.into_iter().collect());
            // A chain of arrays short, or just under serde_json's own limit of 128 levels
            // (where a request still parses but its stored form, one level deeper, would
            // not): only what is accepted must read back, however deep the input.
            let mut deep = serde_json::json!(1);
            for _ in 0..chain {
                deep = serde_json::json!([deep]);
            }
            desired["deep"] = deep;
            let payload = serde_json::json!({"state": {"desired": desired, "reported": desired}}).to_string();
            let before = {
                let store = Arc::new(Store::open(dir.path()).unwrap());
                let shard = ShadowShard::new(store.clone());
                let mut writes = Batch::new();
                if shard.apply(1, &update(payload), &mut writes).is_err() {
                    return Ok(()); // refused: nothing to read back
                }
                writes.set_durable();
                store.write_now(writes).unwrap();
                shard.get("lamp", None, None, 101).unwrap()
            };
            let store = Arc::new(Store::open(dir.path()).unwrap());
            let after = ShadowShard::new(store).get("lamp", None, None, 101).unwrap();
            prop_assert_eq!(&after["state"], &before["state"]);
            prop_assert_eq!(&after["metadata"], &before["metadata"]);
            prop_assert_eq!(&after["version"], &before["version"]);
        }
    }
}
