//! The node's sans-IO modules (MQTT, SigV4), compiled on their own so fuzzing does not build
//! RocksDB and the rest of the node. The files are the node's own, not copies.

#[path = "../../node/src/mqtt/packet.rs"]
pub mod packet;

#[path = "../../node/src/mqtt/codec.rs"]
pub mod codec;

/// The same paths as in the node (`ferrite::mqtt::...`).
pub mod mqtt {
    pub use super::{codec, packet};
}

#[path = "../../node/src/sigv4.rs"]
pub mod sigv4;

#[path = "../../node/src/identity/policy/mod.rs"]
pub mod policy;
