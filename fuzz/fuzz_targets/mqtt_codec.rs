//! Feeds arbitrary bytes to the MQTT decoder as a server would see them before CONNECT
//! and after a 3.1.1 or 5.0 CONNECT. The decoder must never panic, every packet it
//! accepts must survive a re-encode and decode unchanged, and `frame_size` (which the
//! server's reader cuts packets with) must agree with what the decoder takes.

#![no_main]

use bytes::BytesMut;
use ferrite_mqtt::codec::{decode, encode, frame_size};
use ferrite_mqtt::packet::{Packet, ProtocolVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for start in [None, Some(ProtocolVersion::V311), Some(ProtocolVersion::V5)] {
        decode_all(data, start);
    }
});

/// Decodes packets until the input runs out or is rejected, checking each round trip.
/// Starting from `None`, a decoded CONNECT sets the version for what follows, like a server.
fn decode_all(data: &[u8], start: Option<ProtocolVersion>) {
    let mut buf = BytesMut::from(data);
    let mut version = start;
    loop {
        let size = frame_size(&buf, version, usize::MAX);
        let before = buf.len();
        let decoded = decode(&mut buf, version, usize::MAX);
        match (&size, &decoded) {
            (Ok(Some(n)), Ok(Some(_))) => assert_eq!(before - buf.len(), *n, "frame_size disagrees with decode"),
            (Ok(None), Ok(None)) | (Err(_), Err(_)) | (Ok(Some(_)), Err(_)) => {}
            _ => panic!("frame_size said {size:?}, decode said {decoded:?}"),
        }
        let Ok(Some(packet)) = decoded else { break };
        // CONNECT is written for the protocol it names; everything else for the session's.
        let encode_as = match (&packet, version) {
            (Packet::Connect(connect), _) => connect.protocol,
            (_, Some(v)) => v,
            (_, None) => panic!("decoded {packet:?} before CONNECT"),
        };
        let mut again = BytesMut::new();
        encode(&packet, encode_as, &mut again);
        let decoded = decode(&mut again, version, usize::MAX);
        assert_eq!(decoded, Ok(Some(packet.clone())), "re-encoding changed the packet");
        assert!(again.is_empty(), "re-encoding left {} bytes behind", again.len());
        if let (Packet::Connect(connect), None) = (&packet, version) {
            version = Some(connect.protocol);
        }
    }
}
