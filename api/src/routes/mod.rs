//! One module per resource, each exposing `router()`; merged here.

pub mod feedback;
pub mod health;
pub mod info;
pub mod predict;
pub mod predictions;
pub mod upload;
pub mod users;

use axum::Router;

use crate::state::AppState;

/// Every route of the API; `body_limit` bounds the upload routes' bodies.
pub fn router(body_limit: usize) -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(info::router())
        .merge(users::router())
        .merge(predictions::router(body_limit))
        .merge(predict::router(body_limit))
        .merge(feedback::router())
}

/// `?page=&per_page=` for listings.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::IntoParams)]
pub struct Page {
    /// 1-based page number.
    pub page: Option<u32>,
    /// Items per page (1..=100, default 20).
    pub per_page: Option<u32>,
}

impl Page {
    /// (page, per_page, limit, offset) with defaults and bounds applied.
    pub fn bounds(self) -> (u32, u32, i64, i64) {
        let page = self.page.unwrap_or(1).max(1);
        let per = self.per_page.unwrap_or(20).clamp(1, 100);
        (
            page,
            per,
            i64::from(per),
            i64::from(page - 1) * i64::from(per),
        )
    }

    /// This page of the caller's rows of `list`, built into the page type by `page_of`.
    pub async fn fetch<T, P>(
        self,
        state: &AppState,
        user_id: i64,
        list: &crate::db::UserListing<T>,
        page_of: fn(Vec<T>, u32, u32, i64) -> P,
    ) -> crate::error::Result<P> {
        let (page, per_page, limit, offset) = self.bounds();
        let (items, total) = state
            .db_call(state.db.user_page(list, user_id, limit, offset))
            .await?;
        Ok(page_of(items, page, per_page, total))
    }
}
