//! The API's side of the queue: answer from the cache, measure a queue, enqueue a job and
//! read a job back. Both ways a job comes to exist (enqueued or answered from the cache)
//! write its whole [`JobRecord`] through [`JobRecord::fields`].

use std::collections::HashMap;

use redis::aio::ConnectionLike;
use redis::{AsyncCommands, RedisResult};

use super::keys;
use super::records::{CachedResult, JobRecord, QueuedJob};

/// How long what `enqueue` writes lives, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    /// The job record (and later its result).
    pub result: u64,
    /// The uploaded bytes.
    pub image: u64,
}

/// A finished result for the same bytes, model and `top_k`, if one is cached.
pub async fn cached_result<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    model: &str,
    sha256: &str,
    top_k: usize,
) -> RedisResult<Option<CachedResult>> {
    let h: HashMap<String, Vec<u8>> = conn.hgetall(keys::cache(model, sha256, top_k)).await?;
    Ok(CachedResult::from_fields(&h))
}

/// Writes the record of a job answered from the cache (already done; nothing is queued).
pub async fn record_cache_hit<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    job_id: &str,
    record: &JobRecord,
    ttls: Ttls,
) -> RedisResult<()> {
    let key = keys::job(job_id);
    let _: () = redis::pipe()
        .atomic()
        .hset_multiple(&key, &record.fields())
        .expire(&key, ttls.result as i64)
        .query_async(conn)
        .await?;
    Ok(())
}

/// Jobs waiting in (or held from) a model's queue.
pub async fn depth<C: ConnectionLike + Send + Sync>(conn: &mut C, model: &str) -> RedisResult<u64> {
    conn.xlen(keys::queue(model)).await
}

/// Stores the image, writes the job record and appends the job to its model's queue, all in
/// one `MULTI`: a worker never sees a job whose record or image is missing.
pub async fn enqueue<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    job: &QueuedJob,
    record: &JobRecord,
    image: &[u8],
    ttls: Ttls,
) -> RedisResult<()> {
    let key = keys::job(&job.job_id);
    let _: () = redis::pipe()
        .atomic()
        .set_ex(keys::image(&job.sha256), image, ttls.image)
        .hset_multiple(&key, &record.fields())
        .expire(&key, ttls.result as i64)
        .xadd(keys::queue(&job.model), "*", &job.entry())
        .query_async(conn)
        .await?;
    Ok(())
}

/// The job record as stored (every field `None` when it expired or never existed).
pub async fn read_record<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    job_id: &str,
) -> RedisResult<JobRecord> {
    let h: HashMap<String, Vec<u8>> = conn.hgetall(keys::job(job_id)).await?;
    Ok(JobRecord::from_fields(&h))
}

/// The uploaded bytes, while they live.
pub async fn image<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    sha256: &str,
) -> RedisResult<Option<Vec<u8>>> {
    conn.get(keys::image(sha256)).await
}
