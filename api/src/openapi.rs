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
        routes::v2::server_metadata, routes::v2::live, routes::v2::ready,
        routes::v2::model_metadata, routes::v2::version_metadata, routes::v2::model_ready,
        routes::v2::version_ready, routes::v2::model_config, routes::v2::infer,
        routes::v2::infer_version,
        routes::collections::create_collection, routes::collections::list_collections,
        routes::collections::get_collection, routes::collections::delete_collection,
        routes::collections::add_images, routes::collections::list_items,
        routes::collections::export,
    ),
    // Everything reachable from the paths is collected anyway; the error types are listed so the
    // codes are documented even where a route names no error body.
    components(schemas(api_types::ErrorBody, api_types::ErrorDetail, api_types::ErrorCode)),
    modifiers(&Bearer, &EveryRoute, &FeedbackNamesItsJob)
)]
pub struct ApiDoc;

/// `FeedbackRequest` needs `job_id` or `image_file_name` (a string, not null): a rule across
/// two fields, which the derived schema cannot say, added as `allOf: [fields, anyOf: [...]]`.
struct FeedbackNamesItsJob;

impl Modify for FeedbackNamesItsJob {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type};
        let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas) else {
            return;
        };
        let Some(fields) = schemas.remove("FeedbackRequest") else {
            return;
        };
        let naming = |field: &str| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(Type::String))
                .required(field)
        };
        let description = "`POST /feedback` body: the job (or image name) it is about, what \
            was predicted, what the user says. One of `job_id` and `image_file_name` is required.";
        let schema = AllOfBuilder::new()
            .item(fields)
            .item(
                AnyOfBuilder::new()
                    .item(naming("job_id"))
                    .item(naming("image_file_name")),
            )
            .description(Some(description))
            .build();
        schemas.insert(
            "FeedbackRequest".into(),
            utoipa::openapi::RefOr::T(utoipa::openapi::Schema::AllOf(schema)),
        );
    }
}

/// The answers any route can give, whatever its handler does: 500 (a bug; the cause is logged)
/// and 504 (`REQUEST_TIMEOUT` passed). Added here so no route's annotation can forget them.
const EVERY_ROUTE: &[(&str, &str)] = &[
    (
        "500",
        "`internal`: a bug on the server's side; the cause is logged, not sent",
    ),
    ("504", "`timeout`: no answer within `REQUEST_TIMEOUT`"),
];

/// What every route that needs a token can answer.
const SECURED_ROUTE: &[(&str, &str)] = &[(
    "401",
    "`unauthorized`: no token, or a bad, expired or revoked one",
)];

/// What every route that reads Redis or the database can answer.
const STATEFUL_ROUTE: &[(&str, &str)] = &[(
    "503",
    "`unavailable`: Redis or the database did not answer within its deadline",
)];

/// Routes that touch neither Redis nor the database (or, `/ready`, document their own 503).
const STATELESS: &[&str] = &[
    "/health",
    "/metrics",
    "/models/{name}/labels",
    "/ready",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{model}",
    "/v2/models/{model}/versions/{version}",
    "/v2/models/{model}/config",
];

/// The refusals of an upload (`POST /predictions`, `POST /predict`), written once for both.
const UPLOAD_REFUSALS: &[(&str, &str)] = &[
    ("400", "`bad_request` (not a multipart form), `missing_file`, `empty_file`, `invalid_image` (truncated or undecodable; for `/predict` also when the worker could not classify it)"),
    ("413", "`payload_too_large` (over `MAX_UPLOAD_BYTES`), `image_too_large` (over `MAX_PIXELS` or `MAX_DECODED_BYTES`, read from the header)"),
    ("415", "`unsupported_media_type`: not JPEG, PNG, WebP, GIF or BMP"),
    ("422", "`validation_failed` (`top_k`), `image_too_small`, `unknown_model`, `model_unavailable` (benchmark-only, or no live worker serves it)"),
    ("429", "`queue_full`, `quota_exceeded` (the caller's unfinished jobs or bytes), `rate_limited` (uploads per address or account); retry after `Retry-After` seconds"),
    ("503", "`unavailable`: Redis or the database cannot be reached, or Redis is nearly full"),
];

/// What a route with a JSON body can answer (its own annotation may say more).
const JSON_BODY_ROUTE: &[(&str, &str)] = &[
    ("400", "`bad_request`: not JSON, or no `Content-Type: application/json`; a value the database cannot store"),
    ("413", "`payload_too_large`: the body is over the limit"),
    ("422", "`validation_failed` with `field`: a missing field or one breaking the schema's rules"),
];

/// What a paged list (`page`, `per_page`) can answer.
const PAGED_ROUTE: &[(&str, &str)] = &[
    ("400", "`bad_request`: an unreadable query"),
    (
        "422",
        "`validation_failed`: `page` or `per_page` out of range",
    ),
];

/// The 400 of a malformed path parameter, by the parameter in the route's path.
const PATH_PARAMETERS: &[(&str, &[(&str, &str)])] = &[
    (
        "{job_id}",
        &[("400", "`bad_request`: `job_id` is not a UUID")],
    ),
    (
        "{id}",
        &[("400", "`bad_request`: `id` is not a whole number")],
    ),
    ("{name}", &[("400", "`bad_request`: an unreadable path")]),
    ("{model}", &[("400", "an unreadable path")]),
];

/// Adds [`EVERY_ROUTE`] to every operation, [`JSON_BODY_ROUTE`], [`PAGED_ROUTE`] and
/// [`PATH_PARAMETERS`] to the routes they describe, [`SECURED_ROUTE`] to those that need a token,
/// [`STATEFUL_ROUTE`] to those that use Redis or the database and [`UPLOAD_REFUSALS`] to the two
/// upload operations, each with the error body its route answers; a route's own annotation of
/// the same status (e.g. the log-in's 401) wins.
struct EveryRoute;

impl Modify for EveryRoute {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            // `/predict` answers its errors with `success: false` beside `error`.
            // The V2 routes answer theirs in the protocol's shape, `{"error": "message"}`.
            let body = if path == "/predict" {
                "PredictError"
            } else if path.starts_with("/v2") {
                "V2Error"
            } else {
                "ErrorBody"
            };
            let upload = matches!(path.as_str(), "/predict" | "/predictions");
            let ops = [
                (false, &mut item.get),
                (false, &mut item.put),
                (upload, &mut item.post),
                (false, &mut item.delete),
                (false, &mut item.patch),
            ];
            for (is_upload, op) in ops {
                if let Some(op) = op {
                    add_answers(path, is_upload, body, op);
                }
            }
        }
    }
}

/// Adds to one operation of `path` the answers [`EveryRoute`] describes, each with the error
/// `body` schema; statuses the operation already describes keep their own description.
fn add_answers(path: &str, is_upload: bool, body: &str, op: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let refusals = if is_upload {
        UPLOAD_REFUSALS
    } else if op.request_body.is_some() {
        JSON_BODY_ROUTE
    } else {
        &[]
    };
    let paged = op.parameters.iter().flatten().any(|p| p.name == "per_page");
    let paged = if paged { PAGED_ROUTE } else { &[] };
    let malformed = PATH_PARAMETERS
        .iter()
        .filter(|(param, _)| path.contains(param))
        .flat_map(|(_, answers)| answers.iter());
    let secured = if op.security.is_some() {
        SECURED_ROUTE
    } else {
        &[]
    };
    let stateful = if STATELESS.contains(&path) {
        &[]
    } else {
        STATEFUL_ROUTE
    };
    // The first description of a status wins: the upload's own list first.
    let answers = refusals.iter().chain(paged).chain(malformed);
    let answers = answers.chain(EVERY_ROUTE).chain(secured).chain(stateful);
    for (status, description) in answers {
        op.responses
            .responses
            .entry((*status).into())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(*description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(body)))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
}

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

    /// Every operation of the served document.
    fn operations(doc: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
        out
    }

    /// The statuses every route of a kind can answer are documented on each such route: 401
    /// where a token is needed, 400 where a path or query parameter or a body can be
    /// unreadable, 413 where there is a body, 503 where Redis or the database is used, and
    /// 500 and 504 everywhere. (401, 503, 500, 504 and the upload refusals are added by
    /// [`EveryRoute`] from one list each; 400 and 413 come from the routes' annotations. This
    /// checks the served document either way; schemathesis checks the answers against it in CI.)
    #[tokio::test]
    async fn every_route_documents_the_statuses_it_can_answer() {
        let doc: serde_json::Value = serde_json::from_str(&served().await).unwrap();
        let mut missing = Vec::new();
        for (method, path, op) in operations(&doc) {
            let has = |status: &str| op["responses"].get(status).is_some();
            let secured = op.get("security").is_some();
            let params = op
                .get("parameters")
                .and_then(|p| p.as_array())
                .is_some_and(|p| !p.is_empty());
            let body = op.get("requestBody").is_some();
            let stateful = !matches!(
                path.as_str(),
                "/health"
                    | "/metrics"
                    | "/models/{name}/labels"
                    | "/v2"
                    | "/v2/health/live"
                    | "/v2/health/ready"
                    | "/v2/models/{model}"
                    | "/v2/models/{model}/versions/{version}"
                    | "/v2/models/{model}/config"
            );
            let mut want = vec!["500", "504"];
            if secured {
                want.push("401");
            }
            if params || body {
                want.push("400");
            }
            if body {
                want.push("413");
            }
            if stateful {
                want.push("503");
            }
            for status in want {
                if !has(status) {
                    missing.push(format!("{method} {path}: {status}"));
                }
            }
        }
        assert!(missing.is_empty(), "undocumented statuses: {missing:#?}");
    }

    /// The parts of the contract a client needs to send valid requests are in the schema.
    #[tokio::test]
    async fn the_schema_names_the_upload_field_paging_bounds_and_password_rules() {
        let doc: serde_json::Value = serde_json::from_str(&served().await).unwrap();
        let schemas = &doc["components"]["schemas"];
        let form = &schemas["UploadForm"];
        assert_eq!(form["required"], serde_json::json!(["file"]), "{form}");
        assert_eq!(form["properties"]["file"]["format"], "binary", "{form}");
        for path in ["/predictions", "/predict"] {
            let body = &doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"];
            assert_eq!(
                body["schema"]["$ref"], "#/components/schemas/UploadForm",
                "{path}"
            );
        }
        let password = &schemas["RegisterRequest"]["properties"]["password"];
        assert_eq!(password["minLength"], 8, "{password}");
        assert_eq!(password["maxLength"], 256, "{password}");
        for path in ["/predictions", "/feedback", "/users"] {
            let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
            let per_page = params.iter().find(|p| p["name"] == "per_page").unwrap();
            assert_eq!(per_page["schema"]["minimum"], 1, "{path}");
            assert_eq!(per_page["schema"]["maximum"], 100, "{path}");
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
