//! Job types both binaries name. The view of a job the API returns (and the result a worker
//! writes) is wire format and lives in `api_types`; it is re-exported here so api and worker
//! name it `shared::Job` as before. The queue's own records are in [`crate::queue::records`].

use serde::{Deserialize, Serialize};

pub use api_types::{Job, JobResult, JobStatus, Prediction, DEFAULT_TOP_K, MAX_TOP_K};

/// A worker's heartbeat, stored as JSON under [`crate::queue::keys::worker`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// The machine (kernel boot id: the same in every container on one host), so workers
    /// sharing a machine's CPUs find each other.
    #[serde(default)]
    pub machine: String,
    /// The worker's CPU budget now (whole CPUs).
    #[serde(default)]
    pub cpus: u32,
    /// True when the budget is the worker's own (WORKER_CPUS or a cgroup quota); false when
    /// it is a share of the machine's CPUs that changes as workers come and go.
    #[serde(default)]
    pub cpus_owned: bool,
    /// Inference sessions per model: in service and retired (a run that never returned).
    #[serde(default)]
    pub sessions: std::collections::BTreeMap<String, SessionHealth>,
}

/// The sessions of one model in a worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionHealth {
    /// Sessions in service.
    pub healthy: u32,
    /// Sessions taken out of service because a run never returned (JOB_TIMEOUT).
    pub retired: u32,
}

impl WorkerInfo {
    /// True unless the heartbeat says every session of `model` was retired (heartbeats
    /// without session counts, from older workers, count as serving).
    pub fn can_serve(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == model)
            && self.sessions.get(model).is_none_or(|s| s.healthy > 0)
    }

    /// Retired sessions over all models.
    pub fn retired_sessions(&self) -> u64 {
        self.sessions.values().map(|s| u64::from(s.retired)).sum()
    }
}
