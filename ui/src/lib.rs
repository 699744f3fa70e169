//! The web UI: server-rendered pages (askama) for signing up, logging in, classifying images,
//! reading results and history, and sending feedback. It is an ordinary HTTP client of the API:
//! no Redis, no database, no business logic of its own.

pub mod api;
pub mod assets;
pub mod config;
pub mod csrf;
pub mod error;
pub mod example;
pub mod format;
pub mod pages;
pub mod routes;
pub mod session;
pub mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderValue};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::api::ApiClient;
use crate::config::Config;

/// `UI_REQUEST_TIMEOUT`'s default, for states built without a configuration (tests).
const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub api: ApiClient,
    pub cookie_secure: bool,
    pub max_upload_mb: usize,
    /// Longest one request may take (`UI_REQUEST_TIMEOUT`).
    pub request_timeout: std::time::Duration,
    /// Label lists per model: fetched once, they do not change while the API runs.
    labels: Arc<Mutex<HashMap<String, Arc<Vec<String>>>>>,
    /// Human model names from `/info` ("EfficientNet-Lite0"), by model.
    model_names: Arc<Mutex<HashMap<String, String>>>,
    /// The landing page's worked example, once the running model has classified it.
    example: Arc<Mutex<Option<views::Example>>>,
}

impl AppState {
    /// State for a UI that talks to `api`.
    pub fn new(api: ApiClient, cookie_secure: bool, max_upload_mb: usize) -> Self {
        Self {
            api,
            cookie_secure,
            max_upload_mb: max_upload_mb.max(1),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            labels: Arc::default(),
            model_names: Arc::default(),
            example: Arc::default(),
        }
    }

    /// The state described by the configuration.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let api = ApiClient::new(&config.api_url, config.api_timeout())?;
        let mut state = Self::new(api, config.cookie_secure(), config.max_upload_mb);
        state.request_timeout = config.request_timeout;
        Ok(state)
    }

    /// The human name of `model` from `/info` (cached); the model's own name when unknown.
    pub async fn model_name(&self, model: &str) -> String {
        if model.is_empty() {
            return String::new();
        }
        if let Some(hit) = self
            .model_names
            .lock()
            .ok()
            .and_then(|m| m.get(model).cloned())
        {
            return hit;
        }
        if let Ok(info) = self.api.info().await {
            self.remember_models(&info);
        }
        self.model_names
            .lock()
            .ok()
            .and_then(|m| m.get(model).cloned())
            .unwrap_or_else(|| model.to_owned())
    }

    /// Keeps the human model names of an `/info` answer.
    pub fn remember_models(&self, info: &api_types::Info) {
        if let Ok(mut map) = self.model_names.lock() {
            for m in &info.models {
                map.insert(m.name.clone(), m.display_name.clone());
            }
        }
    }

    /// The landing page's worked example, if it has been classified yet.
    pub fn example(&self) -> Option<views::Example> {
        self.example.lock().ok().and_then(|e| e.clone())
    }

    /// Stores the worked example (see [`example::compute`]).
    pub fn set_example(&self, ex: views::Example) {
        if let Ok(mut slot) = self.example.lock() {
            *slot = Some(ex);
        }
    }

    /// The labels of `model`, from the cache or the API. An empty list when the API has none:
    /// the feedback form then still takes free text.
    pub async fn labels(&self, model: &str) -> Vec<String> {
        if let Some(hit) = self.labels.lock().ok().and_then(|m| m.get(model).cloned()) {
            return hit.as_ref().clone();
        }
        match self.api.labels(model).await {
            Ok(labels) => {
                let labels = Arc::new(labels);
                if let Ok(mut map) = self.labels.lock() {
                    map.insert(model.to_owned(), labels.clone());
                }
                labels.as_ref().clone()
            }
            Err(err) => {
                tracing::warn!(error = %err, model, "could not load labels");
                Vec::new()
            }
        }
    }
}

/// Content-Security-Policy: only our own script and stylesheet; `blob:` images for upload previews.
const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; \
style-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
object-src 'none'";

/// Every route of the UI.
pub fn app(state: AppState) -> Router {
    let upload_limit = state.max_upload_mb * 1024 * 1024;
    Router::new()
        .merge(routes::classify::router(upload_limit))
        .merge(routes::results::router())
        .merge(routes::history::router())
        .merge(routes::auth::router())
        .merge(routes::assets::router())
        .route("/health", get(routes::health))
        .fallback(routes::not_found)
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(
                    |_: tower::BoxError| async { error::Error::TooSlow },
                ))
                .timeout(state.request_timeout),
        )
        .layer(axum::middleware::from_fn(error::render_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::layer,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(axum::middleware::from_fn(api::forward_client_address))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Bind, serve until `shutdown` is cancelled (SIGTERM or Ctrl-C in `main`), then finish the
/// requests in flight.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = AppState::from_config(&config)?;
    tokio::spawn(example::compute(state.clone(), shutdown.clone()));
    let listener = tokio::net::TcpListener::bind(config.ui_bind).await?;
    if let Some(path) = &config.port_file {
        // Through a rename, so a reader never sees a half-written file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", listener.local_addr()?.port()))?;
        std::fs::rename(&tmp, path)?;
    }
    tracing::info!(addr = %listener.local_addr()?, api = %config.api_url, "ui listening");
    // The API believes the forwarded address only from peers it trusts; otherwise every browser
    // counts as this UI's one address for its per-address rate limits (issue 24, finding 7g).
    tracing::info!(
        api = %config.api_url,
        "the UI forwards each browser's address in X-Forwarded-For: the API must list this UI's \
         address in TRUSTED_PROXIES (and keep TRUSTED_PROXY_HEADER at X-Forwarded-For), or all \
         the UI's users share one address's rate limits"
    );
    // Handlers see the peer address (`ConnectInfo`): the API calls made for a browser say
    // whose they are.
    http_server::serve(
        listener,
        app(state),
        config.server.clone(),
        http_server::Shutdown {
            signal: async move { shutdown.cancelled().await },
            grace: None,
        },
    )
    .await?;
    tracing::info!("ui stopped");
    Ok(())
}

/// Percent-encode a string for a query parameter or path segment.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
