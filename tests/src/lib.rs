//! Helpers for the end-to-end tests: a private `redis-server` on a free port, the real `api`
//! and `worker` binaries started as processes on free ports, and an HTTP client that
//! registers a user and uploads files.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared` beside the checkout (models and test images).
pub fn shared_dir() -> PathBuf {
    repo().join("../shared")
}

/// The test photo.
pub fn grace_hopper() -> Vec<u8> {
    std::fs::read(shared_dir().join("testdata/grace_hopper.jpg")).unwrap()
}

/// The bytes with a trailer after the image data: decoders ignore it, but the SHA-256 (and so
/// the result cache) sees a new upload.
pub fn with_trailer(bytes: &[u8], tag: &str) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b.extend_from_slice(tag.as_bytes());
    b
}

/// The top-1 label of a job view (empty when it has no result).
pub fn top1(job: &serde_json::Value) -> String {
    job["result"]["predictions"][0]["label"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A built binary of the workspace (built by `make test` before the tests run).
#[track_caller]
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var("BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target/debug"));
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    /// Sends SIGTERM and waits up to `within` for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL, like a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &str, bin: &Path, args: &[&str], env: &[(String, String)], dir: &Path) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .current_dir(repo());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc {
        child: cmd.spawn().unwrap(),
        name: name.into(),
        log,
    }
}

/// A private Redis for one test.
pub struct Redis {
    pub proc: Proc,
    pub port: u16,
}

impl Redis {
    #[track_caller]
    pub fn start(dir: &Path) -> Redis {
        Self::start_on(dir, free_port())
    }

    /// Starts (or restarts) Redis on a given port.
    #[track_caller]
    pub fn start_on(dir: &Path, port: u16) -> Redis {
        let p = port.to_string();
        let proc = spawn(
            &format!("redis-{port}"),
            Path::new("redis-server"),
            &[
                "--port",
                &p,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            &[],
            dir,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { proc, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Environment shared by api and worker in tests.
pub fn base_env(redis_url: &str) -> Vec<(String, String)> {
    let ort = std::env::var("ORT_DYLIB_PATH")
        .unwrap_or_else(|_| repo().join(".ort/libonnxruntime.so").display().to_string());
    vec![
        ("REDIS_URL".into(), redis_url.into()),
        (
            "MODELS_DIR".into(),
            shared_dir().join("models").display().to_string(),
        ),
        ("DEFAULT_MODEL".into(), "efficientnet-lite0".into()),
        ("ORT_DYLIB_PATH".into(), ort),
        ("APP_ENV".into(), "dev".into()),
        (
            "JWT_SECRET".into(),
            "test-secret-test-secret-test-secret-0123".into(),
        ),
        ("HEARTBEAT_INTERVAL".into(), "1".into()),
        ("INTRA_THREADS".into(), "1".into()),
    ]
}

/// A running API process.
pub struct Api {
    pub proc: Proc,
    pub url: String,
}

impl Api {
    #[track_caller]
    pub fn start(dir: &Path, env: &[(String, String)]) -> Api {
        let port = free_port();
        let mut env = env.to_vec();
        env.push(("API_BIND".into(), format!("127.0.0.1:{port}")));
        if !env.iter().any(|(k, _)| k == "DATABASE_URL") {
            env.push((
                "DATABASE_URL".into(),
                format!("sqlite://{}/app.db", dir.display()),
            ));
        }
        let proc = spawn(&format!("api-{port}"), &binary("api"), &[], &env, dir);
        let url = format!("http://127.0.0.1:{port}");
        wait_until(Duration::from_secs(30), || {
            reqwest::blocking_get_ok(&format!("{url}/health"))
        })
        .unwrap_or_else(|_| panic!("api did not start:\n{}", proc.log_text()));
        Api { proc, url }
    }
}

/// Starts a worker process.
#[track_caller]
pub fn start_worker(dir: &Path, name: &str, env: &[(String, String)]) -> Proc {
    spawn(name, &binary("worker"), &[], env, dir)
}

/// Polls `f` (a test-side readiness probe, not product code) until it is true.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Result<(), TimedOut> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(TimedOut)
}

/// `wait_until` gave up.
#[derive(Debug)]
pub struct TimedOut;

/// Minimal blocking probe used while processes start.
mod reqwest {
    pub fn blocking_get_ok(url: &str) -> bool {
        let Some(rest) = url.strip_prefix("http://") else {
            return false;
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(host) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let req = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.1 200")
    }
}

/// An HTTP client logged in as a fresh user.
#[derive(Clone)]
pub struct Client {
    pub http: ::reqwest::Client,
    pub base: String,
    pub token: String,
    pub user_id: i64,
    pub email: String,
}

impl Client {
    /// Registers and logs in a new user.
    pub async fn register(base: &str) -> Client {
        let http = ::reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let email = format!("u{}@example.com", uuid::Uuid::new_v4().simple());
        let r = http
            .post(format!("{base}/users"))
            .json(&json!({"name": "Test User", "email": email, "password": "password123"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let user: Value = r.json().await.unwrap();
        let token = login(&http, base, &email, "password123").await;
        Client {
            http,
            base: base.into(),
            token,
            user_id: user["id"].as_i64().unwrap(),
            email,
        }
    }

    pub async fn upload(
        &self,
        path: &str,
        bytes: Vec<u8>,
        model: Option<&str>,
    ) -> (u16, Value, Option<String>) {
        let mut form = ::reqwest::multipart::Form::new().part(
            "file",
            ::reqwest::multipart::Part::bytes(bytes).file_name("photo.jpg"),
        );
        if let Some(m) = model {
            form = form.text("model", m.to_owned());
        }
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = r.json().await.unwrap_or(Value::Null);
        (status, body, location)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits for a job to finish through `?wait`, repeating the long poll if needed.
    pub async fn wait_done(&self, job_id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (status, job) = self.get(&format!("/predictions/{job_id}?wait=10")).await;
            assert_eq!(status, 200, "{job}");
            if matches!(job["status"].as_str(), Some("done" | "failed"))
                || Instant::now() > deadline
            {
                return job;
            }
        }
    }
}

/// `POST /login` with JSON, returning the token.
pub async fn login(http: &::reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let r: Value = http
        .post(format!("{base}/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap_or_default().to_owned()
}

/// Waits until `/ready` says a worker serves the default model.
#[track_caller]
pub fn wait_ready(api: &Api, within: Duration) {
    wait_until(within, || {
        reqwest::blocking_get_ok(&format!("{}/ready", api.url))
    })
    .unwrap_or_else(|_| panic!("api never became ready:\n{}", api.proc.log_text()));
}
