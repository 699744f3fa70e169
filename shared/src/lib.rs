//! What the api and worker binaries must agree on, written once: job and result types,
//! Redis key names, the model registry, configuration and telemetry helpers.

pub mod config;
pub mod job;
pub mod keys;
pub mod redis_util;
pub mod registry;
pub mod shutdown;
pub mod telemetry;
pub mod time_util;
pub mod upload;

pub use job::{Job, JobFromHash, JobResult, JobStatus, Prediction, QueuedJob};
pub use registry::{ModelSpec, Registry};

/// The version every binary reports (`/info`, logs, heartbeats).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
