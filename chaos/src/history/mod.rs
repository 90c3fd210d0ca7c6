//! The history: every operation a run attempted, one JSON object per line (JSONL).
//!
//! A client operation is two records, an `invoke` when the client starts it and a completion
//! (`ok`, `fail` or `info`) when it learns the outcome; [`History::from_ops`] pairs them into
//! [`Completed`] operations, which is what the checkers read. Faults are single records of
//! the `nemesis` process. Times are nanoseconds of one monotonic clock started with the run,
//! stamped under the writer's lock, so the file's order is the order of the times.
//!
//! ```text
//! {"process":3,"type":"invoke","f":"write","key":"thing-1","value":7,"time_ns":1200,"node":2}
//! {"process":3,"type":"ok","f":"write","key":"thing-1","value":{"version":4},"time_ns":1900,"node":2}
//! {"process":"nemesis","type":"info","f":"partition","value":{"isolated":[1]},"time_ns":2000}
//! ```

mod pair;
mod writer;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

pub use pair::{Completed, Fault, History, Outcome, PairError};
pub use writer::HistoryWriter;

/// Who performed an operation: a client (a number the harness assigns) or the fault injector.
///
/// Serialized as the client's number or as the string `"nemesis"`, so a history line stays
/// short and a fault stands out when reading the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "ProcessRepr", into = "ProcessRepr")]
pub enum Process {
    /// A client; it has at most one operation outstanding at a time.
    Client(u64),
    /// The fault injector (partitions, kills, pauses and their repairs).
    Nemesis,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(n) => write!(f, "{n}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

/// The JSON shape of [`Process`]: a number or a name.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ProcessRepr {
    Client(u64),
    Name(String),
}

impl TryFrom<ProcessRepr> for Process {
    type Error = String;

    fn try_from(repr: ProcessRepr) -> Result<Self, Self::Error> {
        match repr {
            ProcessRepr::Client(n) => Ok(Process::Client(n)),
            ProcessRepr::Name(name) if name == "nemesis" => Ok(Process::Nemesis),
            ProcessRepr::Name(name) => {
                Err(format!("unknown process {name:?}: expected a client number or \"nemesis\""))
            }
        }
    }
}

impl From<Process> for ProcessRepr {
    fn from(process: Process) -> Self {
        match process {
            Process::Client(n) => ProcessRepr::Client(n),
            Process::Nemesis => ProcessRepr::Name("nemesis".to_owned()),
        }
    }
}

/// What a record says happened: the start of an operation or one of its three outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The client is about to send the request.
    Invoke,
    /// The operation took effect and the client saw it (e.g. PUBACK, a 2xx reply).
    Ok,
    /// The operation definitely did not take effect (e.g. a version conflict, a refused request).
    Fail,
    /// The outcome is unknown (a timeout, a dropped connection): it may or may not have taken
    /// effect. For the nemesis, a fault that happened.
    Info,
}

/// One line of the history file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// The client, or the nemesis.
    pub process: Process,
    /// Invocation or outcome.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The operation's name (`publish`, `write`, `partition`, ...); see the checkers for each.
    pub f: String,
    /// What the operation is about: a topic, a thing's name, a client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The argument (on an invoke) or the result (on a completion); for a fault, what it did.
    #[serde(default)]
    pub value: Value,
    /// Nanoseconds since the start of the run, from a monotonic clock.
    pub time_ns: u64,
    /// The node the client talked to, when it matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
}

impl Op {
    /// A record with no key, a null value, time zero and no node; set the rest with the
    /// builder methods (the writer stamps the time).
    pub fn new(process: Process, kind: OpType, f: impl Into<String>) -> Self {
        Op { process, kind, f: f.into(), key: None, value: Value::Null, time_ns: 0, node: None }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<Value>) -> Self {
        self.value = value.into();
        self
    }

    /// Sets the node.
    pub fn node(mut self, node: u64) -> Self {
        self.node = Some(node);
        self
    }

    /// Sets the time.
    pub fn at(mut self, time_ns: u64) -> Self {
        self.time_ns = time_ns;
        self
    }
}

/// Why a history could not be read or written. Parse errors name the line, so a harness bug
/// can be found in the file.
#[derive(Debug, Error)]
pub enum HistoryError {
    /// The file could not be opened or created.
    #[error("cannot open history file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// Reading failed part way.
    #[error("cannot read history line {line}: {source}")]
    Read {
        /// 1-based line number.
        line: usize,
        /// The system's reason.
        source: io::Error,
    },
    /// A line is not a valid record.
    #[error("history line {line}: {source}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        source: serde_json::Error,
    },
    /// A record could not be appended.
    #[error("cannot append to history: {0}")]
    Write(#[source] io::Error),
}

/// Reads a history file. Blank lines are skipped; any other line that is not a record is an
/// error naming its line number.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<Op>, HistoryError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| HistoryError::Open { path: path.to_owned(), source })?;
    parse(file)
}

/// Reads history records from any reader (the file form of [`load`]).
pub fn parse(reader: impl Read) -> Result<Vec<Op>, HistoryError> {
    let mut ops = Vec::new();
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|source| HistoryError::Read { line: line_no, source })?;
        if line.trim().is_empty() {
            continue;
        }
        let op = serde_json::from_str(&line).map_err(|source| HistoryError::Parse { line: line_no, source })?;
        ops.push(op);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_client_record_round_trips_through_json() {
        let op = Op::new(Process::Client(3), OpType::Invoke, "write").key("thing-1").value(7).node(2).at(1200);
        let line = serde_json::to_string(&op).unwrap();
        assert_eq!(
            line,
            r#"{"process":3,"type":"invoke","f":"write","key":"thing-1","value":7,"time_ns":1200,"node":2}"#
        );
        assert_eq!(serde_json::from_str::<Op>(&line).unwrap(), op);
    }

    #[test]
    fn the_nemesis_is_written_as_a_name() {
        let op = Op::new(Process::Nemesis, OpType::Info, "kill").value(json!({"node": 2})).at(5);
        let line = serde_json::to_string(&op).unwrap();
        assert_eq!(line, r#"{"process":"nemesis","type":"info","f":"kill","value":{"node":2},"time_ns":5}"#);
        assert_eq!(serde_json::from_str::<Op>(&line).unwrap(), op);
    }

    #[test]
    fn a_missing_value_reads_as_null() {
        let op: Op = serde_json::from_str(r#"{"process":1,"type":"invoke","f":"read","time_ns":0}"#).unwrap();
        assert_eq!(op.value, Value::Null);
        assert_eq!(op.key, None);
    }

    #[test]
    fn an_unknown_process_name_is_refused() {
        let err = serde_json::from_str::<Op>(r#"{"process":"bob","type":"invoke","f":"read","time_ns":0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown process \"bob\""), "{err}");
    }

    #[test]
    fn a_bad_line_is_reported_with_its_line_number() {
        let text = concat!(
            r#"{"process":1,"type":"invoke","f":"read","time_ns":0}"#,
            "\n\n",
            r#"{"process":1,"type":"okay","f":"read","time_ns":1}"#,
            "\n"
        );
        let err = parse(text.as_bytes()).unwrap_err();
        assert!(matches!(err, HistoryError::Parse { line: 3, .. }), "{err}");
        assert!(err.to_string().starts_with("history line 3: unknown variant `okay`"), "{err}");
    }

    #[test]
    fn blank_lines_are_skipped() {
        let text = "\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":0}\n   \n";
        assert_eq!(parse(text.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = load("/nonexistent/history.jsonl").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/history.jsonl"), "{err}");
    }
}
