//! The OpenAPI 3 document (`/openapi.json`) and its viewer (`/docs`), derived from the
//! `api_types` bodies and the route annotations. `docs/openapi.json` is its checked-in copy; a
//! test fails when the two differ (`make openapi` rewrites the copy).

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::routes;

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Image classification API", description = "Upload photos, get ImageNet classes back. Every error is `ErrorBody`: `{\"error\": {\"code\", \"message\"}}` (`POST /predict` adds `\"success\": false`)."),
    paths(
        routes::health::get_health, routes::health::get_ready, routes::health::get_metrics,
        routes::info::get_info, routes::info::get_labels,
        routes::users::create_user, routes::users::create_login, routes::users::create_logout, routes::users::get_me,
        routes::users::get_user, routes::users::delete_user, routes::users::list_users,
        routes::predictions::create_prediction, routes::predictions::get_prediction,
        routes::predictions::list_predictions, routes::predictions::get_prediction_image,
        routes::predictions::get_prediction_thumbnail, routes::predict::create_predict,
        routes::feedback::create_feedback, routes::feedback::list_feedback,
    ),
    // Everything reachable from the paths is collected anyway; the error types are listed so the
    // codes are documented even where a route names no error body.
    components(schemas(api_types::ErrorBody, api_types::ErrorDetail, api_types::ErrorCode)),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
        }
    }
}

/// `GET /openapi.json` and the Swagger UI at `/docs`; needs no state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// The checked-in copy of the document.
    const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

    /// `/openapi.json` as served, pretty-printed with sorted keys so the snapshot diffs well.
    async fn served() -> String {
        let resp = super::router::<()>()
            .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let mut text = serde_json::to_string_pretty(&sort_keys(doc)).unwrap();
        text.push('\n');
        text
    }

    /// Object keys in alphabetical order, whatever order the document was built in.
    fn sort_keys(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let sorted: std::collections::BTreeMap<_, _> =
                    map.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sort_keys).collect())
            }
            other => other,
        }
    }

    /// The API contract may only change together with `docs/openapi.json`, so a change to a
    /// route or a body shows up in review as a diff of that file.
    /// `UPDATE_OPENAPI=1` (what `make openapi` sets) rewrites the file instead of comparing.
    #[tokio::test]
    async fn served_openapi_matches_docs_openapi_json() {
        let served = served().await;
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            let path = std::path::Path::new(SNAPSHOT);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &served).unwrap();
            return;
        }
        let stored = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
        if stored == served {
            return;
        }
        let first_diff = stored
            .lines()
            .zip(served.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| stored.lines().count().min(served.lines().count()));
        // A few lines either side: a lone `}` says little about which schema changed.
        let around = |text: &str| {
            let from = first_diff.saturating_sub(4);
            text.lines()
                .enumerate()
                .skip(from)
                .take(first_diff - from + 5)
                .map(|(i, l)| format!("  {:>5} {l}\n", i + 1))
                .collect::<String>()
        };
        panic!(
            "the served /openapi.json differs from docs/openapi.json, first at line {}.\n\
             docs/openapi.json:\n{}served:\n{}\
             If the API change is intended, regenerate the snapshot with `make openapi` and \
             commit docs/openapi.json.",
            first_diff + 1,
            around(&stored),
            around(&served),
        );
    }
}
