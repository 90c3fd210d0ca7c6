//! Ferrite's cluster crate: the durable storage engine every node state machine sits on,
//! the replicated groups that own that state, and (in later work) Raft between nodes and
//! the QUIC transport.
//!
//! This crate never depends on the node crate; it knows bytes, keys and column
//! families, not MQTT.

pub mod group;
pub mod storage;

pub use group::{Done, Group, GroupError, StateMachine};
pub use storage::{Batch, Store, StoreError, Table};
