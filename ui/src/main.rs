//! The `ui` binary: read the config, start logging, serve the pages until SIGTERM or Ctrl-C.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let config = ui::config::Config::parse();
    ui::run(config, shared::shutdown::signal()).await
}
