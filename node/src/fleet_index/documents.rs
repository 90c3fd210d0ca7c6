//! The documents the fleet index holds and answers with: a thing's indexed document
//! (registry fields, shadows, connectivity, as the configuration allows), a thing group's,
//! and SearchIndex's `things` entries.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::config::IndexingConfiguration;
use crate::registry::Registry;

/// A device's connection state (`connectivity.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connectivity {
    /// Connected now.
    pub connected: bool,
    /// When it last connected or disconnected, ms since the epoch.
    pub timestamp: u64,
    /// Why it disconnected (AWS's lifecycle reason), once it did.
    pub disconnect_reason: Option<String>,
}

/// The client id and connectivity a lifecycle presence event
/// (`$aws/events/presence/{connected|disconnected}/{clientId}`) tells, if it is one.
pub fn presence(topic: &str, payload: &[u8]) -> Option<(String, Connectivity)> {
    let rest = topic.strip_prefix("$aws/events/presence/")?;
    let (kind, client) = rest.split_once('/')?;
    let connected = match kind {
        "connected" => true,
        "disconnected" => false,
        _ => return None,
    };
    let doc: Value = serde_json::from_slice(payload).ok()?;
    let timestamp = doc.get("timestamp").and_then(Value::as_u64).unwrap_or(0);
    let disconnect_reason = doc.get("disconnectReason").and_then(Value::as_str).map(str::to_string);
    Some((client.to_string(), Connectivity { connected, timestamp, disconnect_reason }))
}

/// A thing's registry fields as the index keeps them: compact (a million things are held in
/// memory), and as stored (attributes are strings), which is what SearchIndex answers with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryPart {
    thing_id: Box<str>,
    thing_type_name: Option<Box<str>>,
    attributes: Box<[(Box<str>, Box<str>)]>,
    groups: Box<[Box<str>]>,
    version: u64,
}

/// What the index knows of one thing.
#[derive(Debug, Clone, Default)]
pub struct ThingEntry {
    /// The registry fields (absent: no such thing, only its shadow or connectivity is known).
    pub registry: Option<RegistryPart>,
    /// The classic shadow's indexed part.
    pub shadow: Option<Value>,
    /// Named shadows' indexed parts.
    pub named: BTreeMap<String, Value>,
    /// Connection state, once known.
    pub connectivity: Option<Connectivity>,
    /// The document queries see (none while the thing is not in the registry or things are
    /// not indexed). Registry and connectivity fields are flat dotted keys
    /// (`attributes.floor`, `connectivity.connected`) in one map: the query language finds a
    /// key holding dots as it finds nested keys, and one map per thing instead of four is
    /// most of the index's memory.
    pub indexed: Option<Value>,
}

impl ThingEntry {
    /// Builds the queried document again after a change.
    pub fn rebuild(&mut self, name: &str, config: &IndexingConfiguration) {
        self.indexed = match (&self.registry, config.things_on()) {
            (Some(registry), true) => Some(self.document(name, registry, config)),
            _ => None,
        };
    }

    fn document(&self, name: &str, registry: &RegistryPart, config: &IndexingConfiguration) -> Value {
        let mut doc = Map::new();
        doc.insert("thingName".into(), json!(name));
        doc.insert("thingId".into(), json!(&*registry.thing_id));
        if let Some(ty) = &registry.thing_type_name {
            doc.insert("thingTypeName".into(), json!(&**ty));
        }
        for (key, value) in registry.attributes.iter() {
            doc.insert(format!("attributes.{key}"), json!(&**value));
        }
        doc.insert("thingGroupNames".into(), json!(registry.groups));
        doc.insert("registry.version".into(), json!(registry.version));
        if config.shadows_on() {
            let mut shadow = match &self.shadow {
                Some(Value::Object(s)) => s.clone(),
                _ => Map::new(),
            };
            let named: Map<String, Value> = self
                .named
                .iter()
                .filter(|(n, _)| config.named_shadow_on(n))
                .map(|(n, d)| (n.clone(), d.clone()))
                .collect();
            if !named.is_empty() {
                shadow.insert("name".into(), Value::Object(named));
            }
            if !shadow.is_empty() {
                doc.insert("shadow".into(), Value::Object(shadow));
            }
        }
        if config.connectivity_on() {
            let c = self.connectivity.as_ref();
            doc.insert("connectivity.connected".into(), json!(c.is_some_and(|c| c.connected)));
            if let Some(c) = c {
                if c.timestamp > 0 {
                    doc.insert("connectivity.timestamp".into(), json!(c.timestamp));
                }
                if let Some(r) = &c.disconnect_reason {
                    doc.insert("connectivity.disconnectReason".into(), json!(r));
                }
            }
        }
        let mut doc = Value::Object(doc);
        for field in &config.things.custom_fields {
            if let Some(kind) = &field.kind {
                retype(&mut doc, &field.name, kind);
            }
        }
        doc
    }
}

/// Gives a custom field the type it is declared with: text holding a number becomes the
/// number (registry attributes are strings), `"true"`/`"false"` a boolean, so that ranges,
/// comparisons and statistics treat it as AWS does.
fn retype(doc: &mut Value, field: &str, kind: &str) {
    let mut at = doc;
    if at.get(field).is_some() {
        at = &mut at[field];
    } else {
        for part in field.split('.') {
            match at.get_mut(part) {
                Some(next) => at = next,
                None => return,
            }
        }
    }
    let Value::String(text) = &*at else { return };
    let typed = match kind {
        "Number" => text.trim().parse::<f64>().ok().and_then(|n| {
            if n.fract() == 0.0 && n.abs() < 9e15 {
                Some(Value::from(n as i64))
            } else {
                serde_json::Number::from_f64(n).map(Value::Number)
            }
        }),
        "Boolean" => match text.as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    };
    if let Some(v) = typed {
        *at = v;
    }
}

/// A thing's registry fields, or `None` when it does not exist.
pub fn registry_part(registry: &Registry, name: &str) -> Option<RegistryPart> {
    let t = registry.thing(name)?;
    let groups = registry.groups_of_thing(name).into_iter().map(|(g, _)| g.into_boxed_str()).collect();
    Some(RegistryPart {
        thing_id: t.thing_id.into_boxed_str(),
        thing_type_name: t.thing_type_name.map(String::into_boxed_str),
        attributes: t.attributes.into_iter().map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str())).collect(),
        groups,
        version: t.version,
    })
}

/// Every thing group's document, by name.
pub fn group_documents(registry: &Registry) -> BTreeMap<String, Value> {
    registry
        .thing_groups(None, true)
        .into_iter()
        .map(|g| {
            let parents: Vec<String> = registry
                .thing_group(&g.name)
                .map(|(_, chain)| chain.into_iter().map(|(n, _)| n).collect())
                .unwrap_or_default();
            let mut doc = json!({
                "thingGroupName": g.name,
                "thingGroupId": g.id,
                "attributes": g.attributes,
                "parentGroupNames": parents,
            });
            if let Some(d) = &g.description {
                doc["thingGroupDescription"] = json!(d);
            }
            (g.name.clone(), doc)
        })
        .collect()
}

/// SearchIndex's entry for a matching thing: the registry fields, `shadow` as a JSON
/// string, `connectivity` as an object.
/// The registry fields come as stored (attributes are strings), not as custom fields retype
/// them for queries.
pub fn search_thing(name: &str, entry: &ThingEntry, doc: &Value, config: &IndexingConfiguration) -> Value {
    let mut out = json!({ "thingName": name });
    if let Some(r) = &entry.registry {
        out["thingId"] = json!(&*r.thing_id);
        if let Some(ty) = &r.thing_type_name {
            out["thingTypeName"] = json!(&**ty);
        }
        out["thingGroupNames"] = json!(r.groups);
        let attributes: Map<String, Value> = r.attributes.iter().map(|(k, v)| (k.to_string(), json!(&**v))).collect();
        out["attributes"] = Value::Object(attributes);
    }
    if config.shadows_on() {
        if let Some(shadow) = doc.get("shadow") {
            out["shadow"] = json!(shadow.to_string());
        }
    }
    if config.connectivity_on() {
        let c = entry.connectivity.as_ref();
        let mut conn = json!({ "connected": c.is_some_and(|c| c.connected) });
        if let Some(c) = c {
            if c.timestamp > 0 {
                conn["timestamp"] = json!(c.timestamp);
            }
            if let Some(r) = &c.disconnect_reason {
                conn["disconnectReason"] = json!(r);
            }
        }
        out["connectivity"] = conn;
    }
    out
}
