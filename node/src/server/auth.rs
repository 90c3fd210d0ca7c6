//! How each listener authenticates (the `[auth]` table): which methods it accepts, the rules
//! that keep anonymous access off the network, and the choice made for one CONNECT from what
//! the client presented.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::config::{JwtFile, NodeConfig};
use crate::identity::authorizers::AuthorizerRecord;
use crate::identity::authz::Principal;
use crate::identity::custom_auth;
use crate::identity::jwt::{Expectations, Jwks};
use crate::meta::Meta;

/// One way a listener can authenticate a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// No credentials; full access (loopback development listeners).
    Anonymous,
    /// A registered X.509 client certificate (TLS listeners only).
    Certificate,
    /// A custom authorizer, named in the username or the default one.
    Custom,
    /// A JWT in the MQTT password, checked against the configured JWKS.
    Jwt,
    /// A WebSocket upgrade presigned with SigV4 by one of the node's access keys (AWS's
    /// `websockets_with_default_aws_signing`; WebSocket listeners only).
    Sigv4,
}

impl Method {
    fn parse(text: &str) -> anyhow::Result<Method> {
        Ok(match text {
            "anonymous" => Method::Anonymous,
            "certificate" => Method::Certificate,
            "custom" => Method::Custom,
            "jwt" => Method::Jwt,
            "sigv4" => Method::Sigv4,
            other => bail!("unknown authentication method {other:?}: use anonymous, certificate, custom, jwt or sigv4"),
        })
    }
}

/// JWT settings with the key set loaded.
#[derive(Debug)]
pub struct JwtAuth {
    /// The keys.
    pub jwks: Jwks,
    /// `iss`, `aud`, leeway.
    pub expect: Expectations,
    /// The claim that must equal the client id, if any.
    pub client_id_claim: Option<String>,
    /// Policies every JWT client gets.
    pub policies: Vec<String>,
    /// The claim listing more policy names, if any.
    pub policies_claim: Option<String>,
}

impl JwtAuth {
    fn load(file: &JwtFile) -> anyhow::Result<JwtAuth> {
        let jwks = Jwks::load(&file.jwks_file).map_err(anyhow::Error::msg)?;
        Ok(JwtAuth {
            jwks,
            expect: Expectations {
                issuer: file.issuer.clone(),
                audience: file.audience.clone(),
                leeway_s: file.leeway_secs.unwrap_or(30),
            },
            client_id_claim: match file.client_id_claim.as_deref() {
                None => Some("sub".into()),
                Some("") => None,
                Some(c) => Some(c.into()),
            },
            policies: file.policies.clone(),
            policies_claim: file.policies_claim.clone(),
        })
    }
}

/// A listener's authentication.
#[derive(Debug, Clone)]
pub struct ListenerAuth {
    /// Accepted methods.
    pub methods: Vec<Method>,
    /// JWT settings, when `jwt` is among the methods.
    pub jwt: Option<Arc<JwtAuth>>,
}

impl ListenerAuth {
    /// Anonymous full access (tests and loopback development).
    pub fn anonymous() -> Arc<ListenerAuth> {
        Arc::new(ListenerAuth { methods: vec![Method::Anonymous], jwt: None })
    }

    /// Whether clients get in without credentials.
    pub fn is_anonymous(&self) -> bool {
        self.methods.contains(&Method::Anonymous)
    }
}

/// The authentication of every listener.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// Plain MQTT.
    pub mqtt: Arc<ListenerAuth>,
    /// Plain WebSocket.
    pub ws: Arc<ListenerAuth>,
    /// MQTT over TLS.
    pub mqtts: Arc<ListenerAuth>,
    /// Secure WebSocket.
    pub wss: Arc<ListenerAuth>,
    /// MQTT on the HTTPS port.
    pub https: Arc<ListenerAuth>,
}

/// Resolves `[auth]`, refusing configurations that would expose anonymous access or cannot
/// work (certificates on plain listeners, `jwt` without `[auth.jwt]`).
pub fn listeners(cfg: &NodeConfig) -> anyhow::Result<Listeners> {
    let jwt = match &cfg.auth.jwt {
        Some(file) => Some(Arc::new(JwtAuth::load(file).context("[auth.jwt]")?)),
        None => None,
    };
    let plain_default = || vec!["anonymous".to_string()];
    let tls_default = || vec!["certificate".to_string(), "custom".to_string()];
    let wss_default = || vec!["certificate".to_string(), "custom".to_string(), "sigv4".to_string()];
    let one = |key: &str, given: &Option<Vec<String>>, default: Vec<String>, addr: SocketAddr, tls: bool| {
        let names = given.clone().unwrap_or(default);
        let methods = names
            .iter()
            .map(|n| Method::parse(n))
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("[auth] {key}"))?;
        if methods.is_empty() {
            bail!("[auth] {key} lists no authentication method");
        }
        if methods.contains(&Method::Anonymous) && methods.len() > 1 {
            bail!("[auth] {key}: anonymous cannot be combined with other methods (clients would skip them)");
        }
        if methods.contains(&Method::Certificate) && !tls {
            bail!("[auth] {key}: certificate authentication needs a TLS listener (mqtts, wss or https)");
        }
        if methods.contains(&Method::Sigv4) && key != "ws" && key != "wss" {
            bail!("[auth] {key}: sigv4 authenticates presigned WebSocket upgrades: use it on ws or wss");
        }
        if methods.contains(&Method::Jwt) && jwt.is_none() {
            bail!("[auth] {key} uses jwt, but there is no [auth.jwt] table with a jwks_file");
        }
        if methods.contains(&Method::Anonymous) && !addr.ip().is_loopback() && !cfg.allow_anonymous {
            bail!(
                "the {key} listener {addr} is not a loopback address and accepts anonymous clients.\n\
                 Devices off this machine should connect with X.509 client certificates on --mqtts-addr \
                 (register them with CreateKeysAndCertificate or RegisterCertificate and attach a policy), \
                 or configure `{key} = [\"custom\"]` or `[\"jwt\"]` under [auth].\n\
                 To allow anonymous clients with full access anyway, put `allow_anonymous = true` under [auth] \
                 in the config file; or bind the listener to 127.0.0.1."
            );
        }
        Ok(Arc::new(ListenerAuth { methods, jwt: jwt.clone() }))
    };
    let a = &cfg.auth;
    Ok(Listeners {
        mqtt: one("mqtt", &a.mqtt, plain_default(), cfg.mqtt_addr, false)?,
        ws: one("ws", &a.ws, plain_default(), cfg.ws_addr, false)?,
        mqtts: one("mqtts", &a.mqtts, tls_default(), cfg.mqtts_addr, true)?,
        wss: one("wss", &a.wss, wss_default(), cfg.wss_addr, true)?,
        https: one("https", &a.https, tls_default(), cfg.https_addr, true)?,
    })
}

/// The method chosen for one CONNECT.
#[derive(Debug)]
pub enum Choice {
    /// Full access.
    Anonymous,
    /// Check the presented certificate.
    Certificate,
    /// Ask this authorizer.
    Custom(AuthorizerRecord),
    /// Verify the password as a JWT.
    Jwt(Arc<JwtAuth>),
    /// The access key that presigned the WebSocket upgrade.
    Presigned,
    /// Nothing the listener accepts was presented.
    Refuse(String),
}

/// What a client presented, for [`choose`].
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// A TLS client certificate.
    pub certificate: bool,
    /// A SigV4-presigned WebSocket upgrade.
    pub presigned: bool,
    /// The CONNECT username.
    pub username: Option<&'a str>,
    /// A CONNECT password.
    pub password: bool,
}

/// Chooses how to authenticate a client from what it presented: a client certificate first,
/// then a presigned WebSocket upgrade, then a custom authorizer (named by the username's
/// `x-amz-customauthorizer-name`, else the default one), then a JWT password.
pub fn choose(auth: &ListenerAuth, presented: &Presented<'_>, meta: &Meta) -> Choice {
    let (username, has_password) = (presented.username, presented.password);
    if auth.is_anonymous() {
        return Choice::Anonymous;
    }
    if presented.certificate && auth.methods.contains(&Method::Certificate) {
        return Choice::Certificate;
    }
    if presented.presigned && auth.methods.contains(&Method::Sigv4) {
        return Choice::Presigned;
    }
    if auth.methods.contains(&Method::Custom) {
        let named =
            username.map(custom_auth::username_query).and_then(|q| q.get(custom_auth::AUTHORIZER_NAME_KEY).cloned());
        let record = match &named {
            Some(name) => meta.identity.authorizer(name),
            None => meta.identity.default_authorizer(),
        };
        match (named, record) {
            (_, Some(r)) if r.status == "ACTIVE" => return Choice::Custom(r),
            (Some(name), Some(_)) => return Choice::Refuse(format!("the authorizer {name} is INACTIVE")),
            (Some(name), None) => return Choice::Refuse(format!("no authorizer named {name}")),
            (None, _) => {}
        }
    }
    if has_password {
        if let (true, Some(jwt)) = (auth.methods.contains(&Method::Jwt), &auth.jwt) {
            return Choice::Jwt(jwt.clone());
        }
    }
    let wanted: Vec<&str> = auth
        .methods
        .iter()
        .map(|m| match m {
            Method::Certificate => "a registered client certificate",
            Method::Custom => "credentials for a custom authorizer",
            Method::Jwt => "a JWT as the password",
            Method::Sigv4 => "a WebSocket URL presigned with SigV4",
            Method::Anonymous => "nothing",
        })
        .collect();
    Choice::Refuse(format!("no credentials this listener accepts were presented (it wants {})", wanted.join(" or ")))
}

/// The principal of a client certificate that may connect, or why it may not.
pub fn certificate_principal(meta: &Meta, der: &[u8]) -> Result<Principal, String> {
    let now = (crate::broker::message::now_ms() / 1000) as i64;
    let record = meta.identity.check_presented(der, now)?;
    Ok(Principal::Certificate {
        id: record.registration.certificate_id,
        arn: record.registration.certificate_arn,
        fields: crate::identity::certs::policy_variables(der),
    })
}

/// The principal of a client whose password is a valid JWT and how long the token stays
/// valid (the connection closes then), or why it is refused.
pub fn jwt_principal(
    jwt: &JwtAuth,
    meta: &Meta,
    client_id: &str,
    password: &[u8],
) -> Result<(Principal, Duration), String> {
    let token = std::str::from_utf8(password).map_err(|_| "the password is not a JWT (not UTF-8)".to_string())?;
    let now = crate::broker::message::now_ms() / 1000;
    let claims = crate::identity::jwt::verify(token.trim(), &jwt.jwks, now, &jwt.expect)
        .map_err(|e| format!("the JWT is not valid: {e}"))?;
    if let Some(claim) = &jwt.client_id_claim {
        let value = claims.get(claim).and_then(|v| v.as_str());
        if value != Some(client_id) {
            return Err(format!("the JWT's {claim:?} claim does not equal the client id"));
        }
    }
    let mut names = jwt.policies.clone();
    if let Some(claim) = &jwt.policies_claim {
        match claims.get(claim) {
            Some(serde_json::Value::String(s)) => names.push(s.clone()),
            Some(serde_json::Value::Array(items)) => {
                names.extend(items.iter().filter_map(|i| i.as_str().map(str::to_string)))
            }
            _ => {}
        }
    }
    let documents = meta.identity.documents_named(&names).map_err(|e| e.message)?;
    let principal_id = claims.get("sub").and_then(|v| v.as_str()).unwrap_or(client_id).to_string();
    let valid_for = crate::identity::jwt::valid_for(&claims, now, jwt.expect.leeway_s);
    Ok((Principal::Documents { principal_id, documents: documents.into_iter().map(|(_, d)| d).collect() }, valid_for))
}
