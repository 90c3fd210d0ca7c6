//! Provisioning at run time on a node: evaluates templates (with their pre-provisioning
//! hook) into `meta` proposals, and serves what devices and operators ask for:
//!
//! - `mqtt`: the device provisioning MQTT API (CreateKeysAndCertificate,
//!   CreateCertificateFromCsr, RegisterThing; JSON and CBOR), answered only to the
//!   connection that asked.
//! - `jit`: just-in-time registration (JITR) and provisioning (JITP) of an unknown device
//!   certificate signed by a CA that allows auto-registration.
//! - `bulk`: bulk registration tasks, run by the node that started them.
//! - this module: one provisioning from a template, parameters and a certificate.

pub mod bulk;
pub mod jit;
pub mod mqtt;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferrite_aws::provisioning::{self as templates, CertificateSource, Plan};
use ferrite_aws::AwsError;
use ferrite_cluster::Group;
use serde_json::{json, Map, Value};
use sha2::Digest as _;

use crate::broker::message::now_ms;
use crate::broker::publisher::Publisher;
use crate::broker::Broker;
use crate::identity::certs::{self, Certificate};
use crate::identity::tls::CertIssuer;
use crate::meta::{Command, Meta, Outcome};
use crate::provisioning::resolve::{self, CertificateInput, PolicyInput, Provisioned, ThingInput};
use crate::provisioning::templates::{Hook, TemplateRecord};
use crate::provisioning::tokens::Tokens;

/// How long a pre-provisioning hook has to answer.
const HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a provisioning was refused, in the provisioning MQTT API's terms (`statusCode`,
/// `errorCode`, `errorMessage`); the HTTP API answers the same as an AWS error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// An HTTP-like status: 400, 403, 404, 500.
    pub status_code: u16,
    /// AWS's error code.
    pub error_code: &'static str,
    /// Why.
    pub message: String,
}

impl Rejection {
    /// A 400 with `code`.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection { status_code: 400, error_code: code, message: message.into() }
    }

    /// The `rejected` document.
    pub fn document(&self) -> Value {
        json!({ "statusCode": self.status_code, "errorCode": self.error_code, "errorMessage": self.message })
    }

    /// The same refusal as an HTTP API error.
    pub fn to_aws(&self) -> AwsError {
        let kind = match self.status_code {
            404 => "ResourceNotFoundException",
            403 => "UnauthorizedException",
            500 => "InternalFailureException",
            _ => "InvalidRequestException",
        };
        AwsError::new(self.status_code, kind, self.message.clone())
    }
}

impl From<AwsError> for Rejection {
    fn from(e: AwsError) -> Rejection {
        let error_code = match e.error_type {
            "ResourceNotFoundException" => "ResourceNotFound",
            "InternalFailureException" => "InternalFailure",
            _ => "InvalidRequest",
        };
        Rejection { status_code: e.status, error_code, message: e.message }
    }
}

/// The certificate a provisioning is about, as its caller knows it.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// The certificate id a token or the connection names (`AWS::IoT::Certificate::Id`).
    pub certificate_id: Option<String>,
    /// A certificate not registered yet (JITP), registered by this provisioning.
    pub pending: Option<Certificate>,
    /// The claim certificate of the connection that asked (for the hook).
    pub claim_certificate_id: Option<String>,
    /// The client id that asked (for the hook).
    pub client_id: Option<String>,
}

/// What one provisioning made.
#[derive(Debug, Clone)]
pub struct Completed {
    /// What was made, by kind.
    pub made: Provisioned,
    /// The template's evaluated DeviceConfiguration.
    pub device_configuration: Map<String, Value>,
    /// The PEM of a certificate issued from the template's CSR.
    pub certificate_pem: Option<String>,
    /// Resource ARNs by the template's logical ids.
    pub resource_arns: Map<String, Value>,
}

/// Provisioning on one node.
pub struct ProvisioningRuntime {
    meta: Arc<Group<Meta>>,
    publisher: Publisher,
    broker: OnceLock<Arc<Broker>>,
    /// Signs certificates the node issues.
    pub issuer: Arc<CertIssuer>,
    tokens: Tokens,
    region: String,
    token_secs: u64,
    node_id: u64,
    reports_dir: std::path::PathBuf,
    /// Client id -> the certificate its connection on this node authenticated with.
    claims: parking_lot::Mutex<std::collections::HashMap<String, String>>,
    /// Client id -> its provisioning requests under way.
    in_flight: parking_lot::Mutex<std::collections::HashMap<String, usize>>,
}

impl std::fmt::Debug for ProvisioningRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisioningRuntime").field("region", &self.region).finish_non_exhaustive()
    }
}

/// Settings of [`ProvisioningRuntime::new`].
pub struct Settings {
    /// The node's region (ARNs).
    pub region: String,
    /// How long an ownership token stays valid.
    pub token_secs: u64,
    /// This node's id (bulk tasks name the node that runs them).
    pub node_id: u64,
    /// Where bulk registration reports are written.
    pub reports_dir: std::path::PathBuf,
}

fn now_s() -> u64 {
    now_ms() / 1000
}

impl ProvisioningRuntime {
    /// A runtime proposing to `meta`, answering devices through `publisher`.
    pub fn new(meta: Arc<Group<Meta>>, publisher: Publisher, issuer: Arc<CertIssuer>, s: Settings) -> Arc<Self> {
        Arc::new(ProvisioningRuntime {
            meta,
            publisher,
            broker: OnceLock::new(),
            issuer,
            tokens: Tokens::new(),
            region: s.region,
            token_secs: s.token_secs,
            node_id: s.node_id,
            reports_dir: s.reports_dir,
            claims: Default::default(),
            in_flight: Default::default(),
        })
    }

    /// A certificate client connected here: its certificate is the claim certificate the
    /// pre-provisioning hook is told about.
    pub fn connected(&self, client_id: &str, certificate_id: &str) {
        self.claims.lock().insert(client_id.to_string(), certificate_id.to_string());
    }

    /// The client's connection ended.
    pub fn disconnected(&self, client_id: &str) {
        self.claims.lock().remove(client_id);
    }

    /// Hands over the broker once it exists (it is built after the publish observers).
    pub fn set_broker(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    /// `arn:aws:iot:REGION:ACCOUNT:`.
    pub fn arn_prefix(&self) -> String {
        crate::registry::arn_prefix(&self.region)
    }

    /// Where this node writes bulk registration reports.
    pub fn reports_dir(&self) -> &std::path::Path {
        &self.reports_dir
    }

    /// Proposes a change to the `meta` group.
    async fn propose(&self, command: Command) -> Result<Outcome, AwsError> {
        crate::meta::propose(&self.meta, command).await
    }

    /// Provisions from a template body: the hook first (when `hook` is given), then the
    /// template evaluated with `parameters` and `subject`'s certificate, then one `meta`
    /// proposal with everything it makes.
    pub async fn provision(
        &self,
        body: &str,
        template_arn: Option<&str>,
        hook: Option<&Hook>,
        mut parameters: Map<String, Value>,
        subject: &Subject,
    ) -> Result<Completed, Rejection> {
        let template = templates::parse(body)
            .map_err(|e| Rejection::bad("InvalidTemplate", format!("The template cannot be used: {e}")))?;
        if let Some(hook) = hook {
            parameters = self.ask_hook(hook, template_arn.unwrap_or(""), parameters, subject).await?;
        }
        if let Some(id) = &subject.certificate_id {
            parameters.insert("AWS::IoT::Certificate::Id".into(), json!(id));
        }
        if let Some(pending) = &subject.pending {
            for (name, value) in jit::subject_parameters(&pending.certificate_pem) {
                parameters.entry(name).or_insert(value);
            }
        }
        let plan = template.evaluate(&parameters).map_err(|e| Rejection::bad("InvalidParameters", e.message))?;
        let (request, certificate_pem) = self.request_of(&plan, subject)?;
        let made = match self.propose(Command::Provision(request)).await? {
            Outcome::Provisioned(made) => made,
            _ => return Err(Rejection::from(crate::registry::things::internal_failure())),
        };
        let resource_arns = resource_arns(body, &made);
        Ok(Completed { made, device_configuration: plan.device_configuration, certificate_pem, resource_arns })
    }

    /// The `meta` request of an evaluated template, and the PEM of a certificate issued for
    /// its CSR.
    fn request_of(&self, plan: &Plan, subject: &Subject) -> Result<(resolve::Request, Option<String>), Rejection> {
        let prefix = self.arn_prefix();
        let now = now_s();
        let thing = plan.thing.as_ref().map(|t| ThingInput {
            name: t.thing_name.clone(),
            attributes: t.attributes.clone(),
            thing_type: t.thing_type_name.clone(),
            groups: t.thing_groups.clone(),
            overrides: [
                t.overrides.attribute_payload.into(),
                t.overrides.thing_type_name.into(),
                t.overrides.thing_groups.into(),
            ],
        });
        if let Some(t) = thing.as_ref().filter(|t| !crate::registry::is_resource_name(&t.name, 128)) {
            let why = format!("Invalid thing name {:?}: 1 to 128 of [a-zA-Z0-9:_-]", t.name);
            return Err(Rejection::bad("InvalidParameters", why));
        }
        let mut issued_pem = None;
        let certificate = match &plan.certificate {
            None => None,
            Some(c) => {
                let status = c.status.clone().unwrap_or_else(|| "ACTIVE".into());
                Some(match &c.source {
                    CertificateSource::Id(id) => match &subject.pending {
                        Some(p) if &p.certificate_id == id => {
                            let mut record = p.clone();
                            record.status = status;
                            CertificateInput::New { record }
                        }
                        _ => CertificateInput::Existing { id: id.clone(), status },
                    },
                    CertificateSource::Csr(csr) => {
                        let issued = self.issuer.issue_for_csr(csr).map_err(|e| {
                            Rejection::bad("InvalidParameters", format!("CertificateSigningRequest: {e}"))
                        })?;
                        let parsed = certs::parse_der(&issued.der).map_err(Rejection::from)?;
                        let record =
                            Certificate::device(&parsed, &prefix, issued.certificate_pem.clone(), None, &status, now);
                        issued_pem = Some(issued.certificate_pem);
                        CertificateInput::New { record }
                    }
                    CertificateSource::Pem { certificate_pem, ca_certificate_pem } => {
                        let parsed = certs::parse_pem(certificate_pem).map_err(Rejection::from)?;
                        let ca = self.signing_ca(&parsed, ca_certificate_pem.as_deref())?;
                        let record = Certificate::device(&parsed, &prefix, certificate_pem.clone(), ca, &status, now);
                        CertificateInput::New { record }
                    }
                })
            }
        };
        let policy = plan.policy.as_ref().map(|p| match (&p.name, &p.document) {
            (Some(name), _) => PolicyInput::Named(name.clone()),
            (None, document) => {
                let document = document.clone().unwrap_or_default();
                let hash: String =
                    sha2::Sha256::digest(document.as_bytes()).iter().take(10).map(|b| format!("{b:02x}")).collect();
                let name = format!("Provisioned-{hash}");
                PolicyInput::Document { arn: format!("{prefix}policy/{name}"), name, document }
            }
        });
        if let Some(PolicyInput::Document { document, .. }) = &policy {
            ferrite_aws::policy::parse(document)
                .map_err(|e| Rejection::bad("InvalidParameters", format!("PolicyDocument: {e}")))?;
        }
        let request = resolve::Request {
            thing,
            certificate,
            policy,
            arn_prefix: prefix,
            thing_id: crate::registry::new_id(),
            now_s: now,
            generation_id: crate::registry::new_id(),
        };
        Ok((request, issued_pem))
    }

    /// The registered CA of a template's CertificatePem: the one given, else any registered
    /// CA that signed it; none when no CA signed it (registered without a CA).
    fn signing_ca(&self, parsed: &certs::Parsed, ca_pem: Option<&str>) -> Result<Option<String>, Rejection> {
        let identity = &self.meta.state().identity;
        if let Some(pem) = ca_pem {
            let ca = certs::parse_pem(pem).map_err(Rejection::from)?;
            if identity.ca_certificate(&ca.id).is_none() {
                return Err(Rejection::bad("InvalidParameters", "CACertificatePem is not a registered CA certificate"));
            }
            if !certs::signed_by(&parsed.der, &ca.der) {
                return Err(Rejection::bad("InvalidParameters", "CertificatePem is not signed by CACertificatePem"));
            }
            return Ok(Some(ca.id));
        }
        Ok(identity
            .ca_certificates()
            .into_iter()
            .find(|ca| certs::parse_pem(&ca.certificate_pem).is_ok_and(|c| certs::signed_by(&parsed.der, &c.der)))
            .map(|ca| ca.registration.certificate_id))
    }

    /// Calls a template's pre-provisioning hook: AWS's request document in, its
    /// `allowProvisioning` and `parameterOverrides` out.
    async fn ask_hook(
        &self,
        hook: &Hook,
        template_arn: &str,
        parameters: Map<String, Value>,
        subject: &Subject,
    ) -> Result<Map<String, Value>, Rejection> {
        let certificate_pem = subject
            .certificate_id
            .as_ref()
            .and_then(|id| self.meta.state().identity.certificate(id))
            .map(|c| c.certificate_pem.clone());
        let request = json!({
            "claimCertificateId": subject.claim_certificate_id,
            "certificateId": subject.certificate_id,
            "certificatePem": certificate_pem,
            "templateArn": template_arn,
            "clientId": subject.client_id,
            "parameters": parameters,
        });
        let failed = |why: String| Rejection {
            status_code: 500,
            error_code: "InternalFailure",
            message: format!("The pre-provisioning hook failed: {why}"),
        };
        let target = ferrite_http_client::parse_url(&hook.target_arn).map_err(failed)?;
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let (status, answer) = ferrite_http_client::post_for_body(&target, "application/json", &body, HOOK_TIMEOUT)
            .await
            .map_err(failed)?;
        if !(200..300).contains(&status) {
            return Err(failed(format!("it answered HTTP {status}")));
        }
        let answer: Value =
            serde_json::from_slice(&answer).map_err(|e| failed(format!("its answer is not JSON: {e}")))?;
        if answer.get("allowProvisioning").and_then(Value::as_bool) != Some(true) {
            return Err(Rejection {
                status_code: 403,
                error_code: "AccessDenied",
                message: "The pre-provisioning hook did not allow this provisioning".into(),
            });
        }
        let mut parameters = parameters;
        if let Some(Value::Object(overrides)) = answer.get("parameterOverrides") {
            for (k, v) in overrides {
                parameters.insert(k.clone(), v.clone());
            }
        }
        Ok(parameters)
    }

    /// A template by name that may provision now.
    fn usable_template(&self, name: &str) -> Result<TemplateRecord, Rejection> {
        let t = self.meta.state().provisioning.template(name).ok_or_else(|| Rejection {
            status_code: 404,
            error_code: "ResourceNotFound",
            message: format!("The provisioning template {name} does not exist"),
        })?;
        if !t.enabled {
            return Err(Rejection::bad("InvalidRequest", format!("The provisioning template {name} is disabled")));
        }
        Ok(t)
    }
}

/// The ARNs a provisioning made, keyed by the template's logical ids (the first resource
/// of each type).
fn resource_arns(body: &str, made: &Provisioned) -> Map<String, Value> {
    let mut out = Map::new();
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(body) else { return out };
    let Some(Value::Object(resources)) = doc.get("Resources") else { return out };
    for (logical, r) in resources {
        let arn = match r.get("Type").and_then(Value::as_str) {
            Some("AWS::IoT::Thing") => made.thing.as_ref().map(|(_, a)| a),
            Some("AWS::IoT::Certificate") => made.certificate.as_ref().map(|(_, a)| a),
            Some("AWS::IoT::Policy") => made.policy.as_ref().map(|(_, a)| a),
            _ => None,
        };
        if let Some(arn) = arn {
            out.insert(logical.clone(), json!(arn));
        }
    }
    out
}
