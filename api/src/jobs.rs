//! Accepting uploads as jobs, reading them back and waiting for them.
//!
//! An upload is checked (type by magic bytes, size and pixel count from the header), named by
//! the SHA-256 of its bytes and stored in Redis with a TTL, so workers anywhere need no shared
//! disk. The job hash, the image and the queue entry are written in one MULTI.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use shared::job::field;
use shared::time_util::now_ms;
use shared::upload::{inspect, DecodeLimits};
use shared::{keys, Job, JobFromHash, JobResult, JobStatus, QueuedJob};

use crate::auth::AuthUser;
use crate::db::{Finished, NewPrediction};
use crate::error::{ApiError, Result};
use crate::events::RECHECK_ALL;
use crate::state::AppState;

/// What a client asked to classify.
pub struct Upload {
    pub bytes: Vec<u8>,
    pub model: Option<String>,
    pub top_k: Option<usize>,
}

/// The view of a just-accepted job: done from the cache when `cached` holds its result, else queued.
fn accepted(
    job_id: String,
    model: String,
    image_file_name: String,
    created: i64,
    owner: i64,
    cached: Option<JobResult>,
) -> Job {
    Job {
        job_id,
        status: if cached.is_some() {
            JobStatus::Done
        } else {
            JobStatus::Queued
        },
        model,
        image_file_name,
        created_at: shared::time_util::rfc3339(created),
        cached: cached.is_some(),
        result: cached,
        error: None,
        owner: Some(owner),
        attempts: 0,
    }
}

/// Validates and enqueues an upload for `user`; a cached result comes back already done.
pub async fn submit(state: &AppState, user: &AuthUser, up: Upload) -> Result<Job> {
    let model = state.model(up.model.as_deref())?;
    let top_k = up.top_k.unwrap_or(shared::job::DEFAULT_TOP_K);
    if !(1..=shared::job::MAX_TOP_K).contains(&top_k) {
        return Err(ApiError::Validation(
            format!("top_k must be between 1 and {}", shared::job::MAX_TOP_K),
            "top_k",
        ));
    }
    let limits = DecodeLimits {
        max_pixels: state.cfg.common.max_pixels,
        min_side: state.cfg.common.min_image_side,
    };
    let info = inspect(&up.bytes, limits)?;
    let sha = hex::encode(Sha256::digest(&up.bytes));
    let image_file_name = format!("{sha}.{}", info.ext());
    let job_id = uuid::Uuid::now_v7().to_string();
    let created = now_ms();
    let history_row = NewPrediction {
        job_id: &job_id,
        user_id: user.id,
        image_file_name: &image_file_name,
        sha256: &sha,
        model: &model,
        top_k,
        created_ms: created,
    };
    let mut conn = state.redis.get().await?;

    // Same bytes + model + top_k within the result TTL: answer from the cache.
    let cached: HashMap<String, Vec<u8>> = conn.hgetall(keys::cache(&model, &sha, top_k)).await?;
    if let Some(result) = cached
        .get("result")
        .and_then(|r| serde_json::from_slice::<JobResult>(r).ok())
    {
        let thumb = cached.get("thumb").cloned().unwrap_or_default();
        state
            .db_call(state.db.insert_prediction(&history_row))
            .await?;
        let result_json = serde_json::to_string(&result).map_err(anyhow::Error::from)?;
        let _: () = redis::pipe()
            .hset_multiple(
                keys::job(&job_id),
                &[
                    (field::STATUS, JobStatus::Done.as_str().as_bytes()),
                    (field::MODEL, model.as_bytes()),
                    (field::OWNER, user.id.to_string().as_bytes()),
                    (field::IMAGE, image_file_name.as_bytes()),
                    (field::SHA256, sha.as_bytes()),
                    (field::CREATED, created.to_string().as_bytes()),
                    (field::FINISHED, created.to_string().as_bytes()),
                    (field::CACHED, b"1"),
                    (field::RESULT, result_json.as_bytes()),
                    (field::THUMB, &thumb),
                    (field::CONTENT_TYPE, info.content_type().as_bytes()),
                ],
            )
            .expire(keys::job(&job_id), state.cfg.common.result_ttl as i64)
            .query_async(&mut conn)
            .await?;
        state
            .db_call(state.db.finish_prediction(&Finished {
                job_id: &job_id,
                status: JobStatus::Done,
                result: Some(&result),
                error: None,
                thumbnail: Some(&thumb).filter(|t| !t.is_empty()).map(|t| t.as_slice()),
                finished_ms: created,
                cached: true,
            }))
            .await?;
        metrics::counter!("jobs_cache_hits_total").increment(1);
        return Ok(accepted(
            job_id,
            model,
            image_file_name,
            created,
            user.id,
            Some(result),
        ));
    }

    // Backpressure: refuse at once rather than accept work that cannot finish in time.
    let depth: u64 = conn.xlen(keys::queue(&model)).await?;
    if depth >= state.cfg.max_queue_depth {
        metrics::counter!("uploads_rejected_total", "reason" => "queue_full").increment(1);
        return Err(ApiError::QueueFull(depth));
    }

    state
        .db_call(state.db.insert_prediction(&history_row))
        .await?;
    let queued = QueuedJob {
        job_id: job_id.clone(),
        model: model.clone(),
        sha256: sha.clone(),
        top_k,
        enqueued_ms: created,
    };
    let payload = serde_json::to_string(&queued).map_err(anyhow::Error::from)?;
    let ttl = state.cfg.common.result_ttl as i64;
    let _: () = redis::pipe()
        .atomic()
        .set_ex(keys::image(&sha), &up.bytes, state.cfg.common.image_ttl)
        .hset_multiple(
            keys::job(&job_id),
            &[
                (field::STATUS, JobStatus::Queued.as_str()),
                (field::MODEL, model.as_str()),
                (field::OWNER, user.id.to_string().as_str()),
                (field::IMAGE, image_file_name.as_str()),
                (field::SHA256, sha.as_str()),
                (field::TOP_K, top_k.to_string().as_str()),
                (field::CREATED, created.to_string().as_str()),
                (field::ATTEMPTS, "0"),
                (field::CONTENT_TYPE, info.content_type()),
            ],
        )
        .expire(keys::job(&job_id), ttl)
        .xadd(keys::queue(&model), "*", &[("job", payload)])
        .query_async(&mut conn)
        .await?;
    metrics::counter!("jobs_submitted_total", "model" => model.clone()).increment(1);
    Ok(accepted(
        job_id,
        model,
        image_file_name,
        created,
        user.id,
        None,
    ))
}

/// The job as its owner (or an admin) may see it: live state from Redis, else the history
/// row. Foreign and unknown ids are both 404.
pub async fn read(state: &AppState, user: &AuthUser, job_id: &str) -> Result<Job> {
    let mut conn = state.redis.get().await?;
    let h: HashMap<String, Vec<u8>> = conn.hgetall(keys::job(job_id)).await?;
    let job = match Job::from_hash(job_id, &h) {
        Some(j) => Some(j),
        None => state.db_call(state.db.prediction(job_id)).await?,
    };
    match job {
        Some(j) if j.owner.is_some_and(|o| user.may_access(o)) => Ok(j),
        _ => Err(ApiError::not_found("job")),
    }
}

/// Reads the job, and if it is unfinished holds until a worker announces it or `wait` passes.
pub async fn wait(state: &AppState, user: &AuthUser, job_id: &str, wait: Duration) -> Result<Job> {
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

/// The uploaded bytes of a job while they live in Redis.
pub async fn image(state: &AppState, user: &AuthUser, job_id: &str) -> Result<(String, Vec<u8>)> {
    let mut conn = state.redis.get().await?;
    let h: HashMap<String, Vec<u8>> = conn.hgetall(keys::job(job_id)).await?;
    let job = Job::from_hash(job_id, &h);
    let owned = job
        .as_ref()
        .and_then(|j| j.owner)
        .is_some_and(|o| user.may_access(o));
    let sha = h
        .get(field::SHA256)
        .and_then(|s| String::from_utf8(s.clone()).ok());
    let (true, Some(sha)) = (owned, sha) else {
        return Err(ApiError::not_found("image"));
    };
    let bytes: Option<Vec<u8>> = conn.get(keys::image(&sha)).await?;
    let ctype = h
        .get(field::CONTENT_TYPE)
        .and_then(|s| String::from_utf8(s.clone()).ok())
        .unwrap_or_else(|| "application/octet-stream".into());
    bytes.map(|b| (ctype, b)).ok_or_else(|| {
        ApiError::NotFound("the image has expired; thumbnails stay in the history".into())
    })
}
