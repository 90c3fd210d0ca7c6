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
