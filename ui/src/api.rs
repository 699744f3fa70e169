//! The API client: typed calls to the v1 HTTP API, and the errors a page can explain.
//!
//! The UI is an ordinary client of the API: everything goes over HTTP with the user's bearer token.

use std::time::Duration;

use api_types::{
    ErrorBody, ErrorCode, FeedbackRequest, Info, Job, JobPage, LoginRequest, ModelLabels,
    RegisterRequest, Submitted, Token, User,
};
use reqwest::header::HeaderValue;
use reqwest::{multipart, Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

/// Why an API call did not give the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiCallError {
    /// The API could not be reached or did not answer in time (connection refused, timeout, 502-504).
    #[error("the API is unavailable: {0}")]
    Unavailable(String),
    /// The API answered 401: the token is missing, expired or revoked.
    #[error("unauthorized")]
    Unauthorized,
    /// Any other error answer, with the API's own code and message (`code` is `None` when the
    /// body was not the API's error shape, e.g. from a proxy).
    #[error("API error {status}: {}: {message}", code.map_or("no code", ErrorCode::as_str))]
    Status {
        status: StatusCode,
        code: Option<ErrorCode>,
        message: String,
        field: Option<String>,
    },
    /// The API answered something this UI does not understand (a contract mismatch).
    #[error("unexpected answer from the API: {0}")]
    Protocol(String),
}

impl ApiCallError {
    /// The API's error code when it sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ApiCallError::Status { code, .. } => *code,
            _ => None,
        }
    }

    /// The HTTP status the API answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiCallError::Status { status, .. } => Some(*status),
            ApiCallError::Unauthorized => Some(StatusCode::UNAUTHORIZED),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for ApiCallError {
    fn from(err: reqwest::Error) -> Self {
        if err.is_connect() || err.is_timeout() || err.is_request() {
            ApiCallError::Unavailable(err.to_string())
        } else if err.is_decode() {
            ApiCallError::Protocol(err.to_string())
        } else {
            ApiCallError::Unavailable(err.to_string())
        }
    }
}

/// One file to classify.
#[derive(Debug, Clone)]
pub struct Upload {
    pub file_name: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// Raw bytes of an image the API serves (uploaded image or thumbnail).
#[derive(Debug, Clone)]
pub struct ImageBytes {
    pub content_type: String,
    pub bytes: axum::body::Bytes,
}

/// A cheap-to-clone handle on the API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
}

tokio::task_local! {
    /// The `X-Forwarded-For` chain of the browser request being served (see
    /// [`forward_client_address`]); every API call made while serving it carries the chain.
    static FORWARDED_FOR: HeaderValue;
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// Entries of an incoming `X-Forwarded-For` kept (the rightmost ones), so a client cannot make
/// the UI send the API an oversized header.
const MAX_FORWARDED: usize = 15;

/// Middleware: the API counts per-address limits (log-in, sign-up, uploads) by the browser's
/// address, not the UI's. It appends the peer address to any `X-Forwarded-For` the request came
/// with, like a reverse proxy; the API believes it only from `TRUSTED_PROXIES` and walks the
/// chain from the right, so entries a client wrote itself are never taken for its address.
pub async fn forward_client_address(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let Some(peer) = peer else {
        return next.run(req).await;
    };
    let incoming: Vec<String> = req
        .headers()
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_graphic()))
        .collect();
    let kept = &incoming[incoming.len().saturating_sub(MAX_FORWARDED)..];
    let mut chain = kept.join(", ");
    if !chain.is_empty() {
        chain.push_str(", ");
    }
    chain.push_str(&peer.to_string());
    // Visible ASCII only (filtered above), so always a valid header value.
    match HeaderValue::from_str(&chain) {
        Ok(v) => FORWARDED_FOR.scope(v, next.run(req)).await,
        Err(_) => next.run(req).await,
    }
}

impl ApiClient {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:8000`).
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(timeout)
            .user_agent(concat!("ui/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Ok(chain) = FORWARDED_FOR.try_with(HeaderValue::clone) {
            req = req.header(X_FORWARDED_FOR, chain);
        }
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Send, turn error answers into [`ApiCallError`], decode JSON on success.
    async fn send_json<T: DeserializeOwned>(req: RequestBuilder) -> Result<T, ApiCallError> {
        let resp = Self::send(req).await?;
        let bytes = resp.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| ApiCallError::Protocol(e.to_string()))
    }

    async fn send(req: RequestBuilder) -> Result<reqwest::Response, ApiCallError> {
        let resp = Self::send_retrying_stale(req).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(ApiCallError::Unauthorized);
        }
        let body = resp.bytes().await.unwrap_or_default();
        let parsed = serde_json::from_slice::<ErrorBody>(&body).ok();
        if parsed.is_none()
            && matches!(
                status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            )
        {
            // A proxy in front of the API, not the API itself: treat it as down.
            return Err(ApiCallError::Unavailable(format!("status {status}")));
        }
        Err(match parsed {
            Some(ErrorBody { error }) => ApiCallError::Status {
                status,
                code: Some(error.code),
                message: error.message,
                field: error.field,
            },
            None => ApiCallError::Status {
                status,
                code: None,
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
                field: None,
            },
        })
    }

    /// Send once; a GET that failed before any answer (typically a pooled keep-alive connection
    /// the API had just closed) is sent once more on a fresh connection. Timeouts are not retried.
    async fn send_retrying_stale(req: RequestBuilder) -> reqwest::Result<reqwest::Response> {
        let (client, request) = req.build_split();
        let request = request?;
        let retry = if request.method() == Method::GET {
            request.try_clone()
        } else {
            None
        };
        match client.execute(request).await {
            Err(err) if !err.is_timeout() && (err.is_request() || err.is_connect()) => {
                match retry {
                    Some(again) => {
                        tracing::debug!(error = %err, "API request failed before an answer; retrying once");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        client.execute(again).await
                    }
                    None => Err(err),
                }
            }
            other => other,
        }
    }

    /// `GET /info`: models, queue depth, live workers.
    pub async fn info(&self) -> Result<Info, ApiCallError> {
        Self::send_json(self.request(Method::GET, "/info", None)).await
    }

    /// `GET /models/{name}/labels`.
    pub async fn labels(&self, model: &str) -> Result<Vec<String>, ApiCallError> {
        let path = format!("/models/{}/labels", encode_segment(model));
        let labels: ModelLabels = Self::send_json(self.request(Method::GET, &path, None)).await?;
        Ok(labels.labels)
    }

    /// `POST /users`: create an account.
    pub async fn register(
        &self,
        name: &str,
        email: &str,
        password: &str,
    ) -> Result<(), ApiCallError> {
        let body = RegisterRequest {
            name: name.to_owned(),
            email: email.to_owned(),
            password: password.to_owned(),
        };
        Self::send(self.request(Method::POST, "/users", None).json(&body)).await?;
        Ok(())
    }

    /// `POST /login` with the OAuth2 password form; 401 means wrong email or password.
    pub async fn login(&self, email: &str, password: &str) -> Result<Token, ApiCallError> {
        let form = LoginRequest {
            username: email.to_owned(),
            password: password.to_owned(),
        };
        Self::send_json(self.request(Method::POST, "/login", None).form(&form)).await
    }

    /// `POST /logout`: revoke the token (401 means it was no longer valid anyway).
    pub async fn logout(&self, token: &str) -> Result<(), ApiCallError> {
        match Self::send(self.request(Method::POST, "/logout", Some(token))).await {
            Ok(_) | Err(ApiCallError::Unauthorized) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET /users/me`.
    pub async fn me(&self, token: &str) -> Result<User, ApiCallError> {
        Self::send_json(self.request(Method::GET, "/users/me", Some(token))).await
    }

    /// `POST /predictions`: queue one image (or get the cached result at once).
    pub async fn submit(
        &self,
        token: &str,
        upload: Upload,
        model: Option<&str>,
    ) -> Result<Submitted, ApiCallError> {
        let mut part = multipart::Part::bytes(upload.bytes).file_name(upload.file_name);
        // The API decides the type from the bytes; the browser's guess is passed on only when well formed.
        if let Some(ct) = upload
            .content_type
            .as_deref()
            .filter(|ct| is_simple_mime(ct))
        {
            part = part
                .mime_str(ct)
                .map_err(|e| ApiCallError::Protocol(e.to_string()))?;
        }
        let mut form = multipart::Form::new().part("file", part);
        if let Some(m) = model.filter(|m| !m.is_empty()) {
            form = form.text("model", m.to_owned());
        }
        Self::send_json(
            self.request(Method::POST, "/predictions", Some(token))
                .multipart(form),
        )
        .await
    }

    /// `GET /predictions/{id}`, holding up to `wait` seconds for the job to finish.
    pub async fn job(&self, token: &str, id: &str, wait: Option<u64>) -> Result<Job, ApiCallError> {
        job_id_shape(id)?;
        let mut path = format!("/predictions/{}", encode_segment(id));
        let mut req_timeout = None;
        if let Some(w) = wait.filter(|w| *w > 0) {
            let w = w.min(30);
            path.push_str(&format!("?wait={w}"));
            req_timeout = Some(Duration::from_secs(w + 15));
        }
        let mut req = self.request(Method::GET, &path, Some(token));
        if let Some(t) = req_timeout {
            req = req.timeout(t);
        }
        Self::send_json(req).await
    }

    /// `GET /predictions?page=&per_page=`: the caller's history, newest first.
    pub async fn history(
        &self,
        token: &str,
        page: u64,
        per_page: u64,
    ) -> Result<JobPage, ApiCallError> {
        let path = format!("/predictions?page={page}&per_page={per_page}");
        Self::send_json(self.request(Method::GET, &path, Some(token))).await
    }

    /// `GET /predictions/{id}/image` or `/thumbnail`.
    pub async fn image(
        &self,
        token: &str,
        id: &str,
        thumbnail: bool,
    ) -> Result<ImageBytes, ApiCallError> {
        job_id_shape(id)?;
        let kind = if thumbnail { "thumbnail" } else { "image" };
        let path = format!("/predictions/{}/{kind}", encode_segment(id));
        let resp = Self::send(self.request(Method::GET, &path, Some(token))).await?;
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = resp.bytes().await?;
        Ok(ImageBytes {
            content_type,
            bytes,
        })
    }

    /// `GET /info` as the caller: the same as [`ApiClient::info`] plus their own waiting jobs.
    pub async fn info_for(&self, token: &str) -> Result<Info, ApiCallError> {
        Self::send_json(self.request(Method::GET, "/info", Some(token))).await
    }

    /// `GET /predictions` narrowed by `filter` (label text, model, dates, feedback), one page.
    pub async fn history_search(
        &self,
        token: &str,
        page: u64,
        per_page: u64,
        filter: &[(&str, &str)],
    ) -> Result<JobPage, ApiCallError> {
        let mut path = format!("/predictions?page={page}&per_page={per_page}");
        for (k, v) in filter.iter().filter(|(_, v)| !v.is_empty()) {
            path.push_str(&format!("&{k}={}", crate::percent_encode(v)));
        }
        Self::send_json(self.request(Method::GET, &path, Some(token))).await
    }

    /// `POST /feedback`.
    pub async fn feedback(
        &self,
        token: &str,
        feedback: &FeedbackRequest,
    ) -> Result<(), ApiCallError> {
        Self::send(
            self.request(Method::POST, "/feedback", Some(token))
                .json(feedback),
        )
        .await?;
        Ok(())
    }
}

/// `type/subtype` made of token characters only.
fn is_simple_mime(s: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
    };
    matches!(s.split_once('/'), Some((a, b)) if token(a) && token(b))
}

/// Percent-encode one path segment (job ids are UUIDs, model names are slugs; this is belt and braces).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Job ids are UUIDs; the API answers 400 for anything else. For a page address with a made-up
/// id the UI says "not found", as for any id the user cannot see.
fn job_id_shape(id: &str) -> Result<(), ApiCallError> {
    match uuid::Uuid::parse_str(id) {
        Ok(_) => Ok(()),
        Err(_) => Err(ApiCallError::Status {
            status: StatusCode::NOT_FOUND,
            code: Some(ErrorCode::NotFound),
            message: "no such job".into(),
            field: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(encode_segment("../users"), "..%2Fusers");
        assert_eq!(encode_segment("efficientnet-lite0"), "efficientnet-lite0");
    }

    #[tokio::test]
    async fn error_answers_carry_the_typed_code_or_none() {
        use axum::http::StatusCode as S;
        use axum::routing::get;
        let app = axum::Router::new()
            .route(
                "/typed",
                get(|| async {
                    let mut body = ErrorBody::new(ErrorCode::ValidationFailed, "bad email");
                    body.error.field = Some("email".into());
                    (S::UNPROCESSABLE_ENTITY, axum::Json(body))
                }),
            )
            .route(
                "/proxy",
                get(|| async { (S::BAD_REQUEST, "<html>nginx</html>") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = ApiClient::new(&base, Duration::from_secs(5)).expect("client");
        let typed = ApiClient::send(client.request(Method::GET, "/typed", None))
            .await
            .expect_err("422");
        assert_eq!(typed.code(), Some(ErrorCode::ValidationFailed));
        assert!(
            matches!(&typed, ApiCallError::Status { field: Some(f), message, .. } if f == "email" && message == "bad email")
        );
        let proxy = ApiClient::send(client.request(Method::GET, "/proxy", None))
            .await
            .expect_err("400");
        assert_eq!(proxy.code(), None);
        assert_eq!(proxy.status(), Some(StatusCode::BAD_REQUEST));
    }
}
