//! The Open Inference Protocol (KServe V2, Triton's HTTP/REST API) beside our own, on the same
//! port, so `tritonclient`, KServe's SDK and `perf_analyzer` work unchanged. Health, server
//! and model metadata need no token (like `/health` and `/info`); inference needs the same
//! bearer token as `/predict`.
//!
//! Each row of an inference request is one job, checked and queued exactly like an upload
//! (the same limits, refusals and cache), all rows before any is queued; the workers run them
//! in parallel and the answer waits for all of them (`PREDICT_TIMEOUT`). A BYTES input carries
//! encoded images; an FP32 input `[N, 3, S, S]` carries tensors already preprocessed as the
//! registry says, which the worker feeds to the model as they are. Errors are
//! `{"error": "message"}` (the protocol's shape) with this API's statuses.

pub mod tensors;
pub mod wire;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::time::Duration;

use api_types::{ErrorBody, ErrorCode, JobStatus};
use shared::ModelSpec;

use crate::error::ApiError;
use crate::extract::{AuthUser, ClientAddr};
use crate::jobs::{self, Upload};
use crate::routes::upload::read_body_first;
use crate::state::AppState;
use tensors::{Parsed, IMAGE_INPUT, MAX_BATCH, PROBABILITIES};
use wire::{ConfigTensor, ModelConfig, ModelMetadata, ServerMetadata, TensorMetadata, V2Error};

/// The header that says how long the JSON part of a binary body is.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The V2 routes; an inference body may be up to twice `upload_limit`, an upload's body limit
/// (each row is still one upload's size at most).
pub fn router(upload_limit: usize) -> Router<AppState> {
    let limit = 2 * upload_limit;
    let infer_route =
        |route: axum::routing::MethodRouter<AppState>| -> axum::routing::MethodRouter<AppState> {
            route
                .layer::<_, std::convert::Infallible>(axum::middleware::from_fn_with_state(
                    limit,
                    read_body_first,
                ))
                .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(limit))
        };
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{model}", get(model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(version_metadata),
        )
        .route("/v2/models/{model}/ready", get(model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(version_ready),
        )
        .route("/v2/models/{model}/config", get(model_config))
        .route("/v2/models/{model}/infer", infer_route(post(infer)))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            infer_route(post(infer_version)),
        )
        .layer(axum::middleware::map_response(v2_errors))
}

/// Every error of these routes in the protocol's shape, `{"error": "message"}`, whoever made
/// it (a handler, an extractor such as the token check, a layer such as the body limit); the
/// status and headers (`Retry-After`) stay.
async fn v2_errors(resp: Response) -> Response {
    if resp.status().is_success() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let error = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(ErrorBody { error }) => error.message,
        Err(_) if bytes.is_empty() => parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_owned(),
        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&V2Error { error }).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The server's name, version and extensions.
#[utoipa::path(get, path = "/v2", tag = "v2",
    responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "image-classifier".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec!["binary_tensor_data".into(), "classification".into()],
    })
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/v2/health/live", tag = "v2",
    responses((status = 200, description = "live")))]
pub async fn live() -> StatusCode {
    StatusCode::OK
}

/// 200 when `/ready` is 200 (Redis, the database and a worker of the default model), else
/// 400: the protocol answers "false" with a 4xx status (Triton's is 400), and every probe that
/// wants a 2xx treats it as not ready.
#[utoipa::path(get, path = "/v2/health/ready", tag = "v2",
    responses((status = 200, description = "ready"),
        (status = 400, body = V2Error, description = "not ready; `/ready` says what is missing")))]
pub async fn ready(state: State<AppState>) -> Response {
    let status = super::health::get_ready(state).await.status();
    if status.is_success() {
        StatusCode::OK.into_response()
    } else {
        bad_request("not ready: GET /ready says what is missing".into()).into_response()
    }
}

/// The registry entry of `model`; 404 for a model the registry does not have.
fn spec<'a>(state: &'a AppState, model: &str) -> Result<&'a ModelSpec, ApiError> {
    state
        .registry
        .get(model)
        .map_err(|_| ApiError::NotFound(format!("unknown model `{model}`; GET /info lists them")))
}

/// The model's one version: the first 12 hex digits of its file's SHA-256, or `1`.
fn version_of(spec: &ModelSpec) -> String {
    spec.sha256
        .as_deref()
        .map_or_else(|| "1".to_owned(), |s| s.chars().take(12).collect())
}

/// `spec` of `model` when `version` (if any) is its version; 404 otherwise.
fn versioned<'a>(
    state: &'a AppState,
    model: &str,
    version: Option<&str>,
) -> Result<&'a ModelSpec, ApiError> {
    let spec = spec(state, model)?;
    match version {
        Some(v) if v != version_of(spec) => Err(ApiError::NotFound(format!(
            "model `{model}` has one version, {}",
            version_of(spec)
        ))),
        _ => Ok(spec),
    }
}

/// How many classes the model tells apart (the length of its label list).
fn class_count(state: &AppState, model: &str) -> Result<Vec<String>, ApiError> {
    state
        .registry
        .labels(
            model,
            state.cfg.common.models_dir(),
            &state.cfg.common.registry_dir(),
        )
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("labels of {model}: {e}")))
}

fn metadata(
    state: &AppState,
    model: &str,
    version: Option<&str>,
) -> Result<ModelMetadata, ApiError> {
    let spec = versioned(state, model, version)?;
    let classes = class_count(state, model)?.len() as i64;
    let s = i64::from(spec.input_size);
    Ok(ModelMetadata {
        name: model.to_owned(),
        versions: vec![version_of(spec)],
        platform: "onnxruntime_onnx".into(),
        inputs: vec![
            TensorMetadata {
                name: IMAGE_INPUT.into(),
                datatype: "BYTES".into(),
                shape: vec![-1],
            },
            TensorMetadata {
                name: spec.input_name.clone(),
                datatype: "FP32".into(),
                shape: vec![-1, 3, s, s],
            },
        ],
        outputs: vec![TensorMetadata {
            name: PROBABILITIES.into(),
            datatype: "FP32".into(),
            shape: vec![-1, classes],
        }],
    })
}

/// A model's inputs (a request carries exactly one of them) and output.
#[utoipa::path(get, path = "/v2/models/{model}", tag = "v2",
    params(("model" = String, Path, description = "a registry model")),
    responses((status = 200, body = ModelMetadata), (status = 404, body = V2Error, description = "unknown model")))]
pub async fn model_metadata(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<ModelMetadata>, ApiError> {
    metadata(&state, &model, None).map(Json)
}

/// [`model_metadata`] of one version.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}", tag = "v2",
    params(("model" = String, Path, description = "a registry model"), ("version" = String, Path, description = "its version")),
    responses((status = 200, body = ModelMetadata), (status = 404, body = V2Error, description = "unknown model or version")))]
pub async fn version_metadata(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<ModelMetadata>, ApiError> {
    metadata(&state, &model, Some(&version)).map(Json)
}

/// Whether a live worker serves `model` (and has a working session for it): 200, else 400
/// (the protocol's "false" is a 4xx, Triton's 400).
async fn serving(
    state: &AppState,
    model: &str,
    version: Option<&str>,
) -> Result<StatusCode, ApiError> {
    versioned(state, model, version)?;
    let workers = jobs::live_workers(state).await?;
    if workers.iter().any(|w| w.can_serve(model)) {
        Ok(StatusCode::OK)
    } else {
        Err(bad_request(format!(
            "not ready: no live worker serves {model}"
        )))
    }
}

/// 200 when a live worker serves the model.
#[utoipa::path(get, path = "/v2/models/{model}/ready", tag = "v2",
    params(("model" = String, Path, description = "a registry model")),
    responses((status = 200, description = "a live worker serves it"), (status = 400, body = V2Error, description = "not ready: no live worker serves it"), (status = 404, body = V2Error, description = "unknown model")))]
pub async fn model_ready(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<StatusCode, ApiError> {
    serving(&state, &model, None).await
}

/// [`model_ready`] of one version.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/ready", tag = "v2",
    params(("model" = String, Path, description = "a registry model"), ("version" = String, Path, description = "its version")),
    responses((status = 200, description = "a live worker serves it"), (status = 400, body = V2Error, description = "not ready: no live worker serves it"), (status = 404, body = V2Error, description = "unknown model or version")))]
pub async fn version_ready(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    serving(&state, &model, Some(&version)).await
}

/// The part of Triton's model configuration that clients read (`perf_analyzer` needs it).
#[utoipa::path(get, path = "/v2/models/{model}/config", tag = "v2",
    params(("model" = String, Path, description = "a registry model")),
    responses((status = 200, body = ModelConfig), (status = 404, body = V2Error, description = "unknown model")))]
pub async fn model_config(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<ModelConfig>, ApiError> {
    let spec = spec(&state, &model)?;
    let classes = class_count(&state, &model)?.len() as i64;
    let s = i64::from(spec.input_size);
    Ok(Json(ModelConfig {
        name: model,
        platform: "onnxruntime_onnx".into(),
        backend: "onnxruntime".into(),
        max_batch_size: MAX_BATCH as u32,
        input: vec![
            ConfigTensor {
                name: IMAGE_INPUT.into(),
                data_type: "TYPE_STRING".into(),
                dims: vec![1],
            },
            ConfigTensor {
                name: spec.input_name.clone(),
                data_type: "TYPE_FP32".into(),
                dims: vec![3, s, s],
            },
        ],
        output: vec![ConfigTensor {
            name: PROBABILITIES.into(),
            data_type: "TYPE_FP32".into(),
            dims: vec![classes],
        }],
    }))
}

/// Classifies every row of the request; the answer has the outputs it asks for.
#[utoipa::path(post, path = "/v2/models/{model}/infer", tag = "v2", security(("bearer" = [])),
    params(("model" = String, Path, description = "a registry model"),
        ("Inference-Header-Content-Length" = Option<u64>, Header, description = "binary extension: the JSON header's length; the tensors follow it")),
    request_body(content = wire::InferRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "every row classified: the JSON answer, or with a binary output the JSON header (`Inference-Header-Content-Length` bytes) followed by the binary outputs in order",
            content((wire::InferResponse = "application/json"), (wire::BinaryInferResponse = "application/octet-stream"))),
        (status = 400, body = V2Error, description = "a request that is not a V2 request, a tensor whose name, shape, datatype or size does not match, an image that is not one, or a row the worker could not classify"),
        (status = 404, body = V2Error, description = "unknown model or version"),
        (status = 413, body = V2Error, description = "the body is over twice `MAX_UPLOAD_BYTES`, a row over `MAX_UPLOAD_BYTES`, or an image over `MAX_PIXELS`"),
        (status = 415, body = V2Error, description = "a row that is not JPEG, PNG, WebP, GIF or BMP"),
        (status = 422, body = V2Error, description = "an image too small, or a model no live worker serves"),
        (status = 429, body = V2Error, description = "the caller's rate, quota or waiting requests are used up, or the queue is full; retry after `Retry-After` seconds"),
        (status = 503, body = V2Error, description = "Redis or the database cannot be reached, or Redis is nearly full"),
        (status = 504, body = V2Error, description = "no result within `PREDICT_TIMEOUT`; the jobs go on")))]
pub async fn infer(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    user: AuthUser,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = Request {
        model,
        version: None,
        headers,
        body,
    };
    infer_on(&state, addr, &user, request).await
}

/// [`infer`] on one version.
#[utoipa::path(post, path = "/v2/models/{model}/versions/{version}/infer", tag = "v2", security(("bearer" = [])),
    params(("model" = String, Path, description = "a registry model"), ("version" = String, Path, description = "its version"),
        ("Inference-Header-Content-Length" = Option<u64>, Header, description = "binary extension: the JSON header's length; the tensors follow it")),
    request_body(content = wire::InferRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "as for `/v2/models/{model}/infer`",
            content((wire::InferResponse = "application/json"), (wire::BinaryInferResponse = "application/octet-stream"))),
        (status = 400, body = V2Error, description = "as for `/v2/models/{model}/infer`"),
        (status = 404, body = V2Error, description = "unknown model or version"),
        (status = 413, body = V2Error, description = "as for `/v2/models/{model}/infer`"),
        (status = 415, body = V2Error, description = "as for `/v2/models/{model}/infer`"),
        (status = 422, body = V2Error, description = "as for `/v2/models/{model}/infer`"),
        (status = 429, body = V2Error, description = "as for `/v2/models/{model}/infer`"),
        (status = 503, body = V2Error, description = "as for `/v2/models/{model}/infer`"),
        (status = 504, body = V2Error, description = "as for `/v2/models/{model}/infer`")))]
pub async fn infer_version(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    user: AuthUser,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = Request {
        model,
        version: Some(version),
        headers,
        body,
    };
    infer_on(&state, addr, &user, request).await
}

/// One inference request as it arrived.
struct Request {
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

async fn infer_on(
    state: &AppState,
    addr: Option<std::net::IpAddr>,
    user: &AuthUser,
    Request {
        model,
        version,
        headers,
        body,
    }: Request,
) -> Result<Response, ApiError> {
    let state = state.clone();
    let spec = versioned(&state, &model, version.as_deref())?.clone();
    let header_len = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(|| {
                    bad_request("Inference-Header-Content-Length must be a whole number".into())
                })?,
        ),
    };
    let parsed = tensors::parse(&body, header_len, &spec).map_err(bad_request)?;
    drop(body);
    let hold = state.holds.try_hold(user.id).ok_or_else(|| {
        metrics::counter!("rate_limited_total", "limit" => "waits").increment(1);
        ApiError::RateLimited(
            "too many requests are waiting for results; retry in a second".into(),
            1,
        )
    })?;
    let probs = classify_rows(&state, user, addr, &model, &parsed, &hold).await?;
    let labels = if parsed.outputs.iter().any(|o| o.classification.is_some()) {
        class_count(&state, &model)?
    } else {
        Vec::new()
    };
    let (head, blobs) = tensors::respond(&model, &version_of(&spec), &parsed, &probs, &labels);
    let json = serde_json::to_vec(&head).map_err(|e| ApiError::Internal(e.into()))?;
    if blobs.is_empty() && parsed.outputs.iter().all(|o| !o.binary) {
        return Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response());
    }
    let length = json.len().to_string();
    let mut out = json;
    out.extend_from_slice(&blobs);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::HeaderName::from_static(HEADER_LENGTH), length),
        ],
        out,
    )
        .into_response())
}

fn bad_request(message: String) -> ApiError {
    ApiError::BadRequest {
        code: ErrorCode::BadRequest,
        message,
    }
}

/// A refusal of row `i`, saying which row; 5xx errors (whose message is not sent) and the
/// rate limit (whose `Retry-After` must stay) pass unchanged.
fn in_row(i: usize, e: ApiError) -> ApiError {
    let (status, code) = e.parts();
    if status.is_server_error() || matches!(e, ApiError::RateLimited(..)) {
        return e;
    }
    ApiError::BadRequest {
        code,
        message: format!("row {i}: {e}"),
    }
}

/// Checks every row as an upload, then queues them all; returns their job ids.
async fn queue_rows(
    state: &AppState,
    user: &AuthUser,
    addr: Option<std::net::IpAddr>,
    model: &str,
    parsed: &Parsed,
    top_k: usize,
) -> Result<Vec<String>, ApiError> {
    let checked = parsed
        .rows
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let up = Upload {
                bytes: bytes.clone(),
                input: parsed.input,
                model: Some(model.to_owned()),
                top_k: Some(top_k),
                scores: true,
                original_name: None,
            };
            jobs::check(state, user, up).map_err(|e| in_row(i, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut ids = Vec::with_capacity(checked.len());
    for (i, up) in checked.into_iter().enumerate() {
        let job = jobs::submit_checked(state, user, addr, up)
            .await
            .map_err(|e| in_row(i, e))?;
        ids.push(job.job_id);
    }
    Ok(ids)
}

/// Checks every row as an upload, queues them all, waits for all of them (one hold, one
/// `PREDICT_TIMEOUT`) and returns each row's class probabilities.
async fn classify_rows(
    state: &AppState,
    user: &AuthUser,
    addr: Option<std::net::IpAddr>,
    model: &str,
    parsed: &Parsed,
    hold: &crate::holds::Hold,
) -> Result<Vec<Vec<f32>>, ApiError> {
    // The history keeps the best few classes, as for an upload; the answer is built from all.
    let top_k = parsed
        .outputs
        .iter()
        .filter_map(|o| o.classification)
        .max()
        .unwrap_or(api_types::DEFAULT_TOP_K)
        .clamp(1, api_types::MAX_TOP_K);
    let ids = queue_rows(state, user, addr, model, parsed, top_k).await?;
    let deadline = tokio::time::Instant::now() + state.cfg.predict_timeout;
    let mut probs = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let job = jobs::wait(state, user, id, left.max(Duration::from_millis(1)), hold).await?;
        match job.status {
            JobStatus::Done => probs.push(jobs::scores(state, id).await?.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("job {id} is done without its scores"))
            })?),
            JobStatus::Failed => {
                return Err(bad_request(format!(
                    "row {i}: {}",
                    job.error
                        .unwrap_or_else(|| "it could not be classified".into())
                )))
            }
            _ => {
                return Err(ApiError::Timeout(format!(
                    "no result for row {i} within {} s; its job {id} goes on",
                    state.cfg.predict_timeout.as_secs_f64()
                )))
            }
        }
    }
    Ok(probs)
}
