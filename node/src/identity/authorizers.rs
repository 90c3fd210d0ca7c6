//! Custom authorizer records (AWS's CreateAuthorizer and friends). Where AWS names a Lambda
//! function, Ferrite names an HTTP endpoint: `authorizerFunctionArn` is an `http://` or
//! `https://` URL that receives AWS's authorizer event as a JSON POST and answers AWS's
//! authorizer response (see `custom_auth`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::certs;
use super::{key, put, Command, Identity, AUTHORIZER, DEFAULT_AUTHORIZER};
use crate::registry::things::missing;
use ferrite_aws::AwsError;
use ferrite_cluster::{Batch, Table};

/// A custom authorizer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerRecord {
    /// Unique name.
    pub authorizer_name: String,
    /// `arn:aws:iot:{region}:{account}:authorizer/{name}`.
    pub authorizer_arn: String,
    /// The `http://` or `https://` URL that decides (AWS: a Lambda ARN).
    pub authorizer_function_arn: String,
    /// The username query key that carries the token (`?TOKEN_KEY=token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_key_name: Option<String>,
    /// Key name -> PEM public key that signs tokens (when signing is enabled).
    #[serde(default)]
    pub token_signing_public_keys: BTreeMap<String, String>,
    /// ACTIVE or INACTIVE.
    pub status: String,
    /// Tokens need no signature.
    #[serde(default)]
    pub signing_disabled: bool,
    /// AWS's HTTP caching flag (kept for API round trips).
    #[serde(default)]
    pub enable_caching_for_http: bool,
    /// Unix seconds.
    pub creation_date: u64,
    /// Unix seconds.
    pub last_modified_date: u64,
}

/// AWS's answer for a missing authorizer.
pub fn authorizer_not_found(name: &str) -> AwsError {
    missing("Authorizer", name)
}

impl Identity {
    pub(super) fn apply_authorizer(&self, command: Command, writes: &mut Batch) -> Result<(), AwsError> {
        let mut all = self.authorizers.write();
        match command {
            Command::CreateAuthorizer { record } => {
                if all.contains_key(&record.authorizer_name) {
                    return Err(certs::already_exists(format!(
                        "The authorizer {} already exists",
                        record.authorizer_name
                    )));
                }
                put(writes, key(AUTHORIZER, &record.authorizer_name), &record);
                all.insert(record.authorizer_name.clone(), record);
            }
            Command::UpdateAuthorizer { record } => {
                if !all.contains_key(&record.authorizer_name) {
                    return Err(authorizer_not_found(&record.authorizer_name));
                }
                put(writes, key(AUTHORIZER, &record.authorizer_name), &record);
                all.insert(record.authorizer_name.clone(), record);
            }
            Command::DeleteAuthorizer { name } => {
                let record = all.get(&name).ok_or_else(|| authorizer_not_found(&name))?;
                if record.status == "ACTIVE" {
                    return Err(certs::delete_conflict(format!(
                        "The authorizer {name} is ACTIVE: set its status to INACTIVE (UpdateAuthorizer) before deleting it"
                    )));
                }
                let mut default = self.default_authorizer.write();
                if default.as_deref() == Some(name.as_str()) {
                    *default = None;
                    writes.delete(Table::Registry, key(DEFAULT_AUTHORIZER, ""));
                }
                writes.delete(Table::Registry, key(AUTHORIZER, &name));
                all.remove(&name);
            }
            Command::SetDefaultAuthorizer { name } => {
                if !all.contains_key(&name) {
                    return Err(authorizer_not_found(&name));
                }
                put(writes, key(DEFAULT_AUTHORIZER, ""), &name);
                *self.default_authorizer.write() = Some(name);
            }
            _ => return Err(crate::registry::things::internal_failure()),
        }
        Ok(())
    }

    /// DescribeAuthorizer.
    pub fn authorizer(&self, name: &str) -> Option<AuthorizerRecord> {
        self.authorizers.read().get(name).cloned()
    }

    /// ListAuthorizers, in name order.
    pub fn authorizer_list(&self) -> Vec<AuthorizerRecord> {
        self.authorizers.read().values().cloned().collect()
    }

    /// The default authorizer (SetDefaultAuthorizer), if one is set and still exists.
    pub fn default_authorizer(&self) -> Option<AuthorizerRecord> {
        let name = self.default_authorizer.read().clone()?;
        self.authorizer(&name)
    }
}
