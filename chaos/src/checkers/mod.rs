//! The consistency checkers. Each one reads the [`Completed`] operations of one workload and
//! says whether the cluster kept its promise; they share nothing but [`Status`] and
//! [`CheckError`], and none of them looks at faults or the clock of the run.
//!
//! [`Completed`]: crate::history::Completed

pub mod linear;
pub mod qos1;
pub mod retained;
pub mod shadow;
pub mod takeover;

use serde::Serialize;
use thiserror::Error;

use crate::history::Completed;

/// A checker's verdict, the same for every checker so the report can combine them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The history has no operations of this workload; nothing was checked and nothing fails.
    NotRun,
    /// Checked, no violation.
    Ok,
    /// Checked, the cluster broke its promise.
    Violation,
    /// The checker gave up (a search budget ran out) without finding a violation.
    Unknown,
}

impl Status {
    /// The word the summary prints for it.
    pub fn label(self) -> &'static str {
        match self {
            Status::NotRun => "not run",
            Status::Ok => "ok",
            Status::Violation => "FAIL",
            Status::Unknown => "unknown",
        }
    }
}

/// An operation a checker cannot interpret: the harness wrote something the workload's format
/// does not allow. This is a bug in the harness, not a finding about the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{checker} checker: {f} by process {process} called at {call_ns} ns: {reason}")]
pub struct CheckError {
    /// Which checker.
    pub checker: &'static str,
    /// The operation's name.
    pub f: String,
    /// The client.
    pub process: u64,
    /// When it was called.
    pub call_ns: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl CheckError {
    /// Blames `op` for `reason`.
    pub(crate) fn malformed(checker: &'static str, op: &Completed, reason: impl Into<String>) -> Self {
        CheckError { checker, f: op.f.clone(), process: op.process, call_ns: op.call_ns, reason: reason.into() }
    }
}

/// How many samples of failing ids, topics or clients a result keeps: enough to start
/// debugging, few enough to print.
pub const SAMPLE: usize = 10;
