//! Liveness, readiness and Prometheus metrics.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use redis::AsyncCommands;
use serde_json::json;

use shared::keys;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(get_health))
        .route("/ready", get(get_ready))
        .route("/metrics", get(get_metrics))
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, description = "process is up")))]
pub async fn get_health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when Redis and the database answer and a live worker serves the default model;
/// otherwise 503 naming what is missing.
#[utoipa::path(get, path = "/ready", tag = "ops", responses((status = 200, description = "ready"), (status = 503, description = "a dependency is missing")))]
pub async fn get_ready(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    let redis_ok = match state.redis.get().await {
        Ok(mut c) => redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .is_ok(),
        Err(_) => false,
    };
    checks.insert("redis", if redis_ok { "ok" } else { "unreachable" });
    let db_ok = state.db_call(state.db.ping()).await.is_ok();
    checks.insert("database", if db_ok { "ok" } else { "unreachable" });
    let workers = if redis_ok {
        live_workers(&state).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let serving = workers
        .iter()
        .any(|w| w.models.contains(&state.default_model));
    checks.insert(
        "worker",
        if serving {
            "ok"
        } else if workers.is_empty() {
            "no live worker"
        } else {
            "no live worker serves the default model"
        },
    );
    let ready = redis_ok && db_ok && serving;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let missing: Vec<&str> = checks
        .iter()
        .filter(|(_, v)| **v != "ok")
        .map(|(k, _)| *k)
        .collect();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
        "missing": missing,
        "default_model": state.default_model,
        "workers_live": workers.len(),
    });
    (status, Json(body)).into_response()
}

/// Heartbeats fresher than `WORKER_STALE`; stale entries are pruned.
pub async fn live_workers(
    state: &AppState,
) -> Result<Vec<shared::job::WorkerInfo>, crate::error::ApiError> {
    let mut conn = state.redis.get().await?;
    let cutoff = shared::time_util::now_ms() - state.cfg.worker_stale.as_millis() as i64;
    let _: () = conn.zrembyscore(keys::WORKERS, "-inf", cutoff).await?;
    let ids: Vec<String> = conn.zrange(keys::WORKERS, 0, -1).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys_: Vec<String> = ids.iter().map(|i| keys::worker(i)).collect();
    let raw: Vec<Option<String>> = conn.mget(&keys_).await?;
    Ok(raw
        .into_iter()
        .flatten()
        .filter_map(|j| serde_json::from_str(&j).ok())
        .collect())
}

/// Prometheus text; the queue depth gauges are refreshed on each scrape.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format")))]
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    if let Ok(mut conn) = state.redis.get().await {
        for model in state.registry.models.keys() {
            if let Ok(n) = conn.xlen::<_, u64>(keys::queue(model)).await {
                metrics::gauge!("queue_depth", "model" => model.clone()).set(n as f64);
            }
        }
        if let Ok(w) = live_workers(&state).await {
            metrics::gauge!("workers_live").set(w.len() as f64);
        }
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
