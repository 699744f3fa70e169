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

use crate::db;
use crate::error::{ApiError, AppPath as Path, AppQuery as Query, Result};
use crate::extract::AuthUser;
use crate::extract::ClientAddr;
use crate::jobs;
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
        (status = 200, body = Job, description = "the same image was already classified by this model: the cached result (`cached` is true only when the caller had sent it before)"),
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
    // Answered from the result cache: already done (`cached` says whether it was the caller's
    // own repeat).
    if job.status.is_terminal() {
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

/// The job a `/predictions/{job_id}` route is about.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobIdPath {
    /// the id `POST /predictions` answered with (a UUID); anything else is 400
    pub job_id: uuid::Uuid,
}

/// A job's state; with `?wait` held until it finishes (woken by the worker) or S passes.
#[utoipa::path(get, path = "/predictions/{job_id}", tag = "predictions", security(("bearer" = [])), params(JobIdPath, WaitQuery),
    responses((status = 200, body = Job, description = "the job; unfinished when `wait` passed first"),
        (status = 400, body = ErrorBody, description = "`bad_request`: `job_id` is not a UUID, or `wait` is not a number"),
        (status = 404, body = ErrorBody, description = "no such job of the caller's"),
        (status = 422, body = ErrorBody, description = "`validation_failed`: `wait` outside 0..=30")))]
pub async fn get_prediction(
    State(state): State<AppState>,
    user: AuthUser,
    Path(JobIdPath { job_id }): Path<JobIdPath>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Job>> {
    let secs = q.wait.unwrap_or(0.0);
    if !(0.0..=MAX_WAIT_SECS).contains(&secs) {
        return Err(ApiError::Validation(
            format!("wait must be between 0 and {MAX_WAIT_SECS} seconds"),
            "wait",
        ));
    }
    let job_id = job_id.to_string();
    // Over the bounds on held requests the answer comes at once, the job as it is now: `wait`
    // is "at most", and a client polling without it is served the same way.
    let hold = (secs > 0.0)
        .then(|| state.holds.try_hold(user.id))
        .flatten();
    let job = match hold {
        Some(hold) => {
            jobs::wait(&state, &user, &job_id, Duration::from_secs_f64(secs), &hold).await?
        }
        None => {
            if secs > 0.0 {
                metrics::counter!("rate_limited_total", "limit" => "waits").increment(1);
            }
            jobs::read(&state, &user, &job_id).await?
        }
    };
    Ok(Json(job))
}

/// `GET /predictions` narrowed: every filter is optional and they combine (AND).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Text found (case-insensitively) in any of a job's top-k labels: `dog` finds
    /// "hot dog" and "dogsled"; at most 100 characters.
    #[param(max_length = 100)]
    pub label: Option<String>,
    /// Only jobs of this model.
    pub model: Option<String>,
    /// Only jobs accepted on or after this day (`YYYY-MM-DD`, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// Only jobs accepted on or before this day (`YYYY-MM-DD`, UTC, the whole day).
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
    /// `given`, `none`, `wrong` (marked wrong) or `right` (marked right).
    #[param(value_type = Option<String>, pattern = "^(given|none|wrong|right)$")]
    pub feedback: Option<String>,
}

/// Unix ms of 00:00 UTC of a `YYYY-MM-DD` day (1970 or later), or `None` when it is not one.
pub fn day_start_ms(text: &str) -> Option<i64> {
    let format = time::format_description::parse_borrowed::<2>("[year]-[month]-[day]").ok()?;
    let day = time::Date::parse(text.trim(), &format).ok()?;
    if day.year() < 1970 {
        return None;
    }
    Some(day.midnight().assume_utc().unix_timestamp() * 1000)
}

impl HistoryQuery {
    /// The database filter; 422 naming the parameter when one cannot be read.
    pub fn filter(&self) -> Result<db::HistoryFilter> {
        let nonempty = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        let label = nonempty(&self.label);
        if label.as_ref().is_some_and(|l| l.chars().count() > 100) {
            return Err(ApiError::Validation(
                "label must be at most 100 characters".into(),
                "label",
            ));
        }
        let day = |v: &Option<String>, field: &'static str| -> Result<Option<i64>> {
            match nonempty(v) {
                None => Ok(None),
                Some(t) => day_start_ms(&t).map(Some).ok_or_else(|| {
                    ApiError::Validation(format!("{field} must be a date, YYYY-MM-DD"), field)
                }),
            }
        };
        let from_ms = day(&self.from, "from")?;
        let until_ms = day(&self.to, "to")?.map(|ms| ms + 86_400_000);
        let feedback = match nonempty(&self.feedback).as_deref() {
            None => None,
            Some("given") => Some(db::FeedbackFilter::Given),
            Some("none") => Some(db::FeedbackFilter::None),
            Some("wrong") => Some(db::FeedbackFilter::Wrong),
            Some("right") => Some(db::FeedbackFilter::Right),
            Some(_) => {
                return Err(ApiError::Validation(
                    "feedback must be one of given, none, wrong, right".into(),
                    "feedback",
                ))
            }
        };
        Ok(db::HistoryFilter {
            label,
            model: nonempty(&self.model),
            from_ms,
            until_ms,
            feedback,
        })
    }
}

/// The caller's history, newest first, optionally narrowed by label, model, dates and feedback.
#[utoipa::path(get, path = "/predictions", tag = "predictions", security(("bearer" = [])), params(Page, HistoryQuery),
    responses((status = 200, body = JobPage),
        (status = 422, body = ErrorBody, description = "`validation_failed`: `page` or `per_page` out of range, or a filter that cannot be read (`field` names it)")))]
pub async fn list_predictions(
    State(state): State<AppState>,
    user: AuthUser,
    Query(p): Query<Page>,
    Query(h): Query<HistoryQuery>,
) -> Result<Json<JobPage>> {
    let (page, per_page, limit, offset) = p.bounds()?;
    let filter = h.filter()?;
    let (items, total) = state
        .db_call(state.db.history_page(user.id, &filter, limit, offset))
        .await?;
    Ok(Json(JobPage::new(items, page, per_page, total)))
}

/// The uploaded bytes, until the job finishes (they are deleted then; the thumbnail stays).
#[utoipa::path(get, path = "/predictions/{job_id}/image", tag = "predictions", security(("bearer" = [])), params(JobIdPath),
    responses((status = 200, description = "the image, with its own content type", content_type = "application/octet-stream"),
        (status = 404, body = ErrorBody, description = "no such job of the caller's, or its image is gone (the job finished, or `IMAGE_TTL` passed)")))]
pub async fn get_prediction_image(
    State(state): State<AppState>,
    user: AuthUser,
    Path(JobIdPath { job_id }): Path<JobIdPath>,
) -> Result<Response> {
    let (ctype, bytes) = jobs::image(&state, &user, &job_id.to_string()).await?;
    Ok(private_file(ctype, 3600, bytes))
}

/// A small JPEG kept with the history.
#[utoipa::path(get, path = "/predictions/{job_id}/thumbnail", tag = "predictions", security(("bearer" = [])), params(JobIdPath),
    responses((status = 200, description = "JPEG", content_type = "image/jpeg"),
        (status = 404, body = ErrorBody, description = "no such job of the caller's, or it has no thumbnail")))]
pub async fn get_prediction_thumbnail(
    State(state): State<AppState>,
    user: AuthUser,
    Path(JobIdPath { job_id }): Path<JobIdPath>,
) -> Result<Response> {
    match state
        .db_call(state.db.thumbnail(&job_id.to_string()))
        .await?
    {
        Some((owner, Some(t))) if user.may_access(owner) && !t.is_empty() => {
            Ok(private_file("image/jpeg".into(), 86400, t))
        }
        _ => Err(ApiError::not_found("thumbnail")),
    }
}

/// `bytes` of type `content_type`, which only the caller's own client may keep, for
/// `max_age_secs`.
fn private_file(content_type: String, max_age_secs: u32, bytes: Vec<u8>) -> Response {
    let cache = format!("private, max-age={max_age_secs}");
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn days_are_read_as_utc_midnight() {
        assert_eq!(day_start_ms("1970-01-01"), Some(0));
        assert_eq!(day_start_ms("2000-03-01"), Some(951_868_800_000));
        assert_eq!(day_start_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(day_start_ms("2023-02-29"), None);
        assert_eq!(day_start_ms("2024-13-01"), None);
        assert_eq!(day_start_ms("yesterday"), None);
    }
}
