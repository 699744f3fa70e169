//! The one error shape of every route: `{"error": {"code", "message", "field"?}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every machine-readable error code the API sends. Clients match on these, never on messages.
///
/// The HTTP status that goes with each code is fixed ([`ErrorCode::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed (bad JSON, bad path or query, unreadable form).
    BadRequest,
    /// 400: the uploaded file has no bytes.
    EmptyFile,
    /// 400: the multipart form has no `file` field.
    MissingFile,
    /// 400: the bytes look like an image but cannot be decoded.
    InvalidImage,
    /// 401: no token, or an expired, invalid or revoked one; also wrong email or password.
    Unauthorized,
    /// 403: the caller may not do this (e.g. list users without being an admin).
    Forbidden,
    /// 404: no such route, or no such record visible to the caller.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: the record already exists (e.g. a registered email).
    Conflict,
    /// 413: the upload (or body) is larger than the limit.
    PayloadTooLarge,
    /// 413: the image has more pixels than the limit.
    ImageTooLarge,
    /// 415: the bytes are not an accepted image type.
    UnsupportedMediaType,
    /// 422: a field is invalid; `field` names it.
    ValidationFailed,
    /// 422: the image is smaller than the model can use.
    ImageTooSmall,
    /// 422: the requested model is not served.
    UnknownModel,
    /// 422: the model exists but no live worker serves it, or it is benchmark-only.
    ModelUnavailable,
    /// 429: the queue is full; retry after `Retry-After` seconds.
    QueueFull,
    /// 429: too many requests (log-in attempts, sign-ups, uploads) from this address or for
    /// this account, or too many passwords being checked; retry after `Retry-After` seconds.
    RateLimited,
    /// 429: the caller already has the most unfinished jobs (or queued bytes) allowed; retry
    /// after `Retry-After` seconds, when some have finished.
    QuotaExceeded,
    /// 500: a bug on the server's side; the cause is logged, not sent.
    Internal,
    /// 503: Redis or the database is unreachable; retry after `Retry-After` seconds.
    Unavailable,
    /// 504: no answer within the time limit.
    Timeout,
}

impl ErrorCode {
    /// The code as sent on the wire (`queue_full`), for logs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::EmptyFile => "empty_file",
            ErrorCode::MissingFile => "missing_file",
            ErrorCode::InvalidImage => "invalid_image",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::ImageTooLarge => "image_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::ImageTooSmall => "image_too_small",
            ErrorCode::UnknownModel => "unknown_model",
            ErrorCode::ModelUnavailable => "model_unavailable",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
        }
    }

    /// The HTTP status the API answers with for this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::EmptyFile
            | ErrorCode::MissingFile
            | ErrorCode::InvalidImage => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge | ErrorCode::ImageTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::ValidationFailed
            | ErrorCode::ImageTooSmall
            | ErrorCode::UnknownModel
            | ErrorCode::ModelUnavailable => 422,
            ErrorCode::QueueFull | ErrorCode::RateLimited | ErrorCode::QuotaExceeded => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
            ErrorCode::Timeout => 504,
        }
    }

    /// A limit or an outage that passes: the same request may succeed later (after
    /// `Retry-After`), so a client should send it again rather than give up on it.
    pub fn passes(self) -> bool {
        matches!(
            self,
            ErrorCode::QueueFull
                | ErrorCode::RateLimited
                | ErrorCode::QuotaExceeded
                | ErrorCode::Unavailable
                | ErrorCode::Timeout
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of an error body.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// Human-readable; for people, not for matching.
    pub message: String,
    /// The invalid field, with `validation_failed` only.
    pub field: Option<String>,
}

/// The body of every error answer (4xx and 5xx) of every route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    /// An error body without a field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code,
                message: message.into(),
                field: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn codes_are_snake_case_on_the_wire() {
        let body = ErrorBody::new(ErrorCode::UnsupportedMediaType, "nope");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"unsupported_media_type","message":"nope"}}"#
        );
        let back: ErrorBody = serde_json::from_str(
            r#"{"error":{"code":"validation_failed","message":"m","field":"email"}}"#,
        )
        .unwrap();
        assert_eq!(back.error.code, ErrorCode::ValidationFailed);
        assert_eq!(back.error.field.as_deref(), Some("email"));
        assert_eq!(back.error.code.status(), 422);
    }

    #[test]
    fn display_names_match_the_wire_names() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::EmptyFile,
            ErrorCode::MissingFile,
            ErrorCode::InvalidImage,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Conflict,
            ErrorCode::PayloadTooLarge,
            ErrorCode::ImageTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::ValidationFailed,
            ErrorCode::ImageTooSmall,
            ErrorCode::UnknownModel,
            ErrorCode::ModelUnavailable,
            ErrorCode::QueueFull,
            ErrorCode::RateLimited,
            ErrorCode::QuotaExceeded,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
            ErrorCode::Timeout,
        ] {
            let wire = serde_json::to_value(code).unwrap();
            assert_eq!(wire.as_str(), Some(code.as_str()));
            assert_eq!(code.to_string(), code.as_str());
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }
}
