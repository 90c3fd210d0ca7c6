//! Where a peer's QUIC endpoint is: `HOST:PORT`, with an IP address or a host name. A name
//! is resolved each time the node dials, so a peer whose address changes (a container
//! restarted by Docker or Kubernetes) is found again under the same name.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A peer's address as configured: host (IP literal or DNS name) and port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerAddress {
    host: String,
    port: u16,
}

impl PeerAddress {
    /// Resolves the address now (a DNS lookup for a name), first answer first.
    pub async fn resolve(&self) -> std::io::Result<SocketAddr> {
        let mut found =
            tokio::net::lookup_host((self.host.trim_start_matches('[').trim_end_matches(']'), self.port)).await?;
        found.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} resolves to no address", self.host))
        })
    }

    /// The IP address, when the host is one (no lookup needed).
    pub fn ip(&self) -> Option<SocketAddr> {
        self.to_string().parse().ok()
    }
}

impl From<SocketAddr> for PeerAddress {
    fn from(addr: SocketAddr) -> PeerAddress {
        let host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        PeerAddress { host, port: addr.port() }
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Why a text is not `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not HOST:PORT (e.g. node2:7000, 10.0.0.2:7000 or [::1]:7000)")]
pub struct BadAddress(pub String);

impl FromStr for PeerAddress {
    type Err = BadAddress;

    fn from_str(text: &str) -> Result<PeerAddress, BadAddress> {
        let bad = || BadAddress(text.to_string());
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(addr.into());
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !name_ok || port == 0 {
            return Err(bad());
        }
        Ok(PeerAddress { host: host.to_ascii_lowercase(), port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_and_names_parse_and_print_back() {
        for text in ["10.0.0.2:7000", "[::1]:7000", "node2:7000", "ferrite-1.ferrite.svc.cluster.local:7000"] {
            let a: PeerAddress = text.parse().expect(text);
            assert_eq!(a.to_string(), text);
        }
        assert_eq!("10.0.0.2:7000".parse::<PeerAddress>().unwrap().ip(), Some("10.0.0.2:7000".parse().unwrap()));
        assert_eq!("node2:7000".parse::<PeerAddress>().unwrap().ip(), None);
    }

    #[test]
    fn what_is_not_host_port_is_refused() {
        for text in ["node2", "node2:", ":7000", "node2:70000", "no de:7000", "-x:7000", "a..b:7000", "n:0"] {
            assert!(text.parse::<PeerAddress>().is_err(), "{text} parsed");
        }
    }

    #[tokio::test]
    async fn names_resolve_when_dialled() {
        let a: PeerAddress = "localhost:7000".parse().unwrap();
        assert_eq!(a.resolve().await.unwrap().port(), 7000);
        let ip: PeerAddress = "127.0.0.1:7001".parse().unwrap();
        assert_eq!(ip.resolve().await.unwrap(), "127.0.0.1:7001".parse().unwrap());
    }
}
