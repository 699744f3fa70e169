//! Worker heartbeats: the API's readiness and `/info` read them to know who is alive.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::RedisResult;

use super::keys;
use crate::job::WorkerInfo;

/// Publishes a worker's heartbeat; it disappears by itself `ttl` after the last one (give it
/// [`fresh_for`] of the heartbeat interval).
pub async fn heartbeat<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    info: &WorkerInfo,
    ttl: Duration,
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

/// This machine's hostname (the pod or container name under Kubernetes and compose), as
/// workers write it into their heartbeats and the API and the worker name their Redis
/// consumers; empty when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Heartbeats a worker may miss before it counts as gone.
pub const MISSED_HEARTBEATS: u32 = 3;

/// The shortest time a heartbeat stays fresh, whatever the interval: Redis expires keys in
/// whole seconds, and a sub-second interval would leave a busy worker no slack.
pub const MIN_FRESH_FOR: Duration = Duration::from_secs(3);

/// The one heartbeat-freshness rule: a heartbeat sent every `interval` is fresh for
/// [`MISSED_HEARTBEATS`] intervals (at least [`MIN_FRESH_FOR`]). The worker gives its heartbeat
/// key this lifetime, so the key disappears exactly when the worker stops counting as live;
/// [`alive`] counts a worker only while its key is there, and readers that know the interval
/// (the worker's own health probe) apply the same span to the heartbeat's age.
pub fn fresh_for(interval: Duration) -> Duration {
    (interval * MISSED_HEARTBEATS).max(MIN_FRESH_FOR)
}

/// The heartbeats of every live worker (those whose heartbeat key, see [`fresh_for`], has not
/// expired; unreadable ones are skipped). Workers gone since are pruned from the index in the
/// same atomic step.
pub async fn alive<C: ConnectionLike + Send + Sync>(conn: &mut C) -> RedisResult<Vec<WorkerInfo>> {
    let raw: Vec<String> = super::scripts::LIVE_WORKERS
        .key(keys::WORKERS)
        .arg(keys::worker(""))
        .invoke_async(conn)
        .await?;
    Ok(raw
        .iter()
        .filter_map(|j| serde_json::from_str(j).ok())
        .collect())
}

/// The live heartbeats ([`alive`]) seen within the last `max_age_ms` as well.
pub async fn live<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    now_ms: i64,
    max_age_ms: i64,
) -> RedisResult<Vec<WorkerInfo>> {
    let mut workers = alive(conn).await?;
    workers.retain(|w| w.last_seen_ms >= now_ms - max_age_ms);
    Ok(workers)
}
