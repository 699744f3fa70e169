//! The heartbeat: every `HEARTBEAT_INTERVAL` the worker retires wedged inference sessions (and
//! stops when a model has none left), re-divides its machine's CPUs when its budget is shared
//! (see [`crate::budget`]), and publishes its [`WorkerInfo`] (sessions and budget included).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use shared::job::{SessionHealth, WorkerInfo};
use shared::queue::{workers, Consumer};
use shared::time_util::now_ms;

use crate::config::CpuBudget;
use crate::{budget, Worker};

/// Beats until `stop`; cancels `stop` itself when a model has no working session left.
pub(crate) async fn run(
    worker: Arc<Worker>,
    mut queue: Consumer,
    budget: CpuBudget,
    stop: CancellationToken,
) {
    let every = worker
        .cfg
        .heartbeat_interval
        .max(Duration::from_millis(100));
    let fresh_for = workers::fresh_for(every);
    let machine_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut info = first_info(&worker, budget);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = stop.cancelled() => return,
        }
        let dead = sweep_sessions(&worker, &mut info);
        if !budget.owned {
            redivide(&worker, &mut queue, &mut info, fresh_for, machine_cpus).await;
        }
        let stats = &worker.stats;
        info.last_seen_ms = now_ms();
        info.jobs_done = stats.done.load(Ordering::Relaxed);
        info.jobs_failed = stats.failed.load(Ordering::Relaxed);
        info.busy = stats.busy.load(Ordering::Relaxed);
        if let Err(e) = workers::heartbeat(&mut queue.conn, &info, fresh_for).await {
            warn!(error = %e, "heartbeat failed");
        }
        if !dead.is_empty() {
            error!(models = ?dead, "no working inference session left; stopping the worker");
            stop.cancel();
            return;
        }
    }
}

/// The heartbeat as the worker starts.
fn first_info(worker: &Worker, budget: CpuBudget) -> WorkerInfo {
    WorkerInfo {
        id: worker.id.clone(),
        host: workers::hostname(),
        models: worker.model_names.clone(),
        version: shared::VERSION.to_owned(),
        started_ms: now_ms(),
        last_seen_ms: now_ms(),
        machine: budget::machine_id(),
        cpus: budget.permits as u32,
        cpus_owned: budget.owned,
        ..WorkerInfo::default()
    }
}

/// Retires the sessions whose run outlived `JOB_TIMEOUT`, records each model's session
/// counts in `info`, and returns the models left without a working session.
fn sweep_sessions(worker: &Worker, info: &mut WorkerInfo) -> Vec<String> {
    let mut dead = Vec::new();
    for name in &worker.model_names {
        let Some(model) = worker.models.get(name) else {
            continue;
        };
        let retired = model.retire_stuck(worker.cfg.job_timeout);
        if retired > 0 {
            error!(model = %name, retired, "an inference session never returned; retired it");
        }
        let counts = model.sessions();
        if counts.healthy == 0 {
            dead.push(name.clone());
        }
        let health = SessionHealth {
            healthy: counts.healthy,
            retired: counts.retired,
        };
        info.sessions.insert(name.clone(), health);
    }
    dead
}

/// Takes this worker's share of its machine's `machine_cpus` among the live workers there, and
/// hands a changed share to every model's sessions.
async fn redivide(
    worker: &Worker,
    queue: &mut Consumer,
    info: &mut WorkerInfo,
    fresh_for: Duration,
    machine_cpus: usize,
) {
    let stale = fresh_for.as_millis() as i64;
    let live = match workers::live(&mut queue.conn, now_ms(), stale).await {
        Ok(live) => live,
        Err(e) => {
            warn!(error = %e, "cannot read the other workers' heartbeats");
            return;
        }
    };
    let share = budget::share(machine_cpus, info, &live);
    if share == info.cpus as usize {
        return;
    }
    info!(
        cpus = share,
        was = info.cpus,
        "this machine's CPUs re-divided among its workers"
    );
    info.cpus = share as u32;
    worker.stats.cpus.store(share, Ordering::Relaxed);
    for m in worker.models.values() {
        m.set_cpus(share);
    }
}
