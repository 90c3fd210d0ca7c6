//! The registry (issue 6, in progress): things so far (`things`, pure). Records are kept in
//! the `registry` column family, written durably before a command answers, and loaded whole
//! at start. Thing types and thing groups are still to come.

pub mod things;

use std::collections::BTreeMap;

use ferrite_cluster::{Batch, Store, StoreError, Table};
use parking_lot::RwLock;

use things::{NewThing, RegistryError, Thing, ThingUpdate};

/// The account id in ARNs until accounts exist.
pub const ACCOUNT_ID: &str = "000000000000";

fn thing_key(name: &str) -> Vec<u8> {
    let mut k = b"thing\0".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn storage_failed(e: StoreError) -> RegistryError {
    tracing::error!(error = %e, "registry write failed");
    RegistryError { status: 500, error_type: "InternalFailureException", message: "Internal service failure".into() }
}

/// The node's registry.
#[derive(Debug, Default)]
pub struct Registry {
    things: RwLock<BTreeMap<String, Thing>>,
}

impl Registry {
    /// Loads every record from storage.
    pub fn load(store: &Store) -> Result<Registry, StoreError> {
        let mut things = BTreeMap::new();
        for (_, v) in store.scan_prefix(Table::Registry, b"thing\0")? {
            if let Ok(t) = serde_json::from_slice::<Thing>(&v) {
                things.insert(t.thing_name.clone(), t);
            }
        }
        Ok(Registry { things: RwLock::new(things) })
    }

    fn store_thing(&self, store: &Store, thing: &Thing) -> Result<(), RegistryError> {
        let mut batch = Batch::new();
        batch.put(Table::Registry, thing_key(&thing.thing_name), serde_json::to_vec(thing).unwrap_or_default());
        batch.set_durable();
        store.write_now(batch).map_err(storage_failed)
    }

    /// `CreateThing`; `region` is the one the caller signed for (it goes into the ARN).
    pub fn create_thing(&self, store: &Store, new: NewThing, region: &str) -> Result<Thing, RegistryError> {
        let mut things = self.things.write();
        let id = format!("{:032x}", rand::random::<u128>());
        let id = format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..]);
        let thing = things::create(things.get(&new.name), new, &format!("arn:aws:iot:{region}:{ACCOUNT_ID}:"), id)?;
        if things.get(&thing.thing_name) != Some(&thing) {
            self.store_thing(store, &thing)?;
            things.insert(thing.thing_name.clone(), thing.clone());
        }
        Ok(thing)
    }

    /// `DescribeThing`.
    pub fn thing(&self, name: &str) -> Option<Thing> {
        self.things.read().get(name).cloned()
    }

    /// `ListThings`: things in name order after `after`, filtered by an attribute.
    pub fn list_things(&self, attribute: Option<(&str, &str, bool)>) -> Vec<Thing> {
        self.things
            .read()
            .values()
            .filter(|t| match attribute {
                None => true,
                Some((k, v, prefix)) => {
                    t.attributes.get(k).is_some_and(|have| if prefix { have.starts_with(v) } else { have == v })
                }
            })
            .cloned()
            .collect()
    }

    /// `UpdateThing`.
    pub fn update_thing(&self, store: &Store, name: &str, u: ThingUpdate) -> Result<(), RegistryError> {
        let mut things = self.things.write();
        let thing = things::update(things.get(name), name, u)?;
        self.store_thing(store, &thing)?;
        things.insert(name.to_string(), thing);
        Ok(())
    }

    /// `DeleteThing`.
    pub fn delete_thing(&self, store: &Store, name: &str, expected_version: Option<u64>) -> Result<(), RegistryError> {
        let mut things = self.things.write();
        things::check_delete(things.get(name), name, expected_version)?;
        if things.contains_key(name) {
            let mut batch = Batch::new();
            batch.delete(Table::Registry, thing_key(name));
            batch.set_durable();
            store.write_now(batch).map_err(storage_failed)?;
            things.remove(name);
        }
        Ok(())
    }
}
