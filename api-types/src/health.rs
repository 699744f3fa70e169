//! Liveness (`/health`) and readiness (`/ready`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /health`: the process is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
}

/// The only liveness answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
}

/// Whether the API can take work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    NotReady,
}

/// Each dependency's state: `ok`, or what is wrong (`unreachable`, `no live worker`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadyChecks {
    pub database: String,
    pub redis: String,
    /// `ok` when a live worker serves the default model.
    pub worker: String,
}

impl ReadyChecks {
    /// The value of a check that passed.
    pub const OK: &'static str = "ok";
}

/// `GET /ready`: `200` with `ready`, or `503` with `not_ready` and the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub status: ReadyStatus,
    pub checks: ReadyChecks,
    /// Names of the failing checks (`database`, `redis`, `worker`).
    pub missing: Vec<String>,
    pub default_model: String,
    /// Workers whose heartbeat is fresh.
    pub workers_live: u64,
    /// Inference sessions the live workers took out of service because a run never returned
    /// (a worker exits, to be restarted, once a model has none left).
    #[serde(default)]
    pub sessions_retired: u64,
}
