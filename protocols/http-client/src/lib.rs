//! Ferrite's outbound HTTP client, for the `http` rule action, custom authorizers and the
//! tools that call a node's API ([`api`]): one request per connection over HTTP/1.1, to `http://` or `https://` URLs. hyper reads and writes
//! the messages (chunked, length-delimited and close-delimited bodies); rustls with the ring
//! provider does TLS, as everywhere else in the node. Each call opens its own connection and
//! closes it after the answer: rule actions and authorizer calls are rare enough per endpoint
//! that a pool would add state without saving much.

pub mod api;

use std::error::Error as StdError;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::rt::{Read, Write};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where to send: scheme, host, port and path of an `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Whether the URL is `https://`, so the connection is TLS.
    pub tls: bool,
    /// Host name or address; an IPv6 address is kept without its brackets.
    pub host: String,
    /// TCP port (80 for `http://`, 443 for `https://` when the URL has none).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Target {
    /// `host[:port]` as the `Host` header and messages write it: IPv6 in brackets, the port
    /// left out when it is the scheme's default.
    fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Splits an `http://` or `https://` URL into where to connect and what to ask for; other
/// schemes, and URLs with credentials in them, are refused with the reason.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let uri: Uri = url.parse().map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("not an http:// or https:// URL: {url}")),
    };
    let authority = uri.authority().ok_or_else(|| format!("no host in {url}"))?;
    if authority.as_str().contains('@') {
        return Err(format!("credentials in the URL are not supported (send them in a header): {url}"));
    }
    let host = authority.host();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    // The port as written (after an IPv6 literal's `]`), parsed here: `Uri` reads a port that
    // does not fit in 16 bits as no port at all.
    let after_host = authority.as_str().rsplit_once(']').map_or(authority.as_str(), |(_, rest)| rest);
    let port = match after_host.rsplit_once(':') {
        Some((_, port)) => port.parse::<u16>().map_err(|_| format!("invalid port in {url}"))?,
        None if tls => 443,
        None => 80,
    };
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        Some(p) if p.starts_with('/') => p.to_string(),
        Some(p) => format!("/{p}"),
        None => "/".to_string(),
    };
    Ok(Target { tls, host: host.to_string(), port, path })
}

/// POSTs `body` and returns the response status code (the response body is not read).
pub async fn post(
    target: &Target,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<u16, String> {
    let request = build_request(Method::POST, target, headers, content_type, body)?;
    Client::shared().exchange(target, request, timeout, false).await.map(|(status, _)| status)
}

/// Most response body [`post_for_body`] reads.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// POSTs `body` and returns the response status code and body (chunked, `Content-Length` or
/// read until the server closes; at most [`MAX_RESPONSE_BODY`] bytes, more is an error).
pub async fn post_for_body(
    target: &Target,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let request = build_request(Method::POST, target, &[], content_type, body)?;
    Client::shared().exchange(target, request, timeout, true).await
}

/// One exchange of any method with JSON in and the answer's body out (at most
/// [`MAX_RESPONSE_BODY`] bytes): [`api::request`] talks to nodes with it.
pub async fn call(
    method: &str,
    target: &Target,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| format!("invalid method {method:?}"))?;
    let request = build_request(method, target, headers, "application/json", body)?;
    Client::shared().exchange(target, request, timeout, true).await
}

/// The TLS settings every request shares, built once.
#[derive(Clone)]
struct Client {
    tls: TlsConnector,
}

impl Client {
    /// The process-wide client, trusting the webpki-roots set.
    fn shared() -> &'static Client {
        static SHARED: OnceLock<Client> = OnceLock::new();
        // webpki-roots (Mozilla's CA set compiled in) rather than the OS store: the node then
        // trusts the same CAs on every host and in minimal container images that ship no CA
        // bundle, and starts without reading platform certificate files.
        SHARED.get_or_init(|| Client::with_roots(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }))
    }

    /// A client trusting exactly `roots` (tests add their own self-signed CA this way).
    fn with_roots(roots: RootCertStore) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Client { tls: TlsConnector::from(Arc::new(config)) }
    }

    /// Connects, sends `request` and reads the answer (its body too when `want_body`), all
    /// within `timeout`.
    async fn exchange(
        &self,
        target: &Target,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        want_body: bool,
    ) -> Result<(u16, Vec<u8>), String> {
        let work = async {
            let tcp = TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", target.authority()))?;
            if !target.tls {
                return send(TokioIo::new(tcp), request, want_body).await;
            }
            let name = ServerName::try_from(target.host.clone())
                .map_err(|_| format!("{:?} is not a valid TLS server name", target.host))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {} failed: {}", target.authority(), chain(&e)))?;
            send(TokioIo::new(tls), request, want_body).await
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| format!("no response within {} ms", timeout.as_millis()))?
    }
}

/// The request: defaults first, then the caller's headers, each of which replaces a default
/// of the same name (a repeated name adds values). Framing headers are the client's to set.
fn build_request(
    method: Method,
    target: &Target,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
) -> Result<Request<Full<Bytes>>, String> {
    let mut map = HeaderMap::new();
    let value = |v: &str| HeaderValue::from_str(v).map_err(|_| format!("invalid header value {v:?}"));
    map.insert(header::HOST, value(&target.authority())?);
    map.insert(header::CONTENT_TYPE, value(content_type)?);
    map.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    map.insert(header::CONNECTION, HeaderValue::from_static("close"));
    map.insert(header::USER_AGENT, HeaderValue::from_static("ferrite"));
    let mut set_by_caller: Vec<HeaderName> = Vec::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header {k:?}"))?;
        let value = HeaderValue::from_bytes(v.as_bytes()).map_err(|_| format!("invalid header {k:?}"))?;
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            return Err(format!("header {k:?} is set by the client from the body"));
        }
        if set_by_caller.contains(&name) {
            map.append(name, value);
        } else {
            map.insert(name.clone(), value);
            set_by_caller.push(name);
        }
    }
    let mut request = Request::builder()
        .method(method)
        .uri(target.path.as_str())
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| format!("invalid request path {:?}: {e}", target.path))?;
    *request.headers_mut() = map;
    Ok(request)
}

/// Runs one HTTP/1.1 exchange over an open connection.
async fn send<T>(io: T, request: Request<Full<Bytes>>, want_body: bool) -> Result<(u16, Vec<u8>), String>
where
    T: Read + Write + Unpin + Send + 'static,
{
    // Title case ("Content-Type") as most HTTP/1.1 clients write it, for receivers that
    // compare header names case-sensitively.
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(io)
        .await
        .map_err(|e| format!("send failed: {}", chain(&e)))?;
    let exchange = async move {
        let response = sender.send_request(request).await.map_err(|e| format!("no response: {}", chain(&e)))?;
        let status = response.status().as_u16();
        if !want_body {
            return Ok((status, Vec::new()));
        }
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BODY).collect().await.map_err(|e| {
            if e.is::<LengthLimitError>() {
                format!("response body larger than {MAX_RESPONSE_BODY} bytes")
            } else {
                format!("response cut short: {}", chain(&*e))
            }
        })?;
        Ok((status, body.to_bytes().to_vec()))
    };
    // The connection future moves the bytes; it ends when the server closes or fails. What it
    // delivered before ending is buffered for the exchange, which then finishes or reports
    // the failure, so it is awaited either way.
    let mut exchange = std::pin::pin!(exchange);
    tokio::select! {
        result = &mut exchange => result,
        _ = connection => exchange.await,
    }
}

/// An error and its causes, `outer: inner: ...` (hyper's and rustls's top-level messages
/// alone rarely say what went wrong).
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    const SECOND: Duration = Duration::from_secs(5);

    #[test]
    fn parses_http_and_https_urls_and_refuses_others() {
        assert_eq!(
            parse_url("http://127.0.0.1:9000/a/b?x=1").unwrap(),
            Target { tls: false, host: "127.0.0.1".into(), port: 9000, path: "/a/b?x=1".into() }
        );
        assert_eq!(parse_url("http://example.com").unwrap().port, 80);
        assert_eq!(parse_url("http://example.com").unwrap().path, "/");
        assert_eq!(parse_url("http://example.com?q=1").unwrap().path, "/?q=1");
        assert_eq!(
            parse_url("https://example.com/hook").unwrap(),
            Target { tls: true, host: "example.com".into(), port: 443, path: "/hook".into() }
        );
        assert_eq!(
            parse_url("http://[::1]:8080/x").unwrap(),
            Target { tls: false, host: "::1".into(), port: 8080, path: "/x".into() }
        );
        assert_eq!(parse_url("https://[2001:db8::1]/").unwrap().port, 443);
        assert!(parse_url("ftp://x").unwrap_err().contains("not an http"));
        assert!(parse_url("example.com/x").is_err());
        assert!(parse_url("http://").is_err());
        assert!(parse_url("http://h:99999/").is_err());
        assert!(parse_url("http://h:/").unwrap_err().contains("port"));
        assert!(parse_url("http://user:pw@h/").unwrap_err().contains("credentials"));
        assert!(parse_url("http://h/a b").is_err());
    }

    #[test]
    fn host_header_brackets_ipv6_and_omits_default_ports() {
        assert_eq!(parse_url("http://[::1]:8080/").unwrap().authority(), "[::1]:8080");
        assert_eq!(parse_url("https://[::1]/").unwrap().authority(), "[::1]");
        assert_eq!(parse_url("http://h:443/").unwrap().authority(), "h:443");
        assert_eq!(parse_url("https://h:443/").unwrap().authority(), "h");
    }

    /// Reads one request (head, then `Content-Length` bytes of body) and returns it.
    async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> String {
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.expect("test server reads");
            assert!(n > 0, "client closed before a full request: {:?}", String::from_utf8_lossy(&request));
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    return text;
                }
            }
        }
    }

    /// Answers one request with `response` (written as given) and closes; returns the request.
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, response: &[u8]) -> String {
        let request = read_request(&mut stream).await;
        stream.write_all(response).await.expect("test server writes");
        stream.shutdown().await.ok();
        request
    }

    /// A plain HTTP server on `addr` that answers one request with `response`.
    async fn serve_once(addr: &str, response: &'static [u8]) -> (u16, JoinHandle<String>) {
        let listener = TcpListener::bind(addr).await.expect("bind test server");
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            answer(stream, response).await
        });
        (port, task)
    }

    fn target(port: u16, path: &str) -> Target {
        parse_url(&format!("http://127.0.0.1:{port}{path}")).unwrap()
    }

    #[tokio::test]
    async fn post_sends_body_and_headers_and_returns_status() {
        let (port, server) = serve_once("127.0.0.1:0", b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok").await;
        let headers = vec![("X-Rule".to_string(), "r1".to_string())];
        let status =
            post(&target(port, "/hook?a=1"), &headers, "application/json", br#"{"t":1}"#, SECOND).await.unwrap();
        assert_eq!(status, 201);
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /hook?a=1 HTTP/1.1\r\n"), "{request}");
        assert!(request.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")), "{request}");
        assert!(request.contains("\r\nContent-Type: application/json\r\n"), "{request}");
        assert!(request.contains("\r\nContent-Length: 7\r\n"), "{request}");
        assert!(request.contains("\r\nUser-Agent: ferrite\r\n"), "{request}");
        assert!(request.contains("\r\nX-Rule: r1\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n{\"t\":1}"), "{request}");
    }

    #[tokio::test]
    async fn caller_headers_replace_defaults_and_framing_headers_are_refused() {
        let (port, server) = serve_once("127.0.0.1:0", b"HTTP/1.1 204 No Content\r\n\r\n").await;
        let headers = vec![("Content-Type".to_string(), "text/plain".to_string())];
        assert_eq!(post(&target(port, "/"), &headers, "application/json", b"x", SECOND).await.unwrap(), 204);
        let request = server.await.unwrap();
        assert_eq!(request.matches("Content-Type:").count(), 1, "{request}");
        assert!(request.contains("\r\nContent-Type: text/plain\r\n"), "{request}");

        let t = target(1, "/");
        let framing = vec![("Content-Length".to_string(), "1".to_string())];
        assert!(post(&t, &framing, "a/b", b"", SECOND).await.unwrap_err().contains("set by the client"));
        let split = vec![("X-A".to_string(), "1\r\nX-B: 2".to_string())];
        assert_eq!(post(&t, &split, "a/b", b"", SECOND).await.unwrap_err(), "invalid header \"X-A\"");
        let colon = vec![("X:A".to_string(), "1".to_string())];
        assert_eq!(post(&t, &colon, "a/b", b"", SECOND).await.unwrap_err(), "invalid header \"X:A\"");
    }

    #[tokio::test]
    async fn reads_a_content_length_body() {
        let (port, _server) =
            serve_once("127.0.0.1:0", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello")
                .await;
        let (status, body) = post_for_body(&target(port, "/"), "application/json", b"{}", SECOND).await.unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
    }

    #[tokio::test]
    async fn reads_a_chunked_body() {
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            7\r\n{\"isAut\r\n12\r\nhenticated\":false}\r\n0\r\n\r\n";
        let (port, _server) = serve_once("127.0.0.1:0", response).await;
        let (status, body) = post_for_body(&target(port, "/"), "application/json", b"{}", SECOND).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(String::from_utf8(body).unwrap(), r#"{"isAuthenticated":false}"#);
    }

    #[tokio::test]
    async fn reads_a_body_until_the_server_closes() {
        let (port, _server) =
            serve_once("127.0.0.1:0", b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close").await;
        let (_, body) = post_for_body(&target(port, "/"), "application/json", b"{}", SECOND).await.unwrap();
        assert_eq!(body, b"until close");
    }

    #[tokio::test]
    async fn a_truncated_chunked_body_is_an_error() {
        let (port, _server) =
            serve_once("127.0.0.1:0", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort").await;
        let err = post_for_body(&target(port, "/"), "application/json", b"{}", SECOND).await.unwrap_err();
        assert!(err.starts_with("response cut short"), "{err}");
    }

    #[tokio::test]
    async fn a_body_over_the_bound_is_refused() {
        static BIG: OnceLock<Vec<u8>> = OnceLock::new();
        let big = BIG.get_or_init(|| {
            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_RESPONSE_BODY + 1).into_bytes();
            r.resize(r.len() + MAX_RESPONSE_BODY + 1, b'a');
            r
        });
        let (port, _server) = serve_once("127.0.0.1:0", big).await;
        let err = post_for_body(&target(port, "/"), "application/json", b"{}", SECOND).await.unwrap_err();
        assert_eq!(err, format!("response body larger than {MAX_RESPONSE_BODY} bytes"));

        static CHUNKED: OnceLock<Vec<u8>> = OnceLock::new();
        let chunked = CHUNKED.get_or_init(|| {
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..=MAX_RESPONSE_BODY / 1024 {
                r.extend_from_slice(b"400\r\n");
                r.resize(r.len() + 1024, b'b');
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        });
        let (port, _server) = serve_once("127.0.0.1:0", chunked).await;
        let err = post_for_body(&target(port, "/"), "application/json", b"{}", SECOND).await.unwrap_err();
        assert_eq!(err, format!("response body larger than {MAX_RESPONSE_BODY} bytes"));

        let exact = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let (port, _server) = serve_once("127.0.0.1:0", exact).await;
        assert!(post_for_body(&target(port, "/"), "application/json", b"{}", SECOND).await.is_ok());
    }

    #[tokio::test]
    async fn reaches_an_ipv6_literal_host() {
        let Ok(listener) = TcpListener::bind("[::1]:0").await else {
            eprintln!("skipped: this host has no IPv6 loopback");
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            answer(stream, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nv6ok").await
        });
        let t = parse_url(&format!("http://[::1]:{port}/six")).unwrap();
        let (status, body) = post_for_body(&t, "application/json", b"{}", SECOND).await.unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"v6ok"[..]));
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /six HTTP/1.1\r\n"), "{request}");
        assert!(request.contains(&format!("\r\nHost: [::1]:{port}\r\n")), "{request}");
    }

    #[tokio::test]
    async fn connection_refused_is_reported() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = post(&target(port, "/"), &[], "a/b", b"", SECOND).await.unwrap_err();
        assert!(err.starts_with(&format!("cannot connect to 127.0.0.1:{port}")), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        });
        let err =
            post_for_body(&target(port, "/"), "application/json", b"{}", Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(err, "no response within 200 ms");
    }

    #[tokio::test]
    async fn a_non_http_answer_is_an_error() {
        let (port, _server) = serve_once("127.0.0.1:0", b"SSH-2.0-OpenSSH\r\n\r\n").await;
        let err = post(&target(port, "/"), &[], "a/b", b"", SECOND).await.unwrap_err();
        assert!(err.starts_with("no response"), "{err}");
    }

    /// A self-signed certificate for `names` and a TLS acceptor that presents it.
    fn tls_server(names: &[&str]) -> (CertificateDer<'static>, tokio_rustls::TlsAcceptor) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names).expect("self-signed certificate");
        let cert = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("server certificate");
        (cert, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// A TLS server that answers one request with `response`; returns its port.
    async fn serve_tls_once(acceptor: tokio_rustls::TlsAcceptor, response: &'static [u8]) -> (u16, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            match acceptor.accept(tcp).await {
                Ok(tls) => answer(tls, response).await,
                Err(e) => format!("handshake failed: {e}"),
            }
        });
        (port, task)
    }

    fn trusting(cert: CertificateDer<'static>) -> Client {
        let mut roots = RootCertStore::empty();
        roots.add(cert).expect("test root");
        Client::with_roots(roots)
    }

    #[tokio::test]
    async fn https_reaches_a_server_the_roots_trust() {
        let (cert, acceptor) = tls_server(&["localhost", "127.0.0.1"]);
        let client = trusting(cert);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nover \r\n3\r\ntls\r\n0\r\n\r\n";
        for host in ["localhost", "127.0.0.1"] {
            let (port, server) = serve_tls_once(acceptor.clone(), chunked).await;
            let t = parse_url(&format!("https://{host}:{port}/secure")).unwrap();
            let (status, body) = client
                .exchange(&t, build_request(Method::POST, &t, &[], "application/json", b"{}").unwrap(), SECOND, true)
                .await
                .unwrap();
            assert_eq!((status, body.as_slice()), (200, &b"over tls"[..]), "{host}");
            let request = server.await.unwrap();
            assert!(request.starts_with("POST /secure HTTP/1.1\r\n"), "{request}");
            assert!(request.contains(&format!("\r\nHost: {host}:{port}\r\n")), "{request}");
        }
    }

    #[tokio::test]
    async fn https_refuses_an_untrusted_or_misnamed_certificate() {
        let (cert, acceptor) = tls_server(&["localhost"]);
        let (port, _server) = serve_tls_once(acceptor.clone(), b"HTTP/1.1 200 OK\r\n\r\n").await;
        let t = parse_url(&format!("https://localhost:{port}/")).unwrap();
        let err = post(&t, &[], "a/b", b"", SECOND).await.unwrap_err();
        assert!(err.starts_with(&format!("TLS handshake with localhost:{port} failed")), "{err}");
        assert!(err.contains("UnknownIssuer"), "{err}");

        let (port, _server) = serve_tls_once(acceptor, b"HTTP/1.1 200 OK\r\n\r\n").await;
        let t = parse_url(&format!("https://127.0.0.1:{port}/")).unwrap();
        let err = trusting(cert)
            .exchange(&t, build_request(Method::POST, &t, &[], "a/b", b"").unwrap(), SECOND, false)
            .await
            .unwrap_err();
        assert!(err.contains("not valid for name"), "{err}");
    }
}
