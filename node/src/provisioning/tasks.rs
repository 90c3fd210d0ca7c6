//! Bulk registration tasks (StartThingRegistrationTask): the replicated record of each task,
//! its progress and where its reports are. The lines themselves are read and provisioned by
//! the node that started the task (`provisioning_runtime`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// AWS's task statuses.
pub const STATUSES: &[&str] = &["InProgress", "Completed", "Failed", "Cancelled", "Cancelling"];

/// One bulk registration task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    /// The task id.
    pub task_id: String,
    /// The template body every line is provisioned with.
    pub template_body: String,
    /// As given (not read: AWS's S3 bucket).
    pub input_file_bucket: String,
    /// A path on the node that runs the task, or an http(s) URL.
    pub input_file_key: String,
    /// As given.
    pub role_arn: String,
    /// One of [`STATUSES`].
    pub status: String,
    /// Why it failed, or a progress note.
    pub message: Option<String>,
    /// Lines provisioned.
    pub success_count: u64,
    /// Lines refused.
    pub failure_count: u64,
    /// 0..=100.
    pub percentage_progress: u32,
    /// Unix seconds.
    pub creation_date: u64,
    /// Unix seconds.
    pub last_modified_date: u64,
    /// The node that runs it and keeps its reports.
    pub node: u64,
    /// The secret in the report links (they are fetched without signing, as AWS's
    /// presigned S3 links are).
    #[serde(default)]
    pub report_token: String,
}

impl TaskRecord {
    /// True once the task stopped for good.
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "Completed" | "Failed" | "Cancelled")
    }

    /// DescribeThingRegistrationTask's document.
    pub fn describe(&self) -> Value {
        let mut doc = json!({
            "taskId": self.task_id,
            "creationDate": self.creation_date,
            "lastModifiedDate": self.last_modified_date,
            "templateBody": self.template_body,
            "inputFileBucket": self.input_file_bucket,
            "inputFileKey": self.input_file_key,
            "roleArn": self.role_arn,
            "status": self.status,
            "successCount": self.success_count,
            "failureCount": self.failure_count,
            "percentageProgress": self.percentage_progress,
        });
        if let Some(m) = &self.message {
            doc["message"] = json!(m);
        }
        doc
    }
}

/// A change to a task's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The new status.
    pub status: String,
    /// Why, if it matters.
    pub message: Option<String>,
    /// Lines provisioned so far.
    pub success_count: u64,
    /// Lines refused so far.
    pub failure_count: u64,
    /// 0..=100.
    pub percentage_progress: u32,
    /// Unix seconds.
    pub now_s: u64,
}
