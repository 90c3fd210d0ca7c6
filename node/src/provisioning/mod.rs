//! Provisioning: AWS IoT's provisioning templates (fleet provisioning and JITP), the
//! account's registration code and bulk registration tasks, as state the `meta` group
//! replicates; and how one provisioning turns into registry and identity changes
//! (`resolve`). The template language itself is `ferrite_aws::provisioning`; the MQTT API,
//! the hooks, just-in-time registration and the task runner are `provisioning_runtime`.
//!
//! - `templates`: template records, versions, hooks and their API documents.
//! - `tasks`: bulk registration task records.
//! - `resolve`: a provisioning request -> checked registry and identity commands.
//! - `tokens`: certificate ownership tokens, bound to one connection.
//! - `wire`: the MQTT API's topics and its JSON or CBOR payloads.

pub mod resolve;
pub mod tasks;
pub mod templates;
pub mod tokens;
pub mod wire;

use std::collections::BTreeMap;

use ferrite_aws::AwsError;
use ferrite_cluster::{Batch, StoreError, Table};
use parking_lot::RwLock;

use crate::identity::{key, load};
use serde::{Deserialize, Serialize};

use tasks::{Progress, TaskRecord};
use templates::{TemplateRecord, TemplateUpdate, Version, MAX_VERSIONS};

const TEMPLATE: &str = "provtemplate";
const TASK: &str = "regtask";
const REGISTRATION_CODE: &str = "regcode";

fn put<T: Serialize>(writes: &mut Batch, key: Vec<u8>, record: &T) {
    writes.put(Table::Registry, key, serde_json::to_vec(record).unwrap_or_default());
}

/// AWS's 404 for a missing template.
pub fn template_not_found(name: &str) -> AwsError {
    AwsError::new(404, "ResourceNotFoundException", format!("The provisioning template {name} does not exist"))
}

/// AWS's 404 for a missing task.
pub fn task_not_found(id: &str) -> AwsError {
    AwsError::new(404, "ResourceNotFoundException", format!("The thing registration task {id} does not exist"))
}

/// A change to provisioning state. Ids and times are chosen by the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// CreateProvisioningTemplate (version 1 is the default).
    CreateTemplate { record: TemplateRecord },
    /// UpdateProvisioningTemplate.
    UpdateTemplate { name: String, update: TemplateUpdate, now_s: u64 },
    /// DeleteProvisioningTemplate.
    DeleteTemplate { name: String },
    /// CreateProvisioningTemplateVersion.
    CreateVersion { name: String, body: String, set_as_default: bool, now_s: u64 },
    /// DeleteProvisioningTemplateVersion (never the default).
    DeleteVersion { name: String, version_id: u32 },
    /// GetRegistrationCode: keeps the first code proposed.
    SetRegistrationCode { code: String },
    /// DeleteRegistrationCode.
    DeleteRegistrationCode,
    /// StartThingRegistrationTask.
    StartTask { record: TaskRecord },
    /// A running task's progress, or its end.
    TaskProgress { task_id: String, progress: Progress },
    /// StopThingRegistrationTask: a running task becomes Cancelling.
    StopTask { task_id: String, now_s: u64 },
}

/// What an applied command answers beyond success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing more.
    Done,
    /// CreateProvisioningTemplateVersion: the version and whether it is the default.
    Version { version_id: u32, is_default: bool },
    /// GetRegistrationCode: the account's code.
    RegistrationCode(String),
}

/// The provisioning state of the `meta` group.
#[derive(Debug, Default)]
pub struct Provisioning {
    templates: RwLock<BTreeMap<String, TemplateRecord>>,
    tasks: RwLock<BTreeMap<String, TaskRecord>>,
    registration_code: RwLock<Option<String>>,
}

impl Provisioning {
    /// Loads every provisioning record from storage.
    pub fn load(store: &impl ferrite_cluster::ReadRows) -> Result<Provisioning, StoreError> {
        Ok(Provisioning {
            templates: RwLock::new(load(store, TEMPLATE)?.into_iter().collect()),
            tasks: RwLock::new(load(store, TASK)?.into_iter().collect()),
            registration_code: RwLock::new(
                load::<String>(store, REGISTRATION_CODE)?.into_iter().next().map(|(_, c)| c),
            ),
        })
    }

    /// Takes over `other`'s records (a restored snapshot).
    pub fn replace(&self, other: Provisioning) {
        *self.templates.write() = other.templates.into_inner();
        *self.tasks.write() = other.tasks.into_inner();
        *self.registration_code.write() = other.registration_code.into_inner();
    }

    /// Applies one committed command.
    pub fn apply(&self, command: Command, writes: &mut Batch) -> Result<Outcome, AwsError> {
        match command {
            Command::CreateTemplate { record } => {
                let mut all = self.templates.write();
                if all.contains_key(&record.template_name) {
                    return Err(AwsError::new(
                        409,
                        "ResourceAlreadyExistsException",
                        format!("The provisioning template {} already exists", record.template_name),
                    ));
                }
                put(writes, key(TEMPLATE, &record.template_name), &record);
                all.insert(record.template_name.clone(), record);
            }
            Command::UpdateTemplate { name, update, now_s } => {
                let mut all = self.templates.write();
                let t = all.get_mut(&name).ok_or_else(|| template_not_found(&name))?;
                if let Some(v) = update.default_version_id {
                    if !t.versions.iter().any(|x| x.version_id == v) {
                        return Err(AwsError::new(
                            404,
                            "ResourceNotFoundException",
                            format!("The provisioning template {name} has no version {v}"),
                        ));
                    }
                    t.default_version_id = v;
                }
                if let Some(d) = update.description {
                    t.description = Some(d);
                }
                if let Some(e) = update.enabled {
                    t.enabled = e;
                }
                if let Some(r) = update.provisioning_role_arn {
                    t.provisioning_role_arn = r;
                }
                if update.remove_pre_provisioning_hook {
                    t.pre_provisioning_hook = None;
                } else if let Some(h) = update.pre_provisioning_hook {
                    t.pre_provisioning_hook = Some(h);
                }
                t.last_modified_date = now_s;
                put(writes, key(TEMPLATE, &name), &*t);
            }
            Command::DeleteTemplate { name } => {
                if self.templates.write().remove(&name).is_none() {
                    return Err(template_not_found(&name));
                }
                writes.delete(Table::Registry, key(TEMPLATE, &name));
            }
            Command::CreateVersion { name, body, set_as_default, now_s } => {
                let mut all = self.templates.write();
                let t = all.get_mut(&name).ok_or_else(|| template_not_found(&name))?;
                if t.versions.len() >= MAX_VERSIONS {
                    return Err(AwsError::new(
                        409,
                        "VersionsLimitExceededException",
                        format!(
                            "The provisioning template {name} already has {MAX_VERSIONS} versions: delete one first"
                        ),
                    ));
                }
                let version_id = t.next_version_id;
                t.next_version_id += 1;
                t.versions.push(Version { version_id, body, creation_date: now_s });
                if set_as_default {
                    t.default_version_id = version_id;
                }
                t.last_modified_date = now_s;
                put(writes, key(TEMPLATE, &name), &*t);
                return Ok(Outcome::Version { version_id, is_default: set_as_default });
            }
            Command::DeleteVersion { name, version_id } => {
                let mut all = self.templates.write();
                let t = all.get_mut(&name).ok_or_else(|| template_not_found(&name))?;
                if !t.versions.iter().any(|v| v.version_id == version_id) {
                    return Err(AwsError::new(
                        404,
                        "ResourceNotFoundException",
                        format!("The provisioning template {name} has no version {version_id}"),
                    ));
                }
                if t.default_version_id == version_id {
                    return Err(AwsError::new(
                        409,
                        "DeleteConflictException",
                        format!("Version {version_id} is the default version of {name}: make another version the default first"),
                    ));
                }
                t.versions.retain(|v| v.version_id != version_id);
                put(writes, key(TEMPLATE, &name), &*t);
            }
            Command::SetRegistrationCode { code } => {
                let mut stored = self.registration_code.write();
                if let Some(existing) = &*stored {
                    return Ok(Outcome::RegistrationCode(existing.clone()));
                }
                put(writes, key(REGISTRATION_CODE, ""), &code);
                *stored = Some(code.clone());
                return Ok(Outcome::RegistrationCode(code));
            }
            Command::DeleteRegistrationCode => {
                *self.registration_code.write() = None;
                writes.delete(Table::Registry, key(REGISTRATION_CODE, ""));
            }
            Command::StartTask { record } => {
                let mut all = self.tasks.write();
                put(writes, key(TASK, &record.task_id), &record);
                all.insert(record.task_id.clone(), record);
            }
            Command::TaskProgress { task_id, progress } => {
                let mut all = self.tasks.write();
                let t = all.get_mut(&task_id).ok_or_else(|| task_not_found(&task_id))?;
                if t.is_finished() {
                    return Ok(Outcome::Done);
                }
                // A stop asked for meanwhile wins over a runner's "still running".
                t.status = if t.status == "Cancelling" && progress.status == "InProgress" {
                    "Cancelling".into()
                } else {
                    progress.status
                };
                t.message = progress.message.or(t.message.take());
                t.success_count = progress.success_count;
                t.failure_count = progress.failure_count;
                t.percentage_progress = progress.percentage_progress;
                t.last_modified_date = progress.now_s;
                put(writes, key(TASK, &task_id), &*t);
            }
            Command::StopTask { task_id, now_s } => {
                let mut all = self.tasks.write();
                let t = all.get_mut(&task_id).ok_or_else(|| task_not_found(&task_id))?;
                if t.status != "InProgress" {
                    return Err(AwsError::invalid_request(format!(
                        "The task {task_id} is {} and cannot be stopped",
                        t.status
                    )));
                }
                t.status = "Cancelling".into();
                t.last_modified_date = now_s;
                put(writes, key(TASK, &task_id), &*t);
            }
        }
        Ok(Outcome::Done)
    }

    /// A template by name.
    pub fn template(&self, name: &str) -> Option<TemplateRecord> {
        self.templates.read().get(name).cloned()
    }

    /// Every template, in name order.
    pub fn templates(&self) -> Vec<TemplateRecord> {
        self.templates.read().values().cloned().collect()
    }

    /// The account's registration code, once one was asked for.
    pub fn registration_code(&self) -> Option<String> {
        self.registration_code.read().clone()
    }

    /// A task by id.
    pub fn task(&self, id: &str) -> Option<TaskRecord> {
        self.tasks.read().get(id).cloned()
    }

    /// Every task, newest first.
    pub fn tasks(&self) -> Vec<TaskRecord> {
        let mut all: Vec<TaskRecord> = self.tasks.read().values().cloned().collect();
        all.sort_by(|a, b| b.creation_date.cmp(&a.creation_date).then(a.task_id.cmp(&b.task_id)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(name: &str) -> TemplateRecord {
        TemplateRecord {
            template_name: name.into(),
            template_arn: format!("arn:aws:iot:us-east-1:000000000000:provisioningtemplate/{name}"),
            description: None,
            enabled: true,
            kind: "FLEET_PROVISIONING".into(),
            provisioning_role_arn: "arn:aws:iam::000000000000:role/p".into(),
            pre_provisioning_hook: None,
            default_version_id: 1,
            versions: vec![Version { version_id: 1, body: "{}".into(), creation_date: 1 }],
            next_version_id: 2,
            creation_date: 1,
            last_modified_date: 1,
        }
    }

    #[test]
    fn versions_keep_one_default_and_at_most_five() {
        let p = Provisioning::default();
        let mut w = Batch::new();
        p.apply(Command::CreateTemplate { record: template("t") }, &mut w).unwrap();
        let again = p.apply(Command::CreateTemplate { record: template("t") }, &mut w).unwrap_err();
        assert_eq!(again.error_type, "ResourceAlreadyExistsException");
        for n in 2..=5 {
            let out = p
                .apply(
                    Command::CreateVersion { name: "t".into(), body: "{}".into(), set_as_default: n == 3, now_s: 2 },
                    &mut w,
                )
                .unwrap();
            assert_eq!(out, Outcome::Version { version_id: n, is_default: n == 3 });
        }
        let sixth = Command::CreateVersion { name: "t".into(), body: "{}".into(), set_as_default: false, now_s: 2 };
        assert_eq!(p.apply(sixth, &mut w).unwrap_err().error_type, "VersionsLimitExceededException");
        let default = p.apply(Command::DeleteVersion { name: "t".into(), version_id: 3 }, &mut w).unwrap_err();
        assert_eq!(default.error_type, "DeleteConflictException");
        p.apply(Command::DeleteVersion { name: "t".into(), version_id: 1 }, &mut w).unwrap();
        assert_eq!(p.template("t").unwrap().versions.len(), 4);
        assert_eq!(p.template("t").unwrap().default_version_id, 3);
    }

    #[test]
    fn the_first_registration_code_stays() {
        let p = Provisioning::default();
        let mut w = Batch::new();
        let first = p.apply(Command::SetRegistrationCode { code: "a".into() }, &mut w).unwrap();
        let second = p.apply(Command::SetRegistrationCode { code: "b".into() }, &mut w).unwrap();
        assert_eq!((first, second), (Outcome::RegistrationCode("a".into()), Outcome::RegistrationCode("a".into())));
    }
}
