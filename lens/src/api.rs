//! The service's HTTP API as lens uses it, typed by `api-types`. Every request is sent again
//! after a transport error or a 429/502/503/504 (after `Retry-After`, else a jittered
//! exponential back-off), which is safe: adding a part the collection already holds with the
//! same bytes answers `present` and does nothing.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use api_types::{
    Collection, CollectionPage, CreateCollection, ErrorBody, ImagesAdded, LoginRequest, Token,
};
use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

/// Attempts per request before its error is reported.
const ATTEMPTS: usize = 8;

pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// One file of a batch: its path relative to the folder, and its bytes.
pub struct Part<'a> {
    pub path: &'a str,
    pub bytes: &'a [u8],
}

impl Api {
    pub fn new(base: &str, token: Option<String>) -> Result<Api> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("lens/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// An API client that has a token, or the error that says how to get one.
    pub fn logged_in(base: &str, token: Option<String>) -> Result<Api> {
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
            anyhow!("not logged in: run `lens login --email YOU` or set LENS_TOKEN")
        })?;
        Api::new(base, Some(token))
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends the request `build` makes, again after a transport error or an answer that
    /// passes; the last answer, whatever its status, or the last transport error.
    async fn send(&self, build: impl Fn() -> RequestBuilder) -> Result<Response> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(ATTEMPTS)
            .with_jitter()
            .build();
        loop {
            let sent = build().send().await;
            let retry_after = match &sent {
                Ok(r) if passes(r.status()) => retry_after(r),
                Ok(_) => return Ok(sent?),
                Err(e) if e.is_builder() => return Ok(sent?),
                Err(_) => None,
            };
            let Some(delay) = delays.next() else {
                return sent.context("the API did not answer");
            };
            tokio::time::sleep(retry_after.unwrap_or(delay)).await;
        }
    }

    /// `path`'s answer as `T`, or the API's error as an error.
    async fn call<T: DeserializeOwned>(&self, build: impl Fn() -> RequestBuilder) -> Result<T> {
        let resp = ok(self.send(build).await?).await?;
        resp.json().await.context("reading the API's answer")
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<String> {
        let body = LoginRequest {
            username: email.to_owned(),
            password: password.to_owned(),
        };
        let token: Token = self
            .call(|| self.request(Method::POST, "/login").json(&body))
            .await?;
        Ok(token.access_token)
    }

    pub async fn logout(&self) -> Result<()> {
        let resp = self.send(|| self.request(Method::POST, "/logout")).await?;
        // A token that no longer works is as logged out as it gets.
        if resp.status() != StatusCode::UNAUTHORIZED {
            ok(resp).await?;
        }
        Ok(())
    }

    /// All the caller's collections, newest first.
    pub async fn collections(&self) -> Result<Vec<Collection>> {
        let mut all = Vec::new();
        for page in 1.. {
            let path = format!("/collections?page={page}&per_page=100");
            let p: CollectionPage = self.call(|| self.request(Method::GET, &path)).await?;
            let last = p.items.len() < 100 || all.len() + p.items.len() >= p.total as usize;
            all.extend(p.items);
            if last {
                break;
            }
        }
        Ok(all)
    }

    /// The caller's collection called `name`.
    pub async fn find(&self, name: &str) -> Result<Option<Collection>> {
        let all = self.collections().await?;
        Ok(all.into_iter().find(|c| c.name == name))
    }

    /// The caller's collection called `new.name`, created when there is none.
    pub async fn find_or_create(&self, new: &CreateCollection) -> Result<Collection> {
        if let Some(c) = self.find(&new.name).await? {
            return Ok(c);
        }
        let resp = self
            .send(|| self.request(Method::POST, "/collections").json(new))
            .await?;
        if resp.status() == StatusCode::CONFLICT {
            // Created meanwhile (another lens, or an answer lost on the way back).
            return self
                .find(&new.name)
                .await?
                .context("the collection exists but is not listed");
        }
        Ok(ok(resp).await?.json().await?)
    }

    pub async fn collection(&self, id: i64) -> Result<Collection> {
        let path = format!("/collections/{id}");
        self.call(|| self.request(Method::GET, &path)).await
    }

    /// The collection's export as a streamed answer (`csv` or `jsonl`).
    pub async fn export(&self, id: i64, format: &str) -> Result<Response> {
        let path = format!("/collections/{id}/export?format={format}");
        ok(self.send(|| self.request(Method::GET, &path)).await?).await
    }

    /// Adds `parts` to collection `id` in one multipart body.
    pub async fn add_images(&self, id: i64, parts: &[Part<'_>]) -> Result<ImagesAdded> {
        let path = format!("/collections/{id}/images");
        let form = || {
            parts
                .iter()
                .fold(reqwest::multipart::Form::new(), |form, p| {
                    let part = reqwest::multipart::Part::bytes(p.bytes.to_vec())
                        .file_name(p.path.to_owned());
                    form.part("file", part)
                })
        };
        self.call(|| self.request(Method::POST, &path).multipart(form()))
            .await
    }
}

/// An answer worth waiting for: a limit (429) or a server that is not ready (502, 503, 504).
fn passes(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::BAD_GATEWAY
        || status == StatusCode::SERVICE_UNAVAILABLE
        || status == StatusCode::GATEWAY_TIMEOUT
}

fn retry_after(resp: &Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.clamp(1, 300)))
}

/// `resp` when it succeeded, else the API's error (its code and message) as an error.
async fn ok(resp: Response) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => bail!(
            "{} {}: {}",
            status.as_u16(),
            body.error.code,
            body.error.message
        ),
        Err(_) => bail!("{status}: {}", text.chars().take(200).collect::<String>()),
    }
}
