//! Template structs (askama), one per page or fragment, plus [`Page`], the one `IntoResponse`
//! wrapper that renders any of them. What they display is in [`crate::views`].

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::assets;
use crate::views::{Example, JobView};

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
