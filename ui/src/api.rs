//! The API client: typed calls to the v1 HTTP API, and the errors a page can explain.
//!
//! The UI is an ordinary client of the API: everything goes over HTTP with the user's bearer token.

use std::time::Duration;

use reqwest::{multipart, Method, RequestBuilder, StatusCode};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Why an API call did not give the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API could not be reached or did not answer in time (connection refused, timeout, 502-504).
    #[error("the API is unavailable: {0}")]
    Unavailable(String),
    /// The API answered 401: the token is missing, expired or revoked.
    #[error("unauthorized")]
    Unauthorized,
    /// Any other error answer, with the API's own code and message.
    #[error("API error {status}: {code}: {message}")]
    Status {
        status: StatusCode,
        code: String,
        message: String,
        field: Option<String>,
    },
    /// The API answered something this UI does not understand (a contract mismatch).
    #[error("unexpected answer from the API: {0}")]
    Protocol(String),
}

impl ApiError {
    /// The API's error code (`unsupported_media_type`, ...) when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status the API answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Unauthorized => Some(StatusCode::UNAUTHORIZED),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for ApiError {
    fn from(err: reqwest::Error) -> Self {
        if err.is_connect() || err.is_timeout() || err.is_request() {
            ApiError::Unavailable(err.to_string())
        } else if err.is_decode() {
            ApiError::Protocol(err.to_string())
        } else {
            ApiError::Unavailable(err.to_string())
        }
    }
}

/// `{"error": {"code", "message", "field"?}}`, the one error shape of the API.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    field: Option<String>,
}

/// One model the API offers (`GET /info`).
#[derive(Debug, Clone, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub workers: u64,
}

/// `GET /info`.
#[derive(Debug, Clone, Deserialize)]
pub struct Info {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub default_model: Option<String>,
    #[serde(default)]
    pub queue_depth: u64,
    #[serde(default)]
    pub workers_live: u64,
    #[serde(default)]
    pub models: Vec<ModelInfo>,
}

/// `POST /login` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Token {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// `GET /users/me`.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
}

/// One ranked class of a result.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Prediction {
    pub label: String,
    #[serde(default)]
    pub class_id: i64,
    pub score: f64,
}

/// The scored output of a finished job.
#[derive(Debug, Clone, Deserialize)]
pub struct JobResult {
    #[serde(default)]
    pub predictions: Vec<Prediction>,
    #[serde(default)]
    pub elapsed_ms: Option<f64>,
}

/// A classification job (`GET /predictions/{id}`); also what `POST /predictions` returns.
#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    pub job_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub image_file_name: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub cached: bool,
    #[serde(default)]
    pub result: Option<JobResult>,
    /// A string or an object, depending on where the job failed.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

impl Job {
    /// True once the job will not change any more.
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "done" | "failed")
    }

    /// The ranked predictions, best first (empty until the job is done).
    pub fn predictions(&self) -> &[Prediction] {
        self.result
            .as_ref()
            .map(|r| r.predictions.as_slice())
            .unwrap_or_default()
    }

    /// The failure reason as one readable line.
    pub fn error_text(&self) -> Option<String> {
        match self.error.as_ref()? {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(map) => map
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
                .or_else(|| Some(serde_json::Value::Object(map.clone()).to_string())),
            other => Some(other.to_string()),
        }
    }
}

/// One page of a paginated list.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    #[serde(default)]
    pub page: u64,
    #[serde(default)]
    pub per_page: u64,
    #[serde(default)]
    pub total: u64,
}

/// `GET /models/{name}/labels`.
#[derive(Debug, Clone, Deserialize)]
struct Labels {
    #[serde(default)]
    labels: Vec<String>,
}

/// `POST /feedback` body.
#[derive(Debug, Clone, Serialize)]
pub struct NewFeedback {
    pub job_id: String,
    pub predicted_class: String,
    pub score: f64,
    pub feedback: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct_label: Option<String>,
    pub is_correct: bool,
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
        let req = self.http.request(method, format!("{}{}", self.base, path));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Send, turn error answers into [`ApiError`], decode JSON on success.
    async fn send_json<T: DeserializeOwned>(req: RequestBuilder) -> Result<T, ApiError> {
        let resp = Self::send(req).await?;
        let bytes = resp.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Protocol(e.to_string()))
    }

    async fn send(req: RequestBuilder) -> Result<reqwest::Response, ApiError> {
        let resp = Self::send_retrying_stale(req).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(ApiError::Unauthorized);
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
            return Err(ApiError::Unavailable(format!("status {status}")));
        }
        let detail = parsed.map(|b| b.error).unwrap_or(ErrorDetail {
            code: String::new(),
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            field: None,
        });
        Err(ApiError::Status {
            status,
            code: detail.code,
            message: detail.message,
            field: detail.field,
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
    pub async fn info(&self) -> Result<Info, ApiError> {
        Self::send_json(self.request(Method::GET, "/info", None)).await
    }

    /// `GET /models/{name}/labels`.
    pub async fn labels(&self, model: &str) -> Result<Vec<String>, ApiError> {
        let path = format!("/models/{}/labels", encode_segment(model));
        let labels: Labels = Self::send_json(self.request(Method::GET, &path, None)).await?;
        Ok(labels.labels)
    }

    /// `POST /users`: create an account.
    pub async fn register(&self, name: &str, email: &str, password: &str) -> Result<(), ApiError> {
        let body = serde_json::json!({ "name": name, "email": email, "password": password });
        Self::send(self.request(Method::POST, "/users", None).json(&body)).await?;
        Ok(())
    }

    /// `POST /login` with the OAuth2 password form; 401 means wrong email or password.
    pub async fn login(&self, email: &str, password: &str) -> Result<Token, ApiError> {
        let form = [("username", email), ("password", password)];
        Self::send_json(self.request(Method::POST, "/login", None).form(&form)).await
    }

    /// `GET /users/me`.
    pub async fn me(&self, token: &str) -> Result<User, ApiError> {
        Self::send_json(self.request(Method::GET, "/users/me", Some(token))).await
    }

    /// `POST /predictions`: queue one image (or get the cached result at once).
    pub async fn submit(
        &self,
        token: &str,
        upload: Upload,
        model: Option<&str>,
    ) -> Result<Job, ApiError> {
        let mut part = multipart::Part::bytes(upload.bytes).file_name(upload.file_name);
        // The API decides the type from the bytes; the browser's guess is passed on only when well formed.
        if let Some(ct) = upload
            .content_type
            .as_deref()
            .filter(|ct| is_simple_mime(ct))
        {
            part = part
                .mime_str(ct)
                .map_err(|e| ApiError::Protocol(e.to_string()))?;
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
    pub async fn job(&self, token: &str, id: &str, wait: Option<u64>) -> Result<Job, ApiError> {
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
    ) -> Result<Page<Job>, ApiError> {
        let path = format!("/predictions?page={page}&per_page={per_page}");
        Self::send_json(self.request(Method::GET, &path, Some(token))).await
    }

    /// `GET /predictions/{id}/image` or `/thumbnail`.
    pub async fn image(
        &self,
        token: &str,
        id: &str,
        thumbnail: bool,
    ) -> Result<ImageBytes, ApiError> {
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

    /// `POST /feedback`.
    pub async fn feedback(&self, token: &str, feedback: &NewFeedback) -> Result<(), ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(encode_segment("../users"), "..%2Fusers");
        assert_eq!(encode_segment("efficientnet-lite0"), "efficientnet-lite0");
    }

    #[test]
    fn job_error_text_reads_strings_and_objects() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "job_id": "x", "status": "failed", "error": {"code": "invalid_image", "message": "bad bytes"}
        }))
        .expect("job parses");
        assert_eq!(job.error_text().as_deref(), Some("bad bytes"));
        assert!(job.is_finished());
    }
}
