//! Certificate ownership tokens: what CreateKeysAndCertificate and CreateCertificateFromCsr
//! answer over MQTT and RegisterThing takes back. A token names the certificate, the
//! connection it was issued to and when it expires, signed with a key only this node has:
//! it cannot be forged, and only the connection that received it can use it (a
//! connection's requests are always served by the node it is connected to).

use base64::Engine as _;
use ring::hmac;

/// Why a token is refused (said in the `rejected` answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// Issues and checks ownership tokens with this node's key.
pub struct Tokens {
    key: hmac::Key,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl Tokens {
    /// A new random key (tokens do not outlive the node process).
    pub fn new() -> Tokens {
        Tokens::with_key(&rand::random::<[u8; 32]>())
    }

    /// Tokens signed with `key` (tests).
    pub fn with_key(key: &[u8]) -> Tokens {
        Tokens { key: hmac::Key::new(hmac::HMAC_SHA256, key) }
    }

    /// A token for `certificate_id`, usable by `connection` until `expires_s`.
    pub fn issue(&self, certificate_id: &str, connection: &str, expires_s: u64) -> String {
        let body = serde_json::json!([certificate_id, connection, expires_s]).to_string();
        let tag = hmac::sign(&self.key, body.as_bytes());
        format!("{}.{}", B64.encode(body), B64.encode(tag.as_ref()))
    }

    /// The certificate id of a token `connection` presents at `now_s`, or why it is refused.
    pub fn check(&self, token: &str, connection: &str, now_s: u64) -> Result<String, Refused> {
        let forged = || Refused("The certificate ownership token is not valid".into());
        if token.is_empty() {
            return Err(Refused("Certificate ownership token cannot be empty".into()));
        }
        let (body, tag) = token.split_once('.').ok_or_else(forged)?;
        let (body, tag) = (B64.decode(body).map_err(|_| forged())?, B64.decode(tag).map_err(|_| forged())?);
        hmac::verify(&self.key, &body, &tag).map_err(|_| forged())?;
        let (id, owner, expires): (String, String, u64) = serde_json::from_slice(&body).map_err(|_| forged())?;
        if owner != connection {
            return Err(Refused("The certificate ownership token was issued to another connection".into()));
        }
        if now_s > expires {
            return Err(Refused("The certificate ownership token has expired".into()));
        }
        Ok(id)
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_once_issued_for_its_connection_until_it_expires() {
        let t = Tokens::with_key(b"k");
        let token = t.issue("cert-1", "conn-a", 100);
        assert_eq!(t.check(&token, "conn-a", 100), Ok("cert-1".into()));
        assert!(t.check(&token, "conn-b", 100).unwrap_err().0.contains("another connection"));
        assert!(t.check(&token, "conn-a", 101).unwrap_err().0.contains("expired"));
        assert!(Tokens::with_key(b"other").check(&token, "conn-a", 1).is_err(), "another node's key");
        let (body, tag) = token.split_once('.').unwrap();
        let forged = format!("{}.{tag}", B64.encode(br#"["cert-2","conn-a",100]"#));
        assert!(t.check(&forged, "conn-a", 1).is_err());
        assert!(t.check(&format!("{body}."), "conn-a", 1).is_err());
        assert!(t.check("", "conn-a", 1).unwrap_err().0.contains("empty"));
        assert!(t.check("garbage", "conn-a", 1).is_err());
    }
}
