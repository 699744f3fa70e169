//! The real binaries as processes: `api` and `ui` bind port 0 and write the port they got to a
//! `PORT_FILE`, which is how the caller learns it (no guessing a free port and racing for it);
//! then `/health` (and `/ready` once workers are asked for) is awaited. [`Launcher`] starts
//! one process at a time for tests that script crashes and restarts; [`Stack`] starts a whole
//! private stack: Redis, a database, the api, N workers and optionally the ui.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client::probe;
use crate::db::{Backend, TestDb};
use crate::process::{Proc, Spawn};
use crate::redis_server::{free_port, Redis};

/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What tests give api and worker besides Redis and the database: the shared models, a dev
/// JWT secret, a 1 s heartbeat and one inference thread (two cores run many tests at once).
pub fn test_defaults() -> Vec<(String, String)> {
    let ort = std::env::var("ORT_DYLIB_PATH").unwrap_or_else(|_| {
        crate::repo()
            .join(".ort/libonnxruntime.so")
            .display()
            .to_string()
    });
    [
        (
            "MODELS_DIR",
            crate::shared_dir().join("models").display().to_string(),
        ),
        ("DEFAULT_MODEL", "efficientnet-lite0".into()),
        ("ORT_DYLIB_PATH", ort),
        ("APP_ENV", "dev".into()),
        (
            "JWT_SECRET",
            "test-secret-test-secret-test-secret-0123".into(),
        ),
        ("HEARTBEAT_INTERVAL", "1".into()),
        ("INTRA_THREADS", "1".into()),
        // Tests sign up and log in many users from 127.0.0.1; the throttling tests set their
        // own low limits.
        ("LOGIN_RATE_PER_ADDRESS", "10000/1m".into()),
        ("SIGNUP_RATE_PER_ADDRESS", "10000/1m".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `env` with each of `extra` set (replacing an earlier value of the same name).
pub fn with(env: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push(((*k).into(), (*v).into()));
    }
    env
}

fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A running api process.
pub struct Api {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The port it bound.
    pub port: u16,
}

/// A running ui process.
pub struct Ui {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The port it bound.
    pub port: u16,
}

impl Api {
    /// Waits until `/ready` answers 200 (Redis, database and a worker heartbeat).
    pub async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        wait_http(&self.proc, &format!("{}/ready", self.url), within).await
    }
}

/// Waits until the api's `/ready` answers 200; panics with its log otherwise.
pub async fn wait_ready(api: &Api, within: Duration) {
    if let Err(e) = api.wait_ready(within).await {
        panic!("api never became ready: {e:#}\n{}", api.proc.log_text());
    }
}

/// Starts the binaries one at a time: where logs go, where binaries are, which environment.
#[derive(Clone, Debug)]
pub struct Launcher {
    /// Folder for logs and port files.
    pub dir: PathBuf,
    /// Folder holding `api`, `worker`, `ui`.
    pub bin_dir: PathBuf,
    /// Pass the parent's environment through (`xtask stack`), not a clean one (tests).
    pub inherit_env: bool,
}

impl Launcher {
    /// Logs in `dir`, binaries from `BIN_DIR` or `target/debug`, a clean environment.
    pub fn new(dir: &Path) -> Launcher {
        Launcher {
            dir: dir.to_owned(),
            bin_dir: crate::paths::bin_dir(),
            inherit_env: false,
        }
    }

    fn spawn(&self, name: &str, bin: &str, env: &[(String, String)]) -> anyhow::Result<Proc> {
        let program = self.bin_dir.join(bin);
        anyhow::ensure!(
            program.is_file(),
            "{} is missing: run `cargo build --workspace` first",
            program.display()
        );
        Spawn {
            name,
            program: &program,
            args: &[],
            env,
            dir: &self.dir,
            inherit_env: self.inherit_env,
        }
        .start()
        .with_context(|| format!("cannot start {}", program.display()))
    }

    /// Starts a worker named `name`.
    pub fn worker(&self, name: &str, env: &[(String, String)]) -> anyhow::Result<Proc> {
        self.spawn(name, "worker", env)
    }

    /// Starts the api on `API_BIND` (default `127.0.0.1:0`), learns its port from its port
    /// file and waits for `/health`.
    pub async fn api(&self, name: &str, env: &[(String, String)]) -> anyhow::Result<Api> {
        let (proc, url, port) = self.http_server(name, "api", "API_BIND", env).await?;
        Ok(Api { proc, url, port })
    }

    /// Starts the ui on `UI_BIND` (default `127.0.0.1:0`) talking to `api_url`.
    pub async fn ui(
        &self,
        name: &str,
        api_url: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Ui> {
        let env = with(env, &[("API_URL", api_url)]);
        let (proc, url, port) = self.http_server(name, "ui", "UI_BIND", &env).await?;
        Ok(Ui { proc, url, port })
    }

    async fn http_server(
        &self,
        name: &str,
        bin: &str,
        bind_var: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<(Proc, String, u16)> {
        let port_file = self.dir.join(format!("{name}.port"));
        let _ = std::fs::remove_file(&port_file);
        let bind = get(env, bind_var).unwrap_or("127.0.0.1:0").to_owned();
        let env = with(
            env,
            &[
                (bind_var, bind.as_str()),
                ("PORT_FILE", &port_file.display().to_string()),
            ],
        );
        let mut proc = self.spawn(name, bin, &env)?;
        let port = wait_port_file(&mut proc, &port_file, Duration::from_secs(90)).await?;
        let host = match bind.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h) {
            "0.0.0.0" | "[::]" | "" => "127.0.0.1",
            h => h,
        }
        .to_owned();
        let url = format!("http://{host}:{port}");
        wait_http(&proc, &format!("{url}/health"), Duration::from_secs(30)).await?;
        Ok((proc, url, port))
    }
}

/// Reads the port a process wrote to `path`, failing early (with its log) if it exits.
pub(crate) async fn wait_port_file(
    proc: &mut Proc,
    path: &Path,
    within: Duration,
) -> anyhow::Result<u16> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(port) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return Ok(port);
        }
        if let Some(s) = proc.exited() {
            anyhow::bail!(
                "{} exited ({s}) during start-up:\n{}",
                proc.name,
                proc.log_tail(30)
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} wrote no port file within {within:?}:\n{}",
            proc.name,
            proc.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `url` until it answers 200.
async fn wait_http(proc: &Proc, url: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match probe(url).await {
            Some((200, _)) => return Ok(()),
            Some((s, body)) => last = format!("{s} {body}"),
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "{url} did not answer 200 within {within:?} (last: {last}):\n{}",
        proc.log_tail(30)
    )
}

/// Which Redis a stack uses.
#[derive(Clone, Debug)]
enum RedisChoice {
    Private,
    Url(String),
}

/// Which database a stack uses.
#[derive(Clone, Debug)]
enum DbChoice {
    Fresh(Backend),
    SqliteAt(PathBuf),
    Url(String),
}

/// Options of a [`Stack`]; [`Stack::builder`] starts with the test defaults.
#[derive(Clone, Debug)]
pub struct StackBuilder {
    workers: usize,
    ui: bool,
    redis: RedisChoice,
    db: DbChoice,
    defaults: Vec<(String, String)>,
    env: Vec<(String, String)>,
    inherit_env: bool,
    bin_dir: Option<PathBuf>,
    dir: Option<PathBuf>,
    wait_ready: Option<bool>,
    ready_within: Duration,
}

impl Default for StackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StackBuilder {
    /// No workers, no ui, a private Redis, a temp SQLite file, no default environment.
    pub fn new() -> StackBuilder {
        StackBuilder {
            workers: 0,
            ui: false,
            redis: RedisChoice::Private,
            db: DbChoice::Fresh(Backend::Sqlite),
            defaults: Vec::new(),
            env: Vec::new(),
            inherit_env: false,
            bin_dir: None,
            dir: None,
            wait_ready: None,
            ready_within: Duration::from_secs(90),
        }
    }

    /// Number of worker processes.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Start the ui as well.
    pub fn ui(mut self, on: bool) -> Self {
        self.ui = on;
        self
    }

    /// Use this Redis instead of a private one.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis = RedisChoice::Url(url.into());
        self
    }

    /// A fresh database of `backend` (dropped with the stack).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.db = DbChoice::Fresh(backend);
        self
    }

    /// A SQLite file at `path` that outlives the stack.
    pub fn sqlite_at(mut self, path: PathBuf) -> Self {
        self.db = DbChoice::SqliteAt(path);
        self
    }

    /// An existing database.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.db = DbChoice::Url(url.into());
        self
    }

    /// Sets a variable for every process (after the defaults).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env = with(&self.env, &[(key, &value.into())]);
        self
    }

    /// Sets a variable only when neither the builder nor (with `inherit_env`) the parent
    /// environment sets it.
    pub fn default_env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.defaults = with(&self.defaults, &[(key, &value.into())]);
        self
    }

    /// Pass the parent's environment through to the processes (`xtask stack`).
    pub fn inherit_env(mut self, on: bool) -> Self {
        self.inherit_env = on;
        self
    }

    /// Where `api`, `worker` and `ui` are (default `BIN_DIR` or `target/debug`).
    pub fn bin_dir(mut self, dir: PathBuf) -> Self {
        self.bin_dir = Some(dir);
        self
    }

    /// Folder for logs, port files, the private Redis and a temp SQLite file (default: a temp
    /// folder removed with the stack).
    pub fn dir(mut self, dir: PathBuf) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Wait for `/ready` and for every worker's heartbeat (default: when there are workers).
    pub fn wait_ready(mut self, on: bool) -> Self {
        self.wait_ready = Some(on);
        self
    }

    /// How long start-up may take (default 90 s).
    pub fn ready_within(mut self, within: Duration) -> Self {
        self.ready_within = within;
        self
    }

    /// Starts the stack: Redis, database, api, workers, ui. Panics with the logs on failure.
    pub async fn start(self) -> Stack {
        self.try_start().await.unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// [`StackBuilder::start`], then a freshly registered user's [`Client`](crate::Client).
    pub async fn start_with_client(self) -> (Stack, crate::Client) {
        let stack = self.start().await;
        let c = crate::Client::register(stack.api_url()).await;
        (stack, c)
    }

    /// [`StackBuilder::start`] returning the failure (for `xtask`).
    pub async fn try_start(self) -> anyhow::Result<Stack> {
        let tmp = match &self.dir {
            Some(_) => None,
            None => Some(tempfile::tempdir()?),
        };
        let dir = match (&self.dir, &tmp) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.path().to_owned(),
            (None, None) => unreachable!("a temp dir exists when no dir is given"),
        };
        std::fs::create_dir_all(&dir)?;
        let launcher = Launcher {
            dir: dir.clone(),
            bin_dir: self.bin_dir.clone().unwrap_or_else(crate::paths::bin_dir),
            inherit_env: self.inherit_env,
        };
        let redis = match &self.redis {
            RedisChoice::Private => Some(Redis::try_start_on(&dir, free_port()?)?),
            RedisChoice::Url(_) => None,
        };
        let redis_url = match (&self.redis, &redis) {
            (RedisChoice::Url(u), _) => u.clone(),
            (_, Some(r)) => r.url(),
            (RedisChoice::Private, None) => unreachable!("a private Redis was started"),
        };
        let db = match &self.db {
            DbChoice::Fresh(Backend::Sqlite) => {
                TestDb::sqlite_at(dir.join(format!("app-{}.db", uuid::Uuid::new_v4().simple())))
            }
            DbChoice::Fresh(Backend::Postgres) => TestDb::try_postgres()?,
            DbChoice::SqliteAt(p) => TestDb::sqlite_at(p.clone()),
            DbChoice::Url(u) => TestDb::external(u.clone()),
        };
        let mut env: Vec<(String, String)> = self
            .defaults
            .iter()
            .filter(|(k, _)| {
                get(&self.env, k).is_none() && !(self.inherit_env && std::env::var_os(k).is_some())
            })
            .cloned()
            .collect();
        env.extend(self.env.iter().cloned());
        let env = with(
            &env,
            &[("REDIS_URL", &redis_url), ("DATABASE_URL", &db.url)],
        );
        // Only the api and ui bind: their addresses are theirs alone.
        let process_env: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| k != "UI_BIND")
            .cloned()
            .collect();
        let api = launcher.api("api", &process_env).await?;
        let mut stack = Stack {
            ui: None,
            workers: Vec::new(),
            api,
            redis,
            db,
            launcher,
            env,
            next_worker: 1,
            restarts: 0,
            _tmp: tmp,
        };
        for _ in 0..self.workers {
            stack.add_worker()?;
        }
        if self.ui {
            let ui_env = stack.env_without("API_BIND");
            let url = stack.api.url.clone();
            stack.ui = Some(stack.launcher.ui("ui", &url, &ui_env).await?);
        }
        if self.wait_ready.unwrap_or(self.workers > 0) {
            stack
                .wait_ready(self.workers, self.ready_within)
                .await
                .map_err(|e| anyhow::anyhow!("{e:#}\n{}", stack.logs_tail(15)))?;
        }
        Ok(stack)
    }
}

/// A running private stack. Dropping it kills every process (SIGKILL) and removes what it
/// created (private Redis, temp folder, PostgreSQL database); [`Stack::shutdown`] stops them
/// with SIGTERM first.
pub struct Stack {
    // Field order is drop order: processes first, then the database and the temp folder.
    /// The ui, if asked for.
    pub ui: Option<Ui>,
    /// The workers, in start order.
    pub workers: Vec<Proc>,
    /// The api.
    pub api: Api,
    /// The private Redis (None when a Redis URL was given).
    pub redis: Option<Redis>,
    /// The database.
    pub db: TestDb,
    /// How processes are started (logs folder, binaries).
    pub launcher: Launcher,
    env: Vec<(String, String)>,
    next_worker: usize,
    restarts: usize,
    _tmp: Option<tempfile::TempDir>,
}

impl Stack {
    /// A builder with the test defaults ([`test_defaults`]): shared models, dev secret.
    pub fn builder() -> StackBuilder {
        let mut b = StackBuilder::new();
        for (k, v) in test_defaults() {
            b = b.default_env(&k, v);
        }
        b
    }

    /// The api's base URL.
    pub fn api_url(&self) -> &str {
        &self.api.url
    }

    /// The ui's base URL, if it runs.
    pub fn ui_url(&self) -> Option<&str> {
        self.ui.as_ref().map(|u| u.url.as_str())
    }

    /// The Redis URL every process uses.
    pub fn redis_url(&self) -> &str {
        get(&self.env, "REDIS_URL").unwrap_or_default()
    }

    /// The database URL of the api.
    pub fn database_url(&self) -> &str {
        &self.db.url
    }

    /// The folder holding logs and port files.
    pub fn dir(&self) -> &Path {
        &self.launcher.dir
    }

    /// The environment given to every process (besides an inherited one).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Starts one more worker (`worker-<n>`) with the stack's environment.
    pub fn add_worker(&mut self) -> anyhow::Result<&mut Proc> {
        self.add_worker_with(&[])
    }

    /// Starts one more worker with `extra` variables on top of the stack's environment.
    pub fn add_worker_with(&mut self, extra: &[(&str, &str)]) -> anyhow::Result<&mut Proc> {
        let name = format!("worker-{}", self.next_worker);
        self.next_worker += 1;
        let env: Vec<(String, String)> = with(&self.env, extra)
            .into_iter()
            .filter(|(k, _)| k != "API_BIND" && k != "UI_BIND")
            .collect();
        let w = self.launcher.worker(&name, &env)?;
        self.workers.push(w);
        let last = self.workers.len() - 1;
        Ok(&mut self.workers[last])
    }

    /// Waits for `/ready` and for `workers` live workers in `/info`; fails at once when a
    /// process exits meanwhile (a worker missing its model, say).
    pub async fn wait_ready(&mut self, workers: usize, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some((name, status)) = self.exited() {
                anyhow::bail!("{name} exited ({status}) during start-up");
            }
            if matches!(
                probe(&format!("{}/ready", self.api.url)).await,
                Some((200, _))
            ) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{}/ready did not answer 200 within {within:?}",
                self.api.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        loop {
            let live = probe(&format!("{}/info", self.api.url))
                .await
                .and_then(|(_, info)| serde_json::from_value::<api_types::Info>(info).ok())
                .map(|info| info.workers_live);
            if live.unwrap_or(0) >= workers as u64 {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {live:?} of {workers} workers live"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every process: (name, pid), in start order.
    pub fn processes(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        if let Some(r) = &self.redis {
            out.push(("redis".to_owned(), r.proc.pid()));
        }
        out.push(("api".to_owned(), self.api.proc.pid()));
        for w in &self.workers {
            out.push((w.name.clone(), w.pid()));
        }
        if let Some(u) = &self.ui {
            out.push(("ui".to_owned(), u.proc.pid()));
        }
        out
    }

    fn procs_mut(&mut self) -> Vec<&mut Proc> {
        let mut out: Vec<&mut Proc> = Vec::new();
        if let Some(r) = self.redis.as_mut() {
            out.push(&mut r.proc);
        }
        out.push(&mut self.api.proc);
        out.extend(self.workers.iter_mut());
        if let Some(u) = self.ui.as_mut() {
            out.push(&mut u.proc);
        }
        out
    }

    /// SIGTERM to the process called `name` (`api`, `ui`, `redis`, `worker-2`), killed after
    /// 30 s: its full name and exit status (None if killed), or Err when no process has that
    /// name.
    pub fn stop(&mut self, name: &str) -> anyhow::Result<(String, Option<ExitStatus>)> {
        let proc = self
            .procs_mut()
            .into_iter()
            .find(|p| p.name == name || (name == "redis" && p.name.starts_with("redis-")))
            .with_context(|| format!("no process named {name}"))?;
        Ok((proc.name.clone(), proc.stop(STOP_GRACE)))
    }

    /// The stack's environment without `key` (the other process's bind address).
    fn env_without(&self, key: &str) -> Vec<(String, String)> {
        self.env.iter().filter(|(k, _)| k != key).cloned().collect()
    }

    /// Kills the api (SIGKILL, like a crash) and starts a new one on the same database and
    /// Redis; returns once the new one answers `/health`.
    pub async fn restart_api(&mut self) -> anyhow::Result<()> {
        self.api.proc.kill9();
        let env = self.env_without("UI_BIND");
        self.restarts += 1;
        self.api = self
            .launcher
            .api(&format!("api-{}", self.restarts + 1), &env)
            .await?;
        Ok(())
    }

    /// The first process that has exited on its own: (name, status).
    pub fn exited(&mut self) -> Option<(String, ExitStatus)> {
        self.procs_mut()
            .into_iter()
            .find_map(|p| p.exited().map(|s| (p.name.clone(), s)))
    }

    /// The last `n` lines of every process's log.
    pub fn logs_tail(&self, n: usize) -> String {
        let mut out = String::new();
        let mut add = |p: &Proc| {
            out.push_str(&format!(
                "--- {} ({}) ---\n{}\n",
                p.name,
                p.log.display(),
                p.log_tail(n)
            ));
        };
        if let Some(r) = &self.redis {
            add(&r.proc);
        }
        add(&self.api.proc);
        self.workers.iter().for_each(&mut add);
        if let Some(u) = &self.ui {
            add(&u.proc);
        }
        out
    }

    /// Stops everything in reverse start order (ui, workers, api, Redis), each with SIGTERM
    /// and up to 30 s to finish; returns each (name, exit status; None if it had to be
    /// killed). Dropping the stack then removes its database and temp folder.
    pub fn shutdown(mut self) -> Vec<(String, Option<ExitStatus>)> {
        let mut procs = self.procs_mut();
        procs.reverse();
        procs
            .into_iter()
            .map(|p| (p.name.clone(), p.stop(STOP_GRACE)))
            .collect()
    }
}
