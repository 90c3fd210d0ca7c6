//! The API access keys every node of a cluster accepts: replicated in the `meta` group, so a
//! key created with `ferrite keys create` on one node is accepted by all of them and a key
//! deleted on one node is refused by all of them.
//!
//! Each node publishes the keys of its own credentials file (`DATA_DIR/credentials`, which
//! stays the way operators create and delete keys): a key the group does not know is put,
//! a key that left the file is revoked. A revoked key stays as a tombstone, so that another
//! node's copy of the same file cannot bring it back.

use std::collections::{BTreeMap, HashMap};

use ferrite_aws::AwsError;
use ferrite_cluster::{Batch, StoreError, Table};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// Where a key's record lives in the registry table.
fn key(id: &str) -> Vec<u8> {
    [&b"access-key\0"[..], id.as_bytes()].concat()
}

/// One replicated key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The secret (empty once revoked).
    pub secret: String,
    /// The profile it has in the file it came from.
    pub profile: String,
    /// The node whose file published it first.
    pub origin: u64,
    /// Revoked: requests signed with it are refused on every node, for good.
    pub revoked: bool,
}

/// A change to the replicated keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Publishes a key; a key already known (or revoked) is left as it is.
    Put { id: String, secret: String, profile: String, origin: u64 },
    /// Revokes a key.
    Revoke { id: String },
}

/// What the replicated keys say about an access key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Valid, with this secret.
    Valid(String),
    /// Revoked somewhere in the cluster.
    Revoked,
    /// Never published.
    Unknown,
}

/// The replicated keys: the state the `meta` group applies [`Command`]s to.
#[derive(Debug, Default)]
pub struct AccessKeys {
    keys: RwLock<BTreeMap<String, KeyRecord>>,
}

impl AccessKeys {
    /// Loads the stored keys; a record that cannot be decoded is reported, not replaced.
    pub fn load(store: &impl ferrite_cluster::ReadRows) -> Result<AccessKeys, StoreError> {
        let mut keys = BTreeMap::new();
        for (k, v) in store.scan_prefix(Table::Registry, b"access-key\0")? {
            let id = String::from_utf8_lossy(&k[b"access-key\0".len()..]).into_owned();
            match serde_json::from_slice::<KeyRecord>(&v) {
                Ok(r) => {
                    keys.insert(id, r);
                }
                Err(e) => crate::metrics::undecodable_record("access key", &id, &e.to_string()),
            }
        }
        Ok(AccessKeys { keys: RwLock::new(keys) })
    }

    /// Takes over `other`'s keys (a restored snapshot).
    pub fn replace(&self, other: AccessKeys) {
        *self.keys.write() = other.keys.into_inner();
    }

    /// Applies one committed command; the record goes into `writes`.
    pub fn apply(&self, command: Command, writes: &mut Batch) -> Result<(), AwsError> {
        let mut keys = self.keys.write();
        match command {
            Command::Put { id, secret, profile, origin } => {
                if keys.contains_key(&id) {
                    return Ok(());
                }
                let record = KeyRecord { secret, profile, origin, revoked: false };
                writes.put(Table::Registry, key(&id), serde_json::to_vec(&record).unwrap_or_default());
                keys.insert(id, record);
            }
            Command::Revoke { id } => {
                let record = keys.entry(id.clone()).or_insert_with(|| KeyRecord {
                    secret: String::new(),
                    profile: String::new(),
                    origin: 0,
                    revoked: true,
                });
                record.revoked = true;
                record.secret.clear();
                writes.put(Table::Registry, key(&id), serde_json::to_vec(&*record).unwrap_or_default());
            }
        }
        Ok(())
    }

    /// What the cluster knows of `id`.
    pub fn lookup(&self, id: &str) -> Lookup {
        match self.keys.read().get(id) {
            Some(r) if r.revoked => Lookup::Revoked,
            Some(r) => Lookup::Valid(r.secret.clone()),
            None => Lookup::Unknown,
        }
    }

    /// The commands that bring the replicated keys in line with node `me`'s credentials
    /// file: `file` (id → (secret, profile)) as it is now, `before` as it was at the last
    /// look (`None` at start: then keys this node published first and its file no longer
    /// holds are revoked).
    pub fn reconcile(
        &self,
        me: u64,
        file: &HashMap<String, (String, String)>,
        before: Option<&HashMap<String, (String, String)>>,
    ) -> Vec<Command> {
        let keys = self.keys.read();
        let mut out = Vec::new();
        for (id, (secret, profile)) in file {
            if !keys.contains_key(id) {
                out.push(Command::Put { id: id.clone(), secret: secret.clone(), profile: profile.clone(), origin: me });
            }
        }
        let gone: Vec<String> = match before {
            Some(before) => before.keys().filter(|id| !file.contains_key(*id)).cloned().collect(),
            None => keys
                .iter()
                .filter(|(id, r)| r.origin == me && !file.contains_key(*id))
                .map(|(id, _)| id.clone())
                .collect(),
        };
        for id in gone {
            if keys.get(&id).is_none_or(|r| !r.revoked) {
                out.push(Command::Revoke { id });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: &[(&str, &str)]) -> HashMap<String, (String, String)> {
        entries.iter().map(|(id, s)| (id.to_string(), (s.to_string(), "default".to_string()))).collect()
    }

    fn apply_all(keys: &AccessKeys, commands: Vec<Command>) {
        for c in commands {
            keys.apply(c, &mut Batch::new()).unwrap();
        }
    }

    #[test]
    fn a_key_in_any_file_is_valid_everywhere_and_a_deleted_one_is_refused_everywhere() {
        let keys = AccessKeys::default();
        let node1 = file(&[("AKIA1", "s1")]);
        apply_all(&keys, keys.reconcile(1, &node1, None));
        assert_eq!(keys.lookup("AKIA1"), Lookup::Valid("s1".into()));
        // Node 2 has a copy of the same file and a key of its own.
        let node2 = file(&[("AKIA1", "s1"), ("AKIA2", "s2")]);
        apply_all(&keys, keys.reconcile(2, &node2, None));
        assert_eq!(keys.lookup("AKIA2"), Lookup::Valid("s2".into()));
        // Node 2 deletes AKIA1 from its file: revoked everywhere, and node 1's copy cannot
        // bring it back.
        let node2_after = file(&[("AKIA2", "s2")]);
        apply_all(&keys, keys.reconcile(2, &node2_after, Some(&node2)));
        assert_eq!(keys.lookup("AKIA1"), Lookup::Revoked);
        assert!(keys.reconcile(1, &node1, Some(&node1)).is_empty());
        assert_eq!(keys.lookup("AKIA1"), Lookup::Revoked);
        assert_eq!(keys.lookup("AKIA9"), Lookup::Unknown);
    }

    #[test]
    fn a_key_removed_while_its_node_was_down_is_revoked_at_its_next_start() {
        let keys = AccessKeys::default();
        apply_all(&keys, keys.reconcile(3, &file(&[("AKIA3", "s3")]), None));
        apply_all(&keys, keys.reconcile(3, &file(&[]), None));
        assert_eq!(keys.lookup("AKIA3"), Lookup::Revoked);
    }
}
