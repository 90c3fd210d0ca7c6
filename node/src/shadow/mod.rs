//! Device shadows: the pure document state machine (`document`), the reserved
//! MQTT topics (`topics`), the shard groups' state machine that owns the shadows (`shard`,
//! docs/ARCHITECTURE.md) and the service that answers MQTT and HTTP requests through them
//! (`service`).

pub mod document;
pub mod rate;
pub mod service;
pub mod shard;
pub mod topics;

pub use document::{Shadow, Updated};
pub use service::{ShadowService, SHADOW_SHARDS};
