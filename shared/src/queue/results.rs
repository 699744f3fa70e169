//! The results stream as the API's recorder reads it: every finished job once, in a consumer
//! group shared by the API replicas, acknowledged (and deleted) only after it is persisted;
//! and the completion events (`ic:events`) that wake the API's `?wait`ers.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult};

use super::keys;
use super::records::FinishedJob;

/// Subscribes to the completion events (each message is a finished job's id) on a connection
/// of its own, opened within `timeout`.
pub async fn subscribe_events(url: &str, timeout: Duration) -> RedisResult<redis::aio::PubSub> {
    let client = redis::Client::open(url)?;
    let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::IoError, "connect timed out")))??;
    pubsub.subscribe(keys::EVENTS).await?;
    Ok(pubsub)
}

/// Entries read per round.
const BATCH: usize = 50;
/// Entries held this long by another API replica are taken over (it died).
const CLAIM_IDLE_MS: u64 = 30_000;

/// One results entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultEntry {
    pub id: String,
    /// `None` when the payload is unreadable (acknowledge it and move on).
    pub finished: Option<FinishedJob>,
}

impl ResultEntry {
    fn from_entry(e: &StreamId) -> Self {
        ResultEntry {
            id: e.id.clone(),
            finished: super::payload(e, keys::stream::FINISHED),
        }
    }
}

/// One round for `consumer`: entries it holds already (it failed to persist them), else
/// orphans of dead replicas, else new entries, waiting up to `block` for them.
pub async fn read<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    consumer: &str,
    block: Duration,
) -> RedisResult<Vec<ResultEntry>> {
    super::ensure_group(conn, keys::RESULTS, keys::RESULTS_GROUP).await?;
    let mine = StreamReadOptions::default()
        .group(keys::RESULTS_GROUP, consumer)
        .count(BATCH);
    let pending: StreamReadReply = conn.xread_options(&[keys::RESULTS], &["0"], &mine).await?;
    let entries: Vec<ResultEntry> = pending
        .keys
        .iter()
        .flat_map(|k| k.ids.iter().map(ResultEntry::from_entry))
        .collect();
    if !entries.is_empty() {
        return Ok(entries);
    }
    let claimed: StreamAutoClaimReply = conn
        .xautoclaim_options(
            keys::RESULTS,
            keys::RESULTS_GROUP,
            consumer,
            CLAIM_IDLE_MS,
            "0-0",
            StreamAutoClaimOptions::default().count(BATCH),
        )
        .await?;
    if !claimed.claimed.is_empty() {
        return Ok(claimed
            .claimed
            .iter()
            .map(ResultEntry::from_entry)
            .collect());
    }
    let fresh = StreamReadOptions::default()
        .group(keys::RESULTS_GROUP, consumer)
        .count(BATCH)
        .block(block.as_millis() as usize);
    let reply: Option<StreamReadReply> =
        conn.xread_options(&[keys::RESULTS], &[">"], &fresh).await?;
    Ok(reply
        .iter()
        .flat_map(|r| &r.keys)
        .flat_map(|k| k.ids.iter().map(ResultEntry::from_entry))
        .collect())
}

/// Acknowledges and deletes recorded entries.
pub async fn ack<C: ConnectionLike + Send + Sync>(conn: &mut C, ids: &[&str]) -> RedisResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let _: () = redis::pipe()
        .xack(keys::RESULTS, keys::RESULTS_GROUP, ids)
        .xdel(keys::RESULTS, ids)
        .query_async(conn)
        .await?;
    Ok(())
}
