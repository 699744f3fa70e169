//! Operator commands for the dead-letter hash: list the jobs that exhausted their attempts and
//! put one back in its queue with a fresh attempt count.

use shared::queue::dead;

use crate::config::WorkerConfig;

/// Prints every dead-lettered job as one line: its id and its record as JSON.
pub async fn list(cfg: &WorkerConfig) -> anyhow::Result<()> {
    let mut conn =
        shared::redis_util::connect(&cfg.common.redis_url, cfg.common.redis_timeout()).await?;
    let all = dead::list(&mut conn).await?;
    if all.is_empty() {
        println!("no dead-lettered jobs");
    }
    for (id, letter) in all {
        println!("{id} {}", serde_json::to_string(&letter)?);
    }
    Ok(())
}

/// Requeues one dead-lettered job (its image must still be in Redis).
pub async fn requeue(cfg: &WorkerConfig, job_id: &str) -> anyhow::Result<()> {
    let mut conn =
        shared::redis_util::connect(&cfg.common.redis_url, cfg.common.redis_timeout()).await?;
    let letter = dead::requeue(&mut conn, job_id, cfg.common.result_ttl).await?;
    println!("job {job_id} requeued on model {}", letter.job.model);
    Ok(())
}
