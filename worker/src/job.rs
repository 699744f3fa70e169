//! The job core: one delivery from its start to its recorded outcome. Decode, preprocessing and
//! inference run on the blocking pool under `JOB_TIMEOUT`; a bad image fails its own job, a
//! panic or timeout is retried up to `MAX_ATTEMPTS` and then dead-lettered, and every outcome
//! is recorded exactly once (through the batching [`Finisher`] when serving).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fast_image_resize::Resizer;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

use shared::queue::{Consumer, DeadLetter, Delivery, Outcome, QueuedJob, Recorded, Started};
use shared::time_util::now_ms;

use crate::finish::{finish, Finisher};
use crate::model::{self, Classifier, ClassifyError, Upload};
use crate::{Handled, Worker};

impl Worker {
    /// Processes one delivery; after a shutdown signal, gives it `SHUTDOWN_GRACE` seconds to
    /// finish and otherwise hands it back to the queue for another worker.
    pub(crate) async fn handle_with_grace(
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
        self.attempt(queue, finisher, &d, &job)
            .instrument(span)
            .await
    }

    /// One attempt at `job`: counted in the queue, refused before any work when it cannot run
    /// (attempts used up, model not served here, image expired), else classified and recorded.
    async fn attempt(
        &self,
        queue: &mut Consumer,
        finisher: Option<&Finisher>,
        d: &Delivery,
        job: &QueuedJob,
    ) -> redis::RedisResult<Handled> {
        if self
            .models
            .get(&job.model)
            .is_some_and(|m| m.sessions().healthy == 0)
        {
            // Left pending without an attempt: handed back as the worker exits.
            warn!("no working session left for this model; the job is left for another worker");
            return Ok(Handled::Skipped);
        }
        let attempt = match queue.start(d, &job.job_id).await? {
            Started::Gone => return Ok(Handled::Skipped),
            Started::Attempt(n) => n,
        };
        crate::metrics::queue_wait(&job.model, job.enqueued_ms);
        let max = self.cfg.max_attempts.max(1);
        if attempt > max {
            let last = queue
                .last_error(&job.job_id)
                .await?
                .unwrap_or_else(|| "the worker holding it stopped responding".to_owned());
            let outcome = dead_letter(job, attempt - 1, &last);
            return self.give_up(queue, finisher, d, job, outcome).await;
        }
        let Some(model) = self.models.get(&job.model).cloned() else {
            let why = format!("no worker here serves model {}", job.model);
            return self.give_up(queue, finisher, d, job, failed(&why)).await;
        };
        let _held = model.hold();
        let Some(bytes) = queue.image(&job.sha256).await? else {
            let why = "the image expired before a worker got to it; upload it again";
            return self.give_up(queue, finisher, d, job, failed(why)).await;
        };
        self.stats.busy.fetch_add(1, Ordering::Relaxed);
        let (outcome, stray) = self.classify(model, bytes, job).await;
        self.stats.busy.fetch_sub(1, Ordering::Relaxed);
        let handled = self.record(queue, finisher, d, job, outcome, attempt).await;
        if let Some(thread) = stray {
            self.hold_place_of(thread).await;
        }
        handled
    }

    /// Records the outcome of `attempt`: done, failed for good, dead-lettered when it was the
    /// last one allowed, else handed back for another try.
    async fn record(
        &self,
        queue: &mut Consumer,
        finisher: Option<&Finisher>,
        d: &Delivery,
        job: &QueuedJob,
        outcome: Result<model::Classified, JobError>,
        attempt: u32,
    ) -> redis::RedisResult<Handled> {
        match outcome {
            Ok(classified) => {
                let ms = classified.result.elapsed_ms;
                let top = classified.result.predictions.first();
                let top = top.map(|p| p.label.clone()).unwrap_or_default();
                let outcome = Outcome::Done {
                    result: classified.result,
                    thumb: classified.thumbnail,
                    scores: classified.scores,
                };
                if finish(queue, finisher, d, job, outcome).await? == Recorded::First {
                    self.stats.done.fetch_add(1, Ordering::Relaxed);
                    info!(ms, top = %top, "job done");
                }
                Ok(Handled::Done)
            }
            Err(JobError::Permanent(msg)) => {
                self.give_up(queue, finisher, d, job, failed(&msg)).await
            }
            Err(JobError::Retriable(msg)) if attempt >= self.cfg.max_attempts.max(1) => {
                let outcome = dead_letter(job, attempt, &msg);
                self.give_up(queue, finisher, d, job, outcome).await
            }
            Err(JobError::Retriable(msg)) => {
                warn!(attempt, reason = %msg, "job attempt failed; requeued");
                let _ = queue.requeue(d, job, &msg).await?;
                Ok(Handled::Retried)
            }
        }
    }

    /// The attempt is recorded; its thread cannot be stopped, so this job keeps its place in
    /// the worker's capacity while the thread runs, for up to one more JOB_TIMEOUT: strays
    /// cannot pile up while they burn CPU. (Decode work is bounded from the header, so a decode
    /// ends well within it; a thread still running then is a wedged inference session the
    /// heartbeat retires, which must not hold a place.)
    async fn hold_place_of(&self, thread: Stray) {
        warn!("the timed-out attempt's thread still runs; its place is held until it ends");
        match tokio::time::timeout(self.cfg.job_timeout, thread).await {
            Ok(_) => info!("the timed-out attempt's thread ended"),
            Err(_) => {
                error!("the timed-out attempt's thread is still running; its place is released")
            }
        }
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
        job: &QueuedJob,
    ) -> (Result<model::Classified, JobError>, Option<Stray>) {
        let limits = self.cfg.common.decode_limits();
        let (input, top_k, scores) = (job.input, job.top_k, job.scores);
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
                input,
                top_k,
                scores,
                limits,
            };
            model.classify(upload, &mut Resizer::new())
        });
        let mut task = task;
        let outcome = match tokio::time::timeout(self.cfg.job_timeout, &mut task).await {
            Ok(Ok(Ok(c))) => Ok(c),
            Ok(Ok(Err(ClassifyError::Image(e)))) => Err(JobError::Permanent(e.to_string())),
            Ok(Ok(Err(e @ ClassifyError::Tensor(_)))) => Err(JobError::Permanent(e.to_string())),
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
