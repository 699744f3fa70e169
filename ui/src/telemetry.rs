//! Logging setup: `RUST_LOG` filter, text or JSON lines.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber; a bad filter falls back to `info` instead of refusing to start.
pub fn init(filter: &str, json: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
