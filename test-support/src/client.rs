//! An HTTP client of the api for tests and tools: registers a fresh user, logs in, uploads,
//! reads, and waits for jobs through the API's own long poll (`?wait=`).

use std::time::{Duration, Instant};

use api_types::{Info, Job, RegisterRequest, Token, User};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// The password of every user [`Client::register`] creates.
pub const PASSWORD: &str = "password123";

/// An HTTP client logged in as a fresh user.
#[derive(Clone)]
pub struct Client {
    /// The underlying client (60 s timeout).
    pub http: reqwest::Client,
    /// The API's base URL.
    pub base: String,
    /// The bearer token (empty: anonymous).
    pub token: String,
    /// The user's id.
    pub user_id: i64,
    /// The user's email.
    pub email: String,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"))
}

impl Client {
    /// Registers a new user (`POST /users`) and logs in; panics unless both succeed.
    pub async fn register(base: &str) -> Client {
        Self::register_with(http_client(), base).await
    }

    /// [`Client::register`] through a given HTTP client (one over a Unix socket, say).
    pub async fn register_with(http: reqwest::Client, base: &str) -> Client {
        let email = format!("u{}@example.com", uuid::Uuid::new_v4().simple());
        let r = http
            .post(format!("{base}/users"))
            .json(&RegisterRequest {
                name: "Test User".into(),
                email: email.clone(),
                password: PASSWORD.into(),
            })
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {base}/users: {e}"));
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "register: {body}");
        let user: User = typed(&body);
        let token = login(&http, base, &email, PASSWORD).await;
        assert!(!token.is_empty(), "login after register failed");
        Client {
            http,
            base: base.into(),
            token,
            user_id: user.id,
            email,
        }
    }

    /// The same user against another API process (same secret, so the token still holds).
    pub fn with_base(&self, base: &str) -> Client {
        Client {
            base: base.into(),
            ..self.clone()
        }
    }

    /// The same client without a token, on a connection pool of its own (the API answers
    /// 401 before reading an upload and closes that connection).
    pub fn anonymous(&self) -> Client {
        Client {
            token: String::new(),
            http: http_client(),
            ..self.clone()
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.token.is_empty() {
            req
        } else {
            req.bearer_auth(&self.token)
        }
    }

    /// `POST /predictions` of the test photo made unique by `tag` (a new upload for the cache).
    pub async fn upload_photo(&self, tag: &str) -> (u16, Value, Option<String>) {
        let bytes = crate::with_trailer(&crate::grace_hopper(), tag);
        self.upload("/predictions", bytes, None).await
    }

    /// A multipart upload (`file`, optional `model`) to `path` (`/predictions` or
    /// `/predict`): status, JSON body (Null when not JSON) and the `Location` header.
    pub async fn upload(
        &self,
        path: &str,
        bytes: Vec<u8>,
        model: Option<&str>,
    ) -> (u16, Value, Option<String>) {
        let mut form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("photo.jpg"),
        );
        if let Some(m) = model {
            form = form.text("model", m.to_owned());
        }
        let r = self
            .auth(self.http.post(self.url(path)))
            .multipart(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = r.json().await.unwrap_or(Value::Null);
        (status, body, location)
    }

    /// `GET path`: status and JSON body (Null when not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let what = format!("GET {path}");
        self.send(&what, self.http.get(self.url(path))).await
    }

    /// `POST path` with a JSON body: status and JSON body (Null when not JSON).
    pub async fn post_json(&self, path: &str, body: &impl Serialize) -> (u16, Value) {
        let what = format!("POST {path}");
        self.send(&what, self.http.post(self.url(path)).json(body))
            .await
    }

    /// Sends `req` with the token: status and JSON body (Null when not JSON).
    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = self
            .auth(req)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` answering 200 with a `T`; panics (showing the body) otherwise.
    pub async fn get_ok<T: DeserializeOwned>(&self, path: &str) -> T {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        typed(&body)
    }

    /// Waits for a job to finish through `?wait`, repeating the long poll until it is done or
    /// failed or `limit` passes; returns the last view.
    pub async fn wait_done(&self, job_id: &str, limit: Duration) -> Job {
        let deadline = Instant::now() + limit;
        loop {
            let job: Job = self.get_ok(&format!("/predictions/{job_id}?wait=10")).await;
            if job.status.is_terminal() || Instant::now() > deadline {
                return job;
            }
        }
    }

    /// Waits until the caller's history holds exactly `ids`, once each, all done (the api's
    /// recorder writes it from the results stream and may lag); panics, naming `when`, on a
    /// duplicate or missing row or when `within` passes first.
    pub async fn assert_history_exactly(&self, ids: &[String], within: Duration, when: &str) {
        let want: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let deadline = Instant::now() + within;
        loop {
            let hist: api_types::JobPage = self.get_ok("/predictions?per_page=100").await;
            let rows: Vec<&str> = hist.items.iter().map(|j| j.job_id.as_str()).collect();
            let unique: std::collections::HashSet<&str> = rows.iter().copied().collect();
            assert_eq!(unique.len(), rows.len(), "{when}: duplicate history rows");
            assert_eq!(hist.total, ids.len() as i64, "{when}: history total");
            assert_eq!(unique, want, "{when}: history rows are the uploaded jobs");
            if hist
                .items
                .iter()
                .all(|j| j.status == api_types::JobStatus::Done)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{when}: history rows not all done: {hist:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls `/info` until `n` workers are live.
    pub async fn wait_workers(&self, n: u64, within: Duration) {
        crate::eventually(within, Duration::from_millis(200), || async {
            let info: Info = self.get_ok("/info").await;
            if info.workers_live == n {
                Ok(())
            } else {
                Err(format!("expected {n} live workers: {info:?}"))
            }
        })
        .await;
    }
}

/// `POST /login` with JSON, returning the token (empty when refused).
pub async fn login(http: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let r = http
        .post(format!("{base}/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {base}/login: {e}"));
    if r.status() != 200 {
        return String::new();
    }
    let body: Value = r.json().await.unwrap_or(Value::Null);
    typed::<Token>(&body).access_token
}

/// `body` as a `T` (an `api_types` wire type); panics showing the body when it is not one.
#[track_caller]
pub fn typed<T: DeserializeOwned>(body: &Value) -> T {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("not a {}: {e}\n{body}", std::any::type_name::<T>()))
}

/// One `GET url` without credentials: status and JSON body; None when nothing answers.
pub async fn probe(url: &str) -> Option<(u16, Value)> {
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok()?
        .get(url)
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or(Value::Null)))
}
