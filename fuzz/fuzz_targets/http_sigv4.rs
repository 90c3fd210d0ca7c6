//! Authorization headers, dates, paths and queries are untrusted: verifying any of them must
//! never panic, and only the right secret may pass.
#![no_main]

use ferrite_aws::sigv4::{verify, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(5, '\n');
    let (auth, date, path, query, body) =
        (parts.next(), parts.next(), parts.next().unwrap_or("/"), parts.next().unwrap_or(""), parts.next());
    let mut headers = vec![("host".to_string(), "127.0.0.1:8080".to_string())];
    if let Some(a) = auth {
        headers.push(("authorization".to_string(), a.to_string()));
    }
    if let Some(d) = date {
        headers.push(("x-amz-date".to_string(), d.to_string()));
    }
    let req = Request { method: "POST", path, query, headers: &headers, body: body.unwrap_or("").as_bytes() };
    // A random signature matching is 2^-256: any success means verification is broken.
    let result = verify(&req, &["iotdata", "iot"], 1_795_608_000, |k| (k == "AKIDFUZZ").then(|| "secret".into()));
    assert!(result.is_err(), "a fuzzed request verified: {req:?}");
});
