//! A WebSocket client's whole byte stream is untrusted: the HTTP upgrade (with the node's
//! own upgrade rules and frame caps from `ferrite_mqtt::websocket`), then frames whose binary
//! messages are MQTT packets. Nothing may panic, no message may exceed the cap, and every
//! packet is decoded as the node's connection would decode it.
#![no_main]

use std::io::{Cursor, Read, Write};

use bytes::BytesMut;
use ferrite_mqtt::codec::decode;
use ferrite_mqtt::packet::{Packet, ProtocolVersion};
use ferrite_mqtt::websocket;
use libfuzzer_sys::fuzz_target;
use tungstenite::Message;

/// The node's default largest packet, small enough that the fuzzer can reach the cap.
const MAX_PACKET: usize = 4096;

/// The client's bytes in; what the server writes goes nowhere.
struct Wire(Cursor<Vec<u8>>);

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let wire = Wire(Cursor::new(data.to_vec()));
    let Ok(mut ws) = tungstenite::accept_hdr_with_config(wire, websocket::check_upgrade, Some(websocket::config(MAX_PACKET)))
    else {
        return;
    };
    let mut stream = BytesMut::new();
    let mut version: Option<ProtocolVersion> = None;
    while let Ok(message) = ws.read() {
        let Message::Binary(bytes) = message else { continue };
        assert!(bytes.len() <= MAX_PACKET + 64, "a message past the cap was assembled");
        stream.extend_from_slice(&bytes);
        loop {
            match decode(&mut stream, version, MAX_PACKET) {
                Ok(Some(Packet::Connect(c))) if version.is_none() => version = Some(c.protocol),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
});
