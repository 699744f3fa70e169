//! The history page: the user's past classifications, newest first, with thumbnails.

use axum::extract::Query;
use serde::Deserialize;

use crate::error::Result;
use crate::pages::{HistoryPage, JobView, Layout, Page};
use crate::routes::SignedIn;

/// Cards per page: a 4x3 grid on a desktop.
const PER_PAGE: u64 = 12;

/// Query of the history page.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    /// Kept as text so `?page=abc` shows page 1 instead of a raw rejection.
    page: Option<String>,
}

/// `GET /history?page=N`.
pub async fn show(
    SignedIn(state, csrf, session): SignedIn,
    Query(q): Query<HistoryQuery>,
) -> Result<Page<HistoryPage>> {
    let page = q
        .page
        .and_then(|p| p.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .clamp(1, 100_000);
    let list = state.api.history(&session.token, page, PER_PAGE).await?;
    let per_page = if list.per_page == 0 {
        PER_PAGE
    } else {
        u64::from(list.per_page)
    };
    let total = u64::try_from(list.total).unwrap_or(0);
    let pages = total.div_ceil(per_page).max(1);
    Ok(Page::ok(HistoryPage {
        layout: Layout::new("History", session.name.clone(), &csrf.0, "history"),
        items: list.items.iter().map(JobView::from_job).collect(),
        page,
        pages,
        total,
    }))
}
