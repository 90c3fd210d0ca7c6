//! Listen addresses as operators write them: `HOST:PORT`, HOST an IP address, `[v6]`, or a
//! host name such as `localhost`.

use std::net::SocketAddr;

/// Resolves a `HOST:PORT` listen address (HOST: an IP address, `[v6]`, or a host name such as
/// `localhost`), naming the setting (`key`) when it cannot be.
pub fn resolve_address(key: &str, text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{key} = {text:?}: expected HOST:PORT, e.g. 0.0.0.0:1883 or localhost:1883"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("{key} = {text:?}: the port {port:?} is not a number from 0 to 65535"));
    }
    let addrs: Vec<SocketAddr> = match text.to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Err(format!("{key} = {text:?}: the host name {host:?} does not resolve ({e})")),
    };
    // IPv4 first: `localhost` often resolves to ::1 and 127.0.0.1, and clients mostly try the latter.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{key} = {text:?}: the host name {host:?} has no address"))
}
