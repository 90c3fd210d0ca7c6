//! JWT authentication against a JWKS file.
//!
//! An MQTT client may pass a JSON Web Token (a compact JWS, `header.payload.signature`) as
//! its CONNECT password. The node checks it against the public keys of a JWKS document
//! (RFC 7517) named in configuration: the signature must verify with one of those keys, the
//! time claims (`exp`, `nbf`) must hold, and `iss`/`aud` must match what is configured.
//!
//! Only public-key algorithms are accepted (RS*, PS*, ES256, ES384, EdDSA over Ed25519):
//! `alg: none` would let anyone mint tokens, and HMAC would need a shared secret in the
//! key file. Nothing named by the token (`jku`, `x5u`, ...) is ever fetched; only the
//! configured key set is trusted. Every input is treated as hostile: malformed tokens are
//! refused with a short human reason and never cause a panic.
//!
//! The signature check itself is the `jsonwebtoken` crate's (over ring). What stays here is
//! what it does not do the way the node needs: reading the JWKS (its parser fails the whole
//! set on one key of an unknown kind, where a provider's set may mix kinds in), choosing keys
//! by `kid` and algorithm, the header policy (`none`, HMAC; it ignores `crit`), padded
//! base64url (it reads unpadded only), and the claim checks (its `decode` reads the clock
//! itself, accepts a token at exactly `exp`, wants integer times, and reports error kinds
//! without the values our messages quote). docs/decisions.md has the longer account.

use std::path::Path;

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Tokens longer than this are refused before any decoding.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// base64url that accepts canonical padding or none (JWS uses none; some encoders pad).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The RSA modulus sizes accepted, in bits (what ring, under `jsonwebtoken`, verifies).
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// A signature algorithm this module verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Alg {
    /// The algorithm named by a JOSE `alg` value, or why it is refused.
    fn parse(name: &str) -> Result<Alg, String> {
        match name {
            "RS256" => Ok(Alg::Rs256),
            "RS384" => Ok(Alg::Rs384),
            "RS512" => Ok(Alg::Rs512),
            "PS256" => Ok(Alg::Ps256),
            "PS384" => Ok(Alg::Ps384),
            "PS512" => Ok(Alg::Ps512),
            "ES256" => Ok(Alg::Es256),
            "ES384" => Ok(Alg::Es384),
            "EdDSA" | "Ed25519" => Ok(Alg::EdDsa),
            _ if name.eq_ignore_ascii_case("none") => Err("alg none is not accepted".to_string()),
            _ if name.starts_with("HS") => {
                Err("HMAC algorithms are not supported: use a public-key algorithm".to_string())
            }
            _ => Err(format!("alg {name:?} is not supported")),
        }
    }

    /// The JOSE name, for messages.
    fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }

    fn family(self) -> Family {
        match self {
            Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512 => Family::Rsa,
            Alg::Es256 => Family::P256,
            Alg::Es384 => Family::P384,
            Alg::EdDsa => Family::Ed25519,
        }
    }

    /// The same algorithm in `jsonwebtoken`'s terms.
    fn jose(self) -> Algorithm {
        match self {
            Alg::Rs256 => Algorithm::RS256,
            Alg::Rs384 => Algorithm::RS384,
            Alg::Rs512 => Algorithm::RS512,
            Alg::Ps256 => Algorithm::PS256,
            Alg::Ps384 => Algorithm::PS384,
            Alg::Ps512 => Algorithm::PS512,
            Alg::Es256 => Algorithm::ES256,
            Alg::Es384 => Algorithm::ES384,
            Alg::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// One usable key of a JWKS.
#[derive(Clone)]
struct Jwk {
    kid: Option<String>,
    /// The algorithm the JWK restricts itself to, when it states one.
    alg: Option<Alg>,
    /// The kind of key, which `DecodingKey` does not tell (its own is private, and it does not
    /// tell P-256 from P-384).
    family: Family,
    key: DecodingKey,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk").field("kid", &self.kid).field("alg", &self.alg).field("family", &self.family).finish()
    }
}

impl Jwk {
    /// Whether this key may verify a token signed with `alg`.
    fn suits(&self, alg: Alg) -> bool {
        self.family == alg.family() && self.alg.is_none_or(|a| a == alg)
    }

    /// Whether `signature` (base64url without padding) over `message` verifies with this key.
    /// `jsonwebtoken` checks neither the key's kind nor its curve against `alg`, so a caller
    /// passes only keys that [`Jwk::suits`] the algorithm.
    fn verifies(&self, alg: Alg, message: &[u8], signature: &str) -> bool {
        jsonwebtoken::crypto::verify(signature, message, &self.key, alg.jose()).unwrap_or(false)
    }
}

/// A JWK as written, before deciding whether it is usable.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl RawJwk {
    /// The usable key, `Ok(None)` for a key of a kind this module skips, or why a key of a
    /// supported kind is malformed.
    fn into_jwk(self) -> Result<Option<Jwk>, String> {
        if !self.is_for_verifying() {
            return Ok(None);
        }
        let alg = match self.alg.as_deref().map(Alg::parse) {
            None => None,
            Some(Ok(alg)) => Some(alg),
            Some(Err(_)) => return Ok(None),
        };
        let Some((family, key)) = self.material()? else { return Ok(None) };
        if alg.is_some_and(|a| a.family() != family) {
            return Err(format!("alg {} does not fit the key type", alg.map_or("", Alg::name)));
        }
        Ok(Some(Jwk { kid: self.kid, alg, family, key }))
    }

    /// `use` and `key_ops`, when present, must allow verifying signatures.
    fn is_for_verifying(&self) -> bool {
        self.use_.as_deref().is_none_or(|u| u == "sig")
            && self.key_ops.as_ref().is_none_or(|ops| ops.iter().any(|op| op == "verify"))
    }

    /// The key, `Ok(None)` for an unsupported kty or curve. The members are decoded and
    /// their sizes checked here, so a bad key fails when the set loads, not at each CONNECT.
    fn material(&self) -> Result<Option<(Family, DecodingKey)>, String> {
        match (self.kty.as_deref(), self.crv.as_deref()) {
            (Some("RSA"), _) => self.rsa().map(|key| Some((Family::Rsa, key))),
            (Some("EC"), Some("P-256")) => self.ec(32).map(|key| Some((Family::P256, key))),
            (Some("EC"), Some("P-384")) => self.ec(48).map(|key| Some((Family::P384, key))),
            (Some("OKP"), Some("Ed25519")) => {
                let x = field(&self.x, "x")?;
                if x.len() != 32 {
                    return Err(format!("x is {} bytes; an Ed25519 key is 32", x.len()));
                }
                let key = DecodingKey::from_ed_components(&b64_encode(&x)).map_err(|e| format!("x: {e}"))?;
                Ok(Some((Family::Ed25519, key)))
            }
            (None, _) => Err("kty is missing".to_string()),
            _ => Ok(None),
        }
    }

    fn rsa(&self) -> Result<DecodingKey, String> {
        let n = strip_leading_zeros(field(&self.n, "n")?);
        let e = strip_leading_zeros(field(&self.e, "e")?);
        let bits = bit_length(&n);
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err(format!("RSA modulus is {bits} bits; {RSA_MIN_BITS} to {RSA_MAX_BITS} are accepted"));
        }
        if e.is_empty() {
            return Err("RSA exponent is zero".to_string());
        }
        Ok(DecodingKey::from_rsa_raw_components(&n, &e))
    }

    /// An EC public key whose coordinates are `len` bytes each.
    fn ec(&self, len: usize) -> Result<DecodingKey, String> {
        let x = field(&self.x, "x")?;
        let y = field(&self.y, "y")?;
        if x.len() != len || y.len() != len {
            return Err(format!("EC coordinates must be {len} bytes each"));
        }
        // Re-encoded: `jsonwebtoken` reads unpadded base64url only, the JWK may be padded.
        DecodingKey::from_ec_components(&b64_encode(&x), &b64_encode(&y)).map_err(|e| format!("x, y: {e}"))
    }
}

/// A required base64url member of a JWK, decoded.
fn field(value: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let text = value.as_deref().ok_or_else(|| format!("{name} is missing"))?;
    b64_decode(text).map_err(|_| format!("{name} is not base64url"))
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// Bits in a big-endian number without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(first) => (bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

fn b64_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    B64URL.decode(text)
}

/// Unpadded base64url, the only form `jsonwebtoken` reads.
fn b64_encode(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

/// A parsed JWKS: the public keys tokens may be signed with. Loaded once from the configured
/// file so that each CONNECT only verifies, never parses keys.
#[derive(Debug, Clone)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys":[...]}`). Keys of an unsupported kty, curve or alg, and
    /// keys meant for encryption (`use: "enc"`), are skipped, since a provider's set may mix
    /// them in; a malformed key of a supported kind, or a set with no usable key, is an error.
    pub fn from_json(text: &str) -> Result<Jwks, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let raw = doc.get("keys").and_then(Value::as_array).ok_or("JWKS has no \"keys\" array")?;
        let mut keys = Vec::new();
        for (i, value) in raw.iter().enumerate() {
            let jwk: RawJwk = serde_json::from_value(value.clone()).map_err(|e| format!("JWKS key {i}: {e}"))?;
            if let Some(jwk) = jwk.into_jwk().map_err(|e| format!("JWKS key {i}: {e}"))? {
                keys.push(jwk);
            }
        }
        if keys.is_empty() {
            return Err("JWKS has no usable signature-verification key".to_string());
        }
        Ok(Jwks { keys })
    }

    /// Reads and parses a JWKS file; errors name the path, for the operator fixing config.
    pub fn load(path: &Path) -> Result<Jwks, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading JWKS {}: {e}", path.display()))?;
        Jwks::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// How many usable keys the set holds (for start-up logging).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no usable key (never true for a parsed set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys that may verify a token with this header, or why there are none.
    fn candidates(&self, alg: Alg, kid: Option<&str>) -> Result<Vec<&Jwk>, String> {
        match kid {
            Some(kid) => {
                let named: Vec<&Jwk> = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect();
                if named.is_empty() {
                    return Err(format!("no key with kid {kid:?} in the JWKS"));
                }
                let usable: Vec<&Jwk> = named.into_iter().filter(|k| k.suits(alg)).collect();
                if usable.is_empty() {
                    return Err(format!("key {kid:?} cannot verify {}", alg.name()));
                }
                Ok(usable)
            }
            None => {
                let usable: Vec<&Jwk> = self.keys.iter().filter(|k| k.suits(alg)).collect();
                if usable.is_empty() {
                    return Err(format!("no key in the JWKS can verify {}", alg.name()));
                }
                Ok(usable)
            }
        }
    }
}

/// What a valid token must also satisfy beyond its signature, from configuration.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// When set, the token's `iss` must equal it.
    pub issuer: Option<String>,
    /// When set, the token's `aud` (a string or an array of strings) must contain it.
    pub audience: Option<String>,
    /// Seconds of clock skew tolerated when checking `exp` and `nbf`.
    pub leeway_s: u64,
}

/// The verified claims of a token, for mapping to a principal and policy variables.
pub type Claims = Map<String, Value>;

/// The three decoded parts of a compact JWS.
struct Parts<'a> {
    /// `header.payload` as sent: the bytes the signature covers.
    signed: &'a str,
    header: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn split(token: &str) -> Result<Parts<'_>, String> {
    if token.is_empty() {
        return Err("token is empty".to_string());
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(format!("token is longer than {MAX_TOKEN_LEN} bytes"));
    }
    let pieces: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = pieces.as_slice() else {
        return Err(format!("token has {} parts; a JWS has 3 (header.payload.signature)", pieces.len()));
    };
    let signed = token.get(..header.len() + 1 + payload.len()).ok_or("token is malformed")?;
    Ok(Parts {
        signed,
        header: decode_part(header, "header")?,
        payload: decode_part(payload, "payload")?,
        signature: decode_part(signature, "signature")?,
    })
}

fn decode_part(text: &str, name: &str) -> Result<Vec<u8>, String> {
    if text.is_empty() {
        return Err(format!("token {name} is empty"));
    }
    b64_decode(text).map_err(|_| format!("token {name} is not base64url"))
}

/// The header fields that matter here: the algorithm and the key id.
fn parse_header(bytes: &[u8]) -> Result<(Alg, Option<String>), String> {
    let header: Map<String, Value> =
        serde_json::from_slice(bytes).map_err(|_| "token header is not a JSON object".to_string())?;
    if header.contains_key("crit") {
        return Err("critical header parameters are not supported".to_string());
    }
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Alg::parse(name)?,
        Some(_) => return Err("token header alg is not a string".to_string()),
        None => return Err("token header has no alg".to_string()),
    };
    let kid = match header.get("kid") {
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("token header kid is not a string".to_string()),
        None => None,
    };
    Ok((alg, kid))
}

/// How long a verified token's claims stay valid after `now_s`: until `exp` plus the leeway.
pub fn valid_for(claims: &Claims, now_s: u64, leeway_s: u64) -> std::time::Duration {
    let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0);
    std::time::Duration::from_secs_f64((exp + leeway_s as f64 - now_s as f64).max(0.0))
}

/// Verifies a compact JWS (`header.payload.signature`) against `jwks` and checks its claims
/// at `now_s` (Unix seconds) against `expect`; returns the claims when the token is valid,
/// or a short human reason it is not.
pub fn verify(token: &str, jwks: &Jwks, now_s: u64, expect: &Expectations) -> Result<Claims, String> {
    let parts = split(token)?;
    let (alg, kid) = parse_header(&parts.header)?;
    let keys = jwks.candidates(alg, kid.as_deref())?;
    // Decoded and re-encoded so that a padded signature verifies too.
    let signature = b64_encode(&parts.signature);
    if !keys.iter().any(|k| k.verifies(alg, parts.signed.as_bytes(), &signature)) {
        return Err("signature does not verify".to_string());
    }
    let claims: Claims =
        serde_json::from_slice(&parts.payload).map_err(|_| "token payload is not a JSON object".to_string())?;
    check_times(&claims, now_s, expect.leeway_s)?;
    check_issuer(&claims, expect.issuer.as_deref())?;
    check_audience(&claims, expect.audience.as_deref())?;
    Ok(claims)
}

/// A NumericDate claim, when present.
fn numeric_date(claims: &Claims, name: &str) -> Result<Option<(f64, String)>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(|v| Some((v, n.to_string()))).ok_or(format!("{name} is not a number")),
        Some(_) => Err(format!("{name} is not a number")),
    }
}

/// `exp` is required and must be after `now - leeway` (a token without one would be valid
/// forever); `nbf` must be at or before `now + leeway`.
fn check_times(claims: &Claims, now_s: u64, leeway_s: u64) -> Result<(), String> {
    let now = now_s as f64;
    let leeway = leeway_s as f64;
    let Some((exp, text)) = numeric_date(claims, "exp")? else {
        return Err("token has no exp claim; one is required".to_string());
    };
    if exp <= now - leeway {
        return Err(format!("token expired at {text}"));
    }
    if let Some((nbf, text)) = numeric_date(claims, "nbf")? {
        if nbf > now + leeway {
            return Err(format!("token not valid before {text}"));
        }
    }
    Ok(())
}

fn check_issuer(claims: &Claims, expected: Option<&str>) -> Result<(), String> {
    let Some(expected) = expected else { return Ok(()) };
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == expected => Ok(()),
        Some(Value::String(iss)) => Err(format!("issuer {iss:?} is not the expected {expected:?}")),
        Some(_) => Err("iss is not a string".to_string()),
        None => Err(format!("token has no iss (expected {expected:?})")),
    }
}

fn check_audience(claims: &Claims, expected: Option<&str>) -> Result<(), String> {
    let Some(expected) = expected else { return Ok(()) };
    let found = match claims.get("aud") {
        Some(Value::String(aud)) => aud == expected,
        Some(Value::Array(auds)) => {
            if !auds.iter().all(Value::is_string) {
                return Err("aud is not a string or an array of strings".to_string());
            }
            auds.iter().any(|a| a.as_str() == Some(expected))
        }
        Some(_) => return Err("aud is not a string or an array of strings".to_string()),
        None => return Err(format!("token has no aud (expected {expected:?})")),
    };
    if found {
        Ok(())
    } else {
        Err(format!("audience does not include {expected:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use ring::rand::SystemRandom;
    use ring::signature::{
        self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaEncoding, RsaKeyPair, RsaPublicKeyComponents,
    };
    use serde_json::json;

    /// A 2048-bit RSA key (PKCS#8 DER, base64) made for these tests only: ring cannot generate RSA keys.
    const RSA_PKCS8_B64: &str = concat!(
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCU8u7OR87ipTHMA4kFDwAvGFZR2DGylYNOVt63sG2qEoBB",
        "3Qkf+3PzLNIXXA2Pbhl8EKP2t821ujC+QbfCJgU76Wu3TRpfDbMMieP3WFMq2Vvl7xjseqmVQswT06Gk++Larjii04zz30Vx",
        "t2MIndDL9SioqO+kxku9p0AIEfq1Io/DTFlhdZq9+k/+wugKQg8lABjqS499h+dWOfPSMudAWCzmePBRUwC6dWk9I3SL2bAP",
        "eizDQpTe433VYOe6VeXNoH+cMXiwTaTL+POjzakpCtFukYtSLg0ar0bkmkHYzHk1Lt3+v5r4Yj03MvqQYKo74Xm+OUNawt4Q",
        "e8VjcsFrAgMBAAECggEAEl5LGOE+IDEjDPe6pAcPjL9BleJFbrKFeNm5qYl2XKzfaD/r6ifGSszSM9NEUNXRCr26mqhcE/cc",
        "H7pXAPhTWOoWQIqfn+0+kWNH267mwrf/X0G3HyKZWzDbne5RVtlBRpqJnXrdPQ3hsH5fFibwItbe5r2+n+FcYc0IVnZxJnkm",
        "Y+pglZeb4JhnASgNKvKmSdxnWGbl05NeaCiU0VVnWDvYRNfQnlSyTNrbED6o2GWu0ekGbsbXN5DyhKH7mppx8ZqlddStieqx",
        "OHu9NePKrm36PZbmzWV7XgU8RGXi2+o020QryNsGcGg8WuzkWMiVpcrwH5U4Vy0SNPsFiLIzsQKBgQDP2E2MknCzHTfeIIzg",
        "1YMLTWbCJbzFKzFmO0Aj4WB7WqZxY+DDLr0RPxR7YXlXF+O3bAM4Y2q3sPw459zq8/+Qv0dni9QaxUVBz7oD2pzMZqB/tmvN",
        "hsUIryLOmlSTTXE2tNMQ5w8zMQSKTrgVpN+woCoJAPW+ULsWeCEM4n/KtQKBgQC3dWRmDgwEUcCezC+elRu4oPgCjJyHuZ/9",
        "25gIAjyDKI4M1KGBg3h1GknveGcebuBESsdV8NACOf+HpjrvxPEk2DpV0NHTSbwTkdmFnziSsgzK3Af0REY2rEYkPERPxzBp",
        "CQlpeQiMadbNGTh2YiFNSFQb9aqoL63nleh7si5PnwKBgAxUmMUuKuF1aksTQ0hTYmLZRK9f7cMEvPmDqlp2lHK8/gLcGgl6",
        "TF0pkN2A+uHf2PKYxdgijcI4Db6SgtitgQvlTScndH3iFinBWRfBcGvv6rWo7NxUknvhZ/85yKq0fXLxZ1QpYQ14avyJjwI5",
        "tcuUtOmz1OBlibPbjJpnFY3BAoGAPf8SzZYjo3YJFODFmt6ivpLPHPVtlEQ7d+s0hkhTMLOMxXM5nO3T0CbxI1bZ6iPn78wh",
        "br5xXL9CxhF7yzkPkLbth8CIl9FMGITqMEitMo2u2wLeQUKtQ56WGXqwTxFuH6CpKJZ5OBIwP6EtPnxM6rPtkIFFiY6LQz6a",
        "kOqW0dsCgYEAx7mVY9nJvgBzPZYj1RNRxy5+roaUArtwjaR8jectvtx0qNlBcogTTS/EDrvICntzLeD7HU5MZ3iDtfE/AtWN",
        "N2XQIiHSAsvRKXnD0gu4QRO6+4owFv433QipJC+ThNxvrKVhM52ra5Lmlnec7bQd1eRg84DyaUJBeicddpxlpCk=",
    );

    const NOW: u64 = 1_700_000_000;

    /// Test signing keys, one of each kind, and the JWKS of their public halves.
    struct Keys {
        rsa: RsaKeyPair,
        p256: EcdsaKeyPair,
        p384: EcdsaKeyPair,
        ed: Ed25519KeyPair,
        rng: SystemRandom,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    impl Keys {
        fn new() -> Keys {
            let rng = SystemRandom::new();
            let der = STANDARD.decode(RSA_PKCS8_B64).expect("RSA test key is base64");
            let rsa = RsaKeyPair::from_pkcs8(&der).expect("RSA test key parses");
            let p256 = ec_key(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng);
            let p384 = ec_key(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng);
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).expect("ed25519 keygen");
            let ed = Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("ed25519 parse");
            Keys { rsa, p256, p384, ed, rng }
        }

        fn rsa_jwk(&self) -> Value {
            let c: RsaPublicKeyComponents<Vec<u8>> = self.rsa.public().into();
            json!({"kty": "RSA", "kid": "rsa", "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
        }

        fn ec_jwk(kid: &str, crv: &str, key: &EcdsaKeyPair) -> Value {
            let point = key.public_key().as_ref();
            let len = (point.len() - 1) / 2;
            json!({"kty": "EC", "kid": kid, "crv": crv, "x": b64(&point[1..=len]), "y": b64(&point[1 + len..])})
        }

        fn jwks_json(&self) -> Value {
            json!({"keys": [
                self.rsa_jwk(),
                Keys::ec_jwk("p256", "P-256", &self.p256),
                Keys::ec_jwk("p384", "P-384", &self.p384),
                {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(self.ed.public_key().as_ref())},
            ]})
        }

        fn jwks(&self) -> Jwks {
            Jwks::from_json(&self.jwks_json().to_string()).expect("test JWKS parses")
        }

        fn sign(&self, alg: &str, message: &[u8]) -> Vec<u8> {
            match alg {
                "ES256" => self.p256.sign(&self.rng, message).expect("sign").as_ref().to_vec(),
                "ES384" => self.p384.sign(&self.rng, message).expect("sign").as_ref().to_vec(),
                "EdDSA" => self.ed.sign(message).as_ref().to_vec(),
                rsa => {
                    let padding: &'static dyn RsaEncoding = match rsa {
                        "RS256" => &signature::RSA_PKCS1_SHA256,
                        "RS384" => &signature::RSA_PKCS1_SHA384,
                        "RS512" => &signature::RSA_PKCS1_SHA512,
                        "PS256" => &signature::RSA_PSS_SHA256,
                        "PS384" => &signature::RSA_PSS_SHA384,
                        "PS512" => &signature::RSA_PSS_SHA512,
                        other => panic!("no test signer for {other}"),
                    };
                    let mut sig = vec![0; self.rsa.public().modulus_len()];
                    self.rsa.sign(padding, &self.rng, message, &mut sig).expect("RSA sign");
                    sig
                }
            }
        }

        /// A token with this header and claims, signed with the key for the header's alg.
        fn token(&self, header: &Value, claims: &Value) -> String {
            let alg = header["alg"].as_str().expect("test header has alg");
            let signed = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
            let sig = self.sign(alg, signed.as_bytes());
            format!("{signed}.{}", b64(&sig))
        }
    }

    fn ec_key(alg: &'static signature::EcdsaSigningAlgorithm, rng: &SystemRandom) -> EcdsaKeyPair {
        let doc = EcdsaKeyPair::generate_pkcs8(alg, rng).expect("ecdsa keygen");
        EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), rng).expect("ecdsa parse")
    }

    fn kid_for(alg: &str) -> &'static str {
        match alg {
            "ES256" => "p256",
            "ES384" => "p384",
            "EdDSA" => "ed",
            _ => "rsa",
        }
    }

    const ALGS: [&str; 9] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

    fn claims() -> Value {
        json!({"sub": "device-1", "iss": "https://issuer.example", "aud": "ferrite", "exp": NOW + 60})
    }

    fn no_expectations() -> Expectations {
        Expectations::default()
    }

    #[test]
    fn jwks_parses_every_supported_key_kind() {
        let keys = Keys::new();
        assert_eq!(keys.jwks().len(), 4);
        assert!(!keys.jwks().is_empty());
    }

    #[test]
    fn every_algorithm_verifies_with_and_without_kid() {
        let keys = Keys::new();
        let jwks = keys.jwks();
        for alg in ALGS {
            let with_kid = keys.token(&json!({"alg": alg, "kid": kid_for(alg), "typ": "JWT"}), &claims());
            let got = verify(&with_kid, &jwks, NOW, &no_expectations()).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(got.get("sub"), Some(&json!("device-1")), "{alg}");
            let without_kid = keys.token(&json!({"alg": alg}), &claims());
            verify(&without_kid, &jwks, NOW, &no_expectations()).unwrap_or_else(|e| panic!("{alg} no kid: {e}"));
        }
    }

    #[test]
    fn tampered_payload_fails() {
        let keys = Keys::new();
        let jwks = keys.jwks();
        for alg in ALGS {
            let token = keys.token(&json!({"alg": alg}), &claims());
            let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
            let forged = json!({"sub": "admin", "exp": NOW + 60});
            parts[1] = b64(forged.to_string().as_bytes());
            let err = verify(&parts.join("."), &jwks, NOW, &no_expectations()).unwrap_err();
            assert_eq!(err, "signature does not verify", "{alg}");
        }
    }

    #[test]
    fn tampered_signature_fails() {
        let keys = Keys::new();
        let token = keys.token(&json!({"alg": "ES256"}), &claims());
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[10] ^= 1;
        let err = verify(&format!("{signed}.{}", b64(&sig)), &keys.jwks(), NOW, &no_expectations()).unwrap_err();
        assert_eq!(err, "signature does not verify");
    }

    #[test]
    fn truncated_signature_fails() {
        let keys = Keys::new();
        for alg in ALGS {
            let token = keys.token(&json!({"alg": alg}), &claims());
            let (signed, sig) = token.rsplit_once('.').unwrap();
            let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            let cut = format!("{signed}.{}", b64(&sig[..sig.len() - 3]));
            let err = verify(&cut, &keys.jwks(), NOW, &no_expectations()).unwrap_err();
            assert_eq!(err, "signature does not verify", "{alg}");
        }
    }

    #[test]
    fn a_kid_shared_by_several_keys_tries_each() {
        let keys = Keys::new();
        let other = Keys::new();
        let ed = |k: &Keys| json!({"kty": "OKP", "kid": "k", "crv": "Ed25519", "x": b64(k.ed.public_key().as_ref())});
        let jwks = Jwks::from_json(&json!({"keys": [ed(&other), ed(&keys)]}).to_string()).unwrap();
        let token = keys.token(&json!({"alg": "EdDSA", "kid": "k"}), &claims());
        assert!(verify(&token, &jwks, NOW, &no_expectations()).is_ok());
    }

    #[test]
    fn padded_jwk_members_are_accepted() {
        let keys = Keys::new();
        let padded = base64::engine::general_purpose::URL_SAFE;
        let point = keys.p256.public_key().as_ref();
        let ec =
            json!({"kty": "EC", "crv": "P-256", "x": padded.encode(&point[1..33]), "y": padded.encode(&point[33..])});
        let ed = json!({"kty": "OKP", "crv": "Ed25519", "x": padded.encode(keys.ed.public_key().as_ref())});
        assert!(ec["x"].as_str().unwrap().ends_with('='), "test needs padding: {ec}");
        let jwks = Jwks::from_json(&json!({"keys": [ec, ed]}).to_string()).unwrap();
        for alg in ["ES256", "EdDSA"] {
            let token = keys.token(&json!({"alg": alg}), &claims());
            verify(&token, &jwks, NOW, &no_expectations()).unwrap_or_else(|e| panic!("{alg}: {e}"));
        }
    }

    #[test]
    fn an_es256_token_does_not_verify_with_a_p384_key() {
        let keys = Keys::new();
        let token = keys.token(&json!({"alg": "ES256", "kid": "p384"}), &claims());
        let err = verify(&token, &keys.jwks(), NOW, &no_expectations()).unwrap_err();
        assert_eq!(err, "key \"p384\" cannot verify ES256");
    }

    #[test]
    fn key_not_in_set_fails() {
        let keys = Keys::new();
        let other = Keys::new();
        let token = other.token(&json!({"alg": "EdDSA"}), &claims());
        assert!(verify(&token, &keys.jwks(), NOW, &no_expectations()).is_err());
    }

    #[test]
    fn unknown_kid_fails() {
        let keys = Keys::new();
        let token = keys.token(&json!({"alg": "RS256", "kid": "nope"}), &claims());
        let err = verify(&token, &keys.jwks(), NOW, &no_expectations()).unwrap_err();
        assert_eq!(err, "no key with kid \"nope\" in the JWKS");
    }

    #[test]
    fn kid_of_other_key_type_fails() {
        let keys = Keys::new();
        let token = keys.token(&json!({"alg": "RS256", "kid": "ed"}), &claims());
        let err = verify(&token, &keys.jwks(), NOW, &no_expectations()).unwrap_err();
        assert!(err.contains("cannot verify RS256"), "{err}");
    }

    #[test]
    fn jwk_alg_restricts_the_key() {
        let keys = Keys::new();
        let mut jwk = keys.rsa_jwk();
        jwk["alg"] = json!("RS256");
        let jwks = Jwks::from_json(&json!({"keys": [jwk]}).to_string()).unwrap();
        assert!(verify(&keys.token(&json!({"alg": "RS256"}), &claims()), &jwks, NOW, &no_expectations()).is_ok());
        let err = verify(&keys.token(&json!({"alg": "PS256"}), &claims()), &jwks, NOW, &no_expectations()).unwrap_err();
        assert_eq!(err, "no key in the JWKS can verify PS256");
    }

    #[test]
    fn expired_token_fails_unless_within_leeway() {
        let keys = Keys::new();
        let token = keys.token(&json!({"alg": "EdDSA"}), &json!({"exp": NOW - 10}));
        let err = verify(&token, &keys.jwks(), NOW, &no_expectations()).unwrap_err();
        assert_eq!(err, format!("token expired at {}", NOW - 10));
        let at_exp = keys.token(&json!({"alg": "EdDSA"}), &json!({"exp": NOW}));
        assert!(verify(&at_exp, &keys.jwks(), NOW, &no_expectations()).is_err());
        let lenient = Expectations { leeway_s: 30, ..Expectations::default() };
        assert!(verify(&token, &keys.jwks(), NOW, &lenient).is_ok());
    }

    #[test]
    fn not_yet_valid_token_fails_unless_within_leeway() {
        let keys = Keys::new();
        let token = keys.token(&json!({"alg": "EdDSA"}), &json!({"nbf": NOW + 10, "exp": NOW + 60}));
        let err = verify(&token, &keys.jwks(), NOW, &no_expectations()).unwrap_err();
        assert_eq!(err, format!("token not valid before {}", NOW + 10));
        let lenient = Expectations { leeway_s: 10, ..Expectations::default() };
        assert!(verify(&token, &keys.jwks(), NOW, &lenient).is_ok());
        let now_ok = keys.token(&json!({"alg": "EdDSA"}), &json!({"nbf": NOW, "exp": NOW + 60}));
        assert!(verify(&now_ok, &keys.jwks(), NOW, &no_expectations()).is_ok());
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        let keys = Keys::new();
        let token = keys.token(&json!({"alg": "EdDSA"}), &json!({"sub": "forever"}));
        let err = verify(&token, &keys.jwks(), NOW, &no_expectations()).unwrap_err();
        assert_eq!(err, "token has no exp claim; one is required");
    }

    #[test]
    fn non_numeric_time_claim_fails() {
        let keys = Keys::new();
        let token = keys.token(&json!({"alg": "EdDSA"}), &json!({"exp": "tomorrow"}));
        assert_eq!(verify(&token, &keys.jwks(), NOW, &no_expectations()).unwrap_err(), "exp is not a number");
    }

    #[test]
    fn issuer_must_match_when_expected() {
        let keys = Keys::new();
        let token = keys.token(&json!({"alg": "ES256"}), &claims());
        let good = Expectations { issuer: Some("https://issuer.example".into()), ..Expectations::default() };
        assert!(verify(&token, &keys.jwks(), NOW, &good).is_ok());
        let bad = Expectations { issuer: Some("https://other.example".into()), ..Expectations::default() };
        assert!(verify(&token, &keys.jwks(), NOW, &bad).unwrap_err().contains("is not the expected"));
        let no_iss = keys.token(&json!({"alg": "ES256"}), &json!({"sub": "x", "exp": NOW + 60}));
        assert!(verify(&no_iss, &keys.jwks(), NOW, &good).unwrap_err().contains("no iss"));
    }

    #[test]
    fn audience_must_be_included_when_expected() {
        let keys = Keys::new();
        let jwks = keys.jwks();
        let expect = Expectations { audience: Some("ferrite".into()), ..Expectations::default() };
        let single = keys.token(&json!({"alg": "ES384"}), &claims());
        assert!(verify(&single, &jwks, NOW, &expect).is_ok());
        let list = keys.token(&json!({"alg": "ES384"}), &json!({"aud": ["other", "ferrite"], "exp": NOW + 60}));
        assert!(verify(&list, &jwks, NOW, &expect).is_ok());
        let wrong = keys.token(&json!({"alg": "ES384"}), &json!({"aud": ["other"], "exp": NOW + 60}));
        assert_eq!(verify(&wrong, &jwks, NOW, &expect).unwrap_err(), "audience does not include \"ferrite\"");
        let missing = keys.token(&json!({"alg": "ES384"}), &json!({"exp": NOW + 60}));
        assert!(verify(&missing, &jwks, NOW, &expect).unwrap_err().contains("no aud"));
        let odd = keys.token(&json!({"alg": "ES384"}), &json!({"aud": 7, "exp": NOW + 60}));
        assert!(verify(&odd, &jwks, NOW, &expect).unwrap_err().contains("not a string"));
    }

    /// An unsigned token with this header, as an attacker would send it.
    fn unsigned(header: &Value) -> String {
        format!("{}.{}.", b64(header.to_string().as_bytes()), b64(claims().to_string().as_bytes()))
    }

    #[test]
    fn alg_none_and_hmac_are_refused() {
        let keys = Keys::new();
        let jwks = keys.jwks();
        let none = format!("{}sig", unsigned(&json!({"alg": "none"})));
        assert_eq!(verify(&none, &jwks, NOW, &no_expectations()).unwrap_err(), "alg none is not accepted");
        let none_empty_sig = unsigned(&json!({"alg": "none"}));
        assert!(verify(&none_empty_sig, &jwks, NOW, &no_expectations()).is_err());
        let hs = format!("{}c2ln", unsigned(&json!({"alg": "HS256"})));
        assert_eq!(
            verify(&hs, &jwks, NOW, &no_expectations()).unwrap_err(),
            "HMAC algorithms are not supported: use a public-key algorithm"
        );
        let other = format!("{}c2ln", unsigned(&json!({"alg": "ES512"})));
        assert!(verify(&other, &jwks, NOW, &no_expectations()).unwrap_err().contains("not supported"));
    }

    #[test]
    fn crit_header_is_refused() {
        let keys = Keys::new();
        let token = keys.token(&json!({"alg": "EdDSA", "crit": ["b64"], "b64": false}), &claims());
        assert!(verify(&token, &keys.jwks(), NOW, &no_expectations()).unwrap_err().contains("critical"));
    }

    #[test]
    fn payload_must_be_an_object() {
        let keys = Keys::new();
        let token = keys.token(&json!({"alg": "EdDSA"}), &json!(["not", "an", "object"]));
        let err = verify(&token, &keys.jwks(), NOW, &no_expectations()).unwrap_err();
        assert_eq!(err, "token payload is not a JSON object");
    }

    #[test]
    fn padded_base64_is_accepted() {
        let keys = Keys::new();
        let header = base64::engine::general_purpose::URL_SAFE.encode(json!({"alg": "EdDSA"}).to_string());
        let payload =
            base64::engine::general_purpose::URL_SAFE.encode(json!({"sub": "padded", "exp": NOW + 60}).to_string());
        let signed = format!("{header}.{payload}");
        let sig = base64::engine::general_purpose::URL_SAFE.encode(keys.sign("EdDSA", signed.as_bytes()));
        let token = format!("{signed}.{sig}");
        assert!(token.contains('='), "test needs padding somewhere: {token}");
        let got = verify(&token, &keys.jwks(), NOW, &no_expectations()).unwrap();
        assert_eq!(got.get("sub"), Some(&json!("padded")));
    }

    #[test]
    fn garbage_inputs_error_without_panicking() {
        let jwks = Keys::new().jwks();
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let garbage = [
            "",
            ".",
            "..",
            "a.b",
            "a.b.c.d",
            "a.b.c",
            "!!!.???.***",
            "eyJhbGciOiJFZERTQSJ9..c2ln",
            "eyJhbGciOiJFZERTQSJ9.e30.",
            "bnVsbA.e30.c2ln",
            "eyJhbGciOjV9.e30.c2ln",
            "e30.e30.c2ln",
            "\u{e9}\u{e9}.\u{e9}.\u{e9}",
            "eyJhbGciOiJFZERTQSJ9.e30.c2ln====",
            long.as_str(),
        ];
        for token in garbage {
            let err = verify(token, &jwks, NOW, &no_expectations()).unwrap_err();
            assert!(!err.is_empty(), "{token:?}");
        }
        assert_eq!(verify("", &jwks, NOW, &no_expectations()).unwrap_err(), "token is empty");
        assert!(verify("a.b.c.d", &jwks, NOW, &no_expectations()).unwrap_err().contains("4 parts"));
        assert!(verify(&long, &jwks, NOW, &no_expectations()).unwrap_err().contains("longer than"));
        assert!(verify("!!!.e30.c2ln", &jwks, NOW, &no_expectations()).unwrap_err().contains("not base64url"));
    }

    #[test]
    fn jwks_skips_unusable_keys_and_rejects_empty_sets() {
        let keys = Keys::new();
        let mut enc = keys.rsa_jwk();
        enc["use"] = json!("enc");
        let mixed = json!({"keys": [
            enc,
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "X25519", "x": "AA"},
            {"kty": "RSA", "alg": "RSA-OAEP", "n": "AA", "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "key_ops": ["encrypt"], "x": "AA"},
            {"kty": "OKP", "crv": "Ed25519", "x": b64(keys.ed.public_key().as_ref())},
        ]});
        assert_eq!(Jwks::from_json(&mixed.to_string()).unwrap().len(), 1);
        let only_unusable = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        assert!(Jwks::from_json(&only_unusable.to_string()).unwrap_err().contains("no usable"));
        assert!(Jwks::from_json(r#"{"keys":[]}"#).is_err());
    }

    #[test]
    fn malformed_jwks_is_an_error() {
        for text in [
            "",
            "not json",
            "[]",
            r#"{"keys": {}}"#,
            r#"{"keys": [7]}"#,
            r#"{"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}"#,
            r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#,
            r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}"#,
            r#"{"keys": [{"kty": "OKP", "crv": "Ed25519"}]}"#,
            r#"{"keys": [{"kid": 5, "kty": "OKP", "crv": "Ed25519", "x": "AA"}]}"#,
            r#"{"keys": [{"crv": "Ed25519", "x": "AA"}]}"#,
        ] {
            assert!(Jwks::from_json(text).is_err(), "{text}");
        }
        let keys = Keys::new();
        let mut mismatched = keys.rsa_jwk();
        mismatched["alg"] = json!("ES256");
        let err = Jwks::from_json(&json!({"keys": [mismatched]}).to_string()).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
    }

    #[test]
    fn load_reads_a_file_and_names_the_path_on_error() {
        let keys = Keys::new();
        let dir = std::env::temp_dir().join(format!("ferrite-jwt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jwks.json");
        std::fs::write(&path, keys.jwks_json().to_string()).unwrap();
        assert_eq!(Jwks::load(&path).unwrap().len(), 4);
        std::fs::write(&path, "{}").unwrap();
        assert!(Jwks::load(&path).unwrap_err().contains("jwks.json"));
        let missing = dir.join("missing.json");
        assert!(Jwks::load(&missing).unwrap_err().contains("missing.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
