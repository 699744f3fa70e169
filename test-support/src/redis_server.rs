//! A private `redis-server` on a free port of 127.0.0.1, without persistence, killed when
//! dropped: tests never touch the machine's Redis.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::process::{Proc, Spawn};

/// `maxmemory` of the private servers (tests, `cargo xtask stack`, `make run` without a Redis).
pub const MAXMEMORY: &str = "512mb";

/// A private Redis.
pub struct Redis {
    /// The `redis-server` process.
    pub proc: Proc,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The folder of its log when it has one of its own ([`Redis::start_temp`]); removed
    /// after the process is killed (fields drop in order).
    own_dir: Option<tempfile::TempDir>,
}

/// A port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Redis {
    /// Starts one on a free port, logging to `dir/redis-<port>.log`. Another process may take
    /// the port before Redis binds it, so a few ports are tried.
    #[track_caller]
    pub fn start(dir: &Path) -> Redis {
        let mut failure = anyhow::anyhow!("no port tried");
        for _ in 0..5 {
            let port = free_port().unwrap_or_else(|e| panic!("no free port: {e}"));
            match Self::try_start_on(dir, port) {
                Ok(redis) => return redis,
                Err(e) => failure = e,
            }
        }
        panic!("{failure:#}")
    }

    /// [`Redis::start`] logging into a temporary folder of its own, removed when dropped: for
    /// tests that need nothing but a Redis.
    #[track_caller]
    pub fn start_temp() -> Redis {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary folder: {e}"));
        let mut redis = Self::start(dir.path());
        redis.own_dir = Some(dir);
        redis
    }

    /// Starts (or restarts, after a kill) one on a given port, with `maxmemory` [`MAXMEMORY`]
    /// (or `TEST_REDIS_MAXMEMORY`) and the `noeviction` policy.
    #[track_caller]
    pub fn start_on(dir: &Path, port: u16) -> Redis {
        Self::try_start_on(dir, port).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// [`Redis::start_on`] returning the failure instead of panicking (for `xtask`).
    pub fn try_start_on(dir: &Path, port: u16) -> anyhow::Result<Redis> {
        let p = port.to_string();
        let maxmemory = std::env::var("TEST_REDIS_MAXMEMORY").unwrap_or_else(|_| MAXMEMORY.into());
        let args = [
            "--port",
            &p,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            // Bounded like a deployment: writes are refused, never evicted (a queue must not
            // lose jobs), and the API answers 503 before this is reached.
            "--maxmemory",
            &maxmemory,
            "--maxmemory-policy",
            "noeviction",
            "--dir",
        ];
        let dir_s = dir.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.push(&dir_s);
        let mut proc = Spawn {
            name: &format!("redis-{port}"),
            program: Path::new("redis-server"),
            args: &all,
            env: &[],
            dir,
            inherit_env: true,
        }
        .start()
        .map_err(|e| {
            anyhow::anyhow!("cannot start redis-server (apt-get install redis-server): {e}")
        })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(s) = proc.exited() {
                anyhow::bail!("redis-server exited ({s}):\n{}", proc.log_tail(20));
            }
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Redis {
            proc,
            port,
            own_dir: None,
        })
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A self-healing async connection, as api and worker open theirs.
    pub async fn conn(&self) -> redis::aio::ConnectionManager {
        let url = self.url();
        shared::redis_util::connect(&url, Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
    }

    /// Appends a raw payload to a model's queue, as a stray duplicate or a broken producer
    /// would.
    pub async fn push_entry(&self, model: &str, payload: &str) {
        let _: String = redis::AsyncCommands::xadd(
            &mut self.conn().await,
            shared::keys::queue(model),
            "*",
            &[(shared::keys::stream::JOB, payload)],
        )
        .await
        .unwrap_or_else(|e| panic!("cannot add to the queue: {e}"));
    }
}
