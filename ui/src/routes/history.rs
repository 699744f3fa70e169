//! The history page: the user's past classifications, newest first, with thumbnails, searchable
//! by label and filterable by model, dates and feedback; pages keep the filters.

use axum::extract::Query;
use serde::Deserialize;

use crate::error::Result;
use crate::pages::{HistoryFilters, HistoryPage, Layout, Page};
use crate::routes::SignedIn;
use crate::views::JobView;

/// The routes of this module.
pub fn router() -> axum::Router<crate::AppState> {
    axum::Router::new().route("/history", axum::routing::get(show))
}

/// Cards per page: a 4x3 grid on a desktop.
const PER_PAGE: u64 = 12;

/// Query of the history page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HistoryQuery {
    /// Kept as text so `?page=abc` shows page 1 instead of a raw rejection.
    page: Option<String>,
    label: String,
    model: String,
    from: String,
    to: String,
    feedback: String,
}

/// A `YYYY-MM-DD` date, or nothing (a browser's date field sends that shape).
fn date(text: &str) -> String {
    let t = text.trim();
    let ok = t.len() == 10
        && t.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if ok {
        t.to_owned()
    } else {
        String::new()
    }
}

/// `GET /history?page=N&label=&model=&from=&to=&feedback=`.
pub async fn show(
    SignedIn(state, csrf, session): SignedIn,
    Query(q): Query<HistoryQuery>,
) -> Result<Page<HistoryPage>> {
    let page = q
        .page
        .and_then(|p| p.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .clamp(1, 100_000);
    let feedback = match q.feedback.trim() {
        f @ ("given" | "none" | "wrong" | "right") => f.to_owned(),
        _ => String::new(),
    };
    let filters = HistoryFilters {
        label: q.label.trim().chars().take(100).collect(),
        model: q.model.trim().to_owned(),
        from: date(&q.from),
        to: date(&q.to),
        feedback,
    };
    let list = state
        .api
        .history_search(&session.token, page, PER_PAGE, &filters.pairs())
        .await?;
    let models = match state.api.info().await {
        Ok(info) => {
            state.remember_models(&info);
            info.models
                .iter()
                .map(|m| (m.name.clone(), m.display_name.clone()))
                .collect()
        }
        Err(_) => Vec::new(),
    };
    let per_page = if list.per_page == 0 {
        PER_PAGE
    } else {
        u64::from(list.per_page)
    };
    let total = u64::try_from(list.total).unwrap_or(0);
    let pages = total.div_ceil(per_page).max(1);
    let mut items = Vec::new();
    for job in &list.items {
        let mut v = JobView::from_job(job);
        v.model_name = state.model_name(&job.model).await;
        items.push(v);
    }
    Ok(Page::ok(HistoryPage {
        layout: Layout::new("History", session.name.clone(), &csrf.0, "history"),
        items,
        page,
        pages,
        total,
        filters,
        models,
    }))
}
