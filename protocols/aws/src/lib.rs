//! The AWS side of Ferrite's API as pure functions, so the node, the fuzz targets and tests
//! share one implementation without linking the node: SigV4 signing and verification
//! (`sigv4`), AWS's URI encoding (`percent`), the restJson1 error shape (`error`), ARNs
//! (`arn`), the shared-credentials file format (`credentials`), the IoT policy engine
//! (`policy`) and provisioning templates for fleet provisioning, JITP and bulk registration
//! (`provisioning`), and the fleet indexing query language with its aggregations for
//! `SearchIndex`, dynamic thing groups and fleet metrics (`fleet_query`). Nothing here does
//! I/O, reads a clock or keeps global state: callers pass the time, the secrets and the
//! account id.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arn;
pub mod credentials;
pub mod error;
pub mod fleet_query;
pub mod percent;
pub mod policy;
pub mod provisioning;
pub mod reserved;
pub mod sigv4;

pub use error::AwsError;
