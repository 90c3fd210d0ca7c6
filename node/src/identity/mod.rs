//! Identity and authorization (issue 7): who a client is and what it may do.
//!
//! - `tls`: server certificate, the CA that signs issued certificates, client-certificate
//!   possession check.
//! - `certs`: CA and device certificate records, and the check a presented certificate
//!   must pass at CONNECT.
//! - this module: the identity state the `meta` group replicates (certificates, principal
//!   attachments), changed only by [`Command`]s; records live in the `registry` column family
//!   and are loaded whole at start.
//!
//! Every applied change bumps [`Identity::epoch`], so connections that cache authorization
//! decisions notice that they must decide again.

pub mod certs;
pub mod policy;
pub mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use ferrite_cluster::{Batch, Store, StoreError, Table};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::registry::things::{invalid, missing, RegistryError};
use certs::{CaCertificate, Certificate};

fn key(kind: &str, name: &str) -> Vec<u8> {
    let mut k = kind.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

const CERT: &str = "cert";
const CA_CERT: &str = "cacert";
const THING_PRINCIPALS: &str = "thingprincipals";

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
        now_s: u64,
        generation_id: String,
    },
    /// DeleteCACertificate.
    DeleteCaCertificate { id: String },
    /// AttachThingPrincipal.
    AttachThingPrincipal { thing: String, principal: String },
    /// DetachThingPrincipal.
    DetachThingPrincipal { thing: String, principal: String },
}

/// The identity state of the `meta` group.
#[derive(Debug, Default)]
pub struct Identity {
    certs: RwLock<BTreeMap<String, Certificate>>,
    cas: RwLock<BTreeMap<String, CaCertificate>>,
    /// Thing name -> principal ARNs attached to it.
    thing_principals: RwLock<BTreeMap<String, BTreeSet<String>>>,
    epoch: AtomicU64,
}

fn load<T: serde::de::DeserializeOwned>(store: &Store, kind: &str) -> Result<Vec<(String, T)>, StoreError> {
    let prefix = key(kind, "");
    let mut out = Vec::new();
    for (k, v) in store.scan_prefix(Table::Registry, &prefix)? {
        let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        if let Ok(record) = serde_json::from_slice::<T>(&v) {
            out.push((name, record));
        }
    }
    Ok(out)
}

impl Identity {
    /// Loads every identity record from storage.
    pub fn load(store: &Store) -> Result<Identity, StoreError> {
        Ok(Identity {
            certs: RwLock::new(load(store, CERT)?.into_iter().collect()),
            cas: RwLock::new(load(store, CA_CERT)?.into_iter().collect()),
            thing_principals: RwLock::new(load(store, THING_PRINCIPALS)?.into_iter().collect()),
            epoch: AtomicU64::new(1),
        })
    }

    /// Grows with every applied change; cached authorization decisions older than this are
    /// stale.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Applies one committed command. `thing_exists` answers from the registry.
    pub fn apply(
        &self,
        command: Command,
        thing_exists: impl Fn(&str) -> bool,
        writes: &mut Batch,
    ) -> Result<(), RegistryError> {
        let result = self.apply_inner(command, thing_exists, writes);
        if result.is_ok() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        result
    }

    fn apply_inner(
        &self,
        command: Command,
        thing_exists: impl Fn(&str) -> bool,
        writes: &mut Batch,
    ) -> Result<(), RegistryError> {
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
                let _ = force;
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
            Command::UpdateCaCertificate { id, status, auto_registration, now_s, generation_id } => {
                let mut cas = self.cas.write();
                let mut c = cas.get(&id).cloned().ok_or_else(|| missing("CA certificate", &id))?;
                if let Some(s) = status {
                    c.status = s;
                }
                if let Some(a) = auto_registration {
                    c.auto_registration_status = a;
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

    fn principal_exists(&self, principal: &str) -> Result<(), RegistryError> {
        match cert_id_of_arn(principal) {
            Some(id) if self.certs.read().contains_key(id) => Ok(()),
            Some(id) => Err(certs::not_found(id)),
            None => Err(invalid(format!("Invalid principal {principal:?}: expected a certificate ARN"))),
        }
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
