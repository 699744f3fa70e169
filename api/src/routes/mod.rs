//! One module per resource, each exposing `router()`; merged here.

pub mod collections;
pub mod feedback;
pub mod health;
pub mod info;
pub mod predict;
pub mod predictions;
pub mod upload;
pub mod users;
pub mod v2;

use axum::extract::DefaultBodyLimit;
use axum::Router;

use crate::config::MAX_JSON_BODY;
use crate::state::AppState;

/// Every route of the API; `body_limit` bounds the upload routes' bodies, [`MAX_JSON_BODY`]
/// the others that read one.
pub fn router(body_limit: usize) -> Router<AppState> {
    let json_routes = users::router()
        .merge(feedback::router())
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY));
    Router::new()
        .merge(health::router())
        .merge(info::router())
        .merge(json_routes)
        .merge(predictions::router(body_limit))
        .merge(predict::router(body_limit))
        .merge(v2::router(body_limit))
        .merge(collections::router())
}

/// Largest `page`: keeps the row offset (`(page - 1) * per_page`) far inside an `i64`.
pub const MAX_PAGE: i64 = i32::MAX as i64;
/// Largest `per_page`.
pub const MAX_PER_PAGE: i64 = 100;

/// `?page=&per_page=` for listings. Read as text and checked here, so that a value out of
/// range (`per_page=0`, `page=-1`, `per_page=2147483648`) or not a whole number is refused with
/// 422 naming the parameter, never clamped.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// 1-based page number (default 1).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 2147483647)]
    pub page: Option<String>,
    /// Items per page (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub per_page: Option<String>,
}

/// `value` of the query parameter `field` as a whole number in `min..=max`, or `default`.
fn paging_value(
    value: Option<&str>,
    field: &'static str,
    max: i64,
    default: i64,
) -> crate::error::Result<i64> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(crate::error::ApiError::Validation(
            format!("{field} must be a whole number from 1 to {max}"),
            field,
        )),
    }
}

impl Page {
    /// (page, per_page, limit, offset), defaults applied; 422 for a value out of range.
    pub fn bounds(&self) -> crate::error::Result<(u32, u32, i64, i64)> {
        let page = paging_value(self.page.as_deref(), "page", MAX_PAGE, 1)?;
        let per = paging_value(self.per_page.as_deref(), "per_page", MAX_PER_PAGE, 20)?;
        // Both fit a u32 (checked above); the conversions cannot fail.
        let as_u32 = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok((as_u32(page), as_u32(per), per, (page - 1) * per))
    }

    /// This page of the caller's rows of `list`, built into the page type by `page_of`.
    pub async fn fetch<T, P>(
        self,
        state: &AppState,
        user_id: i64,
        list: &crate::db::UserListing<T>,
        page_of: fn(Vec<T>, u32, u32, i64) -> P,
    ) -> crate::error::Result<P> {
        let (page, per_page, limit, offset) = self.bounds()?;
        let (items, total) = state
            .db_call(state.db.user_page(list, user_id, limit, offset))
            .await?;
        Ok(page_of(items, page, per_page, total))
    }
}
