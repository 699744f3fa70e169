//! The job queue as the API fills it, for tests that drive a worker or the protocol directly.

use shared::queue::producer::{self, Ttls};
use shared::queue::{JobRecord, QueuedJob};

/// Enqueues an upload of `bytes` for `model` as the API would (job `id`, top 2, a one-minute
/// TTL for its result and image), returning the queued job.
pub async fn enqueue(
    conn: &mut redis::aio::ConnectionManager,
    id: &str,
    model: &str,
    bytes: &[u8],
) -> QueuedJob {
    let q = QueuedJob {
        job_id: id.into(),
        owner: 1,
        model: model.into(),
        sha256: format!("sha-{id}"),
        top_k: 2,
        enqueued_ms: 0,
        input: Default::default(),
        scores: false,
    };
    let rec = JobRecord::queued(&q, "x.jpg", "image/jpeg");
    let ttls = Ttls {
        result: std::time::Duration::from_secs(60),
        image: std::time::Duration::from_secs(60),
    };
    producer::enqueue(conn, &q, &rec, bytes, ttls)
        .await
        .unwrap_or_else(|e| panic!("enqueue {id}: {e}"));
    q
}
