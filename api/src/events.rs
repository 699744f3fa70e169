//! Background tasks fed by the workers through Redis:
//! - the notifier: one pub/sub subscription per API process turns "job finished" messages into
//!   a broadcast that `?wait` requests listen to (no polling anywhere);
//! - the recorder: a consumer group on the results stream persists every finished job into the
//!   database once, however many times (or whether) it is ever read.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use shared::queue::{producer, results, FinishedJob};
use shared::redis_util::backoff;

use crate::db::Finished;
use crate::prom;
use crate::state::AppState;

/// The broadcast message that tells every waiter to re-read its job (after a reconnect).
pub const RECHECK_ALL: &str = "*";

/// How long the recorder's XREADGROUP blocks waiting for new results.
const RECORD_BLOCK: Duration = Duration::from_secs(2);

/// Subscribes to job events until shutdown, reconnecting with backoff.
pub async fn run_notifier(state: AppState, shutdown: CancellationToken) {
    let mut attempt = 0u32;
    while !shutdown.is_cancelled() {
        let res =
            results::subscribe_events(&state.cfg.common.redis_url, Duration::from_secs(3)).await;
        let mut pubsub = match res {
            Ok(p) => p,
            Err(e) => {
                let wait = backoff(attempt, Duration::from_millis(200), Duration::from_secs(5));
                attempt += 1;
                warn!(error = %e, "job event subscription failed; retrying");
                tokio::select! { _ = tokio::time::sleep(wait) => continue, _ = shutdown.cancelled() => return }
            }
        };
        attempt = 0;
        // Events may have been missed while disconnected: let every waiter re-check.
        let _ = state.events.send(Arc::from(RECHECK_ALL));
        let mut stream = pubsub.on_message();
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(m) => {
                        if let Ok(id) = m.get_payload::<String>() {
                            let _ = state.events.send(Arc::from(id.as_str()));
                        }
                    }
                    None => break,
                },
                _ = shutdown.cancelled() => return,
            }
        }
        warn!("job event subscription lost; reconnecting");
    }
}

/// Persists finished jobs from the results stream until shutdown.
pub async fn run_recorder(state: AppState, consumer: String, shutdown: CancellationToken) {
    let mut failures = 0u32;
    // A connection of its own: the blocking XREADGROUP below would otherwise stall every
    // request's commands on the shared multiplexed connection (and time them out).
    let mut own: Option<ConnectionManager> = None;
    while !shutdown.is_cancelled() {
        let step = async {
            let conn = match &own {
                Some(c) => c.clone(),
                None => {
                    let timeout = state.cfg.common.redis_timeout() + RECORD_BLOCK;
                    let c = tokio::time::timeout(
                        timeout,
                        shared::redis_util::connect(&state.cfg.common.redis_url, timeout),
                    )
                    .await
                    .map_err(|_| anyhow::anyhow!("connecting to Redis timed out"))??;
                    own = Some(c.clone());
                    c
                }
            };
            record_batch(&state, conn, &consumer).await
        };
        let res = tokio::select! { r = step => r, _ = shutdown.cancelled() => return };
        match res {
            Ok(_) => failures = 0,
            Err(e) => {
                let wait = backoff(failures, Duration::from_millis(200), Duration::from_secs(5));
                failures += 1;
                warn!(error = %e, "recording results failed; retrying");
                tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = shutdown.cancelled() => return }
            }
        }
    }
}

/// One round of the results stream: persist each finished job, then acknowledge it.
async fn record_batch(
    state: &AppState,
    mut conn: ConnectionManager,
    consumer: &str,
) -> anyhow::Result<usize> {
    let entries = results::read(&mut conn, consumer, RECORD_BLOCK).await?;
    let n = entries.len();
    for entry in entries {
        match &entry.finished {
            Some(f) => {
                persist(state, f).await?;
                record_wait(state, &mut conn, f).await;
            }
            None => warn!(entry = %entry.id, "unreadable results entry dropped"),
        }
        results::ack(&mut conn, &[&entry.id]).await?;
    }
    Ok(n)
}

async fn persist(state: &AppState, f: &FinishedJob) -> anyhow::Result<()> {
    let row = Finished {
        job_id: &f.job_id,
        status: f.status,
        result: f.result.as_ref(),
        error: f.error.as_deref().filter(|e| !e.is_empty()),
        thumbnail: Some(f.thumb.as_slice()).filter(|t| !t.is_empty()),
        finished_ms: f.finished_ms,
        cached: false,
    };
    let recorded = state
        .db_call(state.db.finish_prediction(&row))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    metrics::counter!(prom::JOBS_FINISHED, "outcome" => f.status.as_str()).increment(1);
    if !recorded {
        info!(job = %f.job_id, "finished job has no history row (owner deleted); skipped");
    }
    Ok(())
}

/// Records how long a finished job waited in its queue (accepted to started) and its
/// turnaround (accepted to finished), from the times its record in Redis holds. Each finished
/// job is recorded by one API process (the results consumer group), so the histograms of all
/// replicas add up. A record already gone (or lacking the times) is skipped.
async fn record_wait(state: &AppState, conn: &mut ConnectionManager, f: &FinishedJob) {
    let (model, created, started) = match producer::job_times(conn, &f.job_id).await {
        Ok(t) => (t.model, t.created_ms, t.started_ms),
        Err(e) => {
            warn!(job = %f.job_id, error = %e, "cannot read the job's times for the metrics");
            return;
        }
    };
    let (Some(model), Some(created)) = (model, created) else {
        return;
    };
    let model = model_label(state, &model);
    if let Some(started) = started {
        let wait = (started - created).max(0) as f64 / 1e3;
        metrics::histogram!(prom::QUEUE_WAIT, "model" => model.clone()).record(wait);
    }
    let turnaround = (f.finished_ms - created).max(0) as f64 / 1e3;
    metrics::histogram!(prom::JOB_TURNAROUND, "model" => model).record(turnaround);
}

/// A model name as a label: a registry name, anything else `other` (bounded either way).
fn model_label(state: &AppState, model: &str) -> String {
    if state.registry.get(model).is_ok() {
        model.to_owned()
    } else {
        "other".to_owned()
    }
}
