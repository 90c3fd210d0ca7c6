//! Bulk registration (StartThingRegistrationTask): the node that starts a task reads its
//! input (a file of JSON lines: a path on that node, or an http(s) URL, where AWS reads
//! S3), provisions every line with the task's template, a few lines at a time, and writes
//! the RESULTS and ERRORS reports (JSON lines) into its data directory. Progress, the end
//! and a stop asked for on any node are the task's replicated record.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrite_aws::AwsError;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use super::{now_s, ProvisioningRuntime, Subject};
use crate::meta::Command;
use crate::provisioning::tasks::{Progress, TaskRecord};
use crate::provisioning::Command as ProvisioningCommand;

/// Lines provisioned at once (their proposals share the group's commits).
const IN_FLIGHT: usize = 32;
/// How often a running task records its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// The longest input file read.
const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;
/// How long an http(s) input may take to arrive.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The two reports of a task.
pub const REPORTS: &[&str] = &["RESULTS", "ERRORS"];

/// What a task was started with.
pub struct TaskInput {
    /// The template body.
    pub template_body: String,
    /// As given.
    pub input_file_bucket: String,
    /// A path or an http(s) URL.
    pub input_file_key: String,
    /// As given.
    pub role_arn: String,
}

impl ProvisioningRuntime {
    /// The report file of a task on this node.
    pub fn report_path(&self, task_id: &str, report: &str) -> std::path::PathBuf {
        self.reports_dir.join(task_id).join(format!("{}.jsonl", report.to_ascii_lowercase()))
    }

    /// StartThingRegistrationTask: records the task, then runs it on this node.
    pub async fn start_task(self: &Arc<Self>, input: TaskInput) -> Result<String, AwsError> {
        ferrite_aws::provisioning::parse(&input.template_body)
            .map_err(|e| AwsError::invalid_request(format!("templateBody: {e}")))?;
        let task_id = crate::registry::new_id();
        let now = now_s();
        let record = TaskRecord {
            task_id: task_id.clone(),
            template_body: input.template_body,
            input_file_bucket: input.input_file_bucket,
            input_file_key: input.input_file_key,
            role_arn: input.role_arn,
            status: "InProgress".into(),
            message: None,
            success_count: 0,
            failure_count: 0,
            percentage_progress: 0,
            creation_date: now,
            last_modified_date: now,
            node: self.node_id,
            report_token: format!("{:032x}", rand::random::<u128>()),
        };
        self.propose(Command::Provisioning(ProvisioningCommand::StartTask { record: record.clone() })).await?;
        let me = self.clone();
        actix_rt::spawn(async move { me.run_task(record).await });
        Ok(task_id)
    }

    async fn run_task(self: Arc<Self>, task: TaskRecord) {
        let id = task.task_id.clone();
        let outcome = self.run_lines(&task).await;
        let (status, message, ok, failed) = match outcome {
            Ok((ok, failed, cancelled)) => (if cancelled { "Cancelled" } else { "Completed" }, None, ok, failed),
            Err(why) => ("Failed", Some(why), 0, 0),
        };
        tracing::info!(task_id = %id, status, succeeded = ok, failed, "thing registration task ended");
        let progress = Progress {
            status: status.into(),
            message,
            success_count: ok,
            failure_count: failed,
            percentage_progress: if status == "Completed" { 100 } else { 0 },
            now_s: now_s(),
        };
        self.record_progress(&id, progress).await;
    }

    async fn record_progress(&self, task_id: &str, progress: Progress) {
        let command = ProvisioningCommand::TaskProgress { task_id: task_id.to_string(), progress };
        if let Err(e) = self.propose(Command::Provisioning(command)).await {
            tracing::warn!(task_id, error = %e.message, "cannot record a registration task's progress");
        }
    }

    /// Provisions every line; (succeeded, failed, cancelled), or why the input cannot be read.
    async fn run_lines(&self, task: &TaskRecord) -> Result<(u64, u64, bool), String> {
        let text = read_input(&task.input_file_key).await?;
        let lines: Vec<(usize, &str)> =
            text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty()).collect();
        let total = lines.len().max(1) as u64;
        let dir = self.reports_dir.join(&task.task_id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot write reports into {}: {e}", dir.display()))?;
        let open = |report: &str| {
            std::fs::File::create(self.report_path(&task.task_id, report))
                .map(std::io::BufWriter::new)
                .map_err(|e| format!("cannot write the {report} report: {e}"))
        };
        let (mut results, mut errors) = (open("RESULTS")?, open("ERRORS")?);
        let body = task.template_body.as_str();
        let mut outcomes = futures_util::stream::iter(lines)
            .map(|(n, line)| async move { (n, self.provision_line(body, line).await) })
            .buffer_unordered(IN_FLIGHT);
        let (mut ok, mut failed) = (0u64, 0u64);
        let mut last = Instant::now();
        while let Some((n, outcome)) = outcomes.next().await {
            let line = match outcome {
                Ok(response) => {
                    ok += 1;
                    json!({ "referenceId": n.to_string(), "response": response })
                }
                Err(why) => {
                    failed += 1;
                    json!({ "referenceId": n.to_string(), "errorMessage": why })
                }
            };
            let out = if line.get("errorMessage").is_some() { &mut errors } else { &mut results };
            writeln!(out, "{line}").map_err(|e| format!("cannot write a report: {e}"))?;
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                if self.meta.state().provisioning.task(&task.task_id).is_some_and(|t| t.status == "Cancelling") {
                    drop(outcomes);
                    results.flush().ok();
                    errors.flush().ok();
                    return Ok((ok, failed, true));
                }
                let progress = Progress {
                    status: "InProgress".into(),
                    message: None,
                    success_count: ok,
                    failure_count: failed,
                    percentage_progress: ((ok + failed) * 100 / total).min(99) as u32,
                    now_s: now_s(),
                };
                self.record_progress(&task.task_id, progress).await;
            }
        }
        results.flush().map_err(|e| format!("cannot write a report: {e}"))?;
        errors.flush().map_err(|e| format!("cannot write a report: {e}"))?;
        Ok((ok, failed, false))
    }

    /// One line: its parameters provisioned with the template; the RESULTS response or
    /// the error.
    async fn provision_line(&self, body: &str, line: &str) -> Result<Value, String> {
        let parameters = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(p)) => p,
            Ok(_) => return Err("The line is not a JSON object of parameters".into()),
            Err(e) => return Err(format!("The line is not valid JSON: {e}")),
        };
        let done = self.provision(body, None, None, parameters, &Subject::default()).await.map_err(|r| r.message)?;
        let mut response = json!({ "ResourceArns": done.resource_arns });
        if let Some(pem) = done.certificate_pem {
            response["CertificatePem"] = json!(pem);
        }
        Ok(response)
    }
}

/// The input file's text: a path on this node, or an http(s) URL.
async fn read_input(key: &str) -> Result<String, String> {
    if key.starts_with("http://") || key.starts_with("https://") {
        let target = ferrite_http_client::parse_url(key)?;
        let (status, body) = ferrite_http_client::call("GET", &target, &[], b"", FETCH_TIMEOUT)
            .await
            .map_err(|e| format!("cannot fetch {key}: {e}"))?;
        if !(200..300).contains(&status) {
            return Err(format!("cannot fetch {key}: HTTP {status}"));
        }
        return String::from_utf8(body).map_err(|_| format!("{key} is not UTF-8 text"));
    }
    let key = key.to_string();
    let read = move || {
        let meta = std::fs::metadata(&key).map_err(|e| format!("cannot read {key}: {e}"))?;
        if meta.len() > MAX_INPUT_BYTES {
            return Err(format!("{key} is larger than {MAX_INPUT_BYTES} bytes"));
        }
        std::fs::read_to_string(&key).map_err(|e| format!("cannot read {key}: {e}"))
    };
    tokio::task::spawn_blocking(read).await.map_err(|e| format!("reading the input failed: {e}"))?
}
