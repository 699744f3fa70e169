//! Worker heartbeats: the API's readiness and `/info` read them to know who is alive.

use redis::aio::ConnectionLike;
use redis::RedisResult;

use super::keys;
use crate::job::WorkerInfo;

/// Publishes a worker's heartbeat; it disappears by itself `ttl` after the last one.
pub async fn heartbeat<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    info: &WorkerInfo,
    ttl: std::time::Duration,
) -> RedisResult<()> {
    let json = serde_json::to_string(info).unwrap_or_default();
    let _: () = redis::pipe()
        .set_ex(keys::worker(&info.id), json, super::secs(ttl))
        .zadd(keys::WORKERS, &info.id, info.last_seen_ms)
        .query_async(conn)
        .await?;
    Ok(())
}

/// Removes a worker's heartbeat at shutdown, so readiness notices at once.
pub async fn deregister<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    id: &str,
) -> RedisResult<()> {
    let _: () = redis::pipe()
        .del(keys::worker(id))
        .zrem(keys::WORKERS, id)
        .query_async(conn)
        .await?;
    Ok(())
}

/// The heartbeats of workers seen within the last `max_age_ms` (expired or unreadable ones
/// are skipped).
pub async fn live<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    now_ms: i64,
    max_age_ms: i64,
) -> RedisResult<Vec<WorkerInfo>> {
    let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(keys::WORKERS)
        .arg(now_ms - max_age_ms)
        .arg("+inf")
        .query_async(conn)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys_: Vec<String> = ids.iter().map(|i| keys::worker(i)).collect();
    let raw: Vec<Option<String>> = redis::cmd("MGET").arg(&keys_).query_async(conn).await?;
    Ok(raw
        .into_iter()
        .flatten()
        .filter_map(|j| serde_json::from_str(&j).ok())
        .collect())
}
