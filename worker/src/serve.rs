//! Serving: connect to Redis (with backoff), read jobs as capacity frees up, run each in a
//! task of its own, beat, and at shutdown hand back what is still held.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use shared::queue::{workers, Consumer, Delivery};
use shared::redis_util::backoff;

use crate::config::WorkerConfig;
use crate::finish::Finisher;
use crate::model::Classifier;
use crate::{heartbeat, load_models, metrics, Worker};

/// When orphaned deliveries are next looked for.
struct Reclaim {
    every: Duration,
    next: Instant,
}

fn default_worker_id() -> String {
    let host = Some(workers::hostname())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Runs the worker until `shutdown` is cancelled, then hands back what it holds and exits.
pub async fn serve(cfg: WorkerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let load_cfg = cfg.clone();
    let (names, models) = tokio::task::spawn_blocking(move || load_models(&load_cfg))
        .await
        .context("model loading panicked")??;
    let id = cfg.worker_id.clone().unwrap_or_else(default_worker_id);
    if let Some(bind) = cfg.metrics_bind {
        let (addr, _) = metrics::serve(bind, shutdown.clone()).await?;
        info!(%addr, "metrics at http://{addr}/metrics");
    }
    let worker = Worker {
        cfg,
        id,
        models: models
            .into_iter()
            .map(|(name, m)| (name, m as Arc<dyn Classifier>))
            .collect(),
        model_names: names,
        stats: Arc::default(),
    };
    worker.run(shutdown).await
}

impl Worker {
    /// Connects (retrying with backoff until shutdown) and processes jobs. Ends with an error
    /// when a model has no working session left (so the supervisor restarts the process).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Some(mut queue) = self.connect(&shutdown).await else {
            return Ok(());
        };
        let this = Arc::new(self);
        let budget = this.cfg.budget();
        this.stats.cpus.store(budget.permits, Ordering::Relaxed);
        info!(worker = %this.id, models = ?this.model_names, cpus = budget.permits,
            owned = budget.owned, "worker ready");
        // Consuming stops at shutdown or when a model has no session left.
        let stop = shutdown.child_token();
        // Own connections: the reader's blocking XREADGROUP would stall a shared one.
        let beat_queue = this.own_connection(&queue).await;
        let heartbeat = tokio::spawn(heartbeat::run(
            this.clone(),
            beat_queue,
            budget,
            stop.clone(),
        ));
        let work = this.own_connection(&queue).await;
        this.consume(&mut queue, work, &stop).await;

        this.hand_back(&mut queue).await;
        heartbeat.abort();
        if let Err(e) = workers::deregister(&mut queue.conn, &this.id).await {
            warn!(error = %e, "could not remove the heartbeat");
        }
        info!(worker = %this.id, "worker stopped");
        let dead = this.models_without_sessions();
        if dead.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "no working inference session left for model {}: exiting so the supervisor restarts the worker",
                dead.join(", ")
            ))
        }
    }

    /// Served models whose every session was retired.
    fn models_without_sessions(&self) -> Vec<String> {
        self.model_names
            .iter()
            .filter(|n| {
                self.models
                    .get(*n)
                    .is_some_and(|m| m.sessions().healthy == 0)
            })
            .cloned()
            .collect()
    }

    /// A copy of `queue` on a connection of its own (the shared one if connecting fails).
    async fn own_connection(&self, queue: &Consumer) -> Consumer {
        let mut q = queue.clone();
        if let Ok(c) =
            shared::redis_util::connect(&self.cfg.common.redis_url, self.cfg.common.redis_timeout())
                .await
        {
            q.conn = c;
        }
        q
    }

    /// Jobs in hand at most, for the CPU permits the worker has now.
    fn capacity(&self) -> usize {
        let cpus = match self.stats.cpus.load(Ordering::Relaxed) {
            0 => self.cfg.budget().permits,
            n => n,
        };
        self.cfg.capacity(cpus)
    }

    /// The reader: reclaims orphans now and then, reads as many jobs as there is free
    /// capacity (one `XREADGROUP COUNT n`), runs each in a task of its own on `work`'s
    /// connection, and finishes outcomes that are ready together in one script call. Waits
    /// for the jobs in hand before returning.
    async fn consume(
        self: &Arc<Self>,
        queue: &mut Consumer,
        work: Consumer,
        stop: &CancellationToken,
    ) {
        let mut reclaim = Reclaim {
            every: (self.cfg.visibility_timeout / 2).max(Duration::from_secs(1)),
            next: Instant::now(),
        };
        let mut failures = 0u32;
        let (finisher, finishing) = Finisher::start(work.clone());
        let mut tasks = JoinSet::new();
        while !stop.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            if !self.models_without_sessions().is_empty() {
                stop.cancel();
                break;
            }
            let free = self.capacity().saturating_sub(tasks.len());
            if free == 0 {
                tokio::select! {
                    _ = tasks.join_next() => {},
                    _ = stop.cancelled() => break,
                }
                continue;
            }
            let batch = tokio::select! {
                r = self.next_batch(queue, free, &mut reclaim) => r,
                _ = stop.cancelled() => break,
            };
            match batch {
                Ok(batch) => {
                    failures = 0;
                    for d in batch {
                        let (this, mut q, stop, fin) =
                            (self.clone(), work.clone(), stop.clone(), finisher.clone());
                        tasks.spawn(async move {
                            if let Err(e) = this.handle_with_grace(&mut q, d, &stop, Some(&fin)).await {
                                warn!(error = %e, "redis error while finishing a job; it stays pending and will be retried");
                            }
                        });
                    }
                }
                Err(e) => {
                    if !self.wait_for_redis(queue, e, &mut failures, stop).await {
                        break;
                    }
                }
            }
        }
        // Each job in hand gets its shutdown grace, then is handed back.
        while tasks.join_next().await.is_some() {}
        drop(finisher);
        let _ = finishing.await;
    }

    /// Up to `free` deliveries: orphans idle past the visibility timeout when a reclaim is due,
    /// else new jobs (waiting up to a second for one).
    async fn next_batch(
        &self,
        queue: &mut Consumer,
        free: usize,
        reclaim: &mut Reclaim,
    ) -> redis::RedisResult<Vec<Delivery>> {
        let mut batch = Vec::new();
        if Instant::now() >= reclaim.next {
            let min_idle = self.cfg.visibility_timeout.as_millis() as u64;
            for m in &self.model_names {
                let want = free - batch.len();
                if want == 0 {
                    break;
                }
                batch.extend(queue.reclaim(m, min_idle, want).await?);
            }
            reclaim.next = Instant::now() + reclaim.every;
        }
        if batch.is_empty() {
            batch = queue.read(&self.model_names, free, 1000).await?;
        }
        Ok(batch)
    }

    /// After a failed read: waits with backoff, then recreates the consumer groups (Redis may
    /// have restarted empty). False when `stop` came first.
    async fn wait_for_redis(
        &self,
        queue: &mut Consumer,
        e: redis::RedisError,
        failures: &mut u32,
        stop: &CancellationToken,
    ) -> bool {
        let wait = backoff(
            *failures,
            Duration::from_millis(100),
            Duration::from_secs(5),
        );
        *failures = failures.saturating_add(1);
        warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "redis unavailable");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {},
            _ = stop.cancelled() => return false,
        }
        if let Err(e) = queue.ensure_groups(&self.model_names).await {
            warn!(error = %e, "cannot (re)create consumer groups yet");
        }
        true
    }

    async fn connect(&self, shutdown: &CancellationToken) -> Option<Consumer> {
        let mut attempt = 0;
        loop {
            let res = async {
                let conn = shared::redis_util::connect(
                    &self.cfg.common.redis_url,
                    self.cfg.common.redis_timeout(),
                )
                .await?;
                let mut q = Consumer {
                    conn,
                    name: self.id.clone(),
                    result_ttl: self.cfg.common.result_ttl,
                };
                q.ensure_groups(&self.model_names).await?;
                Ok::<_, redis::RedisError>(q)
            }
            .await;
            match res {
                Ok(q) => return Some(q),
                Err(e) => {
                    let wait = backoff(attempt, Duration::from_millis(200), Duration::from_secs(5));
                    attempt += 1;
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot reach redis");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {},
                        _ = shutdown.cancelled() => return None,
                    }
                }
            }
        }
    }

    /// Requeues whatever this consumer still holds (called at shutdown).
    async fn hand_back(&self, queue: &mut Consumer) {
        for m in &self.model_names {
            match queue.own_pending(m).await {
                Ok(held) => {
                    for d in held {
                        if let Some(job) = &d.job {
                            match queue.requeue(&d, job, "worker shut down").await {
                                Ok(_) => info!(job = %job.job_id, "handed back to the queue"),
                                Err(e) => {
                                    warn!(error = %e, "could not hand a job back; it will be reclaimed")
                                }
                            }
                        }
                    }
                }
                Err(e) => warn!(error = %e, "could not list held jobs; they will be reclaimed"),
            }
        }
    }
}
