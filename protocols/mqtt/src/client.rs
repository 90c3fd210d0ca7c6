//! A minimal MQTT client on this crate's codec, for the programs that stand in for devices
//! (`ferrite bench`, the chaos harness): connect, then a read half and a write half driven by
//! separate tasks.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use crate::codec;
use crate::packet::*;

/// Reads whole packets from a socket half.
pub struct PacketReader {
    read: OwnedReadHalf,
    buf: BytesMut,
    version: ProtocolVersion,
}

impl PacketReader {
    /// A packet already buffered, without reading the socket.
    pub fn try_next(&mut self) -> anyhow::Result<Option<Packet>> {
        Ok(codec::decode(&mut self.buf, Some(self.version), usize::MAX)?)
    }

    /// The next packet, or `None` at end of stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<Packet>> {
        loop {
            if let Some(p) = codec::decode(&mut self.buf, Some(self.version), usize::MAX)? {
                return Ok(Some(p));
            }
            self.buf.reserve(64 * 1024);
            if self.read.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}

/// Writes packets, buffering until `flush`.
pub struct PacketWriter {
    write: OwnedWriteHalf,
    buf: BytesMut,
    version: ProtocolVersion,
}

impl PacketWriter {
    /// Encodes a packet into the buffer.
    pub fn push(&mut self, p: &Packet) {
        codec::encode(p, self.version, &mut self.buf);
    }

    /// Bytes waiting to be written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Writes everything buffered.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.write.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// How a client connects, beyond its address and id: the load generator's clients start
/// clean; other drivers (the chaos harness) resume persistent sessions.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Clean start (3.1.1: clean session).
    pub clean_start: bool,
    /// Session expiry interval in seconds (MQTT 5).
    pub session_expiry: Option<u32>,
    /// Keep alive in seconds (0: none).
    pub keep_alive: u16,
    /// MQTT username.
    pub username: Option<String>,
    /// MQTT password.
    pub password: Option<bytes::Bytes>,
}

/// Connects, sends CONNECT, waits for a successful CONNACK and splits the socket.
pub async fn connect(
    addr: SocketAddr,
    local_ip: Option<std::net::IpAddr>,
    client_id: &str,
    version: ProtocolVersion,
    keep_alive: u16,
    (username, password): (Option<String>, Option<bytes::Bytes>),
) -> anyhow::Result<(PacketReader, PacketWriter)> {
    let opts = ConnectOptions { clean_start: true, session_expiry: None, keep_alive, username, password };
    let (reader, writer, _) = connect_with(addr, local_ip, client_id, version, opts).await?;
    Ok((reader, writer))
}

/// Connects with `opts`, waits for a successful CONNACK (returned, for its session-present
/// flag) and splits the socket.
pub async fn connect_with(
    addr: SocketAddr,
    local_ip: Option<std::net::IpAddr>,
    client_id: &str,
    version: ProtocolVersion,
    opts: ConnectOptions,
) -> anyhow::Result<(PacketReader, PacketWriter, ConnAck)> {
    let stream = match local_ip {
        Some(ip) => {
            let sock = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            sock.bind(SocketAddr::new(ip, 0))?;
            sock.connect(addr).await?
        }
        None => TcpStream::connect(addr).await?,
    };
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut reader = PacketReader { read, buf: BytesMut::with_capacity(4096), version };
    let mut writer = PacketWriter { write, buf: BytesMut::with_capacity(4096), version };
    let mut properties = Properties::default();
    if version.is_v5() {
        properties.receive_maximum = Some(u16::MAX);
        properties.session_expiry_interval = opts.session_expiry;
    }
    writer.push(&Packet::Connect(Box::new(Connect {
        protocol: version,
        clean_start: opts.clean_start,
        keep_alive: opts.keep_alive,
        properties,
        client_id: client_id.to_string(),
        will: None,
        username: opts.username,
        password: opts.password,
    })));
    writer.flush().await?;
    let ack =
        tokio::time::timeout(Duration::from_secs(30), reader.next()).await.context("no CONNACK within 30 s")??;
    match ack {
        Some(Packet::ConnAck(a)) if a.reason_code == 0 => Ok((reader, writer, a)),
        Some(Packet::ConnAck(a)) => bail!("connection refused, reason code {:#x}", a.reason_code),
        other => bail!("expected CONNACK, got {other:?}"),
    }
}
