//! Page handlers, one module per area, plus the small routes every service has.

pub mod auth;
pub mod classify;
pub mod history;
pub mod results;

use axum::Json;

use crate::error::Error;

/// `GET /health`: 200 while the process runs (it does not call the API).
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Any unknown path: a friendly 404 page.
pub async fn not_found() -> Error {
    Error::NotFound
}
