//! Turns a byte stream into MQTT packets for the connection actor.
//!
//! Each read takes everything the socket has (up to [`READ_CHUNK`]) into one scratch buffer
//! per thread, so a busy publisher costs one read per batch of packets rather than one per
//! few hundred bytes, and an idle connection holds no read buffer at all. Every packet is
//! copied out of the read into its own allocation before it is decoded: a payload kept in a
//! session queue pins only its own packet, never the rest of a large read.

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use ferrite_mqtt::codec::{self, DecodeError};
use ferrite_mqtt::packet::{Packet, ProtocolVersion};
use futures_util::Stream;
use tokio::io::{AsyncRead, ReadBuf};

use crate::metrics::Metrics;

/// The most one read takes from a socket.
pub const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    /// The read buffer every connection on this thread reads into; a connection copies
    /// what it read out before it yields, so one buffer serves them all.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

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

impl PacketDecoder {
    /// The next whole packet at the front of `unread`, taken off it; `None` until one has
    /// fully arrived.
    fn next_packet(&self, unread: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let version = self.version.get();
        let Some(size) = codec::frame_size(unread, version, self.max_packet_size)? else {
            return Ok(None);
        };
        let mut frame = BytesMut::from(&unread[..size]);
        unread.advance(size);
        self.metrics.bytes_received_total.add(size as u64);
        codec::decode(&mut frame, version, self.max_packet_size)
    }
}

/// The packets of one connection's byte stream, in order; ends at the stream's end or after
/// the first error.
pub struct PacketStream<R> {
    read: R,
    decoder: PacketDecoder,
    /// Bytes read and not yet decoded: at most one partial packet between reads, and no
    /// allocation at all when empty.
    unread: BytesMut,
    ended: bool,
}

impl<R> PacketStream<R> {
    /// Reads packets from `read` with `decoder`.
    pub fn new(read: R, decoder: PacketDecoder) -> Self {
        PacketStream { read, decoder, unread: BytesMut::new(), ended: false }
    }

    fn decoded(&mut self) -> Option<Result<Packet, ReadError>> {
        match self.decoder.next_packet(&mut self.unread) {
            Ok(None) => None,
            Ok(Some(packet)) => {
                if self.unread.is_empty() {
                    // Give the buffer back: an idle connection keeps none.
                    self.unread = BytesMut::new();
                }
                Some(Ok(packet))
            }
            Err(e) => {
                self.ended = true;
                Some(Err(ReadError::Decode(e)))
            }
        }
    }
}

impl<R: AsyncRead + Unpin> Stream for PacketStream<R> {
    type Item = Result<Packet, ReadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some(item) = this.decoded() {
                return Poll::Ready(Some(item));
            }
            let read = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let mut buf = ReadBuf::new(&mut scratch[..]);
                match Pin::new(&mut this.read).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) => {
                        this.unread.extend_from_slice(buf.filled());
                        Poll::Ready(Ok(buf.filled().len()))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            });
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    this.ended = true;
                    if this.unread.is_empty() {
                        return Poll::Ready(None);
                    }
                    let cut = io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ended inside a packet");
                    return Poll::Ready(Some(Err(ReadError::Io(cut))));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(ReadError::Io(e))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ferrite_mqtt::packet::{Ack, Publish, QoS};
    use futures_util::StreamExt;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// A socket that hands out its bytes in the given pieces, one piece per read.
    struct Pieces(VecDeque<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            if let Some(mut piece) = self.0.pop_front() {
                let n = piece.len().min(buf.remaining());
                buf.put_slice(&piece[..n]);
                if n < piece.len() {
                    self.0.push_front(piece.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    fn stream(pieces: Vec<Vec<u8>>) -> PacketStream<Pieces> {
        let decoder = PacketDecoder {
            version: Rc::new(Cell::new(Some(ProtocolVersion::V311))),
            max_packet_size: 1 << 20,
            metrics: Arc::new(Metrics::default()),
        };
        PacketStream::new(Pieces(pieces.into()), decoder)
    }

    fn publish(i: usize, payload_len: usize) -> Packet {
        Packet::Publish(Publish {
            dup: false,
            qos: if i.is_multiple_of(2) { QoS::AtMostOnce } else { QoS::AtLeastOnce },
            retain: false,
            topic: format!("t/{i}"),
            packet_id: (i % 2 == 1).then_some(i as u16 + 1),
            properties: Default::default(),
            payload: Bytes::from(vec![i as u8; payload_len]),
        })
    }

    fn collect(s: PacketStream<Pieces>) -> Vec<Result<Packet, String>> {
        let items = block_on(s.collect::<Vec<_>>());
        items.into_iter().map(|r| r.map_err(|e| format!("{e:?}"))).collect()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
    }

    proptest! {
        /// However the bytes are split across reads, the same packets come out, in order.
        #[test]
        fn any_split_gives_the_same_packets(
            sizes in proptest::collection::vec(0usize..300, 1..40),
            cuts in proptest::collection::vec(1usize..200, 0..60),
        ) {
            let packets: Vec<Packet> = sizes.iter().enumerate().map(|(i, &n)| {
                if n % 7 == 3 { Packet::PubAck(Ack::ok(n as u16 + 1)) } else { publish(i, n) }
            }).collect();
            let mut wire = BytesMut::new();
            for p in &packets {
                codec::encode(p, ProtocolVersion::V311, &mut wire);
            }
            let mut pieces = Vec::new();
            let mut rest = &wire[..];
            for cut in cuts {
                if rest.is_empty() { break; }
                let n = cut.min(rest.len());
                pieces.push(rest[..n].to_vec());
                rest = &rest[n..];
            }
            if !rest.is_empty() { pieces.push(rest.to_vec()); }
            let got = collect(stream(pieces));
            prop_assert_eq!(got, packets.into_iter().map(Ok).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_stream_cut_inside_a_packet_ends_with_an_error() {
        let mut wire = BytesMut::new();
        codec::encode(&publish(1, 10), ProtocolVersion::V311, &mut wire);
        let got = collect(stream(vec![wire[..wire.len() - 3].to_vec()]));
        assert_eq!(got.len(), 1);
        assert!(got[0].as_ref().is_err_and(|e| e.contains("UnexpectedEof")), "{got:?}");
    }

    #[test]
    fn a_malformed_packet_ends_the_stream_after_the_good_ones() {
        let mut wire = BytesMut::new();
        codec::encode(&publish(0, 5), ProtocolVersion::V311, &mut wire);
        wire.extend_from_slice(&[0x00, 0x00]);
        codec::encode(&publish(2, 5), ProtocolVersion::V311, &mut wire);
        let got = collect(stream(vec![wire.to_vec()]));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], Ok(publish(0, 5)));
        assert!(got[1].as_ref().is_err_and(|e| e.contains("reserved packet type")), "{got:?}");
    }

    #[test]
    fn a_drained_stream_keeps_no_read_buffer() {
        let mut wire = BytesMut::new();
        for i in 0..100 {
            codec::encode(&publish(i * 2, 50), ProtocolVersion::V311, &mut wire);
        }
        let mut s = stream(vec![wire.to_vec()]);
        let first = block_on(s.next());
        let Some(Ok(Packet::Publish(p))) = first else { panic!("{first:?}") };
        assert_eq!(p.payload.len(), 50);
        let rest = block_on(s.by_ref().take(99).collect::<Vec<_>>());
        assert_eq!(rest.len(), 99);
        assert_eq!(s.unread.capacity(), 0, "the drained read buffer is given back");
    }
}
