//! Worker heartbeats: the API's readiness and `/info` read them to know who is alive.

use redis::aio::ConnectionLike;
use redis::RedisResult;

use super::keys;
use crate::job::WorkerInfo;

/// Publishes a worker's heartbeat; it disappears by itself `ttl_s` seconds after the last one.
pub async fn heartbeat<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    info: &WorkerInfo,
    ttl_s: u64,
) -> RedisResult<()> {
    let json = serde_json::to_string(info).unwrap_or_default();
    let _: () = redis::pipe()
        .set_ex(keys::worker(&info.id), json, ttl_s)
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
