//! Turns a byte stream into MQTT packets for the connection actor (a `tokio_util`
//! decoder around the sans-IO codec).

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use ferrite_mqtt::codec::{self, DecodeError};
use ferrite_mqtt::packet::{Packet, ProtocolVersion};
use tokio_util::codec::Decoder;

use crate::metrics::Metrics;

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The socket failed.
    Io(io::Error),
    /// The peer sent bytes that are not a valid packet.
    Decode(DecodeError),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Packet decoder; the protocol version is shared with the actor, which sets it once
/// CONNECT has been accepted.
pub struct PacketDecoder {
    pub version: Rc<Cell<Option<ProtocolVersion>>>,
    pub max_packet_size: usize,
    /// Counts bytes of decoded packets.
    pub metrics: Arc<Metrics>,
}

impl Decoder for PacketDecoder {
    type Item = Packet;
    type Error = ReadError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, ReadError> {
        let before = src.len();
        let packet = codec::decode(src, self.version.get(), self.max_packet_size).map_err(ReadError::Decode)?;
        self.metrics.bytes_received_total.add((before - src.len()) as u64);
        Ok(packet)
    }
}
