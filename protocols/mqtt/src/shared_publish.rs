//! A PUBLISH encoded once and written to many subscribers. A message delivered to a
//! thousand clients that speak the same protocol version at the same QoS goes out as a
//! thousand identical packets but for the packet id and the DUP flag, so the broker encodes
//! it once and copies those bytes, patching the two fields, instead of encoding each copy.

use bytes::{Bytes, BytesMut};

use crate::codec;
use crate::packet::{Packet, ProtocolVersion, Publish, QoS};

/// DUP in the first byte of a PUBLISH.
const DUP_FLAG: u8 = 0x08;

/// A PUBLISH packet's bytes, shared by every copy of the same shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPublish {
    bytes: Bytes,
    /// Offset of the two-byte packet id (QoS 1 and 2 only).
    packet_id_at: Option<usize>,
}

impl SharedPublish {
    /// Encodes `p` for `version`; its packet id and DUP flag do not matter, each copy sets
    /// its own. `None` when [`codec::encode`] writes nothing (a packet larger than MQTT
    /// allows).
    pub fn encode(mut p: Publish, version: ProtocolVersion) -> Option<SharedPublish> {
        p.dup = false;
        p.packet_id = (p.qos != QoS::AtMostOnce).then_some(0);
        let mut out = BytesMut::new();
        codec::encode(&Packet::Publish(p), version, &mut out);
        if out.is_empty() {
            return None;
        }
        let bytes = out.freeze();
        let packet_id_at = match bytes[0] >> 1 & 0b11 {
            0 => None,
            _ => {
                // fixed header byte, remaining length (1-4 bytes), topic length + topic
                let length_bytes = 1 + bytes[1..].iter().take_while(|b| **b & 0x80 != 0).count();
                let topic_at = 1 + length_bytes;
                let topic_len = u16::from_be_bytes([bytes[topic_at], bytes[topic_at + 1]]) as usize;
                Some(topic_at + 2 + topic_len)
            }
        };
        Some(SharedPublish { bytes, packet_id_at })
    }

    /// Bytes of one copy.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a PUBLISH has at least a fixed header (clippy's `len` companion).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends one copy to `out`, with `packet_id` and DUP set (both ignored at QoS 0).
    pub fn write_to(&self, out: &mut BytesMut, packet_id: Option<u16>, dup: bool) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        if let Some(at) = self.packet_id_at {
            let at = start + at;
            out[at..at + 2].copy_from_slice(&packet_id.unwrap_or(0).to_be_bytes());
            if dup {
                out[start] |= DUP_FLAG;
            }
        }
    }
}
