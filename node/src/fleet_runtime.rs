//! The fleet index at run time: dynamic thing groups follow their queries (the `meta`
//! leader compares each group's members with what its index matches and proposes the
//! difference, so membership is replicated state that policies and continuous jobs use),
//! and fleet metrics are computed from this node's index on their period and exported on
//! `/metrics`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrite_aws::fleet_query;
use ferrite_cluster::Group;
use parking_lot::Mutex;

use crate::fleet_index::metrics::FleetMetric;
use crate::fleet_index::FleetIndex;
use crate::meta::{Command, Meta};
use crate::registry::Command as RegistryCommand;

/// How often dynamic groups are compared with the index and metrics looked at.
const EVERY: Duration = Duration::from_millis(300);
/// Most things one membership change moves.
const MAX_MOVES: usize = 1000;

/// The values of one fleet metric as last computed: (aggregation value name, value).
type Values = Vec<(String, f64)>;

/// Dynamic groups and fleet metrics on one node.
pub struct FleetRuntime {
    meta: Arc<Group<Meta>>,
    index: Arc<FleetIndex>,
    /// Metric name -> when and at which version it was computed, and its values.
    metrics: Mutex<HashMap<String, (Instant, u64, Values)>>,
    /// The index's change count when every dynamic group last matched it (plus one; 0:
    /// never): until it moves, there is nothing to compare.
    reconciled_at: std::sync::atomic::AtomicU64,
}

impl FleetRuntime {
    /// A runtime over `meta` and this node's `index`; nothing runs until `serve`.
    pub fn new(meta: Arc<Group<Meta>>, index: Arc<FleetIndex>) -> Arc<FleetRuntime> {
        Arc::new(FleetRuntime { meta, index, metrics: Mutex::default(), reconciled_at: Default::default() })
    }

    /// Starts the loop on the current actix runtime.
    pub fn serve(self: &Arc<Self>) {
        let me = self.clone();
        actix_rt::spawn(async move {
            loop {
                tokio::time::sleep(EVERY).await;
                if me.meta.status().role == "leader" {
                    me.reconcile_dynamic_groups().await;
                }
                me.compute_metrics();
            }
        });
    }

    /// Proposes, for every dynamic group whose members differ from what its query matches
    /// in this node's index, the things that join and leave.
    async fn reconcile_dynamic_groups(&self) {
        use std::sync::atomic::Ordering;
        let seen = self.index.changes() + 1;
        if self.reconciled_at.load(Ordering::Acquire) == seen {
            return; // nothing changed since every group matched its query
        }
        let changes: Vec<RegistryCommand> = {
            let meta = self.meta.state();
            let config = self.index.config();
            if !config.things_on() {
                return;
            }
            meta.registry
                .thing_groups(None, true)
                .into_iter()
                .filter_map(|g| {
                    let q = g.query.as_ref()?;
                    let query = fleet_query::parse(&q.query_string).ok()?;
                    let wanted: BTreeSet<String> = self.index.matching_things(&query).into_iter().collect();
                    let add: Vec<String> = wanted.difference(&g.things).take(MAX_MOVES).cloned().collect();
                    let remove: Vec<String> = g.things.difference(&wanted).take(MAX_MOVES).cloned().collect();
                    (!add.is_empty() || !remove.is_empty()).then_some(RegistryCommand::SetDynamicMembers {
                        group: g.name.clone(),
                        add,
                        remove,
                    })
                })
                .collect()
        };
        if changes.is_empty() {
            self.reconciled_at.store(seen, Ordering::Release);
        }
        // Applied changes move the index, so the next round compares again (and records
        // the count once nothing differs).
        for c in changes {
            if let Err(e) = crate::meta::propose(&self.meta, Command::Registry(c)).await {
                tracing::warn!(error = %e.message, "a dynamic group's membership change was not committed");
            }
        }
    }

    /// Computes every metric that is new, changed, or due.
    fn compute_metrics(&self) {
        let metrics = self.meta.state().fleet_metrics.list();
        let mut computed = self.metrics.lock();
        computed.retain(|name, _| metrics.iter().any(|m| &m.metric_name == name));
        for m in metrics {
            let due = match computed.get(&m.metric_name) {
                Some((at, version, _)) => *version != m.version || at.elapsed() >= Duration::from_secs(m.period),
                None => true,
            };
            if due {
                let values = self.values_of(&m);
                computed.insert(m.metric_name.clone(), (Instant::now(), m.version, values));
            }
        }
    }

    fn values_of(&self, m: &FleetMetric) -> Values {
        let Ok(query) = fleet_query::parse(&m.query_string) else { return Vec::new() };
        let values = self.index.thing_values(&query, &m.aggregation_field);
        let a = &m.aggregation_type;
        match a.name.as_str() {
            "Cardinality" => vec![("cardinality".into(), fleet_query::cardinality(&values) as f64)],
            "Percentiles" => {
                let percents: Vec<f64> = a.values.iter().filter_map(|v| v.parse().ok()).collect();
                let percents = if percents.is_empty() { fleet_query::DEFAULT_PERCENTS.to_vec() } else { percents };
                fleet_query::percentiles(&values, &percents).into_iter().map(|(p, v)| (format!("p{p}"), v)).collect()
            }
            _ => {
                let all: BTreeMap<&str, Option<f64>> = fleet_query::statistics(&values).named().into_iter().collect();
                let wanted: Vec<&str> = if a.values.is_empty() {
                    all.keys().copied().collect()
                } else {
                    a.values.iter().map(String::as_str).collect()
                };
                wanted.into_iter().filter_map(|k| all.get(k).copied().flatten().map(|v| (k.to_string(), v))).collect()
            }
        }
    }

    /// The metrics in Prometheus's text format: `ferrite_fleet_metric{metric, aggregation}`.
    pub fn render(&self) -> String {
        let computed = self.metrics.lock();
        if computed.is_empty() {
            return String::new();
        }
        let mut out = String::from(
            "# HELP ferrite_fleet_metric Fleet metrics (CreateFleetMetric), computed from this node's fleet index.\n\
             # TYPE ferrite_fleet_metric gauge\n",
        );
        let mut names: Vec<&String> = computed.keys().collect();
        names.sort();
        for name in names {
            for (aggregation, v) in &computed[name].2 {
                let metric = name.replace('\\', "\\\\").replace('"', "\\\"");
                out.push_str(&format!(
                    "ferrite_fleet_metric{{metric=\"{metric}\",aggregation=\"{aggregation}\"}} {v}\n"
                ));
            }
        }
        out
    }
}
