//! `worker health`: the container health check and Kubernetes liveness probe of a worker.
//!
//! A serving worker writes a heartbeat to Redis every `HEARTBEAT_INTERVAL`
//! (`shared::queue::workers`). This command finds the heartbeat of the worker it stands beside
//! (the one named by `WORKER_ID`, else the ones whose `host` is this machine's hostname: a
//! container or a pod runs one worker) and succeeds only when it is fresh. It never touches the
//! queues, so it is cheap enough to run every few seconds.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use redis::AsyncCommands;

use shared::config::duration_secs;
use shared::job::WorkerInfo;
use shared::queue::{keys, workers};
use shared::time_util::now_ms;

use crate::config::WorkerConfig;

/// Options of `worker health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Heartbeat age beyond which the worker counts as unhealthy (bare number: seconds;
    /// default: three heartbeat intervals, at least 3 s).
    #[arg(long, env = "HEALTH_MAX_AGE", value_parser = duration_secs)]
    pub max_age: Option<Duration>,
    /// Whose heartbeat to check when `WORKER_ID` is not set (default: this machine's hostname).
    #[arg(long)]
    pub host: Option<String>,
}

/// The age limit `worker health` applies: `--max-age`, else the one freshness rule
/// ([`workers::fresh_for`] the heartbeat interval), the span after which the heartbeat key
/// expires by itself.
pub fn max_age(cfg: &WorkerConfig, args: &HealthArgs) -> Duration {
    args.max_age
        .unwrap_or_else(|| workers::fresh_for(cfg.heartbeat_interval))
}

/// Checks the heartbeat; `Ok` holds the line to print, `Err` the reason it is unhealthy.
pub async fn check(cfg: &WorkerConfig, args: &HealthArgs) -> anyhow::Result<String> {
    let limit = max_age(cfg, args);
    let mut conn = shared::redis_util::connect(&cfg.common.redis_url, cfg.common.redis_timeout())
        .await
        .with_context(|| format!("cannot reach Redis at {}", cfg.common.redis_url))?;
    let host = args.host.clone().unwrap_or_else(workers::hostname);
    let whose = match &cfg.worker_id {
        Some(id) => format!("worker {id}"),
        None => format!("a worker on host {host}"),
    };
    let newest = newest_heartbeat(&mut conn, cfg.worker_id.as_deref(), &host).await?;
    let Some(info) = newest else {
        bail!(
            "no heartbeat from {whose} in Redis (not started yet, stopped, or cut off from Redis \
             for longer than the heartbeat's lifetime)"
        );
    };
    let age = Duration::from_millis(u64::try_from(now_ms() - info.last_seen_ms).unwrap_or(0));
    if age > limit {
        bail!(
            "the heartbeat of worker {} is {:.1} s old (limit {:.1} s): it is stuck or cannot \
             reach Redis",
            info.id,
            age.as_secs_f64(),
            limit.as_secs_f64()
        );
    }
    Ok(format!(
        "worker {} healthy: heartbeat {:.1} s old (limit {:.1} s), serving {}, {} done, {} busy",
        info.id,
        age.as_secs_f64(),
        limit.as_secs_f64(),
        info.models.join(", "),
        info.jobs_done,
        info.busy
    ))
}

/// The newest heartbeat of worker `wanted`, or, without one, of the workers on `host`.
async fn newest_heartbeat(
    conn: &mut redis::aio::ConnectionManager,
    wanted: Option<&str>,
    host: &str,
) -> anyhow::Result<Option<WorkerInfo>> {
    let ids: Vec<String> = match wanted {
        Some(id) => vec![id.to_owned()],
        None => conn
            .zrange(keys::WORKERS, 0, -1)
            .await
            .context("cannot read the worker list from Redis")?,
    };
    let mut newest: Option<WorkerInfo> = None;
    for id in ids {
        let raw: Option<String> = conn
            .get(keys::worker(&id))
            .await
            .context("cannot read a heartbeat from Redis")?;
        let Some(info) = raw.and_then(|r| serde_json::from_str::<WorkerInfo>(&r).ok()) else {
            continue;
        };
        if wanted.is_none() && info.host != host {
            continue;
        }
        if newest
            .as_ref()
            .is_none_or(|n| info.last_seen_ms > n.last_seen_ms)
        {
            newest = Some(info);
        }
    }
    Ok(newest)
}

/// `worker health`: prints the verdict; an unhealthy worker is an error (exit status 1).
pub async fn run(cfg: &WorkerConfig, args: &HealthArgs) -> anyhow::Result<()> {
    let line = check(cfg, args).await?;
    println!("{line}");
    Ok(())
}
