//! Network listeners: MQTT over TCP and over WebSocket. Accepted sockets are handed
//! round-robin to one actix arbiter per worker thread, where their connection actor
//! lives for its whole life.

pub mod connection;
pub mod framing;
mod websocket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Arbiter;
use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::broker::Broker;
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

/// Binds a TCP listener, with a message that names the address on failure.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// Accepts MQTT over TCP forever.
pub async fn serve_mqtt(listener: TcpListener, broker: Arc<Broker>, workers: Arc<Workers>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(std_stream) = stream.into_std() else { continue };
        let broker = broker.clone();
        workers.pick().spawn_fn(move || {
            // Re-register the socket with this arbiter's reactor.
            match tokio::net::TcpStream::from_std(std_stream) {
                Ok(stream) => {
                    let (r, w) = stream.into_split();
                    Connection::start(broker, r, w, peer, "tcp");
                }
                Err(e) => tracing::warn!(error = %e, "cannot adopt accepted socket"),
            }
        });
    }
}

/// Accepts MQTT over WebSocket (path `/mqtt`, subprotocol `mqtt`) forever.
pub async fn serve_ws(listener: TcpListener, broker: Arc<Broker>, workers: Arc<Workers>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(std_stream) = stream.into_std() else { continue };
        let broker = broker.clone();
        workers.pick().spawn_fn(move || {
            if let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) {
                actix_rt::spawn(websocket::accept(stream, peer, broker));
            }
        });
    }
}
