//! The API's side of the queue: answer from the cache, measure a queue, enqueue a job, read a
//! job back (and its times), and check that Redis answers. Both ways a job comes to exist (enqueued or answered from the cache)
//! write its whole [`JobRecord`] through [`JobRecord::fields`].

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{AsyncCommands, RedisResult};

use super::keys;
use super::records::{CachedResult, JobRecord, QueuedJob};

/// How long what `enqueue` writes lives (Redis counts whole seconds: see [`super::secs`]).
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    /// The job record (and later its result).
    pub result: Duration,
    /// The uploaded bytes.
    pub image: Duration,
}

/// A finished result of `job`'s owner for the same bytes, model and `top_k`, if one is cached
/// (another account's result is never reused: see [`keys::cache`]).
pub async fn cached_result<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    job: &QueuedJob,
) -> RedisResult<Option<CachedResult>> {
    let key = keys::cache(job.owner, &job.model, &job.sha256, job.top_k);
    let h: HashMap<String, Vec<u8>> = conn.hgetall(key).await?;
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
        .expire(&key, super::secs(ttls.result) as i64)
        .query_async(conn)
        .await?;
    Ok(())
}

/// Jobs waiting in (or held from) a model's queue.
pub async fn depth<C: ConnectionLike + Send + Sync>(conn: &mut C, model: &str) -> RedisResult<u64> {
    conn.xlen(keys::queue(model)).await
}

/// Redis memory in use and its `maxmemory` (0: no limit), from `INFO memory`.
pub async fn memory<C: ConnectionLike + Send + Sync>(conn: &mut C) -> RedisResult<(u64, u64)> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Ok((field("used_memory"), field("maxmemory")))
}

/// A user's unfinished jobs and their bytes, as `(jobs, bytes)`.
pub async fn queued_by<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    user_id: i64,
) -> RedisResult<(u64, u64)> {
    let (jobs, bytes): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
        .arg(keys::quota(user_id))
        .arg(keys::quota_field::JOBS)
        .arg(keys::quota_field::BYTES)
        .query_async(conn)
        .await?;
    let n = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    Ok((n(jobs), n(bytes)))
}

/// Stores the image, writes the job record and appends the job to its model's queue, all in
/// one `MULTI`: a worker never sees a job whose record or image is missing. The owner's quota
/// and the image's count of unfinished jobs go up in the same step (`finish.lua` takes them
/// back down and deletes the image).
pub async fn enqueue<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    job: &QueuedJob,
    record: &JobRecord,
    image: &[u8],
    ttls: Ttls,
) -> RedisResult<()> {
    let key = keys::job(&job.job_id);
    let refs = keys::image_refs(&job.sha256);
    let mut pipe = redis::pipe();
    pipe.atomic()
        .set_ex(keys::image(&job.sha256), image, super::secs(ttls.image))
        .incr(&refs, 1)
        .ignore()
        .expire(&refs, super::secs(ttls.image) as i64)
        .ignore()
        .hset_multiple(&key, &record.fields())
        .expire(&key, super::secs(ttls.result) as i64);
    if let Some(owner) = record.owner {
        let quota = keys::quota(owner);
        pipe.hincr(&quota, keys::quota_field::JOBS, 1)
            .ignore()
            .hincr(&quota, keys::quota_field::BYTES, image.len())
            .ignore()
            .expire(&quota, super::secs(ttls.result) as i64)
            .ignore();
    }
    let _: () = pipe
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

/// When a job was accepted and started (Unix ms) and its model, from its record; `None`
/// fields when the record is gone or lacks them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobTimes {
    pub model: Option<String>,
    pub created_ms: Option<i64>,
    pub started_ms: Option<i64>,
}

/// A job's [`JobTimes`], without reading its (possibly large) result.
pub async fn job_times<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    job_id: &str,
) -> RedisResult<JobTimes> {
    let fields = [
        keys::field::MODEL,
        keys::field::CREATED,
        keys::field::STARTED,
    ];
    let (model, created_ms, started_ms) = conn.hget(keys::job(job_id), &fields).await?;
    Ok(JobTimes {
        model,
        created_ms,
        started_ms,
    })
}

/// `PING`: whether Redis answers (the API's readiness).
pub async fn ping<C: ConnectionLike + Send + Sync>(conn: &mut C) -> RedisResult<()> {
    let _: String = redis::cmd("PING").query_async(conn).await?;
    Ok(())
}
