//! How many bytes a connection has handed to its socket writer that the socket has not taken
//! yet. The actor's writer buffers without a bound and does not say how much it holds, so
//! the socket is wrapped in [`Counted`], which counts what the kernel accepted; the
//! connection counts what it handed over. The difference bounds what one slow or stalled
//! client can make the node hold.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;

/// A socket's write half that counts the bytes it accepted, and shuts down its write side
/// once everything is flushed after [`Backlog::shut_down_when_flushed`].
pub struct Counted<W> {
    inner: W,
    accepted: Rc<Cell<u64>>,
    shut_down: Rc<Cell<bool>>,
}

impl<W> Counted<W> {
    /// Wraps `inner`, sharing the counters of `backlog`.
    pub fn new(inner: W, backlog: &Backlog) -> Counted<W> {
        Counted { inner, accepted: backlog.accepted.clone(), shut_down: backlog.shut_down.clone() }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counted<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.accepted.set(self.accepted.get() + n as u64);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        if !matches!(flushed, Poll::Ready(Ok(()))) || !self.shut_down.get() {
            return flushed;
        }
        // The last packet is out: the peer reads it, then end of stream (not a reset).
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection's side of the count.
#[derive(Debug)]
pub struct Backlog {
    handed: u64,
    accepted: Rc<Cell<u64>>,
    shut_down: Rc<Cell<bool>>,
    /// What the socket had accepted when last seen, and when that changed.
    progress: (u64, Instant),
}

impl Default for Backlog {
    /// A backlog of nothing; give it to the socket's [`Counted`].
    fn default() -> Backlog {
        Backlog {
            handed: 0,
            accepted: Rc::new(Cell::new(0)),
            shut_down: Rc::new(Cell::new(false)),
            progress: (0, Instant::now()),
        }
    }
}

impl Backlog {
    /// Once what is written is flushed, the socket's write side is shut down.
    pub fn shut_down_when_flushed(&self) {
        self.shut_down.set(true);
    }

    /// `n` more bytes were handed to the writer.
    pub fn handed(&mut self, n: usize) {
        self.handed += n as u64;
    }

    /// Bytes handed over that the socket has not taken.
    pub fn bytes(&self) -> u64 {
        self.handed.saturating_sub(self.accepted.get())
    }

    /// How long the socket has taken nothing while bytes were waiting (zero when it is
    /// keeping up).
    pub fn stalled_for(&mut self, now: Instant) -> Duration {
        let accepted = self.accepted.get();
        if accepted != self.progress.0 || self.bytes() == 0 {
            self.progress = (accepted, now);
        }
        now.saturating_duration_since(self.progress.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test(flavor = "current_thread")]
    async fn counts_what_the_socket_takes() {
        let start = Instant::now();
        let mut backlog = Backlog::default();
        let (client, mut server) = tokio::io::duplex(8);
        let mut w = Counted::new(client, &backlog);
        backlog.handed(20);
        assert_eq!(backlog.bytes(), 20);
        assert_eq!(backlog.stalled_for(start), Duration::ZERO);
        w.write_all(&[7; 8]).await.unwrap(); // the duplex buffer holds 8
        assert_eq!(backlog.bytes(), 12);
        let later = start + Duration::from_secs(3);
        assert_eq!(backlog.stalled_for(later), Duration::ZERO, "progress since last look");
        assert_eq!(backlog.stalled_for(later + Duration::from_secs(2)), Duration::from_secs(2));
        let mut sink = [0; 8];
        tokio::io::AsyncReadExt::read_exact(&mut server, &mut sink).await.unwrap();
        w.write_all(&[7; 8]).await.unwrap();
        assert_eq!(backlog.bytes(), 4);
        tokio::io::AsyncReadExt::read_exact(&mut server, &mut sink).await.unwrap();
        backlog.shut_down_when_flushed();
        w.flush().await.unwrap();
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut rest).await.unwrap();
        assert!(rest.is_empty(), "end of stream after the flush");
    }
}
