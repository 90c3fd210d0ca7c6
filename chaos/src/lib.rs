//! Ferrite's Jepsen-style fault-injection harness.
//!
//! A run ([`harness`]) starts a cluster of `ferrite` processes in network namespaces, drives
//! client workloads while a nemesis injects faults, and records every client operation and
//! every fault to a [`history`] file; afterwards the [`checkers`] decide whether the cluster
//! kept its promises (QoS 1 delivery, linearizable shadows, convergent retained messages, one
//! live session per client id) and [`report`] combines their verdicts. The history, the
//! checkers and the report do no I/O beyond reading and appending the history file and are
//! not async: a history in, a verdict out, the same every time. The harness does the I/O.

#![warn(missing_docs)]

pub mod checkers;
pub mod harness;
pub mod history;
pub mod report;

pub use checkers::Status;
pub use history::{load, Completed, History, HistoryWriter, Op, OpType, Outcome, Process};
pub use report::{check, summary, CheckConfig, Report, Verdict};
