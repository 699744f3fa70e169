//! The API: HTTP front of the service. It validates uploads, queues jobs in Redis, waits for
//! workers' results, and keeps users, history and feedback in the database. It never runs
//! the model.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod extract;
pub mod holds;
pub mod jobs;
pub mod limits;
pub mod openapi;
pub mod prom;
pub mod routes;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::info;

use crate::auth::Jwt;
use crate::config::ApiConfig;
use crate::db::Db;
use crate::error::ApiError;
use crate::state::{AppState, RedisHandle};

/// The router with every route and layer; tests drive it with `oneshot`. `/metrics` is on it
/// unless `METRICS_BIND` moves it to an address of its own ([`metrics_app`]).
pub fn app(state: AppState) -> Router {
    let body_limit = state.cfg.max_upload_bytes + 64 * 1024;
    let timeout = state.cfg.request_timeout;
    let mut router = routes::router(body_limit).merge(openapi::router());
    if state.cfg.metrics_bind.is_none() {
        router = router.route("/metrics", get(routes::health::get_metrics));
    }
    with_layers(router, body_limit, timeout).with_state(state)
}

/// `/metrics` alone, for the `METRICS_BIND` listener.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(routes::health::get_metrics))
        .fallback(error::not_found_fallback)
        .with_state(state)
}

/// The layers every route gets. The metrics layer is the outermost, so the answers made by the
/// layers inside it are counted: 504 from the timeout, 413 from the body limit, 500 from a
/// caught panic.
pub fn with_layers<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    body_limit: usize,
    timeout: Duration,
) -> Router<S> {
    router
        .fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::Timeout("the request took too long".into())
                }))
                .timeout(timeout),
        )
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn(prom::track))
}

/// The API answers JSON, images and Prometheus text, never pages to run: browsers must not
/// sniff another type, run scripts or frame any answer. Swagger UI (`/docs`) is the one page,
/// with its own vendored scripts, so it keeps a policy allowing them from this origin only.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::{header, HeaderValue};
    let docs = req.uri().path().starts_with("/docs");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let csp = if docs {
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'; sandbox"
    };
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// The process-wide Prometheus recorder (see [`prom::handle`]).
pub fn metrics_handle() -> PrometheusHandle {
    prom::handle()
}

/// Builds the state: database (migrated), Redis handle, registry, keys.
pub async fn build_state(cfg: ApiConfig) -> anyhow::Result<AppState> {
    let key = cfg.jwt_key()?;
    let registry = cfg.common.registry()?;
    let default_model = cfg
        .default_model
        .clone()
        .unwrap_or_else(|| registry.serving_default(cfg.common.models_dir()));
    registry
        .get(&default_model)
        .with_context(|| "DEFAULT_MODEL is not in the model registry")?;
    let db = Db::connect(&cfg.database_url, Duration::from_secs(10)).await?;
    let redis = RedisHandle::new(&cfg.common.redis_url, cfg.common.redis_timeout());
    let (events, _) = tokio::sync::broadcast::channel(1024);
    let state = AppState {
        argon2: Arc::new(auth::Argon2Queue::new(cfg.argon2_queue)),
        limits: Arc::new(limits::Limits::new(&cfg)?),
        guards: Arc::default(),
        holds: Arc::new(holds::Holds::new(cfg.max_waits, cfg.max_waits_per_user)),
        jwt: Jwt::new(&key, cfg.jwt_ttl.as_secs()),
        cfg: Arc::new(cfg),
        registry: Arc::new(registry),
        default_model,
        redis,
        db,
        events,
        metrics: metrics_handle(),
    };
    ensure_admin(&state).await?;
    Ok(state)
}

/// Creates or promotes the admin named by ADMIN_EMAIL / ADMIN_PASSWORD (if both are set).
pub async fn ensure_admin(state: &AppState) -> anyhow::Result<()> {
    let (Some(email), Some(pw)) = (&state.cfg.admin_email, &state.cfg.admin_password) else {
        return Ok(());
    };
    anyhow::ensure!(
        pw.expose_secret().len() >= 8,
        "ADMIN_PASSWORD must be at least 8 characters"
    );
    let email = shared::text::normalize_email(email);
    let hash = auth::hash_password(&state.argon2, pw.expose_secret().to_owned()).await?;
    match state.db.user_by_email(&email).await? {
        Some(u) => state.db.set_admin(u.view.id, Some(&hash)).await?,
        None => {
            state.db.create_user("Admin", &email, &hash, true).await?;
        }
    }
    info!(%email, "admin account ready");
    Ok(())
}

/// A bound, ready-to-run API (tests bind port 0 and read `port`).
pub struct Application {
    pub listener: TcpListener,
    /// The `METRICS_BIND` listener, when `/metrics` has an address of its own.
    pub metrics_listener: Option<TcpListener>,
    pub state: AppState,
    pub port: u16,
}

impl Application {
    pub async fn build(cfg: ApiConfig) -> anyhow::Result<Self> {
        let state = build_state(cfg).await?;
        let listener = TcpListener::bind(&state.cfg.api_bind)
            .await
            .with_context(|| format!("cannot listen on {}", state.cfg.api_bind))?;
        let port = listener.local_addr()?.port();
        let metrics_listener = match &state.cfg.metrics_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on METRICS_BIND {addr}"))?,
            ),
            None => None,
        };
        if let Some(path) = &state.cfg.port_file {
            write_port_file(path, port)?;
        }
        Ok(Application {
            listener,
            metrics_listener,
            state,
            port,
        })
    }

    /// Serves until `shutdown`, then lets in-flight requests finish within the grace period.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state.clone();
        let bg = CancellationToken::new();
        let consumer = format!(
            "api-{}-{}",
            shared::queue::workers::hostname(),
            std::process::id()
        );
        let notifier = tokio::spawn(events::run_notifier(state.clone(), bg.clone()));
        let recorder = tokio::spawn(events::run_recorder(state.clone(), consumer, bg.clone()));
        info!(addr = %self.listener.local_addr()?, "api listening");
        let limits = &state.cfg.server;
        let metrics_server = match self.metrics_listener {
            Some(l) => {
                info!(addr = %l.local_addr()?, "metrics listening");
                let stop = bg.clone();
                let server = http_server::serve(
                    l,
                    metrics_app(state.clone()),
                    limits.clone(),
                    http_server::Shutdown {
                        signal: async move { stop.cancelled().await },
                        grace: None,
                    },
                );
                Some(tokio::spawn(server))
            }
            None => None,
        };
        http_server::serve(
            self.listener,
            app(state.clone()),
            limits.clone(),
            http_server::Shutdown {
                signal: async move { shutdown.cancelled().await },
                grace: Some(state.cfg.shutdown_grace),
            },
        )
        .await?;
        bg.cancel();
        let _ = tokio::join!(notifier, recorder);
        if let Some(m) = metrics_server {
            let _ = m.await;
        }
        info!("api stopped");
        Ok(())
    }
}

/// Writes `port` to `path` through a rename, so a reader never sees a half-written file.
fn write_port_file(path: &std::path::Path, port: u16) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{port}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write the port file {}", path.display()))
}
