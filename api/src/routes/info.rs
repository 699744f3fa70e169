//! What this deployment serves: models, queue depth, live workers, version; and label lists.

use api_types::{ErrorBody, Info, ModelInfo, ModelLabels};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use shared::queue::producer;

use crate::error::{ApiError, AppPath as Path, Result};
use crate::extract::AuthUser;
use crate::jobs::live_workers;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/info", get(get_info))
        .route("/models/{name}/labels", get(get_labels))
}

/// What a person is shown for a model: its name as written, the published ImageNet top-1
/// accuracy (percent) and a speed class on a CPU worker. Unknown models show their registry
/// name, no accuracy, "medium".
pub fn display(name: &str) -> (&str, Option<f32>, &'static str) {
    match name {
        "resnet50" => ("ResNet-50", Some(75.0), "medium"),
        "resnet50-int8" => ("ResNet-50 (int8)", Some(74.8), "fast"),
        "efficientnet-lite0" => ("EfficientNet-Lite0", Some(75.0), "fast"),
        "resnet50-synthetic" => ("ResNet-50 (synthetic benchmark)", None, "medium"),
        other => (other, None, "medium"),
    }
}

/// Models (those of the registry, benchmark graphs only while a worker serves them), each
/// with display fields and whether a live worker serves it; with a token, the caller's own
/// unfinished jobs.
#[utoipa::path(get, path = "/info", tag = "info", security((), ("bearer" = [])), responses((status = 200, body = Info)))]
pub async fn get_info(
    State(state): State<AppState>,
    user: std::result::Result<AuthUser, ApiError>,
) -> Result<Json<Info>> {
    let workers = live_workers(&state).await?;
    let mut conn = state.redis.get().await?;
    let mut models = Vec::new();
    let mut total = 0;
    for (name, spec) in &state.registry.models {
        let serving = workers.iter().filter(|w| w.models.contains(name)).count();
        if spec.benchmark_only && serving == 0 {
            continue;
        }
        let depth = producer::depth(&mut conn, name).await?;
        total += depth;
        let (display_name, accuracy, speed) = display(name);
        models.push(ModelInfo {
            display_name: display_name.to_owned(),
            top1_accuracy_pct: accuracy,
            speed: speed.to_owned(),
            available: serving > 0,
            name: name.clone(),
            description: spec.description.clone(),
            input_size: spec.input_size,
            default: *name == state.default_model,
            workers: serving as u64,
            queue_depth: depth,
        });
    }
    let your_jobs_waiting = match user {
        Ok(u) => Some(producer::queued_by(&mut conn, u.id).await?.0),
        Err(_) => None,
    };
    Ok(Json(Info {
        version: shared::VERSION.to_owned(),
        default_model: state.default_model.clone(),
        queue_depth: total,
        workers_live: workers.len() as u64,
        models,
        your_jobs_waiting,
    }))
}

/// The class names of a model, index = class id.
#[utoipa::path(get, path = "/models/{name}/labels", tag = "info", params(("name" = String, Path, description = "model name")),
    responses((status = 200, body = ModelLabels),
        (status = 404, body = ErrorBody, description = "no such model")))]
pub async fn get_labels(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelLabels>> {
    let labels = state
        .registry
        .labels(
            &name,
            state.cfg.common.models_dir(),
            &state.cfg.common.registry_dir(),
        )
        .map_err(|_| ApiError::not_found("model"))?;
    Ok(Json(ModelLabels {
        model: name,
        labels,
    }))
}
