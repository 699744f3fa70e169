//! The seeds' synchronous endpoint: upload, wait for the worker, answer with the top class.
//! Errors carry `success: false` beside the usual `error` object.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};

use api_types::{ErrorBody, ErrorCode, JobStatus, PredictError, PredictResponse, UploadForm};

use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::extract::ClientAddr;
use crate::jobs;
use crate::routes::upload::{read_body_first, read_upload};
use crate::state::AppState;

pub fn router(body_limit: usize) -> Router<AppState> {
    Router::new().route(
        "/predict",
        post(create_predict)
            .layer(axum::middleware::from_fn_with_state(
                body_limit,
                read_body_first,
            ))
            .layer(axum::middleware::map_response(with_success_false)),
    )
}

/// The seeds' error shape: every error of this route (the handler's and those of the layers and
/// extractors before it, e.g. a 401 or 413) also says `"success": false`.
async fn with_success_false(resp: Response) -> Response {
    if resp.status().is_success() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(&bytes) else {
        // Every error here is an `ApiError`; anything else passes through untouched.
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let failure = PredictError {
        success: false,
        error,
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&failure).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Classifies one image synchronously; 504 when no result arrives within `PREDICT_TIMEOUT`.
#[utoipa::path(post, path = "/predict", tag = "predictions", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, body = PredictResponse),
        // 400, 413, 415, 422, 429, 503: `openapi::UPLOAD_REFUSALS`, one list for both uploads.
        (status = 504, body = PredictError, description = "no result within `PREDICT_TIMEOUT`; the job goes on")))]
pub async fn create_predict(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    user: AuthUser,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Json<PredictResponse>, ApiError> {
    predict(&state, &user, addr, form).await.map(Json)
}

async fn predict(
    state: &AppState,
    user: &AuthUser,
    addr: Option<std::net::IpAddr>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<PredictResponse, ApiError> {
    // A place to wait in first: a job submitted without one would have no answer to give.
    let hold = state.holds.try_hold(user.id).ok_or_else(|| {
        metrics::counter!("rate_limited_total", "limit" => "waits").increment(1);
        ApiError::RateLimited(
            "too many requests are waiting for results; retry in a second or use \
             POST /predictions and poll"
                .into(),
            1,
        )
    })?;
    let upload = read_upload(form, state.cfg.max_upload_bytes).await?;
    let submitted = jobs::submit(state, user, addr, upload).await?;
    let timeout = state.cfg.predict_timeout;
    let job = jobs::wait(state, user, &submitted.job_id, timeout, &hold).await?;
    match (job.status, job.result) {
        (JobStatus::Done, Some(r)) => {
            let top = r.predictions.first();
            Ok(PredictResponse {
                success: true,
                prediction: top.map(|p| p.label.clone()),
                score: top.map(|p| p.score),
                image_file_name: job.image_file_name,
                result: r,
                job_id: job.job_id,
                cached: job.cached,
            })
        }
        (JobStatus::Failed, _) => Err(ApiError::BadRequest {
            code: ErrorCode::InvalidImage,
            message: job
                .error
                .unwrap_or_else(|| "the image could not be classified".into()),
        }),
        _ => Err(ApiError::Timeout(format!(
            "no result within {} s; the job {} is still {} - poll /predictions/{} for it",
            state.cfg.predict_timeout.as_secs_f64(),
            job.job_id,
            job.status.as_str(),
            job.job_id
        ))),
    }
}
