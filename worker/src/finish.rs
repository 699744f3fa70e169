//! The finisher: records job outcomes in Redis, those that are ready together in one script
//! call (`finish_all`), each exactly once.

use tokio::sync::{mpsc, oneshot};

use shared::queue::{Consumer, Delivery, Finish, Outcome, QueuedJob, Recorded};

/// Finishes through the batching finisher when there is one, else directly.
pub(crate) async fn finish(
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
pub(crate) struct Finisher(mpsc::UnboundedSender<FinishRequest>);

impl Finisher {
    /// Starts the finisher on `queue`'s connection; it ends once every `Finisher` is dropped.
    pub(crate) fn start(queue: Consumer) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), tokio::spawn(finisher_loop(queue, rx)))
    }

    pub(crate) async fn finish(
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
async fn finisher_loop(mut queue: Consumer, mut rx: mpsc::UnboundedReceiver<FinishRequest>) {
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
