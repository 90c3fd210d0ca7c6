//! MQTT 3.1.1 and 5.0 without I/O, shared by the node, the load generator, the chaos harness
//! and the fuzz targets: packet types (`packet`), bytes <-> packets (`codec`), topic rules
//! (`topic`) and one encoding of a PUBLISH written to many subscribers (`shared_publish`).
//! `client` (feature `client`) is the one piece that does I/O: a
//! small tokio client over the same codec, for drivers that stand in for devices;
//! `websocket` (feature `websocket`) is the MQTT-over-WebSocket upgrade and frame policy.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
pub mod codec;
pub mod packet;
pub mod shared_publish;
pub mod topic;
#[cfg(feature = "websocket")]
pub mod websocket;
