//! A connection's authorization: which IoT policies apply to it, and the decision for each
//! `(action, resource)` it asks for, cached per connection until the identity state changes
//! (any applied `meta` command bumps [`super::Identity::epoch`]).
//!
//! Certificate principals get the policies attached to the certificate, plus, when the client
//! id names a thing attached to that certificate, the policies of that thing's groups and
//! their ancestors (AWS's thing-group policies); that thing also fills the
//! `iot:Connection.Thing.*` variables. Custom authorizers and JWT clients bring their own
//! documents.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ferrite_aws::policy::{self, Context, Decision, PolicyDocument, ThingContext};

use super::policies::Target;
use super::Identity;
use crate::registry::Registry;

/// Where a connection's policies come from: the identity records, and the registry for the
/// thing named like the client and its groups. The `meta` group's state is one.
pub trait Directory {
    /// Certificates, policies, attachments.
    fn identity(&self) -> &Identity;
    /// Things and thing groups.
    fn registry(&self) -> &Registry;
}

/// The actions a connection is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// CONNECT, on `client/CLIENT_ID`.
    Connect,
    /// PUBLISH, on `topic/TOPIC`.
    Publish,
    /// PUBLISH with retain set, on `topic/TOPIC` (besides Publish).
    RetainPublish,
    /// SUBSCRIBE, on `topicfilter/FILTER`.
    Subscribe,
    /// Delivery to the client, on `topic/TOPIC`.
    Receive,
}

impl Action {
    const COUNT: usize = 5;

    /// The IAM action name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Connect => "iot:Connect",
            Action::Publish => "iot:Publish",
            Action::RetainPublish => "iot:RetainPublish",
            Action::Subscribe => "iot:Subscribe",
            Action::Receive => "iot:Receive",
        }
    }

    /// The resource type in the ARN the action is checked on.
    pub fn resource_type(self) -> &'static str {
        match self {
            Action::Connect => "client",
            Action::Subscribe => "topicfilter",
            _ => "topic",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Who a connection is, as authorization sees it.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Anonymous loopback listeners: everything is allowed.
    Unrestricted,
    /// A registered certificate.
    Certificate {
        /// Certificate id.
        id: String,
        /// Certificate ARN (what things are attached to).
        arn: String,
        /// `iot:Certificate.*` variables.
        fields: BTreeMap<String, Vec<String>>,
    },
    /// One of the node's API access keys (a presigned WebSocket upgrade): the keys are the
    /// node's administrators, allowed everything, as the API allows them everything.
    AccessKey {
        /// The access key id.
        key_id: String,
    },
    /// Policies handed over by a custom authorizer or configured for JWT clients.
    Documents {
        /// The authorizer's `principalId`, or the token subject.
        principal_id: String,
        /// The documents.
        documents: Vec<Arc<PolicyDocument>>,
    },
}

/// What a provisioning claim certificate (CreateProvisioningClaim) may do without any
/// attached policy, as AWS grants it: connect, and use the provisioning MQTT API of its one
/// template.
fn claim_policy(arn_prefix: &str, template: &str) -> Option<Arc<PolicyDocument>> {
    let topics = ["$aws/certificates/create/*", "$aws/certificates/create-from-csr/*"]
        .map(str::to_string)
        .into_iter()
        .chain([format!("$aws/provisioning-templates/{template}/provision/*")]);
    let (mut on_topics, mut on_filters) = (Vec::new(), Vec::new());
    for t in topics {
        on_topics.push(format!("{arn_prefix}topic/{t}"));
        on_filters.push(format!("{arn_prefix}topicfilter/{t}"));
    }
    let doc = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Effect": "Allow", "Action": "iot:Connect", "Resource": "*" },
            { "Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": on_topics },
            { "Effect": "Allow", "Action": "iot:Subscribe", "Resource": on_filters },
        ],
    });
    match policy::parse(&doc.to_string()) {
        Ok(d) => Some(Arc::new(d)),
        Err(e) => {
            tracing::error!(template, error = %e, "the provisioning claim policy does not parse");
            None
        }
    }
}

/// A snapshot of the thing attached to the connection.
#[derive(Debug, Clone)]
struct ThingSnapshot {
    name: String,
    type_name: Option<String>,
    attributes: BTreeMap<String, String>,
}

/// Most resources one connection keeps decisions for before starting over.
const CACHE_LIMIT: usize = 4096;

/// A connection's policies and decision cache.
#[derive(Debug)]
pub struct ConnectionAuthz {
    principal: Principal,
    client_id: Arc<str>,
    source_ip: Option<IpAddr>,
    arn_prefix: String,
    epoch: u64,
    documents: Vec<Arc<PolicyDocument>>,
    thing: Option<ThingSnapshot>,
    cache: HashMap<Box<str>, [Option<bool>; Action::COUNT]>,
}

/// The targets whose policies apply to a certificate connecting as `client_id`: the
/// certificate, and the groups (with ancestors) of the thing named `client_id` when that thing
/// is attached to the certificate.
pub fn certificate_targets(
    meta: &impl Directory,
    certificate_id: &str,
    certificate_arn: &str,
    client_id: &str,
) -> Vec<Target> {
    let mut targets = vec![Target::Certificate(certificate_id.to_string())];
    if meta.registry().thing(client_id).is_some() && meta.identity().is_attached(client_id, certificate_arn) {
        for (group, _) in meta.registry().groups_of_thing(client_id) {
            if let Some((_, chain)) = meta.registry().thing_group(&group) {
                targets.extend(chain.into_iter().map(|(name, _)| Target::ThingGroup(name)));
            }
            targets.push(Target::ThingGroup(group));
        }
    }
    targets.sort();
    targets.dedup();
    targets
}

impl ConnectionAuthz {
    /// Authorization for a connection of `principal` with `client_id` from `source_ip`; ARNs
    /// are built in `region`.
    pub fn new(principal: Principal, client_id: Arc<str>, source_ip: Option<IpAddr>, region: &str) -> ConnectionAuthz {
        ConnectionAuthz {
            principal,
            client_id,
            source_ip,
            arn_prefix: crate::registry::arn_prefix(region),
            epoch: u64::MAX,
            documents: Vec::new(),
            thing: None,
            cache: HashMap::new(),
        }
    }

    /// Whether every request is allowed without looking.
    pub fn is_unrestricted(&self) -> bool {
        matches!(self.principal, Principal::Unrestricted | Principal::AccessKey { .. })
    }

    /// The certificate id, for certificate principals.
    pub fn certificate_id(&self) -> Option<&str> {
        match &self.principal {
            Principal::Certificate { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Who lifecycle events say connected (AWS's `principalIdentifier`): the certificate id,
    /// the authorizer's or token's principal id, or `anonymous`.
    pub fn principal_identifier(&self) -> &str {
        match &self.principal {
            Principal::Certificate { id, .. } => id,
            Principal::Documents { principal_id, .. } => principal_id,
            Principal::AccessKey { key_id } => key_id,
            Principal::Unrestricted => crate::broker::lifecycle::ANONYMOUS_PRINCIPAL,
        }
    }

    /// Replaces the documents of a `Documents` principal (a custom authorizer's refresh).
    pub fn replace_documents(&mut self, documents: Vec<Arc<PolicyDocument>>) {
        if let Principal::Documents { documents: d, .. } = &mut self.principal {
            *d = documents.clone();
            self.documents = documents;
            self.cache.clear();
        }
    }

    /// Decides `action` on the resource `name` (a client id, topic or topic filter).
    pub fn allows(&mut self, meta: &impl Directory, action: Action, name: &str) -> bool {
        if self.is_unrestricted() {
            return true;
        }
        let epoch = meta.identity().epoch();
        if epoch != self.epoch {
            self.refresh(meta);
            self.epoch = epoch;
            self.cache.clear();
        }
        if let Some(known) = self.cache.get(name).and_then(|d| d[action.index()]) {
            return known;
        }
        let allowed = self.decide(action, name).is_allowed();
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.entry(name.into()).or_default()[action.index()] = Some(allowed);
        allowed
    }

    fn decide(&self, action: Action, name: &str) -> Decision {
        let resource = format!("{}{}/{}", self.arn_prefix, action.resource_type(), name);
        let fields = match &self.principal {
            Principal::Certificate { fields, .. } => Some(fields),
            _ => None,
        };
        let mut ctx = Context::new(&self.client_id, crate::broker::message::now_ms() / 1000);
        ctx.certificate = fields;
        ctx.source_ip = self.source_ip;
        ctx.thing = self.thing.as_ref().map(|t| ThingContext {
            name: &t.name,
            type_name: t.type_name.as_deref(),
            attributes: &t.attributes,
        });
        policy::evaluate(self.documents.iter().map(|d| &**d), action.name(), &resource, &ctx)
    }

    fn refresh(&mut self, meta: &impl Directory) {
        match &self.principal {
            Principal::Unrestricted | Principal::AccessKey { .. } => {}
            Principal::Certificate { id, arn, .. } => {
                let targets = certificate_targets(meta, id, arn, &self.client_id);
                self.documents = meta.identity().documents_for(&targets).into_iter().map(|(_, d)| d).collect();
                let claim = meta.identity().certificate(id).and_then(|c| c.provisioning_claim);
                if let Some(doc) = claim.and_then(|template| claim_policy(&self.arn_prefix, &template)) {
                    self.documents.push(doc);
                }
                self.thing = meta
                    .registry()
                    .thing(&self.client_id)
                    .filter(|_| meta.identity().is_attached(&self.client_id, arn))
                    .map(|t| ThingSnapshot {
                        name: t.thing_name,
                        type_name: t.thing_type_name,
                        attributes: t.attributes,
                    });
            }
            Principal::Documents { documents, .. } => {
                self.documents = documents.clone();
                self.thing = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_check_their_aws_resource_types() {
        assert_eq!(Action::Connect.resource_type(), "client");
        assert_eq!(Action::Subscribe.resource_type(), "topicfilter");
        assert_eq!(Action::Receive.resource_type(), "topic");
        assert_eq!(Action::RetainPublish.name(), "iot:RetainPublish");
    }

    #[test]
    fn documents_principals_decide_from_their_documents_and_cache() {
        let meta = crate::meta::Meta::default();
        let doc = policy::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:000000000000:topic/${iot:ClientId}/*"},
                {"Effect":"Deny","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:000000000000:topic/*/secret"}]}"#,
        )
        .unwrap();
        let principal = Principal::Documents { principal_id: "p".into(), documents: vec![Arc::new(doc)] };
        let mut authz = ConnectionAuthz::new(principal, "dev1".into(), None, "us-east-1");
        assert!(authz.allows(&meta, Action::Publish, "dev1/temp"));
        assert!(authz.allows(&meta, Action::Publish, "dev1/temp"));
        assert!(!authz.allows(&meta, Action::Publish, "dev1/secret"));
        assert!(!authz.allows(&meta, Action::Publish, "dev2/temp"));
        assert!(!authz.allows(&meta, Action::Subscribe, "dev1/temp"));
        authz.replace_documents(Vec::new());
        assert!(!authz.allows(&meta, Action::Publish, "dev1/temp"));
    }
}
