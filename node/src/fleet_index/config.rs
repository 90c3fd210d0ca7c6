//! The indexing configuration (Update/GetIndexingConfiguration): what the fleet index holds
//! for things (registry, shadows, named shadows, connectivity, custom fields) and whether
//! thing groups are indexed. Replicated in the `meta` group, so every node indexes the same
//! fields; each node then builds its own index from what its groups apply.

use ferrite_aws::AwsError;
use ferrite_cluster::{Batch, StoreError, Table};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const KEY: &[u8] = b"indexingconfig\0";

/// A custom field (AWS's `Field`): a name and its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The dotted field name.
    pub name: String,
    /// Number, String or Boolean.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// AWS's `thingIndexingConfiguration` (the parts Ferrite acts on, and `managedFields`
/// computed from the modes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingIndexing {
    /// OFF, REGISTRY or REGISTRY_AND_SHADOW.
    pub thing_indexing_mode: String,
    /// OFF or STATUS.
    #[serde(default = "off")]
    pub thing_connectivity_indexing_mode: String,
    /// OFF or ON.
    #[serde(default = "off")]
    pub named_shadow_indexing_mode: String,
    /// OFF or VIOLATIONS (kept; there is no Device Defender here).
    #[serde(default = "off")]
    pub device_defender_indexing_mode: String,
    /// Named shadows indexed when named shadow indexing is ON.
    #[serde(default)]
    pub named_shadow_names: Vec<String>,
    /// Fields declared with a type (aggregations need them).
    #[serde(default)]
    pub custom_fields: Vec<Field>,
}

fn off() -> String {
    "OFF".into()
}

impl Default for ThingIndexing {
    fn default() -> Self {
        ThingIndexing {
            thing_indexing_mode: off(),
            thing_connectivity_indexing_mode: off(),
            named_shadow_indexing_mode: off(),
            device_defender_indexing_mode: off(),
            named_shadow_names: Vec::new(),
            custom_fields: Vec::new(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexingConfiguration {
    /// Things.
    pub things: ThingIndexing,
    /// ON or OFF.
    #[serde(default = "off")]
    pub thing_group_indexing_mode: String,
    /// Fields declared with a type on thing groups.
    #[serde(default)]
    pub thing_group_custom_fields: Vec<Field>,
}

impl Default for IndexingConfiguration {
    fn default() -> Self {
        IndexingConfiguration {
            things: ThingIndexing::default(),
            thing_group_indexing_mode: off(),
            thing_group_custom_fields: Vec::new(),
        }
    }
}

impl IndexingConfiguration {
    /// Things are indexed.
    pub fn things_on(&self) -> bool {
        self.things.thing_indexing_mode != "OFF"
    }

    /// Classic (and named, when on) shadows are indexed.
    pub fn shadows_on(&self) -> bool {
        self.things.thing_indexing_mode == "REGISTRY_AND_SHADOW"
    }

    /// Connectivity is indexed.
    pub fn connectivity_on(&self) -> bool {
        self.things_on() && self.things.thing_connectivity_indexing_mode == "STATUS"
    }

    /// A named shadow is indexed.
    pub fn named_shadow_on(&self, name: &str) -> bool {
        self.shadows_on()
            && self.things.named_shadow_indexing_mode == "ON"
            && self.things.named_shadow_names.iter().any(|n| n == name)
    }

    /// Thing groups are indexed.
    pub fn groups_on(&self) -> bool {
        self.thing_group_indexing_mode == "ON"
    }

    /// DescribeIndex's `schema` of AWS_Things.
    pub fn thing_schema(&self) -> &'static str {
        match (self.shadows_on(), self.connectivity_on()) {
            (false, false) => "REGISTRY",
            (true, false) => "REGISTRY_AND_SHADOW",
            (false, true) => "REGISTRY_AND_CONNECTIVITY_STATUS",
            (true, true) => "REGISTRY_AND_SHADOW_AND_CONNECTIVITY_STATUS",
        }
    }

    /// The declared type of a thing field, if any.
    pub fn field_type(&self, name: &str) -> Option<&str> {
        self.things.custom_fields.iter().find(|f| f.name == name).and_then(|f| f.kind.as_deref())
    }

    /// GetIndexingConfiguration's document.
    pub fn document(&self) -> Value {
        let t = &self.things;
        let mut managed = vec![
            json!({"name": "thingName", "type": "String"}),
            json!({"name": "thingId", "type": "String"}),
            json!({"name": "registry.version", "type": "Number"}),
        ];
        if self.shadows_on() {
            managed.push(json!({"name": "shadow.version", "type": "Number"}));
            managed.push(json!({"name": "shadow.hasDelta", "type": "Boolean"}));
        }
        if self.connectivity_on() {
            managed.push(json!({"name": "connectivity.connected", "type": "Boolean"}));
            managed.push(json!({"name": "connectivity.timestamp", "type": "Number"}));
            managed.push(json!({"name": "connectivity.disconnectReason", "type": "String"}));
        }
        let mut things = json!({
            "thingIndexingMode": t.thing_indexing_mode,
            "thingConnectivityIndexingMode": t.thing_connectivity_indexing_mode,
            "deviceDefenderIndexingMode": t.device_defender_indexing_mode,
            "namedShadowIndexingMode": t.named_shadow_indexing_mode,
            "managedFields": managed,
            "customFields": t.custom_fields,
        });
        if !t.named_shadow_names.is_empty() {
            things["filter"] = json!({ "namedShadowNames": t.named_shadow_names });
        }
        json!({
            "thingIndexingConfiguration": things,
            "thingGroupIndexingConfiguration": {
                "thingGroupIndexingMode": self.thing_group_indexing_mode,
                "managedFields": [
                    {"name": "thingGroupName", "type": "String"},
                    {"name": "thingGroupId", "type": "String"},
                ],
                "customFields": self.thing_group_custom_fields,
            },
        })
    }

    /// Checks the modes and field types; AWS's InvalidRequestException names the bad one.
    pub fn check(&self) -> Result<(), AwsError> {
        let one_of = |what: &str, v: &str, allowed: &[&str]| {
            if allowed.contains(&v) {
                Ok(())
            } else {
                Err(AwsError::invalid_request(format!("Invalid {what} {v:?}: one of {}", allowed.join(", "))))
            }
        };
        let t = &self.things;
        one_of("thingIndexingMode", &t.thing_indexing_mode, &["OFF", "REGISTRY", "REGISTRY_AND_SHADOW"])?;
        one_of("thingConnectivityIndexingMode", &t.thing_connectivity_indexing_mode, &["OFF", "STATUS"])?;
        one_of("namedShadowIndexingMode", &t.named_shadow_indexing_mode, &["OFF", "ON"])?;
        one_of("deviceDefenderIndexingMode", &t.device_defender_indexing_mode, &["OFF", "VIOLATIONS"])?;
        one_of("thingGroupIndexingMode", &self.thing_group_indexing_mode, &["OFF", "ON"])?;
        if t.thing_indexing_mode == "OFF" && t.thing_connectivity_indexing_mode != "OFF" {
            return Err(AwsError::invalid_request(
                "thingConnectivityIndexingMode needs thingIndexingMode REGISTRY or REGISTRY_AND_SHADOW",
            ));
        }
        if t.named_shadow_indexing_mode == "ON" && t.thing_indexing_mode != "REGISTRY_AND_SHADOW" {
            return Err(AwsError::invalid_request(
                "namedShadowIndexingMode ON needs thingIndexingMode REGISTRY_AND_SHADOW",
            ));
        }
        for f in t.custom_fields.iter().chain(&self.thing_group_custom_fields) {
            if let Some(kind) = &f.kind {
                one_of("custom field type", kind, &["Number", "String", "Boolean"])?;
            }
            if f.name.is_empty() {
                return Err(AwsError::invalid_request("A custom field needs a name"));
            }
        }
        Ok(())
    }
}

/// A change to the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// UpdateIndexingConfiguration: the whole new configuration.
    Set { config: IndexingConfiguration },
}

/// The replicated configuration.
#[derive(Debug, Default)]
pub struct Indexing {
    config: RwLock<IndexingConfiguration>,
}

impl Indexing {
    /// Loads the stored configuration (everything OFF when none).
    pub fn load(store: &impl ferrite_cluster::ReadRows) -> Result<Indexing, StoreError> {
        let config = match store.scan_prefix(Table::Registry, KEY)?.into_iter().next() {
            Some((_, bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                crate::metrics::undecodable_record("indexingconfig", "", &e.to_string());
                IndexingConfiguration::default()
            }),
            None => IndexingConfiguration::default(),
        };
        Ok(Indexing { config: RwLock::new(config) })
    }

    /// Takes over a restored snapshot's configuration.
    pub fn replace(&self, other: Indexing) {
        *self.config.write() = other.config.into_inner();
    }

    /// Applies a committed command.
    pub fn apply(&self, command: Command, writes: &mut Batch) -> Result<(), AwsError> {
        match command {
            Command::Set { config } => {
                config.check()?;
                writes.put(Table::Registry, KEY.to_vec(), serde_json::to_vec(&config).unwrap_or_default());
                *self.config.write() = config;
            }
        }
        Ok(())
    }

    /// The configuration now.
    pub fn get(&self) -> IndexingConfiguration {
        self.config.read().clone()
    }
}
