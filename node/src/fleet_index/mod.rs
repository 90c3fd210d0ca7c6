//! Fleet indexing: each node's own index of its fleet, built from the replicated state its
//! groups apply (registry from `meta`, shadows from their shards) and from device
//! connectivity, and searched with AWS's query language (`ferrite_aws::fleet_query`).
//! Nothing here is proposed: an index change costs no consensus, and every node answers
//! queries from its own copy (AWS documents the index as eventually consistent).
//!
//! - `config`: the replicated indexing configuration.
//! - `documents`: the indexed documents of things and thing groups, and SearchIndex's shapes.
//! - `metrics`: fleet metric records (their values are computed by `fleet_runtime`).
//! - this module: the index, its updates, searches and aggregations.

pub mod config;
pub mod documents;
pub mod metrics;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ferrite_aws::fleet_query::{self, Query};
use parking_lot::RwLock;
use serde_json::Value;

use crate::registry::Registry;
use config::IndexingConfiguration;
use documents::{Connectivity, ThingEntry};

/// The index of one node.
#[derive(Debug, Default)]
pub struct FleetIndex {
    inner: RwLock<Inner>,
    /// Grows with every change: what is computed from the index (dynamic group membership)
    /// is computed again only when it moved.
    changes: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    config: IndexingConfiguration,
    /// Thing name -> what is known of it (registry part, shadows, connectivity).
    things: BTreeMap<String, ThingEntry>,
    /// (lower-cased thing name, thing name) pairs (queries match names ignoring case): a query
    /// that names a thing, or a name prefix, reads only those.
    by_lower_name: BTreeSet<(Box<str>, Box<str>)>,
    /// Thing group name -> its document.
    groups: BTreeMap<String, Value>,
    /// Client id -> connectivity, kept for things created after their device connected.
    connectivity: HashMap<String, Connectivity>,
}

/// What a query says of the thing name, when every match must satisfy it: one name, or a
/// name prefix (both lower-cased).
enum NameHint {
    Exact(String),
    Prefix(String),
}

/// The name hint of a query: a `thingName:` term (exact, or a trailing-`*` pattern) that is
/// the query or one of its top-level AND terms.
fn names_hint(expr: &fleet_query::Expr) -> Option<NameHint> {
    use fleet_query::{Expr, Piece, Predicate};
    match expr {
        Expr::Term(t) if t.field.as_deref() == Some("thingName") => match &t.predicate {
            Predicate::Equals(v) => Some(NameHint::Exact(v.to_lowercase())),
            Predicate::Wildcard(p) => match p.pieces() {
                [Piece::Text(prefix), Piece::Any] if !prefix.is_empty() => {
                    Some(NameHint::Prefix(prefix.to_lowercase()))
                }
                _ => None,
            },
            _ => None,
        },
        Expr::And(terms) => terms.iter().find_map(names_hint),
        _ => None,
    }
}

fn inner_names_add(by_lower: &mut BTreeSet<(Box<str>, Box<str>)>, name: &str) {
    by_lower.insert((name.to_lowercase().into(), name.into()));
}

fn inner_names_remove(by_lower: &mut BTreeSet<(Box<str>, Box<str>)>, name: &str) {
    by_lower.remove(&(name.to_lowercase().into(), name.into()));
}

impl Inner {
    /// The thing names a hint allows, in name order.
    fn named(&self, hint: &NameHint) -> Vec<String> {
        let from = |lower: &str| (Box::<str>::from(lower), Box::<str>::from(""));
        let mut names: Vec<String> = match hint {
            NameHint::Exact(lower) => self
                .by_lower_name
                .range(from(lower)..)
                .take_while(|(k, _)| **k == **lower)
                .map(|(_, n)| n.to_string())
                .collect(),
            NameHint::Prefix(prefix) => self
                .by_lower_name
                .range(from(prefix)..)
                .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                .map(|(_, n)| n.to_string())
                .collect(),
        };
        names.sort();
        names
    }
}

/// One page of matching documents, and the token of the next.
pub type Page = (Vec<Value>, Option<String>);

impl FleetIndex {
    /// An empty index with everything off.
    pub fn new() -> FleetIndex {
        FleetIndex::default()
    }

    /// Takes a new configuration: every document is built again with it.
    pub fn configure(&self, config: IndexingConfiguration) {
        self.changed();
        let mut inner = self.inner.write();
        if inner.config == config {
            return;
        }
        inner.config = config;
        let Inner { config, things, .. } = &mut *inner;
        for (name, entry) in things.iter_mut() {
            entry.rebuild(name, config);
        }
    }

    fn changed(&self) {
        self.changes.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Grows with every change of the index.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The configuration the index follows.
    pub fn config(&self) -> IndexingConfiguration {
        self.inner.read().config.clone()
    }

    /// Reads the registry part of `names` again (created, updated, deleted, regrouped).
    pub fn things_changed(&self, registry: &Registry, names: &[String]) {
        self.changed();
        let mut inner = self.inner.write();
        let Inner { config, things, connectivity, by_lower_name, .. } = &mut *inner;
        for name in names {
            match documents::registry_part(registry, name) {
                Some(part) => {
                    inner_names_add(by_lower_name, name);
                    let entry = things.entry(name.clone()).or_default();
                    if entry.connectivity.is_none() {
                        entry.connectivity = connectivity.get(name).cloned();
                    }
                    entry.registry = Some(part);
                    entry.rebuild(name, config);
                }
                None => {
                    things.remove(name);
                    inner_names_remove(by_lower_name, name);
                }
            }
        }
    }

    /// Reads every thing and thing group of the registry again (start, a restored snapshot,
    /// a deleted group or type).
    pub fn rebuild_registry(&self, registry: &Registry) {
        let names: Vec<String> = registry.list_things(None).into_iter().map(|t| t.thing_name).collect();
        {
            let mut inner = self.inner.write();
            inner.things.retain(|n, _| names.binary_search(n).is_ok());
            inner.by_lower_name.clear();
        }
        self.things_changed(registry, &names);
        self.groups_changed(registry);
    }

    /// Reads every thing group again.
    pub fn groups_changed(&self, registry: &Registry) {
        self.changed();
        let docs = documents::group_documents(registry);
        self.inner.write().groups = docs;
    }

    /// A shadow was written (`doc`: its indexed part) or deleted (`None`).
    pub fn shadow_changed(&self, thing: &str, shadow: Option<&str>, doc: Option<Value>) {
        self.changed();
        let mut inner = self.inner.write();
        let Inner { config, things, .. } = &mut *inner;
        let entry = things.entry(thing.to_string()).or_default();
        match shadow {
            None => entry.shadow = doc,
            Some(name) => match doc {
                Some(d) => {
                    entry.named.insert(name.to_string(), d);
                }
                None => {
                    entry.named.remove(name);
                }
            },
        }
        entry.rebuild(thing, config);
    }

    /// A device connected or disconnected (its client id is its thing's name).
    pub fn connectivity_changed(&self, client_id: &str, state: Connectivity) {
        self.changed();
        let mut inner = self.inner.write();
        let Inner { config, things, connectivity, .. } = &mut *inner;
        if let Some(entry) = things.get_mut(client_id) {
            entry.connectivity = Some(state.clone());
            entry.rebuild(client_id, config);
        }
        connectivity.insert(client_id.to_string(), state);
    }

    /// SearchIndex on AWS_Things: the documents `query` matches, in thing name order, a
    /// page after `after`.
    pub fn search_things(&self, query: &Query, after: Option<&str>, size: usize) -> Page {
        let inner = self.inner.read();
        if let Some(names) = names_hint(query.expr()).map(|hint| inner.named(&hint)) {
            let mut out = Vec::new();
            let mut last = None;
            for name in names.into_iter().filter(|n| after.is_none_or(|a| n.as_str() > a)) {
                let Some(entry) = inner.things.get(&name) else { continue };
                let Some(doc) = entry.indexed.as_ref().filter(|d| query.matches(d)) else { continue };
                if out.len() == size {
                    return (out, last);
                }
                out.push(documents::search_thing(&name, entry, doc, &inner.config));
                last = Some(name);
            }
            return (out, None);
        }
        let start = after.map_or(std::ops::Bound::Unbounded, |a| std::ops::Bound::Excluded(a.to_string()));
        let mut out = Vec::new();
        let mut last = None;
        for (name, entry) in inner.things.range((start, std::ops::Bound::Unbounded)) {
            let Some(doc) = entry.indexed.as_ref() else { continue };
            if !query.matches(doc) {
                continue;
            }
            if out.len() == size {
                return (out, last);
            }
            out.push(documents::search_thing(name, entry, doc, &inner.config));
            last = Some(name.clone());
        }
        (out, None)
    }

    /// SearchIndex on AWS_ThingGroups.
    pub fn search_groups(&self, query: &Query, after: Option<&str>, size: usize) -> Page {
        let inner = self.inner.read();
        let start = after.map_or(std::ops::Bound::Unbounded, |a| std::ops::Bound::Excluded(a.to_string()));
        let mut out = Vec::new();
        let mut last = None;
        for (name, doc) in inner.groups.range((start, std::ops::Bound::Unbounded)) {
            if !query.matches(doc) {
                continue;
            }
            if out.len() == size {
                return (out, last);
            }
            out.push(doc.clone());
            last = Some(name.clone());
        }
        (out, None)
    }

    /// The values of `field` in the thing documents `query` matches (aggregations).
    /// Custom fields are already of their declared type in the documents (`documents`).
    pub fn thing_values(&self, query: &Query, field: &str) -> Vec<Value> {
        let inner = self.inner.read();
        let mut out = Vec::new();
        for entry in inner.things.values() {
            if let Some(doc) = entry.indexed.as_ref().filter(|d| query.matches(d)) {
                out.extend(fleet_query::field_values(doc, field));
            }
        }
        out
    }

    /// The names of the things `query` matches (dynamic groups).
    pub fn matching_things(&self, query: &Query) -> Vec<String> {
        let inner = self.inner.read();
        inner
            .things
            .iter()
            .filter(|(_, e)| e.indexed.as_ref().is_some_and(|d| query.matches(d)))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// How many things are indexed.
    pub fn thing_count(&self) -> usize {
        self.inner.read().things.values().filter(|e| e.indexed.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(q: &str) -> Option<String> {
        names_hint(fleet_query::parse(q).unwrap().expr()).map(|h| match h {
            NameHint::Exact(n) => format!("={n}"),
            NameHint::Prefix(p) => format!("{p}*"),
        })
    }

    #[test]
    fn a_query_that_names_things_reads_only_those_names() {
        assert_eq!(hint("thingName:Dev-1").as_deref(), Some("=dev-1"));
        assert_eq!(hint("thingName:dev-1* AND attributes.a:b").as_deref(), Some("dev-1*"));
        assert_eq!(hint("thingName:dev-1 OR attributes.a:b"), None, "an OR may match other names");
        assert_eq!(hint("NOT thingName:dev-1"), None);
        assert_eq!(hint("thingName:*dev"), None);
        let mut inner = Inner::default();
        for n in ["dev-1", "DEV-1", "dev-10", "other"] {
            inner_names_add(&mut inner.by_lower_name, n);
        }
        assert_eq!(inner.named(&NameHint::Exact("dev-1".into())), ["DEV-1", "dev-1"]);
        assert_eq!(inner.named(&NameHint::Prefix("dev-1".into())), ["DEV-1", "dev-1", "dev-10"]);
        inner_names_remove(&mut inner.by_lower_name, "DEV-1");
        assert_eq!(inner.named(&NameHint::Exact("dev-1".into())), ["dev-1"]);
    }
}
