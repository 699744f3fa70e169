//! Accepting uploads as jobs, reading them back and waiting for them.
//!
//! An upload is checked (type by magic bytes, size and pixel count from the header), named by
//! the SHA-256 of its bytes and stored in Redis with a TTL, so workers anywhere need no shared
//! disk. `submit` goes through four steps: validate, answer from the cache, admit (queue
//! depth), enqueue; the Redis side of each is in [`shared::queue::producer`].

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use shared::queue::producer::{self, Ttls};
use shared::queue::{CachedResult, JobInput, JobRecord, QueuedJob};
use shared::time_util::now_ms;
use shared::upload::inspect;
use shared::{Job, JobStatus};

use crate::db::{Finished, NewPrediction};
use crate::error::{ApiError, Result};
use crate::events::RECHECK_ALL;
use crate::extract::AuthUser;
use crate::holds::Hold;
use crate::state::AppState;

/// What a client asked to classify.
pub struct Upload {
    pub bytes: Vec<u8>,
    /// An encoded image (every upload route) or a preprocessed tensor (the V2 protocol).
    pub input: JobInput,
    pub model: Option<String>,
    pub top_k: Option<usize>,
    /// Whether the worker also stores every class's probability ([`scores`]).
    pub scores: bool,
    /// The sanitised name of the file on the client's machine.
    pub original_name: Option<String>,
}

impl Upload {
    /// An encoded image as the upload routes receive it.
    pub fn image(
        bytes: Vec<u8>,
        model: Option<String>,
        top_k: Option<usize>,
        original_name: Option<String>,
    ) -> Self {
        Upload {
            bytes,
            input: JobInput::Image,
            model,
            top_k,
            scores: false,
            original_name,
        }
    }
}

/// An upload that passed every check ([`check`]): the job to queue, and what the record and
/// history keep about the image.
pub struct Checked {
    job: QueuedJob,
    bytes: Vec<u8>,
    image_file_name: String,
    content_type: &'static str,
    original_name: Option<String>,
}

impl Checked {
    /// The SHA-256 of the bytes the job keeps.
    pub fn sha256(&self) -> &str {
        &self.job.sha256
    }

    /// The id the job will have once submitted.
    pub fn job_id(&self) -> &str {
        &self.job.job_id
    }
}

/// Validates and enqueues an upload for `user` (sent from `addr`); a repeat of the user's own
/// upload comes back already done, from their cached result.
pub async fn submit(
    state: &AppState,
    user: &AuthUser,
    addr: Option<IpAddr>,
    up: Upload,
) -> Result<Job> {
    let upload = check(state, user, up)?;
    submit_checked(state, user, addr, upload).await
}

/// [`submit`] of an upload [`check`] passed, so that a request of several (the V2 protocol's
/// rows) queues none of them unless every one is acceptable. The upload rate limit applies to
/// each.
pub async fn submit_checked(
    state: &AppState,
    user: &AuthUser,
    addr: Option<IpAddr>,
    upload: Checked,
) -> Result<Job> {
    state.limits.check_upload(addr, user.id)?;
    let job = &upload.job;
    let mut conn = state.redis.get().await?;
    // A job that needs every class's score cannot be answered by a result stored without them.
    let hit = producer::cached_result(&mut conn, job)
        .await?
        .filter(|hit| !job.scores || !hit.scores.is_empty());
    let record = match hit {
        Some(hit) => answer_from_cache(state, &mut conn, user, &upload, hit).await?,
        None => {
            admit(state, &mut conn, user, &upload).await?;
            enqueue(state, &mut conn, user, &upload).await?
        }
    };
    let mut view = record
        .to_job(&job.job_id)
        .ok_or_else(|| anyhow::anyhow!("a new job record lacks its status or model"))?;
    view.original_file_name = upload.original_name.clone();
    Ok(view)
}

/// Checks the model, `top_k` and the bytes (an image's type, size and pixels; a tensor's size
/// for the model) before anything is stored; the job is `user`'s.
pub fn check(state: &AppState, user: &AuthUser, up: Upload) -> Result<Checked> {
    let original_name = up.original_name;
    let model = state.model(up.model.as_deref())?;
    let benchmark_only = state.registry.get(&model).is_ok_and(|s| s.benchmark_only);
    if benchmark_only && !state.cfg.allow_benchmark_models {
        return Err(ApiError::ModelUnavailable(format!(
            "{model} is a benchmark-only model; it does not classify uploads"
        )));
    }
    let top_k = up.top_k.unwrap_or(shared::job::DEFAULT_TOP_K);
    if !(1..=shared::job::MAX_TOP_K).contains(&top_k) {
        return Err(ApiError::Validation(
            format!("top_k must be between 1 and {}", shared::job::MAX_TOP_K),
            "top_k",
        ));
    }
    if up.bytes.len() > state.cfg.max_upload_bytes {
        return Err(ApiError::PayloadTooLarge(state.cfg.max_upload_bytes));
    }
    let (bytes, ext, content_type) = stored_bytes(state, &model, up.input, up.bytes)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok(Checked {
        image_file_name: format!("{sha256}.{ext}"),
        content_type,
        original_name,
        bytes,
        job: QueuedJob {
            job_id: uuid::Uuid::now_v7().to_string(),
            owner: user.id,
            model,
            sha256,
            top_k,
            enqueued_ms: now_ms(),
            input: up.input,
            scores: up.scores,
        },
    })
}

/// The bytes a job keeps, their extension and content type: an image's own bytes (trailing
/// data after its end dropped) once its header passed the checks, or a tensor of exactly the
/// model's input size.
fn stored_bytes(
    state: &AppState,
    model: &str,
    input: JobInput,
    bytes: Vec<u8>,
) -> Result<(Vec<u8>, &'static str, &'static str)> {
    match input {
        JobInput::Image => {
            let info = inspect(&bytes, state.cfg.common.decode_limits())?;
            let mut bytes = bytes;
            bytes.truncate(info.len);
            Ok((bytes, info.ext(), info.content_type()))
        }
        JobInput::Tensor => {
            let side = state
                .registry
                .get(model)
                .map_or(0, |s| s.input_size as usize);
            let want = 3 * side * side * 4;
            if bytes.len() != want {
                return Err(ApiError::BadRequest {
                    code: api_types::ErrorCode::BadRequest,
                    message: format!(
                        "a tensor for {model} is [1, 3, {side}, {side}] FP32 ({want} bytes), not {} bytes",
                        bytes.len()
                    ),
                });
            }
            Ok((bytes, "f32", "application/octet-stream"))
        }
    }
}

/// The history row every accepted job gets.
fn history_row<'a>(user: &AuthUser, upload: &'a Checked) -> NewPrediction<'a> {
    let job = &upload.job;
    NewPrediction {
        job_id: &job.job_id,
        user_id: user.id,
        image_file_name: &upload.image_file_name,
        sha256: &job.sha256,
        model: &job.model,
        top_k: job.top_k,
        created_ms: job.enqueued_ms,
        original_name: upload.original_name.as_deref(),
    }
}

/// The caller sent the same bytes + model + `top_k` within the result TTL: the job is done at
/// once, in Redis and in the history, marked `cached`. The cache is per account (see
/// [`shared::keys::cache`]): another account's copy of these bytes is queued like bytes nobody
/// sent, so neither the answer nor its timing tells anyone what someone else uploaded.
///
/// A hit still writes (a small job record in Redis, a history row), so it passes the same rate
/// limit as any upload (checked in [`submit`]) and the Redis high-water mark; it holds no queue
/// place, so the queue-depth and unfinished-work quotas do not apply. Neither store gets a copy
/// of the thumbnail: the history keeps one per content.
async fn answer_from_cache(
    state: &AppState,
    conn: &mut redis::aio::ConnectionManager,
    user: &AuthUser,
    upload: &Checked,
    hit: CachedResult,
) -> Result<JobRecord> {
    let job = &upload.job;
    refuse_when_redis_is_nearly_full(state, conn).await?;
    state
        .db_call(state.db.insert_prediction(&history_row(user, upload)))
        .await?;
    let mut record = JobRecord::from_cache(
        job,
        &upload.image_file_name,
        upload.content_type,
        hit.result,
    );
    if job.scores {
        record.scores = Some(hit.scores);
    }
    producer::record_cache_hit(conn, &job.job_id, &record, ttls(state)).await?;
    state
        .db_call(state.db.finish_prediction(&Finished {
            job_id: &job.job_id,
            status: JobStatus::Done,
            result: record.result.as_ref(),
            error: None,
            thumbnail: Some(hit.thumb.as_slice()).filter(|t| !t.is_empty()),
            finished_ms: job.enqueued_ms,
            cached: true,
        }))
        .await?;
    metrics::counter!(crate::prom::JOBS_CACHE_HITS).increment(1);
    Ok(record)
}

/// Admission of a job that must be queued: a live worker serves its model, Redis has room,
/// the owner is within their quota, and the model's queue is not full. Each refusal is at once,
/// rather than accepting work that cannot finish or memory that cannot be had.
async fn admit(
    state: &AppState,
    conn: &mut redis::aio::ConnectionManager,
    user: &AuthUser,
    upload: &Checked,
) -> Result<()> {
    let model = upload.job.model.as_str();
    if let Some(served) = served_models(state).await? {
        if !served.iter().any(|m| m == model) {
            metrics::counter!(crate::prom::UPLOADS_REJECTED, "reason" => "model_unavailable")
                .increment(1);
            return Err(ApiError::ModelUnavailable(format!(
                "no live worker serves {model} (served now: {})",
                served.join(", ")
            )));
        }
    }
    refuse_when_redis_is_nearly_full(state, conn).await?;
    let (jobs, bytes) = producer::queued_by(conn, user.id).await?;
    let cfg = &state.cfg;
    if jobs >= cfg.max_queued_jobs_per_user
        || bytes + upload.bytes.len() as u64 > cfg.max_queued_bytes_per_user
    {
        metrics::counter!(crate::prom::UPLOADS_REJECTED, "reason" => "user_quota").increment(1);
        return Err(ApiError::QuotaExceeded(format!(
            "you have {jobs} unfinished jobs holding {bytes} bytes; the limits are {} jobs and {} bytes. Retry when some have finished",
            cfg.max_queued_jobs_per_user, cfg.max_queued_bytes_per_user
        )));
    }
    let depth = producer::depth(conn, model).await?;
    if depth >= cfg.max_queue_depth {
        metrics::counter!(crate::prom::UPLOADS_REJECTED, "reason" => "queue_full").increment(1);
        return Err(ApiError::QueueFull(depth));
    }
    Ok(())
}

/// 503 when Redis uses more than `REDIS_MEMORY_HIGH_WATER` percent of its `maxmemory`: every
/// path that writes to Redis stops before it runs out, rather than failing other users' jobs.
async fn refuse_when_redis_is_nearly_full(
    state: &AppState,
    conn: &mut redis::aio::ConnectionManager,
) -> Result<()> {
    if redis_nearly_full(state, conn).await? {
        metrics::counter!(crate::prom::UPLOADS_REJECTED, "reason" => "redis_memory").increment(1);
        return Err(ApiError::unavailable(
            "the queue (Redis is nearly full)",
            format!(
                "Redis uses more than {}% of its maxmemory",
                state.cfg.redis_memory_high_water
            ),
        ));
    }
    Ok(())
}

/// How long a reading of Redis memory or of the live workers is reused.
const GUARD_TTL: Duration = Duration::from_secs(1);

/// The models live workers serve, or `None` when no worker is alive at all: that is an
/// outage (`/ready` says 503), not a wrong model, and the job waits for a worker to return.
async fn served_models(state: &AppState) -> Result<Option<Vec<String>>> {
    if let Some((at, models)) = state.guards.served.lock().await.as_ref() {
        if at.elapsed() < GUARD_TTL {
            return Ok((!models.is_empty()).then(|| models.clone()));
        }
    }
    let workers = live_workers(state).await?;
    let mut models: Vec<String> = workers.into_iter().flat_map(|w| w.models).collect();
    models.sort();
    models.dedup();
    *state.guards.served.lock().await = Some((std::time::Instant::now(), models.clone()));
    Ok((!models.is_empty()).then_some(models))
}

/// The heartbeats of the live workers (the freshness rule is
/// [`shared::queue::workers::fresh_for`]; the gone ones are pruned as they are read).
pub async fn live_workers(state: &AppState) -> Result<Vec<shared::job::WorkerInfo>> {
    let mut conn = state.redis.get().await?;
    Ok(shared::queue::workers::alive(&mut conn).await?)
}

/// Whether Redis uses more than `REDIS_MEMORY_HIGH_WATER` percent of its `maxmemory`.
pub async fn redis_nearly_full(
    state: &AppState,
    conn: &mut redis::aio::ConnectionManager,
) -> Result<bool> {
    let pct = u64::from(state.cfg.redis_memory_high_water);
    if pct == 0 {
        return Ok(false);
    }
    if let Some((at, full)) = *state.guards.redis_full.lock().await {
        if at.elapsed() < GUARD_TTL {
            return Ok(full);
        }
    }
    let (used, max) = producer::memory(conn).await?;
    let full = max > 0 && used.saturating_mul(100) >= max.saturating_mul(pct);
    if full {
        tracing::warn!(used, max, "Redis is nearly full: uploads get 503");
    }
    *state.guards.redis_full.lock().await = Some((std::time::Instant::now(), full));
    Ok(full)
}

/// Records the job in the history, then stores image, record and queue entry together.
async fn enqueue(
    state: &AppState,
    conn: &mut redis::aio::ConnectionManager,
    user: &AuthUser,
    upload: &Checked,
) -> Result<JobRecord> {
    let job = &upload.job;
    state
        .db_call(state.db.insert_prediction(&history_row(user, upload)))
        .await?;
    let record = JobRecord::queued(job, &upload.image_file_name, upload.content_type);
    producer::enqueue(conn, job, &record, &upload.bytes, ttls(state)).await?;
    metrics::counter!(crate::prom::JOBS_SUBMITTED, "model" => job.model.clone()).increment(1);
    Ok(record)
}

/// The configured lifetimes of what a job stores in Redis.
fn ttls(state: &AppState) -> Ttls {
    Ttls {
        result: state.cfg.common.result_ttl,
        image: state.cfg.common.image_ttl,
    }
}

/// The job as its owner (or an admin) may see it: live state from Redis, else the history
/// row. Foreign and unknown ids are both 404.
pub async fn read(state: &AppState, user: &AuthUser, job_id: &str) -> Result<Job> {
    let mut conn = state.redis.get().await?;
    let record = producer::read_record(&mut conn, job_id).await?;
    // A live record without an owner is malformed: 404, not a fall-through to history.
    let owned = match record.to_job(job_id) {
        Some(job) => record.owner.map(|owner| (owner, job, true)),
        None => state
            .db_call(state.db.owned_prediction(job_id))
            .await?
            .map(|(owner, job)| (owner, job, false)),
    };
    match owned {
        Some((owner, mut job, live)) if user.may_access(owner) => {
            if live {
                // The live record lacks what only the history keeps; a job whose history row
                // is gone (its owner deleted meanwhile) has none of it.
                let extras = state
                    .db_call(state.db.job_extras(job_id))
                    .await?
                    .unwrap_or_default();
                job.original_file_name = extras.original_file_name;
                job.cached = extras.cached;
                job.feedback = extras.feedback;
            }
            Ok(job)
        }
        _ => Err(ApiError::not_found("job")),
    }
}

/// Reads the job, and if it is unfinished holds until a worker announces it or `wait` passes.
/// Only a request that got a [`Hold`] may wait (`MAX_WAITS`, `MAX_WAITS_PER_USER`).
pub async fn wait(
    state: &AppState,
    user: &AuthUser,
    job_id: &str,
    wait: Duration,
    _held: &Hold,
) -> Result<Job> {
    let mut events = state.events.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let job = read(state, user, job_id).await?;
        if job.status.is_terminal() || tokio::time::Instant::now() >= deadline {
            return Ok(job);
        }
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(id) if &*id == job_id || &*id == RECHECK_ALL => break,
                    Ok(_) => continue,
                    Err(_) => break, // lagged or closed: re-read to be safe
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
}

/// Every class's probability for a done job that asked for them ([`Upload::scores`]), while
/// its record lives in Redis (`RESULT_TTL`); `None` once it has expired, or when it has none.
pub async fn scores(state: &AppState, job_id: &str) -> Result<Option<Vec<f32>>> {
    let mut conn = state.redis.get().await?;
    let record = producer::read_record(&mut conn, job_id).await?;
    Ok(record.scores.filter(|s| !s.is_empty()).map(|bytes| {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }))
}

/// The uploaded bytes of a job while they live in Redis.
pub async fn image(state: &AppState, user: &AuthUser, job_id: &str) -> Result<(String, Vec<u8>)> {
    let mut conn = state.redis.get().await?;
    let record = producer::read_record(&mut conn, job_id).await?;
    let owned = record.to_job(job_id).is_some() && record.owner.is_some_and(|o| user.may_access(o));
    let (true, Some(sha)) = (owned, record.sha256.as_deref()) else {
        return Err(ApiError::not_found("image"));
    };
    let bytes = producer::image(&mut conn, sha).await?;
    let ctype = record
        .content_type
        .unwrap_or_else(|| "application/octet-stream".into());
    bytes.map(|b| (ctype, b)).ok_or_else(|| {
        ApiError::NotFound("the image has expired; thumbnails stay in the history".into())
    })
}
