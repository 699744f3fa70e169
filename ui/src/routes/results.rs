//! Result pages: one job (top-5 bars, the image, feedback), several jobs (batch), the live status
//! endpoint their script polls, and the image proxy that adds the user's token.

use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};

use api_types::FeedbackRequest;

use crate::api::ApiCallError;
use crate::assets::PLACEHOLDER_SVG;
use crate::csrf::CsrfToken;
use crate::error::{Error, Result};
use crate::format::score_as_sent;
use crate::pages::{BatchPage, JobCard, Layout, Notice, Page, ResultPage, ResultPanel};
use crate::routes::SignedIn;
use crate::session::{self, Session};
use crate::views::JobView;
use crate::AppState;

/// The routes of this module.
pub fn router() -> axum::Router<crate::AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/batch", get(batch))
        .route("/results/{id}", get(show))
        .route("/results/{id}/status", get(status))
        .route("/results/{id}/image", get(image::<false>))
        .route("/results/{id}/thumbnail", get(image::<true>))
        .route(
            "/results/{id}/feedback",
            get(feedback_redirect).post(feedback),
        )
}

/// Job ids are UUIDs; anything else cannot be one and is answered 404 without asking the API.
fn check_id(id: &str) -> Result<()> {
    if !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// A job id from the path, checked by [`check_id`]: anything else is a 404 page.
pub struct JobId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for JobId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound)?;
        check_id(&id)?;
        Ok(JobId(id))
    }
}

fn render<T: Template>(t: &T) -> Result<String> {
    t.render().map_err(|e| Error::Internal(e.to_string()))
}

/// A job shaped for display, with its model's human name.
pub async fn view(state: &AppState, job: &api_types::Job) -> JobView {
    let mut v = JobView::from_job(job);
    v.model_name = state.model_name(&job.model).await;
    v
}

async fn panel(
    state: &AppState,
    csrf: &CsrfToken,
    job: JobView,
    notice: Option<Notice>,
) -> Result<String> {
    let labels = if job.is_done() && !job.model.is_empty() {
        state.labels(&job.model).await
    } else {
        Vec::new()
    };
    // A real label as the example: the model's second guess, else its first class.
    let label_example = job
        .bars
        .get(1)
        .and_then(|b| labels.get(b.class_id))
        .or(labels.first())
        .cloned()
        .unwrap_or_else(|| "tabby, tabby cat".into());
    render(&ResultPanel {
        job,
        csrf: csrf.0.clone(),
        labels,
        label_example,
        notice,
    })
}

/// Query of the result page.
#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    feedback: Option<String>,
}

/// `GET /results/{id}`.
///
/// Waits up to two seconds first, so a fast job shows its result straight away instead of a
/// "queued" flash; a slow one shows its status and the page's script takes over.
pub async fn show(
    SignedIn(state, csrf, session): SignedIn,
    JobId(id): JobId,
    Query(q): Query<ShowQuery>,
) -> Result<Response> {
    let job = view(&state, &state.api.job(&session.token, &id, Some(2)).await?).await;
    let notice = (q.feedback.as_deref() == Some("sent"))
        .then(|| Notice::new("success", "Thank you! Your feedback was saved."));
    result_page(&state, &session, &csrf, job, notice, StatusCode::OK).await
}

async fn result_page(
    state: &AppState,
    session: &Session,
    csrf: &CsrfToken,
    job: JobView,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response> {
    let panel_html = panel(state, csrf, job.clone(), notice).await?;
    let title = match (job.top(), job.sure()) {
        (Some(top), true) => format!("{} — {}", job.name, top.label),
        (Some(_), false) => format!("{} — not sure", job.name),
        (None, _) => job.name.clone(),
    };
    Ok(Page::with_status(
        status,
        ResultPage {
            layout: Layout::new(title, session.name.clone(), &csrf.0, "result"),
            job,
            panel_html,
        },
    )
    .into_response())
}

/// Query of the live status endpoint.
#[derive(Debug, Default, Deserialize)]
pub struct StatusQuery {
    wait: Option<String>,
    view: Option<String>,
}

/// The status endpoint's answer, read by `static/app.js`: the job's state and, once it is
/// finished, the rendered panel or card (`html` is null until then).
#[derive(Debug, Serialize)]
struct JobStatusView {
    status: String,
    status_text: &'static str,
    finished: bool,
    html: Option<String>,
}

/// `GET /results/{id}/status?wait=S&view=panel|card`: JSON for the page's script.
///
/// Holds up to `wait` (at most 25) seconds through the API's `?wait=`; once the job is finished
/// the answer carries the server-rendered HTML that replaces the waiting panel or card.
pub async fn status(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(q): Query<StatusQuery>,
) -> Response {
    match job_status(&state, &csrf, &jar, &id, &q).await {
        Ok(view) => {
            let mut resp = Json(view).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        // The one error path, in the JSON the script reads.
        Err(e) => e.into_json(),
    }
}

/// The job's state for [`status`], with its rendered panel or card once it is finished.
async fn job_status(
    state: &AppState,
    csrf: &CsrfToken,
    jar: &CookieJar,
    id: &str,
    q: &StatusQuery,
) -> Result<JobStatusView> {
    let session = session::from_jar(jar).ok_or_else(|| Error::LoginRequired {
        next: format!("/results/{id}"),
    })?;
    check_id(id)?;
    let wait = q
        .wait
        .as_deref()
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(20)
        .min(25);
    let job = state.api.job(&session.token, id, Some(wait)).await?;
    let job = view(state, &job).await;
    let html = if !job.finished {
        None
    } else if q.view.as_deref() == Some("card") {
        render(&JobCard { job: job.clone() }).ok()
    } else {
        panel(state, csrf, job.clone(), None).await.ok()
    };
    Ok(JobStatusView {
        status: job.status,
        status_text: job.status_text,
        finished: job.finished,
        html,
    })
}

/// `GET /results/{id}/image` (`THUMBNAIL` false: the uploaded image) and
/// `GET /results/{id}/thumbnail` (true: the small JPEG kept with the history), fetched with the
/// user's token.
pub async fn image<const THUMBNAIL: bool>(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Response {
    proxy_image(&state, &jar, &id, THUMBNAIL).await
}

async fn proxy_image(state: &AppState, jar: &CookieJar, id: &str, thumbnail: bool) -> Response {
    let fetched = match (session::from_jar(jar), check_id(id)) {
        (Some(s), Ok(())) => match state.api.image(&s.token, id, thumbnail).await {
            Ok(img) => Some(img),
            // The API drops the upload once its job is done; the thumbnail stays.
            Err(_) if !thumbnail => state.api.image(&s.token, id, true).await.ok(),
            Err(_) => None,
        },
        _ => None,
    };
    match fetched {
        // Only image types are passed on, so the API cannot make this origin serve HTML.
        Some(img)
            if img.content_type.starts_with("image/") && !img.content_type.contains("svg") =>
        {
            let ct = HeaderValue::from_str(&img.content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            (
                [
                    (header::CONTENT_TYPE, ct),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("private, max-age=86400"),
                    ),
                ],
                img.bytes,
            )
                .into_response()
        }
        // Expired, foreign, missing or API down: a neutral picture keeps the page whole.
        _ => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("image/svg+xml"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            PLACEHOLDER_SVG,
        )
            .into_response(),
    }
}

/// The feedback form on the result page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FeedbackForm {
    csrf: String,
    verdict: String,
    correct_label: String,
    comment: String,
}

/// `POST /results/{id}/feedback`: correct or not, the right label, free text.
pub async fn feedback(
    SignedIn(state, csrf, session): SignedIn,
    JobId(id): JobId,
    Form(form): Form<FeedbackForm>,
) -> Result<Response> {
    csrf.verify(&form.csrf)?;
    let job = state.api.job(&session.token, &id, None).await?;
    let shown = view(&state, &job).await;
    // The result page again, with a notice saying why the feedback was not taken.
    let refuse = |status: StatusCode, text: String| {
        let notice = Notice::new("error", text);
        result_page(&state, &session, &csrf, shown.clone(), Some(notice), status)
    };
    let Some(top) = job.predictions().first().cloned() else {
        let text = "Feedback can be sent once the result is ready.";
        return refuse(StatusCode::CONFLICT, text.into()).await;
    };
    let is_correct = match form.verdict.as_str() {
        "correct" => true,
        "incorrect" => false,
        _ => {
            let text = "Choose whether the top answer is correct or not.";
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, text.into()).await;
        }
    };
    let comment = form.comment.trim();
    let correct_label =
        Some(form.correct_label.trim().to_owned()).filter(|l| !l.is_empty() && !is_correct);
    let body = FeedbackRequest {
        job_id: Some(job.job_id.clone()),
        image_file_name: None,
        predicted_class: top.label.clone(),
        score: score_as_sent(top.score),
        feedback: comment.to_owned(),
        correct_label,
        is_correct: Some(is_correct),
    };
    match state.api.feedback(&session.token, &body).await {
        Ok(()) => {
            Ok(Redirect::to(&format!("/results/{id}?feedback=sent#feedback")).into_response())
        }
        Err(ApiCallError::Status {
            status, message, ..
        }) if status.is_client_error() && status != StatusCode::NOT_FOUND => {
            refuse(status, format!("Your feedback was not saved: {message}")).await
        }
        Err(err) => Err(err.into()),
    }
}

/// `GET /results/{id}/feedback` (e.g. "try again" after an error): back to the result.
pub async fn feedback_redirect(JobId(id): JobId) -> Result<Redirect> {
    Ok(Redirect::to(&format!("/results/{id}")))
}

/// Query of the batch page: comma-separated job ids.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BatchQuery {
    ids: String,
}

/// `GET /batch?ids=a,b,c`: several jobs sent together.
pub async fn batch(
    SignedIn(state, csrf, session): SignedIn,
    Query(q): Query<BatchQuery>,
) -> Result<Response> {
    let mut jobs = Vec::new();
    for id in q.ids.split(',').filter(|s| !s.is_empty()).take(20) {
        check_id(id)?;
        jobs.push(view(&state, &state.api.job(&session.token, id, None).await?).await);
    }
    if jobs.is_empty() {
        return Ok(Redirect::to("/").into_response());
    }
    Ok(render_batch(&session, &csrf, jobs, Vec::new()))
}

/// The batch page for these jobs, with notices about images that were refused.
pub fn render_batch(
    session: &Session,
    csrf: &CsrfToken,
    jobs: Vec<JobView>,
    notices: Vec<Notice>,
) -> Response {
    Page::ok(BatchPage {
        layout: Layout::new("Your images", session.name.clone(), &csrf.0, "result"),
        jobs,
        notices,
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuid_like_ids_reach_the_api() {
        assert!(check_id("0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b").is_ok());
        assert!(check_id("../users").is_err());
        assert!(check_id("").is_err());
        assert!(check_id("a?b").is_err());
    }
}
