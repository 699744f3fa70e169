//! The `ui` binary: read the config, start logging, serve the pages.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ui::config::Config::parse();
    ui::telemetry::init(&config.rust_log, config.log_format.is_json());
    ui::run(config).await
}
