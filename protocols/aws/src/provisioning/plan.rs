//! What evaluating a template yields: the thing, certificate and policy to create or attach, the
//! device configuration to return, and the parameters that went in.
//!
//! These types carry only resolved values (no intrinsics, no conditions), so the node can act on
//! a plan without knowing anything about the template language.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The outcome of [`Template::evaluate`](super::Template::evaluate): one provisioning run's worth
/// of work. A resource is `None` when the template has none of that type or its `Condition` was
/// false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The `AWS::IoT::Thing` to create or update.
    pub thing: Option<ThingPlan>,
    /// The `AWS::IoT::Certificate` to register, create from a CSR or activate.
    pub certificate: Option<CertificatePlan>,
    /// The `AWS::IoT::Policy` to attach to the certificate.
    pub policy: Option<PolicyPlan>,
    /// The evaluated `DeviceConfiguration`, returned to the device by fleet provisioning.
    pub device_configuration: Map<String, Value>,
    /// Every parameter the evaluation looked up, with the value it used (given or `Default`), so
    /// bulk registration can report what each row resolved to.
    pub parameters: Map<String, Value>,
}

/// The thing a template provisions, with its properties resolved to strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThingPlan {
    /// `ThingName`.
    pub thing_name: String,
    /// `AttributePayload`, every value as text.
    pub attributes: BTreeMap<String, String>,
    /// `ThingTypeName`, when given.
    pub thing_type_name: Option<String>,
    /// `ThingGroups`, in template order.
    pub thing_groups: Vec<String>,
    /// What to do when the thing already exists (`OverrideSettings`).
    pub overrides: ThingOverrides,
}

/// The thing's `OverrideSettings`: how each property treats an existing thing's value.
/// A property left out of `OverrideSettings` is [`Override::DoNothing`], as on AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThingOverrides {
    /// For `AttributePayload`.
    pub attribute_payload: Override,
    /// For `ThingTypeName` (never [`Override::Merge`]).
    pub thing_type_name: Override,
    /// For `ThingGroups`.
    pub thing_groups: Override,
}

/// One `OverrideSettings` value: what provisioning does when the thing already exists and the
/// property differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Override {
    /// `REPLACE`: the template's value replaces the existing one.
    Replace,
    /// `MERGE`: attributes or groups are added to the existing ones.
    Merge,
    /// `FAIL`: provisioning fails when the value differs.
    Fail,
    /// `DO_NOTHING`: the existing value is kept (AWS's default).
    #[default]
    DoNothing,
}

impl Override {
    /// AWS's spelling, as written in templates and API documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Override::Replace => "REPLACE",
            Override::Merge => "MERGE",
            Override::Fail => "FAIL",
            Override::DoNothing => "DO_NOTHING",
        }
    }

    /// Reads AWS's spelling (exact case).
    pub fn from_name(name: &str) -> Option<Override> {
        match name {
            "REPLACE" => Some(Override::Replace),
            "MERGE" => Some(Override::Merge),
            "FAIL" => Some(Override::Fail),
            "DO_NOTHING" => Some(Override::DoNothing),
            _ => None,
        }
    }
}

/// The certificate a template provisions, and the status to give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePlan {
    /// Which certificate: an existing one, one to sign from a CSR, or one to register.
    pub source: CertificateSource,
    /// `Status`, normalised to `ACTIVE` or `INACTIVE`; `None` when the template leaves it out.
    pub status: Option<String>,
}

/// Where the provisioned certificate comes from; exactly one of the three certificate
/// properties of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// `CertificateId`: a certificate already known to the broker.
    Id(String),
    /// `CertificateSigningRequest`: a PEM CSR to sign.
    Csr(String),
    /// `CertificatePem` (with optional `CACertificatePem`): a certificate to register.
    Pem {
        /// The device certificate, PEM.
        certificate_pem: String,
        /// The CA that signed it, PEM, when given.
        ca_certificate_pem: Option<String>,
    },
}

/// The policy to attach: an existing one by name or a new one from a document. Exactly one
/// field is `Some`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPlan {
    /// `PolicyName`: attach this existing policy.
    pub name: Option<String>,
    /// `PolicyDocument`: the policy JSON text to create and attach.
    pub document: Option<String>,
}
