//! Integration tests through the router (`tower::ServiceExt::oneshot`): users, login, tokens,
//! authorization, feedback, history, deletion, hostile input and restart persistence.
//!
//! Every test runs twice: against a fresh SQLite file and against a fresh PostgreSQL database
//! (`TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`). An unreachable
//! PostgreSQL fails the test; it is never skipped.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, Row};
use tower::ServiceExt;

use api::db::{Finished, NewPrediction};
use api::state::AppState;

const SECRET: &str = "oneshot-test-secret-0123456789abcdefghij"; // 40 chars
const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "admin-password-123";
const PASSWORD: &str = "password123";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database for one test; a PostgreSQL one is dropped when this goes away.
struct TestDb {
    url: String,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

fn pg_base() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `base` with its database name replaced by `name`.
fn with_db_name(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let cut = head[scheme_end..]
        .find('/')
        .map_or(head.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &head[..cut]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

impl TestDb {
    async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}/app.db", dir.path().display()),
                _dir: dir,
                pg: None,
            },
            Backend::Postgres => {
                let base = pg_base();
                let name = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&base)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {base} is unreachable: {e}"));
                conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
                    .await
                    .unwrap();
                let _ = conn.close().await;
                TestDb {
                    url: with_db_name(&base, &name),
                    _dir: dir,
                    pg: Some((base, name)),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((base, name)) = self.pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                    let _ = conn
                        .execute(
                            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
                        )
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn config(db_url: &str) -> api::config::ApiConfig {
    let models = repo().join("../shared/models");
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
        "redis://127.0.0.1:6379".into(),
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
    <api::config::Cli as clap::Parser>::parse_from(args).config
}

/// A test's database, state and router.
struct Ctx {
    db: TestDb,
    state: AppState,
    app: Router,
}

impl Ctx {
    async fn new(backend: Backend) -> Ctx {
        let db = TestDb::new(backend).await;
        let state = api::build_state(config(&db.url)).await.unwrap();
        let app = api::app(state.clone());
        Ctx { db, state, app }
    }

    /// Simulates an API restart: a new state and router on the same database.
    async fn restart(self) -> Ctx {
        let Ctx { db, state, app } = self;
        drop(app);
        state.db.pool.close().await;
        drop(state);
        let state = api::build_state(config(&db.url)).await.unwrap();
        let app = api::app(state.clone());
        Ctx { db, state, app }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
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

    async fn raw(
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

    async fn json(
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

    async fn get(&self, uri: &str, token: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.json(Method::GET, uri, Some(token), None).await;
        (s, v)
    }

    async fn post(&self, uri: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self.json(Method::POST, uri, token, Some(body)).await;
        (s, v)
    }

    /// Registers a user, returning (id, token).
    async fn user(&self, name: &str, email: &str) -> (i64, String) {
        let (s, v) = self
            .post(
                "/users",
                None,
                json!({"name": name, "email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let token = self.login(email, PASSWORD).await;
        (v["id"].as_i64().unwrap(), token)
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let (s, v) = self
            .post(
                "/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// A history row of `user_id` straight into the database (no worker needed).
    async fn prediction(&self, user_id: i64, created_ms: i64, done: bool) -> String {
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

    async fn count(&self, table: &str, user_id: i64) -> i64 {
        sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_one(&self.state.db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
    }

    async fn tables_exist(&self) {
        for t in ["users", "predictions", "feedback"] {
            let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {t}"))
                .fetch_one(&self.state.db.pool)
                .await
                .unwrap_or_else(|e| panic!("table {t} is gone: {e}"))
                .try_get("n")
                .unwrap();
            assert!(n >= 0);
        }
    }
}

/// Runs an `async fn(Backend)` as a `sqlite` and a `postgres` test in a module of its name.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await;
            }
        }
    )*};
}

both_backends!(
    register_returns_201_without_secrets,
    duplicate_email_is_409_case_insensitive,
    invalid_fields_are_422_naming_the_field,
    login_json_and_oauth2_form,
    bad_credentials_are_401_with_identical_bodies,
    bad_tokens_are_401_with_www_authenticate,
    users_cannot_touch_each_other_admin_can,
    feedback_round_trip_newest_first,
    history_is_per_user_and_foreign_jobs_are_404,
    deleting_a_user_removes_their_data,
    hostile_strings_never_cause_5xx,
    restart_keeps_users_history_and_feedback,
    malformed_ids_and_queries_are_json_4xx,
);

fn error_field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or_default()
}

async fn register_returns_201_without_secrets(b: Backend) {
    let c = Ctx::new(b).await;
    let (s, h, bytes) = c
        .raw(
            Method::POST,
            "/users",
            None,
            Some("application/json"),
            json!({"name": "  Ada Lovelace ", "email": "Ada@Example.com", "password": PASSWORD})
                .to_string(),
        )
        .await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert_eq!(s, StatusCode::CREATED, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let id = v["id"].as_i64().unwrap();
    assert!(id > 0);
    assert_eq!(v["name"], "Ada Lovelace");
    assert_eq!(v["email"], "ada@example.com");
    assert_eq!(v["is_admin"], false);
    assert!(v["created_at"].as_str().unwrap().contains('T'));
    assert!(v.get("password").is_none() && v.get("password_hash").is_none());
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "{text}"
    );
    assert_eq!(
        h.get(header::LOCATION).unwrap().to_str().unwrap(),
        format!("/users/{id}")
    );
    // The stored hash is argon2id, never the password.
    let hash: String = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(&c.state.db.pool)
        .await
        .unwrap()
        .try_get("password_hash")
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    // /users/me answers with the same user.
    let token = c.login("ada@example.com", PASSWORD).await;
    let (s, me) = c.get("/users/me", &token).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["id"], id);
    assert!(me.get("password_hash").is_none());
}

async fn duplicate_email_is_409_case_insensitive(b: Backend) {
    let c = Ctx::new(b).await;
    c.user("Alice", "Alice@Example.com").await;
    for email in [
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
        " alice@Example.com ",
    ] {
        let (s, v) = c
            .post(
                "/users",
                None,
                json!({"name": "Alice Two", "email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{email}: {v}");
        assert_eq!(v["error"]["code"], "conflict");
    }
    // Also the admin created from the config.
    let (s, _) = c
        .post(
            "/users",
            None,
            json!({"name": "Mallory", "email": "ADMIN@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

async fn invalid_fields_are_422_naming_the_field(b: Backend) {
    let c = Ctx::new(b).await;
    let cases = [
        ("A", "a@example.com", PASSWORD, "name"),
        ("   B   ", "a@example.com", PASSWORD, "name"),
        (&"n".repeat(51), "a@example.com", PASSWORD, "name"),
        ("Bob", "not-an-email", PASSWORD, "email"),
        ("Bob", "a@b", PASSWORD, "email"),
        ("Bob", "a b@example.com", PASSWORD, "email"),
        ("Bob", "", PASSWORD, "email"),
        ("Bob", "a@example.com", "short", "password"),
        ("Bob", "a@example.com", "1234567", "password"),
    ];
    for (name, email, pw, field) in cases {
        let (s, v) = c
            .post(
                "/users",
                None,
                json!({"name": name, "email": email, "password": pw}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{name}/{email}: {v}");
        assert_eq!(v["error"]["code"], "validation_failed");
        assert_eq!(error_field(&v), field, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(field));
    }
    // Boundaries are accepted: 2 and 50 characters, 8-character password.
    c.user("Bo", "bo@example.com").await;
    let (s, v) = c
        .post(
            "/users",
            None,
            json!({"name": "n".repeat(50), "email": "fifty@example.com", "password": "12345678"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // A missing field is a JSON 4xx too.
    let (s, v) = c
        .post("/users", None, json!({"name": "Bob", "email": "x@y.zz"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["code"].is_string());
}

async fn login_json_and_oauth2_form(b: Backend) {
    let c = Ctx::new(b).await;
    let (id, _) = c.user("Grace", "grace@example.com").await;
    let mut tokens = Vec::new();
    for body in [
        json!({"email": "grace@example.com", "password": PASSWORD}),
        json!({"username": "Grace@Example.com", "password": PASSWORD}),
    ] {
        let (s, v) = c.post("/login", None, body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["token_type"], "bearer");
        assert_eq!(v["expires_in"], 1800);
        tokens.push(v["access_token"].as_str().unwrap().to_owned());
    }
    let (s, _, bytes) = c
        .raw(
            Method::POST,
            "/login",
            None,
            Some("application/x-www-form-urlencoded"),
            format!("grant_type=password&username=grace%40example.com&password={PASSWORD}&scope="),
        )
        .await;
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "bearer");
    tokens.push(v["access_token"].as_str().unwrap().to_owned());
    for t in &tokens {
        let (s, me) = c.get("/users/me", t).await;
        assert_eq!(s, StatusCode::OK, "{me}");
        assert_eq!(me["id"], id);
    }
    // A form without a password is a 422 naming it.
    let (s, _, bytes) = c
        .raw(
            Method::POST,
            "/login",
            None,
            Some("application/x-www-form-urlencoded"),
            "username=grace%40example.com",
        )
        .await;
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(error_field(&v), "password");
}

async fn bad_credentials_are_401_with_identical_bodies(b: Backend) {
    let c = Ctx::new(b).await;
    c.user("Grace", "grace@example.com").await;
    let login = |email: &'static str, pw: &'static str| {
        let c = &c;
        async move {
            c.raw(
                Method::POST,
                "/login",
                None,
                Some("application/json"),
                json!({"email": email, "password": pw}).to_string(),
            )
            .await
        }
    };
    let (s1, h1, wrong_pw) = login("grace@example.com", "wrong-password").await;
    let (s2, h2, unknown) = login("nobody@example.com", "wrong-password").await;
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    assert_eq!(s2, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong_pw, unknown,
        "bodies must not reveal which emails exist"
    );
    assert_eq!(
        h1.get(header::WWW_AUTHENTICATE),
        h2.get(header::WWW_AUTHENTICATE)
    );
    let v: Value = serde_json::from_slice(&wrong_pw).unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    // The form gives the same answer.
    let (s3, _, form) = c
        .raw(
            Method::POST,
            "/login",
            None,
            Some("application/x-www-form-urlencoded"),
            "username=nobody%40example.com&password=wrong-password",
        )
        .await;
    assert_eq!(s3, StatusCode::UNAUTHORIZED);
    assert_eq!(form, unknown);
}

fn b64url(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn sign(secret: &[u8], sub: &str, exp: u64) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": sub, "iat": now, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn bad_tokens_are_401_with_www_authenticate(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, token_a) = c.user("Alice", "alice@example.com").await;
    let (bid, _) = c.user("Bob", "bob@example.com").await;
    let now = jsonwebtoken::get_current_timestamp();
    let parts: Vec<&str> = token_a.split('.').collect();
    assert_eq!(parts.len(), 3);
    // Sanity: a token we sign with the configured secret is accepted.
    let good = sign(SECRET.as_bytes(), &a.to_string(), now + 600);
    let (s, _) = c.get("/users/me", &good).await;
    assert_eq!(s, StatusCode::OK);

    let payload_b = b64url(
        json!({"sub": bid.to_string(), "iat": now, "exp": now + 600})
            .to_string()
            .as_bytes(),
    );
    let mut flipped_sig = parts[2].to_owned();
    let last = flipped_sig.pop().unwrap();
    flipped_sig.push(if last == 'A' { 'B' } else { 'A' });
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let cases = [
        (
            "expired",
            sign(SECRET.as_bytes(), &a.to_string(), now - 3600),
        ),
        (
            "payload swapped for another user",
            format!("{}.{payload_b}.{}", parts[0], parts[2]),
        ),
        (
            "signature changed",
            format!("{}.{}.{flipped_sig}", parts[0], parts[1]),
        ),
        ("alg none", format!("{none_header}.{}.", parts[1])),
        (
            "alg none for another user",
            format!("{none_header}.{payload_b}."),
        ),
        (
            "other key",
            sign(
                b"another-secret-another-secret-0123456789",
                &a.to_string(),
                now + 600,
            ),
        ),
        ("garbage", "not.a.token".to_owned()),
        ("empty", String::new()),
    ];
    for (what, token) in cases {
        for uri in ["/users/me", "/predictions", "/feedback"] {
            let (s, h, v) = c.json(Method::GET, uri, Some(&token), None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{what} {uri}: {v}");
            assert_eq!(
                h.get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap()),
                Some("Bearer"),
                "{what}"
            );
            assert_eq!(v["error"]["code"], "unauthorized");
        }
    }
    let (s, _, v) = c.json(Method::GET, "/users/me", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    // Expiry is reported as such.
    let (_, _, v) = c
        .json(
            Method::GET,
            "/users/me",
            Some(&sign(SECRET.as_bytes(), &a.to_string(), now - 3600)),
            None,
        )
        .await;
    assert!(v["error"]["message"].as_str().unwrap().contains("expired"));
}

async fn users_cannot_touch_each_other_admin_can(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let (bid, tb) = c.user("Bob", "bob@example.com").await;
    // A cannot read, delete or list.
    let (s, v) = c.get(&format!("/users/{bid}"), &ta).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, _, v) = c
        .json(Method::DELETE, &format!("/users/{bid}"), Some(&ta), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = c.get("/users", &ta).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    // Unknown id looks the same as a foreign one.
    let (s, v2) = c.get("/users/999999", &ta).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v2["error"]["code"], "not_found");
    // B is untouched.
    let (s, me) = c.get("/users/me", &tb).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["id"], bid);
    // Self may read.
    let (s, _) = c.get(&format!("/users/{a}"), &ta).await;
    assert_eq!(s, StatusCode::OK);

    // The admin from the config lists, reads and deletes.
    let admin = c.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (s, me) = c.get("/users/me", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["is_admin"], true);
    let (s, list) = c.get("/users", &admin).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3);
    let emails: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"alice@example.com") && emails.contains(&"bob@example.com"));
    assert!(list["items"][0].get("password_hash").is_none());
    let (s, v) = c.get(&format!("/users/{bid}"), &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["email"], "bob@example.com");
    let (s, _, _) = c
        .json(Method::DELETE, &format!("/users/{bid}"), Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c.get(&format!("/users/{bid}"), &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // B's token no longer works; B cannot log in.
    let (s, _, v) = c.json(Method::GET, "/users/me", Some(&tb), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _) = c
        .post(
            "/login",
            None,
            json!({"email": "bob@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A deletes themself.
    let (s, _, _) = c
        .json(Method::DELETE, &format!("/users/{a}"), Some(&ta), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, list) = c.get("/users", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["total"], 1);
}

async fn feedback_round_trip_newest_first(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let (_, tb) = c.user("Bob", "bob@example.com").await;
    let now = shared::time_util::now_ms();
    let job1 = c.prediction(a, now - 2000, true).await;
    let job2 = c.prediction(a, now - 1000, false).await;

    let (s, f1) = c
        .post(
            "/feedback",
            Some(&ta),
            json!({"job_id": job1, "predicted_class": "academic gown", "score": 0.25,
                   "feedback": "wrong, it is a uniform", "correct_label": "military uniform",
                   "is_correct": false}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f1}");
    assert_eq!(f1["job_id"], job1.as_str());
    assert!(f1["image_file_name"].as_str().unwrap().ends_with(".jpg"));
    assert_eq!(f1["predicted_class"], "academic gown");
    assert!((f1["score"].as_f64().unwrap() - 0.25).abs() < 1e-9);
    assert_eq!(f1["feedback"], "wrong, it is a uniform");
    assert_eq!(f1["correct_label"], "military uniform");
    assert_eq!(f1["is_correct"], false);
    assert!(f1["created_at"].as_str().unwrap().contains('T'));
    // By image name, for the second job.
    let image2 = c
        .state
        .db
        .prediction(&job2)
        .await
        .unwrap()
        .unwrap()
        .image_file_name;
    let (s, f2) = c
        .post(
            "/feedback",
            Some(&ta),
            json!({"image_file_name": image2, "predicted_class": "mortarboard", "score": 1.0,
                   "feedback": "", "is_correct": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f2}");
    assert_eq!(f2["job_id"], job2.as_str());
    assert_eq!(f2["is_correct"], true);
    assert_eq!(f2["correct_label"], Value::Null);
    let (s, f3) = c
        .post(
            "/feedback",
            Some(&ta),
            json!({"job_id": job1, "predicted_class": "academic gown", "score": 0.0,
                   "feedback": "third"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f3}");

    let (s, list) = c.get("/feedback", &ta).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3);
    let ids: Vec<i64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            f3["id"].as_i64().unwrap(),
            f2["id"].as_i64().unwrap(),
            f1["id"].as_i64().unwrap()
        ],
        "newest first"
    );
    assert_eq!(list["items"][2], f1, "stored as returned");
    let (s, page) = c.get("/feedback?page=2&per_page=2", &ta).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], f1["id"]);

    // Bob sees none of it and cannot give feedback on Alice's jobs.
    let (s, list) = c.get("/feedback", &tb).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["total"], 0);
    for body in [
        json!({"job_id": job1, "predicted_class": "x", "score": 0.5, "feedback": "mine?"}),
        json!({"image_file_name": image2, "predicted_class": "x", "score": 0.5}),
    ] {
        let (s, v) = c.post("/feedback", Some(&tb), body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    }
    // Invalid feedback is a 422 naming the field.
    for (body, field) in [
        (
            json!({"job_id": job1, "predicted_class": "x", "score": 1.5}),
            "score",
        ),
        (json!({"predicted_class": "x", "score": 0.5}), "job_id"),
    ] {
        let (s, v) = c.post("/feedback", Some(&ta), body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(error_field(&v), field);
    }
    // Without a token: 401.
    let (s, _) = c
        .post(
            "/feedback",
            None,
            json!({"job_id": job1, "predicted_class": "x", "score": 0.5}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

fn multipart(bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("b{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn history_is_per_user_and_foreign_jobs_are_404(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let (_, tb) = c.user("Bob", "bob@example.com").await;
    // One real upload (no worker: it stays queued) plus two rows written directly.
    let mut photo = std::fs::read(repo().join("../shared/testdata/grace_hopper.jpg")).unwrap();
    photo.extend_from_slice(format!("oneshot-{}", uuid::Uuid::new_v4()).as_bytes());
    let (ctype, body) = multipart(&photo);
    let (s, h, bytes) = c
        .raw(Method::POST, "/predictions", Some(&ta), Some(&ctype), body)
        .await;
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let uploaded = v["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.get(header::LOCATION).unwrap().to_str().unwrap(),
        format!("/predictions/{uploaded}")
    );
    // Keep the shared Redis clean: this job will never be served.
    cleanup_queue(&c.state, &uploaded).await;

    let now = shared::time_util::now_ms();
    let old = c.prediction(a, now - 60_000, true).await;
    let older = c.prediction(a, now - 120_000, false).await;
    let (s, hist) = c.get("/predictions", &ta).await;
    assert_eq!(s, StatusCode::OK, "{hist}");
    assert_eq!(hist["total"], 3);
    let ids: Vec<&str> = hist["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![uploaded.as_str(), old.as_str(), older.as_str()],
        "newest first"
    );
    assert_eq!(hist["items"][0]["status"], "queued");
    assert_eq!(hist["items"][1]["status"], "done");
    assert_eq!(
        hist["items"][1]["result"]["predictions"][0]["label"],
        "academic gown"
    );
    let (s, page) = c.get("/predictions?page=2&per_page=2", &ta).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"][0]["job_id"], older.as_str());

    // The owner reads each job; Bob gets 404 for all of them, like an unknown id.
    for id in [&uploaded, &old, &older] {
        let (s, j) = c.get(&format!("/predictions/{id}"), &ta).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["job_id"], id.as_str());
        let (s, j) = c.get(&format!("/predictions/{id}"), &tb).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{j}");
        let (s, _, _) = c
            .raw(
                Method::GET,
                &format!("/predictions/{id}/thumbnail"),
                Some(&tb),
                None,
                Body::empty(),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (s, h, thumb) = c
        .raw(
            Method::GET,
            &format!("/predictions/{old}/thumbnail"),
            Some(&ta),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "image/jpeg");
    assert_eq!(thumb, vec![0xff, 0xd8, 0xff]);
    let (s, _) = c
        .get(&format!("/predictions/{}", uuid::Uuid::now_v7()), &tb)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, hist) = c.get("/predictions", &tb).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hist["total"], 0);
    // Uploading needs a user.
    let (ctype, body) = multipart(&photo);
    let (s, _, _) = c
        .raw(Method::POST, "/predictions", None, Some(&ctype), body)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// Removes a never-to-be-served job from the shared Redis queue.
async fn cleanup_queue(state: &AppState, job_id: &str) {
    let mut conn = state.redis.get().await.unwrap();
    let queue = shared::keys::queue("efficientnet-lite0");
    let entries: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&queue)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(200)
        .query_async(&mut conn)
        .await
        .unwrap();
    for e in entries.ids {
        let payload: Option<String> = e.get("job");
        if payload.is_some_and(|p| p.contains(job_id)) {
            let _: i64 = redis::cmd("XDEL")
                .arg(&queue)
                .arg(&e.id)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

async fn deleting_a_user_removes_their_data(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let (bid, tb) = c.user("Bob", "bob@example.com").await;
    let now = shared::time_util::now_ms();
    for (user, token) in [(a, &ta), (bid, &tb)] {
        for i in 0..3 {
            let job = c.prediction(user, now - i * 1000, i % 2 == 0).await;
            let (s, v) = c
                .post(
                    "/feedback",
                    Some(token),
                    json!({"job_id": job, "predicted_class": "x", "score": 0.5, "feedback": "f"}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
    }
    assert_eq!(c.count("predictions", a).await, 3);
    assert_eq!(c.count("feedback", a).await, 3);
    let (s, _, v) = c
        .json(Method::DELETE, &format!("/users/{a}"), Some(&ta), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(c.count("predictions", a).await, 0);
    assert_eq!(c.count("feedback", a).await, 0);
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE id = $1")
        .bind(a)
        .fetch_one(&c.state.db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(n, 0);
    // Bob's data is untouched.
    assert_eq!(c.count("predictions", bid).await, 3);
    assert_eq!(c.count("feedback", bid).await, 3);
    let (s, hist) = c.get("/predictions", &tb).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hist["total"], 3);
    // Deleting again: the token is dead (401); the admin gets 404.
    let (s, _, _) = c
        .json(Method::DELETE, &format!("/users/{a}"), Some(&ta), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let admin = c.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (s, _, _) = c
        .json(Method::DELETE, &format!("/users/{a}"), Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The admin deleting Bob removes Bob's data too.
    let (s, _, _) = c
        .json(Method::DELETE, &format!("/users/{bid}"), Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(c.count("predictions", bid).await, 0);
    assert_eq!(c.count("feedback", bid).await, 0);
}

const INJECTIONS: [&str; 4] = [
    "'; DROP TABLE users; --",
    "\" OR 1=1 --",
    "x'); DELETE FROM feedback; --",
    "Robert'); DROP TABLE predictions;--",
];

fn hostile_values() -> Vec<String> {
    let mut v: Vec<String> = INJECTIONS.iter().map(|s| (*s).to_owned()).collect();
    v.push("a".repeat(10 * 1024));
    v.push(format!("{}'; DROP TABLE users; --", "é".repeat(5 * 1024)));
    v.push("nul \u{0} byte'; --".to_owned());
    v
}

#[track_caller]
fn assert_clean(s: StatusCode, what: &str) {
    assert!(
        s.is_success() || s.is_client_error(),
        "{what}: got {s}, expected stored (2xx) or rejected (4xx)"
    );
}

async fn hostile_strings_never_cause_5xx(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let job = c.prediction(a, shared::time_util::now_ms(), true).await;
    let mut stored_names = Vec::new();
    for (i, h) in hostile_values().iter().enumerate() {
        // /users: each text field in turn.
        let email = format!("h{i}@example.com");
        let (s, v) = c
            .post(
                "/users",
                None,
                json!({"name": h, "email": email, "password": PASSWORD}),
            )
            .await;
        assert_clean(s, &format!("name {i}: {v}"));
        if s == StatusCode::CREATED {
            assert_eq!(v["name"], h.trim());
            stored_names.push((email.clone(), h.trim().to_owned()));
        } else if s == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(error_field(&v), "name");
        }
        let (s, v) = c
            .post(
                "/users",
                None,
                json!({"name": "Hostile", "email": h, "password": PASSWORD}),
            )
            .await;
        assert_clean(s, &format!("email {i}: {v}"));
        let (s, v) = c
            .post(
                "/users",
                None,
                json!({"name": "Hostile", "email": format!("{h}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_clean(s, &format!("email local part {i}: {v}"));
        let pw_email = format!("pw{i}@example.com");
        let (s, v) = c
            .post(
                "/users",
                None,
                json!({"name": "Hostile", "email": pw_email, "password": h}),
            )
            .await;
        assert_clean(s, &format!("password {i}: {v}"));
        if s == StatusCode::CREATED {
            // A stored hostile password logs in exactly.
            let t = c.login(&pw_email, h).await;
            assert!(!t.is_empty());
        }

        // /login, JSON and form.
        for body in [
            json!({"email": h, "password": PASSWORD}),
            json!({"email": "alice@example.com", "password": h}),
            json!({"username": h, "password": h}),
        ] {
            let (s, v) = c.post("/login", None, body).await;
            assert_clean(s, &format!("login {i}: {v}"));
            assert_ne!(s, StatusCode::OK);
        }
        let enc: String = h
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect::<Vec<_>>()
            .concat();
        for form in [
            format!("username={enc}&password=whatever1"),
            format!("username=alice%40example.com&password={enc}"),
        ] {
            let (s, _, body) = c
                .raw(
                    Method::POST,
                    "/login",
                    None,
                    Some("application/x-www-form-urlencoded"),
                    form,
                )
                .await;
            assert_clean(s, &format!("login form {i}"));
            assert_ne!(s, StatusCode::OK);
            serde_json::from_slice::<Value>(&body).unwrap();
        }

        // /feedback: each text field in turn.
        let base = json!({"job_id": job, "predicted_class": "x", "score": 0.5, "feedback": "ok", "correct_label": "y"});
        for field in ["predicted_class", "feedback", "correct_label"] {
            let mut body = base.clone();
            body[field] = json!(h);
            let (s, v) = c.post("/feedback", Some(&ta), body).await;
            assert_clean(s, &format!("feedback.{field} {i}: {v}"));
            if s == StatusCode::CREATED {
                assert_eq!(v[field], h.as_str());
            } else if s == StatusCode::UNPROCESSABLE_ENTITY {
                assert_eq!(error_field(&v), field, "{v}");
            }
        }
        for field in ["job_id", "image_file_name"] {
            let mut body = base.clone();
            if field == "image_file_name" {
                body.as_object_mut().unwrap().remove("job_id");
            }
            body[field] = json!(h);
            let (s, v) = c.post("/feedback", Some(&ta), body).await;
            assert_clean(s, &format!("feedback.{field} {i}: {v}"));
            assert!(s.is_client_error(), "no such job: {v}");
        }
        // In the path and the query too.
        let uri = format!("/predictions/{enc}");
        let (s, _) = c.get(&uri, &ta).await;
        assert_clean(s, &format!("job path {i}"));
    }
    c.tables_exist().await;
    // Stored hostile names come back byte for byte.
    let admin = c.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (s, list) = c.get("/users?per_page=100", &admin).await;
    assert_eq!(s, StatusCode::OK);
    for (email, name) in stored_names {
        let u = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email.as_str())
            .unwrap();
        assert_eq!(u["name"], name.as_str());
    }
    let (s, fb) = c.get("/feedback?per_page=100", &ta).await;
    assert_eq!(s, StatusCode::OK);
    assert!(fb["total"].as_i64().unwrap() > 0);
    let (s, me) = c.get("/users/me", &ta).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["id"], a);
}

async fn restart_keeps_users_history_and_feedback(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let now = shared::time_util::now_ms();
    let j1 = c.prediction(a, now - 3000, true).await;
    let j2 = c.prediction(a, now - 2000, true).await;
    let j3 = c.prediction(a, now - 1000, false).await;
    let (s, fb) = c
        .post(
            "/feedback",
            Some(&ta),
            json!({"job_id": j2, "predicted_class": "academic gown", "score": 0.25,
                   "feedback": "persist me", "correct_label": "suit"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{fb}");
    let (_, hist_before) = c.get("/predictions", &ta).await;

    let c = c.restart().await;
    // The old token still works (same secret), and so does logging in again.
    let (s, me) = c.get("/users/me", &ta).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["id"], a);
    let t2 = c.login("alice@example.com", PASSWORD).await;
    let (s, hist) = c.get("/predictions", &t2).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hist, hist_before);
    let ids: Vec<&str> = hist["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![j3.as_str(), j2.as_str(), j1.as_str()]);
    assert_eq!(
        hist["items"][1]["result"]["predictions"][0]["label"],
        "academic gown"
    );
    let (s, list) = c.get("/feedback", &t2).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0], fb);
    let (s, job) = c.get(&format!("/predictions/{j1}"), &t2).await;
    assert_eq!(s, StatusCode::OK, "{job}");
    assert_eq!(job["status"], "done");
    // The admin is not duplicated by the second start-up.
    let admin = c.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (s, users) = c.get("/users", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(users["total"], 2);
    // New writes after the restart work (sequences intact).
    let (s, u) = c
        .post(
            "/users",
            None,
            json!({"name": "Bob", "email": "bob@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert!(u["id"].as_i64().unwrap() > a);
    let (s, fb2) = c
        .post(
            "/feedback",
            Some(&t2),
            json!({"job_id": j3, "predicted_class": "x", "score": 0.1}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{fb2}");
    assert!(fb2["id"].as_i64().unwrap() > fb["id"].as_i64().unwrap());
}

async fn malformed_ids_and_queries_are_json_4xx(b: Backend) {
    let c = Ctx::new(b).await;
    let (_, ta) = c.user("Alice", "alice@example.com").await;
    for uri in [
        "/users/abc",
        "/users/99999999999999999999999",
        "/users/1%27%3B%20DROP%20TABLE%20users%3B%20--",
        "/users?page=abc",
        "/predictions?page=-1",
        "/feedback?per_page=lots",
        "/predictions/x?wait=soon",
    ] {
        let (s, _, body) = c
            .raw(Method::GET, uri, Some(&ta), None, Body::empty())
            .await;
        assert!(s.is_client_error(), "{uri}: {s}");
        let v: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!("{uri}: {s} is not JSON: {}", String::from_utf8_lossy(&body))
        });
        assert!(v["error"]["code"].is_string(), "{uri}: {v}");
    }
    c.tables_exist().await;
}
