//! AWS Signature Version 4 verification, so the AWS CLI, boto3 and the SDKs authenticate to
//! the HTTP API with an access key exactly as they do to AWS, and signing, for the node's own
//! tools. Pure: a request and a clock in, the caller's access key (or AWS's error) out. The
//! HTTP layer supplies the secrets.

use ring::{digest, hmac};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::error::AwsError;
use crate::percent;

/// How far a request's `X-Amz-Date` may be from the node's clock (AWS: 15 minutes).
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

/// The form of `X-Amz-Date`: `20261125T120000Z`, always UTC.
const AMZ_DATE: &[BorrowedFormatItem<'static>] = format_description!("[year][month][day]T[hour][minute][second]Z");

/// The parts of an HTTP request that SigV4 covers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The query string as received, without `?`.
    pub query: &'a str,
    /// Every header, any case.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

/// Headers as an HTTP server hands them over, in the form [`Request`] takes. A value that
/// is not UTF-8 is decoded lossily: it cannot match a signature computed over its bytes.
pub fn header_list<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<(String, String)> {
    headers.into_iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned())).collect()
}

/// Who signed an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The access key id.
    pub access_key: String,
    /// The region the client named (any is accepted).
    pub region: String,
    /// The service it signed for.
    pub service: String,
}

/// A refusal: 403 with the error type AWS names for the cause.
fn refuse(error_type: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::forbidden(error_type, message)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// HMAC-SHA256 of `data` under `key`.
fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref());
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent::encode(&percent::decode_lossy(k)), percent::encode(&percent::decode_lossy(v)))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Seconds since the epoch of an `X-Amz-Date` (`20261125T120000Z`).
fn parse_amz_date(s: &str) -> Option<i64> {
    Some(PrimitiveDateTime::parse(s, AMZ_DATE).ok()?.assume_utc().unix_timestamp())
}

/// Who signs, for which day, region and service.
struct Scope<'a> {
    secret: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    amz_date: &'a str,
}

/// The hex signature of a request with its canonical headers already built.
fn signature(
    req: &Request<'_>,
    scope: &Scope<'_>,
    canonical_headers: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        req.method,
        percent::encode_path(if req.path.is_empty() { "/" } else { req.path }),
        canonical_query(req.query),
    );
    let Scope { secret, date, region, service, amz_date } = scope;
    let credential_scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{credential_scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [*region, *service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    hex(&hmac(&key, string_to_sign.as_bytes()))
}

/// Signs a request the way AWS clients do, for the node's own command-line tools
/// (`ferrite cluster join`): the headers to send, `host` and `x-amz-date` included.
/// `req.headers` is ignored.
pub fn sign(
    req: &Request<'_>,
    host: &str,
    key: (&str, &str),
    region: &str,
    service: &str,
    now_secs: i64,
) -> Vec<(String, String)> {
    let when = OffsetDateTime::from_unix_timestamp(now_secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let amz_date = when.format(AMZ_DATE).expect("an OffsetDateTime has every component of AMZ_DATE");
    let date = &amz_date[..8];
    let payload_hash = sha256_hex(req.body);
    let canonical_headers = format!("host:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n");
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let (access_key, secret) = key;
    let scope = Scope { secret, date, region, service, amz_date: &amz_date };
    let signature = signature(req, &scope, &canonical_headers, signed_headers, &payload_hash);
    vec![
        ("host".into(), host.into()),
        ("x-amz-content-sha256".into(), payload_hash),
        ("x-amz-date".into(), amz_date.clone()),
        (
            "authorization".into(),
            format!("AWS4-HMAC-SHA256 Credential={access_key}/{date}/{region}/{service}/aws4_request, SignedHeaders={signed_headers}, Signature={signature}"),
        ),
    ]
}

/// The access key, date, region and service of a credential scope
/// (`KEY/DATE/REGION/SERVICE/aws4_request`) scoped to one of `services`, and the key's secret.
fn scoped<'c>(
    credential: &'c str,
    services: &[&str],
    secret_of: &impl Fn(&str) -> Option<String>,
) -> Result<(&'c str, &'c str, &'c str, &'c str, String), AwsError> {
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(refuse("IncompleteSignatureException", format!("Credential scope is malformed: {credential}")));
    };
    if !services.contains(service) {
        return Err(refuse(
            "InvalidSignatureException",
            format!("Credential should be scoped to a valid service: {}", services.join(" or ")),
        ));
    }
    let secret = secret_of(access_key).ok_or_else(|| {
        refuse("UnrecognizedClientException", "The security token included in the request is invalid.")
    })?;
    Ok((access_key, date, region, service, secret))
}

/// The canonical headers of the signed ones; the host must be among them (refused with
/// `no_host` otherwise), and every one must have arrived.
fn canonical_headers(req: &Request<'_>, signed_headers: &str, no_host: &str) -> Result<String, AwsError> {
    if !signed_headers.split(';').any(|name| name.eq_ignore_ascii_case("host")) {
        return Err(refuse("IncompleteSignatureException", no_host));
    }
    let mut canonical = String::new();
    for name in signed_headers.split(';') {
        let value = header(req.headers, name)
            .ok_or_else(|| refuse("InvalidSignatureException", format!("Signed header {name} is missing")))?;
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        canonical.push_str(&format!("{}:{value}\n", name.to_ascii_lowercase()));
    }
    Ok(canonical)
}

/// Compares the signatures without an early exit, so timing says nothing about them.
fn same_signature(expected: &str, presented: &str) -> Result<(), AwsError> {
    let same = expected.len() == presented.len()
        && expected.bytes().zip(presented.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if same {
        return Ok(());
    }
    Err(refuse(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    ))
}

/// Verifies a request signed with SigV4 for one of `services`, at `now_secs`. `secret_of`
/// returns the secret of an access key, `None` for an unknown key.
pub fn verify(
    req: &Request<'_>,
    services: &[&str],
    now_secs: i64,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<Signer, AwsError> {
    let auth = header(req.headers, "authorization")
        .ok_or_else(|| refuse("MissingAuthenticationTokenException", "Missing Authentication Token"))?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        refuse("IncompleteSignatureException", "Authorization header requires the AWS4-HMAC-SHA256 algorithm")
    })?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut presented_signature = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => presented_signature = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed_headers), Some(presented)) = (credential, signed_headers, presented_signature)
    else {
        return Err(refuse(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'",
        ));
    };
    let (access_key, date, region, service, secret) = scoped(credential, services, &secret_of)?;
    let amz_date = header(req.headers, "x-amz-date")
        .ok_or_else(|| refuse("IncompleteSignatureException", "Missing X-Amz-Date header"))?;
    let signed_at = parse_amz_date(amz_date)
        .ok_or_else(|| refuse("IncompleteSignatureException", format!("Invalid X-Amz-Date {amz_date}")))?;
    if (now_secs - signed_at).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(refuse(
            "InvalidSignatureException",
            format!("Signature expired: {amz_date} is more than 15 minutes away from the server's time"),
        ));
    }
    if !amz_date.starts_with(date) {
        return Err(refuse("InvalidSignatureException", "Credential date does not match X-Amz-Date"));
    }
    // As AWS: the host is always signed, or the request could be replayed to another node.
    let canonical_headers = canonical_headers(
        req,
        signed_headers,
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
    )?;
    let body_hash = sha256_hex(req.body);
    // A declared payload hash must be the body's: otherwise the signature would cover the
    // header, not the body that arrived. UNSIGNED-PAYLOAD is S3's; AWS IoT's services always
    // sign the body, so the body of a signed request cannot be swapped.
    let payload_hash = match header(req.headers, "x-amz-content-sha256") {
        Some(unsigned) if unsigned.eq_ignore_ascii_case("UNSIGNED-PAYLOAD") => {
            return Err(refuse(
                "InvalidSignatureException",
                "UNSIGNED-PAYLOAD is not accepted: the signature must cover the request body.",
            ));
        }
        Some(declared) if !declared.eq_ignore_ascii_case(&body_hash) => {
            return Err(refuse(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
        _ => body_hash,
    };
    let scope = Scope { secret: &secret, date, region, service, amz_date };
    let expected = signature(req, &scope, &canonical_headers, signed_headers, &payload_hash);
    same_signature(&expected, presented)?;
    Ok(Signer { access_key: access_key.to_string(), region: region.to_string(), service: service.to_string() })
}

/// The query parameter of a presigned request that carries its signature.
pub const PRESIGNED_SIGNATURE: &str = "X-Amz-Signature";

/// Verifies a presigned request (SigV4 in the query string, as AWS's SDKs sign the
/// WebSocket upgrade to `/mqtt`): `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
/// `X-Amz-SignedHeaders`, `X-Amz-Signature` and optionally `X-Amz-Expires`. The signature
/// covers the query without `X-Amz-Signature`, the signed headers (the host always among
/// them) and the body's hash.
pub fn verify_presigned(
    req: &Request<'_>,
    services: &[&str],
    now_secs: i64,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<Signer, AwsError> {
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in req.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((percent::decode_lossy(k).into_owned(), percent::decode_lossy(v).into_owned()));
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if param("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(refuse("IncompleteSignatureException", "X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
    }
    let (Some(credential), Some(amz_date), Some(signed_headers), Some(presented)) =
        (param("X-Amz-Credential"), param("X-Amz-Date"), param("X-Amz-SignedHeaders"), param(PRESIGNED_SIGNATURE))
    else {
        return Err(refuse(
            "IncompleteSignatureException",
            "A presigned request needs X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders and X-Amz-Signature",
        ));
    };
    let (access_key, date, region, service, secret) = scoped(credential, services, &secret_of)?;
    let signed_at = parse_amz_date(amz_date)
        .ok_or_else(|| refuse("IncompleteSignatureException", format!("Invalid X-Amz-Date {amz_date}")))?;
    let expires = param("X-Amz-Expires").and_then(|e| e.parse::<i64>().ok());
    let late = match expires {
        Some(e) => now_secs > signed_at + e.min(7 * 24 * 3600),
        None => now_secs - signed_at > MAX_CLOCK_SKEW_SECS,
    };
    if late || signed_at - now_secs > MAX_CLOCK_SKEW_SECS {
        return Err(refuse("InvalidSignatureException", format!("Signature expired or not yet valid: {amz_date}")));
    }
    if !amz_date.starts_with(date) {
        return Err(refuse("InvalidSignatureException", "Credential date does not match X-Amz-Date"));
    }
    let canonical_headers =
        canonical_headers(req, signed_headers, "'Host' must be a signed header of a presigned request.")?;
    let unsigned_query: Vec<&str> = req
        .query
        .split('&')
        .filter(|p| !p.is_empty() && p.split_once('=').map_or(*p, |(k, _)| k) != PRESIGNED_SIGNATURE)
        .collect();
    let unsigned_query = unsigned_query.join("&");
    let without_signature = Request { query: &unsigned_query, ..*req };
    let scope = Scope { secret: &secret, date, region, service, amz_date };
    let expected = signature(&without_signature, &scope, &canonical_headers, signed_headers, &sha256_hex(req.body));
    same_signature(&expected, presented)?;
    Ok(Signer { access_key: access_key.to_string(), region: region.to_string(), service: service.to_string() })
}

/// Presigns a request's query (what [`verify_presigned`] checks), for tests and tools:
/// the full query string to send, `host` the only signed header.
pub fn presign_query(
    req: &Request<'_>,
    host: &str,
    key: (&str, &str),
    region: &str,
    service: &str,
    now_secs: i64,
) -> String {
    let when = OffsetDateTime::from_unix_timestamp(now_secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let amz_date = when.format(AMZ_DATE).expect("an OffsetDateTime has every component of AMZ_DATE");
    let date = &amz_date[..8];
    let (access_key, secret) = key;
    let credential = percent::encode(&format!("{access_key}/{date}/{region}/{service}/aws4_request"));
    let mut query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Date={amz_date}&X-Amz-SignedHeaders=host"
    );
    if !req.query.is_empty() {
        query = format!("{}&{query}", req.query);
    }
    let scope = Scope { secret, date, region, service, amz_date: &amz_date };
    let unsigned = Request { query: &query, ..*req };
    let signature = signature(&unsigned, &scope, &format!("host:{host}\n"), "host", &sha256_hex(req.body));
    format!("{query}&{PRESIGNED_SIGNATURE}={signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AKIDFERRITETEST0001";
    const SECRET: &str = "c2VjcmV0LWtleS1mb3ItZmVycml0ZS10ZXN0cw";
    /// 2026-11-25T12:00:00Z.
    const NOW: i64 = 1_795_608_000;

    fn secret(k: &str) -> Option<String> {
        (k == KEY).then(|| SECRET.to_string())
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Signed by botocore 1.43 (`SigV4Auth(creds, 'iotdata', 'us-east-1')`) at NOW.
    fn botocore_post() -> (Vec<(String, String)>, &'static [u8]) {
        (
            headers(&[
                ("Host", "127.0.0.1:8443"),
                ("Content-Type", "application/json"),
                ("X-Amz-Date", "20261125T120000Z"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDFERRITETEST0001/20261125/us-east-1/iotdata/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=e97adbf1935ccc7532238ebd9352a2bdeb78238a21f08a1e168f1f9d3a663dc6"),
            ]),
            br#"{"state":{"desired":{"on":true}}}"#,
        )
    }

    #[test]
    fn presigned_queries_verify_and_tampering_is_refused() {
        let h = headers(&[("host", "localhost:8883")]);
        let unsigned = Request { method: "GET", path: "/mqtt", query: "", headers: &h, body: b"" };
        let query = presign_query(&unsigned, "localhost:8883", (KEY, SECRET), "us-east-1", "iotdevicegateway", NOW);
        let req = Request { query: &query, ..unsigned };
        let signer = verify_presigned(&req, &["iotdevicegateway"], NOW + 60, secret).unwrap();
        assert_eq!(signer.access_key, KEY);
        assert!(verify_presigned(&req, &["iot"], NOW, secret).is_err(), "another service");
        assert!(verify_presigned(&req, &["iotdevicegateway"], NOW + 3600, secret).is_err(), "expired");
        let other_host = headers(&[("host", "elsewhere:8883")]);
        let moved = Request { headers: &other_host, ..req };
        assert!(verify_presigned(&moved, &["iotdevicegateway"], NOW, secret).is_err(), "another host");
        let tampered = query.replace("X-Amz-Date=", "x=1&X-Amz-Date=");
        let req = Request { query: &tampered, ..unsigned };
        assert!(verify_presigned(&req, &["iotdevicegateway"], NOW, secret).is_err(), "an added parameter");
        let req = Request { query: "X-Amz-Algorithm=AWS4-HMAC-SHA256", ..unsigned };
        assert!(verify_presigned(&req, &["iotdevicegateway"], NOW, secret).is_err());
    }

    #[test]
    fn what_sign_signs_verifies() {
        let unsigned = Request { method: "POST", path: "/cluster/members", query: "", headers: &[], body: b"{}" };
        let h = sign(&unsigned, "127.0.0.1:8080", (KEY, SECRET), "us-east-1", "iot", NOW);
        let req = Request { headers: &h, ..unsigned };
        assert!(verify(&req, &["iot"], NOW, secret).is_ok());
        let tampered = Request { body: b"{ }", ..req };
        assert!(verify(&tampered, &["iot"], NOW, secret).is_err());
    }

    #[test]
    fn botocore_signatures_verify() {
        let (h, body) = botocore_post();
        let req = Request { method: "POST", path: "/things/lamp-1/shadow", query: "name=cfg", headers: &h, body };
        let signer = verify(&req, &["iotdata"], NOW, secret).unwrap();
        assert_eq!((signer.access_key.as_str(), signer.region.as_str()), (KEY, "us-east-1"));

        let h = headers(&[
            ("host", "127.0.0.1:8443"),
            ("x-amz-date", "20261125T120000Z"),
            ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDFERRITETEST0001/20261125/us-east-1/iotdata/aws4_request, SignedHeaders=host;x-amz-date, Signature=dc56ecc13d5107f04c53b60277e9f017994433afbad8b662278b09ecce7b9f25"),
        ]);
        let req = Request { method: "GET", path: "/things/a%3Ab/shadow", query: "", headers: &h, body: b"" };
        assert!(verify(&req, &["iotdata"], NOW, secret).is_ok(), "encoded paths are encoded again");

        let h = headers(&[
            ("Host", "localhost:8443"),
            ("X-Amz-Date", "20261125T120000Z"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDFERRITETEST0001/20261125/us-east-1/iot/aws4_request, SignedHeaders=host;x-amz-date, Signature=dcfb55e8206f74bc08f9664d4cd683c38881f7523a9275806d26f640e65fc594"),
        ]);
        let req = Request {
            method: "GET",
            path: "/things",
            query: "maxResults=2&nextToken=abc%2Fdef",
            headers: &h,
            body: b"",
        };
        assert!(verify(&req, &["iot"], NOW, secret).is_ok(), "query strings are sorted and encoded");
    }

    #[test]
    fn tampering_wrong_keys_services_and_stale_dates_are_refused() {
        let (h, _) = botocore_post();
        let req = |body: &'static [u8]| Request {
            method: "POST",
            path: "/things/lamp-1/shadow",
            query: "name=cfg",
            headers: &h,
            body,
        };
        let e = verify(&req(br#"{"state":{"desired":{"on":false}}}"#), &["iotdata"], NOW, secret).unwrap_err();
        assert_eq!((e.status, e.error_type), (403, "InvalidSignatureException"));
        let good = br#"{"state":{"desired":{"on":true}}}"#;
        assert_eq!(
            verify(&req(good), &["iotdata"], NOW, |_| None).unwrap_err().error_type,
            "UnrecognizedClientException"
        );
        assert_eq!(verify(&req(good), &["iot"], NOW, secret).unwrap_err().error_type, "InvalidSignatureException");
        let stale = verify(&req(good), &["iotdata"], NOW + 16 * 60, secret).unwrap_err();
        assert!(stale.message.starts_with("Signature expired"), "{}", stale.message);
        assert!(verify(&req(good), &["iotdata"], NOW + 14 * 60, secret).is_ok());
        let none: Vec<(String, String)> = vec![];
        let bare = Request { method: "GET", path: "/", query: "", headers: &none, body: b"" };
        assert_eq!(verify(&bare, &["iot"], NOW, secret).unwrap_err().error_type, "MissingAuthenticationTokenException");
    }

    #[test]
    fn the_host_and_the_body_are_always_signed() {
        let date = ("x-amz-date", "20261125T120000Z");
        let signed = |names: &str, extra: Option<(&str, &str)>| {
            let mut pairs = vec![
                ("host", "127.0.0.1:8080"),
                date,
                ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDFERRITETEST0001/20261125/us-east-1/iot/aws4_request, SignedHeaders=NAMES, Signature=00"),
            ];
            pairs.extend(extra);
            let mut h = headers(&pairs);
            h[2].1 = h[2].1.replace("NAMES", names);
            h
        };
        let req = |h: &[(String, String)]| {
            let req = Request { method: "POST", path: "/things/x", query: "", headers: h, body: b"{}" };
            verify(&req, &["iot"], NOW, secret).unwrap_err()
        };
        let e = req(&signed("x-amz-date", None));
        assert_eq!(e.error_type, "IncompleteSignatureException");
        assert!(e.message.contains("'Host'"), "{}", e.message);
        let e = req(&signed("host;x-amz-date", Some(("x-amz-content-sha256", "UNSIGNED-PAYLOAD"))));
        assert_eq!(e.error_type, "InvalidSignatureException");
        assert!(e.message.contains("UNSIGNED-PAYLOAD"), "{}", e.message);
        // A correct signature over UNSIGNED-PAYLOAD is refused too: built with `signature`.
        let h = headers(&[("host", "127.0.0.1:8080"), date, ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")]);
        let unsigned = Request { method: "POST", path: "/things/x", query: "", headers: &h, body: b"{}" };
        let scope = Scope { secret: SECRET, date: "20261125", region: "us-east-1", service: "iot", amz_date: date.1 };
        let canonical = "host:127.0.0.1:8080\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:20261125T120000Z\n";
        let names = "host;x-amz-content-sha256;x-amz-date";
        let sig = signature(&unsigned, &scope, canonical, names, "UNSIGNED-PAYLOAD");
        let mut h = h.clone();
        h.push(("authorization".into(), format!("AWS4-HMAC-SHA256 Credential={KEY}/20261125/us-east-1/iot/aws4_request, SignedHeaders={names}, Signature={sig}")));
        let req = Request { method: "POST", path: "/things/x", query: "", headers: &h, body: b"swapped" };
        assert_eq!(verify(&req, &["iot"], NOW, secret).unwrap_err().error_type, "InvalidSignatureException");
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn amz_dates_convert_to_epoch_seconds() {
        assert_eq!(parse_amz_date("20261125T120000Z"), Some(NOW));
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("2026-11-25T12"), None);
    }
}
