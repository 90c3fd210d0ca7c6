//! The cluster CA and node certificates: nodes authenticate each other with mutual TLS,
//! trusting only certificates the cluster CA signed.
//!
//! `ferrite cluster init` writes the CA (`cluster-ca.pem`, `cluster-ca.key`). A node given
//! the CA key issues its own certificate on first start into `DATA_DIR/cluster/`; a node
//! given only the CA certificate must find its certificate there already.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ferrite_cluster::quic::NODE_SERVER_NAME;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::identity::tls::{read, write_private};

/// File names `ferrite cluster init` writes.
pub const CA_CERT_FILE: &str = "cluster-ca.pem";
/// The CA key's file name.
pub const CA_KEY_FILE: &str = "cluster-ca.key";
/// The CA that signs every node's server certificate and the device certificates the
/// cluster creates (`[tls] ca_cert` on every node): devices trust it to reach any node.
pub const DEVICE_CA_CERT_FILE: &str = "device-ca.pem";
/// Its key (`[tls] ca_key` on every node).
pub const DEVICE_CA_KEY_FILE: &str = "device-ca.key";

/// Writes a new device CA into `dir` (refusing to overwrite one). Returns (cert, key) paths.
pub fn create_device_ca(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join(DEVICE_CA_CERT_FILE), dir.join(DEVICE_CA_KEY_FILE));
    crate::identity::tls::create_device_ca(&cert, &key)?;
    Ok((cert, key))
}

fn validity(params: &mut CertificateParams, days: i64) {
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
}

/// Writes a new cluster CA into `dir`; refuses to overwrite one. Returns (cert, key) paths.
pub fn create_ca(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
    anyhow::ensure!(
        !cert_path.exists() && !key_path.exists(),
        "{} already holds a cluster CA; remove it first to make a new one (every node must then get new certificates)",
        dir.display()
    );
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "Ferrite cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, 20 * 365);
    let cert = params.self_signed(&key)?;
    write_private(&key_path, &key.serialize_pem())?;
    std::fs::write(&cert_path, cert.pem()).with_context(|| format!("cannot write {}", cert_path.display()))?;
    Ok((cert_path, key_path))
}

/// This node's TLS identity in the cluster: the CA to trust, its chain and its key.
#[derive(Debug)]
pub struct NodeIdentity {
    /// The cluster CA (DER).
    pub ca: CertificateDer<'static>,
    /// The node's certificate chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// The node's private key.
    pub key: PrivateKeyDer<'static>,
}

/// Loads `DATA_DIR/cluster/node.pem` and `node.key`, issuing them with the CA key when
/// they do not exist yet.
pub fn node_identity(
    data_dir: &Path,
    node_id: u64,
    ca_cert: &Path,
    ca_key: Option<&Path>,
) -> anyhow::Result<NodeIdentity> {
    let ca_pem = read(ca_cert).context("the cluster CA certificate (cluster.ca_cert)")?;
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .with_context(|| format!("{} holds no PEM certificate", ca_cert.display()))?;
    let dir = data_dir.join("cluster");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (cert_path, key_path) = (dir.join("node.pem"), dir.join("node.key"));
    if !cert_path.exists() || !key_path.exists() {
        let Some(ca_key) = ca_key else {
            anyhow::bail!(
                "{} is missing: give this node the cluster CA key (cluster.ca_key) to issue its certificate, or copy a node certificate there",
                cert_path.display()
            );
        };
        let ca_key = KeyPair::from_pem(&read(ca_key).context("the cluster CA key (cluster.ca_key)")?)
            .context("the cluster CA key is not a PEM private key")?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("the cluster CA certificate cannot issue")?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![NODE_SERVER_NAME.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, format!("ferrite node {node_id}"));
        validity(&mut params, 5 * 365);
        let cert = params.signed_by(&key, &issuer)?;
        write_private(&key_path, &key.serialize_pem())?;
        std::fs::write(&cert_path, cert.pem()).with_context(|| format!("cannot write {}", cert_path.display()))?;
    }
    let chain = CertificateDer::pem_slice_iter(read(&cert_path)?.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_slice(read(&key_path)?.as_bytes())
        .with_context(|| format!("{} is not a PEM private key", key_path.display()))?;
    Ok(NodeIdentity { ca: ca.into_owned(), chain, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_issues_its_certificate_once_from_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, key) = create_ca(dir.path()).unwrap();
        assert!(create_ca(dir.path()).is_err(), "an existing CA is not overwritten");
        let data = dir.path().join("data");
        let first = node_identity(&data, 1, &ca, Some(&key)).unwrap();
        let again = node_identity(&data, 1, &ca, None).unwrap();
        assert_eq!(first.chain, again.chain, "later starts reuse the certificate");
        let other = dir.path().join("other");
        let e = node_identity(&other, 2, &ca, None).unwrap_err().to_string();
        assert!(e.contains("cluster.ca_key"), "{e}");
    }
}
