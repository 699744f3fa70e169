//! `worker` binary: reads config, initializes telemetry, hands over to the library.

use clap::Parser;

use worker::cli::{Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    shared::telemetry::init();
    let cli = Cli::parse();
    let result = match cli.command {
        None | Some(Command::Run) => worker::serve(cli.config, shared::shutdown::signal()).await,
        Some(Command::DeadList) => worker::dead::list(&cli.config).await,
        Some(Command::DeadRequeue { job_id }) => worker::dead::requeue(&cli.config, &job_id).await,
        Some(Command::Health(args)) => worker::health::run(&cli.config, &args).await,
    };
    let code = shared::telemetry::exit_code("worker", result);
    if code != std::process::ExitCode::SUCCESS {
        // Leave at once: a wedged inference thread would keep the runtime's shutdown waiting.
        std::process::exit(1);
    }
    code
}
