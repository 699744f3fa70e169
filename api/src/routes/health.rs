//! Liveness, readiness and Prometheus metrics (`/metrics` is mounted by [`crate::app`] or,
//! with `METRICS_BIND`, by [`crate::metrics_app`]).

use api_types::{Health, HealthStatus, Readiness, ReadyChecks, ReadyStatus};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shared::job::WorkerInfo;
use shared::queue::producer;

use crate::jobs::{live_workers, redis_nearly_full};
use crate::prom;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(get_health))
        .route("/ready", get(get_ready))
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health, description = "process is up")))]
pub async fn get_health() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

/// 200 when Redis (below its memory high-water mark) and the database answer and a live
/// worker serves the default model; otherwise 503 naming what is missing.
#[utoipa::path(get, path = "/ready", tag = "ops", responses((status = 200, body = Readiness, description = "ready"),
    (status = 503, body = Readiness, description = "not ready; `missing` names what is missing")))]
pub async fn get_ready(State(state): State<AppState>) -> Response {
    let reachable = |ok: bool| if ok { ReadyChecks::OK } else { "unreachable" };
    let redis = match state.redis.get().await {
        Ok(mut c) => match producer::ping(&mut c).await {
            // Over the high-water mark every upload is refused: not ready, and saying why.
            Ok(()) => match redis_nearly_full(&state, &mut c).await {
                Ok(true) => "nearly full",
                _ => ReadyChecks::OK,
            },
            Err(_) => "unreachable",
        },
        Err(_) => "unreachable",
    };
    let redis_ok = redis != "unreachable";
    let db_ok = state.db_call(state.db.ping()).await.is_ok();
    let workers = if redis_ok {
        live_workers(&state).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let (serving, worker) = worker_check(&workers, &state.default_model);
    let checks = ReadyChecks {
        database: reachable(db_ok).to_owned(),
        redis: redis.to_owned(),
        worker: worker.to_owned(),
    };
    let ready = redis == ReadyChecks::OK && db_ok && serving;
    // Alphabetical, like the checks object.
    let missing = [
        ("database", &checks.database),
        ("redis", &checks.redis),
        ("worker", &checks.worker),
    ]
    .into_iter()
    .filter(|(_, v)| *v != ReadyChecks::OK)
    .map(|(k, _)| k.to_owned())
    .collect();
    let body = Readiness {
        status: if ready {
            ReadyStatus::Ready
        } else {
            ReadyStatus::NotReady
        },
        checks,
        missing,
        default_model: state.default_model.clone(),
        workers_live: workers.len() as u64,
        sessions_retired: workers.iter().map(|w| w.retired_sessions()).sum(),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Whether a live worker serves `model`, and the readiness check's words for it. A worker
/// whose every session of the model was retired is on its way out: not serving.
fn worker_check(workers: &[WorkerInfo], model: &str) -> (bool, &'static str) {
    if workers.iter().any(|w| w.can_serve(model)) {
        (true, ReadyChecks::OK)
    } else if workers.is_empty() {
        (false, "no live worker")
    } else if workers.iter().any(|w| w.models.iter().any(|m| m == model)) {
        (
            false,
            "the live workers of the default model have no working inference session left",
        )
    } else {
        (false, "no live worker serves the default model")
    }
}

/// Prometheus text; the queue depth gauges are refreshed on each scrape.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format")))]
// Also refreshed at each scrape: workers_live and the process metrics. Served on the API port
// unless METRICS_BIND gives it an address of its own.
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    if let Ok(mut conn) = state.redis.get().await {
        for model in state.registry.models.keys() {
            if let Ok(n) = producer::depth(&mut conn, model).await {
                metrics::gauge!(prom::QUEUE_DEPTH, "model" => model.clone()).set(n as f64);
            }
        }
        if let Ok(w) = live_workers(&state).await {
            metrics::gauge!(prom::WORKERS_LIVE).set(w.len() as f64);
        }
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        prom::render(&state.metrics),
    )
        .into_response()
}
