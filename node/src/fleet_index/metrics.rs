//! Fleet metric records (Create/Describe/List/Update/DeleteFleetMetric): an aggregation of
//! the fleet index on a period. The records are replicated in the `meta` group; each node
//! computes the values from its own index (`fleet_runtime`) and exports them on `/metrics`.

use std::collections::BTreeMap;

use ferrite_aws::AwsError;
use ferrite_cluster::{Batch, StoreError, Table};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::identity::{key, load};

const METRIC: &str = "fleetmetric";

/// AWS's aggregation types and the values each may ask for.
pub const AGGREGATIONS: &[(&str, &[&str])] = &[
    ("Statistics", &["count", "average", "sum", "minimum", "maximum", "sumOfSquares", "variance", "stdDeviation"]),
    ("Cardinality", &["cardinality"]),
    ("Percentiles", &[]),
];

/// AWS's `AggregationType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationType {
    /// Statistics, Percentiles or Cardinality.
    pub name: String,
    /// Which values (statistics names; percents as text for Percentiles).
    #[serde(default)]
    pub values: Vec<String>,
}

impl AggregationType {
    /// Checks the name and values; the reason when they cannot work.
    pub fn check(&self) -> Result<(), AwsError> {
        let Some((_, allowed)) = AGGREGATIONS.iter().find(|(n, _)| *n == self.name) else {
            return Err(AwsError::invalid_request(format!(
                "Invalid aggregationType.name {:?}: Statistics, Percentiles or Cardinality",
                self.name
            )));
        };
        for v in &self.values {
            let ok = if self.name == "Percentiles" {
                v.parse::<f64>().is_ok_and(|p| (0.0..=100.0).contains(&p))
            } else {
                allowed.contains(&v.as_str())
            };
            if !ok {
                return Err(AwsError::invalid_request(format!(
                    "Invalid aggregationType value {v:?} for {}",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

/// One fleet metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetMetric {
    /// The name (unique).
    pub metric_name: String,
    /// `arn:aws:iot:REGION:ACCOUNT:fleetmetric/NAME`.
    pub metric_arn: String,
    /// The query, as written.
    pub query_string: String,
    /// The aggregation.
    pub aggregation_type: AggregationType,
    /// Seconds between computations (60 to 86,400).
    pub period: u64,
    /// The aggregated field.
    pub aggregation_field: String,
    /// Free text.
    pub description: Option<String>,
    /// `2017-09-30`.
    pub query_version: String,
    /// AWS_Things.
    pub index_name: String,
    /// The unit the values are in.
    pub unit: Option<String>,
    /// Unix seconds.
    pub creation_date: u64,
    /// Unix seconds.
    pub last_modified_date: u64,
    /// 1, then grows with every update.
    pub version: u64,
}

impl FleetMetric {
    /// DescribeFleetMetric's document.
    pub fn describe(&self) -> Value {
        let mut doc = json!({
            "metricName": self.metric_name,
            "metricArn": self.metric_arn,
            "queryString": self.query_string,
            "aggregationType": self.aggregation_type,
            "period": self.period,
            "aggregationField": self.aggregation_field,
            "queryVersion": self.query_version,
            "indexName": self.index_name,
            "creationDate": self.creation_date,
            "lastModifiedDate": self.last_modified_date,
            "version": self.version,
        });
        if let Some(d) = &self.description {
            doc["description"] = json!(d);
        }
        if let Some(u) = &self.unit {
            doc["unit"] = json!(u);
        }
        doc
    }
}

/// A change to fleet metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// CreateFleetMetric.
    Create { metric: FleetMetric },
    /// UpdateFleetMetric: the new record, at `expected_version` when given.
    Update { metric: FleetMetric, expected_version: Option<u64> },
    /// DeleteFleetMetric.
    Delete { name: String, expected_version: Option<u64> },
}

/// Every fleet metric.
#[derive(Debug, Default)]
pub struct FleetMetrics {
    all: RwLock<BTreeMap<String, FleetMetric>>,
}

/// AWS's 404 for a missing metric.
pub fn not_found(name: &str) -> AwsError {
    AwsError::new(404, "ResourceNotFoundException", format!("The fleet metric {name} does not exist"))
}

fn version_conflict(name: &str, expected: u64, actual: u64) -> AwsError {
    AwsError::new(
        409,
        "VersionConflictException",
        format!("The fleet metric {name} is at version {actual}, not {expected}"),
    )
}

impl FleetMetrics {
    /// Loads every stored metric.
    pub fn load(store: &impl ferrite_cluster::ReadRows) -> Result<FleetMetrics, StoreError> {
        Ok(FleetMetrics { all: RwLock::new(load(store, METRIC)?.into_iter().collect()) })
    }

    /// Takes over a restored snapshot's metrics.
    pub fn replace(&self, other: FleetMetrics) {
        *self.all.write() = other.all.into_inner();
    }

    /// Applies a committed command.
    pub fn apply(&self, command: Command, writes: &mut Batch) -> Result<(), AwsError> {
        let mut all = self.all.write();
        match command {
            Command::Create { metric } => {
                if all.contains_key(&metric.metric_name) {
                    return Err(AwsError::new(
                        409,
                        "ResourceAlreadyExistsException",
                        format!("The fleet metric {} already exists", metric.metric_name),
                    ));
                }
                writes.put(
                    Table::Registry,
                    key(METRIC, &metric.metric_name),
                    serde_json::to_vec(&metric).unwrap_or_default(),
                );
                all.insert(metric.metric_name.clone(), metric);
            }
            Command::Update { mut metric, expected_version } => {
                let name = metric.metric_name.clone();
                let current = all.get(&name).ok_or_else(|| not_found(&name))?;
                if let Some(v) = expected_version.filter(|v| *v != current.version) {
                    return Err(version_conflict(&name, v, current.version));
                }
                metric.version = current.version + 1;
                metric.creation_date = current.creation_date;
                writes.put(Table::Registry, key(METRIC, &name), serde_json::to_vec(&metric).unwrap_or_default());
                all.insert(name, metric);
            }
            Command::Delete { name, expected_version } => {
                let current = all.get(&name).ok_or_else(|| not_found(&name))?;
                if let Some(v) = expected_version.filter(|v| *v != current.version) {
                    return Err(version_conflict(&name, v, current.version));
                }
                all.remove(&name);
                writes.delete(Table::Registry, key(METRIC, &name));
            }
        }
        Ok(())
    }

    /// A metric by name.
    pub fn get(&self, name: &str) -> Option<FleetMetric> {
        self.all.read().get(name).cloned()
    }

    /// Every metric, in name order.
    pub fn list(&self) -> Vec<FleetMetric> {
        self.all.read().values().cloned().collect()
    }
}
