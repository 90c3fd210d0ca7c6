//! Ferrite's cluster crate: the durable storage engine every node state machine sits on,
//! the Raft groups (raft-rs) that replicate that state between nodes, and the transport
//! that carries their messages.
//!
//! This crate never depends on the node crate; it knows bytes, keys and column
//! families, not MQTT.

pub mod address;
mod dedup;
pub mod group;
pub mod quic;
mod raft_log;
mod raft_logger;
pub mod storage;
pub mod transport;

pub use address::PeerAddress;
pub use group::{AnyGroup, Done, Group, GroupError, GroupStatus, StateMachine, FAILURE_KINDS};
pub use quic::{Channel, QuicConfig, QuicError, QuicNet};
pub use storage::{decode_rows, encode_rows, Batch, MemRows, ReadRows, Row, Store, StoreError, Table};
pub use transport::{Inbox, LocalNetwork, Member, MemberChange, NoPeers, Transport, COMPACT_LOG_ABOVE};

/// Raft's message type, which transports carry.
pub use raft::eraftpb::Message as RaftMessage;
