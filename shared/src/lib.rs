//! What the api and worker binaries must agree on, written once: job and result types,
//! the Redis queue protocol, the model registry, configuration and telemetry helpers.

pub mod config;
pub mod job;
pub mod queue;
pub mod redis_util;
pub mod registry;
pub mod settings_doc;
pub mod shutdown;
pub mod telemetry;
pub mod text;
pub mod time_util;
pub mod upload;

pub use job::{Job, JobResult, JobStatus, Prediction};
/// Kept at its old path for callers outside the protocol (tests, tools).
pub use queue::{keys, QueuedJob};
pub use registry::{ModelSpec, Registry};

/// The version every binary reports (`/info`, logs, heartbeats).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
