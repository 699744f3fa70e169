//! The worker's side of the Redis queue. Each state change of a job is one Lua script, so a
//! crash between two commands can never leave a job half-finished or lost:
//! - `start`: marks the job processing and counts the attempt;
//! - `finish`: writes the result or error once (a second finisher is a no-op), acknowledges
//!   and deletes the stream entry, records the result for persistence and wakes waiters;
//! - `requeue`: hands the job back to the queue (shutdown, panic, timeout).

use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult, Script};

use shared::{keys, time_util::now_ms, QueuedJob};

/// A job delivered to this worker, with the stream entry it came from.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub stream: String,
    pub entry_id: String,
    /// `None` when the entry's payload was unreadable (it is dropped).
    pub job: Option<QueuedJob>,
}

impl Delivery {
    fn from_entry(stream: &str, entry: &StreamId) -> Self {
        let job = entry
            .map
            .get("job")
            .and_then(|v| redis::from_redis_value::<String>(v).ok())
            .and_then(|s| serde_json::from_str(&s).ok());
        Delivery {
            stream: stream.to_owned(),
            entry_id: entry.id.clone(),
            job,
        }
    }
}

/// What `start` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// Go ahead; this is attempt number n (1-based).
    Attempt(u32),
    /// The job record expired or was already finished: the entry was dropped.
    Gone,
}

/// How a job ended.
pub enum Outcome<'a> {
    Done {
        result_json: &'a str,
        thumbnail: &'a [u8],
    },
    Failed {
        error: &'a str,
    },
}

const START: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'status')
if cur == false or cur == 'done' or cur == 'failed' then
  redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
  redis.call('XDEL', KEYS[2], ARGV[4])
  return -1
end
redis.call('HSET', KEYS[1], 'status', 'processing', 'started_ms', ARGV[1], 'worker', ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
"#;

const FINISH: &str = r#"
-- KEYS: job hash, queue stream, cache hash, results stream, dead-letter hash
-- ARGV: status, payload, finished_ms, ttl, entry id, group, thumb, job id, events channel, worker, dead reason
redis.call('XACK', KEYS[2], ARGV[6], ARGV[5])
redis.call('XDEL', KEYS[2], ARGV[5])
local cur = redis.call('HGET', KEYS[1], 'status')
if cur == false then return -1 end
if cur == 'done' or cur == 'failed' then return 0 end
if ARGV[1] == 'done' then
  redis.call('HSET', KEYS[1], 'status', 'done', 'result', ARGV[2], 'finished_ms', ARGV[3], 'worker', ARGV[10], 'thumb', ARGV[7])
  redis.call('HSET', KEYS[3], 'result', ARGV[2], 'thumb', ARGV[7])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
else
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[2], 'finished_ms', ARGV[3], 'worker', ARGV[10])
  if ARGV[11] ~= '' then
    redis.call('HSET', KEYS[5], ARGV[8], ARGV[11])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local h = redis.call('HGETALL', KEYS[1])
local rec = {'job_id', ARGV[8]}
for i = 1, #h, 2 do
  if h[i] ~= 'thumb' then
    rec[#rec + 1] = h[i]
    rec[#rec + 1] = h[i + 1]
  end
end
rec[#rec + 1] = 'thumb'
rec[#rec + 1] = ARGV[7]
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', unpack(rec))
redis.call('PUBLISH', ARGV[9], ARGV[8])
return 1
"#;

const REQUEUE: &str = r#"
-- KEYS: job hash, queue stream. ARGV: group, entry id, job payload, reason
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
local cur = redis.call('HGET', KEYS[1], 'status')
if cur == false or cur == 'done' or cur == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'last_error', ARGV[4])
redis.call('XADD', KEYS[2], '*', 'job', ARGV[3])
return 1
"#;

/// The worker's connection and identity.
#[derive(Clone)]
pub struct Queue {
    pub conn: ConnectionManager,
    pub consumer: String,
    pub result_ttl: u64,
}

impl Queue {
    /// Creates the consumer group on each model stream (idempotent).
    pub async fn ensure_groups(&mut self, models: &[String]) -> RedisResult<()> {
        for model in models {
            let res: RedisResult<()> = self
                .conn
                .xgroup_create_mkstream(keys::queue(model), keys::GROUP, "0")
                .await;
            match res {
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Waits up to `block_ms` for new jobs on any of `models`' streams.
    pub async fn read(
        &mut self,
        models: &[String],
        count: usize,
        block_ms: usize,
    ) -> RedisResult<Vec<Delivery>> {
        let streams: Vec<String> = models.iter().map(|m| keys::queue(m)).collect();
        let ids = vec![">"; streams.len()];
        let opts = StreamReadOptions::default()
            .group(keys::GROUP, &self.consumer)
            .count(count)
            .block(block_ms);
        let reply: Option<StreamReadReply> = self.conn.xread_options(&streams, &ids, &opts).await?;
        Ok(reply
            .map(|r| {
                r.keys
                    .iter()
                    .flat_map(|k| k.ids.iter().map(|e| Delivery::from_entry(&k.key, e)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Claims entries other consumers have held longer than `min_idle_ms` (their worker died).
    pub async fn reclaim(
        &mut self,
        model: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> RedisResult<Vec<Delivery>> {
        let stream = keys::queue(model);
        let opts = StreamAutoClaimOptions::default().count(count);
        let reply: StreamAutoClaimReply = self
            .conn
            .xautoclaim_options(
                &stream,
                keys::GROUP,
                &self.consumer,
                min_idle_ms,
                "0-0",
                opts,
            )
            .await?;
        Ok(reply
            .claimed
            .iter()
            .map(|e| Delivery::from_entry(&stream, e))
            .collect())
    }

    /// Entries delivered to this consumer and not yet acknowledged.
    pub async fn own_pending(&mut self, model: &str) -> RedisResult<Vec<Delivery>> {
        let stream = keys::queue(model);
        let reply: redis::streams::StreamPendingCountReply = self
            .conn
            .xpending_consumer_count(&stream, keys::GROUP, "-", "+", 1000, &self.consumer)
            .await?;
        let mut out = Vec::new();
        for p in reply.ids {
            let entries: redis::streams::StreamRangeReply =
                self.conn.xrange(&stream, &p.id, &p.id).await?;
            out.extend(entries.ids.iter().map(|e| Delivery::from_entry(&stream, e)));
        }
        Ok(out)
    }

    /// Marks the job processing; returns the attempt number.
    pub async fn start(&mut self, d: &Delivery, job_id: &str) -> RedisResult<Started> {
        let n: i64 = Script::new(START)
            .key(keys::job(job_id))
            .key(&d.stream)
            .arg(now_ms())
            .arg(&self.consumer)
            .arg(keys::GROUP)
            .arg(&d.entry_id)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(if n < 0 {
            Started::Gone
        } else {
            Started::Attempt(n as u32)
        })
    }

    /// Records the outcome exactly once; returns whether this call was the one that did.
    pub async fn finish(
        &mut self,
        d: &Delivery,
        job: &QueuedJob,
        outcome: Outcome<'_>,
        dead_reason: Option<&str>,
    ) -> RedisResult<bool> {
        let (status, payload, thumb) = match outcome {
            Outcome::Done {
                result_json,
                thumbnail,
            } => ("done", result_json, thumbnail),
            Outcome::Failed { error } => ("failed", error, &[][..]),
        };
        let n: i64 = Script::new(FINISH)
            .key(keys::job(&job.job_id))
            .key(&d.stream)
            .key(keys::cache(&job.model, &job.sha256, job.top_k))
            .key(keys::RESULTS)
            .key(keys::DEAD)
            .arg(status)
            .arg(payload)
            .arg(now_ms())
            .arg(self.result_ttl)
            .arg(&d.entry_id)
            .arg(keys::GROUP)
            .arg(thumb)
            .arg(&job.job_id)
            .arg(keys::EVENTS)
            .arg(&self.consumer)
            .arg(dead_reason.unwrap_or(""))
            .invoke_async(&mut self.conn)
            .await?;
        Ok(n == 1)
    }

    /// Puts the job back at the end of its queue (it keeps its attempt count).
    pub async fn requeue(
        &mut self,
        d: &Delivery,
        job: &QueuedJob,
        reason: &str,
    ) -> RedisResult<()> {
        let payload = serde_json::to_string(job).unwrap_or_default();
        let _: i64 = Script::new(REQUEUE)
            .key(keys::job(&job.job_id))
            .key(&d.stream)
            .arg(keys::GROUP)
            .arg(&d.entry_id)
            .arg(payload)
            .arg(reason)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Drops an entry whose payload cannot be read.
    pub async fn drop_entry(&mut self, d: &Delivery) -> RedisResult<()> {
        let _: () = redis::pipe()
            .xack(&d.stream, keys::GROUP, &[&d.entry_id])
            .xdel(&d.stream, &[&d.entry_id])
            .query_async(&mut self.conn)
            .await?;
        Ok(())
    }

    /// The image bytes of a job, if they have not expired.
    pub async fn image(&mut self, sha256: &str) -> RedisResult<Option<Vec<u8>>> {
        self.conn.get(keys::image(sha256)).await
    }

    /// The last recorded retriable error of a job (for the dead-letter reason).
    pub async fn last_error(&mut self, job_id: &str) -> RedisResult<Option<String>> {
        self.conn.hget(keys::job(job_id), "last_error").await
    }

    /// Publishes this worker's heartbeat.
    pub async fn heartbeat(
        &mut self,
        info: &shared::job::WorkerInfo,
        ttl_s: u64,
    ) -> RedisResult<()> {
        let json = serde_json::to_string(info).unwrap_or_default();
        let _: () = redis::pipe()
            .set_ex(keys::worker(&info.id), json, ttl_s)
            .zadd(keys::WORKERS, &info.id, info.last_seen_ms)
            .query_async(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Removes this worker's heartbeat at shutdown, so `/ready` notices at once.
    pub async fn deregister(&mut self, id: &str) -> RedisResult<()> {
        let _: () = redis::pipe()
            .del(keys::worker(id))
            .zrem(keys::WORKERS, id)
            .query_async(&mut self.conn)
            .await?;
        Ok(())
    }
}
