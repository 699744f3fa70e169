//! The classify page: choose images (with previews), choose a model, send them to the API.

use axum::extract::multipart::{Multipart, MultipartError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use axum_extra::extract::cookie::CookieJar;

use api_types::{ErrorCode, Info, Submitted};

use crate::api::{ApiCallError, Upload};
use crate::csrf::{self, CsrfToken};
use crate::error::{Error, Result};
use crate::pages::{ClassifyPage, LandingPage, Layout, ModelChoice, Notice, Page};
use crate::routes::results::render_batch;
use crate::routes::SignedIn;
use crate::session::{self, Session};
use crate::views::JobView;
use crate::AppState;

/// The routes of this module: the landing or classify page (`/`) and the upload form, whose
/// body may be up to `upload_limit` bytes (the only route that reads a big body).
pub fn router(upload_limit: usize) -> axum::Router<crate::AppState> {
    use axum::routing::get;
    axum::Router::new().route("/", get(show)).route(
        "/classify",
        get(redirect_home)
            .post(submit)
            .layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
    )
}

/// At most this many images per form post.
const MAX_FILES: usize = 10;

/// `GET /`: for a signed-in person the upload form, with the models live workers serve; for
/// a visitor the landing page (what Lens does, a worked example, sign up / log in).
pub async fn show(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    jar: CookieJar,
) -> Result<Response> {
    let Some(session) = session::from_jar(&jar) else {
        return Ok(landing(&state, &csrf).into_response());
    };
    let info = state.api.info_for(&session.token).await?;
    state.remember_models(&info);
    Ok(Page::ok(classify_page(
        &state,
        &session,
        &csrf,
        &info,
        None,
        Vec::new(),
    ))
    .into_response())
}

/// The landing page for visitors.
fn landing(state: &AppState, csrf: &CsrfToken) -> Page<LandingPage> {
    Page::ok(LandingPage {
        layout: Layout::new("See what is in your photos", None, &csrf.0, "home"),
        example: state.example(),
        example_name: crate::example::PHOTO_NAME,
    })
}

/// `GET /classify` and `GET /logout` (e.g. "try again" after an error): back to the form at `/`.
pub async fn redirect_home() -> Redirect {
    Redirect::to("/")
}

fn classify_page(
    state: &AppState,
    session: &Session,
    csrf: &CsrfToken,
    info: &Info,
    chosen: Option<&str>,
    mut notices: Vec<Notice>,
) -> ClassifyPage {
    let default = Some(info.default_model.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| {
            info.models
                .iter()
                .find(|m| m.default)
                .map(|m| m.name.clone())
        });
    // Only models a live worker serves can be chosen: any other would wait forever.
    let available: Vec<&api_types::ModelInfo> =
        info.models.iter().filter(|m| m.available).collect();
    let selected = chosen
        .filter(|c| available.iter().any(|m| m.name == *c))
        .map(str::to_owned)
        .or(default.filter(|d| available.iter().any(|m| m.name == *d)))
        .or_else(|| available.first().map(|m| m.name.clone()));
    let models = available
        .iter()
        .map(|m| ModelChoice {
            name: m.name.clone(),
            description: model_hint(m),
            display_name: m.display_name.clone(),
            selected: selected.as_deref() == Some(m.name.as_str()),
            workers: m.workers,
        })
        .collect();
    if info.workers_live == 0 {
        notices.push(Notice::new(
            "warning",
            "No classification worker is running right now. You can still send images: \
             they will wait in the queue until a worker starts.",
        ));
    }
    ClassifyPage {
        layout: Layout::new("Classify images", session.name.clone(), &csrf.0, "classify"),
        models,
        workers_live: info.workers_live,
        queue_depth: info.queue_depth,
        yours_waiting: info.your_jobs_waiting,
        notices,
        max_upload_mb: state.max_upload_mb,
    }
}

/// "75% top-1 on ImageNet · fast": what a person weighs when choosing a model.
fn model_hint(m: &api_types::ModelInfo) -> String {
    let speed = match m.speed.as_str() {
        "fast" => "fast",
        "slow" => "slower",
        _ => "medium speed",
    };
    match m.top1_accuracy_pct {
        Some(a) => format!("{a:.0}% right on the ImageNet test photos · {speed}"),
        None => speed.to_owned(),
    }
}

/// What the form sent (its CSRF token already checked).
struct Submission {
    model: Option<String>,
    files: Vec<Upload>,
}

/// Reads the form, checking its CSRF token before any file: the form (and the page's script)
/// sends the token first, so a post without it is refused before its images are read.
async fn read_form(mut multipart: Multipart, expected: &CsrfToken) -> Result<Submission> {
    let mut sub = Submission {
        model: None,
        files: Vec::new(),
    };
    let mut verified = false;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            csrf::FIELD => {
                let token = field.text().await.map_err(multipart_error)?;
                expected.verify(&token)?;
                verified = true;
            }
            "files" if !verified => return Err(Error::Csrf),
            "model" => {
                let m = field.text().await.map_err(multipart_error)?;
                sub.model = Some(m.trim().to_owned()).filter(|m| !m.is_empty());
            }
            "files" => {
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let content_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(multipart_error)?;
                // A file input left empty still sends one nameless, empty part.
                if file_name.is_empty() && bytes.is_empty() {
                    continue;
                }
                if sub.files.len() >= MAX_FILES {
                    return Err(Error::BadRequest(format!(
                        "You can send at most {MAX_FILES} images at once."
                    )));
                }
                sub.files.push(Upload {
                    file_name: if file_name.is_empty() {
                        "image".into()
                    } else {
                        file_name
                    },
                    content_type,
                    bytes: bytes.to_vec(),
                });
            }
            _ => {}
        }
    }
    if !verified {
        return Err(Error::Csrf);
    }
    Ok(sub)
}

fn multipart_error(err: MultipartError) -> Error {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::UploadTooLarge
    } else {
        Error::BadRequest("The upload was cut off or malformed.".into())
    }
}

/// `POST /classify`: send every chosen image to the API.
///
/// The session (asked of the API) and the CSRF token are checked before any image is read;
/// the body is bounded by `UI_MAX_UPLOAD_MB` and the whole request by `UI_REQUEST_TIMEOUT`.
///
/// One image that was accepted goes straight to its result page; several go to a batch page;
/// images the API refused are explained on the page (wrong type, too large, ...).
pub async fn submit(
    SignedIn(state, csrf, session): SignedIn,
    multipart: Multipart,
) -> Result<Response> {
    // Whose session this is, before a byte of the body is read: a made-up cookie must not
    // get the UI to buffer an upload (issue 24, finding 4).
    state.api.me(&session.token).await?;
    let sub = read_form(multipart, &csrf).await?;
    let (accepted, refused) = send_all(&state, &session, sub.files, sub.model.as_deref()).await?;
    if accepted.len() == 1 && refused.is_empty() {
        let id = accepted[0].job_id();
        return Ok(
            Redirect::to(&format!("/results/{}", crate::percent_encode(id))).into_response(),
        );
    }
    if accepted.is_empty() {
        let info = state.api.info_for(&session.token).await?;
        let status = refused
            .first()
            .map(|(s, _)| *s)
            .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
        let notices = refused.into_iter().map(|(_, n)| n).collect();
        let page = classify_page(
            &state,
            &session,
            &csrf,
            &info,
            sub.model.as_deref(),
            notices,
        );
        return Ok(Page::with_status(status, page).into_response());
    }
    if refused.is_empty() {
        let ids: Vec<&str> = accepted.iter().map(|j| j.job_id()).collect();
        let url = format!("/batch?ids={}", crate::percent_encode(&ids.join(",")));
        return Ok(Redirect::to(&url).into_response());
    }
    let jobs: Vec<JobView> = accepted.iter().map(JobView::from_submitted).collect();
    let notices = refused.into_iter().map(|(_, n)| n).collect();
    Ok(render_batch(&session, &csrf, jobs, notices))
}

/// Sends each image as a job of its own: the accepted ones, and a notice for each refused one
/// (with the API's status). An ended session or an unreachable API ends the whole form.
async fn send_all(
    state: &AppState,
    session: &Session,
    files: Vec<Upload>,
    model: Option<&str>,
) -> Result<(Vec<Submitted>, Vec<(StatusCode, Notice)>)> {
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    if files.is_empty() {
        refused.push((
            StatusCode::UNPROCESSABLE_ENTITY,
            Notice::new("error", "Choose at least one image to classify."),
        ));
    }
    for upload in files {
        let name = upload.file_name.clone();
        match state.api.submit(&session.token, upload, model).await {
            Ok(job) => accepted.push(job),
            Err(ApiCallError::Unauthorized) => return Err(Error::SessionExpired),
            Err(err @ ApiCallError::Unavailable(_)) => return Err(Error::Api(err)),
            Err(err) => {
                let status = err.status().unwrap_or(StatusCode::BAD_GATEWAY);
                refused.push((status, Notice::new("error", upload_problem(&name, &err))));
            }
        }
    }
    Ok((accepted, refused))
}

/// What to tell the person about one image the API refused.
pub fn upload_problem(file: &str, err: &ApiCallError) -> String {
    let what = match err.code() {
        Some(ErrorCode::UnsupportedMediaType) => {
            "is not an image we can read. Choose a JPEG, PNG, WebP, GIF or BMP picture."
        }
        Some(ErrorCode::PayloadTooLarge) => "is too large to upload. Choose a smaller file.",
        Some(ErrorCode::ImageTooLarge) => {
            "has too many pixels. Resize it to a smaller picture and try again."
        }
        Some(ErrorCode::ImageTooSmall) => "is too small to classify. Choose a larger picture.",
        Some(ErrorCode::InvalidImage) => "looks damaged: it could not be read as an image.",
        Some(ErrorCode::EmptyFile | ErrorCode::MissingFile) => "is empty.",
        Some(ErrorCode::UnknownModel | ErrorCode::ModelUnavailable) => {
            "could not be classified: the chosen model is not available. Pick another model."
        }
        Some(ErrorCode::QuotaExceeded) => {
            "could not be sent: you have many images waiting. Try again when they have finished."
        }
        Some(ErrorCode::QueueFull) => {
            "could not be sent: the service is busy. Please try again in a few seconds."
        }
        _ => match err.status().map(|s| s.as_u16()) {
            Some(413) => "is too large to upload. Choose a smaller file.",
            Some(415) => {
                "is not an image we can read. Choose a JPEG, PNG, WebP, GIF or BMP picture."
            }
            Some(429) | Some(503) => {
                "could not be sent: the service is busy. Please try again in a few seconds."
            }
            _ => "could not be classified. Please try again.",
        },
    };
    format!("“{file}” {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: Option<ErrorCode>) -> ApiCallError {
        ApiCallError::Status {
            status: StatusCode::from_u16(status).expect("valid status"),
            code,
            message: "raw api text".into(),
            field: None,
        }
    }

    #[test]
    fn refusals_are_explained_per_file_without_raw_text() {
        let msg = upload_problem(
            "notes.jpg",
            &refused(415, Some(ErrorCode::UnsupportedMediaType)),
        );
        assert!(msg.contains("notes.jpg") && msg.contains("JPEG, PNG"));
        let msg = upload_problem("big.png", &refused(413, Some(ErrorCode::PayloadTooLarge)));
        assert!(msg.contains("too large"));
        // A 413 without the API's error body (e.g. from a proxy) is still explained by status.
        let msg = upload_problem("x.png", &refused(413, None));
        assert!(msg.contains("too large") && !msg.contains("raw api text"));
    }
}
