//! The OpenAPI 3 document (`/openapi.json`) and its viewer (`/docs`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Image classification API", description = "Upload photos, get ImageNet classes back. Errors are `{\"error\": {\"code\", \"message\"}}`."),
    paths(
        routes::health::get_health, routes::health::get_ready, routes::health::get_metrics,
        routes::info::get_info, routes::info::get_labels,
        routes::users::create_user, routes::users::create_login, routes::users::get_me,
        routes::users::get_user, routes::users::delete_user, routes::users::list_users,
        routes::predictions::create_prediction, routes::predictions::get_prediction,
        routes::predictions::list_predictions, routes::predictions::get_prediction_image,
        routes::predictions::get_prediction_thumbnail, routes::predict::create_predict,
        routes::feedback::create_feedback, routes::feedback::list_feedback,
    ),
    components(schemas(shared::Job, shared::JobResult, shared::Prediction, shared::JobStatus, crate::db::User, crate::db::Feedback)),
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
