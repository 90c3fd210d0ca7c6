//! Identity and authorization: who a client is and what it may do.
//!
//! - `tls`: server certificate, the CA that signs issued certificates, client-certificate
//!   possession check.
//! - `certs`: CA and device certificate records, and the check a presented certificate
//!   must pass at CONNECT.
//! - `policies`: named, versioned IoT policy documents and their attachments.
//! - `authorizers`: custom authorizer records.
//! - `authz`: a connection's authorization (policy decisions, cached per connection).
//! - `jwt`: JWT verification against a JWKS file.
//! - this module: the identity state the `meta` group replicates (certificates, principal
//!   attachments, policies, authorizers), changed only by [`Command`]s; records live in the
//!   `registry` column family and are loaded whole at start.
//!
//! Every applied change bumps [`Identity::epoch`], so connections that cache authorization
//! decisions notice that they must decide again.

pub mod authorizers;
pub mod authz;
pub mod certs;
pub mod custom_auth;
pub mod jwt;
pub mod policies;
pub mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferrite_aws::policy;
use ferrite_cluster::{Batch, StoreError, Table};
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::registry::things::{invalid, missing};
use crate::registry::Registry;
use authorizers::AuthorizerRecord;
use certs::{CaCertificate, Certificate};
use ferrite_aws::AwsError;
use policies::{Policies, PolicyRecord, PolicyVersionRecord, Target};

/// The registry-table key of a `meta` record: its kind, a NUL, its name.
pub fn key(kind: &str, name: &str) -> Vec<u8> {
    let mut k = kind.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

const CERT: &str = "cert";
const CA_CERT: &str = "cacert";
const THING_PRINCIPALS: &str = "thingprincipals";
const POLICY: &str = "policy";
const POLICY_TARGETS: &str = "policytargets";
const AUTHORIZER: &str = "authorizer";
const DEFAULT_AUTHORIZER: &str = "defaultauthorizer";

fn put<T: Serialize>(writes: &mut Batch, key: Vec<u8>, record: &T) {
    writes.put(Table::Registry, key, serde_json::to_vec(record).unwrap_or_default());
}

/// The certificate id in a certificate ARN (`arn:...:cert/ID`), if it is one.
pub fn cert_id_of_arn(arn: &str) -> Option<&str> {
    let (_, rest) = arn.split_once(":cert/")?;
    (!rest.is_empty() && arn.starts_with("arn:")).then_some(rest)
}

/// A change to identity state. Ids, ARNs and timestamps are chosen by the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// CreateKeysAndCertificate, CreateCertificateFromCsr, RegisterCertificate(WithoutCA).
    RegisterCertificate { record: Certificate },
    /// UpdateCertificate.
    UpdateCertificate { id: String, status: String, now_s: u64, generation_id: String },
    /// DeleteCertificate; `force` detaches policies first.
    DeleteCertificate { id: String, force: bool },
    /// RegisterCACertificate.
    RegisterCaCertificate { record: CaCertificate },
    /// UpdateCACertificate.
    UpdateCaCertificate {
        id: String,
        status: Option<String>,
        auto_registration: Option<String>,
        /// A new JITP registration config.
        #[serde(default)]
        registration_config: Option<certs::RegistrationConfig>,
        now_s: u64,
        generation_id: String,
    },
    /// DeleteCACertificate.
    DeleteCaCertificate { id: String },
    /// AttachThingPrincipal.
    AttachThingPrincipal { thing: String, principal: String },
    /// DetachThingPrincipal.
    DetachThingPrincipal { thing: String, principal: String },
    /// CreatePolicy: the record holds version 1 as the default.
    CreatePolicy { record: PolicyRecord },
    /// CreatePolicyVersion.
    CreatePolicyVersion { name: String, document: String, set_as_default: bool, now_s: u64, generation_id: String },
    /// SetDefaultPolicyVersion.
    SetDefaultPolicyVersion { name: String, version_id: u32, now_s: u64, generation_id: String },
    /// DeletePolicyVersion.
    DeletePolicyVersion { name: String, version_id: u32 },
    /// DeletePolicy.
    DeletePolicy { name: String },
    /// AttachPolicy.
    AttachPolicy { name: String, target: String },
    /// DetachPolicy.
    DetachPolicy { name: String, target: String },
    /// CreateAuthorizer.
    CreateAuthorizer { record: AuthorizerRecord },
    /// UpdateAuthorizer: the whole new record (read-modify-write checked by `last_modified`).
    UpdateAuthorizer { record: AuthorizerRecord },
    /// DeleteAuthorizer.
    DeleteAuthorizer { name: String },
    /// SetDefaultAuthorizer.
    SetDefaultAuthorizer { name: String },
}

/// What an applied identity command answers beyond success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing more to say.
    Done,
    /// CreatePolicyVersion: the new version's id and whether it is the default.
    PolicyVersion { version_id: u32, is_default: bool },
}

/// The identity state of the `meta` group.
#[derive(Debug, Default)]
pub struct Identity {
    certs: RwLock<BTreeMap<String, Certificate>>,
    cas: RwLock<BTreeMap<String, CaCertificate>>,
    /// Thing name -> principal ARNs attached to it.
    thing_principals: RwLock<BTreeMap<String, BTreeSet<String>>>,
    policies: RwLock<Policies>,
    authorizers: RwLock<BTreeMap<String, AuthorizerRecord>>,
    default_authorizer: RwLock<Option<String>>,
    epoch: AtomicU64,
}

/// Every stored `meta` record of one kind, with its name; an undecodable one is reported
/// and skipped.
pub fn load<T: serde::de::DeserializeOwned>(
    store: &impl ferrite_cluster::ReadRows,
    kind: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    let prefix = key(kind, "");
    let mut out = Vec::new();
    for (k, v) in store.scan_prefix(Table::Registry, &prefix)? {
        let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        match serde_json::from_slice::<T>(&v) {
            Ok(record) => out.push((name, record)),
            Err(e) => crate::metrics::undecodable_record(kind, &name, &e.to_string()),
        }
    }
    Ok(out)
}

impl Identity {
    /// Loads every identity record from storage.
    pub fn load(store: &impl ferrite_cluster::ReadRows) -> Result<Identity, StoreError> {
        Ok(Identity {
            certs: RwLock::new(load(store, CERT)?.into_iter().collect()),
            cas: RwLock::new(load(store, CA_CERT)?.into_iter().collect()),
            thing_principals: RwLock::new(load(store, THING_PRINCIPALS)?.into_iter().collect()),
            policies: RwLock::new(Policies::new(
                load(store, POLICY)?.into_iter().collect(),
                load(store, POLICY_TARGETS)?.into_iter().collect(),
            )),
            authorizers: RwLock::new(load(store, AUTHORIZER)?.into_iter().collect()),
            default_authorizer: RwLock::new(
                load::<String>(store, DEFAULT_AUTHORIZER)?.into_iter().next().map(|(_, n)| n),
            ),
            epoch: AtomicU64::new(1),
        })
    }

    /// Grows with every applied change; cached authorization decisions older than this are
    /// stale.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Marks cached authorization decisions stale: the registry changed (thing attributes,
    /// types or group membership feed policy evaluation).
    pub fn touch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes over `other`'s records (a restored snapshot); cached decisions become stale.
    pub fn replace(&self, other: Identity) {
        *self.certs.write() = other.certs.into_inner();
        *self.cas.write() = other.cas.into_inner();
        *self.thing_principals.write() = other.thing_principals.into_inner();
        *self.policies.write() = other.policies.into_inner();
        *self.authorizers.write() = other.authorizers.into_inner();
        *self.default_authorizer.write() = other.default_authorizer.into_inner();
        self.touch();
    }

    /// Applies one committed command; the registry answers whether things and groups exist.
    pub fn apply(&self, command: Command, registry: &Registry, writes: &mut Batch) -> Result<Applied, AwsError> {
        let result = match command {
            Command::CreatePolicy { .. }
            | Command::CreatePolicyVersion { .. }
            | Command::SetDefaultPolicyVersion { .. }
            | Command::DeletePolicyVersion { .. }
            | Command::DeletePolicy { .. }
            | Command::AttachPolicy { .. }
            | Command::DetachPolicy { .. } => self.apply_policy(command, registry, writes),
            Command::CreateAuthorizer { .. }
            | Command::UpdateAuthorizer { .. }
            | Command::DeleteAuthorizer { .. }
            | Command::SetDefaultAuthorizer { .. } => self.apply_authorizer(command, writes).map(|()| Applied::Done),
            other => self.apply_inner(other, |t| registry.thing(t).is_some(), writes).map(|()| Applied::Done),
        };
        if result.is_ok() {
            self.touch();
        }
        result
    }

    fn apply_inner(
        &self,
        command: Command,
        thing_exists: impl Fn(&str) -> bool,
        writes: &mut Batch,
    ) -> Result<(), AwsError> {
        match command {
            Command::RegisterCertificate { record } => {
                let mut certs = self.certs.write();
                if certs.contains_key(&record.certificate_id) {
                    return Err(certs::already_exists(format!(
                        "The certificate {} is already registered",
                        record.certificate_id
                    )));
                }
                if let Some(ca_id) = &record.ca_certificate_id {
                    match self.cas.read().get(ca_id) {
                        None => return Err(missing("CA certificate", ca_id)),
                        Some(ca) if ca.status != "ACTIVE" => {
                            return Err(certs::state_error(format!("The CA certificate {ca_id} is not ACTIVE")))
                        }
                        Some(_) => {}
                    }
                }
                put(writes, key(CERT, &record.certificate_id), &record);
                certs.insert(record.certificate_id.clone(), record);
            }
            Command::UpdateCertificate { id, status, now_s, generation_id } => {
                let mut certs = self.certs.write();
                let mut c = certs.get(&id).cloned().ok_or_else(|| certs::not_found(&id))?;
                if c.status == "REVOKED" && status != "REVOKED" {
                    return Err(certs::state_error(format!(
                        "The certificate {id} is REVOKED and cannot change status"
                    )));
                }
                c.status = status;
                c.last_modified_date = now_s;
                c.customer_version += 1;
                c.generation_id = generation_id;
                put(writes, key(CERT, &id), &c);
                certs.insert(id, c);
            }
            Command::DeleteCertificate { id, force } => {
                let mut certs = self.certs.write();
                let c = certs.get(&id).ok_or_else(|| certs::not_found(&id))?;
                if c.status == "ACTIVE" {
                    return Err(certs::state_error(format!(
                        "The certificate {id} is ACTIVE: deactivate it (UpdateCertificate) before deleting it"
                    )));
                }
                let arn = c.certificate_arn.clone();
                if self.thing_principals.read().values().any(|p| p.contains(&arn)) {
                    return Err(certs::delete_conflict(format!(
                        "The certificate {id} is attached to one or more things: detach them first"
                    )));
                }
                let is_this = |t: &Target| *t == Target::Certificate(id.clone());
                let mut policies = self.policies.write();
                if !policies.attached(is_this).is_empty() {
                    if !force {
                        return Err(certs::delete_conflict(format!(
                            "The certificate {id} has policies attached: detach them first, or delete with forceDelete"
                        )));
                    }
                    for name in policies.detach_all(is_this) {
                        Self::write_targets(&policies, &name, writes);
                    }
                }
                writes.delete(Table::Registry, key(CERT, &id));
                certs.remove(&id);
            }
            Command::RegisterCaCertificate { record } => {
                let mut cas = self.cas.write();
                if cas.contains_key(&record.certificate_id) {
                    return Err(certs::already_exists(format!(
                        "The CA certificate {} is already registered",
                        record.certificate_id
                    )));
                }
                put(writes, key(CA_CERT, &record.certificate_id), &record);
                cas.insert(record.certificate_id.clone(), record);
            }
            Command::UpdateCaCertificate {
                id,
                status,
                auto_registration,
                registration_config,
                now_s,
                generation_id,
            } => {
                let mut cas = self.cas.write();
                let mut c = cas.get(&id).cloned().ok_or_else(|| missing("CA certificate", &id))?;
                if let Some(s) = status {
                    c.status = s;
                }
                if let Some(a) = auto_registration {
                    c.auto_registration_status = a;
                }
                if let Some(r) = registration_config {
                    c.registration_config = Some(r);
                }
                c.last_modified_date = now_s;
                c.customer_version += 1;
                c.generation_id = generation_id;
                put(writes, key(CA_CERT, &id), &c);
                cas.insert(id, c);
            }
            Command::DeleteCaCertificate { id } => {
                let mut cas = self.cas.write();
                let c = cas.get(&id).ok_or_else(|| missing("CA certificate", &id))?;
                if c.status == "ACTIVE" {
                    return Err(certs::state_error(format!(
                        "The CA certificate {id} is ACTIVE: deactivate it (UpdateCACertificate) before deleting it"
                    )));
                }
                writes.delete(Table::Registry, key(CA_CERT, &id));
                cas.remove(&id);
            }
            Command::CreatePolicy { .. }
            | Command::CreatePolicyVersion { .. }
            | Command::SetDefaultPolicyVersion { .. }
            | Command::DeletePolicyVersion { .. }
            | Command::DeletePolicy { .. }
            | Command::AttachPolicy { .. }
            | Command::DetachPolicy { .. }
            | Command::CreateAuthorizer { .. }
            | Command::UpdateAuthorizer { .. }
            | Command::DeleteAuthorizer { .. }
            | Command::SetDefaultAuthorizer { .. } => return Err(crate::registry::things::internal_failure()),
            Command::AttachThingPrincipal { thing, principal } => {
                if !thing_exists(&thing) {
                    return Err(missing("Thing", &thing));
                }
                self.principal_exists(&principal)?;
                let mut all = self.thing_principals.write();
                let set = all.entry(thing.clone()).or_default();
                if set.insert(principal) {
                    put(writes, key(THING_PRINCIPALS, &thing), set);
                }
            }
            Command::DetachThingPrincipal { thing, principal } => {
                if !thing_exists(&thing) {
                    return Err(missing("Thing", &thing));
                }
                let mut all = self.thing_principals.write();
                if let Some(set) = all.get_mut(&thing) {
                    if set.remove(&principal) {
                        if set.is_empty() {
                            all.remove(&thing);
                            writes.delete(Table::Registry, key(THING_PRINCIPALS, &thing));
                        } else {
                            put(writes, key(THING_PRINCIPALS, &thing), set);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn principal_exists(&self, principal: &str) -> Result<(), AwsError> {
        match cert_id_of_arn(principal) {
            Some(id) if self.certs.read().contains_key(id) => Ok(()),
            Some(id) => Err(certs::not_found(id)),
            None => Err(invalid(format!("Invalid principal {principal:?}: expected a certificate ARN"))),
        }
    }

    fn write_targets(policies: &Policies, name: &str, writes: &mut Batch) {
        match policies.targets.get(name) {
            Some(ts) => put(writes, key(POLICY_TARGETS, name), ts),
            None => writes.delete(Table::Registry, key(POLICY_TARGETS, name)),
        }
    }

    fn apply_policy(&self, command: Command, registry: &Registry, writes: &mut Batch) -> Result<Applied, AwsError> {
        let mut policies = self.policies.write();
        let mut answer = Applied::Done;
        let name = match command {
            Command::CreatePolicy { record } => {
                if policies.records.contains_key(&record.policy_name) {
                    return Err(certs::already_exists(format!("The policy {} already exists", record.policy_name)));
                }
                let name = record.policy_name.clone();
                put(writes, key(POLICY, &name), &record);
                policies.records.insert(name.clone(), record);
                name
            }
            Command::CreatePolicyVersion { name, document, set_as_default, now_s, generation_id } => {
                let p = policies.records.get_mut(&name).ok_or_else(|| policies::policy_not_found(&name))?;
                if p.versions.len() >= policies::MAX_POLICY_VERSIONS {
                    return Err(AwsError::new(
                        409,
                        "VersionsLimitExceededException",
                        format!(
                            "The policy {name} already has {} versions: delete one (DeletePolicyVersion) first",
                            policies::MAX_POLICY_VERSIONS
                        ),
                    ));
                }
                let version_id = p.next_version_id;
                p.next_version_id += 1;
                p.versions.insert(version_id, PolicyVersionRecord { document, create_date: now_s });
                if set_as_default {
                    p.default_version_id = version_id;
                }
                p.last_modified_date = now_s;
                p.generation_id = generation_id;
                put(writes, key(POLICY, &name), &*p);
                answer = Applied::PolicyVersion { version_id, is_default: set_as_default };
                name
            }
            Command::SetDefaultPolicyVersion { name, version_id, now_s, generation_id } => {
                let p = policies.records.get_mut(&name).ok_or_else(|| policies::policy_not_found(&name))?;
                if !p.versions.contains_key(&version_id) {
                    return Err(policies::version_not_found(&name, &version_id.to_string()));
                }
                p.default_version_id = version_id;
                p.last_modified_date = now_s;
                p.generation_id = generation_id;
                put(writes, key(POLICY, &name), &*p);
                name
            }
            Command::DeletePolicyVersion { name, version_id } => {
                let p = policies.records.get_mut(&name).ok_or_else(|| policies::policy_not_found(&name))?;
                if !p.versions.contains_key(&version_id) {
                    return Err(policies::version_not_found(&name, &version_id.to_string()));
                }
                if p.default_version_id == version_id {
                    return Err(certs::delete_conflict(format!(
                        "Version {version_id} is the default version of policy {name}: make another version the default first, or delete the policy"
                    )));
                }
                p.versions.remove(&version_id);
                put(writes, key(POLICY, &name), &*p);
                name
            }
            Command::DeletePolicy { name } => {
                let p = policies.records.get(&name).ok_or_else(|| policies::policy_not_found(&name))?;
                if policies.targets.get(&name).is_some_and(|t| !t.is_empty()) {
                    return Err(certs::delete_conflict(format!(
                        "The policy {name} is attached to one or more targets: detach it first (ListTargetsForPolicy)"
                    )));
                }
                if p.versions.len() > 1 {
                    return Err(certs::delete_conflict(format!(
                        "The policy {name} has versions besides the default: delete them first (DeletePolicyVersion)"
                    )));
                }
                policies.records.remove(&name);
                writes.delete(Table::Registry, key(POLICY, &name));
                name
            }
            Command::AttachPolicy { name, target } => {
                if !policies.records.contains_key(&name) {
                    return Err(policies::policy_not_found(&name));
                }
                let parsed = Target::of_arn(&target)?;
                match &parsed {
                    Target::Certificate(id) if !self.certs.read().contains_key(id) => return Err(certs::not_found(id)),
                    Target::ThingGroup(group) if registry.thing_group(group).is_none() => {
                        return Err(missing("Thing group", group))
                    }
                    _ => {}
                }
                let already = policies.targets.get(&name).is_some_and(|t| t.contains(&target));
                if !already && policies.attached(|t| *t == parsed).len() >= policies::MAX_POLICIES_PER_TARGET {
                    return Err(AwsError::new(
                        410,
                        "LimitExceededException",
                        format!("{target} already has {} policies attached", policies::MAX_POLICIES_PER_TARGET),
                    ));
                }
                policies.targets.entry(name.clone()).or_default().insert(target);
                Self::write_targets(&policies, &name, writes);
                name
            }
            Command::DetachPolicy { name, target } => {
                Target::of_arn(&target)?;
                if let Some(ts) = policies.targets.get_mut(&name) {
                    ts.remove(&target);
                    if ts.is_empty() {
                        policies.targets.remove(&name);
                    }
                }
                Self::write_targets(&policies, &name, writes);
                name
            }
            _ => return Err(crate::registry::things::internal_failure()),
        };
        policies.reparse(&name);
        Ok(answer)
    }

    /// Forgets the policy attachments of a deleted thing group (in the same batch).
    pub fn forget_thing_group(&self, group: &str, writes: &mut Batch) {
        let mut policies = self.policies.write();
        for name in policies.detach_all(|t| *t == Target::ThingGroup(group.to_string())) {
            Self::write_targets(&policies, &name, writes);
        }
        self.touch();
    }

    /// GetPolicy / GetPolicyVersion / ListPolicyVersions.
    pub fn policy(&self, name: &str) -> Option<PolicyRecord> {
        self.policies.read().records.get(name).cloned()
    }

    /// ListPolicies, in name order.
    pub fn policy_list(&self) -> Vec<PolicyRecord> {
        self.policies.read().records.values().cloned().collect()
    }

    /// ListTargetsForPolicy.
    pub fn policy_targets(&self, name: &str) -> Vec<String> {
        self.policies.read().targets.get(name).map(|t| t.iter().cloned().collect()).unwrap_or_default()
    }

    /// Policies attached directly to the target ARN (ListAttachedPolicies), in name order.
    pub fn policies_of_target(&self, target: &str) -> Result<Vec<PolicyRecord>, AwsError> {
        let parsed = Target::of_arn(target)?;
        let policies = self.policies.read();
        Ok(policies.attached(|t| *t == parsed).iter().filter_map(|n| policies.records.get(n).cloned()).collect())
    }

    /// The parsed default documents of the policies attached to any of `targets`, with the
    /// policy names; the input of a connection's authorization.
    pub fn documents_for(&self, targets: &[Target]) -> Vec<(String, Arc<policy::PolicyDocument>)> {
        let policies = self.policies.read();
        policies
            .attached(|t| targets.contains(t))
            .into_iter()
            .filter_map(|n| policies.parsed.get(&n).cloned().map(|d| (n, d)))
            .collect()
    }

    /// The parsed default documents of named policies (TestAuthorization's policyNamesToAdd);
    /// names that do not exist are reported.
    pub fn documents_named(&self, names: &[String]) -> Result<Vec<(String, Arc<policy::PolicyDocument>)>, AwsError> {
        let policies = self.policies.read();
        names
            .iter()
            .map(|n| {
                policies.parsed.get(n).cloned().map(|d| (n.clone(), d)).ok_or_else(|| policies::policy_not_found(n))
            })
            .collect()
    }

    /// The policy ARN of `name`, if it exists.
    pub fn policy_arn(&self, name: &str) -> Option<String> {
        self.policies.read().records.get(name).map(|r| r.policy_arn.clone())
    }

    /// Forgets the principal attachments of a deleted thing (in the same batch).
    pub fn forget_thing(&self, thing: &str, writes: &mut Batch) {
        if self.thing_principals.write().remove(thing).is_some() {
            writes.delete(Table::Registry, key(THING_PRINCIPALS, thing));
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// DescribeCertificate.
    pub fn certificate(&self, id: &str) -> Option<Certificate> {
        self.certs.read().get(id).cloned()
    }

    /// ListCertificates (id order), or ListCertificatesByCA.
    pub fn certificates(&self, ca: Option<&str>) -> Vec<Certificate> {
        self.certs.read().values().filter(|c| ca.is_none() || c.ca_certificate_id.as_deref() == ca).cloned().collect()
    }

    /// DescribeCACertificate.
    pub fn ca_certificate(&self, id: &str) -> Option<CaCertificate> {
        self.cas.read().get(id).cloned()
    }

    /// ListCACertificates.
    pub fn ca_certificates(&self) -> Vec<CaCertificate> {
        self.cas.read().values().cloned().collect()
    }

    /// ListThingPrincipals.
    pub fn principals_of_thing(&self, thing: &str) -> Vec<String> {
        self.thing_principals.read().get(thing).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// ListPrincipalThings.
    pub fn things_of_principal(&self, principal: &str) -> Vec<String> {
        self.thing_principals.read().iter().filter(|(_, p)| p.contains(principal)).map(|(t, _)| t.clone()).collect()
    }

    /// Is `principal` attached to `thing`?
    pub fn is_attached(&self, thing: &str, principal: &str) -> bool {
        self.thing_principals.read().get(thing).is_some_and(|p| p.contains(principal))
    }

    /// The CA that lets an unregistered certificate register itself on its first connection
    /// (JITR and JITP): ACTIVE, auto-registration ENABLE, and the certificate's signer.
    pub fn auto_registration_ca(&self, der: &[u8]) -> Option<CaCertificate> {
        self.cas
            .read()
            .values()
            .filter(|ca| ca.status == "ACTIVE" && ca.auto_registration_status == "ENABLE")
            .find(|ca| {
                CertificateDer::from_pem_slice(ca.certificate_pem.as_bytes())
                    .is_ok_and(|ca_der| certs::signed_by(der, ca_der.as_ref()))
            })
            .cloned()
    }

    /// Checks a certificate presented at CONNECT: the record when it may connect, else why not.
    pub fn check_presented(&self, der: &[u8], now_s: i64) -> Result<Certificate, String> {
        let id = certs::certificate_id(der);
        let record = self.certs.read().get(&id).cloned();
        let ca =
            record.as_ref().and_then(|r| r.ca_certificate_id.as_ref()).and_then(|c| self.cas.read().get(c).cloned());
        certs::refusal(der, record.as_ref(), ca.as_ref(), now_s)?;
        record.ok_or_else(|| "the client certificate is not registered".into())
    }
}
