//! Template structs (askama) and the view models they display, plus [`Page`], the one
//! `IntoResponse` wrapper that renders any of them.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use api_types::{Job, JobStatus, Prediction, Submitted};

use crate::assets;

/// A rendered template with its status code.
pub struct Page<T> {
    status: StatusCode,
    template: T,
}

impl<T: Template> Page<T> {
    /// 200 OK with this template.
    pub fn ok(template: T) -> Self {
        Self::with_status(StatusCode::OK, template)
    }

    /// This template with another status (a form shown again with its errors, an error page).
    pub fn with_status(status: StatusCode, template: T) -> Self {
        Self { status, template }
    }
}

impl<T: Template> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match self.template.render() {
            Ok(html) => {
                let mut resp = (self.status, Html(html)).into_response();
                // Pages show a user's own data: never let a shared cache keep them.
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                resp
            }
            Err(err) => {
                tracing::error!(error = %err, "template failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, Html(FALLBACK_ERROR_HTML)).into_response()
            }
        }
    }
}

/// Shown only if a template itself fails: still a page, not a blank screen.
const FALLBACK_ERROR_HTML: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
<title>Something went wrong</title><h1>Something went wrong on our side</h1>\
<p>Please <a href=\"/\">go back to the start page</a> and try again.</p></html>";

/// What every page's frame needs: who is logged in, the CSRF token for forms, the active tab.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    pub user: Option<String>,
    pub csrf: String,
    pub active: &'static str,
    pub css: &'static str,
    pub js: &'static str,
    pub icon: &'static str,
}

impl Layout {
    /// The frame for a page with a title, the visitor's name (if logged in), the CSRF token and tab.
    pub fn new(
        title: impl Into<String>,
        user: Option<String>,
        csrf: &str,
        active: &'static str,
    ) -> Self {
        Self {
            title: title.into(),
            user,
            csrf: csrf.to_owned(),
            active,
            css: assets::css_href(),
            js: assets::js_href(),
            icon: assets::icon_href(),
        }
    }

    /// The frame for error pages, which are rendered without request context.
    pub fn anonymous(title: &str) -> Self {
        Self::new(title, None, "", "")
    }
}

/// A notice shown above a form (`info`, `success`, `warning` or `error`).
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: &'static str,
    pub text: String,
}

impl Notice {
    pub fn new(kind: &'static str, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub email: String,
    pub next: String,
    pub notice: Option<Notice>,
}

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    pub layout: Layout,
    pub name: String,
    pub email: String,
    pub notice: Option<Notice>,
    pub name_error: Option<String>,
    pub email_error: Option<String>,
    pub password_error: Option<String>,
}

/// One model in the classify form's selector.
#[derive(Debug, Clone)]
pub struct ModelChoice {
    pub name: String,
    pub description: String,
    pub selected: bool,
    pub workers: u64,
}

#[derive(Template)]
#[template(path = "classify.html")]
pub struct ClassifyPage {
    pub layout: Layout,
    pub models: Vec<ModelChoice>,
    pub workers_live: u64,
    pub queue_depth: u64,
    pub notices: Vec<Notice>,
    pub max_upload_mb: usize,
}

#[derive(Template)]
#[template(path = "result.html")]
pub struct ResultPage {
    pub layout: Layout,
    pub job: JobView,
    /// The rendered [`ResultPanel`], shared with the live-status endpoint.
    pub panel_html: String,
}

/// The part of the result page that changes when the job finishes.
#[derive(Template)]
#[template(path = "result_panel.html")]
pub struct ResultPanel {
    pub job: JobView,
    pub csrf: String,
    pub labels: Vec<String>,
    pub notice: Option<Notice>,
}

#[derive(Template)]
#[template(path = "batch.html")]
pub struct BatchPage {
    pub layout: Layout,
    pub jobs: Vec<JobView>,
    pub notices: Vec<Notice>,
    pub any_pending: bool,
    pub cards_html: Vec<String>,
}

/// One job as a card (batch page, live updates).
#[derive(Template)]
#[template(path = "job_card.html")]
pub struct JobCard {
    pub job: JobView,
}

#[derive(Template)]
#[template(path = "history.html")]
pub struct HistoryPage {
    pub layout: Layout,
    pub items: Vec<JobView>,
    pub page: u64,
    pub pages: u64,
    pub total: u64,
}

impl HistoryPage {
    /// Link to the previous page, if any.
    pub fn prev(&self) -> Option<u64> {
        (self.page > 1).then(|| self.page - 1)
    }

    /// Link to the next page, if any.
    pub fn next(&self) -> Option<u64> {
        (self.page < self.pages).then(|| self.page + 1)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub code: u16,
    pub title: &'static str,
    pub message: String,
}

/// One bar of the top-k chart.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    /// "25.5%"
    pub percent: String,
    /// 0..=100, the CSS width class `w-N`.
    pub width: u8,
}

impl Bar {
    fn from_prediction(p: &Prediction) -> Self {
        let score = score_as_sent(p.score);
        let score = if score.is_finite() {
            score.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let pct = score * 100.0;
        // One decimal everywhere, so the column lines up; tiny scores are not shown as "0.0%".
        let percent = if pct >= 0.05 {
            format!("{pct:.1}%")
        } else {
            "< 0.1%".to_owned()
        };
        // A visible sliver even for tiny scores, so every row has a bar.
        let width = (pct.round() as u8).max(1);
        Self {
            label: p.label.clone(),
            percent,
            width,
        }
    }
}

/// A score as the decimal the API wrote (`0.255`), widened without binary noise
/// (`0.2549999952…`), so percentages round the way the number reads.
pub fn score_as_sent(score: f32) -> f64 {
    score.to_string().parse().unwrap_or(f64::from(score))
}

/// A job as the templates show it.
#[derive(Debug, Clone)]
pub struct JobView {
    pub id: String,
    pub status: String,
    pub status_text: &'static str,
    pub finished: bool,
    pub model: String,
    pub created: String,
    pub created_iso: String,
    pub cached: bool,
    pub bars: Vec<Bar>,
    pub error: Option<String>,
    pub elapsed: Option<String>,
}

impl JobView {
    /// Shape a job for display.
    pub fn from_job(job: &Job) -> Self {
        let created_iso = job.created_at.clone();
        Self {
            id: job.job_id.clone(),
            status: job.status.as_str().to_owned(),
            status_text: status_text(job.status),
            finished: job.status.is_terminal(),
            model: job.model.clone(),
            created: human_time(&created_iso),
            created_iso,
            cached: job.cached,
            bars: job.predictions().iter().map(Bar::from_prediction).collect(),
            error: job.error.clone(),
            elapsed: job
                .result
                .as_ref()
                .map(|r| format!("{:.0} ms", r.elapsed_ms)),
        }
    }

    /// Shape what `POST /predictions` answered: the cached job, or a queued one known by id.
    pub fn from_submitted(submitted: &Submitted) -> Self {
        match submitted {
            Submitted::Cached(job) => Self::from_job(job),
            Submitted::Accepted(a) => Self {
                id: a.job_id.clone(),
                status: a.status.as_str().to_owned(),
                status_text: status_text(a.status),
                finished: a.status.is_terminal(),
                model: String::new(),
                created: String::new(),
                created_iso: String::new(),
                cached: false,
                bars: Vec::new(),
                error: None,
                elapsed: None,
            },
        }
    }

    /// The best guess, if the job is done.
    pub fn top(&self) -> Option<&Bar> {
        self.bars.first()
    }

    /// True when the job finished with predictions.
    pub fn is_done(&self) -> bool {
        self.status == "done"
    }
}

/// What a person reads for a job's state.
fn status_text(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Queued => "Waiting in the queue…",
        JobStatus::Processing => "Classifying…",
        JobStatus::Done => "Done",
        JobStatus::Failed => "Failed",
    }
}

/// "22 Nov 2025, 14:03 UTC" from an RFC 3339 time; the input as-is when it does not parse.
pub fn human_time(iso: &str) -> String {
    let Ok(t) = OffsetDateTime::parse(iso, &Rfc3339) else {
        return iso.to_owned();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    let month = match t.month() {
        time::Month::January => "Jan",
        time::Month::February => "Feb",
        time::Month::March => "Mar",
        time::Month::April => "Apr",
        time::Month::May => "May",
        time::Month::June => "Jun",
        time::Month::July => "Jul",
        time::Month::August => "Aug",
        time::Month::September => "Sep",
        time::Month::October => "Oct",
        time::Month::November => "Nov",
        time::Month::December => "Dec",
    };
    format!(
        "{} {} {}, {:02}:{:02} UTC",
        t.day(),
        month,
        t.year(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_show_percentages_and_never_vanish() {
        let bar = |score| {
            Bar::from_prediction(&Prediction {
                label: "academic gown".into(),
                class_id: 400,
                score,
            })
        };
        let big = bar(0.255);
        assert_eq!(big.percent, "25.5%");
        assert_eq!(big.width, 26);
        let tiny = bar(0.0004);
        assert_eq!(tiny.percent, "< 0.1%");
        assert_eq!(tiny.width, 1);
    }

    #[test]
    fn times_are_readable() {
        assert_eq!(human_time("2025-11-22T14:03:09Z"), "22 Nov 2025, 14:03 UTC");
        assert_eq!(human_time("garbage"), "garbage");
    }
}
