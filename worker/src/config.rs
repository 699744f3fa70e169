//! Worker configuration: every field is a flag and an environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use shared::config::CommonConfig;

/// `worker`: pops classification jobs from Redis and runs them through ONNX Runtime.
#[derive(Debug, Parser)]
#[command(name = "worker", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: WorkerConfig,
}

/// Subcommands besides the default (serve jobs).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve jobs (the default).
    Run,
    /// Measure raw session throughput and, with --api-url, end-to-end throughput.
    Bench(crate::bench::BenchArgs),
    /// List dead-lettered jobs.
    DeadList,
    /// Put a dead-lettered job back in its queue with a fresh attempt count.
    DeadRequeue {
        /// The job id (see `worker dead-list`).
        job_id: String,
    },
}

/// Settings of a serving worker.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Models this worker serves, comma-separated (default: every non-benchmark model whose file is present).
    #[arg(long, env = "MODELS", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Path of libonnxruntime.so (default: the project's `.ort/` install).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib_path: Option<PathBuf>,
    /// Intra-op threads per session (default: all cores).
    #[arg(long, env = "INTRA_THREADS")]
    pub intra_threads: Option<usize>,
    /// Worker id in heartbeats and as the Redis consumer name (default: host-pid-random).
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,
    /// Jobs in hand at once: while one runs on the session, the next is fetched and decoded.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 2)]
    pub concurrency: usize,
    /// Seconds a delivered job may stay unacknowledged before another worker reclaims it.
    #[arg(long, env = "VISIBILITY_TIMEOUT", default_value_t = 30)]
    pub visibility_timeout: u64,
    /// Deliveries after which a job is failed and dead-lettered.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// Seconds one job's decode + inference may take before it is abandoned and retried.
    #[arg(long, env = "JOB_TIMEOUT", default_value_t = 30)]
    pub job_timeout: u64,
    /// Seconds between heartbeats.
    #[arg(long, env = "HEARTBEAT_INTERVAL", default_value_t = 2)]
    pub heartbeat_interval: u64,
    /// Seconds to finish the job in hand after SIGTERM before handing it back.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value_t = 20)]
    pub shutdown_grace: u64,
    /// Let ONNX Runtime's intra-op threads spin between operators (faster alone on a box,
    /// but the spinning takes CPU from decoding and the other processes on a small machine).
    #[arg(long, env = "ORT_SPIN", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = true)]
    pub ort_spin: bool,
    /// Test-only: uploads ending in `#panic` panic the decoder, `#hang` stall it
    /// (`FAULT_INJECTION=1`, `true`, `yes` or `on` turn it on).
    #[arg(long, env = "FAULT_INJECTION", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub fault_injection: bool,
}

impl WorkerConfig {
    /// Threads for each session.
    pub fn threads(&self) -> usize {
        self.intra_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}
