//! Job types both binaries name. The view of a job the API returns (and the result a worker
//! writes) is wire format and lives in `api_types`; it is re-exported here so api and worker
//! name it `shared::Job` as before. The queue's own records are in [`crate::queue::records`].

use serde::{Deserialize, Serialize};

pub use api_types::{Job, JobResult, JobStatus, Prediction, DEFAULT_TOP_K, MAX_TOP_K};

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
