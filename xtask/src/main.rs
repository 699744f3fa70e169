//! `cargo xtask`: project tasks written in Rust instead of shell. `stack` starts a private
//! stack through `test_support::Stack` for `make run`, the benchmark, the soak and the
//! browser tests, so "start Redis + api + workers (+ ui) on free ports and wait until ready"
//! is written once.

mod stack;

use clap::{Parser, Subcommand};

/// Project tasks.
#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Project tasks (cargo xtask <task>)")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Start api, workers and optionally the ui (plus Redis and a database) on port 0, print
    /// the URLs, and stay in the foreground until SIGINT/SIGTERM (or until COMMAND exits),
    /// then stop everything.
    Stack(stack::StackArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Stack(args) => stack::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
