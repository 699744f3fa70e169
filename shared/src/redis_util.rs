//! Redis connections that survive outages: a `ConnectionManager` reconnects by itself, and
//! every command has a deadline so a dead server turns into a quick error, never a hang.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Client;

/// Opens a self-healing connection. Fails only if the URL is invalid or the first connection
/// attempt fails (callers decide whether to retry).
pub async fn connect(url: &str, timeout: Duration) -> redis::RedisResult<ConnectionManager> {
    let client = Client::open(url)?;
    ConnectionManager::new_with_config(client, manager_config(timeout)).await
}

/// Reconnect policy: a few quick retries with capped exponential backoff.
pub fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout)
        .set_number_of_retries(2)
        .set_exponent_base(2)
        .set_factor(50)
        .set_max_delay(1000)
}

/// Capped exponential backoff with full jitter for reconnect loops: attempt 0 waits up to
/// `base`, each further attempt doubles, never above `cap`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16));
    let max = exp.min(cap);
    let jitter: f64 = rand::random();
    max.mul_f64(0.5 + jitter / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        for attempt in 0..30 {
            let d = backoff(attempt, base, cap);
            assert!(d <= cap, "{attempt}: {d:?}");
            assert!(d >= base / 2, "{attempt}: {d:?}");
        }
        assert!(backoff(10, base, cap) >= cap / 2);
    }
}
