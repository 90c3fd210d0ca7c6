//! The registry (issue 6): things, thing types and static thing groups with membership
//! (`things`, `types`, `groups`: the pure rules). Records are kept in
//! the `registry` column family, written durably before a command answers, and loaded whole
//! at start.

pub mod groups;
pub mod things;
pub mod types;

use std::collections::BTreeMap;

use ferrite_cluster::{Batch, Store, StoreError, Table};
use parking_lot::RwLock;

use groups::ThingGroup;
use things::{NewThing, RegistryError, Thing, ThingUpdate};
use types::ThingType;

/// Is `s` an AWS IoT resource name (`[a-zA-Z0-9:_-]`, 1 to `max` bytes): thing, thing
/// type, thing group and shadow names all follow this pattern.
pub fn is_resource_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

/// The account id in ARNs until accounts exist.
pub const ACCOUNT_ID: &str = "000000000000";

fn key(kind: &[u8], name: &str) -> Vec<u8> {
    let mut k = kind.to_vec();
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

fn thing_key(name: &str) -> Vec<u8> {
    key(b"thing", name)
}

fn type_key(name: &str) -> Vec<u8> {
    key(b"type", name)
}

fn group_key(name: &str) -> Vec<u8> {
    key(b"group", name)
}

fn new_id() -> String {
    let id = format!("{:032x}", rand::random::<u128>());
    format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..])
}

fn storage_failed(e: StoreError) -> RegistryError {
    tracing::error!(error = %e, "registry write failed");
    RegistryError { status: 500, error_type: "InternalFailureException", message: "Internal service failure".into() }
}

/// Every stored record of one kind (`thing`, `type`, `group`), by name.
fn load_kind<T: serde::de::DeserializeOwned>(
    store: &Store,
    kind: &[u8],
    name_of: impl Fn(&T) -> String,
) -> Result<BTreeMap<String, T>, StoreError> {
    let mut out = BTreeMap::new();
    for (_, v) in store.scan_prefix(Table::Registry, &key(kind, ""))? {
        if let Ok(record) = serde_json::from_slice::<T>(&v) {
            out.insert(name_of(&record), record);
        }
    }
    Ok(out)
}

/// The node's registry.
#[derive(Debug, Default)]
pub struct Registry {
    things: RwLock<BTreeMap<String, Thing>>,
    types: RwLock<BTreeMap<String, ThingType>>,
    groups: RwLock<BTreeMap<String, ThingGroup>>,
}

impl Registry {
    /// Loads every record from storage.
    pub fn load(store: &Store) -> Result<Registry, StoreError> {
        Ok(Registry {
            things: RwLock::new(load_kind(store, b"thing", |t: &Thing| t.thing_name.clone())?),
            types: RwLock::new(load_kind(store, b"type", |t: &ThingType| t.thing_type_name.clone())?),
            groups: RwLock::new(load_kind(store, b"group", |g: &ThingGroup| g.name.clone())?),
        })
    }

    fn write(&self, store: &Store, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<(), RegistryError> {
        let mut batch = Batch::new();
        match value {
            Some(v) => batch.put(Table::Registry, key, v),
            None => batch.delete(Table::Registry, key),
        }
        batch.set_durable();
        store.write_now(batch).map_err(storage_failed)
    }

    /// `CreateThingType`.
    pub fn create_thing_type(
        &self,
        store: &Store,
        name: &str,
        description: Option<String>,
        searchable: Vec<String>,
        region: &str,
        now_s: u64,
    ) -> Result<ThingType, RegistryError> {
        let mut all = self.types.write();
        let arn_prefix = format!("arn:aws:iot:{region}:{ACCOUNT_ID}:");
        let t = types::create(all.get(name), name, description, searchable, &arn_prefix, new_id(), now_s)?;
        self.write(store, type_key(name), Some(serde_json::to_vec(&t).unwrap_or_default()))?;
        all.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// `DescribeThingType`.
    pub fn thing_type(&self, name: &str) -> Option<ThingType> {
        self.types.read().get(name).cloned()
    }

    /// `ListThingTypes`, in name order.
    pub fn thing_types(&self) -> Vec<ThingType> {
        self.types.read().values().cloned().collect()
    }

    /// `DeprecateThingType` (or undo it).
    pub fn deprecate_thing_type(&self, store: &Store, name: &str, undo: bool, now_s: u64) -> Result<(), RegistryError> {
        let mut all = self.types.write();
        let mut t = all.get(name).cloned().ok_or_else(|| types::not_found(name))?;
        t.deprecated = !undo;
        t.deprecation_date = (!undo).then_some(now_s);
        self.write(store, type_key(name), Some(serde_json::to_vec(&t).unwrap_or_default()))?;
        all.insert(name.to_string(), t);
        Ok(())
    }

    /// `DeleteThingType`: only a deprecated type that no thing has.
    pub fn delete_thing_type(&self, store: &Store, name: &str) -> Result<(), RegistryError> {
        let mut all = self.types.write();
        let using = self.things.read().values().filter(|t| t.thing_type_name.as_deref() == Some(name)).count();
        types::check_delete(all.get(name), name, using)?;
        self.write(store, type_key(name), None)?;
        all.remove(name);
        Ok(())
    }

    fn store_group(&self, store: &Store, g: &ThingGroup) -> Result<(), RegistryError> {
        self.write(store, group_key(&g.name), Some(serde_json::to_vec(g).unwrap_or_default()))
    }

    /// `CreateThingGroup`.
    #[allow(clippy::too_many_arguments)]
    pub fn create_thing_group(
        &self,
        store: &Store,
        name: &str,
        parent: Option<String>,
        description: Option<String>,
        attributes: BTreeMap<String, String>,
        region: &str,
        now_s: u64,
    ) -> Result<ThingGroup, RegistryError> {
        let mut all = self.groups.write();
        let arn_prefix = format!("arn:aws:iot:{region}:{ACCOUNT_ID}:");
        let g = groups::create(&all, name, parent, description, attributes, &arn_prefix, new_id(), now_s)?;
        if all.get(name) != Some(&g) {
            self.store_group(store, &g)?;
            all.insert(name.to_string(), g.clone());
        }
        Ok(g)
    }

    /// `DescribeThingGroup`: the group and its ancestors' (name, ARN), root first.
    pub fn thing_group(&self, name: &str) -> Option<(ThingGroup, Vec<(String, String)>)> {
        let all = self.groups.read();
        let g = all.get(name)?.clone();
        let chain = groups::ancestors(&all, name)
            .into_iter()
            .filter_map(|a| all.get(&a).map(|x| (x.name.clone(), x.arn.clone())))
            .collect();
        Some((g, chain))
    }

    /// `ListThingGroups`: all groups, or those under `parent` (directly, or at any depth).
    pub fn thing_groups(&self, parent: Option<&str>, recursive: bool) -> Vec<ThingGroup> {
        let all = self.groups.read();
        match parent {
            None => all.values().cloned().collect(),
            Some(p) => {
                let names: Vec<String> = if recursive {
                    groups::subtree(&all, p).into_iter().skip(1).collect()
                } else {
                    all.values().filter(|g| g.parent.as_deref() == Some(p)).map(|g| g.name.clone()).collect()
                };
                let mut out: Vec<ThingGroup> = names.iter().filter_map(|n| all.get(n).cloned()).collect();
                out.sort_by(|a, b| a.name.cmp(&b.name));
                out
            }
        }
    }

    /// `UpdateThingGroup`; the new version.
    pub fn update_thing_group(
        &self,
        store: &Store,
        name: &str,
        description: Option<String>,
        attributes: Option<(BTreeMap<String, String>, bool)>,
        expected_version: Option<u64>,
    ) -> Result<u64, RegistryError> {
        let mut all = self.groups.write();
        let g = groups::update(all.get(name), name, description, attributes, expected_version)?;
        self.store_group(store, &g)?;
        let version = g.version;
        all.insert(name.to_string(), g);
        Ok(version)
    }

    /// `DeleteThingGroup`.
    pub fn delete_thing_group(
        &self,
        store: &Store,
        name: &str,
        expected_version: Option<u64>,
    ) -> Result<(), RegistryError> {
        let mut all = self.groups.write();
        groups::check_delete(&all, name, expected_version)?;
        if all.contains_key(name) {
            self.write(store, group_key(name), None)?;
            all.remove(name);
        }
        Ok(())
    }

    /// `AddThingToThingGroup` / `RemoveThingFromThingGroup`.
    pub fn set_membership(&self, store: &Store, group: &str, thing: &str, member: bool) -> Result<(), RegistryError> {
        if !self.things.read().contains_key(thing) {
            return Err(things::RegistryError {
                status: 404,
                error_type: "ResourceNotFoundException",
                message: format!("Thing {thing} cannot be found."),
            });
        }
        let mut all = self.groups.write();
        if member {
            let current = all.values().filter(|g| g.things.contains(thing)).count();
            if all.get(group).is_some_and(|g| g.things.contains(thing)) {
                return Ok(());
            }
            groups::check_add(&all, group, current)?;
        }
        let mut g = all.get(group).cloned().ok_or_else(|| groups::not_found(group))?;
        let changed = if member { g.things.insert(thing.to_string()) } else { g.things.remove(thing) };
        if changed {
            g.version += 1;
            self.store_group(store, &g)?;
            all.insert(group.to_string(), g);
        }
        Ok(())
    }

    /// `ListThingsInThingGroup`: members of the group (and of the groups below it).
    pub fn things_in_group(&self, group: &str, recursive: bool) -> Result<Vec<String>, RegistryError> {
        let all = self.groups.read();
        if !all.contains_key(group) {
            return Err(groups::not_found(group));
        }
        let names = if recursive { groups::subtree(&all, group) } else { vec![group.to_string()] };
        let set: std::collections::BTreeSet<String> =
            names.iter().filter_map(|n| all.get(n)).flat_map(|g| g.things.iter().cloned()).collect();
        Ok(set.into_iter().collect())
    }

    /// `ListThingGroupsForThing`: (name, ARN) of the groups a thing is in.
    pub fn groups_of_thing(&self, thing: &str) -> Vec<(String, String)> {
        self.groups
            .read()
            .values()
            .filter(|g| g.things.contains(thing))
            .map(|g| (g.name.clone(), g.arn.clone()))
            .collect()
    }

    fn type_usable(&self, name: &str) -> Result<(), RegistryError> {
        types::usable(self.types.read().get(name), name)
    }

    fn store_thing(&self, store: &Store, thing: &Thing) -> Result<(), RegistryError> {
        self.write(store, thing_key(&thing.thing_name), Some(serde_json::to_vec(thing).unwrap_or_default()))
    }

    /// `CreateThing`; `region` is the one the caller signed for (it goes into the ARN).
    pub fn create_thing(&self, store: &Store, new: NewThing, region: &str) -> Result<Thing, RegistryError> {
        let mut things = self.things.write();
        let arn_prefix = format!("arn:aws:iot:{region}:{ACCOUNT_ID}:");
        let thing = things::create(things.get(&new.name), new, &arn_prefix, new_id(), |t| self.type_usable(t))?;
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
        let thing = things::update(things.get(name), name, u, |t| self.type_usable(t))?;
        self.store_thing(store, &thing)?;
        things.insert(name.to_string(), thing);
        Ok(())
    }

    /// `DeleteThing`.
    pub fn delete_thing(&self, store: &Store, name: &str, expected_version: Option<u64>) -> Result<(), RegistryError> {
        let mut things = self.things.write();
        things::check_delete(things.get(name), name, expected_version)?;
        if things.contains_key(name) {
            self.write(store, thing_key(name), None)?;
            things.remove(name);
            drop(things);
            let holding: Vec<String> =
                self.groups.read().values().filter(|g| g.things.contains(name)).map(|g| g.name.clone()).collect();
            for g in holding {
                let mut all = self.groups.write();
                if let Some(mut group) = all.get(&g).cloned() {
                    group.things.remove(name);
                    group.version += 1;
                    self.store_group(store, &group)?;
                    all.insert(g, group);
                }
            }
        }
        Ok(())
    }
}
