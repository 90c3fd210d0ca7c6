//! Network listeners: MQTT over TCP and over WebSocket. Accepted sockets are handed
//! round-robin to one actix arbiter per worker thread, where their connection actor
//! lives for its whole life.

pub mod admission;
pub mod auth;
pub mod backlog;
pub mod connection;
pub mod decide;
pub mod framing;
mod proxy;
mod websocket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Arbiter;
use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::services::Services;
use auth::ListenerAuth;
use connection::Connection;

/// The worker arbiters connections are spread over.
pub struct Workers {
    arbiters: Vec<Arbiter>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `n` arbiters (threads with their own event loop).
    pub fn start(n: usize) -> Arc<Workers> {
        Arc::new(Workers { arbiters: (0..n.max(1)).map(|_| Arbiter::new()).collect(), next: AtomicUsize::new(0) })
    }

    fn pick(&self) -> actix::ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        self.arbiters[i].handle()
    }
}

/// Takes over a socket bound before the runtime started (the node binds every listener
/// first, so that a taken port refuses the start before anything else happens).
pub fn adopt(socket: std::net::TcpListener) -> anyhow::Result<TcpListener> {
    socket.set_nonblocking(true).context("cannot make a listening socket non-blocking")?;
    TcpListener::from_std(socket).context("cannot hand a listening socket to the runtime")
}

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a connection came from and what it proved in the handshake.
#[derive(Debug)]
pub struct Origin {
    /// The client's address.
    pub peer: SocketAddr,
    /// `tcp`, `websocket`, `tls`, `wss`: named in logs.
    pub transport: &'static str,
    /// How the listener authenticates.
    pub auth: Arc<ListenerAuth>,
    /// The client certificate (DER) the TLS handshake verified possession of.
    pub client_cert: Option<Arc<[u8]>>,
    /// A WebSocket upgrade presigned with SigV4: the access key that signed it, or why its
    /// signature is refused.
    pub presigned: Option<Result<String, String>>,
    /// When the socket was accepted: the CONNECT deadline counts from here.
    pub accepted: std::time::Instant,
    /// The socket's place in its listener's count.
    pub slot: admission::Slot,
}

/// One device listener's place in the node: its socket, the workers its connections run on,
/// and the counts that bound how many sockets it holds.
pub struct Listener {
    /// The bound socket.
    pub socket: TcpListener,
    /// The worker arbiters.
    pub workers: Arc<Workers>,
    /// The shared socket counts.
    pub admission: Arc<admission::Admission>,
    /// Index into [`admission::LISTENERS`].
    pub index: usize,
}

/// An accepted socket that was admitted.
struct Accepted {
    stream: tokio::net::TcpStream,
    arrival: Arrival,
}

/// Where and when an admitted socket came from, and its place in its listener's count.
struct Arrival {
    peer: SocketAddr,
    at: std::time::Instant,
    slot: admission::Slot,
}

impl Arrival {
    /// The connection's [`Origin`] once its transport is set up.
    fn origin(self, transport: &'static str, auth: Arc<ListenerAuth>, client_cert: Option<Arc<[u8]>>) -> Origin {
        Origin { peer: self.peer, transport, auth, client_cert, presigned: None, accepted: self.at, slot: self.slot }
    }
}

/// How long an accept loop pauses after a failed accept (out of descriptors, usually) before
/// trying again; other listeners are separate tasks and go on accepting meanwhile.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// Accepts sockets forever and runs `handle` for each admitted one on a worker arbiter.
async fn accept_loop<F, Fut>(listener: Listener, handle: F)
where
    F: Fn(Accepted) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let Listener { socket, workers, admission, index } = listener;
    let name = admission::LISTENERS[index];
    let mut failures = admission::LogEvery::default();
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(x) => x,
            Err(e) => {
                admission.metrics().accept_failures_total.inc();
                if let Some(failures) = failures.note() {
                    tracing::warn!(listener = name, error = %e, failures, "accept failed; retrying (other listeners are unaffected)");
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let Ok(slot) = admission.admit(index) else {
            // Closed at once, so the kernel's backlog drains (refused and logged by `admit`).
            drop(stream);
            continue;
        };
        let at = std::time::Instant::now();
        let _ = stream.set_nodelay(true);
        let Ok(std_stream) = stream.into_std() else { continue };
        let handle = handle.clone();
        workers.pick().spawn_fn(move || {
            // Re-register the socket with this arbiter's reactor.
            match tokio::net::TcpStream::from_std(std_stream) {
                Ok(stream) => {
                    actix_rt::spawn(handle(Accepted { stream, arrival: Arrival { peer, at, slot } }));
                }
                Err(e) => tracing::warn!(error = %e, "cannot adopt accepted socket"),
            }
        });
    }
}

/// Accepts MQTT over TCP forever.
pub async fn serve_mqtt(listener: Listener, services: Arc<Services>, auth: Arc<ListenerAuth>) {
    accept_loop(listener, move |a: Accepted| {
        let (services, auth) = (services.clone(), auth.clone());
        async move {
            let (r, w) = a.stream.into_split();
            Connection::start(services, r, w, a.arrival.origin("tcp", auth, None));
        }
    })
    .await
}

/// Accepts MQTT over WebSocket (path `/mqtt`, subprotocol `mqtt`) forever.
pub async fn serve_ws(listener: Listener, services: Arc<Services>, auth: Arc<ListenerAuth>) {
    accept_loop(listener, move |a: Accepted| {
        let origin = a.arrival.origin("websocket", auth.clone(), None);
        websocket::accept(a.stream, origin, services.clone())
    })
    .await
}

/// Runs the TLS handshake; the stream and the client certificate, or `None` (logged).
async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Option<(tokio_rustls::server::TlsStream<tokio::net::TcpStream>, Option<Arc<[u8]>>)> {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| Arc::from(c.as_ref()));
            Some((tls, cert))
        }
        Ok(Err(e)) => {
            tracing::info!(peer = %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(peer = %peer, "TLS handshake timed out");
            None
        }
    }
}

/// Accepts MQTT over TLS forever (client certificates; ALPN `x-amzn-mqtt-ca` accepted).
pub async fn serve_mqtts(
    listener: Listener,
    services: Arc<Services>,
    config: Arc<rustls::ServerConfig>,
    auth: Arc<ListenerAuth>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    accept_loop(listener, move |a: Accepted| {
        let (services, acceptor, auth) = (services.clone(), acceptor.clone(), auth.clone());
        async move {
            let Some((tls, client_cert)) = handshake(acceptor, a.stream, a.arrival.peer).await else { return };
            let (r, w) = tokio::io::split(tls);
            Connection::start(services, r, w, a.arrival.origin("tls", auth, client_cert));
        }
    })
    .await
}

/// Accepts MQTT over secure WebSocket forever.
pub async fn serve_wss(
    listener: Listener,
    services: Arc<Services>,
    config: Arc<rustls::ServerConfig>,
    auth: Arc<ListenerAuth>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    accept_loop(listener, move |a: Accepted| {
        let (services, acceptor, auth) = (services.clone(), acceptor.clone(), auth.clone());
        async move {
            let Some((tls, client_cert)) = handshake(acceptor, a.stream, a.arrival.peer).await else { return };
            websocket::accept(tls, a.arrival.origin("wss", auth, client_cert), services).await;
        }
    })
    .await
}

/// Accepts HTTPS forever, AWS's port-443 style: a client that negotiates ALPN
/// `x-amzn-mqtt-ca` speaks MQTT with its client certificate, one that negotiates `mqtt`
/// speaks MQTT with custom authentication (the listener's methods decide); everything else is HTTP,
/// passed to the node's HTTP listener at `http` (the API authenticates with SigV4, not
/// with the TLS client certificate).
pub async fn serve_https(
    listener: Listener,
    services: Arc<Services>,
    config: Arc<rustls::ServerConfig>,
    auth: Arc<ListenerAuth>,
    http: SocketAddr,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    accept_loop(listener, move |a: Accepted| {
        let (services, acceptor, auth) = (services.clone(), acceptor.clone(), auth.clone());
        async move {
            let Some((tls, client_cert)) = handshake(acceptor, a.stream, a.arrival.peer).await else { return };
            let alpn = tls.get_ref().1.alpn_protocol();
            if alpn == Some(crate::identity::tls::ALPN_MQTT_CA) || alpn == Some(crate::identity::tls::ALPN_MQTT) {
                let (r, w) = tokio::io::split(tls);
                return Connection::start(services, r, w, a.arrival.origin("tls", auth, client_cert));
            }
            match tokio::net::TcpStream::connect(http).await {
                Ok(upstream) => {
                    let outcome = proxy::relay(tls, upstream, proxy::IDLE_TIMEOUT).await;
                    tracing::debug!(peer = %a.arrival.peer, ?outcome, "HTTPS relay ended");
                }
                Err(e) => tracing::warn!(error = %e, "cannot reach the HTTP listener for an HTTPS client"),
            }
            // The slot is held until the relay ends.
            drop(a.arrival);
        }
    })
    .await
}
