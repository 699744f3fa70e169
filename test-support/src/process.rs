//! Child processes owned by a test: output to a log file, killed when dropped so a failing
//! test leaves nothing running.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child process, killed (SIGKILL) when dropped.
pub struct Proc {
    /// The process itself.
    pub child: Child,
    /// Its name in logs and messages (`api`, `worker-2`, ...).
    pub name: String,
    /// The file holding its stdout and stderr.
    pub log: PathBuf,
}

/// How a [`Proc`] is started.
pub struct Spawn<'a> {
    /// The name (also the log file's stem).
    pub name: &'a str,
    /// The program to run.
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [&'a str],
    /// Variables set for it, on top of `PATH` and `RUST_LOG=info` (or of the whole parent
    /// environment when `inherit_env`).
    pub env: &'a [(String, String)],
    /// Folder of the log file.
    pub dir: &'a Path,
    /// Keep the parent's environment (`xtask stack`) instead of a clean one (tests).
    pub inherit_env: bool,
}

impl Spawn<'_> {
    /// Starts the process; its output is appended to `<dir>/<name>.log`.
    pub fn start(&self) -> std::io::Result<Proc> {
        let log = self.dir.join(format!("{}.log", self.name));
        let out = OpenOptions::new().create(true).append(true).open(&log)?;
        let mut cmd = Command::new(self.program);
        cmd.args(self.args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .current_dir(crate::repo());
        if !self.inherit_env {
            // A clean environment: what a test sets is all the process sees.
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("RUST_LOG", "info");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        Ok(Proc {
            child: cmd.spawn()?,
            name: self.name.to_owned(),
            log,
        })
    }
}

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and waits up to `within` for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited() {
            return Some(s);
        }
        // `kill(1)`: the workspace forbids `unsafe`, so no libc::kill here.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, then SIGKILL when it has not exited within `within`; the status either way.
    pub fn stop(&mut self, within: Duration) -> Option<ExitStatus> {
        self.terminate(within).or_else(|| {
            self.kill9();
            None
        })
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

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for TimedOut {}

/// Re-runs the async check `f` every `every` until it answers `Ok`; panics with its last
/// `Err` text once `limit` has passed (for tests that wait on the system's own progress).
pub async fn eventually<F, Fut>(limit: Duration, every: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match f().await {
            Ok(()) => return,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        tokio::time::sleep(every).await;
    }
}
