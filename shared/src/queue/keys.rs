//! Redis key names and the field names inside them. Every key and field the service touches
//! is named here, so api, worker and the Lua scripts can never disagree about where a job, an
//! image or a result lives.
//!
//! Layout (prefix `ic:`):
//! - `ic:jobs:{model}`: a stream per model; consumer group [`GROUP`]. Each entry has one field,
//!   [`stream::JOB`], holding a [`QueuedJob`](super::QueuedJob) as JSON. A delivered entry stays
//!   in the group's pending list until the worker acknowledges it, so a crashed worker's job is
//!   never lost: it can be claimed again (`XAUTOCLAIM`) after the visibility timeout.
//! - `ic:job:{id}`: a hash with the job's state ([`JobRecord`](super::JobRecord), fields in
//!   [`field`]); expires with the result TTL.
//! - `ic:img:{sha256}`: the uploaded bytes, shared by every job of the same image (own TTL);
//!   deleted as soon as no unfinished job uses them: `ic:imgrefs:{sha256}` counts those jobs
//!   (incremented at enqueue, decremented by `finish.lua`; same TTL).
//! - `ic:quota:{user id}`: a hash with the user's queued `jobs` and `bytes` (incremented at
//!   enqueue, decremented by `finish.lua`; expires with the result TTL, so a lost decrement
//!   cannot lock a user out for good).
//! - `ic:cache:{owner}:{model}:{sha256}:{top_k}`: a finished result
//!   ([`CachedResult`](super::CachedResult)), reused for the same owner's identical uploads
//!   only: a cache shared between accounts would tell anyone what someone else had sent.
//! - `ic:events`: pub/sub channel; the job id is published when a job finishes.
//! - `ic:results`: a stream of finished jobs that the API persists into its database; each
//!   entry has one field, [`stream::FINISHED`], holding a [`FinishedJob`](super::FinishedJob) as JSON.
//! - `ic:dead`: dead-lettered jobs, a hash job id -> [`DeadLetter`](super::DeadLetter) as JSON
//!   (`{reason, attempts, model, at_ms, job}`), which `worker dead-list` shows and
//!   `worker dead-requeue` puts back.
//! - `ic:workers`: sorted set of worker ids by last heartbeat; `ic:worker:{id}` its details.

/// Consumer group shared by all workers on every model stream.
pub const GROUP: &str = "workers";
/// Pub/sub channel announcing finished jobs (payload: job id).
pub const EVENTS: &str = "ic:events";
/// Stream of finished jobs for the API's persistence consumer.
pub const RESULTS: &str = "ic:results";
/// Consumer group of the API replicas on [`RESULTS`].
pub const RESULTS_GROUP: &str = "api";
/// Hash of dead-lettered jobs: job id -> [`DeadLetter`](super::DeadLetter) JSON.
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

/// How many unfinished jobs use the bytes of [`image`].
pub fn image_refs(sha256: &str) -> String {
    format!("ic:imgrefs:{sha256}")
}

/// Prefix of the per-user quota hashes (`finish.lua` appends the owner id from the job hash).
pub const QUOTA_PREFIX: &str = "ic:quota:";

/// A user's queued jobs and bytes (fields [`quota_field::JOBS`], [`quota_field::BYTES`]).
pub fn quota(user_id: i64) -> String {
    format!("{QUOTA_PREFIX}{user_id}")
}

/// Field names of the quota hash.
pub mod quota_field {
    pub const JOBS: &str = "jobs";
    pub const BYTES: &str = "bytes";
}

/// A cached result for the same owner, bytes, model and `top_k`: a job's result is reused
/// for its owner's own repeats only.
pub fn cache(owner: i64, model: &str, sha256: &str, top_k: usize) -> String {
    format!("ic:cache:{owner}:{model}:{sha256}:{top_k}")
}

/// One worker's heartbeat details.
pub fn worker(worker_id: &str) -> String {
    format!("ic:worker:{worker_id}")
}

/// Field names of the job hash (`ic:job:{id}`) and the cache hash (`ic:cache:...`).
pub mod field {
    pub const STATUS: &str = "status";
    pub const MODEL: &str = "model";
    pub const OWNER: &str = "owner";
    pub const IMAGE: &str = "image";
    pub const SHA256: &str = "sha256";
    pub const TOP_K: &str = "top_k";
    pub const CREATED: &str = "created_ms";
    pub const STARTED: &str = "started_ms";
    pub const FINISHED: &str = "finished_ms";
    pub const ATTEMPTS: &str = "attempts";
    pub const WORKER: &str = "worker";
    pub const RESULT: &str = "result";
    pub const ERROR: &str = "error";
    pub const CACHED: &str = "cached";
    pub const THUMB: &str = "thumb";
    /// Every class's probability, f32 little-endian in class order: written only for jobs
    /// that asked for them ([`crate::queue::QueuedJob::scores`], the V2 protocol's output).
    pub const SCORES: &str = "scores";
    pub const CONTENT_TYPE: &str = "content_type";
    pub const LAST_ERROR: &str = "last_error";

    /// Every field, for checks that nothing else is used.
    pub const ALL: &[&str] = &[
        STATUS,
        MODEL,
        OWNER,
        IMAGE,
        SHA256,
        TOP_K,
        CREATED,
        STARTED,
        FINISHED,
        ATTEMPTS,
        WORKER,
        RESULT,
        ERROR,
        CACHED,
        THUMB,
        SCORES,
        CONTENT_TYPE,
        LAST_ERROR,
    ];
}

/// Field names of stream entries.
pub mod stream {
    /// The one field of a queue entry: a `QueuedJob` as JSON.
    pub const JOB: &str = "job";
    /// The one field of a results entry: a `FinishedJob` as JSON.
    pub const FINISHED: &str = "finished";
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
            image_refs("s"),
            quota(7),
            cache(7, "m", "s", 5),
            cache(8, "m", "s", 5),
            worker("w"),
        ];
        assert!(all.iter().all(|k| k.starts_with("ic:")));
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
    }
}
