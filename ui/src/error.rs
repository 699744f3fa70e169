//! The UI's one error type: every failure becomes a page a person can act on (or a redirect to
//! the login page), never a raw error or a blank page.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;

use crate::api::ApiCallError;
use crate::csrf::{CsrfMismatch, CsrfToken};
use crate::pages::{ErrorPage, Layout, Page};
use crate::percent_encode;
use crate::session::{self, LoginRequired};

/// Result type of page handlers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while serving a page.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No session cookie: send the visitor to the login page, then back to `next`.
    #[error("login required")]
    LoginRequired { next: String },
    /// The API refused the token (expired or revoked): drop it and ask to log in again.
    #[error("session expired")]
    SessionExpired,
    /// A form came without the matching CSRF token.
    #[error("missing or wrong CSRF token")]
    Csrf,
    /// No such page or classification.
    #[error("not found")]
    NotFound,
    /// The form itself was unusable (e.g. the upload was cut off).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The whole upload was larger than the UI accepts.
    #[error("upload too large")]
    UploadTooLarge,
    /// The request took longer than `UI_REQUEST_TIMEOUT` (a slow upload, a slow API).
    #[error("request timed out")]
    TooSlow,
    /// An API call failed.
    #[error(transparent)]
    Api(ApiCallError),
    /// A bug on our side (a template that failed to render, ...).
    #[error("internal: {0}")]
    Internal(String),
}

impl From<ApiCallError> for Error {
    fn from(err: ApiCallError) -> Self {
        match err {
            ApiCallError::Unauthorized => Error::SessionExpired,
            ApiCallError::Status { status, .. } if status == StatusCode::NOT_FOUND => {
                Error::NotFound
            }
            other => Error::Api(other),
        }
    }
}

impl From<CsrfMismatch> for Error {
    fn from(_: CsrfMismatch) -> Self {
        Error::Csrf
    }
}

impl From<LoginRequired> for Error {
    fn from(LoginRequired { next }: LoginRequired) -> Self {
        Error::LoginRequired { next }
    }
}

// The rejections of the CSRF check and the session extractor take the one error path too.
impl IntoResponse for CsrfMismatch {
    fn into_response(self) -> Response {
        Error::from(self).into_response()
    }
}

impl IntoResponse for LoginRequired {
    fn into_response(self) -> Response {
        Error::from(self).into_response()
    }
}

/// An error as the pages' scripts read it: the API's error shape, plus where to go when the
/// session has ended.
#[derive(Debug, serde::Serialize)]
struct JsonError {
    #[serde(flatten)]
    body: api_types::ErrorBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect: Option<&'static str>,
}

/// What the error page says: status, heading, explanation.
pub struct Explanation {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
}

impl Error {
    /// The words shown to the person for this error.
    pub fn explain(&self) -> Explanation {
        let (status, title, message): (StatusCode, &'static str, String) = match self {
            Error::LoginRequired { .. } | Error::SessionExpired => (
                StatusCode::UNAUTHORIZED,
                "Please log in",
                "Your session has ended. Log in again to continue.".into(),
            ),
            Error::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "For your safety we could not accept that form: it was opened in an older session. \
                 Go back, reload the page and send it again."
                    .into(),
            ),
            Error::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "We could not find that page or classification. It may belong to another account, \
                 or its address may be mistyped."
                    .into(),
            ),
            Error::BadRequest(why) => (
                StatusCode::BAD_REQUEST,
                "That request did not work",
                format!("{why} Please go back and try again."),
            ),
            Error::UploadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Those files are too large",
                "The images you chose are too large to send together. Choose fewer or smaller images \
                 and try again."
                    .into(),
            ),
            Error::TooSlow => (
                StatusCode::REQUEST_TIMEOUT,
                "That took too long",
                "Your request did not arrive or finish in time. Check your connection, then try \
                 again, with fewer images if you were sending many."
                    .into(),
            ),
            Error::Api(api) => explain_api(api),
            Error::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side",
                "Sorry, this page could not be shown. Please try again in a moment.".into(),
            ),
        };
        Explanation {
            status,
            title,
            message,
        }
    }
}

fn explain_api(err: &ApiCallError) -> (StatusCode, &'static str, String) {
    match err {
        ApiCallError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is unavailable",
            "We cannot reach the classification service right now. It may be restarting. \
             Please try again in a minute."
                .into(),
        ),
        ApiCallError::Protocol(_) => (
            StatusCode::BAD_GATEWAY,
            "The service gave an unexpected answer",
            "The classification service answered in a way this page does not understand. \
             Please try again in a minute."
                .into(),
        ),
        ApiCallError::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            "Please log in",
            "Your session has ended. Log in again to continue.".into(),
        ),
        ApiCallError::Status {
            status, message, ..
        } => match status.as_u16() {
            429 => (
                StatusCode::TOO_MANY_REQUESTS,
                "The service is busy",
                "Too many images are waiting right now. Please try again in a few seconds.".into(),
            ),
            502..=504 => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is unavailable",
                "The classification service cannot take work right now. Please try again in a minute."
                    .into(),
            ),
            403 => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Your account is not allowed to see this.".into(),
            ),
            s if (400..500).contains(&s) => (
                *status,
                "That did not work",
                if message.is_empty() {
                    "The service refused this request.".into()
                } else {
                    format!("The service said: {message}")
                },
            ),
            _ => (
                StatusCode::BAD_GATEWAY,
                "The service had a problem",
                "The classification service failed to answer this request. Please try again in a minute."
                    .into(),
            ),
        },
    }
}

impl Error {
    /// This error for a page's script (`static/app.js`): the status and words of
    /// [`Error::explain`] in the API's error shape; an ended session is also dropped and
    /// carries where to log in again.
    pub fn into_json(self) -> Response {
        use api_types::ErrorCode;
        let ex = self.explain();
        let code = match ex.status.as_u16() {
            400 => ErrorCode::BadRequest,
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            413 => ErrorCode::PayloadTooLarge,
            429 => ErrorCode::RateLimited,
            500 => ErrorCode::Internal,
            _ => ErrorCode::Unavailable,
        };
        let ended = matches!(self, Error::LoginRequired { .. } | Error::SessionExpired);
        let body = JsonError {
            body: api_types::ErrorBody::new(code, &ex.message),
            redirect: ended.then_some("/login?expired=1"),
        };
        let resp = (ex.status, axum::Json(body)).into_response();
        if matches!(self, Error::SessionExpired) {
            (session::end(CookieJar::new()), resp).into_response()
        } else {
            resp
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::LoginRequired { next } => {
                Redirect::to(&format!("/login?next={}", percent_encode(&next))).into_response()
            }
            Error::SessionExpired => (
                session::end(CookieJar::new()),
                Redirect::to("/login?expired=1"),
            )
                .into_response(),
            other => {
                let ex = other.explain();
                if ex.status.is_server_error() {
                    tracing::error!(error = %other, "page failed");
                } else {
                    tracing::info!(error = %other, "page refused");
                }
                let view = ErrorView {
                    status: ex.status,
                    title: ex.title,
                    message: ex.message,
                };
                // Complete on its own; `render_errors` redraws it with the visitor's navigation.
                let mut resp = view.page(Layout::anonymous("Error")).into_response();
                resp.extensions_mut().insert(view);
                resp
            }
        }
    }
}

/// An error page's content, carried on the response so [`render_errors`] can redraw it.
#[derive(Debug, Clone)]
pub struct ErrorView {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl ErrorView {
    fn page(&self, layout: Layout) -> Page<ErrorPage> {
        let mut layout = layout;
        layout.title = self.title.to_owned();
        Page::with_status(
            self.status,
            ErrorPage {
                layout,
                code: self.status.as_u16(),
                title: self.title,
                message: self.message.clone(),
            },
        )
    }
}

/// Middleware: redraw error pages with the request's context (who is logged in, the CSRF token
/// for the log-out button), which `IntoResponse` alone cannot see.
pub async fn render_errors(req: Request, next: Next) -> Response {
    let user = session::from_jar(&CookieJar::from_headers(req.headers()))
        .map(|s| s.name.unwrap_or_else(|| "Account".into()));
    let csrf = req
        .extensions()
        .get::<CsrfToken>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let mut resp = next.run(req).await;
    let Some(view) = resp.extensions_mut().remove::<ErrorView>() else {
        return resp;
    };
    let (mut parts, _) = resp.into_parts();
    let fresh = view
        .page(Layout::new("Error", user, &csrf, ""))
        .into_response();
    let (fresh_parts, body) = fresh.into_parts();
    // Keep headers set on the way out (cookies), take the new body's type and length.
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        parts.headers.remove(&name);
        if let Some(v) = fresh_parts.headers.get(&name) {
            parts.headers.insert(name, v.clone());
        }
    }
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::ErrorCode;

    fn api_status(status: u16, code: ErrorCode) -> ApiCallError {
        ApiCallError::Status {
            status: StatusCode::from_u16(status).expect("valid status"),
            code: Some(code),
            message: "m".into(),
            field: None,
        }
    }

    #[test]
    fn api_errors_map_to_pages_people_understand() {
        let down = Error::from(ApiCallError::Unavailable("connection refused".into())).explain();
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(down.message.contains("try again"));

        assert!(matches!(
            Error::from(ApiCallError::Unauthorized),
            Error::SessionExpired
        ));
        assert!(matches!(
            Error::from(api_status(404, ErrorCode::NotFound)),
            Error::NotFound
        ));
        assert_eq!(
            Error::from(api_status(429, ErrorCode::QueueFull))
                .explain()
                .status,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            Error::from(api_status(500, ErrorCode::Internal))
                .explain()
                .status,
            StatusCode::BAD_GATEWAY
        );
    }
}
