//! What one provisioning changes, worked out against the registry and identity state it
//! is applied to: a [`Request`] (chosen by the proposer from an evaluated template, with
//! ids, ARNs and the time in it) becomes registry and identity commands, checked first, so
//! that a provisioning that cannot finish changes nothing. Pure: it reads state and returns
//! the steps; the `meta` group applies them in the same log entry.

use std::collections::{BTreeMap, BTreeSet};

use ferrite_aws::AwsError;
use serde::{Deserialize, Serialize};

use crate::identity::certs::Certificate;
use crate::identity::policies::{PolicyRecord, PolicyVersionRecord};
use crate::identity::{self, Identity};
use crate::registry::things::{NewThing, ThingUpdate};
use crate::registry::{self, Registry};

/// How a template treats a thing that exists already (AWS's `OverrideSettings`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Override {
    /// Take the template's value.
    Replace,
    /// Add the template's values to the stored ones.
    Merge,
    /// Refuse the provisioning when they differ.
    Fail,
    /// Keep the stored value.
    #[default]
    DoNothing,
}

impl From<ferrite_aws::provisioning::Override> for Override {
    fn from(o: ferrite_aws::provisioning::Override) -> Self {
        use ferrite_aws::provisioning::Override as O;
        match o {
            O::Replace => Override::Replace,
            O::Merge => Override::Merge,
            O::Fail => Override::Fail,
            O::DoNothing => Override::DoNothing,
        }
    }
}

/// The thing a template describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingInput {
    /// Its name.
    pub name: String,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// Thing type, if any.
    pub thing_type: Option<String>,
    /// Static groups it belongs to.
    pub groups: Vec<String>,
    /// OverrideSettings: attributes, type, groups.
    pub overrides: [Override; 3],
}

/// The certificate a template describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertificateInput {
    /// A registered certificate; the template sets its status.
    Existing {
        /// Its id.
        id: String,
        /// ACTIVE or INACTIVE.
        status: String,
    },
    /// A certificate registered by this provisioning (JITP, a CSR, a PEM).
    New {
        /// The record, with the status the template sets.
        record: Certificate,
    },
}

/// The policy a template describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyInput {
    /// A policy that exists.
    Named(String),
    /// A policy made from the template's document (created once; the name is the
    /// document's hash, so the same document is the same policy).
    Document {
        /// The generated name.
        name: String,
        /// Its ARN.
        arn: String,
        /// The document.
        document: String,
    },
}

/// One provisioning, as proposed to the `meta` group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The thing, if the template has one.
    pub thing: Option<ThingInput>,
    /// The certificate, if the template has one.
    pub certificate: Option<CertificateInput>,
    /// The policy, if the template has one.
    pub policy: Option<PolicyInput>,
    /// `arn:aws:iot:REGION:ACCOUNT:`.
    pub arn_prefix: String,
    /// The id a new thing gets.
    pub thing_id: String,
    /// Unix seconds.
    pub now_s: u64,
    /// The generation id of changed records.
    pub generation_id: String,
}

/// One change of a provisioning.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A registry command.
    Registry(registry::Command),
    /// An identity command.
    Identity(identity::Command),
}

/// What a provisioning made, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// The thing's name and ARN.
    pub thing: Option<(String, String)>,
    /// The certificate's id and ARN.
    pub certificate: Option<(String, String)>,
    /// The policy's name and ARN.
    pub policy: Option<(String, String)>,
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::invalid_request(message)
}

/// The steps of `req` against the current state, or why it cannot be provisioned.
pub fn resolve(req: &Request, registry: &Registry, identity: &Identity) -> Result<(Vec<Step>, Provisioned), AwsError> {
    let mut steps = Vec::new();
    let mut made = Provisioned::default();
    if let Some(thing) = &req.thing {
        made.thing = Some(thing_steps(req, thing, registry, &mut steps)?);
    }
    if let Some(cert) = &req.certificate {
        made.certificate = Some(certificate_steps(req, cert, identity, &mut steps)?);
    }
    if let Some(policy) = &req.policy {
        made.policy = Some(policy_steps(req, policy, identity, &mut steps)?);
        if let (Some((name, _)), Some((_, cert_arn))) = (&made.policy, &made.certificate) {
            steps
                .push(Step::Identity(identity::Command::AttachPolicy { name: name.clone(), target: cert_arn.clone() }));
        }
    }
    if let (Some((thing, _)), Some((_, cert_arn))) = (&made.thing, &made.certificate) {
        if !identity.is_attached(thing, cert_arn) {
            steps.push(Step::Identity(identity::Command::AttachThingPrincipal {
                thing: thing.clone(),
                principal: cert_arn.clone(),
            }));
        }
    }
    Ok((steps, made))
}

fn usable_type(registry: &Registry, name: &str) -> Result<(), AwsError> {
    match registry.thing_type(name) {
        None => Err(invalid(format!("The thing type {name} does not exist"))),
        Some(t) if t.deprecated => Err(invalid(format!("The thing type {name} is deprecated"))),
        Some(_) => Ok(()),
    }
}

fn thing_steps(
    req: &Request,
    thing: &ThingInput,
    registry: &Registry,
    steps: &mut Vec<Step>,
) -> Result<(String, String), AwsError> {
    let [attributes, type_override, groups_override] = thing.overrides;
    for g in &thing.groups {
        if registry.thing_group(g).is_none() {
            return Err(invalid(format!("The thing group {g} does not exist")));
        }
    }
    let name = thing.name.clone();
    let Some(stored) = registry.thing(&name) else {
        if let Some(t) = &thing.thing_type {
            usable_type(registry, t)?;
        }
        let new =
            NewThing { name: name.clone(), thing_type: thing.thing_type.clone(), attributes: thing.attributes.clone() };
        steps.push(Step::Registry(registry::Command::CreateThing {
            thing: new,
            arn_prefix: req.arn_prefix.clone(),
            id: req.thing_id.clone(),
        }));
        for g in &thing.groups {
            steps.push(Step::Registry(registry::Command::SetMembership {
                group: g.clone(),
                thing: name.clone(),
                member: true,
            }));
        }
        return Ok((name.clone(), format!("{}thing/{name}", req.arn_prefix)));
    };
    let conflict = |what: &str| {
        invalid(format!("The thing {name} exists with other {what} and the template's OverrideSettings say FAIL"))
    };
    let mut update = ThingUpdate::default();
    match attributes {
        Override::Replace if stored.attributes != thing.attributes => {
            update.attributes = Some(thing.attributes.clone())
        }
        Override::Merge if thing.attributes.iter().any(|(k, v)| stored.attributes.get(k) != Some(v)) => {
            update.attributes = Some(thing.attributes.clone());
            update.merge = true;
        }
        Override::Fail if stored.attributes != thing.attributes => return Err(conflict("attributes")),
        _ => {}
    }
    match type_override {
        Override::Replace if stored.thing_type_name != thing.thing_type => match &thing.thing_type {
            Some(t) => {
                usable_type(registry, t)?;
                update.thing_type = Some(t.clone());
            }
            None => update.remove_thing_type = true,
        },
        Override::Fail if stored.thing_type_name != thing.thing_type => return Err(conflict("thing type")),
        _ => {}
    }
    if update != ThingUpdate::default() {
        steps.push(Step::Registry(registry::Command::UpdateThing { name: name.clone(), update }));
    }
    let current: BTreeSet<String> = registry.groups_of_thing(&name).into_iter().map(|(g, _)| g).collect();
    let wanted: BTreeSet<String> = thing.groups.iter().cloned().collect();
    let (add, remove): (Vec<&String>, Vec<&String>) = match groups_override {
        Override::Replace => (wanted.difference(&current).collect(), current.difference(&wanted).collect()),
        Override::Merge => (wanted.difference(&current).collect(), Vec::new()),
        Override::Fail if current != wanted => return Err(conflict("thing groups")),
        _ => (Vec::new(), Vec::new()),
    };
    for (groups, member) in [(remove, false), (add, true)] {
        for g in groups {
            steps.push(Step::Registry(registry::Command::SetMembership {
                group: g.clone(),
                thing: name.clone(),
                member,
            }));
        }
    }
    Ok((name, stored.thing_arn))
}

fn certificate_steps(
    req: &Request,
    cert: &CertificateInput,
    identity: &Identity,
    steps: &mut Vec<Step>,
) -> Result<(String, String), AwsError> {
    let (id, status) = match cert {
        CertificateInput::New { record } => match identity.certificate(&record.certificate_id) {
            None => {
                steps.push(Step::Identity(identity::Command::RegisterCertificate { record: record.clone() }));
                return Ok((record.certificate_id.clone(), record.certificate_arn.clone()));
            }
            Some(_) => (record.certificate_id.clone(), record.status.clone()),
        },
        CertificateInput::Existing { id, status } => (id.clone(), status.clone()),
    };
    let stored = identity.certificate(&id).ok_or_else(|| crate::identity::certs::not_found(&id))?;
    if stored.status == "REVOKED" {
        return Err(crate::identity::certs::state_error(format!("The certificate {id} is REVOKED")));
    }
    if stored.status != status {
        steps.push(Step::Identity(identity::Command::UpdateCertificate {
            id: id.clone(),
            status,
            now_s: req.now_s,
            generation_id: req.generation_id.clone(),
        }));
    }
    Ok((id, stored.certificate_arn.clone()))
}

fn policy_steps(
    req: &Request,
    policy: &PolicyInput,
    identity: &Identity,
    steps: &mut Vec<Step>,
) -> Result<(String, String), AwsError> {
    match policy {
        PolicyInput::Named(name) => {
            let arn = identity.policy_arn(name).ok_or_else(|| invalid(format!("The policy {name} does not exist")))?;
            Ok((name.clone(), arn))
        }
        PolicyInput::Document { name, arn, document } => {
            if identity.policy_arn(name).is_none() {
                let record = PolicyRecord {
                    policy_name: name.clone(),
                    policy_arn: arn.clone(),
                    default_version_id: 1,
                    versions: BTreeMap::from([(
                        1,
                        PolicyVersionRecord { document: document.clone(), create_date: req.now_s },
                    )]),
                    next_version_id: 2,
                    creation_date: req.now_s,
                    last_modified_date: req.now_s,
                    generation_id: req.generation_id.clone(),
                };
                steps.push(Step::Identity(identity::Command::CreatePolicy { record }));
            }
            Ok((name.clone(), arn.clone()))
        }
    }
}
