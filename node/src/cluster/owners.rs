//! Which node holds each client id's session (docs/ARCHITECTURE.md): the `owners`
//! group, a replicated map from client id to the node that last claimed it.
//!
//! A node claims a client id before it answers CONNACK; the claim's log index is its epoch.
//! Every member applies every claim in the same order, and a node that holds a session for
//! a client id another node has just claimed hands it over (its live connection gets 0x8E).
//! So once the cluster is whole again, at most one node holds a live session per client id,
//! and a node in a minority cannot accept a connection at all (its claim cannot commit).

use std::collections::HashMap;

use ferrite_cluster::{decode_rows, encode_rows, Batch, MemRows, ReadRows, StateMachine, StoreError, Table};
use parking_lot::RwLock;

/// The owners group's id in the group log.
pub const OWNERS_GROUP: u32 = 2000;

/// The prefix of owner rows in [`Table::Meta`].
const PREFIX: &[u8] = b"owner/";

/// Who holds a client id's session, and since which claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The node.
    pub node: u64,
    /// The log index of the claim (grows with every claim of any client id).
    pub epoch: u64,
}

/// Called on every member, in log order, for every applied claim: (client id, the new owner).
pub type OnClaim = Box<dyn Fn(&str, Owner) + Send + Sync>;

/// The replicated client-id ownership map.
#[derive(Default)]
pub struct Owners {
    table: RwLock<HashMap<String, Owner>>,
    /// What runs for each applied claim (the takeover's handover; none in tools and tests).
    on_claim: Option<OnClaim>,
}

/// A claim command: the claiming node (u64, big-endian), then the client id.
pub fn claim_command(node: u64, client_id: &str) -> Vec<u8> {
    let mut c = node.to_be_bytes().to_vec();
    c.extend_from_slice(client_id.as_bytes());
    c
}

/// A release command: node 0 (no node has it), the claim's epoch, then the client id. It
/// removes the row only while that claim is still the latest, so a release racing with a
/// new claim never removes the new owner.
pub fn release_command(epoch: u64, client_id: &str) -> Vec<u8> {
    let mut c = 0u64.to_be_bytes().to_vec();
    c.extend_from_slice(&epoch.to_be_bytes());
    c.extend_from_slice(client_id.as_bytes());
    c
}

fn row_key(client_id: &str) -> Vec<u8> {
    [PREFIX, client_id.as_bytes()].concat()
}

fn encode_owner(o: Owner) -> Vec<u8> {
    [o.node.to_be_bytes(), o.epoch.to_be_bytes()].concat()
}

fn decode_owner(v: &[u8]) -> Option<Owner> {
    Some(Owner {
        node: u64::from_be_bytes(v.get(0..8)?.try_into().ok()?),
        epoch: u64::from_be_bytes(v.get(8..16)?.try_into().ok()?),
    })
}

/// The end of the owner-row key range (`owner0`, the byte after `/`).
fn prefix_end() -> Vec<u8> {
    b"owner0".to_vec()
}

impl Owners {
    /// Loads the owner rows; `on_claim` runs for every claim applied from now on.
    pub fn load(rows: &impl ReadRows, on_claim: Option<OnClaim>) -> Result<Owners, StoreError> {
        let mut table = HashMap::new();
        for (k, v) in rows.scan_prefix(Table::Meta, PREFIX)? {
            let (Ok(client), Some(owner)) = (String::from_utf8(k[PREFIX.len()..].to_vec()), decode_owner(&v)) else {
                continue;
            };
            table.insert(client, owner);
        }
        Ok(Owners { table: RwLock::new(table), on_claim })
    }

    /// The current owner of `client_id` as applied here.
    pub fn owner(&self, client_id: &str) -> Option<Owner> {
        self.table.read().get(client_id).copied()
    }

    /// The client ids `node` owns, with their claims' epochs.
    pub fn owned_by(&self, node: u64) -> Vec<(String, u64)> {
        self.table.read().iter().filter(|(_, o)| o.node == node).map(|(c, o)| (c.clone(), o.epoch)).collect()
    }

    /// How many client ids have an owner.
    pub fn len(&self) -> usize {
        self.table.read().len()
    }

    /// True when no client id has an owner.
    pub fn is_empty(&self) -> bool {
        self.table.read().is_empty()
    }
}

impl StateMachine for Owners {
    /// The owner before this claim.
    type Output = Option<Owner>;

    fn apply(&self, index: u64, command: &[u8], writes: &mut Batch) -> Option<Owner> {
        let (node, client) = command.split_at_checked(8)?;
        let node = u64::from_be_bytes(node.try_into().ok()?);
        if node == 0 {
            let (epoch, client) = client.split_at_checked(8)?;
            let epoch = u64::from_be_bytes(epoch.try_into().ok()?);
            let client = std::str::from_utf8(client).ok()?;
            let mut table = self.table.write();
            let current = table.get(client).copied();
            if current.is_some_and(|o| o.epoch == epoch) {
                table.remove(client);
                writes.delete(Table::Meta, row_key(client));
            }
            return current;
        }
        let client = std::str::from_utf8(client).ok()?;
        let owner = Owner { node, epoch: index };
        let before = self.table.write().insert(client.to_string(), owner);
        writes.put(Table::Meta, row_key(client), encode_owner(owner));
        if let Some(hook) = &self.on_claim {
            hook(client, owner);
        }
        before
    }

    fn snapshot(&self) -> Vec<u8> {
        let table = self.table.read();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = table.iter().map(|(c, o)| (row_key(c), encode_owner(*o))).collect();
        encode_rows(&rows)
    }

    fn restore(&self, data: &[u8], writes: &mut Batch) -> Result<(), String> {
        let rows = decode_rows(data).ok_or("the owners snapshot is truncated")?;
        let mem = MemRows { table: Some(Table::Meta), rows: rows.iter().cloned().collect() };
        let fresh = Owners::load(&mem, None).map_err(|e| e.to_string())?;
        writes.delete_range(Table::Meta, PREFIX.to_vec(), prefix_end());
        for (k, v) in rows {
            writes.put(Table::Meta, k, v);
        }
        *self.table.write() = fresh.table.into_inner();
        Ok(())
    }

    /// Everything `apply` reads is in memory.
    fn applies_from_memory(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_answers_the_previous_owner_and_survives_a_snapshot() {
        let owners = Owners::default();
        let mut b = Batch::new();
        assert_eq!(owners.apply(7, &claim_command(1, "dev"), &mut b), None);
        assert_eq!(owners.apply(9, &claim_command(2, "dev"), &mut b), Some(Owner { node: 1, epoch: 7 }));
        assert_eq!(owners.owner("dev"), Some(Owner { node: 2, epoch: 9 }));
        assert_eq!(owners.apply(10, b"short", &mut b), None);
        let copy = Owners::default();
        copy.restore(&owners.snapshot(), &mut Batch::new()).unwrap();
        assert_eq!(copy.owner("dev"), Some(Owner { node: 2, epoch: 9 }));
        assert!(copy.restore(&[0, 0, 0, 9, 1], &mut Batch::new()).is_err());
    }

    #[test]
    fn a_release_removes_only_the_claim_it_names() {
        let owners = Owners::default();
        let mut b = Batch::new();
        owners.apply(7, &claim_command(1, "dev"), &mut b);
        owners.apply(8, &release_command(6, "dev"), &mut b);
        assert_eq!(owners.owner("dev"), Some(Owner { node: 1, epoch: 7 }), "an older claim's release");
        assert_eq!(owners.owned_by(1), vec![("dev".to_string(), 7)]);
        owners.apply(9, &release_command(7, "dev"), &mut b);
        assert_eq!(owners.owner("dev"), None);
        assert!(owners.is_empty());
    }

    #[test]
    fn every_member_hears_every_claim() {
        let heard = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let h = heard.clone();
        let hook: OnClaim = Box::new(move |c, o| h.lock().push((c.to_string(), o.node)));
        let owners = Owners { on_claim: Some(hook), ..Owners::default() };
        owners.apply(1, &claim_command(3, "a"), &mut Batch::new());
        assert_eq!(*heard.lock(), vec![("a".to_string(), 3)]);
    }
}
