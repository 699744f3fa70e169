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
    let unreadable = |e| unreadable(e, max_bytes);
    let mut up = Upload::image(Vec::new(), None, None, None);
    let mut have_file = false;
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let data = field.bytes().await.map_err(unreadable)?;
        match name.as_str() {
            "file" | "image" => {
                if data.len() > max_bytes {
                    return Err(ApiError::PayloadTooLarge(max_bytes));
                }
                up.bytes = data.to_vec();
                up.original_name = file_name.as_deref().and_then(sanitize_file_name);
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

/// A part that cannot be read: 413 when it passed the size limit, else 400.
fn unreadable(e: MultipartError, max_bytes: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(max_bytes)
    } else {
        ApiError::BadRequest {
            code: ErrorCode::BadRequest,
            message: e.body_text(),
        }
    }
}

/// Longest original file name kept, in characters (longer names keep their start and their
/// extension).
pub const MAX_ORIGINAL_NAME: usize = 120;

/// The name a client gave its file, made safe to keep and show: the last path component only,
/// control, format (bidirectional overrides, zero-width) and other invisible characters
/// dropped ([`shared::text::is_invisible`], the rule account names and emails are checked
/// by), runs of white space made one space, at most [`MAX_ORIGINAL_NAME`] characters.
/// `None` when nothing is left.
pub fn sanitize_file_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut out = String::new();
    for c in base.chars().filter(|c| !shared::text::is_invisible(*c)) {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    let out = out.trim().to_owned();
    if out.is_empty() || out == "." || out == ".." {
        return None;
    }
    let n = out.chars().count();
    if n <= MAX_ORIGINAL_NAME {
        return Some(out);
    }
    // Keep a short extension after an ellipsis: "a-very-long…name.jpg".
    let ext: String = match out.rfind('.') {
        Some(i) if out.len() - i <= 6 => out[i..].to_owned(),
        _ => String::new(),
    };
    let head: String = out
        .chars()
        .take(MAX_ORIGINAL_NAME - 1 - ext.chars().count())
        .collect();
    Some(format!("{head}…{ext}"))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn file_names_are_made_safe() {
        assert_eq!(sanitize_file_name("peony.jpg").unwrap(), "peony.jpg");
        assert_eq!(
            sanitize_file_name("C:\\Users\\me\\My  Photos\\cat.png").unwrap(),
            "cat.png"
        );
        assert_eq!(sanitize_file_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(
            sanitize_file_name("evil\u{202E}gpj.exe\n").unwrap(),
            "evilgpj.exe"
        );
        assert_eq!(sanitize_file_name(" a \t b .jpg ").unwrap(), "a b .jpg");
        assert_eq!(sanitize_file_name(""), None);
        assert_eq!(sanitize_file_name("dir/"), None);
        assert_eq!(sanitize_file_name("\u{200B}"), None);
        let long = format!("{}.jpeg", "x".repeat(300));
        let short = sanitize_file_name(&long).unwrap();
        assert_eq!(short.chars().count(), MAX_ORIGINAL_NAME);
        assert!(short.ends_with("….jpeg"), "{short}");
    }
}
