//! Job and result types: what goes into the queue and how a job hash is read back. The view of
//! a job the API returns (and the result a worker writes) is wire format and lives in
//! `api_types`; it is re-exported here so api and worker name it `shared::Job` as before.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::time_util::rfc3339;

pub use api_types::{Job, JobResult, JobStatus, Prediction, DEFAULT_TOP_K, MAX_TOP_K};

/// The message a worker receives from the queue stream (field `job`, JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedJob {
    pub job_id: String,
    pub model: String,
    /// SHA-256 of the image bytes; the bytes live under [`crate::keys::image`].
    pub sha256: String,
    pub top_k: usize,
    pub enqueued_ms: i64,
}

/// Field names of the job hash (`ic:job:{id}`).
pub mod field {
    pub const STATUS: &str = "status";
    pub const MODEL: &str = "model";
    pub const OWNER: &str = "owner";
    pub const IMAGE: &str = "image";
    pub const SHA256: &str = "sha256";
    pub const TOP_K: &str = "top_k";
    pub const CREATED: &str = "created_ms";
    pub const STARTED: &str = "started_ms";
    pub const FINISHED: &str = "finished_ms";
    pub const ATTEMPTS: &str = "attempts";
    pub const WORKER: &str = "worker";
    pub const RESULT: &str = "result";
    pub const ERROR: &str = "error";
    pub const CACHED: &str = "cached";
    pub const THUMB: &str = "thumb";
    pub const CONTENT_TYPE: &str = "content_type";
}

/// Reading the client view of a job out of its Redis hash. A trait because [`Job`] lives in
/// `api_types`, which knows nothing of Redis.
pub trait JobFromHash: Sized {
    /// Builds the client view from the job hash; `None` when the hash is empty or malformed.
    fn from_hash(job_id: &str, h: &HashMap<String, Vec<u8>>) -> Option<Self>;
}

impl JobFromHash for Job {
    fn from_hash(job_id: &str, h: &HashMap<String, Vec<u8>>) -> Option<Self> {
        let text = |k: &str| h.get(k).and_then(|v| std::str::from_utf8(v).ok());
        let status = JobStatus::parse(text(field::STATUS)?)?;
        let result = text(field::RESULT).and_then(|r| serde_json::from_str(r).ok());
        Some(Job {
            job_id: job_id.to_owned(),
            status,
            model: text(field::MODEL)?.to_owned(),
            image_file_name: text(field::IMAGE).unwrap_or_default().to_owned(),
            created_at: rfc3339(
                text(field::CREATED)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),
            ),
            cached: text(field::CACHED) == Some("1"),
            result,
            error: text(field::ERROR)
                .filter(|e| !e.is_empty())
                .map(str::to_owned),
            owner: text(field::OWNER).and_then(|o| o.parse().ok()),
            attempts: text(field::ATTEMPTS)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
        })
    }
}

/// A worker's heartbeat, stored as JSON under [`crate::keys::worker`].
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pairs: &[(&str, &str)]) -> HashMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn job_view_reads_a_finished_hash() {
        let result = JobResult {
            predictions: vec![Prediction {
                label: "academic gown".into(),
                class_id: 400,
                score: 0.25,
            }],
            model: "m".into(),
            elapsed_ms: 12.5,
        };
        let json = serde_json::to_string(&result).expect("serializes");
        let h = hash(&[
            ("status", "done"),
            ("model", "m"),
            ("image", "abc.jpeg"),
            ("created_ms", "0"),
            ("owner", "7"),
            ("result", &json),
            ("attempts", "2"),
        ]);
        let job = Job::from_hash("j1", &h).expect("parses");
        assert_eq!(job.status, JobStatus::Done);
        assert_eq!(job.result, Some(result));
        assert_eq!(job.owner, Some(7));
        assert_eq!(job.attempts, 2);
        assert_eq!(job.created_at, "1970-01-01T00:00:00Z");
        let wire = serde_json::to_value(&job).expect("serializes");
        assert!(wire.get("owner").is_none(), "owner must not leak: {wire}");
        assert!(wire.get("error").is_none());
    }

    #[test]
    fn job_view_rejects_empty_or_unknown_status() {
        assert!(Job::from_hash("j", &HashMap::new()).is_none());
        assert!(Job::from_hash("j", &hash(&[("status", "weird"), ("model", "m")])).is_none());
    }
}
