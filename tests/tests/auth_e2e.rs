//! End-to-end over HTTP with the real api and worker binaries: register, log in, classify with
//! the token, history newest first, feedback, isolation between users, and an API restart
//! (kill -9, new process on the same database) that keeps users, history and feedback.
//! Once on SQLite and once on a fresh PostgreSQL database (`TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; unreachable PostgreSQL fails the test).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::*;
use serde_json::{json, Value};

/// A fresh PostgreSQL database, dropped at the end (also when the test fails).
struct PgDb {
    base: String,
    name: String,
    url: String,
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl PgDb {
    fn create() -> PgDb {
        let base = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        psql(&base, &format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} is unreachable: {e}"));
        let (head, query) = base.split_once('?').unwrap_or((&base, ""));
        let scheme_end = head.find("://").map_or(0, |i| i + 3);
        let cut = head[scheme_end..]
            .find('/')
            .map_or(head.len(), |i| scheme_end + i);
        let mut url = format!("{}/{name}", &head[..cut]);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        PgDb { base, name, url }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = psql(
            &self.base,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

fn photo(tag: &str) -> Vec<u8> {
    let mut b = grace_hopper();
    b.extend_from_slice(format!("\nauth-e2e-{tag}-{}", uuid::Uuid::new_v4()).as_bytes());
    b
}

async fn post_json(c: &Client, path: &str, body: Value) -> (u16, Value) {
    let r = c
        .http
        .post(format!("{}{path}", c.base))
        .bearer_auth(&c.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn job_ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn register_classify_history_restart(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let mut env = base_env(&redis.url());
    if let Some(url) = database_url {
        env.push(("DATABASE_URL".into(), url));
    }
    let api = Api::start(dir.path(), &env);
    let _worker = start_worker(dir.path(), "worker", &env);
    wait_ready(&api, Duration::from_secs(90));

    // Register, then log in with the OAuth2 form as well as JSON.
    let c = Client::register(&api.url).await;
    assert!(!c.token.is_empty());
    let r = c
        .http
        .post(format!("{}/login", api.url))
        .form(&[("username", c.email.as_str()), ("password", "password123")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let form_login: Value = r.json().await.unwrap();
    assert_eq!(form_login["token_type"], "bearer");
    // Without a token nothing is classified.
    // (Its own connection pool: the API answers 401 before reading the upload and closes
    // that connection.)
    let anon = Client {
        token: String::new(),
        http: reqwest::Client::new(),
        ..c.clone()
    };
    let (status, _, _) = anon.upload("/predictions", photo("anon"), None).await;
    assert_eq!(status, 401);

    // Three different images, each classified with the token.
    let mut jobs = Vec::new();
    for i in 0..3 {
        let (status, body, _) = c.upload("/predictions", photo(&i.to_string()), None).await;
        assert_eq!(status, 202, "{body}\n{}", api.proc.log_text());
        let id = body["job_id"].as_str().unwrap().to_owned();
        let job = c.wait_done(&id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "done", "{job}");
        assert_eq!(
            job["result"]["predictions"][0]["label"], "academic gown",
            "{job}"
        );
        jobs.push(id);
    }

    // History: all three, newest first, recorded as done (the recorder is asynchronous).
    let newest_first: Vec<String> = jobs.iter().rev().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let hist = loop {
        let (status, hist) = c.get("/predictions").await;
        assert_eq!(status, 200, "{hist}");
        let all_done = hist["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "done");
        if all_done || Instant::now() > deadline {
            break hist;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(hist["total"], 3, "{hist}");
    assert_eq!(job_ids(&hist), newest_first);
    for j in hist["items"].as_array().unwrap() {
        assert_eq!(j["status"], "done", "history records the result: {j}");
        assert_eq!(j["result"]["predictions"][0]["label"], "academic gown");
    }

    // Feedback on the second job.
    let (status, fb) = post_json(
        &c,
        "/feedback",
        json!({"job_id": jobs[1], "predicted_class": "academic gown", "score": 0.25,
               "feedback": "close, but it is a uniform", "correct_label": "military uniform",
               "is_correct": false}),
    )
    .await;
    assert_eq!(status, 201, "{fb}\n{}", api.proc.log_text());
    assert_eq!(fb["job_id"], jobs[1].as_str());

    // A second user sees none of it.
    let other = Client::register(&api.url).await;
    for id in &jobs {
        let (status, body) = other.get(&format!("/predictions/{id}")).await;
        assert_eq!(status, 404, "{body}");
    }
    let (status, body) = post_json(
        &other,
        "/feedback",
        json!({"job_id": jobs[0], "predicted_class": "x", "score": 0.5, "feedback": "mine?"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (_, h) = other.get("/predictions").await;
    assert_eq!(h["total"], 0);
    let (status, _) = other.get(&format!("/users/{}", c.user_id)).await;
    assert_eq!(status, 404);
    let (status, _) = other.get("/users").await;
    assert_eq!(status, 403);

    // Crash the API and start a new process on the same database.
    let mut api = api;
    api.proc.kill9();
    let api2 = Api::start(dir.path(), &env);
    let c2 = Client {
        base: api2.url.clone(),
        ..c.clone()
    };
    // The old token is still valid (same secret), and logging in works too.
    let (status, me) = c2.get("/users/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], c.user_id);
    let token = login(&c2.http, &api2.url, &c.email, "password123").await;
    assert!(!token.is_empty(), "the user survives the restart");
    let c2 = Client { token, ..c2 };
    let (status, hist2) = c2.get("/predictions").await;
    assert_eq!(status, 200);
    assert_eq!(hist2["total"], 3, "{hist2}");
    assert_eq!(job_ids(&hist2), newest_first);
    assert_eq!(
        hist2["items"], hist["items"],
        "history unchanged by the restart"
    );
    let (status, fbs) = c2.get("/feedback").await;
    assert_eq!(status, 200);
    assert_eq!(fbs["total"], 1, "{fbs}");
    assert_eq!(fbs["items"][0], fb);
    for id in &jobs {
        let (status, job) = c2.get(&format!("/predictions/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(job["status"], "done");
    }
    let other2 = Client {
        base: api2.url.clone(),
        ..other
    };
    for id in &jobs {
        let (status, body) = other2.get(&format!("/predictions/{id}")).await;
        assert_eq!(status, 404, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_register_classify_history_restart() {
    register_classify_history_restart(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_register_classify_history_restart() {
    let db = PgDb::create();
    register_classify_history_restart(Some(db.url.clone())).await;
    drop(db);
}
