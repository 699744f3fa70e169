//! Job and result types: what a worker writes back and the view of a job the API returns
//! (the queue's own records are in [`crate::queue::records`]). Field names here are the wire format (see docs/api-shapes.md).

use serde::{Deserialize, Serialize};

/// Largest `top_k` a client may ask for.
pub const MAX_TOP_K: usize = 20;
/// `top_k` when a request names none.
pub const DEFAULT_TOP_K: usize = 5;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Processing,
    Done,
    Failed,
}

impl JobStatus {
    /// The name stored in Redis and shown to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Processing => "processing",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    /// Parses the stored name; unknown text is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "processing" => JobStatus::Processing,
            "done" => JobStatus::Done,
            "failed" => JobStatus::Failed,
            _ => return None,
        })
    }

    /// Done and failed jobs never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed)
    }
}

/// One scored class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Prediction {
    pub label: String,
    pub class_id: usize,
    pub score: f32,
}

/// What a worker writes back for a finished job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobResult {
    /// Best first, `top_k` long.
    pub predictions: Vec<Prediction>,
    pub model: String,
    /// Worker time for decode, preprocessing and inference, in milliseconds.
    pub elapsed_ms: f64,
}

/// A job as clients see it (`GET /predictions/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub job_id: String,
    pub status: JobStatus,
    pub model: String,
    pub image_file_name: String,
    /// RFC 3339 time the job was accepted.
    pub created_at: String,
    /// True when the result was reused from an identical earlier upload.
    pub cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Owner's user id; never sent to clients.
    #[serde(skip)]
    pub owner: Option<i64>,
    /// Delivery attempts so far; never sent to clients.
    #[serde(skip)]
    pub attempts: u32,
}

/// A worker's heartbeat, stored as JSON under [`crate::queue::keys::worker`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub models: Vec<String>,
    pub version: String,
    pub started_ms: i64,
    pub last_seen_ms: i64,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    /// Jobs being processed right now.
    pub busy: u32,
}
