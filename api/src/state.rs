//! Shared application state and the guarded access to Redis and the database: each call has
//! a deadline, and an unreachable dependency becomes a quick 503, never a hang or a 500.

use std::future::Future;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use redis::aio::ConnectionManager;
use tokio::sync::{broadcast, Mutex};

use shared::Registry;

use crate::auth::Jwt;
use crate::config::ApiConfig;
use crate::db::Db;
use crate::error::ApiError;

/// A Redis connection made on first use and kept; if Redis is down at start-up the API still
/// starts, answers 503 where Redis is needed, and connects once Redis is back.
#[derive(Clone)]
pub struct RedisHandle {
    url: String,
    timeout: std::time::Duration,
    conn: Arc<Mutex<Option<ConnectionManager>>>,
}

impl RedisHandle {
    pub fn new(url: &str, timeout: std::time::Duration) -> Self {
        RedisHandle {
            url: url.to_owned(),
            timeout,
            conn: Arc::default(),
        }
    }

    /// A connection, or 503 if Redis cannot be reached within the deadline.
    pub async fn get(&self) -> Result<ConnectionManager, ApiError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(
            self.timeout,
            shared::redis_util::connect(&self.url, self.timeout),
        )
        .await
        .map_err(|_| {
            ApiError::unavailable(
                "the queue (Redis)",
                format!("no connection within {:?}", self.timeout),
            )
        })??;
        *slot = Some(c.clone());
        Ok(c)
    }
}

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<ApiConfig>,
    pub registry: Arc<Registry>,
    pub default_model: String,
    pub redis: RedisHandle,
    pub db: Db,
    pub jwt: Jwt,
    /// Finished job ids from the workers (`*` means "re-check everything").
    pub events: broadcast::Sender<Arc<str>>,
    pub metrics: PrometheusHandle,
    /// The bound on password hashes waiting or running.
    pub argon2: Arc<crate::auth::Argon2Queue>,
    /// Rate limits and log-in lock-outs.
    pub limits: Arc<crate::limits::Limits>,
    /// Short-lived readings the upload path checks (Redis memory, live workers).
    pub guards: Arc<Guards>,
    /// Requests held open waiting for a result (`MAX_WAITS`, `MAX_WAITS_PER_USER`).
    pub holds: Arc<crate::holds::Holds>,
}

/// Readings of Redis that every upload would otherwise repeat, kept for a second.
#[derive(Default)]
pub struct Guards {
    /// When Redis memory was last read, and whether it was over the high-water mark.
    pub redis_full: Mutex<Option<(std::time::Instant, bool)>>,
    /// When the live workers were last read, and the models they serve.
    pub served: Mutex<Option<(std::time::Instant, Vec<String>)>>,
}

impl AppState {
    /// Runs a database call under the configured deadline.
    pub async fn db_call<T, F>(&self, fut: F) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, sqlx::Error>>,
    {
        match tokio::time::timeout(self.cfg.db_timeout(), fut).await {
            Ok(r) => r.map_err(ApiError::from),
            Err(_) => Err(ApiError::unavailable(
                "the database",
                format!("no answer within {:?}", self.cfg.db_timeout()),
            )),
        }
    }

    /// The model a request asked for (or the default), checked against the registry.
    pub fn model(&self, requested: Option<&str>) -> Result<String, ApiError> {
        let name = requested
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .unwrap_or(&self.default_model);
        self.registry
            .get(name)
            .map_err(|e| ApiError::UnknownModel(e.to_string()))?;
        Ok(name.to_owned())
    }
}
