//! What a request's connection looks like to a policy: the client id, the attached thing, the
//! certificate, the source address, the clock and any other context key. Its own module because
//! the condition operators, the policy variables and evaluation all read it, and none of them
//! should depend on another for it.

use std::collections::BTreeMap;
use std::net::IpAddr;

static NO_EXTRA: BTreeMap<String, Vec<String>> = BTreeMap::new();

/// The thing attached to the connection's principal (and, for AWS, named like the client id).
#[derive(Debug, Clone, Copy)]
pub struct ThingContext<'a> {
    /// Registry name of the thing (`iot:Connection.Thing.ThingName`).
    pub name: &'a str,
    /// Its thing type, if any (`iot:Connection.Thing.ThingTypeName`).
    pub type_name: Option<&'a str>,
    /// Its attributes (`iot:Connection.Thing.Attributes[NAME]`).
    pub attributes: &'a BTreeMap<String, String>,
}

/// Everything about the requesting connection that policy variables and condition keys can read.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// MQTT client id (`iot:ClientId`).
    pub client_id: &'a str,
    /// Attached thing; `None` means `iot:Connection.Thing.IsAttached` is `false` and the other
    /// thing keys are absent.
    pub thing: Option<ThingContext<'a>>,
    /// Client certificate fields keyed by the part after `iot:Certificate.` (e.g.
    /// `Subject.CommonName`, `SubjectAlternativeName.DNSName`); values may repeat.
    pub certificate: Option<&'a BTreeMap<String, Vec<String>>>,
    /// Client address (`aws:SourceIp`).
    pub source_ip: Option<IpAddr>,
    /// Evaluation time in Unix seconds (`aws:CurrentTime`, `aws:EpochTime`).
    pub now_epoch_s: u64,
    /// Any other context key (e.g. `iot:DomainName`, MQTT 5 keys), looked up by exact name first,
    /// then ASCII case-insensitively.
    pub extra: &'a BTreeMap<String, Vec<String>>,
}

impl<'a> Context<'a> {
    /// A context with only a client id and a clock; every optional part is absent.
    pub fn new(client_id: &'a str, now_epoch_s: u64) -> Context<'a> {
        Context { client_id, thing: None, certificate: None, source_ip: None, now_epoch_s, extra: &NO_EXTRA }
    }
}
