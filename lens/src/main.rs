//! `lens`: classify a whole folder of photos through the service as one collection.
//!
//! `lens login` saves a token; `lens classify DIR` walks the folder, sends every image the
//! collection does not hold yet (by path and SHA-256, so a second run resumes where the first
//! stopped), waits with a progress bar, and writes or sorts the results; `lens status` and
//! `lens export` read a collection back. Exit codes: 0 everything classified, 1 some files
//! failed, 2 an error stopped the command, 130 interrupted (Ctrl-C).

mod api;
mod classify;
mod config;
mod files;
mod progress;
mod sort;
mod status;

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::api::Api;

/// Classify folders of photos with the image-classification service.
#[derive(Debug, Parser)]
#[command(name = "lens", version, propagate_version = true)]
struct Cli {
    /// The API's base URL (default: the one `lens login` saved, else http://127.0.0.1:8000).
    #[arg(long, global = true, env = "LENS_API_URL")]
    api_url: Option<String>,
    /// A bearer token to use instead of the one `lens login` saved.
    #[arg(long, global = true, env = "LENS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log in and save the token (in $LENS_CONFIG_DIR, else ~/.config/lens; readable by you only).
    Login(LoginArgs),
    /// Revoke the saved token and forget it.
    Logout,
    /// Classify folders or files as one collection; run the same command again to resume.
    Classify(classify::Args),
    /// List your collections, or show one's counts, classes and ETA.
    Status(status::Args),
    /// Write a collection's results (streamed) to a file or standard output.
    Export(status::ExportArgs),
}

#[derive(Debug, clap::Args)]
struct LoginArgs {
    /// Your account's email.
    #[arg(long)]
    email: String,
    /// Read the password from standard input's first line instead of asking for it.
    #[arg(long)]
    password_stdin: bool,
}

/// What a command asks the process to exit with.
pub enum Done {
    Ok,
    SomeFailed,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tokio::select! {
        r = run(cli) => match r {
            Ok(Done::Ok) => ExitCode::SUCCESS,
            Ok(Done::SomeFailed) => ExitCode::from(1),
            Err(e) => {
                eprintln!("lens: error: {e:#}");
                ExitCode::from(2)
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!(
                "\nlens: interrupted. What was sent is kept: run the same command again to resume."
            );
            ExitCode::from(130)
        }
    }
}

async fn run(cli: Cli) -> Result<Done> {
    let saved = config::load()?;
    let base = cli
        .api_url
        .or_else(|| saved.api_url.clone())
        .unwrap_or_else(|| config::DEFAULT_API_URL.to_owned());
    let token = cli.token.or_else(|| saved.token.clone());
    match cli.command {
        Command::Login(args) => {
            let password = password(&args)?;
            let token = Api::new(&base, None)?.login(&args.email, &password).await?;
            config::save(&config::Saved {
                api_url: Some(base.clone()),
                token: Some(token),
            })?;
            eprintln!("logged in to {base} as {}", args.email);
            Ok(Done::Ok)
        }
        Command::Logout => {
            if let Some(token) = saved.token {
                Api::new(&base, Some(token))?.logout().await?;
            }
            config::save(&config::Saved {
                api_url: saved.api_url,
                token: None,
            })?;
            eprintln!("logged out");
            Ok(Done::Ok)
        }
        Command::Classify(args) => classify::run(&Api::logged_in(&base, token)?, args).await,
        Command::Status(args) => status::status(&Api::logged_in(&base, token)?, args).await,
        Command::Export(args) => status::export(&Api::logged_in(&base, token)?, args).await,
    }
}

fn password(args: &LoginArgs) -> Result<String> {
    if args.password_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    rpassword::prompt_password("password: ").context("reading the password")
}
