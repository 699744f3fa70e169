//! Command-line flags and environment variables of the `ui` binary.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything the UI needs to start; each flag can also come from the environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ui",
    version,
    about = "Web pages for the image-classification service"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "UI_BIND", default_value = "127.0.0.1:8080")]
    pub ui_bind: SocketAddr,

    /// File the bound port is written to once listening: with `UI_BIND=...:0`, how a
    /// supervisor (tests, `xtask stack`) learns the port from the process itself.
    #[arg(long, env = "PORT_FILE")]
    pub port_file: Option<std::path::PathBuf>,

    /// Base URL of the API (the UI talks to it over HTTP only).
    #[arg(long, env = "API_URL", default_value = "http://127.0.0.1:8000")]
    pub api_url: String,

    /// Mark cookies `Secure` (set to true behind HTTPS).
    #[arg(long, env = "COOKIE_SECURE", default_value_t = false, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,

    /// Seconds the UI waits for an ordinary API answer before calling the service unavailable.
    #[arg(long, env = "API_TIMEOUT_SECS", default_value_t = 30)]
    pub api_timeout_secs: u64,

    /// Largest upload the UI accepts in one form post, in MiB (all files together).
    #[arg(long, env = "UI_MAX_UPLOAD_MB", default_value_t = 50)]
    pub max_upload_mb: usize,

    /// Log filter, e.g. `info` or `ui=debug,tower_http=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,

    /// `text` (default) or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// True when logs should be one JSON object per line.
    pub fn is_json(self) -> bool {
        self == LogFormat::Json
    }
}

impl Config {
    /// Timeout for API calls that do not hold (`?wait=`) on purpose.
    pub fn api_timeout(&self) -> Duration {
        Duration::from_secs(self.api_timeout_secs.max(1))
    }
}
