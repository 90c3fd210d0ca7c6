//! TLS for the device-facing listeners (rustls with the `ring` provider): the server
//! certificate, the CA that signs the certificates the node issues, and a client-certificate
//! verifier that checks only possession of the key. Whether a certificate may connect
//! (registered, ACTIVE, signed by its registered CA, in date) is decided at CONNECT against
//! the registry, so that a status change takes effect without rebuilding TLS state.
//!
//! With no configuration, the first start writes a development CA and a server certificate
//! for `localhost` and `127.0.0.1` into `DATA_DIR/tls/` and later starts reuse them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::Deserialize;

/// ALPN protocol AWS IoT uses for MQTT with client certificates on port 443.
pub const ALPN_MQTT_CA: &[u8] = b"x-amzn-mqtt-ca";
/// ALPN protocol AWS IoT uses for MQTT on port 443 with custom authentication (the Device
/// SDK's `direct_with_custom_authorizer`).
pub const ALPN_MQTT: &[u8] = b"mqtt";
/// ALPN protocol AWS IoT uses for HTTPS with client certificates on port 443.
pub const ALPN_HTTP_CA: &[u8] = b"x-amzn-http-ca";

/// How long certificates the node issues stay valid (AWS's CreateKeysAndCertificate
/// certificates are valid until 2049; ours for 25 years).
const ISSUED_VALIDITY_DAYS: i64 = 25 * 365;

/// The `[tls]` table of the config file: PEM files for the server certificate and for the CA
/// that signs the certificates the node creates. Anything left out is generated into
/// `DATA_DIR/tls/` on first start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Server certificate chain (PEM), leaf first.
    pub server_cert: Option<PathBuf>,
    /// The server certificate's private key (PEM, PKCS#8 or SEC1 or PKCS#1).
    pub server_key: Option<PathBuf>,
    /// CA certificate (PEM) that signs CreateKeysAndCertificate/CreateCertificateFromCsr.
    pub ca_cert: Option<PathBuf>,
    /// That CA's private key (PEM).
    pub ca_key: Option<PathBuf>,
}

/// Signs the device certificates the node creates.
pub struct CertIssuer {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertIssuer").finish_non_exhaustive()
    }
}

/// A certificate the node issued, with its key pair when the node generated it.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// (public key PEM, private key PEM) when the node generated the key.
    pub key_pair: Option<(String, String)>,
}

fn issued_params() -> anyhow::Result<CertificateParams> {
    issued_params_for(time::Duration::days(ISSUED_VALIDITY_DAYS))
}

fn issued_params_for(validity: time::Duration) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "Ferrite Device");
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + validity;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

impl CertIssuer {
    /// CreateKeysAndCertificate: a new ECDSA P-256 key pair and a client certificate for it.
    pub fn issue_with_new_key(&self) -> anyhow::Result<Issued> {
        self.issue_with_new_key_for(time::Duration::days(ISSUED_VALIDITY_DAYS))
    }

    /// A new key pair and a certificate valid for `validity` from now (CreateProvisioningClaim:
    /// five minutes).
    pub fn issue_with_new_key_for(&self, validity: time::Duration) -> anyhow::Result<Issued> {
        let key = KeyPair::generate()?;
        let cert = issued_params_for(validity)?.signed_by(&key, &self.issuer)?;
        let public = key.public_key_pem();
        Ok(Issued {
            certificate_pem: cert.pem(),
            der: cert.der().to_vec(),
            key_pair: Some((public, key.serialize_pem())),
        })
    }

    /// CreateCertificateFromCsr: a client certificate for the CSR's key and subject. The
    /// CSR's own signature is checked, so the requester holds the private key.
    pub fn issue_for_csr(&self, csr_pem: &str) -> Result<Issued, String> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("invalid certificate signing request: {e}"))?;
        let mut params = issued_params().map_err(|e| e.to_string())?;
        params.distinguished_name = csr.params.distinguished_name.clone();
        params.subject_alt_names = csr.params.subject_alt_names.clone();
        let csr = CertificateSigningRequestParams { params, public_key: csr.public_key };
        let cert = csr.signed_by(&self.issuer).map_err(|e| format!("cannot sign the request: {e}"))?;
        Ok(Issued { certificate_pem: cert.pem(), der: cert.der().to_vec(), key_pair: None })
    }
}

/// The node's TLS state: what the listeners serve and who signs issued certificates.
pub struct Tls {
    /// The server certificate every TLS listener presents (reloadable).
    pub identity: Arc<ServerIdentity>,
    /// Signs certificates the node creates.
    pub issuer: Arc<CertIssuer>,
    /// The CA file devices trust the server with (the development CA unless configured).
    pub ca_path: PathBuf,
    /// The server certificate file.
    pub server_cert_path: PathBuf,
    /// Whether this start generated the files.
    pub created: bool,
}

/// The server certificate and key the TLS listeners present, read from their files at start
/// and again on SIGHUP; handshakes already under way keep the pair they started with.
#[derive(Debug)]
pub struct ServerIdentity {
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl ServerIdentity {
    fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<rustls::sign::CertifiedKey> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(read(cert_path)?.as_bytes())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}: not a PEM certificate chain", cert_path.display()))?;
        anyhow::ensure!(!chain.is_empty(), "{}: no certificate in the file", cert_path.display());
        let key = PrivateKeyDer::from_pem_slice(read(key_path)?.as_bytes())
            .with_context(|| format!("{}: not a PEM private key", key_path.display()))?;
        rustls::sign::CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider()).with_context(|| {
            format!("{} and {} do not form a usable TLS identity", cert_path.display(), key_path.display())
        })
    }

    /// Reads the certificate and key files again and serves them from the next handshake on;
    /// on any problem the pair in use stays and the error says what is wrong.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = Arc::new(ServerIdentity::load(&self.cert_path, &self.key_path)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }
}

impl rustls::server::ResolvesServerCert for ServerIdentity {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("ca_path", &self.ca_path).field("server_cert_path", &self.server_cert_path).finish()
    }
}

pub(crate) fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Creates (or truncates) a file only its owner can read: keys, backups.
pub(crate) fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    create_private(path)?.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

fn dev_ca_params() -> anyhow::Result<CertificateParams> {
    ca_params("Ferrite development CA")
}

fn ca_params(common_name: &str) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.distinguished_name.push(DnType::OrganizationName, "Ferrite");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(ISSUED_VALIDITY_DAYS + 365);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
    Ok(params)
}

fn server_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "localhost");
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(825);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

/// Writes a new CA for devices (`cert`, `key`): what `ferrite cluster init` gives every node
/// as `[tls] ca_cert`/`ca_key`, so that every node's server certificate and every device
/// certificate the cluster creates chain to one CA. Refuses to overwrite either file.
pub fn create_device_ca(cert: &Path, key: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        !cert.exists() && !key.exists(),
        "{} already exists; remove it first to make a new device CA (devices must then trust the new one)",
        cert.display()
    );
    let pair = KeyPair::generate()?;
    let ca = ca_params("Ferrite device CA")?.self_signed(&pair)?;
    write_private(key, &pair.serialize_pem())?;
    std::fs::write(cert, ca.pem()).with_context(|| format!("cannot write {}", cert.display()))
}

impl Tls {
    /// Loads the configured files, generating what is missing into `DATA_DIR/tls/`.
    pub fn load_or_create(data_dir: &Path, files: &TlsFiles) -> anyhow::Result<Tls> {
        let dir = data_dir.join("tls");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut created = false;
        // The signing CA: configured, or the development CA.
        let (ca_path, ca_key_path) = match (&files.ca_cert, &files.ca_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            (None, None) => {
                let (c, k) = (dir.join("ca.pem"), dir.join("ca.key"));
                if !c.exists() || !k.exists() {
                    let key = KeyPair::generate()?;
                    let cert = dev_ca_params()?.self_signed(&key)?;
                    write_private(&k, &key.serialize_pem())?;
                    std::fs::write(&c, cert.pem()).with_context(|| format!("cannot write {}", c.display()))?;
                    created = true;
                }
                (c, k)
            }
            _ => anyhow::bail!("[tls] needs both ca_cert and ca_key, or neither"),
        };
        let ca_pem = read(&ca_path)?;
        let ca_key = KeyPair::from_pem(&read(&ca_key_path)?)
            .with_context(|| format!("{}: not a private key this node can sign with", ca_key_path.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
            .with_context(|| format!("{}: not a CA certificate", ca_path.display()))?;
        let issuer = CertIssuer { ca_pem: ca_pem.clone(), issuer };
        // The server certificate: configured, or issued by the signing CA.
        let (cert_path, key_path) = match (&files.server_cert, &files.server_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            (None, None) => {
                let (c, k) = (dir.join("server.pem"), dir.join("server.key"));
                if !c.exists() || !k.exists() {
                    let key = KeyPair::generate()?;
                    let cert = server_params()?.signed_by(&key, &issuer.issuer)?;
                    write_private(&k, &key.serialize_pem())?;
                    std::fs::write(&c, cert.pem() + &ca_pem)
                        .with_context(|| format!("cannot write {}", c.display()))?;
                    created = true;
                }
                (c, k)
            }
            _ => anyhow::bail!("[tls] needs both server_cert and server_key, or neither"),
        };
        let current = std::sync::RwLock::new(Arc::new(ServerIdentity::load(&cert_path, &key_path)?));
        let identity = Arc::new(ServerIdentity { current, cert_path: cert_path.clone(), key_path });
        let tls = Tls { identity, issuer: Arc::new(issuer), ca_path, server_cert_path: cert_path, created };
        tls.server_config(&[]).context("the server certificate and key do not form a usable TLS identity")?;
        Ok(tls)
    }

    /// A rustls server configuration that asks for (but does not require) a client
    /// certificate and offers the given ALPN protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PossessionVerifier { algorithms: provider.signature_verification_algorithms });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.identity.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// Accepts any well-formed client certificate whose private key the client proves it holds.
/// Registration, status, issuer and validity are checked at CONNECT (`identity::certs`).
#[derive(Debug)]
struct PossessionVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PossessionVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match x509_parser::parse_x509_certificate(end_entity) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(_) => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The process-wide provider, installed once so libraries that ask for the default find it.
pub fn install_provider() {
    let _ = CryptoProvider::install_default(rustls::crypto::ring::default_provider());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_a_ca_and_a_server_certificate_later_starts_reuse_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Tls::load_or_create(dir.path(), &TlsFiles::default()).expect("create");
        assert!(first.created);
        let second = Tls::load_or_create(dir.path(), &TlsFiles::default()).expect("load");
        assert!(!second.created);
        assert_eq!(first.issuer.ca_pem, second.issuer.ca_pem);
    }

    #[test]
    fn issued_certificates_chain_to_the_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = Tls::load_or_create(dir.path(), &TlsFiles::default()).expect("create");
        let issued = tls.issuer.issue_with_new_key().expect("issue");
        let ca_der = CertificateDer::from_pem_slice(tls.issuer.ca_pem.as_bytes()).expect("ca");
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("parse ca");
        let (_, leaf) = x509_parser::parse_x509_certificate(&issued.der).expect("parse leaf");
        leaf.verify_signature(Some(ca.public_key())).expect("signed by the CA");
        assert!(issued.key_pair.is_some());
    }

    #[test]
    fn a_csr_is_signed_with_its_own_key_and_subject() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = Tls::load_or_create(dir.path(), &TlsFiles::default()).expect("create");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, "sensor-7");
        let csr = params.serialize_request(&key).expect("csr").pem().expect("pem");
        let issued = tls.issuer.issue_for_csr(&csr).expect("issue");
        let (_, leaf) = x509_parser::parse_x509_certificate(&issued.der).expect("parse");
        let cn = leaf.subject().iter_common_name().next().and_then(|c| c.as_str().ok());
        assert_eq!(cn, Some("sensor-7"));
        assert!(tls.issuer.issue_for_csr("not a csr").is_err());
    }
}
