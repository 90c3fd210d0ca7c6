//! The Ferrite node as a library: the `ferrite` binary is a thin command-line shell
//! around these modules, and the chaos harness reaches the cluster tools through it. The
//! protocols themselves live in `ferrite-mqtt` and `ferrite-aws`.

pub mod access_keys;
pub mod bench;
pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod fleet_index;
pub mod fleet_runtime;
pub mod http;
pub mod identity;
pub mod iot_logging;
pub mod jobs;
pub mod jobs_runtime;
pub mod meta;
pub mod metrics;
pub mod node;
pub mod provisioning;
pub mod provisioning_runtime;
pub mod registry;
pub mod rules;
pub mod rules_cli;
pub mod server;
pub mod services;
pub mod shadow;
pub mod tags;
