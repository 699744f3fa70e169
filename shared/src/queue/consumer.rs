//! The worker's side of the queue: read and reclaim deliveries, then move each job through
//! `start` -> `finish` (or `requeue`) with one Lua script per transition, so a crash between
//! two commands can never leave a job half-finished or lost.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamPendingCountReply, StreamRangeReply,
    StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult};
use serde_json::json;

use super::keys;
use super::records::{CachedResult, DeadLetter, FinishedJob, JobRecord, QueuedJob};
use super::scripts::{Argv, FINISH, REQUEUE, START};
use super::{ensure_group, Delivery};
use crate::time_util::now_ms;
use crate::{JobResult, JobStatus};

/// Approximate cap of the results stream, so a long API outage cannot fill Redis.
const RESULTS_MAXLEN: u64 = 100_000;

/// What `start` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// Go ahead; this is attempt number n (1-based).
    Attempt(u32),
    /// The job record expired or was already finished: the entry was dropped.
    Gone,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done {
        result: JobResult,
        /// JPEG thumbnail for the history (empty for a tensor input).
        thumb: Vec<u8>,
        /// Every class's probability, f32 little-endian; empty unless the job asked for them.
        scores: Vec<u8>,
    },
    Failed {
        error: String,
    },
    /// Failed after its last attempt; the letter goes to the dead-letter hash.
    DeadLettered {
        error: String,
        letter: DeadLetter,
    },
}

/// One job to finish: the delivery it came in, the job and its outcome.
pub struct Finish<'a> {
    pub delivery: &'a Delivery,
    pub job: &'a QueuedJob,
    pub outcome: Outcome,
}

/// What `finish` did for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// This call recorded the outcome.
    First,
    /// Another worker had finished it already; nothing changed.
    AlreadyFinished,
    /// The job record had expired; nothing was recorded.
    Expired,
}

/// Everything one finished job writes.
struct FinishParts {
    record: JobRecord,
    entry: FinishedJob,
    cache: Option<CachedResult>,
    dead: Option<DeadLetter>,
}

/// A worker's connection and identity (its consumer name in the group).
#[derive(Clone)]
pub struct Consumer {
    pub conn: ConnectionManager,
    /// Consumer name in [`keys::GROUP`]; also recorded as the job's `worker`.
    pub name: String,
    /// How long a finished job record and cached result stay in Redis.
    pub result_ttl: Duration,
}

impl Consumer {
    /// Creates the consumer group on each model stream (idempotent).
    pub async fn ensure_groups(&mut self, models: &[String]) -> RedisResult<()> {
        for model in models {
            ensure_group(&mut self.conn, &keys::queue(model), keys::GROUP).await?;
        }
        Ok(())
    }

    /// Waits up to `block_ms` for new jobs on any of `models`' streams (`XREADGROUP`).
    pub async fn read(
        &mut self,
        models: &[String],
        count: usize,
        block_ms: usize,
    ) -> RedisResult<Vec<Delivery>> {
        let streams: Vec<String> = models.iter().map(|m| keys::queue(m)).collect();
        let ids = vec![">"; streams.len()];
        let opts = StreamReadOptions::default()
            .group(keys::GROUP, &self.name)
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

    /// Claims entries other consumers have held longer than `min_idle_ms` (`XAUTOCLAIM`):
    /// their worker died or hangs.
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
            .xautoclaim_options(&stream, keys::GROUP, &self.name, min_idle_ms, "0-0", opts)
            .await?;
        Ok(reply
            .claimed
            .iter()
            .map(|e| Delivery::from_entry(&stream, e))
            .collect())
    }

    /// Entries delivered to this consumer and not yet acknowledged (handed back at shutdown).
    pub async fn own_pending(&mut self, model: &str) -> RedisResult<Vec<Delivery>> {
        let stream = keys::queue(model);
        let reply: StreamPendingCountReply = self
            .conn
            .xpending_consumer_count(&stream, keys::GROUP, "-", "+", 1000, &self.name)
            .await?;
        let mut out = Vec::new();
        for p in reply.ids {
            let entries: StreamRangeReply = self.conn.xrange(&stream, &p.id, &p.id).await?;
            out.extend(entries.ids.iter().map(|e| Delivery::from_entry(&stream, e)));
        }
        Ok(out)
    }

    /// Marks the job processing and counts the attempt (`lua/start.lua`).
    pub async fn start(&mut self, d: &Delivery, job_id: &str) -> RedisResult<Started> {
        let mut argv = Argv::default();
        let set = argv.pairs(JobRecord::started(&self.name, now_ms()).fields());
        let doc = json!({"group": keys::GROUP, "entry_id": d.entry_id, "set": set});
        let n: i64 = argv
            .invocation(&START, &[keys::job(job_id), d.stream.clone()], &doc)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(if n < 0 {
            Started::Gone
        } else {
            Started::Attempt(n as u32)
        })
    }

    /// Records one job's outcome exactly once (`lua/finish.lua`).
    pub async fn finish(
        &mut self,
        d: &Delivery,
        job: &QueuedJob,
        outcome: Outcome,
    ) -> RedisResult<Recorded> {
        let done = self
            .finish_all(&[Finish {
                delivery: d,
                job,
                outcome,
            }])
            .await?;
        Ok(done.into_iter().next().unwrap_or(Recorded::Expired))
    }

    /// Records several outcomes in one script call (one round trip); one answer per job.
    pub async fn finish_all(&mut self, items: &[Finish<'_>]) -> RedisResult<Vec<Recorded>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let finished_ms = now_ms();
        let mut argv = Argv::default();
        let mut keys_ = vec![keys::RESULTS.to_owned(), keys::DEAD.to_owned()];
        let mut jobs = Vec::with_capacity(items.len());
        for it in items {
            let parts = self.finish_parts(it, finished_ms);
            let mut doc = json!({
                "job_id": it.job.job_id,
                "entry_id": it.delivery.entry_id,
                "set": argv.pairs(parts.record.fields()),
                "entry": argv.pairs(parts.entry.entry()),
            });
            if let Some(c) = parts.cache {
                doc["cache"] = argv.pairs(c.fields());
            }
            if let Some(letter) = parts.dead {
                let json = serde_json::to_vec(&letter).unwrap_or_default();
                doc["dead"] = argv.pairs(vec![(it.job.job_id.as_str(), json)]);
            }
            jobs.push(doc);
            keys_.push(keys::job(&it.job.job_id));
            keys_.push(it.delivery.stream.clone());
            let j = it.job;
            keys_.push(keys::cache(j.owner, &j.model, &j.sha256, j.top_k));
            keys_.push(keys::image(&it.job.sha256));
            keys_.push(keys::image_refs(&it.job.sha256));
        }
        let doc = json!({
            "group": keys::GROUP,
            "ttl": super::secs(self.result_ttl),
            "events": keys::EVENTS,
            "maxlen": RESULTS_MAXLEN,
            "quota_prefix": keys::QUOTA_PREFIX,
            "jobs": jobs,
        });
        let answers: Vec<i64> = argv
            .invocation(&FINISH, &keys_, &doc)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(answers
            .into_iter()
            .map(|n| match n {
                1 => Recorded::First,
                0 => Recorded::AlreadyFinished,
                _ => Recorded::Expired,
            })
            .collect())
    }

    /// What finishing one job writes: the record change, the results entry, the cache entry
    /// (done jobs) and the dead letter (jobs out of attempts).
    fn finish_parts(&self, it: &Finish<'_>, finished_ms: i64) -> FinishParts {
        let (status, result, error, (thumb, scores), dead) = match &it.outcome {
            Outcome::Done {
                result,
                thumb,
                scores,
            } => (
                JobStatus::Done,
                Some(result.clone()),
                None,
                (thumb.clone(), scores.clone()),
                None,
            ),
            Outcome::Failed { error } => (
                JobStatus::Failed,
                None,
                Some(error.clone()),
                Default::default(),
                None,
            ),
            Outcome::DeadLettered { error, letter } => (
                JobStatus::Failed,
                None,
                Some(error.clone()),
                Default::default(),
                Some(letter.clone()),
            ),
        };
        FinishParts {
            record: JobRecord {
                status: Some(status),
                result: result.clone(),
                error: error.clone(),
                finished_ms: Some(finished_ms),
                worker: Some(self.name.clone()),
                thumb: result.as_ref().map(|_| thumb.clone()),
                scores: Some(scores.clone()).filter(|s| !s.is_empty()),
                ..JobRecord::default()
            },
            cache: result.clone().map(|result| CachedResult {
                result,
                thumb: thumb.clone(),
                scores,
            }),
            entry: FinishedJob {
                job_id: it.job.job_id.clone(),
                status,
                result,
                error,
                worker: self.name.clone(),
                finished_ms,
                thumb,
            },
            dead,
        }
    }

    /// Puts the job back at the end of its queue, keeping its attempt count
    /// (`lua/requeue.lua`); returns false when it had already finished or expired.
    pub async fn requeue(
        &mut self,
        d: &Delivery,
        job: &QueuedJob,
        reason: &str,
    ) -> RedisResult<bool> {
        let mut argv = Argv::default();
        let set = argv.pairs(JobRecord::requeued(reason).fields());
        let entry = argv.pairs(job.entry());
        let doc = json!({"group": keys::GROUP, "entry_id": d.entry_id, "set": set, "entry": entry});
        let n: i64 = argv
            .invocation(&REQUEUE, &[keys::job(&job.job_id), d.stream.clone()], &doc)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(n == 1)
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
        Ok(super::producer::read_record(&mut self.conn, job_id)
            .await?
            .last_error)
    }
}
