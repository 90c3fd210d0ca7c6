//! The harness that produces histories: a test network of namespaces ([`net`]), the
//! `ferrite` processes in it ([`nodes`]), the fault schedule ([`nemesis`]), the client
//! [`workloads`] and the [`run`] that ties them together. Unlike the checkers, this part
//! does I/O and needs root.

pub mod mqtt;
pub mod nemesis;
pub mod net;
pub mod nodes;
pub mod run;
pub mod workloads;
