//! Liveness and readiness: `/health` answers while the process runs; `/ready` names what is
//! missing (here the worker: Redis and the database answer, no worker heartbeat exists).

use axum::http::{Method, StatusCode};

use crate::helpers::*;

both_backends!(health_is_ok_and_ready_names_the_missing_worker);

async fn health_is_ok_and_ready_names_the_missing_worker(b: Backend) {
    let c = Ctx::new(b).await;
    let (s, _, v) = c.json(Method::GET, "/health", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "ok");
    let (s, _, v) = c.json(Method::GET, "/ready", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(
        missing(&v),
        vec!["worker"],
        "Redis and the database answer: {v}"
    );
}

both_backends!(ready_counts_retired_sessions_and_a_worker_without_any_does_not_serve);

async fn ready_counts_retired_sessions_and_a_worker_without_any_does_not_serve(b: Backend) {
    let c = Ctx::new(b).await;
    let (_, _, v) = c.json(Method::GET, "/ready", None, None).await;
    let model = v["default_model"].as_str().unwrap().to_owned();
    // Publishes w1's heartbeat with `healthy` and `retired` sessions of the default model.
    let beat = |healthy, retired| {
        let now = shared::time_util::now_ms();
        let info = shared::job::WorkerInfo {
            id: "w1".into(),
            models: vec![model.clone()],
            started_ms: now,
            last_seen_ms: now,
            sessions: [(
                model.clone(),
                shared::job::SessionHealth { healthy, retired },
            )]
            .into(),
            ..Default::default()
        };
        let c = &c;
        async move {
            let ttl = std::time::Duration::from_secs(30);
            shared::queue::workers::heartbeat(&mut c.redis_conn().await, &info, ttl)
                .await
                .unwrap();
        }
    };
    // Every session of the default model retired: the worker is on its way out.
    beat(0, 2).await;
    let (s, _, v) = c.json(Method::GET, "/ready", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(missing(&v), vec!["worker"], "{v}");
    assert_eq!(v["sessions_retired"], 2, "{v}");
    assert!(
        v["checks"]["worker"]
            .as_str()
            .unwrap()
            .contains("no working inference session"),
        "{v}"
    );
    // One session left: it serves, and the retired one stays visible.
    beat(1, 1).await;
    let (s, _, v) = c.json(Method::GET, "/ready", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["sessions_retired"], 1, "{v}");
}

both_backends!(a_worker_whose_heartbeat_expired_is_gone_and_pruned);

/// The one freshness rule: a worker is live while its heartbeat key lives; an index entry left
/// behind by an expired key counts for nothing and is pruned when read.
async fn a_worker_whose_heartbeat_expired_is_gone_and_pruned(b: Backend) {
    let c = Ctx::new(b).await;
    let mut conn = c.redis_conn().await;
    let now = shared::time_util::now_ms();
    let _: () = redis::cmd("ZADD")
        .arg(shared::keys::WORKERS)
        .arg(now)
        .arg("gone")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (s, _, v) = c.json(Method::GET, "/ready", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["workers_live"], 0, "{v}");
    let left: Vec<String> = redis::cmd("ZRANGE")
        .arg(shared::keys::WORKERS)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "pruned: {left:?}");
}
