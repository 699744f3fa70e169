//! What every API test uses: a [`Ctx`] holding a fresh database (SQLite or PostgreSQL, from
//! `test_support`), a private Redis, the app state and its router driven with `oneshot`;
//! request helpers; and `both_backends!`, which runs each scenario on both databases.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::Row;
use tower::ServiceExt;

use api::db::{Finished, NewPrediction};
use api::state::AppState;
pub use api_types::ErrorCode;
pub use test_support::Backend;
use test_support::{repo, shared_dir, Redis, TestDb};

pub const SECRET: &str = "oneshot-test-secret-0123456789abcdefghij"; // 40 chars
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-123";
pub const PASSWORD: &str = "password123";

/// The api's configuration for a test: dev mode, the test secret, the shared models, an admin.
fn config(db_url: &str, redis_url: &str, extra: &[&str]) -> api::config::ApiConfig {
    let models = shared_dir().join("models");
    let registry = repo().join("models/registry.toml");
    let args = [
        "api".to_owned(),
        "--app-env".into(),
        "dev".into(),
        "--jwt-secret".into(),
        SECRET.into(),
        "--database-url".into(),
        db_url.into(),
        "--redis-url".into(),
        redis_url.into(),
        "--models-dir".into(),
        models.display().to_string(),
        "--model-registry".into(),
        registry.display().to_string(),
        "--default-model".into(),
        "efficientnet-lite0".into(),
        "--admin-email".into(),
        ADMIN_EMAIL.into(),
        "--admin-password".into(),
        ADMIN_PASSWORD.into(),
    ];
    let args = args
        .into_iter()
        .chain(extra.iter().map(|a| (*a).to_owned()));
    <api::config::Cli as clap::Parser>::parse_from(args).config
}

/// A test's database, Redis, state and router (dropped in this order: the app first).
pub struct Ctx {
    pub state: AppState,
    pub app: Router,
    pub redis: Redis,
    pub db: TestDb,
    _dir: tempfile::TempDir,
}

impl Ctx {
    /// A connection to the private Redis.
    pub async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// A fresh database of `backend`, a private Redis, and the app on them.
    pub async fn new(backend: Backend) -> Ctx {
        Ctx::with(backend, &[]).await
    }

    /// [`Ctx::new`] with extra command-line settings for the API (e.g. low limits).
    pub async fn with(backend: Backend, extra: &[&str]) -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start(dir.path());
        Ctx::on_with(TestDb::new(backend), redis, dir, extra).await
    }

    /// The state and router built on an existing database and Redis.
    async fn on(db: TestDb, redis: Redis, dir: tempfile::TempDir) -> Ctx {
        Ctx::on_with(db, redis, dir, &[]).await
    }

    async fn on_with(db: TestDb, redis: Redis, dir: tempfile::TempDir, extra: &[&str]) -> Ctx {
        let state = api::build_state(config(&db.url, &redis.url(), extra))
            .await
            .unwrap();
        let app = api::app(state.clone());
        Ctx {
            state,
            app,
            redis,
            db,
            _dir: dir,
        }
    }

    /// Simulates an API restart: a new state and router on the same database and Redis.
    pub async fn restart(self) -> Ctx {
        let Ctx {
            state,
            app,
            redis,
            db,
            _dir,
        } = self;
        drop(app);
        state.db.pool.close().await;
        drop(state);
        Ctx::on(db, redis, _dir).await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    /// `POST path` of a multipart form with `bytes` as `file` (and `model`), as the owner of
    /// `token`, from `addr` (as the connection's peer) when given.
    pub async fn upload_from(
        &self,
        path: &str,
        token: &str,
        bytes: &[u8],
        model: Option<&str>,
        addr: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let boundary = format!("b{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::new();
        if let Some(m) = model {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{m}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap();
        if let Some(a) = addr {
            let peer: std::net::SocketAddr = format!("{a}:40000").parse().unwrap();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        let (s, h, b) = self.send(req).await;
        let v = serde_json::from_slice(&b).unwrap_or(Value::Null);
        (s, h, v)
    }

    /// `POST /predictions` with `bytes` as the owner of `token`.
    pub async fn upload(&self, token: &str, bytes: &[u8]) -> (StatusCode, HeaderMap, Value) {
        self.upload_from("/predictions", token, bytes, None, None)
            .await
    }

    /// A JSON request from `addr` (the connection's peer): status, headers, body.
    pub async fn json_from(
        &self,
        addr: &str,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let mut req = b.body(Body::from(body.to_string())).unwrap();
        let peer: std::net::SocketAddr = format!("{addr}:40000").parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let (s, h, bytes) = self.send(req).await;
        (s, h, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        ctype: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(c) = ctype {
            b = b.header(header::CONTENT_TYPE, c);
        }
        self.send(b.body(body.into()).unwrap()).await
    }

    pub async fn json(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let (status, headers, bytes) = match body {
            Some(v) => {
                self.raw(method, uri, token, Some("application/json"), v.to_string())
                    .await
            }
            None => self.raw(method, uri, token, None, Body::empty()).await,
        };
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        (status, headers, v)
    }

    pub async fn get(&self, uri: &str, token: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.json(Method::GET, uri, Some(token), None).await;
        (s, v)
    }

    pub async fn post(&self, uri: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self.json(Method::POST, uri, token, Some(body)).await;
        (s, v)
    }

    /// `GET uri` with `token`: status, headers and the raw body (thumbnails are not JSON).
    pub async fn get_bytes(&self, uri: &str, token: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        self.raw(Method::GET, uri, Some(token), None, Body::empty())
            .await
    }

    /// `DELETE uri` with `token`: status and JSON body (`Null` when empty).
    pub async fn delete(&self, uri: &str, token: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.json(Method::DELETE, uri, Some(token), None).await;
        (s, v)
    }

    /// `POST /users` with these fields, without checking the answer.
    pub async fn register(&self, name: &str, email: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/users",
            None,
            json!({"name": name, "email": email, "password": password}),
        )
        .await
    }

    /// `POST /login` with an OAuth2 form body: status, headers and the raw body.
    pub async fn login_form(&self, form: impl Into<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        self.raw(
            Method::POST,
            "/login",
            None,
            Some("application/x-www-form-urlencoded"),
            form,
        )
        .await
    }

    /// `POST /feedback` with `body` as the owner of `token`; asserts `201` and returns the stored row.
    pub async fn feedback(&self, token: &str, body: Value) -> Value {
        let (s, v) = self.post("/feedback", Some(token), body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    /// Registers a user, returning (id, token).
    pub async fn user(&self, name: &str, email: &str) -> (i64, String) {
        let (s, v) = self.register(name, email, PASSWORD).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let user: api_types::User = test_support::typed(&v);
        let token = self.login(email, PASSWORD).await;
        (user.id, token)
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let (s, v) = self
            .post(
                "/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        test_support::typed::<api_types::Token>(&v).access_token
    }

    /// A history row of `user_id` straight into the database (no worker needed).
    pub async fn prediction(&self, user_id: i64, created_ms: i64, done: bool) -> String {
        let job_id = uuid::Uuid::now_v7().to_string();
        let sha = format!("{:064x}", created_ms);
        let image = format!("{sha}.jpg");
        self.state
            .db
            .insert_prediction(&NewPrediction {
                job_id: &job_id,
                user_id,
                image_file_name: &image,
                sha256: &sha,
                model: "efficientnet-lite0",
                top_k: 5,
                created_ms,
                original_name: Some("peony in the garden.jpg"),
            })
            .await
            .unwrap();
        if done {
            let result: shared::JobResult = serde_json::from_value(json!({
                "predictions": [{"label": "academic gown", "class_id": 400, "score": 0.25}],
                "model": "efficientnet-lite0",
                "elapsed_ms": 12.5
            }))
            .unwrap();
            let ok = self
                .state
                .db
                .finish_prediction(&Finished {
                    job_id: &job_id,
                    status: shared::JobStatus::Done,
                    result: Some(&result),
                    error: None,
                    thumbnail: Some(&[0xff, 0xd8, 0xff]),
                    finished_ms: created_ms + 10,
                    cached: false,
                })
                .await
                .unwrap();
            assert!(ok);
        }
        job_id
    }

    /// History rows of `user_id`, one per `(age_ms, done)`, created `age_ms` before now; their ids.
    pub async fn history<const N: usize>(
        &self,
        user_id: i64,
        rows: [(i64, bool); N],
    ) -> [String; N] {
        let now = shared::time_util::now_ms();
        let mut ids = Vec::new();
        for (age_ms, done) in rows {
            ids.push(self.prediction(user_id, now - age_ms, done).await);
        }
        ids.try_into().unwrap()
    }

    /// The one value `column` of `sql`, bound to `id`.
    pub async fn scalar<T>(&self, sql: &str, id: i64, column: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        sqlx::query(sql)
            .bind(id)
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap()
            .try_get(column)
            .unwrap()
    }

    /// Rows of `table` belonging to `user_id`.
    pub async fn count(&self, table: &str, user_id: i64) -> i64 {
        self.scalar(
            &format!("SELECT COUNT(*) AS n FROM {table} WHERE user_id = $1"),
            user_id,
            "n",
        )
        .await
    }

    pub async fn tables_exist(&self) {
        for t in ["users", "predictions", "feedback"] {
            // The check is that the query runs: it fails once the table is gone.
            sqlx::query(&format!("SELECT COUNT(*) AS n FROM {t}"))
                .fetch_one(&self.state.db.pool)
                .await
                .unwrap_or_else(|e| panic!("table {t} is gone: {e}"));
        }
    }
}

/// Runs an `async fn(Backend)` as a `sqlite` and a `postgres` test in a module of its name.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await;
            }
        }
    )*};
}
pub(crate) use both_backends;

/// A `POST /feedback` body on `job_id` about the class every [`Ctx::prediction`] row predicts
/// (`academic gown`, score 0.25), with the fields of `verdict` (`feedback`, `correct_label`,
/// `is_correct`) added.
pub fn gown_feedback(job_id: &str, verdict: Value) -> Value {
    let mut body = json!({"job_id": job_id, "predicted_class": "academic gown", "score": 0.25});
    let Value::Object(fields) = verdict else {
        panic!("a verdict is a JSON object: {verdict}");
    };
    body.as_object_mut().unwrap().extend(fields);
    body
}

/// `error.code` of an error body, read as the API's own type (panics on any other body).
pub fn error_code(v: &Value) -> ErrorCode {
    test_support::typed::<api_types::ErrorBody>(v).error.code
}

/// `error.field` of an error body (empty when absent).
pub fn error_field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or_default()
}

/// `key` of every item of a list body (`{"items": [...]}`), in order.
pub fn item_strs<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[key].as_str().unwrap())
        .collect()
}

/// The checks a `/ready` body names as missing.
pub fn missing(ready: &Value) -> Vec<String> {
    test_support::typed::<api_types::Readiness>(ready).missing
}
