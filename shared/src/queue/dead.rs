//! The dead-letter hash as operators use it (`worker dead-list`, `worker dead-requeue`).

use std::collections::HashMap;

use redis::aio::ConnectionLike;
use redis::{AsyncCommands, RedisResult};

use super::keys;
use super::records::{DeadLetter, JobRecord};

/// Why a dead-lettered job cannot be requeued.
#[derive(Debug, thiserror::Error)]
pub enum RequeueError {
    #[error("job {0} is not in the dead-letter list")]
    NotDead(String),
    #[error("the dead-letter record of job {0} is unreadable: {1}")]
    Unreadable(String, serde_json::Error),
    #[error("the image of job {0} has expired; it cannot be retried")]
    ImageExpired(String),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Every dead-lettered job by id, oldest first; records that cannot be read are skipped
/// with a warning (an operator tool should show the rest).
pub async fn list<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
) -> RedisResult<Vec<(String, DeadLetter)>> {
    let all: HashMap<String, Vec<u8>> = conn.hgetall(keys::DEAD).await?;
    let mut out: Vec<(String, DeadLetter)> = all
        .into_iter()
        .filter_map(|(id, raw)| match serde_json::from_slice(&raw) {
            Ok(letter) => Some((id, letter)),
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "unreadable dead-letter record skipped");
                None
            }
        })
        .collect();
    out.sort_by_key(|(_, l)| l.at_ms);
    Ok(out)
}

/// Puts a dead-lettered job back in its queue with a fresh attempt count (its image must
/// still be in Redis); returns its letter.
pub async fn requeue<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    job_id: &str,
    result_ttl: std::time::Duration,
) -> Result<DeadLetter, RequeueError> {
    let raw: Option<Vec<u8>> = conn.hget(keys::DEAD, job_id).await?;
    let raw = raw.ok_or_else(|| RequeueError::NotDead(job_id.to_owned()))?;
    let letter: DeadLetter =
        serde_json::from_slice(&raw).map_err(|e| RequeueError::Unreadable(job_id.to_owned(), e))?;
    let exists: bool = conn.exists(keys::image(&letter.job.sha256)).await?;
    if !exists {
        return Err(RequeueError::ImageExpired(job_id.to_owned()));
    }
    let key = keys::job(job_id);
    let _: () = redis::pipe()
        .atomic()
        .hset_multiple(&key, &JobRecord::revived().fields())
        .expire(&key, super::secs(result_ttl) as i64)
        .xadd(keys::queue(&letter.job.model), "*", &letter.job.entry())
        .hdel(keys::DEAD, job_id)
        .query_async(conn)
        .await?;
    Ok(letter)
}
