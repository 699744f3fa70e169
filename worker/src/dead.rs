//! Operator commands for the dead-letter hash: list the jobs that exhausted their attempts and
//! put one back in its queue with a fresh attempt count.

use anyhow::Context;
use redis::AsyncCommands;

use shared::{keys, QueuedJob};

use crate::config::WorkerConfig;

/// Prints every dead-lettered job as one JSON line.
pub async fn list(cfg: &WorkerConfig) -> anyhow::Result<()> {
    let mut conn =
        shared::redis_util::connect(&cfg.common.redis_url, cfg.common.redis_timeout()).await?;
    let all: Vec<(String, String)> = conn.hgetall(keys::DEAD).await?;
    if all.is_empty() {
        println!("no dead-lettered jobs");
    }
    for (id, record) in all {
        println!("{id} {record}");
    }
    Ok(())
}

/// Requeues one dead-lettered job (its image must still be in Redis).
pub async fn requeue(cfg: &WorkerConfig, job_id: &str) -> anyhow::Result<()> {
    let mut conn =
        shared::redis_util::connect(&cfg.common.redis_url, cfg.common.redis_timeout()).await?;
    let record: Option<String> = conn.hget(keys::DEAD, job_id).await?;
    let record = record.with_context(|| format!("job {job_id} is not in the dead-letter list"))?;
    let value: serde_json::Value = serde_json::from_str(&record)?;
    let job: QueuedJob = serde_json::from_value(value["job"].clone())
        .context("dead-letter record without its job")?;
    let exists: bool = conn.exists(keys::image(&job.sha256)).await?;
    anyhow::ensure!(
        exists,
        "the image of job {job_id} has expired; it cannot be retried"
    );
    let payload = serde_json::to_string(&job)?;
    let _: () = redis::pipe()
        .atomic()
        .hset_multiple(
            keys::job(job_id),
            &[("status", "queued"), ("attempts", "0"), ("error", "")],
        )
        .expire(keys::job(job_id), cfg.common.result_ttl.as_secs() as i64)
        .xadd(keys::queue(&job.model), "*", &[("job", payload)])
        .hdel(keys::DEAD, job_id)
        .query_async(&mut conn)
        .await?;
    println!("job {job_id} requeued on model {}", job.model);
    Ok(())
}
