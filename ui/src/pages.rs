//! Template structs (askama) and the view models they display, plus [`Page`], the one
//! `IntoResponse` wrapper that renders any of them.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use api_types::{Job, JobFeedback, JobStatus, Prediction, Submitted};

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

/// The errors of the log-in or sign-up form, each shown next to its field (all at once).
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    pub name: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
}

impl FieldErrors {
    /// True when any field has an error.
    pub fn any(&self) -> bool {
        self.name.is_some() || self.email.is_some() || self.password.is_some()
    }
}

#[derive(Clone, Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub email: String,
    /// Where to go once logged in (a path on this site).
    pub next: String,
    pub notice: Option<Notice>,
    pub errors: FieldErrors,
}

impl LoginPage {
    /// The log-in form, empty, for the visitor `user` (if already logged in).
    pub fn new(user: Option<String>, csrf: &str, next: String) -> Self {
        Self {
            layout: Layout::new("Log in", user, csrf, "login"),
            email: String::new(),
            next,
            notice: None,
            errors: FieldErrors::default(),
        }
    }
}

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    pub layout: Layout,
    /// Where to go once signed up (a path on this site).
    pub next: String,
    pub name: String,
    pub email: String,
    pub notice: Option<Notice>,
    pub errors: FieldErrors,
}

impl SignupPage {
    /// The sign-up form, empty, for the visitor `user` (if already logged in).
    pub fn new(user: Option<String>, csrf: &str, next: String) -> Self {
        Self {
            layout: Layout::new("Create an account", user, csrf, "signup"),
            next,
            name: String::new(),
            email: String::new(),
            notice: None,
            errors: FieldErrors::default(),
        }
    }
}

/// One model in the classify form's selector.
#[derive(Debug, Clone)]
pub struct ModelChoice {
    pub name: String,
    /// The human name ("EfficientNet-Lite0").
    pub display_name: String,
    /// Accuracy and speed, in words.
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
    /// The person's own images waiting or being classified (`None`: the API did not say).
    pub yours_waiting: Option<u64>,
    pub notices: Vec<Notice>,
    pub max_upload_mb: usize,
}

/// `/` for visitors: what Lens does, a worked example, sign up and log in.
#[derive(Template)]
#[template(path = "landing.html")]
pub struct LandingPage {
    pub layout: Layout,
    /// The example photo's real result, once the running model has classified it.
    pub example: Option<Example>,
    pub example_name: &'static str,
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
    /// A real label for the placeholder of the "right label" field.
    pub label_example: String,
    pub notice: Option<Notice>,
}

#[derive(Template)]
#[template(path = "batch.html")]
pub struct BatchPage {
    pub layout: Layout,
    /// Drawn by `job_card.html`, the same card the live updates send ([`JobCard`]).
    pub jobs: Vec<JobView>,
    pub notices: Vec<Notice>,
}

impl BatchPage {
    /// True while a job is still waiting or being classified (the page then refreshes itself
    /// when script is off).
    pub fn any_pending(&self) -> bool {
        self.jobs.iter().any(|j| !j.finished)
    }
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
    pub filters: HistoryFilters,
    /// (name, human name) of every model, for the model filter.
    pub models: Vec<(String, String)>,
}

/// The history page's search and filters, as the form shows them (empty: not used).
#[derive(Debug, Clone, Default)]
pub struct HistoryFilters {
    pub label: String,
    pub model: String,
    pub from: String,
    pub to: String,
    /// `given`, `none`, `wrong`, `right` or empty.
    pub feedback: String,
}

impl HistoryFilters {
    /// The API's query parameters.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("label", self.label.as_str()),
            ("model", self.model.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("feedback", self.feedback.as_str()),
        ]
    }

    /// True when any filter is set.
    pub fn any(&self) -> bool {
        self.pairs().iter().any(|(_, v)| !v.is_empty())
    }

    /// `&label=…&model=…` for page links, so paging keeps the filters.
    pub fn query(&self) -> String {
        self.pairs()
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("&{k}={}", crate::percent_encode(v)))
            .collect()
    }
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

/// The example's answer as the landing page shows it.
#[derive(Debug, Clone)]
pub struct Example {
    pub bars: Vec<Bar>,
    pub model_name: String,
    pub sure: bool,
    pub candidates: String,
    pub elapsed: Option<String>,
}

/// One bar of the top-k chart.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    /// "25.5%"
    pub percent: String,
    /// 0..=100, the CSS width class `w-N`.
    pub width: u8,
    /// The score, 0..=1.
    pub score: f64,
    /// The class's index in the model's label list.
    pub class_id: usize,
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
            label: display_label(&p.label),
            percent,
            width,
            score,
            class_id: p.class_id,
        }
    }
}

/// Below this top score the result page says it is not sure and names the likely candidates
/// instead of one answer.
pub const CONFIDENT: f64 = 0.5;

/// A label as every page shows it: the model's wording with its first letter in upper case
/// ("tabby, tabby cat" → "Tabby, tabby cat"; "Egyptian cat" stays).
pub fn display_label(label: &str) -> String {
    let label = label.trim();
    let mut chars = label.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The feedback a person gave, as the result page and history show it.
#[derive(Debug, Clone)]
pub struct FeedbackView {
    /// `Some(true)` right, `Some(false)` wrong, `None` only a comment.
    pub is_correct: Option<bool>,
    pub correct_label: String,
    pub comment: String,
}

impl FeedbackView {
    fn from_api(f: &JobFeedback) -> Self {
        Self {
            is_correct: f.is_correct,
            correct_label: f.correct_label.clone().unwrap_or_default(),
            comment: f.feedback.clone(),
        }
    }

    /// True when the person said the best guess was wrong.
    pub fn wrong(&self) -> bool {
        self.is_correct == Some(false)
    }

    /// True when the person said the best guess was right.
    pub fn right(&self) -> bool {
        self.is_correct == Some(true)
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
    /// The file's own name when the API kept one, else a description ("Image of 22 Nov …").
    pub name: String,
    /// The model's human name ("EfficientNet-Lite0"), filled in by the page handler.
    pub model_name: String,
    /// The person's feedback, once given.
    pub feedback: Option<FeedbackView>,
    /// The top score as a fraction (0 when there is none).
    pub top_score: f64,
}

impl JobView {
    /// Shape a job for display.
    pub fn from_job(job: &Job) -> Self {
        let created_iso = job.created_at.clone();
        let created = human_time(&created_iso);
        let name = job
            .original_file_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("Image of {created}"));
        let top_score = job
            .predictions()
            .first()
            .map(|p| score_as_sent(p.score))
            .filter(|s| s.is_finite())
            .unwrap_or(0.0);
        Self {
            name,
            model_name: job.model.clone(),
            feedback: job.feedback.as_ref().map(FeedbackView::from_api),
            top_score,
            id: job.job_id.clone(),
            status: job.status.as_str().to_owned(),
            status_text: status_text(job.status),
            finished: job.status.is_terminal(),
            model: job.model.clone(),
            created,
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
                name: "Your image".into(),
                model_name: String::new(),
                feedback: None,
                top_score: 0.0,
            },
        }
    }

    /// The best guess, if the job is done.
    pub fn top(&self) -> Option<&Bar> {
        self.bars.first()
    }

    /// True when the best guess is confident enough to be stated as the answer.
    pub fn sure(&self) -> bool {
        self.top_score >= CONFIDENT
    }

    /// The guesses after the best one.
    pub fn others(&self) -> &[Bar] {
        self.bars.get(1..).unwrap_or_default()
    }

    /// "“Daisy” or “Rose”" (or three names): the likely candidates when not sure. Candidates
    /// are those within reach of the best (at least a third of its score), two or three.
    pub fn candidates(&self) -> String {
        let best = self.top_score;
        let mut names: Vec<String> = self
            .bars
            .iter()
            .enumerate()
            .filter(|(i, b)| *i < 2 || (*i < 3 && b.score * 3.0 >= best))
            .map(|(_, b)| format!("“{}”", b.label))
            .collect();
        match names.len() {
            0 => String::new(),
            1 => names.remove(0),
            _ => {
                let last = names.pop().unwrap_or_default();
                format!("{} or {last}", names.join(", "))
            }
        }
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
        assert_eq!(bar(0.5).label, "Academic gown");
        let big = bar(0.255);
        assert_eq!(big.percent, "25.5%");
        assert_eq!(big.width, 26);
        let tiny = bar(0.0004);
        assert_eq!(tiny.percent, "< 0.1%");
        assert_eq!(tiny.width, 1);
    }

    fn job(scores: &[(&str, f32)]) -> JobView {
        JobView::from_job(&Job {
            job_id: "j".into(),
            status: JobStatus::Done,
            model: "m".into(),
            image_file_name: "x.jpg".into(),
            original_file_name: Some("peony.jpg".into()),
            created_at: "2025-11-22T14:03:09Z".into(),
            cached: false,
            result: Some(api_types::JobResult {
                predictions: scores
                    .iter()
                    .enumerate()
                    .map(|(i, (l, s))| Prediction {
                        label: (*l).into(),
                        class_id: i,
                        score: *s,
                    })
                    .collect(),
                model: "m".into(),
                elapsed_ms: 1.0,
            }),
            error: None,
            feedback: None,
        })
    }

    #[test]
    fn low_confidence_names_the_candidates() {
        let sure = job(&[("espresso", 0.956), ("cup", 0.02)]);
        assert!(sure.sure());
        assert_eq!(sure.name, "peony.jpg");
        let unsure = job(&[
            ("daisy", 0.222),
            ("rose", 0.2),
            ("tulip", 0.1),
            ("pot", 0.01),
        ]);
        assert!(!unsure.sure());
        assert_eq!(unsure.candidates(), "“Daisy”, “Rose” or “Tulip”");
        let two = job(&[("daisy", 0.4), ("rose", 0.1), ("tulip", 0.05)]);
        assert_eq!(two.candidates(), "“Daisy” or “Rose”");
        assert_eq!(two.others().len(), 2);
    }

    #[test]
    fn times_are_readable() {
        assert_eq!(human_time("2025-11-22T14:03:09Z"), "22 Nov 2025, 14:03 UTC");
        assert_eq!(human_time("garbage"), "garbage");
    }
}
