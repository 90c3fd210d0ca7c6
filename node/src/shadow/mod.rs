//! Device shadows (issue 6, in progress): the pure document state machine in `document`.
//! Storage through the replicated state-machine abstraction, the reserved MQTT topics and the
//! HTTP data-plane routes are the adapters still to come.

pub mod document;

pub use document::{Shadow, ShadowError, Updated};
