//! One error type for the API and one JSON shape for every failure:
//! `{"error": {"code", "message"}}` with the right status. 5xx causes are logged, never sent.

use api_types::{ErrorBody, ErrorCode, ErrorDetail};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use shared::upload::ImageError;

/// `Result` with the API error by default.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    #[error("{0}")]
    Validation(String, &'static str),
    #[error("the upload is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// A JSON (or log-in form) body over [`crate::config::MAX_JSON_BODY`].
    #[error(
        "the request body is larger than the limit of {} bytes",
        crate::config::MAX_JSON_BODY
    )]
    BodyTooLarge,
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{0}")]
    UnknownModel(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    ModelUnavailable(String),
    #[error("the queue is full ({0} jobs waiting); retry in a few seconds")]
    QueueFull(u64),
    /// Throttled; the second field is the `Retry-After` in seconds.
    #[error("{0}")]
    RateLimited(String, u64),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    Timeout(String),
    /// A dependency did not answer: `what` is named to the client, `cause` only in the log.
    #[error("{what} is unavailable; retry shortly")]
    Unavailable { what: &'static str, cause: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// Seconds after which the same request may succeed (the `Retry-After` header), for the
    /// errors of a limit that passes.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::QueueFull(_) | ApiError::Unavailable { .. } => Some(2),
            ApiError::QuotaExceeded(_) => Some(5),
            ApiError::RateLimited(_, secs) => Some((*secs).max(1)),
            _ => None,
        }
    }

    /// Status and machine-readable code.
    pub fn parts(&self) -> (StatusCode, ErrorCode) {
        let code = match self {
            ApiError::BadRequest { code, .. } => *code,
            ApiError::Validation(..) => ErrorCode::ValidationFailed,
            ApiError::PayloadTooLarge(_) | ApiError::BodyTooLarge => ErrorCode::PayloadTooLarge,
            ApiError::Image(e) => match e {
                ImageError::Empty => ErrorCode::EmptyFile,
                ImageError::Unsupported => ErrorCode::UnsupportedMediaType,
                ImageError::TooManyPixels(..)
                | ImageError::TooMuchMemory(..)
                | ImageError::TooManyScans(..) => ErrorCode::ImageTooLarge,
                ImageError::TooSmall(..) => ErrorCode::ImageTooSmall,
                ImageError::Corrupt(_) => ErrorCode::InvalidImage,
            },
            ApiError::UnknownModel(_) => ErrorCode::UnknownModel,
            ApiError::ModelUnavailable(_) => ErrorCode::ModelUnavailable,
            ApiError::RateLimited(..) => ErrorCode::RateLimited,
            ApiError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::QueueFull(_) => ErrorCode::QueueFull,
            ApiError::Timeout(_) => ErrorCode::Timeout,
            ApiError::Unavailable { .. } => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        };
        // Each code has one status, defined with the code in `api_types`.
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, code)
    }

    /// The response body.
    pub fn body(&self) -> ErrorBody {
        let (status, code) = self.parts();
        let message = if status.is_server_error()
            && !matches!(self, ApiError::Unavailable { .. } | ApiError::Timeout(_))
        {
            "internal error; it has been logged".to_owned()
        } else {
            self.to_string()
        };
        let field = match self {
            ApiError::Validation(_, field) => Some((*field).to_owned()),
            _ => None,
        };
        ErrorBody {
            error: ErrorDetail {
                code,
                message,
                field,
            },
        }
    }

    /// A 503 for `what`, with the `cause` the log gets.
    pub fn unavailable(what: &'static str, cause: impl std::fmt::Display) -> Self {
        ApiError::Unavailable {
            what,
            cause: cause.to_string(),
        }
    }

    /// Shorthand for a 404.
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.parts();
        // The one place a 5xx is logged, with its cause (conversions into ApiError log nothing).
        if status.is_server_error() {
            match &self {
                ApiError::Unavailable { what, cause } => {
                    tracing::error!(dependency = *what, cause = %cause, "request failed: {self}");
                }
                other => tracing::error!(error = ?other, "request failed"),
            }
        }
        let mut resp = (status, axum::Json(self.body())).into_response();
        if let ApiError::Unauthorized(_) = &self {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        ApiError::unavailable("the queue (Redis)", e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => ApiError::not_found("record"),
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                ApiError::Conflict("that record already exists".into())
            }
            // SQLSTATE class 22 (data exception, e.g. a NUL byte in text on PostgreSQL): the
            // request carried a value the database cannot take, so it is the client's error.
            sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("22")) => {
                ApiError::BadRequest {
                    code: ErrorCode::BadRequest,
                    message:
                        "a value in the request cannot be stored (for example a NUL character)"
                            .into(),
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => ApiError::unavailable("the database", e),
            _ => ApiError::Internal(e.into()),
        }
    }
}

/// `axum::Json` whose rejection is our JSON error (422 naming the problem, 415 without a JSON
/// content type, 413 when too large).
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` whose rejection is our JSON 400.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// `axum::extract::Query` whose rejection is our JSON 400.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest {
            code: ErrorCode::BadRequest,
            message: r.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest {
            code: ErrorCode::BadRequest,
            message: r.body_text(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest {
                code: ErrorCode::BadRequest,
                message: "expected a JSON body with `Content-Type: application/json`".into(),
            },
            JsonRejection::JsonDataError(e) => ApiError::Validation(e.body_text(), "body"),
            JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest {
                code: ErrorCode::BadRequest,
                message: e.body_text(),
            },
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge,
            other => ApiError::BadRequest {
                code: ErrorCode::BadRequest,
                message: other.body_text(),
            },
        }
    }
}

/// JSON 404 for unknown routes.
pub async fn not_found_fallback() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// JSON 405 for known routes with the wrong method.
pub async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(ErrorBody::new(
            ErrorCode::MethodNotAllowed,
            "method not allowed on this route",
        )),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_503_names_the_dependency_and_keeps_its_cause_out_of_the_body() {
        let e = ApiError::unavailable("the database", "connection refused (os error 111)");
        assert_eq!(e.parts().0, StatusCode::SERVICE_UNAVAILABLE);
        let body = serde_json::to_value(e.body()).expect("a JSON body");
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "unavailable",
                "message": "the database is unavailable; retry shortly"}})
        );
    }
}
