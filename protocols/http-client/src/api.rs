//! Calls to a Ferrite node's HTTP API from tools (the CLI, the chaos harness): one request,
//! SigV4-signed when a key is given, the answer parsed as JSON. Blocking: tools call it
//! from plain threads.

use std::time::Duration;

use ferrite_aws::sigv4;
use serde_json::Value;

/// How long a tool waits for a node's answer.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `method path` with `body` to the node at `addr` (`HOST:PORT`, a name or an IP), signed with `key` (access key id,
/// secret) for the `iot` service when given, and returns the status and the body (JSON, or
/// the text as a JSON string when it is not JSON).
pub fn request(
    addr: &impl std::fmt::Display,
    method: &str,
    path: &str,
    body: &[u8],
    key: Option<(&str, &str)>,
) -> Result<(u16, Value), String> {
    let host = addr.to_string();
    let headers = match key {
        Some(key) => {
            let unsigned = sigv4::Request { method, path, query: "", headers: &[], body };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
            sigv4::sign(&unsigned, &host, key, "us-east-1", "iot", now as i64)
        }
        None => Vec::new(),
    };
    let target = crate::parse_url(&format!("http://{host}{path}"))?;
    // Tools call this without a runtime of their own: the call gets one.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let (status, body) = runtime
        .block_on(crate::call(method, &target, &headers, body, TIMEOUT))
        .map_err(|e| format!("cannot reach the node at {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&body).into_owned();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// Downloads `path` from the node at `addr` (`HOST:PORT`, plain HTTP), signed with `key`,
/// writing the body into `out` as it arrives: any size (backups), with at most [`TIMEOUT`]
/// between two pieces. Returns how many bytes came; an answer other than 200 is an error
/// with the node's message.
pub fn download(
    addr: &impl std::fmt::Display,
    path: &str,
    key: (&str, &str),
    out: &mut dyn std::io::Write,
) -> Result<u64, String> {
    use http_body_util::BodyExt as _;

    let host = addr.to_string();
    let unsigned = sigv4::Request { method: "GET", path, query: "", headers: &[], body: b"" };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let headers = sigv4::sign(&unsigned, &host, key, "us-east-1", "iot", now as i64);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let tcp = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(host.as_str()))
            .await
            .map_err(|_| format!("cannot reach the node at {addr}: no answer within {} s", TIMEOUT.as_secs()))?
            .map_err(|e| format!("cannot reach the node at {addr}: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| format!("cannot talk to the node at {addr}: {e}"))?;
        tokio::spawn(connection);
        let mut request = hyper::Request::builder().method("GET").uri(path);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            request = request.header("host", host.as_str());
        }
        for (k, v) in &headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let request =
            request.body(http_body_util::Empty::<bytes::Bytes>::new()).map_err(|e| format!("invalid request: {e}"))?;
        let response = tokio::time::timeout(TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| format!("the node at {addr} did not answer within {} s", TIMEOUT.as_secs()))?
            .map_err(|e| format!("the node at {addr} did not answer: {e}"))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if status != 200 {
            let bytes = http_body_util::Limited::new(body, crate::MAX_RESPONSE_BODY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| text.into_owned());
            return Err(format!("the node at {addr} answered {status}: {message}"));
        }
        let mut total = 0u64;
        loop {
            let frame = tokio::time::timeout(TIMEOUT, body.frame())
                .await
                .map_err(|_| format!("the node at {addr} sent nothing for {} s", TIMEOUT.as_secs()))?;
            let Some(frame) = frame else { return Ok(total) };
            let frame = frame.map_err(|e| format!("the download from {addr} was cut short: {e}"))?;
            if let Ok(data) = frame.into_data() {
                out.write_all(&data).map_err(|e| format!("cannot write the download: {e}"))?;
                total += data.len() as u64;
            }
        }
    })
}
