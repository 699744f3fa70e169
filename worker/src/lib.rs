//! The worker: loads each model once, then pops jobs from the per-model Redis streams,
//! classifies them off the async runtime and writes the outcome back exactly once.
//!
//! Jobs are read in batches (`XREADGROUP COUNT` = free capacity) and run concurrently, one
//! task each, on the model's [`executor`]; outcomes that are ready together are finished in
//! one script call. Every guarantee holds per job.
//!
//! Reliability: a job stays in the stream's pending list until it is finished, so a worker
//! killed mid-job loses nothing: any live worker reclaims entries idle longer than the
//! visibility timeout. Bad images fail their own job; panics and timeouts are retried up to
//! `MAX_ATTEMPTS` and then dead-lettered.

pub mod budget;
pub mod config;
pub mod dead;
pub mod executor;
pub mod health;
pub mod metrics;
pub mod model;
pub mod preprocess;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fast_image_resize::Resizer;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

use shared::job::WorkerInfo;
use shared::queue::{
    workers, Consumer, DeadLetter, Delivery, Finish, Outcome, QueuedJob, Recorded, Started,
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
    /// CPU permits now (0: not set yet, the configured budget applies).
    pub cpus: AtomicUsize,
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
            cfg.layout(),
        )?;
        let layout = cfg.layout();
        info!(model = %name, sessions = layout.narrow, wide_threads = layout.wide_threads,
            cpus = layout.permits, spin = layout.spin, ms = started.elapsed().as_millis() as u64, "model loaded");
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
        let heartbeat = tokio::spawn(heartbeat_loop(
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
        let reclaim_every = (self.cfg.visibility_timeout / 2).max(Duration::from_secs(1));
        let mut next_reclaim = Instant::now();
        let mut failures = 0u32;
        let (tx, finish_rx) = mpsc::unbounded_channel();
        let finish_tx = Finisher(tx);
        let finisher = tokio::spawn(finisher_loop(work.clone(), finish_rx));
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
            let step = async {
                let mut batch = Vec::new();
                if Instant::now() >= next_reclaim {
                    for m in &self.model_names {
                        let want = free - batch.len();
                        if want == 0 {
                            break;
                        }
                        let min_idle = self.cfg.visibility_timeout.as_millis() as u64;
                        batch.extend(queue.reclaim(m, min_idle, want).await?);
                    }
                    next_reclaim = Instant::now() + reclaim_every;
                }
                if batch.is_empty() {
                    batch = queue.read(&self.model_names, free, 1000).await?;
                }
                Ok::<_, redis::RedisError>(batch)
            };
            let batch = tokio::select! {
                r = step => r,
                _ = stop.cancelled() => break,
            };
            match batch {
                Ok(batch) => {
                    failures = 0;
                    for d in batch {
                        let (this, mut q, stop, fin) =
                            (self.clone(), work.clone(), stop.clone(), finish_tx.clone());
                        tasks.spawn(async move {
                            if let Err(e) = this.handle_with_grace(&mut q, d, &stop, Some(&fin)).await {
                                warn!(error = %e, "redis error while finishing a job; it stays pending and will be retried");
                            }
                        });
                    }
                }
                Err(e) => {
                    let wait =
                        backoff(failures, Duration::from_millis(100), Duration::from_secs(5));
                    failures = failures.saturating_add(1);
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "redis unavailable");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {},
                        _ = stop.cancelled() => break,
                    }
                    if let Err(e) = queue.ensure_groups(&self.model_names).await {
                        warn!(error = %e, "cannot (re)create consumer groups yet");
                    }
                }
            }
        }
        // Each job in hand gets its shutdown grace, then is handed back.
        while tasks.join_next().await.is_some() {}
        drop(finish_tx);
        let _ = finisher.await;
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
            machine: budget::machine_id(),
            ..WorkerInfo::default()
        }
    }

    /// Processes one delivery; after a shutdown signal, gives it `SHUTDOWN_GRACE` seconds to
    /// finish and otherwise hands it back to the queue for another worker.
    async fn handle_with_grace(
        &self,
        queue: &mut Consumer,
        d: Delivery,
        shutdown: &CancellationToken,
        finisher: Option<&Finisher>,
    ) -> redis::RedisResult<Handled> {
        let grace = self.cfg.shutdown_grace;
        let mut q = queue.clone();
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        let d2 = d.clone();
        tokio::select! {
            r = self.handle_via(&mut q, d, finisher) => r,
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
        self.handle_via(queue, d, None).await
    }

    /// [`Worker::handle`], finishing through `finisher` (batched with other jobs' outcomes)
    /// when given, else with a script call of its own.
    async fn handle_via(
        &self,
        queue: &mut Consumer,
        d: Delivery,
        finisher: Option<&Finisher>,
    ) -> redis::RedisResult<Handled> {
        let Some(job) = d.job.clone() else {
            warn!(entry = %d.entry_id, "unreadable queue entry dropped");
            queue.drop_entry(&d).await?;
            return Ok(Handled::Skipped);
        };
        let span = tracing::info_span!("job", job = %job.job_id, model = %job.model);
        async move {
            if self
                .models
                .get(&job.model)
                .is_some_and(|m| m.sessions().healthy == 0)
            {
                // Left pending without an attempt: handed back as the worker exits.
                warn!("no working session left for this model; the job is left for another worker");
                return Ok(Handled::Skipped);
            }
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
                return self.give_up(queue, finisher, &d, &job, outcome).await;
            }
            let Some(model) = self.models.get(&job.model).cloned() else {
                let why = format!("no worker here serves model {}", job.model);
                return self.give_up(queue, finisher, &d, &job, failed(&why)).await;
            };
            let _held = model.hold();
            let Some(bytes) = queue.image(&job.sha256).await? else {
                let why = "the image expired before a worker got to it; upload it again";
                return self.give_up(queue, finisher, &d, &job, failed(why)).await;
            };
            self.stats.busy.fetch_add(1, Ordering::Relaxed);
            let (outcome, stray) = self.classify(model, bytes, job.top_k).await;
            self.stats.busy.fetch_sub(1, Ordering::Relaxed);
            let handled = match outcome {
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
                    if finish(queue, finisher, &d, &job, outcome).await? == Recorded::First {
                        self.stats.done.fetch_add(1, Ordering::Relaxed);
                        info!(ms, top = %top, "job done");
                    }
                    Ok(Handled::Done)
                }
                Err(JobError::Permanent(msg)) => {
                    self.give_up(queue, finisher, &d, &job, failed(&msg)).await
                }
                Err(JobError::Retriable(msg)) if attempt >= max => {
                    let outcome = dead_letter(&job, attempt, &msg);
                    self.give_up(queue, finisher, &d, &job, outcome).await
                }
                Err(JobError::Retriable(msg)) => {
                    warn!(attempt, reason = %msg, "job attempt failed; requeued");
                    let _ = queue.requeue(&d, &job, &msg).await?;
                    Ok(Handled::Retried)
                }
            };
            if let Some(thread) = stray {
                // The attempt is recorded; its thread cannot be stopped, so this job keeps its
                // place in the worker's capacity while the thread runs, for up to one more
                // JOB_TIMEOUT: strays cannot pile up while they burn CPU. (Decode work is bounded
                // from the header, so a decode ends well within it; a thread still running then is
                // a wedged inference session the heartbeat retires, which must not hold a place.)
                warn!("the timed-out attempt's thread still runs; its place is held until it ends");
                match tokio::time::timeout(self.cfg.job_timeout, thread).await {
                    Ok(_) => info!("the timed-out attempt's thread ended"),
                    Err(_) => error!(
                        "the timed-out attempt's thread is still running; its place is released"
                    ),
                }
            }
            handled
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
        finisher: Option<&Finisher>,
        d: &Delivery,
        job: &QueuedJob,
        (handled, outcome): (Handled, Outcome),
    ) -> redis::RedisResult<Handled> {
        let reason = match &outcome {
            Outcome::Failed { error } | Outcome::DeadLettered { error, .. } => error.clone(),
            Outcome::Done { .. } => String::new(),
        };
        if finish(queue, finisher, d, job, outcome).await? == Recorded::First {
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
    /// with panics caught and turned into a retriable error. After a timeout that was not a
    /// wedged inference session (those are retired and never waited for), the still-running
    /// thread comes back too, so the caller can hold the job's capacity until it ends.
    async fn classify(
        &self,
        model: Arc<dyn Classifier>,
        bytes: Vec<u8>,
        top_k: usize,
    ) -> (Result<model::Classified, JobError>, Option<Stray>) {
        let limits = self.cfg.common.decode_limits();
        let inject = self.cfg.fault_injection;
        let model_ref = model.clone();
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
        let mut task = task;
        let outcome = match tokio::time::timeout(self.cfg.job_timeout, &mut task).await {
            Ok(Ok(Ok(c))) => Ok(c),
            Ok(Ok(Err(ClassifyError::Image(e)))) => Err(JobError::Permanent(e.to_string())),
            Ok(Ok(Err(e @ ClassifyError::Inference(_)))) => Err(JobError::Retriable(e.to_string())),
            Ok(Err(join)) => Err(JobError::Retriable(format!(
                "the decoder crashed: {}",
                panic_message(join)
            ))),
            Err(_) => {
                // A session whose run outlived the timeout is wedged: out of service for good
                // (the heartbeat sweeps again, for runs that started later than this job).
                // Its run started after the job's clock did, so it has lasted a little less than
                // JOB_TIMEOUT; 90 % of it tells a wedged run from the other jobs' (milliseconds).
                let retired = model_ref.retire_stuck(self.cfg.job_timeout.mul_f64(0.9));
                let msg = format!(
                    "processing took longer than {} s",
                    self.cfg.job_timeout.as_secs_f64()
                );
                if retired > 0 {
                    error!(retired, "an inference session never returned; retired it");
                    return (Err(JobError::Retriable(msg)), None);
                }
                return (Err(JobError::Retriable(msg)), Some(task));
            }
        };
        (outcome, None)
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

/// The thread of an attempt that outlived `JOB_TIMEOUT` (decode or preprocessing: a wedged
/// inference session is retired instead).
type Stray = tokio::task::JoinHandle<Result<model::Classified, ClassifyError>>;

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

/// Finishes through the batching finisher when there is one, else directly.
async fn finish(
    queue: &mut Consumer,
    finisher: Option<&Finisher>,
    d: &Delivery,
    job: &QueuedJob,
    outcome: Outcome,
) -> redis::RedisResult<Recorded> {
    match finisher {
        Some(f) => f.finish(d, job, outcome).await,
        None => queue.finish(d, job, outcome).await,
    }
}

/// One outcome waiting for the finisher, and where to send what it recorded.
struct FinishRequest {
    delivery: Delivery,
    job: QueuedJob,
    outcome: Outcome,
    reply: oneshot::Sender<redis::RedisResult<Recorded>>,
}

/// Hands outcomes to [`finisher_loop`], which records those that are ready together in one
/// script call.
#[derive(Clone)]
struct Finisher(mpsc::UnboundedSender<FinishRequest>);

impl Finisher {
    async fn finish(
        &self,
        d: &Delivery,
        job: &QueuedJob,
        outcome: Outcome,
    ) -> redis::RedisResult<Recorded> {
        let (reply, answer) = oneshot::channel();
        let req = FinishRequest {
            delivery: d.clone(),
            job: job.clone(),
            outcome,
            reply,
        };
        let gone = || redis::RedisError::from((redis::ErrorKind::IoError, "the finisher stopped"));
        self.0.send(req).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Most outcomes finished in one script call.
const FINISH_BATCH: usize = 64;

/// Takes every outcome waiting and finishes them in one `finish_all` (one round trip); if
/// that fails, each is finished on its own, so one job's trouble stays its own.
async fn finisher_loop(mut queue: Consumer, rx: mpsc::UnboundedReceiver<FinishRequest>) {
    let mut rx = rx;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < FINISH_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let items: Vec<Finish<'_>> = batch
            .iter()
            .map(|r| Finish {
                delivery: &r.delivery,
                job: &r.job,
                outcome: r.outcome.clone(),
            })
            .collect();
        let answers = if items.len() > 1 {
            queue.finish_all(&items).await.ok()
        } else {
            None
        };
        drop(items);
        match answers {
            Some(answers) if answers.len() == batch.len() => {
                for (r, a) in batch.into_iter().zip(answers) {
                    let _ = r.reply.send(Ok(a));
                }
            }
            _ => {
                for r in batch {
                    let res = queue.finish(&r.delivery, &r.job, r.outcome).await;
                    let _ = r.reply.send(res);
                }
            }
        }
    }
}

/// Every heartbeat interval: retires wedged sessions (and stops the worker when a model has
/// none left), re-divides the machine's CPUs when the budget is shared, and writes the
/// heartbeat (sessions and budget included).
async fn heartbeat_loop(
    worker: Arc<Worker>,
    mut queue: Consumer,
    budget: config::CpuBudget,
    stop: CancellationToken,
) {
    let every = worker
        .cfg
        .heartbeat_interval
        .max(Duration::from_millis(100));
    let ttl = (every * 3).max(Duration::from_secs(3));
    let machine_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut info = worker.info();
    info.cpus = budget.permits as u32;
    info.cpus_owned = budget.owned;
    let stats = worker.stats.clone();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = stop.cancelled() => return,
        }
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
            info.sessions.insert(
                name.clone(),
                shared::job::SessionHealth {
                    healthy: counts.healthy,
                    retired: counts.retired,
                },
            );
        }
        if !budget.owned {
            let now = now_ms();
            let stale = (every * 3).max(Duration::from_secs(3)).as_millis() as i64;
            match workers::live(&mut queue.conn, now, stale).await {
                Ok(live) => {
                    let share = budget::share(machine_cpus, &info, &live);
                    if share != info.cpus as usize {
                        info!(
                            cpus = share,
                            was = info.cpus,
                            "this machine's CPUs re-divided among its workers"
                        );
                        info.cpus = share as u32;
                        stats.cpus.store(share, Ordering::Relaxed);
                        for m in worker.models.values() {
                            m.set_cpus(share);
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot read the other workers' heartbeats"),
            }
        }
        info.last_seen_ms = now_ms();
        info.jobs_done = stats.done.load(Ordering::Relaxed);
        info.jobs_failed = stats.failed.load(Ordering::Relaxed);
        info.busy = stats.busy.load(Ordering::Relaxed);
        if let Err(e) = workers::heartbeat(&mut queue.conn, &info, ttl).await {
            warn!(error = %e, "heartbeat failed");
        }
        if !dead.is_empty() {
            error!(models = ?dead, "no working inference session left; stopping the worker");
            stop.cancel();
            return;
        }
    }
}
