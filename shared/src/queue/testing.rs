//! A private `redis-server` for tests: started on a free port, without persistence, killed
//! when dropped. (Feature `testing`; to be replaced by the workspace's test-support crate.)

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private Redis.
pub struct TestRedis {
    child: Child,
    /// `redis://127.0.0.1:{port}`.
    pub url: String,
}

impl TestRedis {
    /// Starts `redis-server` (from `PATH`) and waits until it answers.
    #[track_caller]
    pub fn start() -> Self {
        for _ in 0..5 {
            // Ask the OS for a free port; Redis may still lose a race for it, hence the retries.
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap_or_else(|e| panic!("no free port: {e}"));
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
            let url = format!("redis://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: the port was taken
                }
                let ping = redis::Client::open(url.as_str())
                    .and_then(|c| c.get_connection())
                    .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
                if ping.is_ok() {
                    return TestRedis { child, url };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }

    /// A self-healing async connection.
    pub async fn conn(&self) -> redis::aio::ConnectionManager {
        crate::redis_util::connect(&self.url, Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url))
    }

    /// Appends a raw payload to a model's queue, as a stray duplicate or a broken producer would.
    pub async fn push_entry(&self, model: &str, payload: &str) {
        let _: String = redis::AsyncCommands::xadd(
            &mut self.conn().await,
            super::keys::queue(model),
            "*",
            &[(super::keys::stream::JOB, payload)],
        )
        .await
        .unwrap_or_else(|e| panic!("cannot add to the queue: {e}"));
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Enqueues an upload of `bytes` for `model` as the API would (job `id`, top 2, a one-minute
/// TTL for its result and image), returning the queued job.
pub async fn enqueue(
    conn: &mut redis::aio::ConnectionManager,
    id: &str,
    model: &str,
    bytes: &[u8],
) -> super::QueuedJob {
    let q = super::QueuedJob {
        job_id: id.into(),
        model: model.into(),
        sha256: format!("sha-{id}"),
        top_k: 2,
        enqueued_ms: 0,
    };
    let rec = super::JobRecord::queued(&q, 1, "x.jpg", "image/jpeg");
    let ttls = super::producer::Ttls {
        result: 60,
        image: 60,
    };
    super::producer::enqueue(conn, &q, &rec, bytes, ttls)
        .await
        .unwrap_or_else(|e| panic!("enqueue {id}: {e}"));
    q
}
