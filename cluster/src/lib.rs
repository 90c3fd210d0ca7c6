//! Ferrite's cluster crate: the durable storage engine every node state machine sits on,
//! and (in later work) Raft groups and the QUIC transport between nodes.
//!
//! This crate never depends on the node crate; it knows bytes, keys and column
//! families, not MQTT.

pub mod storage;

pub use storage::{Batch, Store, StoreError, Table};
