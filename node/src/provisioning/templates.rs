//! Provisioning template records as AWS IoT keeps them: a name, versions of the template
//! body (one of them the default), whether it is enabled, its type and its
//! pre-provisioning hook; and the documents the API answers with.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// At most this many versions per template (AWS's limit).
pub const MAX_VERSIONS: usize = 5;

/// AWS's template types.
pub const TYPES: &[&str] = &["FLEET_PROVISIONING", "JITP"];

/// The pre-provisioning hook: an HTTP(S) endpoint here (AWS calls a Lambda function).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// The URL the hook's request is POSTed to.
    pub target_arn: String,
    /// The request document's version (`2020-04-01`).
    pub payload_version: String,
}

/// One version of a template body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// 1, 2, ...: never reused.
    pub version_id: u32,
    /// The template body (JSON text).
    pub body: String,
    /// Unix seconds.
    pub creation_date: u64,
}

/// A provisioning template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRecord {
    /// The name (unique).
    pub template_name: String,
    /// `arn:aws:iot:REGION:ACCOUNT:provisioningtemplate/NAME`.
    pub template_arn: String,
    /// Free text.
    pub description: Option<String>,
    /// Disabled templates provision nothing.
    pub enabled: bool,
    /// FLEET_PROVISIONING or JITP.
    #[serde(rename = "type")]
    pub kind: String,
    /// The role AWS would assume; kept and shown.
    pub provisioning_role_arn: String,
    /// The pre-provisioning hook, if any.
    pub pre_provisioning_hook: Option<Hook>,
    /// The version provisioning uses.
    pub default_version_id: u32,
    /// Every version, oldest first.
    pub versions: Vec<Version>,
    /// The id the next version gets.
    pub next_version_id: u32,
    /// Unix seconds.
    pub creation_date: u64,
    /// Unix seconds.
    pub last_modified_date: u64,
}

impl TemplateRecord {
    /// The default version's body.
    pub fn default_body(&self) -> &str {
        self.versions.iter().find(|v| v.version_id == self.default_version_id).map_or("", |v| v.body.as_str())
    }

    /// DescribeProvisioningTemplate's document.
    pub fn describe(&self) -> Value {
        let mut doc = json!({
            "templateArn": self.template_arn,
            "templateName": self.template_name,
            "creationDate": self.creation_date,
            "lastModifiedDate": self.last_modified_date,
            "defaultVersionId": self.default_version_id,
            "templateBody": self.default_body(),
            "enabled": self.enabled,
            "provisioningRoleArn": self.provisioning_role_arn,
            "type": self.kind,
        });
        if let Some(d) = &self.description {
            doc["description"] = json!(d);
        }
        if let Some(h) = &self.pre_provisioning_hook {
            doc["preProvisioningHook"] = json!({ "targetArn": h.target_arn, "payloadVersion": h.payload_version });
        }
        doc
    }

    /// ListProvisioningTemplates' summary.
    pub fn summary(&self) -> Value {
        let mut doc = json!({
            "templateArn": self.template_arn,
            "templateName": self.template_name,
            "creationDate": self.creation_date,
            "lastModifiedDate": self.last_modified_date,
            "enabled": self.enabled,
            "type": self.kind,
        });
        if let Some(d) = &self.description {
            doc["description"] = json!(d);
        }
        doc
    }

    /// A version's document (Describe/ListProvisioningTemplateVersion(s)), with its body
    /// when `with_body`.
    pub fn version_doc(&self, v: &Version, with_body: bool) -> Value {
        let mut doc = json!({
            "versionId": v.version_id,
            "creationDate": v.creation_date,
            "isDefaultVersion": v.version_id == self.default_version_id,
        });
        if with_body {
            doc["templateBody"] = json!(v.body);
        }
        doc
    }
}

/// What UpdateProvisioningTemplate changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateUpdate {
    /// A new description.
    pub description: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// A new default version (it must exist).
    pub default_version_id: Option<u32>,
    /// A new role.
    pub provisioning_role_arn: Option<String>,
    /// A new hook.
    pub pre_provisioning_hook: Option<Hook>,
    /// Removes the hook.
    pub remove_pre_provisioning_hook: bool,
}
