//! `worker health` (the container health check / liveness probe) against a private Redis:
//! the real binary, heartbeats written by the same code a serving worker uses.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use shared::job::WorkerInfo;
use shared::queue::workers;
use shared::time_util::now_ms;
use test_support::Redis;

fn info(id: &str, host: &str, age: Duration) -> WorkerInfo {
    let now = now_ms();
    WorkerInfo {
        id: id.into(),
        host: host.into(),
        models: vec!["resnet50".into()],
        version: "test".into(),
        started_ms: now - 60_000,
        last_seen_ms: now - i64::try_from(age.as_millis()).unwrap(),
        jobs_done: 7,
        jobs_failed: 0,
        busy: 1,
        ..Default::default()
    }
}

/// Runs `worker health` with `args` against `redis`; (exit success, stdout, stderr).
fn health(redis: &Redis, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_remove("WORKER_ID")
        .env_remove("HEALTH_MAX_AGE")
        .env_remove("HEARTBEAT_INTERVAL")
        .env("REDIS_URL", redis.url())
        .env("RUST_LOG", "off")
        .arg("health")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn health_passes_only_on_this_hosts_fresh_heartbeat() {
    let redis = Redis::start_temp();
    let mut conn = redis.conn().await;
    let host = shared::queue::workers::hostname();
    assert!(!host.is_empty(), "this machine has no hostname");

    // Nothing yet: unhealthy, and it says why.
    let (ok, _, err) = health(&redis, &[]);
    assert!(!ok, "no heartbeat must be unhealthy");
    assert!(err.contains("no heartbeat from a worker on host"), "{err}");

    // Another host's fresh heartbeat is not ours.
    workers::heartbeat(
        &mut conn,
        &info("elsewhere-1", "elsewhere", Duration::ZERO),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let (ok, _, err) = health(&redis, &[]);
    assert!(!ok, "another host's heartbeat must not count: {err}");

    // Ours, but older than three heartbeat intervals (default 2 s → 6 s): stale.
    workers::heartbeat(
        &mut conn,
        &info("here-old", &host, Duration::from_secs(20)),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let (ok, _, err) = health(&redis, &[]);
    assert!(!ok, "a stale heartbeat must be unhealthy");
    assert!(
        err.contains("here-old") && err.contains("limit 6.0 s"),
        "{err}"
    );
    // A wider limit accepts it.
    let (ok, out, err) = health(&redis, &["--max-age", "30s"]);
    assert!(ok, "{err}");
    assert!(out.contains("worker here-old healthy"), "{out}");

    // A fresh one on this host: healthy, and the newest heartbeat is the one reported.
    workers::heartbeat(
        &mut conn,
        &info("here-new", &host, Duration::ZERO),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let (ok, out, err) = health(&redis, &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("worker here-new healthy") && out.contains("serving resnet50"),
        "{out}"
    );

    // WORKER_ID picks one heartbeat by id, whatever its host.
    let by_id = |id: &str| {
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .env("REDIS_URL", redis.url())
            .env("RUST_LOG", "off")
            .env("WORKER_ID", id)
            .arg("health")
            .output()
            .unwrap()
    };
    assert!(by_id("elsewhere-1").status.success());
    assert!(!by_id("here-old").status.success());

    // Deregistered at shutdown: unhealthy again at once.
    workers::deregister(&mut conn, "here-new").await.unwrap();
    workers::deregister(&mut conn, "here-old").await.unwrap();
    let (ok, _, err) = health(&redis, &[]);
    assert!(!ok && err.contains("no heartbeat"), "{err}");
}

#[test]
fn health_fails_with_the_reason_when_redis_is_unreachable() {
    // A port nobody listens on: bind one and close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_remove("WORKER_ID")
        .env("REDIS_URL", format!("redis://127.0.0.1:{port}"))
        .env("REDIS_TIMEOUT", "500ms")
        .env("RUST_LOG", "off")
        .arg("health")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach Redis"), "{err}");
}
