//! The `meta` group's state machine (docs/ARCHITECTURE.md): the registry and the API-created
//! topic rules, changed only by [`Command`]s committed to the group's log. Low write rate,
//! needed everywhere: in a cluster every node holds all of it.

use std::sync::Arc;

use ferrite_cluster::{Batch, Group, GroupError, MemRows, ReadRows, StateMachine, Store, StoreError, Table};
use serde::{Deserialize, Serialize};

use crate::access_keys::{self, AccessKeys};
use crate::fleet_index::config::{self as indexing, Indexing};
use crate::fleet_index::metrics::{self as fleet_metrics, FleetMetrics};
use crate::identity::{self, Identity};
use crate::iot_logging::config::{self as logging, Logging};
use crate::jobs::{self, Jobs};
use crate::provisioning::{self, resolve, Provisioning};
use crate::registry::{self, Registry};
use crate::rules::api::{self, TopicRules};
use crate::tags::{self, Tags};
use ferrite_aws::AwsError;

/// The `meta` group's id in the group log.
pub const META_GROUP: u32 = 0;

/// A change to meta state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Things, thing types, thing groups.
    Registry(registry::Command),
    /// API-created topic rules.
    TopicRule(api::Command),
    /// Certificates, principal attachments, policies.
    Identity(identity::Command),
    /// API access keys every node accepts.
    AccessKey(access_keys::Command),
    /// Jobs, their executions, job templates, event configuration.
    Jobs(jobs::Command),
    /// Provisioning templates, the registration code, bulk registration tasks.
    Provisioning(provisioning::Command),
    /// One provisioning: the registry and identity changes of an evaluated template,
    /// checked and applied together.
    Provision(resolve::Request),
    /// The fleet indexing configuration.
    Indexing(indexing::Command),
    /// Resource tags.
    Tags(tags::Command),
    /// Fleet metrics.
    FleetMetric(fleet_metrics::Command),
    /// AWS IoT v2 logging options and levels.
    Logging(logging::Command),
}

/// What an applied command answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A registry command's answer.
    Registry(registry::Outcome),
    /// A topic-rule command succeeded.
    TopicRule,
    /// An identity command succeeded.
    Identity(identity::Applied),
    /// An access-key command succeeded.
    AccessKey,
    /// A jobs command's answer.
    Jobs(jobs::Outcome),
    /// A provisioning-state command's answer.
    Provisioning(provisioning::Outcome),
    /// What a provisioning made.
    Provisioned(resolve::Provisioned),
    /// The indexing configuration was set.
    Indexing,
    /// Tags changed.
    Tags,
    /// A fleet metric changed.
    FleetMetric,
    /// The logging configuration changed.
    Logging,
}

/// Which registry records an applied command changed, for the fleet index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryChange {
    /// These things (created, updated, deleted, regrouped).
    Things(Vec<String>),
    /// Thing groups (their documents), not their members.
    Groups,
    /// Anything: read it all again (a deleted group, a restored snapshot).
    All,
    /// The indexing configuration.
    Indexing,
}

/// What runs after a command changed registry records or the indexing configuration.
pub type RegistryChanged = Box<dyn Fn(&Meta, &RegistryChange) + Send + Sync>;

/// What runs after a topic-rule change is applied (the rule engine reloads them).
pub type RulesChanged = Box<dyn Fn(&TopicRules) + Send + Sync>;

/// The state the `meta` group replicates.
#[derive(Default)]
pub struct Meta {
    /// Things, thing types, thing groups.
    pub registry: Registry,
    /// Rules created through the API.
    pub topic_rules: TopicRules,
    /// Certificates, principal attachments, policies.
    pub identity: Identity,
    /// API access keys every node accepts.
    pub access_keys: AccessKeys,
    /// Jobs and their executions.
    pub jobs: Jobs,
    /// Provisioning templates, the registration code, bulk registration tasks.
    pub provisioning: Provisioning,
    /// The fleet indexing configuration.
    pub indexing: Indexing,
    /// Resource tags.
    pub tags: Tags,
    /// Fleet metric records.
    pub fleet_metrics: FleetMetrics,
    /// AWS IoT v2 logging options and levels.
    pub logging: Logging,
    /// Called after registry records or the indexing configuration changed (the fleet index).
    on_registry_changed: std::sync::OnceLock<RegistryChanged>,
    /// Called after every applied topic-rule change (the rule engine reloads).
    on_rules_changed: Option<RulesChanged>,
    /// Where the records live, read whole for a snapshot (none in unit tests).
    store: Option<Arc<Store>>,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("registry", &self.registry)
            .field("topic_rules", &self.topic_rules)
            .field("identity", &self.identity)
            .finish()
    }
}

impl Meta {
    /// Loads the meta state from storage; `on_rules_changed` runs with the API's topic rules
    /// now and after every change to them.
    pub fn load(store: &Arc<Store>, on_rules_changed: RulesChanged) -> Result<Meta, StoreError> {
        let mut meta = Meta::load_rows(&**store)?;
        meta.store = Some(store.clone());
        on_rules_changed(&meta.topic_rules);
        meta.on_rules_changed = Some(on_rules_changed);
        Ok(meta)
    }

    fn load_rows(rows: &impl ReadRows) -> Result<Meta, StoreError> {
        Ok(Meta {
            registry: Registry::load(rows)?,
            topic_rules: TopicRules::load(rows)?,
            identity: Identity::load(rows)?,
            access_keys: AccessKeys::load(rows)?,
            jobs: Jobs::load(rows)?,
            provisioning: Provisioning::load(rows)?,
            indexing: Indexing::load(rows)?,
            tags: Tags::load(rows)?,
            fleet_metrics: FleetMetrics::load(rows)?,
            logging: Logging::load(rows)?,
            on_registry_changed: std::sync::OnceLock::new(),
            on_rules_changed: None,
            store: None,
        })
    }
}

impl Meta {
    /// Applies one provisioning: every step is worked out and checked against the state
    /// first (`resolve`), so a refused provisioning changes nothing.
    fn provision(&self, req: &resolve::Request, writes: &mut Batch) -> Result<resolve::Provisioned, AwsError> {
        let (steps, made) = resolve::resolve(req, &self.registry, &self.identity)?;
        for step in steps {
            let applied = match step {
                resolve::Step::Registry(c) => self.registry.apply(c, writes).map(|_| ()),
                resolve::Step::Identity(c) => self.identity.apply(c, &self.registry, writes).map(|_| ()),
            };
            if let Err(e) = applied {
                // Checked above: only a bug gets here, and the steps before it stay applied
                // on every member alike.
                tracing::error!(error = %e.message, "a checked provisioning step failed");
                return Err(e);
            }
        }
        self.identity.touch();
        Ok(made)
    }
}

impl crate::identity::authz::Directory for Meta {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl StateMachine for Meta {
    type Output = Result<Outcome, AwsError>;

    fn apply(&self, index: u64, command: &[u8], writes: &mut Batch) -> Self::Output {
        let command: Command = serde_json::from_slice(command).map_err(|e| {
            tracing::error!(index, error = %e, "undecodable meta command skipped");
            crate::registry::things::internal_failure()
        })?;
        let change = registry_change(&command);
        let deleted = deleted_resource(&command);
        let outcome = self.apply_command(command, writes);
        if let (Ok(_), Some(resource)) = (&outcome, deleted) {
            self.tags.forget(&resource, writes);
        }
        if let (Ok(o), Some(mut change), Some(f)) = (&outcome, change.clone(), self.on_registry_changed.get()) {
            if let (RegistryChange::Things(names), Outcome::Provisioned(made)) = (&mut change, o) {
                names.extend(made.thing.iter().map(|(n, _)| n.clone()));
            }
            f(self, &change);
        }
        outcome
    }

    /// Every meta record: all of them live in the registry table.
    fn snapshot(&self) -> Vec<u8> {
        self.snapshot_rows()
    }

    fn restore(&self, data: &[u8], writes: &mut Batch) -> Result<(), String> {
        self.restore_rows(data, writes)
    }
}

/// The taggable resource `command` deletes, if it deletes one (`kind/name`): its tags go
/// with it.
fn deleted_resource(command: &Command) -> Option<String> {
    Some(match command {
        Command::Registry(registry::Command::DeleteThingGroup { name, .. }) => format!("thinggroup/{name}"),
        Command::Registry(registry::Command::DeleteThingType { name, .. }) => format!("thingtype/{name}"),
        Command::Identity(identity::Command::DeletePolicy { name }) => format!("policy/{name}"),
        Command::Identity(identity::Command::DeleteCaCertificate { id }) => format!("cacert/{id}"),
        Command::Identity(identity::Command::DeleteAuthorizer { name }) => format!("authorizer/{name}"),
        Command::TopicRule(api::Command::Delete { name }) => format!("rule/{name}"),
        Command::Jobs(jobs::Command::DeleteJob { job_id, .. }) => format!("job/{job_id}"),
        Command::Jobs(jobs::Command::DeleteTemplate { job_template_id }) => format!("jobtemplate/{job_template_id}"),
        Command::Provisioning(provisioning::Command::DeleteTemplate { name }) => format!("provisioningtemplate/{name}"),
        Command::FleetMetric(fleet_metrics::Command::Delete { name, .. }) => format!("fleetmetric/{name}"),
        _ => return None,
    })
}

/// The registry records `command` may change, for the fleet index.
fn registry_change(command: &Command) -> Option<RegistryChange> {
    use registry::Command as R;
    match command {
        Command::Registry(R::CreateThing { thing, .. }) => Some(RegistryChange::Things(vec![thing.name.clone()])),
        Command::Registry(R::UpdateThing { name, .. } | R::DeleteThing { name, .. }) => {
            Some(RegistryChange::Things(vec![name.clone()]))
        }
        Command::Registry(R::SetMembership { thing, .. }) => Some(RegistryChange::Things(vec![thing.clone()])),
        Command::Registry(
            R::CreateThingGroup { .. }
            | R::UpdateThingGroup { .. }
            | R::CreateDynamicThingGroup { .. }
            | R::UpdateDynamicThingGroup { .. },
        ) => Some(RegistryChange::Groups),
        Command::Registry(R::SetDynamicMembers { add, remove, .. }) => {
            Some(RegistryChange::Things(add.iter().chain(remove).cloned().collect()))
        }
        Command::Registry(R::DeleteThingGroup { .. }) => Some(RegistryChange::All),
        Command::Provision(_) => Some(RegistryChange::Things(Vec::new())),
        Command::Indexing(_) => Some(RegistryChange::Indexing),
        _ => None,
    }
}

impl Meta {
    /// Tells `f` of every registry change applied from now on (the fleet index).
    pub fn on_registry_changed(&self, f: RegistryChanged) {
        let _ = self.on_registry_changed.set(f);
    }

    fn apply_command(&self, command: Command, writes: &mut Batch) -> Result<Outcome, AwsError> {
        match command {
            Command::Registry(c) => {
                let (deleted_thing, deleted_group) = match &c {
                    registry::Command::DeleteThing { name, .. } => (Some(name.clone()), None),
                    registry::Command::DeleteThingGroup { name, .. } => (None, Some(name.clone())),
                    _ => (None, None),
                };
                let outcome = self.registry.apply(c, writes).map(Outcome::Registry)?;
                if let Some(name) = deleted_thing {
                    self.identity.forget_thing(&name, writes);
                    self.jobs.forget_thing(&name, writes);
                }
                if let Some(name) = deleted_group {
                    self.identity.forget_thing_group(&name, writes);
                }
                self.identity.touch();
                Ok(outcome)
            }
            Command::Identity(c) => self.identity.apply(c, &self.registry, writes).map(Outcome::Identity),
            Command::AccessKey(c) => self.access_keys.apply(c, writes).map(|()| Outcome::AccessKey),
            Command::Jobs(c) => self.jobs.apply(c, &self.registry, writes).map(Outcome::Jobs),
            Command::Provisioning(c) => self.provisioning.apply(c, writes).map(Outcome::Provisioning),
            Command::Provision(req) => self.provision(&req, writes).map(Outcome::Provisioned),
            Command::Indexing(c) => self.indexing.apply(c, writes).map(|()| Outcome::Indexing),
            Command::Tags(c) => self.tags.apply(c, writes).map(|()| Outcome::Tags),
            Command::FleetMetric(c) => self.fleet_metrics.apply(c, writes).map(|()| Outcome::FleetMetric),
            Command::Logging(c) => self.logging.apply(c, writes).map(|()| Outcome::Logging),
            Command::TopicRule(c) => {
                self.topic_rules.apply(c, writes)?;
                if let Some(f) = &self.on_rules_changed {
                    f(&self.topic_rules);
                }
                Ok(Outcome::TopicRule)
            }
        }
    }

    /// Every meta record: all of them live in the registry table.
    fn snapshot_rows(&self) -> Vec<u8> {
        let rows = match &self.store {
            Some(store) => store.scan_prefix(Table::Registry, b"").unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading the registry for a snapshot failed");
                Vec::new()
            }),
            None => Vec::new(),
        };
        ferrite_cluster::encode_rows(&rows)
    }

    fn restore_rows(&self, data: &[u8], writes: &mut Batch) -> Result<(), String> {
        let rows = ferrite_cluster::decode_rows(data).ok_or("a truncated meta snapshot")?;
        let rows = MemRows { table: Some(Table::Registry), rows: rows.into_iter().collect() };
        let fresh = Meta::load_rows(&rows).map_err(|e| e.to_string())?;
        writes.delete_range(Table::Registry, Vec::new(), vec![0xff; 16]);
        for (k, v) in rows.rows {
            writes.put(Table::Registry, k, v);
        }
        self.registry.replace(fresh.registry);
        self.topic_rules.replace(fresh.topic_rules);
        self.identity.replace(fresh.identity);
        self.access_keys.replace(fresh.access_keys);
        self.jobs.replace(fresh.jobs);
        self.provisioning.replace(fresh.provisioning);
        self.indexing.replace(fresh.indexing);
        self.tags.replace(fresh.tags);
        self.fleet_metrics.replace(fresh.fleet_metrics);
        self.logging.replace(fresh.logging);
        if let Some(f) = &self.on_rules_changed {
            f(&self.topic_rules);
        }
        if let Some(f) = self.on_registry_changed.get() {
            f(self, &RegistryChange::Indexing);
            f(self, &RegistryChange::All);
        }
        Ok(())
    }
}

/// Proposes `command` to the meta group and waits for its answer; a group that cannot
/// commit answers AWS's 500.
pub async fn propose(group: &Group<Meta>, command: Command) -> Result<Outcome, AwsError> {
    let bytes = serde_json::to_vec(&command).unwrap_or_default();
    match group.propose_wait(bytes).await {
        Ok(out) => out,
        Err(e) => Err(internal(e)),
    }
}

fn internal(e: GroupError) -> AwsError {
    tracing::error!(error = %e, "a meta command was not committed");
    crate::registry::things::internal_failure()
}
