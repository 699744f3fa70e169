//! Page handlers, one module per area, plus the small routes every service has.

pub mod assets;
pub mod auth;
pub mod classify;
pub mod history;
pub mod results;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::csrf::CsrfToken;
use crate::error::Error;
use crate::session::Session;
use crate::AppState;

/// What every page of a signed-in person needs: the state, the form token and their session
/// (destructured like axum's own extractors: `SignedIn(state, csrf, session)`). Extracting it
/// redirects to the login page when nobody is signed in, like [`Session`].
pub struct SignedIn(pub AppState, pub CsrfToken, pub Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Extension(csrf) = Extension::<CsrfToken>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(SignedIn(state.clone(), csrf, session))
    }
}

/// `GET /health`: 200 while the process runs (it does not call the API).
pub async fn health() -> Json<api_types::Health> {
    Json(api_types::Health {
        status: api_types::HealthStatus::Ok,
    })
}

/// Any unknown path: a friendly 404 page.
pub async fn not_found() -> Error {
    Error::NotFound
}
