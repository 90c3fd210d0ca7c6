//! A minimal HTTP/1.1 client for the `http` rule action and custom authorizers: one POST per
//! connection, `http://` URLs only. It exists to keep a full HTTP client stack out of the node
//! for one request shape.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where to send: host, port and path of an `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// TCP port (80 when the URL has none).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Splits an `http://host[:port]/path` URL; other schemes are refused with the reason.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", _)) => {
            return Err("https URLs need TLS, which arrives with the identity issue; use http://".into())
        }
        _ => return Err(format!("not an http:// URL: {url}")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("invalid port in {url}"))?),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    Ok(Target { host: host.to_string(), port, path: path.to_string() })
}

/// POSTs `body` and returns the response status code.
pub async fn post(
    target: &Target,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<u16, String> {
    exchange(target, headers, content_type, body, timeout, false).await.map(|(status, _)| status)
}

/// Most response body [`post_for_body`] reads.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// POSTs `body` and returns the response status code and body (read until the server closes,
/// or `Content-Length` bytes; at most [`MAX_RESPONSE_BODY`]).
pub async fn post_for_body(
    target: &Target,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    exchange(target, &[], content_type, body, timeout, true).await
}

async fn exchange(
    target: &Target,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
    timeout: Duration,
    want_body: bool,
) -> Result<(u16, Vec<u8>), String> {
    let work = async {
        let mut stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", target.host, target.port))?;
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: ferrite\r\n",
            target.path,
            target.host,
            target.port,
            body.len()
        );
        for (k, v) in headers {
            if k.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']) {
                return Err(format!("invalid header {k:?}"));
            }
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("send failed: {e}"))?;
        stream.write_all(body).await.map_err(|e| format!("send failed: {e}"))?;
        let mut response = Vec::with_capacity(512);
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = find(&response, b"\r\n\r\n") {
                break i + 4;
            }
            if !want_body && find(&response, b"\r\n").is_some() {
                break response.len();
            }
            let n = stream.read(&mut buf).await.map_err(|e| format!("no response: {e}"))?;
            if n == 0 || response.len() > 16 * 1024 {
                return Err("connection closed before a complete response head".into());
            }
            response.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
        let status = status.ok_or_else(|| format!("malformed status line {:?}", head.lines().next().unwrap_or("")))?;
        if !want_body {
            return Ok((status, Vec::new()));
        }
        let length = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
        });
        let mut body = response[head_end..].to_vec();
        while length.is_none_or(|l| body.len() < l) {
            let n = stream.read(&mut buf).await.map_err(|e| format!("response cut short: {e}"))?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
            if body.len() > MAX_RESPONSE_BODY {
                return Err(format!("response body larger than {MAX_RESPONSE_BODY} bytes"));
            }
        }
        if let Some(l) = length {
            body.truncate(l);
        }
        Ok((status, body))
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| format!("no response within {} ms", timeout.as_millis()))?
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls_and_refuses_others() {
        assert_eq!(
            parse_url("http://127.0.0.1:9000/a/b?x=1").unwrap(),
            Target { host: "127.0.0.1".into(), port: 9000, path: "/a/b?x=1".into() }
        );
        assert_eq!(parse_url("http://example.com").unwrap().port, 80);
        assert!(parse_url("https://example.com").unwrap_err().contains("TLS"));
        assert!(parse_url("ftp://x").is_err());
    }
}
