//! The `worker` command line: serving (the default) and the operator's subcommands.

use clap::{Parser, Subcommand};

use shared::config::conventions;

use crate::config::WorkerConfig;
use crate::health::HealthArgs;

/// `worker`: pops classification jobs from Redis and runs them through ONNX Runtime.
#[derive(Debug, Parser)]
#[command(name = "worker", version, mut_args = conventions)]
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
    /// List dead-lettered jobs.
    DeadList,
    /// Put a dead-lettered job back in its queue with a fresh attempt count.
    DeadRequeue {
        /// The job id (see `worker dead-list`).
        job_id: String,
    },
    /// Exit 0 when this worker's heartbeat in Redis is fresh, 1 with the reason otherwise
    /// (the container health check and liveness probe).
    Health(HealthArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/configuration.md's worker table is this command line's (`make config-docs`).
    #[test]
    fn the_settings_table_in_the_docs_matches_the_code() {
        let cmd = <Cli as clap::CommandFactory>::command();
        shared::settings_doc::assert_documented("worker", &cmd);
    }
}
