//! The byte relay between an HTTPS client and the node's HTTP listener, with the time limits
//! a plain `copy_bidirectional` lacks: a connection on which nothing moves is closed, and
//! once one side has finished the other gets only a short grace to finish too.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Nothing moved either way for this long: the relay ends. The HTTP listener answers every
/// request well within it and closes idle keep-alive connections sooner.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// After one side ended, how long the other may still send.
pub const HALF_CLOSED_GRACE: Duration = Duration::from_secs(5);

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both sides finished.
    Finished,
    /// Nothing moved within the idle timeout, or a side would not take its bytes in time.
    Idle,
    /// One side finished and the other did not within the grace.
    HalfClosed,
    /// A read or write failed.
    Failed,
}

/// Copies bytes both ways between `client` and `upstream` until both finish or a limit ends it.
pub async fn relay<C, U>(client: C, upstream: U, idle: Duration) -> Outcome
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut up_r, mut up_w) = tokio::io::split(upstream);
    let (mut from_client, mut from_up) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut client_open, mut up_open) = (true, true);
    while client_open || up_open {
        let wait = if client_open && up_open { idle } else { HALF_CLOSED_GRACE.min(idle) };
        tokio::select! {
            r = client_r.read(&mut from_client), if client_open => match r {
                Ok(0) | Err(_) => {
                    client_open = false;
                    let _ = up_w.shutdown().await;
                }
                Ok(n) => {
                    if !matches!(tokio::time::timeout(idle, up_w.write_all(&from_client[..n])).await, Ok(Ok(()))) {
                        return Outcome::Failed;
                    }
                }
            },
            r = up_r.read(&mut from_up), if up_open => match r {
                Ok(0) | Err(_) => {
                    up_open = false;
                    let _ = tokio::time::timeout(HALF_CLOSED_GRACE, client_w.shutdown()).await;
                }
                Ok(n) => match tokio::time::timeout(idle, client_w.write_all(&from_up[..n])).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Outcome::Failed,
                    Err(_) => return Outcome::Idle,
                },
            },
            _ = tokio::time::sleep(wait) => {
                return if client_open && up_open { Outcome::Idle } else { Outcome::HalfClosed };
            }
        }
    }
    Outcome::Finished
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_cross_both_ways_and_the_relay_finishes_when_both_sides_do() {
        let (client, mut client_peer) = tokio::io::duplex(1024);
        let (upstream, mut upstream_peer) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(client, upstream, Duration::from_secs(5)));
        client_peer.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut got = [0u8; 18];
        upstream_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1\r\n\r\n");
        upstream_peer.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        upstream_peer.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client_peer.shutdown().await.unwrap();
        client_peer.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(relay.await.unwrap(), Outcome::Finished);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_ended_at_the_idle_timeout() {
        let (client, _client_peer) = tokio::io::duplex(1024);
        let (upstream, _upstream_peer) = tokio::io::duplex(1024);
        assert_eq!(relay(client, upstream, Duration::from_secs(60)).await, Outcome::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_finishes_after_the_upstream_did_gets_only_the_grace() {
        let (client, _client_peer) = tokio::io::duplex(1024);
        let (upstream, upstream_peer) = tokio::io::duplex(1024);
        drop(upstream_peer);
        let started = tokio::time::Instant::now();
        assert_eq!(relay(client, upstream, Duration::from_secs(60)).await, Outcome::HalfClosed);
        assert!(started.elapsed() <= HALF_CLOSED_GRACE + Duration::from_millis(10));
    }
}
