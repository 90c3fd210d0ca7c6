//! A minimal HTTP/1.1 client for the `http` rule action: one POST per connection, `http://`
//! URLs only (TLS arrives with the identity issue). It exists to keep a full HTTP client stack
//! out of the node for one request shape.

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
    let work = async {
        let mut stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", target.host, target.port))?;
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: ferrite-rules\r\n",
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
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 256];
        while !head.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).await.map_err(|e| format!("no response: {e}"))?;
            if n == 0 || head.len() > 8192 {
                return Err("connection closed before a status line".into());
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
        status.ok_or_else(|| format!("malformed status line {:?}", line.lines().next().unwrap_or("")))
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| format!("no response within {} ms", timeout.as_millis()))?
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
