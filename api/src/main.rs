//! `api` binary: reads config, initializes telemetry, hands over to the library.

use clap::Parser;

use api::config::{Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    shared::telemetry::init();
    let cli = Cli::parse();
    let result = match cli.command {
        None | Some(Command::Serve) => match api::Application::build(cli.config).await {
            Ok(app) => app.run(shared::shutdown::signal()).await,
            Err(e) => Err(e),
        },
        Some(Command::CreateAdmin) => create_admin(cli.config).await,
    };
    shared::telemetry::exit_code("api", result)
}

async fn create_admin(cfg: api::config::ApiConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        cfg.admin_email.is_some() && cfg.admin_password.is_some(),
        "set ADMIN_EMAIL and ADMIN_PASSWORD"
    );
    api::build_state(cfg).await?;
    println!("admin account ready");
    Ok(())
}
