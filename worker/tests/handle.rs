//! `Worker::handle` with a fake classifier (no ONNX) against a private Redis: what a worker
//! does with each kind of delivery, checked in the job record users read back.

#![allow(clippy::unwrap_used)]

mod fake;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fast_image_resize::Resizer;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use shared::queue::producer;
use shared::queue::{dead, keys, Consumer, Delivery, JobRecord, QueuedJob};
use shared::upload::ImageError;
use shared::JobStatus;
use test_support::Redis;
use worker::cli::Cli;
use worker::model::{Classification, Classifier, ClassifyError, Upload};
use worker::{Handled, Worker};

use fake::{cat, MODEL};

/// Why a `flaky` upload's job is retried.
const SESSION_FAILED: &str = "inference failed: the session failed";

/// Answers by the upload's bytes: `bad` is a broken image, `flaky` a runtime error,
/// `panic` panics, anything else is a cat.
struct FakeClassifier;

impl Classifier for FakeClassifier {
    fn classify(&self, upload: Upload<'_>, _resizer: &mut Resizer) -> Classification {
        match upload.bytes {
            b"bad" => Err(ImageError::Corrupt("garbage".into()).into()),
            b"flaky" => Err(ClassifyError::Inference("the session failed".into())),
            b"panic" => panic!("fake decoder panic"),
            _ => Ok(cat(upload.top_k)),
        }
    }
}

struct Fixture {
    redis: Redis,
    conn: ConnectionManager,
    consumer: Consumer,
    worker: Worker,
}

/// A worker serving `served` models (only `m` has a classifier), at most two attempts a job.
async fn fixture(served: &[&str]) -> Fixture {
    let redis = Redis::start_temp();
    let url = redis.url();
    let cli = <Cli as clap::Parser>::try_parse_from([
        "worker",
        "--redis-url",
        url.as_str(),
        "--max-attempts",
        "2",
        "--job-timeout",
        "5",
    ])
    .unwrap();
    let models: HashMap<String, Arc<dyn Classifier>> = HashMap::from([(
        MODEL.to_owned(),
        Arc::new(FakeClassifier) as Arc<dyn Classifier>,
    )]);
    let names: Vec<String> = served.iter().map(|s| (*s).to_owned()).collect();
    let mut consumer = Consumer {
        conn: redis.conn().await,
        name: "w1".into(),
        result_ttl: std::time::Duration::from_secs(60),
    };
    consumer.ensure_groups(&names).await.unwrap();
    Fixture {
        conn: redis.conn().await,
        consumer,
        worker: Worker {
            cfg: cli.config,
            id: "w1".into(),
            models,
            model_names: names,
            stats: Arc::default(),
        },
        redis,
    }
}

impl Fixture {
    /// Enqueues an upload of `bytes` for `model`, as the API does.
    async fn enqueue(&mut self, id: &str, model: &str, bytes: &[u8]) -> QueuedJob {
        test_support::queue::enqueue(&mut self.conn, id, model, bytes).await
    }

    /// Reads the next delivery and lets the worker handle it.
    async fn handle_next(&mut self) -> Handled {
        let d: Delivery = self
            .consumer
            .read(&self.worker.model_names, 1, 100)
            .await
            .unwrap()
            .pop()
            .expect("a delivery");
        self.worker.handle(&mut self.consumer, d).await.unwrap()
    }

    async fn record(&mut self, id: &str) -> JobRecord {
        producer::read_record(&mut self.conn, id).await.unwrap()
    }

    /// Why a job back in the queue was handed back.
    async fn requeued_because(&mut self, id: &str) -> String {
        let r = self.record(id).await;
        assert_eq!(r.status, Some(JobStatus::Queued), "{r:?}");
        r.last_error.unwrap()
    }

    /// Handles the next delivery and checks that job `id` went back to its queue for `reason`.
    async fn next_retried(&mut self, id: &str, reason: &str) {
        assert_eq!(self.handle_next().await, Handled::Retried);
        assert_eq!(self.requeued_because(id).await, reason);
    }

    /// Handles the next delivery and checks how it ended and the error job `id` records.
    async fn next_ends(&mut self, id: &str, handled: Handled, error: &str) {
        assert_eq!(self.handle_next().await, handled);
        assert_eq!(self.error_of(id).await, error);
    }

    /// Handles the next delivery and checks that job `id` was dead-lettered at the fixture's
    /// two attempts, for `reason`.
    async fn next_gives_up(&mut self, id: &str, reason: &str) {
        let error = format!("gave up after 2 attempts: {reason}");
        self.next_ends(id, Handled::DeadLettered, &error).await;
    }

    /// The error a failed job shows its owner.
    async fn error_of(&mut self, id: &str) -> String {
        let job = self.record(id).await.to_job(id).unwrap();
        assert_eq!(job.status, JobStatus::Failed, "{job:?}");
        job.error.unwrap()
    }
}

#[tokio::test]
async fn a_good_image_is_done() {
    let mut f = fixture(&[MODEL]).await;
    f.enqueue("j1", MODEL, b"photo").await;
    assert_eq!(f.handle_next().await, Handled::Done);
    let job = f.record("j1").await.to_job("j1").unwrap();
    assert_eq!(job.status, JobStatus::Done);
    let result = job.result.unwrap();
    assert_eq!(result.predictions.len(), 2, "top_k is honoured");
    assert_eq!(result.predictions[0].label, "cat");
    assert_eq!(f.worker.stats.done.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_bad_image_fails_only_its_own_job() {
    let mut f = fixture(&[MODEL]).await;
    f.enqueue("bad", MODEL, b"bad").await;
    f.enqueue("good", MODEL, b"photo").await;
    assert_eq!(f.handle_next().await, Handled::Failed);
    f.next_ends(
        "bad",
        Handled::Done,
        "the image could not be decoded: garbage",
    )
    .await;
    assert_eq!(f.record("good").await.status, Some(JobStatus::Done));
    assert_eq!(f.worker.stats.failed.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_retriable_error_requeues_then_dead_letters_at_max_attempts() {
    let mut f = fixture(&[MODEL]).await;
    f.enqueue("j1", MODEL, b"flaky").await;
    f.next_retried("j1", SESSION_FAILED).await;
    assert_eq!(f.record("j1").await.attempts, Some(1));

    f.next_gives_up("j1", SESSION_FAILED).await;
    let letters = dead::list(&mut f.conn).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].0, "j1");
    assert_eq!(letters[0].1.attempts, 2);
    assert_eq!(letters[0].1.reason, SESSION_FAILED);
}

#[tokio::test]
async fn a_panic_is_caught_and_retried() {
    let mut f = fixture(&[MODEL]).await;
    f.enqueue("j1", MODEL, b"panic").await;
    f.next_retried("j1", "the decoder crashed: fake decoder panic")
        .await;
}

#[tokio::test]
async fn a_delivery_past_max_attempts_is_dead_lettered_without_running() {
    let mut f = fixture(&[MODEL]).await;
    f.enqueue("j1", MODEL, b"photo").await;
    // Two earlier deliveries whose workers died mid-job.
    let _: () = f
        .conn
        .hset(keys::job("j1"), keys::field::ATTEMPTS, 2)
        .await
        .unwrap();
    f.next_gives_up("j1", "the worker holding it stopped responding")
        .await;
    assert_eq!(f.worker.stats.done.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_expired_image_fails_with_its_message() {
    let mut f = fixture(&[MODEL]).await;
    let q = f.enqueue("j1", MODEL, b"photo").await;
    let _: () = f.conn.del(keys::image(&q.sha256)).await.unwrap();
    f.next_ends(
        "j1",
        Handled::Failed,
        "the image expired before a worker got to it; upload it again",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_model_fails() {
    let mut f = fixture(&[MODEL, "other"]).await;
    f.enqueue("j1", "other", b"photo").await;
    f.next_ends("j1", Handled::Failed, "no worker here serves model other")
        .await;
}

#[tokio::test]
async fn unreadable_and_finished_deliveries_are_skipped() {
    let mut f = fixture(&[MODEL]).await;
    f.redis.push_entry(MODEL, "garbage").await;
    assert_eq!(f.handle_next().await, Handled::Skipped);

    let q = f.enqueue("j1", MODEL, b"photo").await;
    assert_eq!(f.handle_next().await, Handled::Done);
    // The same job delivered a second time is not run again.
    f.redis
        .push_entry(MODEL, &serde_json::to_string(&q).unwrap())
        .await;
    assert_eq!(f.handle_next().await, Handled::Skipped);
    assert_eq!(f.worker.stats.done.load(Ordering::Relaxed), 1);
    let depth: u64 = f.conn.xlen(keys::queue(MODEL)).await.unwrap();
    assert_eq!(depth, 0);
}
