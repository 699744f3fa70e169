//! Tracing set-up shared by every binary: `RUST_LOG` filters (default `info`), `LOG_FORMAT=json`
//! switches to one JSON object per line for log collectors.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber; call once at the top of `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = fmt().with_env_filter(filter).with_target(true);
    // A second init (tests calling twice) is harmless, so the error is ignored.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// A binary's exit code from its outcome: a fatal error is logged (for collectors) and printed
/// to stderr prefixed with `binary` (for the person at the terminal), then the process fails.
pub fn exit_code(binary: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{binary}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
