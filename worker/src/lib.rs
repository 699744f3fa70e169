//! The worker: loads each model once, then pops jobs from the per-model Redis streams,
//! classifies them off the async runtime and writes the outcome back exactly once.
//!
//! Jobs are read in batches (`XREADGROUP COUNT` = free capacity) and run concurrently, one
//! task each, on the model's [`executor`]; outcomes that are ready together are finished in
//! one script call. Every guarantee holds per job.
//!
//! Reliability: a job stays in the stream's pending list until it is finished, so a worker
//! killed mid-job loses nothing: any live worker reclaims entries idle longer than the
//! visibility timeout. Bad images fail their own job; panics and timeouts are retried up to
//! `MAX_ATTEMPTS` and then dead-lettered.

pub mod budget;
pub mod cli;
pub mod config;
pub mod dead;
pub mod executor;
mod finish;
pub mod health;
mod heartbeat;
mod job;
mod load;
pub mod metrics;
pub mod model;
mod serve;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
use std::sync::Arc;

pub use load::load_models;
pub use serve::serve;

use crate::config::WorkerConfig;
use crate::model::{Classifier, Model};

/// Counters shown in heartbeats.
#[derive(Default)]
pub struct Stats {
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub busy: AtomicU32,
    /// CPU permits now (0: not set yet, the configured budget applies).
    pub cpus: AtomicUsize,
}

/// How one delivery ended, for logs and tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    Done,
    Failed,
    Retried,
    DeadLettered,
    /// Already finished elsewhere, expired, or unreadable.
    Skipped,
}

/// Loaded models by name.
pub type Models = HashMap<String, Arc<Model>>;

/// Loaded models plus everything needed to run jobs.
pub struct Worker {
    pub cfg: WorkerConfig,
    pub id: String,
    /// The classifiers by model name (ONNX models when serving, fakes in tests).
    pub models: HashMap<String, Arc<dyn Classifier>>,
    pub model_names: Vec<String>,
    pub stats: Arc<Stats>,
}
