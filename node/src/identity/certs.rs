//! X.509 certificates as AWS IoT keeps them: CA certificates and device certificates with
//! their status, and the check a presented client certificate must pass at CONNECT. Pure:
//! records and AWS's errors; the state lives in `identity::mod`.

use std::collections::BTreeMap;

use ferrite_aws::AwsError;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// A device certificate's status (AWS's `CertificateStatus`).
pub const DEVICE_STATUSES: &[&str] =
    &["ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE", "PENDING_ACTIVATION"];

/// What every registered certificate record has, device or CA: stored flattened into
/// [`Certificate`] and [`CaCertificate`], whose fields it lends by `Deref`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// SHA-256 of the DER encoding, hex (AWS's certificate id).
    pub certificate_id: String,
    /// `arn:aws:iot:REGION:ACCOUNT:cert/ID` or `...:cacert/ID`.
    pub certificate_arn: String,
    /// One of [`DEVICE_STATUSES`], or ACTIVE/INACTIVE for a CA.
    pub status: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// Seconds since the epoch.
    pub creation_date: u64,
    /// Seconds since the epoch.
    pub last_modified_date: u64,
    /// Grows with every change.
    pub customer_version: u64,
    /// Changes with every change.
    pub generation_id: String,
    /// Validity start, seconds since the epoch.
    pub not_before: i64,
    /// Validity end, seconds since the epoch.
    pub not_after: i64,
}

impl Registration {
    /// A first registration of `parsed` at `now` (version 1).
    pub fn new(
        parsed: &Parsed,
        certificate_arn: String,
        status: &str,
        pem: String,
        now: u64,
        generation_id: String,
    ) -> Self {
        Registration {
            certificate_id: parsed.id.clone(),
            certificate_arn,
            status: status.to_string(),
            certificate_pem: pem,
            creation_date: now,
            last_modified_date: now,
            customer_version: 1,
            generation_id,
            not_before: parsed.not_before,
            not_after: parsed.not_after,
        }
    }
}

/// A device certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// What every certificate record has.
    #[serde(flatten)]
    pub registration: Registration,
    /// The registered CA that signed it, when registered under one.
    pub ca_certificate_id: Option<String>,
    /// A provisioning claim (CreateProvisioningClaim): the template whose provisioning
    /// topics alone this certificate may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_claim: Option<String>,
}

/// A registered CA certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaCertificate {
    /// What every certificate record has.
    #[serde(flatten)]
    pub registration: Registration,
    /// ENABLE or DISABLE.
    pub auto_registration_status: String,
    /// DEFAULT (registered with a verification certificate) or SNI_ONLY.
    #[serde(default = "default_mode")]
    pub certificate_mode: String,
    /// JITP: the template (a body, or a template's name) that provisions the devices this
    /// CA signed on their first connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_config: Option<RegistrationConfig>,
}

fn default_mode() -> String {
    "DEFAULT".into()
}

/// A CA's `registrationConfig` (AWS's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationConfig {
    /// The JITP template body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_body: Option<String>,
    /// Or the name of a JITP provisioning template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_name: Option<String>,
    /// The role AWS would assume; kept and shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

impl Certificate {
    /// A device certificate's first record: `arn_prefix` is `arn:aws:iot:REGION:ACCOUNT:`.
    pub fn device(
        parsed: &Parsed,
        arn_prefix: &str,
        pem: String,
        ca: Option<String>,
        status: &str,
        now_s: u64,
    ) -> Self {
        let arn = format!("{arn_prefix}cert/{}", parsed.id);
        let generation_id = crate::registry::new_id();
        Certificate {
            registration: Registration::new(parsed, arn, status, pem, now_s, generation_id),
            ca_certificate_id: ca,
            provisioning_claim: None,
        }
    }
}

impl std::ops::Deref for Certificate {
    type Target = Registration;
    fn deref(&self) -> &Registration {
        &self.registration
    }
}

impl std::ops::DerefMut for Certificate {
    fn deref_mut(&mut self) -> &mut Registration {
        &mut self.registration
    }
}

impl std::ops::Deref for CaCertificate {
    type Target = Registration;
    fn deref(&self) -> &Registration {
        &self.registration
    }
}

impl std::ops::DerefMut for CaCertificate {
    fn deref_mut(&mut self) -> &mut Registration {
        &mut self.registration
    }
}

/// A certificate read from PEM: what records and checks need from it.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// DER bytes.
    pub der: Vec<u8>,
    /// SHA-256 hex of the DER.
    pub id: String,
    /// Validity, seconds since the epoch.
    pub not_before: i64,
    /// Validity, seconds since the epoch.
    pub not_after: i64,
    /// Basic constraints say CA.
    pub is_ca: bool,
}

/// AWS's 400 for a certificate that cannot be used.
pub fn validation_error(message: impl Into<String>) -> AwsError {
    AwsError { status: 400, error_type: "CertificateValidationException", message: message.into() }
}

/// AWS's 406 for an operation the certificate's state forbids.
pub fn state_error(message: impl Into<String>) -> AwsError {
    AwsError { status: 406, error_type: "CertificateStateException", message: message.into() }
}

/// AWS's 409 for a resource that exists already.
pub fn already_exists(message: impl Into<String>) -> AwsError {
    AwsError { status: 409, error_type: "ResourceAlreadyExistsException", message: message.into() }
}

/// AWS's 409 for deleting something still in use.
pub fn delete_conflict(message: impl Into<String>) -> AwsError {
    AwsError { status: 409, error_type: "DeleteConflictException", message: message.into() }
}

/// AWS's 404 for a missing certificate.
pub fn not_found(id: &str) -> AwsError {
    AwsError {
        status: 404,
        error_type: "ResourceNotFoundException",
        message: format!("The certificate {id} does not exist"),
    }
}

/// SHA-256 hex of DER bytes: the certificate id.
pub fn certificate_id(der: &[u8]) -> String {
    sha2::Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses the first certificate of a PEM text.
pub fn parse_pem(pem: &str) -> Result<Parsed, AwsError> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| validation_error("The certificate is not a valid PEM-encoded X.509 certificate"))?;
    parse_der(&der)
}

/// Parses DER bytes.
pub fn parse_der(der: &[u8]) -> Result<Parsed, AwsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| validation_error(format!("The certificate cannot be parsed: {e}")))?;
    let v = cert.validity();
    Ok(Parsed {
        der: der.to_vec(),
        id: certificate_id(der),
        not_before: v.not_before.timestamp(),
        not_after: v.not_after.timestamp(),
        is_ca: cert.is_ca(),
    })
}

/// The subject's common name of a certificate (DER), if it has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

/// Is `leaf` (DER) signed by `ca` (DER)?
pub fn signed_by(leaf: &[u8], ca: &[u8]) -> bool {
    let (Ok((_, leaf)), Ok((_, ca))) =
        (x509_parser::parse_x509_certificate(leaf), x509_parser::parse_x509_certificate(ca))
    else {
        return false;
    };
    leaf.issuer() == ca.subject() && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// Why a presented client certificate may not connect.
pub fn refusal(
    presented: &[u8],
    record: Option<&Certificate>,
    ca: Option<&CaCertificate>,
    now_s: i64,
) -> Result<(), String> {
    let Some(record) = record else {
        return Err("the client certificate is not registered".into());
    };
    if record.status != "ACTIVE" {
        return Err(format!("the client certificate {} is {}", record.certificate_id, record.status));
    }
    if now_s < record.not_before {
        return Err(format!("the client certificate {} is not valid yet", record.certificate_id));
    }
    if now_s > record.not_after {
        return Err(format!("the client certificate {} has expired", record.certificate_id));
    }
    if let Some(ca_id) = &record.ca_certificate_id {
        let Some(ca) = ca else {
            return Err(format!("the CA certificate {ca_id} of the client certificate is not registered"));
        };
        if ca.status != "ACTIVE" {
            return Err(format!("the CA certificate {ca_id} of the client certificate is {}", ca.status));
        }
        let ca_der =
            CertificateDer::from_pem_slice(ca.certificate_pem.as_bytes()).map(|d| d.to_vec()).unwrap_or_default();
        if !signed_by(presented, &ca_der) {
            return Err(format!("the client certificate is not signed by its CA {ca_id}"));
        }
    }
    Ok(())
}

/// OIDs of distinguished-name attributes and the names AWS's policy variables give them.
const DN_ATTRIBUTES: &[(&str, &str)] = &[
    ("2.5.4.3", "CommonName"),
    ("2.5.4.6", "Country"),
    ("2.5.4.10", "Organization"),
    ("2.5.4.11", "OrganizationalUnit"),
    ("2.5.4.8", "State"),
    ("2.5.4.7", "Locality"),
    ("2.5.4.5", "SerialNumber"),
    ("2.5.4.12", "Title"),
    ("2.5.4.4", "Surname"),
    ("2.5.4.42", "GivenName"),
    ("2.5.4.43", "Initials"),
    ("2.5.4.65", "Pseudonym"),
    ("2.5.4.44", "GenerationQualifier"),
    ("2.5.4.46", "DistinguishedNameQualifier"),
];

fn name_variables(prefix: &str, name: &x509_parser::x509::X509Name<'_>, out: &mut BTreeMap<String, Vec<String>>) {
    for attr in name.iter_attributes() {
        let oid = attr.attr_type().to_id_string();
        let Some((_, label)) = DN_ATTRIBUTES.iter().find(|(o, _)| *o == oid) else { continue };
        if let Ok(value) = attr.as_str() {
            out.entry(format!("{prefix}.{label}")).or_default().push(value.to_string());
        }
    }
}

/// The `iot:Certificate.*` policy variables of a certificate, keyed by the part after
/// `iot:Certificate.` (`Subject.CommonName`, `Issuer.Organization`, `SerialNumber`, ...).
pub fn policy_variables(der: &[u8]) -> BTreeMap<String, Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let mut out = BTreeMap::new();
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return out };
    name_variables("Subject", cert.subject(), &mut out);
    name_variables("Issuer", cert.issuer(), &mut out);
    out.insert("SerialNumber".into(), vec![cert.raw_serial_as_string().replace(':', "")]);
    out.insert("Validity.NotBefore".into(), vec![cert.validity().not_before.to_datetime().to_string()]);
    out.insert("Validity.NotAfter".into(), vec![cert.validity().not_after.to_datetime().to_string()]);
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            let (key, value) = match name {
                GeneralName::DNSName(s) => ("SubjectAlternativeName.DNSName", s.to_string()),
                GeneralName::RFC822Name(s) => ("SubjectAlternativeName.RFC822Name", s.to_string()),
                GeneralName::URI(s) => ("SubjectAlternativeName.UniformResourceIdentifier", s.to_string()),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).map(|a| std::net::IpAddr::from(a).to_string()).ok(),
                        16 => <[u8; 16]>::try_from(*b).map(|a| std::net::IpAddr::from(a).to_string()).ok(),
                        _ => None,
                    };
                    let Some(ip) = ip else { continue };
                    ("SubjectAlternativeName.IPAddress", ip)
                }
                _ => continue,
            };
            out.entry(key.to_string()).or_insert_with(Vec::new).push(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn self_signed(cn: &str) -> (String, Vec<u8>) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["dev.example.com".to_string()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.distinguished_name.push(DnType::OrganizationName, "Acme");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), cert.der().to_vec())
    }

    #[test]
    fn the_certificate_id_is_the_sha256_of_the_der() {
        let (pem, der) = self_signed("a");
        let parsed = parse_pem(&pem).expect("parse");
        assert_eq!(parsed.id, certificate_id(&der));
        assert_eq!(parsed.id.len(), 64);
        assert!(parse_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
        assert!(parse_pem("hello").is_err());
    }

    #[test]
    fn policy_variables_name_subject_and_alternative_names() {
        let (_, der) = self_signed("sensor-1");
        let vars = policy_variables(&der);
        assert_eq!(vars["Subject.CommonName"], vec!["sensor-1"]);
        assert_eq!(vars["Subject.Organization"], vec!["Acme"]);
        assert_eq!(vars["SubjectAlternativeName.DNSName"], vec!["dev.example.com"]);
        assert!(vars.contains_key("SerialNumber"));
    }

    #[test]
    fn records_store_their_registration_flat() {
        let (pem, _) = self_signed("flat");
        let parsed = parse_pem(&pem).expect("parse");
        let registration = Registration::new(&parsed, "arn".into(), "ACTIVE", pem, 7, "g".into());
        let record = Certificate { registration, ca_certificate_id: Some("ca".into()), provisioning_claim: None };
        let stored = serde_json::to_value(&record).expect("json");
        assert_eq!(stored["certificateId"], parsed.id.as_str());
        assert_eq!(stored["caCertificateId"], "ca");
        assert_eq!(stored["creationDate"], 7);
        assert_eq!(serde_json::from_value::<Certificate>(stored).expect("read back"), record);
    }

    #[test]
    fn refusal_names_the_reason() {
        let (pem, der) = self_signed("x");
        let parsed = parse_pem(&pem).expect("parse");
        let registration = Registration::new(&parsed, String::new(), "ACTIVE", pem, 0, String::new());
        let mut record = Certificate { registration, ca_certificate_id: None, provisioning_claim: None };
        let now = parsed.not_before + 10;
        assert!(refusal(&der, Some(&record), None, now).is_ok());
        assert!(refusal(&der, None, None, now).unwrap_err().contains("not registered"));
        assert!(refusal(&der, Some(&record), None, parsed.not_after + 1).unwrap_err().contains("expired"));
        record.status = "REVOKED".into();
        assert!(refusal(&der, Some(&record), None, now).unwrap_err().contains("REVOKED"));
        record.status = "ACTIVE".into();
        record.ca_certificate_id = Some("abc".into());
        assert!(refusal(&der, Some(&record), None, now).unwrap_err().contains("CA certificate abc"));
    }
}
