//! Custom authentication: the authorizer chosen by a CONNECT's username, the token-signature
//! check, the event sent to the authorizer's HTTP endpoint (AWS's Lambda event shape) and
//! the answer read back (AWS's response shape: `isAuthenticated`, `principalId`,
//! `policyDocuments`, `disconnectAfterInSeconds`, `refreshAfterInSeconds`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ferrite_aws::percent;
use ferrite_aws::policy::{self, PolicyDocument};
use serde_json::{json, Value};

use super::authorizers::AuthorizerRecord;

/// The username query key that names the authorizer.
pub const AUTHORIZER_NAME_KEY: &str = "x-amz-customauthorizer-name";
/// The username query key that carries the token signature.
pub const SIGNATURE_KEY: &str = "x-amz-customauthorizer-signature";
/// AWS's limit on how long an authorizer may take.
pub const AUTHORIZER_TIMEOUT: Duration = Duration::from_secs(5);

/// The query parameters of an MQTT username (`name?key=value&...`), percent-decoded.
pub fn username_query(username: &str) -> BTreeMap<String, String> {
    let Some((_, query)) = username.split_once('?') else { return BTreeMap::new() };
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent::decode_form(k)?, percent::decode_form(v)?))
        })
        .collect()
}

/// What a connecting client presented to a custom authorizer.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// The MQTT username, as sent.
    pub username: Option<String>,
    /// The MQTT password.
    pub password: Option<Vec<u8>>,
    /// The MQTT client id.
    pub client_id: String,
    /// The client's address.
    pub source_ip: Option<IpAddr>,
    /// The TLS server name (SNI), on TLS listeners.
    pub server_name: Option<String>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Names the connection in the event (`connectionMetadata.id`).
    pub connection_id: String,
}

/// The authorizer's verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The authorizer's `principalId`.
    pub principal_id: String,
    /// The policies the connection gets.
    pub documents: Vec<Arc<PolicyDocument>>,
    /// Their texts, as the authorizer sent them.
    pub document_texts: Vec<String>,
    /// Close the connection after this long.
    pub disconnect_after: Option<Duration>,
    /// Ask the authorizer again after this long.
    pub refresh_after: Option<Duration>,
}

/// Checks the token signature when the authorizer requires one; returns the token.
pub fn token_of(record: &AuthorizerRecord, query: &BTreeMap<String, String>) -> Result<Option<String>, String> {
    let token = record.token_key_name.as_ref().and_then(|k| query.get(k)).cloned();
    if record.signing_disabled {
        return Ok(token);
    }
    let token = token.ok_or_else(|| {
        format!(
            "authorizer {} requires a signed token in the username query key {:?}",
            record.authorizer_name,
            record.token_key_name.as_deref().unwrap_or("")
        )
    })?;
    let signature = query.get(SIGNATURE_KEY).ok_or_else(|| format!("no {SIGNATURE_KEY} in the username"))?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| "the token signature is not base64".to_string())?;
    let verified =
        record.token_signing_public_keys.values().any(|pem| verify_rsa_sha256(pem, token.as_bytes(), &signature));
    if verified {
        Ok(Some(token))
    } else {
        Err("the token signature does not verify with any of the authorizer's signing keys".into())
    }
}

/// Verifies an RSA-SHA256 (PKCS#1 v1.5) signature with a PEM public key (SubjectPublicKeyInfo).
pub fn verify_rsa_sha256(public_key_pem: &str, message: &[u8], signature: &[u8]) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(public_key_pem.as_bytes()) else { return false };
    let Ok((_, spki)) =
        <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(&pem.contents)
    else {
        return false;
    };
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        spki.subject_public_key.data.as_ref(),
    );
    key.verify(message, signature).is_ok()
}

/// AWS's authorizer event for an MQTT CONNECT.
pub fn event(presented: &Presented, token: Option<&str>, signature_verified: bool) -> Value {
    let mut mqtt = json!({ "clientId": presented.client_id });
    if let Some(u) = &presented.username {
        mqtt["username"] = json!(u);
    }
    if let Some(p) = &presented.password {
        mqtt["password"] = json!(base64::engine::general_purpose::STANDARD.encode(p));
    }
    let mut protocols = vec!["mqtt"];
    let mut data = json!({ "mqtt": mqtt });
    if presented.tls {
        protocols.insert(0, "tls");
        data["tls"] = json!({ "serverName": presented.server_name.clone().unwrap_or_default() });
    }
    let mut event = json!({
        "signatureVerified": signature_verified,
        "protocols": protocols,
        "protocolData": data,
        "connectionMetadata": { "id": presented.connection_id },
    });
    if let Some(ip) = presented.source_ip {
        event["connectionMetadata"]["sourceIp"] = json!(ip.to_string());
    }
    if let Some(t) = token {
        event["token"] = json!(t);
    }
    event
}

/// AWS's bounds on the authorizer's timers.
const DISCONNECT_AFTER_S: std::ops::RangeInclusive<u64> = 300..=86_400;
const REFRESH_AFTER_S: std::ops::RangeInclusive<u64> = 300..=86_400;

/// Reads the authorizer's answer: `Ok(None)` when it says the client is not authenticated.
pub fn verdict(body: &[u8]) -> Result<Option<Verdict>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the authorizer's answer is not JSON: {e}"))?;
    let authenticated = v
        .get("isAuthenticated")
        .and_then(Value::as_bool)
        .ok_or("the authorizer's answer has no boolean isAuthenticated")?;
    if !authenticated {
        return Ok(None);
    }
    let principal_id = v.get("principalId").and_then(Value::as_str).unwrap_or_default().to_string();
    if principal_id.is_empty() || principal_id.len() > 128 || !principal_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("principalId must be 1 to 128 letters and digits".into());
    }
    let docs = v.get("policyDocuments").and_then(Value::as_array).ok_or("the answer has no policyDocuments list")?;
    if docs.len() > 10 {
        return Err("at most 10 policyDocuments are allowed".into());
    }
    let document_texts: Vec<String> = docs
        .iter()
        .map(|d| match d {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    let documents = document_texts
        .iter()
        .enumerate()
        .map(|(i, text)| policy::parse(text).map(Arc::new).map_err(|e| format!("policyDocuments[{i}] is invalid: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let timer = |key: &str, range: std::ops::RangeInclusive<u64>| -> Result<Option<Duration>, String> {
        match v.get(key).and_then(Value::as_u64) {
            None => Ok(None),
            Some(s) if range.contains(&s) => Ok(Some(Duration::from_secs(s))),
            Some(s) => Err(format!("{key} {s} is outside {}..={}", range.start(), range.end())),
        }
    };
    Ok(Some(Verdict {
        principal_id,
        documents,
        document_texts,
        disconnect_after: timer("disconnectAfterInSeconds", DISCONNECT_AFTER_S)?,
        refresh_after: timer("refreshAfterInSeconds", REFRESH_AFTER_S)?,
    }))
}

/// Calls the authorizer's endpoint with `event` and reads its verdict.
pub async fn invoke(record: &AuthorizerRecord, event: &Value) -> Result<Option<Verdict>, String> {
    let target = ferrite_http_client::parse_url(&record.authorizer_function_arn)?;
    let body = serde_json::to_vec(event).unwrap_or_default();
    let (status, answer) =
        ferrite_http_client::post_for_body(&target, "application/json", &body, AUTHORIZER_TIMEOUT).await?;
    if !(200..300).contains(&status) {
        return Err(format!("the authorizer answered HTTP {status}"));
    }
    verdict(&answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_queries_are_split_and_decoded() {
        let q = username_query("dev?x-amz-customauthorizer-name=my%20auth&token=a+b&flag");
        assert_eq!(q.get(AUTHORIZER_NAME_KEY).map(String::as_str), Some("my auth"));
        assert_eq!(q.get("token").map(String::as_str), Some("a b"));
        assert_eq!(q.get("flag").map(String::as_str), Some(""));
        assert!(username_query("plain").is_empty());
        assert!(username_query("x?bad=%zz").is_empty());
    }

    #[test]
    fn verdicts_follow_aws_response_shape() {
        let ok = br#"{"isAuthenticated":true,"principalId":"abc123","disconnectAfterInSeconds":3600,
            "refreshAfterInSeconds":300,"policyDocuments":[
            "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"iot:Connect\",\"Resource\":\"*\"}]}",
            {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"*"}]}]}"#;
        let v = verdict(ok).unwrap().unwrap();
        assert_eq!(v.principal_id, "abc123");
        assert_eq!(v.documents.len(), 2);
        assert_eq!(v.disconnect_after, Some(Duration::from_secs(3600)));
        assert!(verdict(br#"{"isAuthenticated":false}"#).unwrap().is_none());
        assert!(verdict(b"nope").is_err());
        assert!(verdict(br#"{"isAuthenticated":true,"principalId":"a-b","policyDocuments":[]}"#).is_err());
        assert!(verdict(br#"{"isAuthenticated":true,"principalId":"ab","policyDocuments":["{"]}"#).is_err());
        assert!(verdict(
            br#"{"isAuthenticated":true,"principalId":"ab","policyDocuments":[],"refreshAfterInSeconds":5}"#
        )
        .is_err());
    }

    #[test]
    fn events_carry_mqtt_credentials_and_source() {
        let p = Presented {
            username: Some("u?token=t".into()),
            password: Some(b"pw".to_vec()),
            client_id: "c1".into(),
            source_ip: "127.0.0.1".parse().ok(),
            server_name: None,
            tls: false,
            connection_id: "id".into(),
        };
        let e = event(&p, Some("t"), false);
        assert_eq!(e["protocolData"]["mqtt"]["password"], "cHc=");
        assert_eq!(e["protocolData"]["mqtt"]["clientId"], "c1");
        assert_eq!(e["connectionMetadata"]["sourceIp"], "127.0.0.1");
        assert_eq!(e["token"], "t");
        assert_eq!(e["protocols"], json!(["mqtt"]));
    }
}
