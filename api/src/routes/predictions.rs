//! Asynchronous classification: submit, read (optionally waiting), list history, and the
//! image and thumbnail of a job.

use std::time::Duration;

use api_types::{ErrorBody, Job, JobAccepted, JobPage, JobStatus, UploadForm};
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::db;
use crate::error::{ApiError, AppPath as Path, AppQuery as Query, Result};
use crate::jobs;
use crate::limits::ClientAddr;
use crate::routes::upload::{read_body_first, read_upload};
use crate::routes::Page;
use crate::state::AppState;

/// Longest `?wait` a client may ask for.
pub const MAX_WAIT_SECS: f64 = 30.0;

pub fn router(body_limit: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/predictions",
            get(list_predictions).post(create_prediction).layer(
                axum::middleware::from_fn_with_state(body_limit, read_body_first),
            ),
        )
        .route("/predictions/{job_id}", get(get_prediction))
        .route("/predictions/{job_id}/image", get(get_prediction_image))
        .route(
            "/predictions/{job_id}/thumbnail",
            get(get_prediction_thumbnail),
        )
}

/// Queues an image: 202 with the job id, or 200 with the finished result from the cache.
#[utoipa::path(post, path = "/predictions", tag = "predictions", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, body = JobAccepted, description = "queued; poll `status_url` (also in `Location`)"),
        (status = 200, body = Job, description = "the same image was already classified by this model: the cached result"),
        // 400, 413, 415, 422, 429, 503: `openapi::UPLOAD_REFUSALS`, one list for both uploads.
    ))]
pub async fn create_prediction(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    user: AuthUser,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response> {
    let upload = read_upload(form, state.cfg.max_upload_bytes).await?;
    let job = jobs::submit(&state, &user, addr, upload).await?;
    if job.cached {
        return Ok((StatusCode::OK, Json(job)).into_response());
    }
    let url = format!("/predictions/{}", job.job_id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, url.clone())],
        Json(JobAccepted {
            job_id: job.job_id,
            status: JobStatus::Queued,
            status_url: url,
        }),
    )
        .into_response())
}

/// `?wait=S`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Seconds (at most 30) to hold the request until the job finishes.
    #[param(minimum = 0.0, maximum = 30.0)]
    pub wait: Option<f64>,
}

/// A job's state; with `?wait` held until it finishes (woken by the worker) or S passes.
#[utoipa::path(get, path = "/predictions/{job_id}", tag = "predictions", security(("bearer" = [])), params(("job_id" = uuid::Uuid, Path, description = "the id `POST /predictions` answered with (a UUID); anything else is 400"), WaitQuery),
    responses((status = 200, body = Job, description = "the job; unfinished when `wait` passed first"),
        (status = 400, body = ErrorBody, description = "`bad_request`: `job_id` is not a UUID, or `wait` is not a number"),
        (status = 404, body = ErrorBody, description = "no such job of the caller's"),
        (status = 422, body = ErrorBody, description = "`validation_failed`: `wait` outside 0..=30")))]
pub async fn get_prediction(
    State(state): State<AppState>,
    user: AuthUser,
    Path(job_id): Path<uuid::Uuid>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Job>> {
    let secs = q.wait.unwrap_or(0.0);
    if !(0.0..=MAX_WAIT_SECS).contains(&secs) {
        return Err(ApiError::Validation(
            format!("wait must be between 0 and {MAX_WAIT_SECS} seconds"),
            "wait",
        ));
    }
    Ok(Json(
        jobs::wait(
            &state,
            &user,
            &job_id.to_string(),
            Duration::from_secs_f64(secs),
        )
        .await?,
    ))
}

/// The caller's history, newest first.
#[utoipa::path(get, path = "/predictions", tag = "predictions", security(("bearer" = [])), params(Page),
    responses((status = 200, body = JobPage)))]
pub async fn list_predictions(
    State(state): State<AppState>,
    user: AuthUser,
    Query(p): Query<Page>,
) -> Result<Json<JobPage>> {
    Ok(Json(
        p.fetch(&state, user.id, &db::HISTORY, JobPage::new).await?,
    ))
}

/// The uploaded bytes, until the job finishes (they are deleted then; the thumbnail stays).
#[utoipa::path(get, path = "/predictions/{job_id}/image", tag = "predictions", security(("bearer" = [])), params(("job_id" = uuid::Uuid, Path, description = "the id `POST /predictions` answered with (a UUID); anything else is 400")),
    responses((status = 200, description = "the image, with its own content type", content_type = "application/octet-stream"),
        (status = 404, body = ErrorBody, description = "no such job of the caller's, or its image is gone (the job finished, or `IMAGE_TTL` passed)")))]
pub async fn get_prediction_image(
    State(state): State<AppState>,
    user: AuthUser,
    Path(job_id): Path<uuid::Uuid>,
) -> Result<Response> {
    let (ctype, bytes) = jobs::image(&state, &user, &job_id.to_string()).await?;
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "private, max-age=3600".into()),
        ],
        bytes,
    )
        .into_response())
}

/// A small JPEG kept with the history.
#[utoipa::path(get, path = "/predictions/{job_id}/thumbnail", tag = "predictions", security(("bearer" = [])), params(("job_id" = uuid::Uuid, Path, description = "the id `POST /predictions` answered with (a UUID); anything else is 400")),
    responses((status = 200, description = "JPEG", content_type = "image/jpeg"),
        (status = 404, body = ErrorBody, description = "no such job of the caller's, or it has no thumbnail")))]
pub async fn get_prediction_thumbnail(
    State(state): State<AppState>,
    user: AuthUser,
    Path(job_id): Path<uuid::Uuid>,
) -> Result<Response> {
    match state
        .db_call(state.db.thumbnail(&job_id.to_string()))
        .await?
    {
        Some((owner, Some(t))) if user.may_access(owner) && !t.is_empty() => Ok((
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "private, max-age=86400"),
            ],
            t,
        )
            .into_response()),
        _ => Err(ApiError::not_found("thumbnail")),
    }
}
