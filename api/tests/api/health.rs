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
