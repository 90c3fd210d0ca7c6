//! The Ferrite node as a library: the `ferrite` binary is a thin command-line shell
//! around these modules, and the chaos harness reaches the cluster tools through it. The
//! protocols themselves live in `ferrite-mqtt` and `ferrite-aws`.

pub mod access_keys;
pub mod address;
pub mod backup;
pub mod backup_cli;
pub mod bench;
pub mod broker;
pub mod certificate_metrics;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod config_check;
pub mod credentials;
pub mod fleet_index;
pub mod fleet_runtime;
pub mod http;
pub mod identity;
pub mod iot_logging;
pub mod jobs;
pub mod jobs_runtime;
pub mod logging;
pub mod meta;
pub mod metrics;
pub mod node;
pub mod process_metrics;
pub mod provisioning;
pub mod provisioning_runtime;
pub mod registry;
pub mod rules;
pub mod rules_cli;
pub mod server;
pub mod services;
pub mod shadow;
pub mod stats_history;
pub mod tags;
