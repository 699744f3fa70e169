//! Redis key names. Every key the service touches is built here, so api and worker can
//! never disagree about where a job, an image or a result lives.
//!
//! Layout (prefix `ic:`):
//! - `ic:jobs:{model}`: a stream per model; consumer group [`GROUP`]. A delivered entry stays in
//!   the group's pending list until the worker acknowledges it, so a crashed worker's job is
//!   never lost: it can be claimed again (`XAUTOCLAIM`) after the visibility timeout.
//! - `ic:job:{id}`: a hash with the job's state, owner, result or error (expires with the result TTL).
//! - `ic:img:{sha256}`: the uploaded bytes, shared by every job of the same image (own TTL).
//! - `ic:cache:{model}:{sha256}:{top_k}`: a finished result, reused for identical uploads.
//! - `ic:events`: pub/sub channel; the job id is published when a job finishes.
//! - `ic:results`: a stream of finished jobs that the API persists into its database.
//! - `ic:dead`: dead-lettered jobs (hash job id -> reason) an operator can inspect and requeue.
//! - `ic:workers`: sorted set of worker ids by last heartbeat; `ic:worker:{id}` its details.

/// Consumer group shared by all workers on every model stream.
pub const GROUP: &str = "workers";
/// Pub/sub channel announcing finished jobs (payload: job id).
pub const EVENTS: &str = "ic:events";
/// Stream of finished jobs for the API's persistence consumer.
pub const RESULTS: &str = "ic:results";
/// Consumer group of the API replicas on [`RESULTS`].
pub const RESULTS_GROUP: &str = "api";
/// Hash of dead-lettered jobs: job id -> JSON `{reason, attempts, model, at}`.
pub const DEAD: &str = "ic:dead";
/// Sorted set of worker ids scored by their last heartbeat (Unix ms).
pub const WORKERS: &str = "ic:workers";

/// The stream of queued jobs for one model.
pub fn queue(model: &str) -> String {
    format!("ic:jobs:{model}")
}

/// The hash describing one job.
pub fn job(job_id: &str) -> String {
    format!("ic:job:{job_id}")
}

/// The uploaded image bytes, keyed by their SHA-256.
pub fn image(sha256: &str) -> String {
    format!("ic:img:{sha256}")
}

/// A cached result for the same bytes, model and `top_k`.
pub fn cache(model: &str, sha256: &str, top_k: usize) -> String {
    format!("ic:cache:{model}:{sha256}:{top_k}")
}

/// One worker's heartbeat details.
pub fn worker(worker_id: &str) -> String {
    format!("ic:worker:{worker_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_and_distinct() {
        let all = [
            queue("m"),
            job("j"),
            image("s"),
            cache("m", "s", 5),
            worker("w"),
        ];
        assert!(all.iter().all(|k| k.starts_with("ic:")));
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
    }
}
