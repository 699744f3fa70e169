//! The worker: loads each model once, then pops jobs from the per-model Redis streams,
//! classifies them off the async runtime and writes the outcome back exactly once.
//!
//! Reliability: a job stays in the stream's pending list until it is finished, so a worker
//! killed mid-job loses nothing: any live worker reclaims entries idle longer than the
//! visibility timeout. Bad images fail their own job; panics and timeouts are retried up to
//! `MAX_ATTEMPTS` and then dead-lettered.

pub mod bench;
pub mod config;
pub mod dead;
pub mod health;
pub mod metrics;
pub mod model;
pub mod models_cmd;
pub mod preprocess;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fast_image_resize::Resizer;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

use shared::job::WorkerInfo;
use shared::queue::{
    workers, Consumer, DeadLetter, Delivery, Outcome, QueuedJob, Recorded, Started,
};
use shared::redis_util::backoff;
use shared::time_util::now_ms;

use crate::config::WorkerConfig;
use crate::model::{Classifier, ClassifyError, Model, Upload};

/// Counters shown in heartbeats.
#[derive(Default)]
pub struct Stats {
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub busy: AtomicU32,
}

/// How one delivery ended, for logs and tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    Done,
    Failed,
    Retried,
    DeadLettered,
    /// Already finished elsewhere, expired, or unreadable.
    Skipped,
}

/// Loaded models by name.
pub type Models = HashMap<String, Arc<Model>>;

/// Loaded models plus everything needed to run jobs.
pub struct Worker {
    pub cfg: WorkerConfig,
    pub id: String,
    /// The classifiers by model name (ONNX models when serving, fakes in tests).
    pub models: HashMap<String, Arc<dyn Classifier>>,
    pub model_names: Vec<String>,
    pub stats: Arc<Stats>,
}

/// Loads the runtime and every configured model (blocking work, done once).
pub fn load_models(cfg: &WorkerConfig) -> anyhow::Result<(Vec<String>, Models)> {
    let registry = cfg.common.registry()?;
    let listed = cfg.listed_models();
    let names = if listed.is_empty() {
        let present = registry.present(cfg.common.models_dir());
        anyhow::ensure!(
            !present.is_empty(),
            "no model file found in {}: run `make model` or set MODELS_DIR (and MODELS) to models you have",
            cfg.common.models_dir().display()
        );
        present
    } else {
        listed
    };
    info!("{}", cfg.serving_summary(&names));
    // Check every file first so a missing one is reported before the slow loads.
    for name in &names {
        registry.model_path(name, cfg.common.models_dir())?;
    }
    let env = model::init_runtime(cfg.ort_dylib_path.as_deref())?;
    let mut models = HashMap::new();
    for name in &names {
        let started = Instant::now();
        let m = Model::load(
            &env,
            &registry,
            &cfg.common.registry_dir(),
            name,
            cfg.common.models_dir(),
            cfg.threads(),
            cfg.ort_spin,
        )?;
        info!(model = %name, threads = cfg.threads(), ms = started.elapsed().as_millis() as u64, "model loaded");
        models.insert(name.clone(), Arc::new(m));
    }
    Ok((names, models))
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
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
    /// Connects (retrying with backoff until shutdown) and processes jobs.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Some(mut queue) = self.connect(&shutdown).await else {
            return Ok(());
        };
        info!(worker = %self.id, models = ?self.model_names, "worker ready");
        // Its own connection: the main loop's blocking XREADGROUP would delay it otherwise.
        let mut beat_queue = queue.clone();
        if let Ok(c) =
            shared::redis_util::connect(&self.cfg.common.redis_url, self.cfg.common.redis_timeout())
                .await
        {
            beat_queue.conn = c;
        }
        let heartbeat = tokio::spawn(heartbeat_loop(
            beat_queue,
            self.info(),
            self.stats.clone(),
            self.cfg.heartbeat_interval.max(Duration::from_secs(1)),
            shutdown.clone(),
        ));

        // Several consumers (each with its own connection, since a blocking read stalls a
        // multiplexed one): while one job holds the session, the next is fetched and decoded.
        let mut queues = vec![queue.clone()];
        for _ in 1..self.cfg.concurrency.max(1) {
            let mut q = queue.clone();
            if let Ok(c) = shared::redis_util::connect(
                &self.cfg.common.redis_url,
                self.cfg.common.redis_timeout(),
            )
            .await
            {
                q.conn = c;
            }
            queues.push(q);
        }
        futures::future::join_all(
            queues
                .iter_mut()
                .enumerate()
                .map(|(i, q)| self.consume(q, &shutdown, i == 0)),
        )
        .await;

        self.hand_back(&mut queue).await;
        heartbeat.abort();
        if let Err(e) = workers::deregister(&mut queue.conn, &self.id).await {
            warn!(error = %e, "could not remove the heartbeat");
        }
        info!(worker = %self.id, "worker stopped");
        Ok(())
    }

    /// One consumer loop: reclaim orphans (primary loop only), read, handle, back off on errors.
    async fn consume(&self, queue: &mut Consumer, shutdown: &CancellationToken, primary: bool) {
        let reclaim_every = (self.cfg.visibility_timeout / 2).max(Duration::from_secs(1));
        let mut next_reclaim = Instant::now();
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let step = async {
                let mut batch = Vec::new();
                if primary && Instant::now() >= next_reclaim {
                    for m in &self.model_names {
                        batch.extend(
                            queue
                                .reclaim(m, self.cfg.visibility_timeout.as_millis() as u64, 16)
                                .await?,
                        );
                    }
                    next_reclaim = Instant::now() + reclaim_every;
                }
                if batch.is_empty() {
                    batch = queue.read(&self.model_names, 1, 1000).await?;
                }
                Ok::<_, redis::RedisError>(batch)
            };
            let batch = tokio::select! {
                r = step => r,
                _ = shutdown.cancelled() => break,
            };
            match batch {
                Ok(batch) => {
                    failures = 0;
                    for d in batch {
                        if let Err(e) = self.handle_with_grace(queue, d, shutdown).await {
                            warn!(error = %e, "redis error while finishing a job; it stays pending and will be retried");
                        }
                    }
                }
                Err(e) => {
                    let wait =
                        backoff(failures, Duration::from_millis(100), Duration::from_secs(5));
                    failures = failures.saturating_add(1);
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "redis unavailable");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {},
                        _ = shutdown.cancelled() => break,
                    }
                    if let Err(e) = queue.ensure_groups(&self.model_names).await {
                        warn!(error = %e, "cannot (re)create consumer groups yet");
                    }
                }
            }
        }
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
                    result_ttl: self.cfg.common.result_ttl.as_secs(),
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

    fn info(&self) -> WorkerInfo {
        WorkerInfo {
            id: self.id.clone(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default(),
            models: self.model_names.clone(),
            version: shared::VERSION.to_owned(),
            started_ms: now_ms(),
            last_seen_ms: now_ms(),
            jobs_done: 0,
            jobs_failed: 0,
            busy: 0,
        }
    }

    /// Processes one delivery; after a shutdown signal, gives it `SHUTDOWN_GRACE` seconds to
    /// finish and otherwise hands it back to the queue for another worker.
    async fn handle_with_grace(
        &self,
        queue: &mut Consumer,
        d: Delivery,
        shutdown: &CancellationToken,
    ) -> redis::RedisResult<Handled> {
        let grace = self.cfg.shutdown_grace;
        let mut q = queue.clone();
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        let d2 = d.clone();
        tokio::select! {
            r = self.handle(&mut q, d) => r,
            _ = deadline => {
                if let Some(job) = &d2.job {
                    warn!(job = %job.job_id, "shutdown grace passed; handing the job back");
                    let _ = queue.requeue(&d2, job, "worker shut down mid-job").await?;
                }
                Ok(Handled::Skipped)
            }
        }
    }

    /// The core of the worker: one delivery from start to its recorded outcome.
    pub async fn handle(&self, queue: &mut Consumer, d: Delivery) -> redis::RedisResult<Handled> {
        let Some(job) = d.job.clone() else {
            warn!(entry = %d.entry_id, "unreadable queue entry dropped");
            queue.drop_entry(&d).await?;
            return Ok(Handled::Skipped);
        };
        let span = tracing::info_span!("job", job = %job.job_id, model = %job.model);
        async move {
            let attempt = match queue.start(&d, &job.job_id).await? {
                Started::Gone => return Ok(Handled::Skipped),
                Started::Attempt(n) => n,
            };
            metrics::queue_wait(&job.model, job.enqueued_ms);
            let max = self.cfg.max_attempts.max(1);
            if attempt > max {
                let last = queue
                    .last_error(&job.job_id)
                    .await?
                    .unwrap_or_else(|| "the worker holding it stopped responding".to_owned());
                let outcome = dead_letter(&job, attempt - 1, &last);
                return self.give_up(queue, &d, &job, outcome).await;
            }
            let Some(model) = self.models.get(&job.model).cloned() else {
                let why = format!("no worker here serves model {}", job.model);
                return self.give_up(queue, &d, &job, failed(&why)).await;
            };
            let Some(bytes) = queue.image(&job.sha256).await? else {
                let why = "the image expired before a worker got to it; upload it again";
                return self.give_up(queue, &d, &job, failed(why)).await;
            };
            self.stats.busy.fetch_add(1, Ordering::Relaxed);
            let outcome = self.classify(model, bytes, job.top_k).await;
            self.stats.busy.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Ok(classified) => {
                    let (ms, top) = (
                        classified.result.elapsed_ms,
                        classified
                            .result
                            .predictions
                            .first()
                            .map(|p| p.label.clone())
                            .unwrap_or_default(),
                    );
                    let outcome = Outcome::Done {
                        result: classified.result,
                        thumb: classified.thumbnail,
                    };
                    if queue.finish(&d, &job, outcome).await? == Recorded::First {
                        self.stats.done.fetch_add(1, Ordering::Relaxed);
                        info!(ms, top = %top, "job done");
                    }
                    Ok(Handled::Done)
                }
                Err(JobError::Permanent(msg)) => self.give_up(queue, &d, &job, failed(&msg)).await,
                Err(JobError::Retriable(msg)) if attempt >= max => {
                    let outcome = dead_letter(&job, attempt, &msg);
                    self.give_up(queue, &d, &job, outcome).await
                }
                Err(JobError::Retriable(msg)) => {
                    warn!(attempt, reason = %msg, "job attempt failed; requeued");
                    let _ = queue.requeue(&d, &job, &msg).await?;
                    Ok(Handled::Retried)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Records the outcome of a job that will not run again (failed or dead-lettered) and
    /// counts it, once: a redelivery that finds the job already finished is neither counted
    /// nor logged again.
    async fn give_up(
        &self,
        queue: &mut Consumer,
        d: &Delivery,
        job: &QueuedJob,
        (handled, outcome): (Handled, Outcome),
    ) -> redis::RedisResult<Handled> {
        let reason = match &outcome {
            Outcome::Failed { error } | Outcome::DeadLettered { error, .. } => error.clone(),
            Outcome::Done { .. } => String::new(),
        };
        if queue.finish(d, job, outcome).await? == Recorded::First {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            if handled == Handled::DeadLettered {
                error!(%reason, "job dead-lettered");
            } else {
                info!(%reason, "job failed");
            }
        }
        Ok(handled)
    }

    /// Decode + preprocess + inference on the blocking pool, bounded by `JOB_TIMEOUT`,
    /// with panics caught and turned into a retriable error.
    async fn classify(
        &self,
        model: Arc<dyn Classifier>,
        bytes: Vec<u8>,
        top_k: usize,
    ) -> Result<model::Classified, JobError> {
        let limits = self.cfg.common.decode_limits();
        let inject = self.cfg.fault_injection;
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            let _guard = span.enter();
            if inject {
                let has = |tag: &[u8]| bytes.windows(tag.len()).any(|w| w == tag);
                if has(b"#panic") {
                    panic!("injected decoder panic");
                }
                if has(b"#hang") {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            let upload = Upload {
                bytes: &bytes,
                top_k,
                limits,
            };
            model.classify(upload, &mut Resizer::new())
        });
        match tokio::time::timeout(self.cfg.job_timeout, task).await {
            Ok(Ok(Ok(c))) => Ok(c),
            Ok(Ok(Err(ClassifyError::Image(e)))) => Err(JobError::Permanent(e.to_string())),
            Ok(Ok(Err(e @ ClassifyError::Inference(_)))) => Err(JobError::Retriable(e.to_string())),
            Ok(Err(join)) => Err(JobError::Retriable(format!(
                "the decoder crashed: {}",
                panic_message(join)
            ))),
            Err(_) => Err(JobError::Retriable(format!(
                "processing took longer than {} s",
                self.cfg.job_timeout.as_secs_f64()
            ))),
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

/// A job attempt's failure, split by whether trying again can help.
enum JobError {
    Permanent(String),
    Retriable(String),
}

/// A job that failed for good (its upload's fault, or no model for it).
fn failed(reason: &str) -> (Handled, Outcome) {
    let error = reason.to_owned();
    (Handled::Failed, Outcome::Failed { error })
}

/// A job that failed its last allowed attempt: its letter for the dead-letter hash.
fn dead_letter(job: &QueuedJob, attempts: u32, reason: &str) -> (Handled, Outcome) {
    let outcome = Outcome::DeadLettered {
        error: format!("gave up after {attempts} attempts: {reason}"),
        letter: DeadLetter {
            reason: reason.to_owned(),
            attempts,
            model: job.model.clone(),
            at_ms: now_ms(),
            job: job.clone(),
        },
    };
    (Handled::DeadLettered, outcome)
}

fn panic_message(err: tokio::task::JoinError) -> String {
    if !err.is_panic() {
        return err.to_string();
    }
    let payload = err.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

async fn heartbeat_loop(
    mut queue: Consumer,
    mut info: WorkerInfo,
    stats: Arc<Stats>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let ttl = (every.as_secs() * 3).max(3);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = shutdown.cancelled() => return,
        }
        info.last_seen_ms = now_ms();
        info.jobs_done = stats.done.load(Ordering::Relaxed);
        info.jobs_failed = stats.failed.load(Ordering::Relaxed);
        info.busy = stats.busy.load(Ordering::Relaxed);
        if let Err(e) = workers::heartbeat(&mut queue.conn, &info, ttl).await {
            warn!(error = %e, "heartbeat failed");
        }
    }
}
