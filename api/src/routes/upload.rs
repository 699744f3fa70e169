//! Reading the multipart form of `POST /predictions` and `POST /predict`.

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use api_types::ErrorCode;

use crate::error::ApiError;
use crate::jobs::Upload;

/// Reads `file` (required), `model` and `top_k`; maps size and shape problems to clear errors.
pub async fn read_upload(
    form: Result<Multipart, MultipartRejection>,
    max_bytes: usize,
) -> Result<Upload, ApiError> {
    let mut form = form.map_err(|e| ApiError::BadRequest {
        code: ErrorCode::BadRequest,
        message: format!(
            "expected a multipart/form-data body with a `file` field ({})",
            e.body_text()
        ),
    })?;
    // A part that cannot be read: 413 when it passed the size limit, else 400.
    let unreadable = |e: MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(max_bytes)
        } else {
            ApiError::BadRequest {
                code: ErrorCode::BadRequest,
                message: e.body_text(),
            }
        }
    };
    let mut up = Upload {
        bytes: Vec::new(),
        model: None,
        top_k: None,
    };
    let mut have_file = false;
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        let data = field.bytes().await.map_err(unreadable)?;
        match name.as_str() {
            "file" | "image" => {
                if data.len() > max_bytes {
                    return Err(ApiError::PayloadTooLarge(max_bytes));
                }
                up.bytes = data.to_vec();
                have_file = true;
            }
            "model" => up.model = Some(String::from_utf8_lossy(&data).into_owned()),
            "top_k" => {
                let text = String::from_utf8_lossy(&data);
                let k = text.trim().parse().map_err(|_| {
                    ApiError::Validation("top_k must be a whole number".into(), "top_k")
                })?;
                up.top_k = Some(k);
            }
            _ => {}
        }
    }
    if !have_file {
        return Err(ApiError::BadRequest {
            code: ErrorCode::MissingFile,
            message: "the form has no `file` field".into(),
        });
    }
    Ok(up)
}

/// Reads the whole request body (up to `limit`) before any extractor runs. An early answer
/// (401, 503 while the database is down, 429) would otherwise leave an upload half-sent, and the
/// server closing that connection makes clients see a reset instead of the JSON error. The
/// handlers hold the upload in memory anyway, so this adds no peak memory.
pub async fn read_body_first(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(e) => {
            let inner = e.into_inner();
            let too_large = inner.is::<http_body_util::LengthLimitError>()
                || inner
                    .source()
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::PayloadTooLarge(limit.saturating_sub(64 * 1024)).into_response()
            } else {
                ApiError::BadRequest {
                    code: ErrorCode::BadRequest,
                    message: "the request body could not be read".into(),
                }
                .into_response()
            }
        }
    }
}
