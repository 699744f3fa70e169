//! Command-line flags and environment variables of the `ui` binary.

use std::net::SocketAddr;
use std::time::Duration;

use shared::config::{conventions, duration_secs, parse_bool};

/// Everything the UI needs to start; each flag can also come from the environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ui",
    version,
    about = "Web pages for the image-classification service",
    mut_args = conventions
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

    /// The address people reach the UI at (e.g. `https://lens.example.org`); with `https`,
    /// cookies are marked `Secure` unless COOKIE_SECURE says otherwise.
    #[arg(long, env = "UI_PUBLIC_URL")]
    pub ui_public_url: Option<String>,

    /// Mark cookies `Secure` (default: true when UI_PUBLIC_URL is https, else false).
    #[arg(long, env = "COOKIE_SECURE", value_parser = parse_bool)]
    pub cookie_secure: Option<bool>,

    /// How long the UI waits for an ordinary API answer before calling the service unavailable
    /// (bare number: seconds; old name `API_TIMEOUT_SECS`).
    #[arg(long, env = "API_TIMEOUT", value_parser = duration_secs, default_value = "30s")]
    pub api_timeout: Duration,

    /// Largest upload the UI accepts in one form post, in MiB (all files together).
    #[arg(long, env = "UI_MAX_UPLOAD_MB", default_value_t = 50)]
    pub max_upload_mb: usize,

    /// Longest one request may take, its body and the API calls made for it included; then
    /// the page says it took too long (408). Bounds a client that trickles a form post.
    #[arg(long, env = "UI_REQUEST_TIMEOUT", value_parser = duration_secs, default_value = "120s")]
    pub request_timeout: Duration,

    #[command(flatten)]
    pub server: http_server::ServerLimits,
}

impl Config {
    /// Whether cookies carry `Secure`: as configured, else whether the public URL is https.
    pub fn cookie_secure(&self) -> bool {
        self.cookie_secure.unwrap_or_else(|| {
            self.ui_public_url
                .as_deref()
                .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://"))
        })
    }

    /// Timeout for API calls that do not hold (`?wait=`) on purpose; at least a second, as
    /// before the setting took units.
    pub fn api_timeout(&self) -> Duration {
        self.api_timeout.max(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn timeout_takes_units_and_cookie_flag_one_boolean_spelling() {
        let c = Config::try_parse_from(["ui", "--api-timeout", "1500ms", "--cookie-secure=yes"])
            .expect("parses");
        assert_eq!(c.api_timeout(), Duration::from_millis(1500));
        assert!(c.cookie_secure());
        let c = Config::try_parse_from(["ui", "--api-timeout", "0"]).expect("parses");
        assert_eq!(c.api_timeout(), Duration::from_secs(1));
        assert!(!c.cookie_secure());
        assert!(Config::try_parse_from(["ui", "--cookie-secure=sometimes"]).is_err());
    }

    #[test]
    fn cookies_are_secure_by_default_behind_an_https_public_url() {
        let parse = |args: &[&str]| Config::try_parse_from(args).expect("parses");
        assert!(parse(&["ui", "--ui-public-url", "https://lens.example.org"]).cookie_secure());
        assert!(!parse(&["ui", "--ui-public-url", "http://127.0.0.1:8080"]).cookie_secure());
        assert!(!parse(&[
            "ui",
            "--ui-public-url",
            "https://lens.example.org",
            "--cookie-secure=false"
        ])
        .cookie_secure());
    }

    /// docs/configuration.md's ui table is this command line's (`make config-docs`).
    #[test]
    fn the_settings_table_in_the_docs_matches_the_code() {
        let cmd = <Config as clap::CommandFactory>::command();
        shared::settings_doc::assert_documented("ui", &cmd);
    }
}
