//! The embedded files: stylesheet, script and icons under `/static/`, and the landing page's
//! example photo.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::Error;
use crate::{assets, example, AppState};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/example.jpg", get(example_image))
        .route("/static/{name}", get(serve))
}

/// `GET /static/{name}`: the embedded file with long-lived cache headers.
pub async fn serve(Path(name): Path<String>) -> Result<Response, Error> {
    let (body, content_type) = assets::find(&name).ok_or(Error::NotFound)?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /example.jpg`: the landing page's example photo.
pub async fn example_image() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        example::PHOTO,
    )
        .into_response()
}
