//! Device shadows (issue 6, in progress): the pure document state machine (`document`),
//! the reserved MQTT topics (`topics`) and the service that answers them (`service`). The
//! replicated storage of DESIGN section 4 and the HTTP data-plane routes are still to come;
//! until then shadows are written to RocksDB directly, durably, before `accepted` is sent.

pub mod document;
pub mod rate;
pub mod service;
pub mod topics;

pub use document::{Shadow, ShadowError, Updated};
pub use service::ShadowService;
