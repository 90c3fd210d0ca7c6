//! An HTTP client's bytes are untrusted: they go through the same HTTP/1 parser as the node's
//! listener (actix-http's codec, default limits), and every request it yields through the
//! node's request path before any handler: headers collected for SigV4 as the node collects
//! them, the body bounded, the signature verified, path segments percent-decoded. Nothing may
//! panic and no fuzzed request may verify.
#![no_main]

use actix_http::h1::{Codec, Message};
use actix_http::{HttpMessage as _, ServiceConfig};
use bytes::BytesMut;
use ferrite_aws::{percent, sigv4};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

/// The node's largest API body.
const MAX_BODY: usize = 256 * 1024;

/// The parser's configuration, made once per thread: its date service must be created
/// inside a tokio `LocalSet`, which is kept (never run: the codec only decodes here).
struct Parser {
    config: ServiceConfig,
    _local: tokio::task::LocalSet,
    _runtime: tokio::runtime::Runtime,
}

thread_local! {
    static PARSER: Parser = {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        let local = tokio::task::LocalSet::new();
        let config = {
            let _runtime = runtime.enter();
            let _local = local.enter();
            ServiceConfig::default()
        };
        Parser { config, _local: local, _runtime: runtime }
    };
}

fuzz_target!(|data: &[u8]| {
    let mut codec = Codec::new(PARSER.with(|p| p.config.clone()));
    let mut input = BytesMut::from(data);
    let mut current: Option<(actix_http::Request, Vec<u8>)> = None;
    loop {
        match codec.decode(&mut input) {
            Ok(Some(Message::Item(req))) => {
                if let Some((req, body)) = current.take() {
                    handle(&req, &body);
                }
                current = Some((req, Vec::new()));
            }
            Ok(Some(Message::Chunk(Some(chunk)))) => {
                if let Some((_, body)) = current.as_mut() {
                    if body.len() + chunk.len() > MAX_BODY {
                        return; // the node answers 413 and reads no further
                    }
                    body.extend_from_slice(&chunk);
                }
            }
            Ok(Some(Message::Chunk(None))) => {
                if let Some((req, body)) = current.take() {
                    handle(&req, &body);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    if let Some((req, body)) = current {
        handle(&req, &body);
    }
});

fn handle(req: &actix_http::Request, body: &[u8]) {
    for segment in req.path().split('/') {
        let _ = percent::decode(segment);
    }
    for pair in req.uri().query().unwrap_or("").split('&') {
        let _ = percent::decode_form(pair);
    }
    let headers = sigv4::header_list(req.headers().iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
    let signed = sigv4::Request {
        method: req.method().as_str(),
        path: req.path(),
        query: req.uri().query().unwrap_or(""),
        headers: &headers,
        body,
    };
    let verified = sigv4::verify(&signed, &["iot", "iotdata"], 1_795_608_000, |k| (k == "AKIDFUZZ").then(|| "secret".into()));
    assert!(verified.is_err(), "a fuzzed request verified: {signed:?}");
}
