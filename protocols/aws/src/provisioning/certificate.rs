//! The `AWS::IoT::Certificate` resource: exactly one of `CertificateId`,
//! `CertificateSigningRequest` or `CertificatePem` (with optional `CACertificatePem`), and an
//! optional `Status`.

use serde_json::{Map, Value};

use super::error::{Path, TemplateError};
use super::evaluate::Env;
use super::fields;
use super::intrinsic::{Compiler, Expr, Want};
use super::plan::{CertificatePlan, CertificateSource};

const SOURCES: [&str; 3] = ["CertificateId", "CertificateSigningRequest", "CertificatePem"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Id(Expr),
    Csr(Expr),
    Pem(Expr, Option<Expr>),
}

/// A certificate's compiled properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateSpec {
    source: Source,
    status: Option<Expr>,
}

impl CertificateSpec {
    /// Compiles `Properties` (at `path`).
    pub(crate) fn compile(
        properties: &Map<String, Value>,
        compiler: &mut Compiler,
        path: &Path,
    ) -> Result<CertificateSpec, TemplateError> {
        fields::only_keys(
            properties,
            &["CertificateId", "CertificateSigningRequest", "CertificatePem", "CACertificatePem", "Status"],
            path,
        )?;
        let mut text =
            |key: &str| properties.get(key).map(|v| compiler.expect(v, Want::Text, &path.key(key))).transpose();
        let given: Vec<&str> = SOURCES.into_iter().filter(|key| properties.contains_key(*key)).collect();
        let source = match given.as_slice() {
            [] => return Err(path.error("one of CertificateId, CertificateSigningRequest or CertificatePem is required")),
            [first, second, ..] => {
                return Err(path.error(format_args!(
                    "{first} and {second} cannot both be given (exactly one of CertificateId, CertificateSigningRequest or CertificatePem)"
                )))
            }
            [_] => match (text("CertificateId")?, text("CertificateSigningRequest")?, text("CertificatePem")?) {
                (Some(id), _, _) => Source::Id(id),
                (_, Some(csr), _) => Source::Csr(csr),
                (_, _, Some(pem)) => Source::Pem(pem, text("CACertificatePem")?),
                (None, None, None) => return Err(path.error("CertificateId, CertificateSigningRequest or CertificatePem is required")),
            },
        };
        if properties.contains_key("CACertificatePem") && !matches!(source, Source::Pem(..)) {
            return Err(path.key("CACertificatePem").error("only allowed with CertificatePem"));
        }
        let status = text("Status")?;
        if let Some(Expr::Literal(Value::String(literal))) = &status {
            status_name(literal).map_err(|reason| path.key("Status").error(reason))?;
        }
        Ok(CertificateSpec { source, status })
    }

    /// Resolves the properties (at `path`) into a [`CertificatePlan`].
    pub(crate) fn evaluate(&self, env: &mut Env, path: &Path) -> Result<CertificatePlan, TemplateError> {
        let source = match &self.source {
            Source::Id(id) => CertificateSource::Id(env.text(id, &path.key("CertificateId"))?),
            Source::Csr(csr) => CertificateSource::Csr(env.text(csr, &path.key("CertificateSigningRequest"))?),
            Source::Pem(pem, ca) => CertificateSource::Pem {
                certificate_pem: env.text(pem, &path.key("CertificatePem"))?,
                ca_certificate_pem: match ca {
                    Some(ca) => Some(env.text(ca, &path.key("CACertificatePem"))?),
                    None => None,
                },
            },
        };
        let status = match &self.status {
            Some(expr) => {
                let at = path.key("Status");
                let text = env.text(expr, &at)?;
                Some(status_name(&text).map_err(|reason| at.error(reason))?.to_string())
            }
            None => None,
        };
        Ok(CertificatePlan { source, status })
    }
}

/// `ACTIVE` or `INACTIVE`, in any letter case (AWS's own examples write `Active`).
fn status_name(text: &str) -> Result<&'static str, String> {
    ["ACTIVE", "INACTIVE"]
        .into_iter()
        .find(|name| name.eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("expected ACTIVE or INACTIVE, found \"{text}\""))
}
