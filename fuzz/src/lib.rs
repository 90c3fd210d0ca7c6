//! The node's sans-IO MQTT modules, compiled on their own so fuzzing does not build
//! RocksDB and the rest of the node. The files are the node's own, not copies.

pub mod mqtt {
    #[path = "../../../node/src/mqtt/packet.rs"]
    pub mod packet;
    #[path = "../../../node/src/mqtt/codec.rs"]
    pub mod codec;
}
