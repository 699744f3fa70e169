//! End-to-end reliability under faults: real api and worker processes, a private Redis (killed
//! and restarted on the same port), a TCP proxy in front of PostgreSQL that the test cuts,
//! kill -9 and SIGTERM on the processes, and the worker's fault injection (`FAULT_INJECTION=1`:
//! uploads carrying `#panic` in a JPEG comment panic the decoder, `#hang` stall it).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_types::JobStatus;
use redis::AsyncCommands;
use serde_json::Value;
use test_support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const MODEL: &str = "efficientnet-lite0";

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Uploads `n` distinct copies of the photo; returns the job ids.
async fn upload_batch(c: &Client, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body, _) = c.upload_photo(&format!("{prefix}-{i}")).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["job_id"].as_str().unwrap().to_owned());
    }
    ids
}

/// How many of `ids` have finished (read straight from the job hashes).
async fn finished_count(conn: &mut redis::aio::MultiplexedConnection, ids: &[String]) -> usize {
    let mut n = 0;
    for id in ids {
        let s: Option<String> = conn.hget(shared::keys::job(id), "status").await.unwrap();
        if matches!(s.as_deref(), Some("done" | "failed")) {
            n += 1;
        }
    }
    n
}

async fn wait_finished(
    conn: &mut redis::aio::MultiplexedConnection,
    ids: &[String],
    at_least: usize,
    within: Duration,
) {
    eventually(within, Duration::from_millis(100), || {
        let mut conn = conn.clone();
        async move {
            let n = finished_count(&mut conn, ids).await;
            if n >= at_least {
                return Ok(());
            }
            Err(format!(
                "only {n} of {} jobs finished, expected {at_least}",
                ids.len()
            ))
        }
    })
    .await;
}

/// Waits for every job through `?wait` (in parallel) and checks each is done with the right class.
async fn assert_all_done(c: &Client, ids: &[String], within: Duration) {
    let mut handles = Vec::new();
    for id in ids {
        let (c, id) = (c.clone(), id.clone());
        handles.push(tokio::spawn(async move { c.wait_done(&id, within).await }));
    }
    for h in handles {
        let job = h.await.unwrap();
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(top1(&job), "academic gown", "{job:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_mid_batch_loses_nothing_and_duplicates_nothing() {
    // worker-1 keeps running; the newest worker is the one killed.
    let (mut stack, c) = Stack::builder()
        .env("VISIBILITY_TIMEOUT", "3")
        .workers(2)
        .start_with_client()
        .await;
    c.wait_workers(2, Duration::from_secs(30)).await;
    let mut conn = redis_conn(stack.redis_url()).await;

    let ids = upload_batch(&c, "kill9", 100).await;
    // Three crashes at different points of the batch, each followed by a fresh worker.
    for at in [10usize, 30, 55] {
        wait_finished(&mut conn, &ids, at, Duration::from_secs(180)).await;
        stack.workers.last_mut().unwrap().kill9();
        stack.add_worker().unwrap();
    }
    assert_all_done(&c, &ids, Duration::from_secs(240)).await;

    // Some job really was taken over from a killed worker (a second delivery) ...
    let mut retried = 0;
    for id in &ids {
        let attempts: Option<u32> = conn.hget(shared::keys::job(id), "attempts").await.unwrap();
        if attempts.unwrap_or(0) > 1 {
            retried += 1;
        }
    }
    assert!(retried >= 1, "no job was reclaimed from a killed worker");
    // ... and the queue is drained: nothing waiting, nothing held.
    let depth: u64 = conn.xlen(shared::keys::queue(MODEL)).await.unwrap();
    assert_eq!(depth, 0);
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(shared::keys::queue(MODEL), shared::keys::GROUP)
        .await
        .unwrap();
    assert_eq!(pending.count(), 0, "entries still pending");
    c.assert_history_exactly(&ids, Duration::from_secs(30), "history")
        .await;
    eprintln!("kill9: 100 jobs done, {retried} of them after a crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn panics_and_hangs_are_dead_lettered_after_max_attempts() {
    let (stack, c) = Stack::builder()
        .env("FAULT_INJECTION", "1")
        .env("MAX_ATTEMPTS", "2")
        .env("JOB_TIMEOUT", "3")
        .workers(1)
        .start_with_client()
        .await;

    let mut bad = Vec::new();
    for tag in ["#panic", "#hang"] {
        let (status, body, _) = c
            .upload("/predictions", with_trailer(&grace_hopper(), tag), None)
            .await;
        assert_eq!(status, 202, "{tag}: {body}");
        bad.push((tag, body["job_id"].as_str().unwrap().to_owned()));
    }
    for (tag, id) in &bad {
        let job = c.wait_done(id, Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Failed, "{tag}: {job:?}");
        let err = job.error.as_deref().unwrap_or_default();
        assert!(err.contains("2 attempts"), "{tag}: {err}");
        let cause = if *tag == "#panic" {
            "panic"
        } else {
            "longer than 3 s"
        };
        assert!(err.contains(cause), "{tag}: {err}");
    }
    let mut conn = redis_conn(stack.redis_url()).await;
    for (tag, id) in &bad {
        let rec: Option<String> = conn.hget(shared::keys::DEAD, id).await.unwrap();
        let rec: Value =
            serde_json::from_str(&rec.unwrap_or_else(|| panic!("{tag} not dead"))).unwrap();
        assert_eq!(rec["attempts"], 2, "{tag}: {rec}");
        assert_eq!(rec["job"]["job_id"], id.as_str());
    }

    // The worker goes on serving.
    let (status, body, _) = c.upload_photo("after").await;
    assert_eq!(status, 202, "{body}");
    let job = c
        .wait_done(body["job_id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(top1(&job), "academic gown");
    assert!(stack.workers[0].log_text().contains("dead-lettered"));

    // The operator's view.
    let out = std::process::Command::new(binary("worker"))
        .arg("dead-list")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_URL", stack.redis_url())
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (tag, id) in &bad {
        assert!(
            stdout.contains(id.as_str()),
            "{tag} missing from:\n{stdout}"
        );
    }
}

/// `POST /predictions` during an outage: a quick 503 with the JSON error.
async fn upload_answers_503(c: &Client, tag: &str, what: &str) {
    let started = Instant::now();
    let (status, body, _) = c
        .upload("/predictions", with_trailer(&grace_hopper(), tag), None)
        .await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{what} down: {body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(
        took < Duration::from_secs(5),
        "{what} down: the 503 took {took:?}"
    );
}

async fn get_status(url: &str) -> (u16, Value) {
    probe(url)
        .await
        .unwrap_or_else(|| panic!("{url} did not answer"))
}

/// Health stays 200 and readiness is 503 naming `what`.
async fn assert_health_and_not_ready(api: &Api, what: &str) {
    let (status, _) = get_status(&format!("{}/health", api.url)).await;
    assert_eq!(status, 200, "/health while {what} is down");
    let (status, ready) = get_status(&format!("{}/ready", api.url)).await;
    assert_eq!(status, 503, "/ready while {what} is down: {ready}");
    let missing: Vec<&str> = ready["missing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(missing.contains(&what), "{ready}");
}

/// Uploads until one is accepted (the first ones after a return may still see the outage),
/// then waits for that job.
async fn upload_recovers(c: &Client, tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    let id = loop {
        n += 1;
        let (status, body, _) = c.upload_photo(&format!("{tag}-{n}")).await;
        if status == 202 {
            break body["job_id"].as_str().unwrap().to_owned();
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "uploads still failing: {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let job = c.wait_done(&id, Duration::from_secs(60)).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(top1(&job), "academic gown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_gives_quick_503s_and_recovers_without_restarts() {
    let mut stack = Stack::builder().workers(1).start().await;
    let mut redis = stack.redis.take().unwrap();
    let port = redis.port;
    let c = Client::register(stack.api_url()).await;
    upload_recovers(&c, "before").await;

    // Redis goes away for 10 s while uploads keep coming.
    redis.proc.kill9();
    let down = Instant::now();
    let mut refused = 0;
    while down.elapsed() < Duration::from_secs(10) {
        upload_answers_503(&c, &format!("outage-{refused}"), "redis").await;
        refused += 1;
        if refused % 3 == 0 {
            assert_health_and_not_ready(&stack.api, "redis").await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(refused >= 3);

    // A fresh, empty Redis on the same port: no stream, no consumer group, no heartbeat.
    drop(redis);
    stack.redis = Some(Redis::start_on(stack.dir(), port));
    upload_recovers(&c, "after").await;
    wait_ready(&stack.api, Duration::from_secs(20)).await;
    assert!(
        stack.workers[0].child.try_wait().unwrap().is_none(),
        "worker still running"
    );
    assert!(
        stack.api.proc.log_text().to_lowercase().contains("redis"),
        "api logged the outage"
    );
    eprintln!("redis outage: {refused} uploads refused with 503");
    let status = stack.workers[0].terminate(Duration::from_secs(25));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// A TCP forwarder the test can cut (closing live connections and refusing new ones) and restore.
struct Proxy {
    port: u16,
    open: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, rx) = watch::channel(true);
        let upstream = Arc::new(upstream);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !*rx.borrow() {
                    drop(inbound); // cut: refuse by closing at once
                    continue;
                }
                let mut rx = rx.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream.as_str()).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {},
                        _ = rx.wait_for(|open| !*open) => {},
                    }
                });
            }
        });
        Proxy { port, open }
    }

    fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_gives_quick_503s_and_recovers_without_restarts() {
    // A database of its own on the test PostgreSQL; the server itself is never stopped: the
    // test cuts a proxy in front of it.
    let db = TestDb::postgres();
    let proxy = Proxy::start(test_support::db::host_port(&db.url)).await;
    let proxied = test_support::db::with_host_port(&db.url, &format!("127.0.0.1:{}", proxy.port));
    let (stack, c) = Stack::builder()
        .database_url(proxied)
        .env("DB_TIMEOUT_MS", "2000")
        .workers(1)
        .start_with_client()
        .await;
    upload_recovers(&c, "pg-before").await;

    proxy.set_open(false);
    let down = Instant::now();
    let mut refused = 0;
    while down.elapsed() < Duration::from_secs(10) {
        upload_answers_503(&c, &format!("pg-outage-{refused}"), "database").await;
        refused += 1;
        let started = Instant::now();
        let (status, body) = c.get("/predictions").await;
        assert_eq!(status, 503, "history while the database is down: {body}");
        assert!(started.elapsed() < Duration::from_secs(5));
        if refused % 2 == 0 {
            assert_health_and_not_ready(&stack.api, "database").await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    proxy.set_open(true);
    upload_recovers(&c, "pg-after").await;
    wait_ready(&stack.api, Duration::from_secs(20)).await;
    let (status, hist) = c.get("/predictions?per_page=100").await;
    assert_eq!(status, 200, "{hist}");
    eprintln!("database outage: {refused} uploads refused with 503");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_queue_answers_429_with_retry_after() {
    // No worker: nothing drains the queue.
    let (stack, c) = Stack::builder()
        .env("MAX_QUEUE_DEPTH", "20")
        .start_with_client()
        .await;
    upload_batch(&c, "queue", 20).await;

    for path in ["/predictions", "/predict"] {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(with_trailer(
                &grace_hopper(),
                &format!("one-too-many{path}"),
            ))
            .file_name("photo.jpg"),
        );
        let started = Instant::now();
        let r = c
            .http
            .post(format!("{}{path}", stack.api_url()))
            .bearer_auth(&c.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429, "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path}: at once"
        );
        let retry_after = r.headers().get("retry-after").map(|v| v.to_owned());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "queue_full", "{path}: {body}");
        let secs: u64 = retry_after
            .unwrap_or_else(|| panic!("{path}: no Retry-After"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(secs >= 1, "{path}");
    }
    let mut conn = redis_conn(stack.redis_url()).await;
    let depth: u64 = conn.xlen(shared::keys::queue(MODEL)).await.unwrap();
    assert_eq!(depth, 20, "nothing beyond the limit was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_worker_mid_batch_exits_0_and_every_job_completes() {
    // A long visibility timeout: the second worker can only finish what the first one
    // handed back (or never took), not reclaim it.
    let (mut stack, c) = Stack::builder()
        .env("VISIBILITY_TIMEOUT", "600")
        .env("SHUTDOWN_GRACE", "10")
        .start_with_client()
        .await;
    let ids = upload_batch(&c, "sigterm", 30).await;
    stack.add_worker().unwrap();
    let mut conn = redis_conn(stack.redis_url()).await;
    wait_finished(&mut conn, &ids, 3, Duration::from_secs(90)).await;

    let first = &mut stack.workers[0];
    let started = Instant::now();
    let status = first.terminate(Duration::from_secs(15));
    let took = started.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "worker exit after SIGTERM: {status:?}\n{}",
        first.log_text()
    );
    assert!(took <= Duration::from_secs(11), "exit took {took:?}");
    let done_by_first = finished_count(&mut conn, &ids).await;
    assert!(
        done_by_first < ids.len(),
        "the first worker did not finish everything"
    );
    let processing = {
        let mut n = 0;
        for id in &ids {
            let s: Option<String> = conn.hget(shared::keys::job(id), "status").await.unwrap();
            n += usize::from(s.as_deref() == Some("processing"));
        }
        n
    };
    assert_eq!(processing, 0, "no job left half-done by the stopped worker");

    stack.add_worker().unwrap();
    assert_all_done(&c, &ids, Duration::from_secs(120)).await;
    c.assert_history_exactly(&ids, Duration::from_secs(30), "history")
        .await;
    eprintln!("sigterm: first worker finished {done_by_first} jobs, exited in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_api_exits_0_after_in_flight_requests() {
    let stack = Stack::builder().start().await; // no worker: the job stays queued
    let c = Client::register(stack.api_url()).await;
    let (status, body, _) = c.upload_photo("api-term").await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    // A long poll in flight when the signal arrives still gets its answer.
    let poll = {
        let c = c.clone();
        tokio::spawn(async move { c.get(&format!("/predictions/{id}?wait=3")).await })
    };
    // SIGTERM only once the API is holding that poll (its in-flight gauge says so).
    let holding = r#"http_requests_in_flight{method="GET",route="/predictions/{job_id}"} 1"#;
    let metrics = format!("{}/metrics", stack.api_url());
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
            match text.lines().any(|l| l == holding) {
                true => Ok(()),
                false => Err(format!("the long poll never arrived:\n{text}")),
            }
        },
    )
    .await;
    let (status, stack) = tokio::task::spawn_blocking(move || {
        let mut stack = stack;
        let s = stack.api.proc.terminate(Duration::from_secs(15));
        (s, stack)
    })
    .await
    .unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "api exit after SIGTERM: {status:?}\n{}",
        stack.api.proc.log_text()
    );
    let (code, job) = poll.await.unwrap();
    assert_eq!(code, 200, "the in-flight long poll was answered: {job}");
    assert_eq!(job["status"], "queued");
}
