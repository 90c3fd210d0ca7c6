//! Just-in-time registration and provisioning: the first connection of a device
//! certificate that is not registered, signed by a registered CA whose auto-registration is
//! ENABLE. Without a template on the CA (JITR) the certificate is registered as
//! PENDING_ACTIVATION and `$aws/events/certificates/registered/{caCertificateId}` is
//! published; with one (JITP) the template provisions the thing, policy and certificate.
//! Either way that first connection is closed, as AWS does; the device connects again.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{now_s, ProvisioningRuntime, Subject};
use crate::identity::certs::{self, CaCertificate, Certificate};
use crate::identity::Command as IdentityCommand;
use crate::meta::Command;

/// The certificate subject's fields as JITP template parameters (`AWS::IoT::Certificate::…`).
pub fn subject_parameters(pem: &str) -> Vec<(String, Value)> {
    const NAMES: &[(&str, &str)] = &[
        ("CommonName", "CommonName"),
        ("Country", "Country"),
        ("Organization", "Organization"),
        ("OrganizationalUnit", "OrganizationalUnit"),
        ("DistinguishedNameQualifier", "DistinguishedNameQualifier"),
        ("State", "StateName"),
        ("Locality", "Locality"),
        ("Title", "Title"),
        ("Surname", "Surname"),
        ("GivenName", "GivenName"),
        ("Initials", "Initials"),
        ("Pseudonym", "Pseudonym"),
        ("GenerationQualifier", "GenerationQualifier"),
        ("SerialNumber", "SerialNumber"),
    ];
    let Ok(parsed) = certs::parse_pem(pem) else { return Vec::new() };
    let vars = certs::policy_variables(&parsed.der);
    let mut out = Vec::new();
    for (label, name) in NAMES {
        if let Some(value) = vars.get(&format!("Subject.{label}")).and_then(|v| v.first()) {
            out.push((format!("AWS::IoT::Certificate::{name}"), json!(value)));
        }
    }
    if let Some(san) = vars.get("SubjectAlternativeName.DNSName").and_then(|v| v.first()) {
        out.push(("AWS::IoT::Certificate::SubjectAlternativeName".into(), json!(san)));
    }
    out
}

impl ProvisioningRuntime {
    /// For a certificate presented at CONNECT that is not registered: when a CA allows its
    /// auto-registration, registers (JITR) or provisions (JITP) it and returns why this
    /// connection is refused anyway; `None` when no CA allows it.
    pub fn just_in_time(self: &Arc<Self>, der: &[u8]) -> Option<impl std::future::Future<Output = String> + use<>> {
        let identity = &self.meta.state().identity;
        let id = certs::certificate_id(der);
        if identity.certificate(&id).is_some() {
            return None;
        }
        let ca = identity.auto_registration_ca(der)?;
        let parsed = certs::parse_der(der).ok()?;
        let pem = pem_of(der);
        let record = Certificate::device(
            &parsed,
            &self.arn_prefix(),
            pem,
            Some(ca.registration.certificate_id.clone()),
            "PENDING_ACTIVATION",
            now_s(),
        );
        let me = self.clone();
        Some(async move {
            match me.template_of(&ca) {
                Some((body, arn)) => me.jitp(record, &ca, &body, arn.as_deref()).await,
                None => me.jitr(record, &ca).await,
            }
        })
    }

    /// The JITP template of a CA: its body and, for a named template, its ARN.
    fn template_of(&self, ca: &CaCertificate) -> Option<(String, Option<String>)> {
        let config = ca.registration_config.as_ref()?;
        if let Some(body) = &config.template_body {
            return Some((body.clone(), None));
        }
        let t = self.meta.state().provisioning.template(config.template_name.as_deref()?)?;
        Some((t.default_body().to_string(), Some(t.template_arn.clone())))
    }

    async fn jitr(&self, record: Certificate, ca: &CaCertificate) -> String {
        let id = record.certificate_id.clone();
        let registered_at = record.creation_date;
        if let Err(e) = self.propose(Command::Identity(IdentityCommand::RegisterCertificate { record })).await {
            return format!("just-in-time registration of certificate {id} failed: {}", e.message);
        }
        let ca_id = &ca.registration.certificate_id;
        let event = json!({
            "certificateId": id,
            "caCertificateId": ca_id,
            "timestamp": crate::broker::message::now_ms(),
            "certificateStatus": "PENDING_ACTIVATION",
            "awsAccountId": crate::registry::account_id(),
            "certificateRegistrationTimestamp": registered_at,
        });
        self.publisher.publish_json(format!("$aws/events/certificates/registered/{ca_id}"), event);
        tracing::info!(certificate_id = %id, ca_certificate_id = %ca_id, "certificate registered just in time (PENDING_ACTIVATION)");
        format!(
            "the certificate {id} was registered just in time as PENDING_ACTIVATION: activate it, then connect again"
        )
    }

    async fn jitp(&self, record: Certificate, ca: &CaCertificate, body: &str, arn: Option<&str>) -> String {
        let id = record.certificate_id.clone();
        let subject = Subject { certificate_id: Some(id.clone()), pending: Some(record), ..Subject::default() };
        match self.provision(body, arn, None, Map::new(), &subject).await {
            Ok(done) => {
                let thing = done.made.thing.map(|(name, _)| name).unwrap_or_default();
                tracing::info!(certificate_id = %id, ca_certificate_id = %ca.registration.certificate_id, thing = %thing, "device provisioned just in time");
                format!("the certificate {id} was provisioned just in time (thing {thing}): connect again")
            }
            Err(r) => {
                tracing::warn!(certificate_id = %id, ca_certificate_id = %ca.registration.certificate_id, reason = %r.message, "just-in-time provisioning failed");
                format!("just-in-time provisioning of certificate {id} failed: {}", r.message)
            }
        }
    }
}

/// A DER certificate as PEM.
fn pem_of(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
