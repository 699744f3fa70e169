//! The Redis job protocol, in one place: every key and field ([`keys`]), the records each
//! key holds ([`records`]), the Lua scripts of the transitions (`lua/*.lua`) and the
//! operations api and worker call.
//!
//! A job's life:
//! 1. the API either answers from the cache ([`producer::record_cache_hit`]: the job record is
//!    written done) or [`producer::enqueue`]s it: image, record (`queued`) and stream entry
//!    in one `MULTI`;
//! 2. a worker reads it ([`Consumer::read`], `XREADGROUP`) or takes over a dead worker's
//!    delivery ([`Consumer::reclaim`], `XAUTOCLAIM`) and [`Consumer::start`]s it
//!    (`processing`, attempt counted; a finished or expired job is dropped here);
//! 3. the worker [`Consumer::finish`]es it (`done` or `failed`, exactly once: a second
//!    finisher changes nothing), which also fills the cache, appends a [`FinishedJob`] to the
//!    results stream, dead-letters it if it used up its attempts, and wakes `?wait`ers; or
//!    [`Consumer::requeue`]s it (shutdown, panic, timeout), which a finished job ignores;
//! 4. the API's recorder reads the results stream ([`results::read`]) into its database and
//!    acknowledges the entries ([`results::ack`]);
//! 5. an operator lists and requeues dead letters ([`dead::list`], [`dead::requeue`]).

pub mod consumer;
pub mod dead;
pub mod keys;
pub mod producer;
pub mod records;
pub mod results;
mod scripts;
pub mod workers;

use redis::aio::ConnectionLike;
use redis::streams::StreamId;
use redis::{AsyncCommands, RedisResult};

pub use consumer::{Consumer, Finish, Outcome, Recorded, Started};
pub use records::{CachedResult, DeadLetter, FinishedJob, JobInput, JobRecord, QueuedJob};

/// A lifetime as the whole seconds Redis's `EX`/`EXPIRE` take: rounded up, at least one (a
/// zero would be refused, or delete the key at once).
pub fn secs(ttl: std::time::Duration) -> u64 {
    ttl.as_secs_f64().ceil().max(1.0) as u64
}

/// A job delivered to a worker, with the stream entry it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub stream: String,
    pub entry_id: String,
    /// `None` when the entry's payload was unreadable (it is dropped).
    pub job: Option<QueuedJob>,
}

impl Delivery {
    fn from_entry(stream: &str, entry: &StreamId) -> Self {
        Delivery {
            stream: stream.to_owned(),
            entry_id: entry.id.clone(),
            job: payload(entry, keys::stream::JOB),
        }
    }
}

/// The JSON record in a stream entry's one field; `None` when missing or unreadable.
fn payload<T: serde::de::DeserializeOwned>(entry: &StreamId, field: &str) -> Option<T> {
    let bytes: Vec<u8> = redis::from_redis_value(entry.map.get(field)?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Creates a consumer group (and its stream) unless it exists.
async fn ensure_group<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> RedisResult<()> {
    let res: RedisResult<()> = conn.xgroup_create_mkstream(stream, group, "0").await;
    match res {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}
