//! The reserved MQTT topics of jobs requests: `$aws/things/{thing}/jobs/get`,
//! `.../jobs/start-next`, `.../jobs/{jobId}/get` and `.../jobs/{jobId}/update`, answered on
//! the same topic plus `/accepted` or `/rejected`.

/// What a request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// GetPendingJobExecutions.
    GetPending,
    /// StartNextPendingJobExecution.
    StartNext,
    /// DescribeJobExecution of a job (or `$next`).
    Describe(String),
    /// UpdateJobExecution of a job.
    Update(String),
}

/// A jobs request addressed by topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The thing.
    pub thing: String,
    /// The operation.
    pub op: Operation,
    /// The request topic (the answer goes to it plus `/accepted` or `/rejected`).
    pub topic: String,
}

/// The request a topic addresses, when it is one (answers and notifications are not).
pub fn parse(topic: &str) -> Option<Request> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let (thing, rest) = rest.split_once("/jobs/")?;
    if thing.is_empty() || thing.contains('/') {
        return None;
    }
    let op = match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["get"] => Operation::GetPending,
        ["start-next"] => Operation::StartNext,
        [job, "get"] if !job.is_empty() && !matches!(*job, "notify" | "notify-next") => {
            Operation::Describe(job.to_string())
        }
        [job, "update"] if !job.is_empty() && !matches!(*job, "notify" | "notify-next") => {
            Operation::Update(job.to_string())
        }
        _ => return None,
    };
    Some(Request { thing: thing.to_string(), op, topic: topic.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_answers_do_not() {
        let r = parse("$aws/things/lamp/jobs/start-next").unwrap();
        assert_eq!((r.thing.as_str(), r.op), ("lamp", Operation::StartNext));
        assert_eq!(parse("$aws/things/lamp/jobs/get").unwrap().op, Operation::GetPending);
        assert_eq!(parse("$aws/things/lamp/jobs/$next/get").unwrap().op, Operation::Describe("$next".into()));
        assert_eq!(parse("$aws/things/lamp/jobs/fw-1/update").unwrap().op, Operation::Update("fw-1".into()));
        for answer in [
            "$aws/things/lamp/jobs/get/accepted",
            "$aws/things/lamp/jobs/fw-1/update/rejected",
            "$aws/things/lamp/jobs/notify",
            "$aws/things/lamp/jobs/notify-next",
            "$aws/things/lamp/shadow/get",
        ] {
            assert_eq!(parse(answer), None, "{answer}");
        }
    }
}
