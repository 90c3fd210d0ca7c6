//! A small MQTT 5 client for the workloads, on the broker's own codec (`ferrite_mqtt::client`):
//! one operation at a time, every wait bounded, so that a client blocked by a fault records
//! "unknown" and reconnects instead of hanging the run.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use ferrite_mqtt::client::{connect_with, ConnectOptions, PacketReader, PacketWriter};
use ferrite_mqtt::packet::{
    Ack, Disconnect, Packet, Properties, ProtocolVersion, Publish, QoS, SubOptions, Subscribe, Unsubscribe,
};

/// How long any single wait (CONNACK, PUBACK, SUBACK, an answer) may take before the
/// operation's outcome is unknown.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an operation did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The broker refused it (a reason code of 0x80 or more): it did not happen.
    Refused(u8),
    /// No answer in time, or the connection broke: it may or may not have happened.
    Unknown(String),
}

/// A connected client.
pub struct Mqtt {
    reader: PacketReader,
    writer: PacketWriter,
    next_id: u16,
    /// Whether the broker resumed a stored session.
    pub session_present: bool,
    /// Publishes that arrived while waiting for something else.
    pub inbox: Vec<Publish>,
}

/// The outcome of a connect: refused with a reason code, or unknown.
pub async fn connect(addr: SocketAddr, client_id: &str, clean_start: bool, expiry: u32) -> Result<Mqtt, Failure> {
    let opts =
        ConnectOptions { clean_start, session_expiry: Some(expiry), keep_alive: 10, username: None, password: None };
    match tokio::time::timeout(OP_TIMEOUT, connect_with(addr, None, client_id, ProtocolVersion::V5, opts)).await {
        Ok(Ok((reader, writer, ack))) => {
            Ok(Mqtt { reader, writer, next_id: 0, session_present: ack.session_present, inbox: Vec::new() })
        }
        Ok(Err(e)) => {
            let text = e.to_string();
            match text.rsplit_once("reason code 0x").and_then(|(_, c)| u8::from_str_radix(c.trim(), 16).ok()) {
                Some(code) => Err(Failure::Refused(code)),
                None => Err(Failure::Unknown(text)),
            }
        }
        Err(_) => Err(Failure::Unknown("no CONNACK in time".into())),
    }
}

impl Mqtt {
    fn packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    /// The next packet, answering PUBACKs for received QoS 1 publishes only when asked.
    async fn next(&mut self, within: Duration) -> Result<Packet, Failure> {
        match tokio::time::timeout(within, self.reader.next()).await {
            Ok(Ok(Some(p))) => Ok(p),
            Ok(Ok(None)) => Err(Failure::Unknown("the connection closed".into())),
            Ok(Err(e)) => Err(Failure::Unknown(e.to_string())),
            Err(_) => Err(Failure::Unknown("timed out".into())),
        }
    }

    async fn send(&mut self, p: &Packet) -> Result<(), Failure> {
        self.writer.push(p);
        match tokio::time::timeout(OP_TIMEOUT, self.writer.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Unknown(e.to_string())),
            Err(_) => Err(Failure::Unknown("write timed out".into())),
        }
    }

    /// Subscribes to `filters` at QoS 1; every filter must be granted.
    pub async fn subscribe(&mut self, filters: &[&str]) -> Result<(), Failure> {
        let packet_id = self.packet_id();
        let filters = filters
            .iter()
            .map(|f| (f.to_string(), SubOptions { qos: QoS::AtLeastOnce, ..Default::default() }))
            .collect();
        self.send(&Packet::Subscribe(Subscribe { packet_id, properties: Properties::default(), filters })).await?;
        loop {
            match self.next(OP_TIMEOUT).await? {
                Packet::SubAck(a) if a.packet_id == packet_id => {
                    return match a.reason_codes.iter().find(|c| **c >= 0x80) {
                        Some(c) => Err(Failure::Refused(*c)),
                        None => Ok(()),
                    };
                }
                Packet::Publish(p) => self.received(p).await?,
                _ => {}
            }
        }
    }

    /// Unsubscribes from `filters` (best effort).
    pub async fn unsubscribe(&mut self, filters: &[&str]) -> Result<(), Failure> {
        let packet_id = self.packet_id();
        let filters = filters.iter().map(|f| f.to_string()).collect();
        self.send(&Packet::Unsubscribe(Unsubscribe { packet_id, properties: Properties::default(), filters })).await
    }

    /// Keeps a publish for the caller and acknowledges it once kept.
    async fn received(&mut self, p: Publish) -> Result<(), Failure> {
        let ack = (p.qos == QoS::AtLeastOnce).then_some(p.packet_id).flatten();
        self.inbox.push(p);
        if let Some(id) = ack {
            self.send(&Packet::PubAck(Ack::ok(id))).await?;
        }
        Ok(())
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: Bytes, retain: bool) -> Result<(), Failure> {
        let packet_id = self.packet_id();
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain,
            topic: topic.into(),
            packet_id: Some(packet_id),
            properties: Properties::default(),
            payload,
        }))
        .await?;
        loop {
            match self.next(OP_TIMEOUT).await? {
                Packet::PubAck(a) if a.packet_id == packet_id => {
                    return if a.reason_code >= 0x80 { Err(Failure::Refused(a.reason_code)) } else { Ok(()) };
                }
                Packet::Publish(p) => self.received(p).await?,
                Packet::Disconnect(d) => {
                    return Err(Failure::Unknown(format!("disconnected with {:#x}", d.reason_code)))
                }
                _ => {}
            }
        }
    }

    /// Waits up to `within` for the next publish (acknowledged once received).
    pub async fn receive(&mut self, within: Duration) -> Result<Option<Publish>, Failure> {
        if !self.inbox.is_empty() {
            return Ok(Some(self.inbox.remove(0)));
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.next(left).await {
                Ok(Packet::Publish(p)) => {
                    self.received(p).await?;
                    return Ok(Some(self.inbox.remove(0)));
                }
                Ok(Packet::Disconnect(d)) => {
                    return Err(Failure::Unknown(format!("disconnected with {:#x}", d.reason_code)))
                }
                Ok(_) => {}
                Err(Failure::Unknown(e)) if e == "timed out" => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends DISCONNECT (best effort).
    pub async fn disconnect(mut self) {
        let _ = self.send(&Packet::Disconnect(Disconnect { reason_code: 0, properties: Properties::default() })).await;
    }
}
