//! The registry: things, thing types and static thing groups with membership
//! (`things`, `types`, `groups`: the pure rules). Every change is a [`Command`] applied by the
//! `meta` replicated group (see `crate::meta`); records live in the `registry` column family
//! and are loaded whole at start.

pub mod groups;
pub mod things;
pub mod types;

use std::collections::BTreeMap;

use ferrite_cluster::{Batch, ReadRows, StoreError, Table};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use ferrite_aws::AwsError;
use groups::ThingGroup;
use things::{NewThing, Thing, ThingUpdate};
use types::ThingType;

/// Is `s` an AWS IoT resource name (`[a-zA-Z0-9:_-]`, 1 to `max` bytes): thing, thing
/// type, thing group and shadow names all follow this pattern.
pub fn is_resource_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

/// The account id in ARNs unless `account_id` is configured.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

static ACCOUNT_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The account id in every ARN: the configured `account_id` (so policies copied from AWS,
/// which name the real account, match unchanged), else [`DEFAULT_ACCOUNT_ID`].
pub fn account_id() -> &'static str {
    ACCOUNT_ID.get().map_or(DEFAULT_ACCOUNT_ID, String::as_str)
}

/// Sets the account id once at start; it must be 12 digits, as AWS's are.
pub fn set_account_id(id: &str) -> Result<(), String> {
    check_account_id(id)?;
    if ACCOUNT_ID.get_or_init(|| id.to_string()) != id {
        return Err("the account id is already set".into());
    }
    Ok(())
}

/// Whether `id` can be an account id: 12 digits, as AWS's are.
pub fn check_account_id(id: &str) -> Result<(), String> {
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("account id {id:?} must be 12 digits, like AWS account ids"));
    }
    Ok(())
}

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

/// A fresh resource id (AWS's UUID form); chosen by the proposer, never by `apply`, so
/// every member of the group stores the same one.
pub fn new_id() -> String {
    let id = format!("{:032x}", rand::random::<u128>());
    format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..])
}

/// `arn:aws:iot:{region}:{account}:`, the start of every registry ARN, with this node's
/// account id.
pub fn arn_prefix(region: &str) -> String {
    ferrite_aws::arn::prefix(region, account_id())
}

/// Every stored record of one kind (`thing`, `type`, `group`), by name.
fn load_kind<T: serde::de::DeserializeOwned>(
    store: &impl ReadRows,
    kind: &[u8],
    name_of: impl Fn(&T) -> String,
) -> Result<BTreeMap<String, T>, StoreError> {
    let mut out = BTreeMap::new();
    for (k, v) in store.scan_prefix(Table::Registry, &key(kind, ""))? {
        match serde_json::from_slice::<T>(&v) {
            Ok(record) => {
                out.insert(name_of(&record), record);
            }
            Err(e) => crate::metrics::undecodable_record("registry", &String::from_utf8_lossy(&k), &e.to_string()),
        }
    }
    Ok(out)
}

/// A change to the registry. Ids, timestamps and ARN prefixes are chosen by the proposer so
/// that applying a command is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// `CreateThingType`.
    CreateThingType {
        name: String,
        description: Option<String>,
        searchable: Vec<String>,
        arn_prefix: String,
        id: String,
        now_s: u64,
    },
    /// `DeprecateThingType` (or undo it).
    DeprecateThingType { name: String, undo: bool, now_s: u64 },
    /// `DeleteThingType`: only a type that no thing has and that was deprecated at least
    /// `wait_s` seconds before `now_s`.
    DeleteThingType { name: String, now_s: u64, wait_s: u64 },
    /// `CreateThingGroup`.
    CreateThingGroup {
        name: String,
        parent: Option<String>,
        description: Option<String>,
        attributes: BTreeMap<String, String>,
        arn_prefix: String,
        id: String,
        now_s: u64,
    },
    /// `UpdateThingGroup`; `attributes` is (attributes, merge).
    UpdateThingGroup {
        name: String,
        description: Option<String>,
        attributes: Option<(BTreeMap<String, String>, bool)>,
        expected_version: Option<u64>,
    },
    /// `DeleteThingGroup`.
    DeleteThingGroup { name: String, expected_version: Option<u64> },
    /// `AddThingToThingGroup` (`member`) / `RemoveThingFromThingGroup` (static groups only).
    SetMembership { group: String, thing: String, member: bool },
    /// `CreateDynamicThingGroup`.
    CreateDynamicThingGroup {
        name: String,
        description: Option<String>,
        attributes: BTreeMap<String, String>,
        query: groups::DynamicQuery,
        arn_prefix: String,
        id: String,
        now_s: u64,
    },
    /// `UpdateDynamicThingGroup`: a new query (and description and attributes).
    UpdateDynamicThingGroup {
        name: String,
        description: Option<String>,
        attributes: Option<(BTreeMap<String, String>, bool)>,
        query_string: Option<String>,
        expected_version: Option<u64>,
    },
    /// A dynamic group's members follow its query (proposed by the `meta` leader from its
    /// fleet index): these things join, these leave.
    SetDynamicMembers { group: String, add: Vec<String>, remove: Vec<String> },
    /// `CreateThing`.
    CreateThing { thing: NewThing, arn_prefix: String, id: String },
    /// `UpdateThing`.
    UpdateThing { name: String, update: ThingUpdate },
    /// `DeleteThing` (also leaves every group).
    DeleteThing { name: String, expected_version: Option<u64> },
}

/// What an applied [`Command`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to report.
    Done,
    /// The thing created.
    Thing(Thing),
    /// The thing type created.
    ThingType(ThingType),
    /// The thing group created.
    Group(ThingGroup),
    /// The new version of an updated thing group.
    Version(u64),
}

fn put<T: Serialize>(writes: &mut Batch, key: Vec<u8>, record: &T) {
    writes.put(Table::Registry, key, serde_json::to_vec(record).unwrap_or_default());
}

/// The node's registry: the state the `meta` group applies registry commands to.
#[derive(Debug, Default)]
pub struct Registry {
    things: RwLock<BTreeMap<String, Thing>>,
    types: RwLock<BTreeMap<String, ThingType>>,
    groups: RwLock<BTreeMap<String, ThingGroup>>,
}

impl Registry {
    /// Loads every record from storage (or from a snapshot's rows).
    pub fn load(store: &impl ReadRows) -> Result<Registry, StoreError> {
        Ok(Registry {
            things: RwLock::new(load_kind(store, b"thing", |t: &Thing| t.thing_name.clone())?),
            types: RwLock::new(load_kind(store, b"type", |t: &ThingType| t.thing_type_name.clone())?),
            groups: RwLock::new(load_kind(store, b"group", |g: &ThingGroup| g.name.clone())?),
        })
    }

    /// Takes over `other`'s records (a restored snapshot).
    pub fn replace(&self, other: Registry) {
        *self.things.write() = other.things.into_inner();
        *self.types.write() = other.types.into_inner();
        *self.groups.write() = other.groups.into_inner();
    }

    /// Applies one committed command; its records go into `writes`.
    pub fn apply(&self, command: Command, writes: &mut Batch) -> Result<Outcome, AwsError> {
        match command {
            Command::CreateThingType { name, description, searchable, arn_prefix, id, now_s } => {
                let mut all = self.types.write();
                let t = types::create(all.get(&name), &name, description, searchable, &arn_prefix, id, now_s)?;
                put(writes, type_key(&name), &t);
                all.insert(name, t.clone());
                Ok(Outcome::ThingType(t))
            }
            Command::DeprecateThingType { name, undo, now_s } => {
                let mut all = self.types.write();
                let mut t = all.get(&name).cloned().ok_or_else(|| types::not_found(&name))?;
                t.deprecated = !undo;
                t.deprecation_date = (!undo).then_some(now_s);
                put(writes, type_key(&name), &t);
                all.insert(name, t);
                Ok(Outcome::Done)
            }
            Command::DeleteThingType { name, now_s, wait_s } => {
                let mut all = self.types.write();
                let using =
                    self.things.read().values().filter(|t| t.thing_type_name.as_deref() == Some(&*name)).count();
                types::check_delete(all.get(&name), &name, using, now_s, wait_s)?;
                writes.delete(Table::Registry, type_key(&name));
                all.remove(&name);
                Ok(Outcome::Done)
            }
            Command::CreateThingGroup { name, parent, description, attributes, arn_prefix, id, now_s } => {
                let mut all = self.groups.write();
                let g = groups::create(&all, &name, parent, description, attributes, &arn_prefix, id, now_s)?;
                if all.get(&name) != Some(&g) {
                    put(writes, group_key(&name), &g);
                    all.insert(name, g.clone());
                }
                Ok(Outcome::Group(g))
            }
            Command::UpdateThingGroup { name, description, attributes, expected_version } => {
                let mut all = self.groups.write();
                let g = groups::update(all.get(&name), &name, description, attributes, expected_version)?;
                put(writes, group_key(&name), &g);
                let version = g.version;
                all.insert(name, g);
                Ok(Outcome::Version(version))
            }
            Command::DeleteThingGroup { name, expected_version } => {
                let mut all = self.groups.write();
                groups::check_delete(&all, &name, expected_version)?;
                if all.remove(&name).is_some() {
                    writes.delete(Table::Registry, group_key(&name));
                }
                Ok(Outcome::Done)
            }
            Command::SetMembership { group, thing, member } => {
                if self.groups.read().get(&group).is_some_and(|g| g.query.is_some()) {
                    return Err(things::invalid(format!(
                        "The thing group {group} is dynamic: its members are the things its query matches"
                    )));
                }
                self.set_membership(&group, &thing, member, writes)
            }
            Command::CreateDynamicThingGroup { name, description, attributes, query, arn_prefix, id, now_s } => {
                let mut all = self.groups.write();
                let mut g = groups::create(&all, &name, None, description, attributes, &arn_prefix, id, now_s)?;
                match all.get(&name) {
                    Some(existing) if existing.query.as_ref() == Some(&query) => {
                        return Ok(Outcome::Group(existing.clone()))
                    }
                    Some(_) => {
                        return Err(AwsError::new(
                            409,
                            "ResourceAlreadyExistsException",
                            format!("Thing group {name} already exists with different properties"),
                        ))
                    }
                    None => {}
                }
                g.query = Some(query);
                put(writes, group_key(&name), &g);
                all.insert(name, g.clone());
                Ok(Outcome::Group(g))
            }
            Command::UpdateDynamicThingGroup { name, description, attributes, query_string, expected_version } => {
                let mut all = self.groups.write();
                if all.get(&name).is_some_and(|g| g.query.is_none()) {
                    return Err(things::invalid(format!("The thing group {name} is not dynamic")));
                }
                let mut g = groups::update(all.get(&name), &name, description, attributes, expected_version)?;
                if let (Some(q), Some(text)) = (g.query.as_mut(), query_string) {
                    q.query_string = text;
                }
                put(writes, group_key(&name), &g);
                let version = g.version;
                all.insert(name, g);
                Ok(Outcome::Version(version))
            }
            Command::SetDynamicMembers { group, add, remove } => {
                let things = self.things.read();
                let mut all = self.groups.write();
                let Some(g) = all.get_mut(&group).filter(|g| g.query.is_some()) else {
                    return Ok(Outcome::Done); // deleted, or no longer dynamic, since it was proposed
                };
                let mut changed = false;
                for t in add.into_iter().filter(|t| things.contains_key(t)) {
                    changed |= g.things.insert(t);
                }
                for t in &remove {
                    changed |= g.things.remove(t);
                }
                if changed {
                    put(writes, group_key(&group), &*g);
                }
                Ok(Outcome::Done)
            }
            Command::CreateThing { thing, arn_prefix, id } => {
                let mut things = self.things.write();
                let thing = things::create(things.get(&thing.name), thing, &arn_prefix, id, |t| self.type_usable(t))?;
                if things.get(&thing.thing_name) != Some(&thing) {
                    put(writes, thing_key(&thing.thing_name), &thing);
                    things.insert(thing.thing_name.clone(), thing.clone());
                }
                Ok(Outcome::Thing(thing))
            }
            Command::UpdateThing { name, update } => {
                let mut things = self.things.write();
                let thing = things::update(things.get(&name), &name, update, |t| self.type_usable(t))?;
                put(writes, thing_key(&name), &thing);
                things.insert(name, thing);
                Ok(Outcome::Done)
            }
            Command::DeleteThing { name, expected_version } => {
                let mut things = self.things.write();
                things::check_delete(things.get(&name), &name, expected_version)?;
                if things.remove(&name).is_some() {
                    writes.delete(Table::Registry, thing_key(&name));
                    for group in self.groups.write().values_mut().filter(|g| g.things.contains(&name)) {
                        group.things.remove(&name);
                        group.version += 1;
                        put(writes, group_key(&group.name), group);
                    }
                }
                Ok(Outcome::Done)
            }
        }
    }

    fn set_membership(&self, group: &str, thing: &str, member: bool, writes: &mut Batch) -> Result<Outcome, AwsError> {
        if !self.things.read().contains_key(thing) {
            return Err(things::missing("Thing", thing));
        }
        let mut all = self.groups.write();
        if member {
            if all.get(group).is_some_and(|g| g.things.contains(thing)) {
                return Ok(Outcome::Done);
            }
            let current = all.values().filter(|g| g.query.is_none() && g.things.contains(thing)).count();
            groups::check_add(&all, group, current)?;
        }
        let mut g = all.get(group).cloned().ok_or_else(|| groups::not_found(group))?;
        let changed = if member { g.things.insert(thing.to_string()) } else { g.things.remove(thing) };
        if changed {
            g.version += 1;
            put(writes, group_key(group), &g);
            all.insert(group.to_string(), g);
        }
        Ok(Outcome::Done)
    }

    fn type_usable(&self, name: &str) -> Result<(), AwsError> {
        types::usable(self.types.read().get(name), name)
    }

    /// `DescribeThingType`.
    pub fn thing_type(&self, name: &str) -> Option<ThingType> {
        self.types.read().get(name).cloned()
    }

    /// `ListThingTypes`, in name order.
    pub fn thing_types(&self) -> Vec<ThingType> {
        self.types.read().values().cloned().collect()
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

    /// `ListThingsInThingGroup`: members of the group (and of the groups below it).
    pub fn things_in_group(&self, group: &str, recursive: bool) -> Result<Vec<String>, AwsError> {
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

    /// `DescribeThing`.
    pub fn thing(&self, name: &str) -> Option<Thing> {
        self.things.read().get(name).cloned()
    }

    /// `ListThings`: things in name order, filtered by an attribute (name, value, prefix).
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
}
