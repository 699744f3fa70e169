//! `Worker::run` end to end against a private Redis with fake classifiers (no ONNX): batched
//! reads and finishes record every job exactly once, and a session that never returns is
//! retired, reported in the heartbeat, and the worker exits with an error when none is left.

#![allow(clippy::unwrap_used)]

mod fake;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fast_image_resize::Resizer;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use shared::job::{SessionHealth, WorkerInfo};
use shared::queue::producer;
use shared::queue::{dead, keys};
use shared::upload::ImageError;
use shared::JobStatus;
use test_support::Redis;
use worker::cli::Cli;
use worker::executor::{Choice, Executor, Pool, SessionCounts};
use worker::model::{Classification, Classifier, ClassifyError, Upload};

use fake::{cat, MODEL};
use worker::Worker;

/// A classifier whose "sessions" are fakes in a real [`Executor`]: `bad` is a broken image,
/// `panic` panics, `hang` never returns from its session run, anything else is a cat after
/// 50 ms. Counts how many classifications ran at once.
struct FakeModel {
    exec: Executor<()>,
    running: AtomicUsize,
    most: AtomicUsize,
    release: std::sync::atomic::AtomicBool,
}

impl FakeModel {
    fn new(sessions: usize) -> Self {
        FakeModel {
            exec: Executor::new(vec![(); sessions], None, 1, sessions),
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            release: Default::default(),
        }
    }
}

impl Classifier for FakeModel {
    fn classify(&self, upload: Upload<'_>, _resizer: &mut Resizer) -> Classification {
        match upload.bytes {
            b"bad" => return Err(ImageError::Corrupt("garbage".into()).into()),
            b"panic" => panic!("fake decoder panic"),
            _ => {}
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let out = self.exec.run(Choice::Auto, |_| {
            if upload.bytes == b"hang" {
                // "Forever": until the test lets go, so its runtime can shut down.
                while !self.release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        });
        self.running.fetch_sub(1, Ordering::SeqCst);
        out.map_err(|e| ClassifyError::Inference(e.to_string()))?;
        Ok(cat(upload.top_k))
    }

    fn executor(&self) -> Option<&dyn Pool> {
        Some(&self.exec)
    }
}

/// Lets the fake's wedged runs return when dropped (also when a test fails).
struct Release(Arc<FakeModel>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.release.store(true, Ordering::SeqCst);
    }
}

fn worker(redis: &Redis, model: Arc<FakeModel>, extra: &[&str]) -> Worker {
    let url = redis.url();
    let mut args = vec![
        "worker",
        "--redis-url",
        url.as_str(),
        "--heartbeat-interval",
        "200ms",
        "--worker-id",
        "w1",
    ];
    args.extend_from_slice(extra);
    let cli = <Cli as clap::Parser>::try_parse_from(args).unwrap();
    Worker {
        cfg: cli.config,
        id: "w1".into(),
        models: HashMap::from([(MODEL.to_owned(), model as Arc<dyn Classifier>)]),
        model_names: vec![MODEL.to_owned()],
        stats: Arc::default(),
    }
}

async fn enqueue(conn: &mut ConnectionManager, id: &str, bytes: &[u8]) {
    test_support::queue::enqueue(conn, id, MODEL, bytes).await;
}

async fn status(conn: &mut ConnectionManager, id: &str) -> Option<JobStatus> {
    producer::read_record(conn, id).await.unwrap().status
}

#[tokio::test]
async fn a_batch_finishes_every_job_exactly_once_and_a_poison_image_fails_alone() {
    let redis = Redis::start_temp();
    let mut conn = redis.conn().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = format!("ok{i}");
        enqueue(&mut conn, &id, format!("photo {i}").as_bytes()).await;
        ids.push(id);
    }
    enqueue(&mut conn, "bad", b"bad").await;
    enqueue(&mut conn, "panic", b"panic").await;
    let model = Arc::new(FakeModel::new(4));
    let w = worker(
        &redis,
        model.clone(),
        &["--concurrency", "4", "--cpus", "4", "--max-attempts", "2"],
    );
    let stats = w.stats.clone();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(w.run(shutdown.clone()));

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut finished = 0;
        for id in ids.iter().map(String::as_str).chain(["bad", "panic"]) {
            if matches!(
                status(&mut conn, id).await,
                Some(JobStatus::Done | JobStatus::Failed)
            ) {
                finished += 1;
            }
        }
        if finished == ids.len() + 2 {
            break;
        }
        assert!(Instant::now() < deadline, "only {finished} jobs finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    run.await.unwrap().unwrap();

    for id in &ids {
        assert_eq!(status(&mut conn, id).await, Some(JobStatus::Done), "{id}");
    }
    assert_eq!(status(&mut conn, "bad").await, Some(JobStatus::Failed));
    // The panic was retried once, then dead-lettered: per job, not per batch.
    let letters = dead::list(&mut conn).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].0, "panic");
    assert_eq!(letters[0].1.attempts, 2);
    // Exactly once: one results entry per job, the counters agree, nothing left pending.
    let results: u64 = conn.xlen(keys::RESULTS).await.unwrap();
    assert_eq!(results, ids.len() as u64 + 2);
    assert_eq!(stats.done.load(Ordering::Relaxed), ids.len() as u64);
    assert_eq!(stats.failed.load(Ordering::Relaxed), 2);
    let depth: u64 = conn.xlen(keys::queue(MODEL)).await.unwrap();
    assert_eq!(depth, 0);
    // Jobs were in hand together (read in batches) and ran on several sessions at once.
    assert!(
        model.most.load(Ordering::SeqCst) > 1,
        "never ran two at once"
    );
    assert!(
        model.most.load(Ordering::SeqCst) <= 4,
        "more than the capacity at once"
    );
}

async fn heartbeat(conn: &mut ConnectionManager) -> Option<WorkerInfo> {
    let raw: Option<String> = conn.get(keys::worker("w1")).await.unwrap();
    raw.map(|r| serde_json::from_str(&r).unwrap())
}

#[tokio::test]
async fn a_wedged_session_is_retired_reported_and_the_last_one_stops_the_worker() {
    let redis = Redis::start_temp();
    let mut conn = redis.conn().await;
    let model = Arc::new(FakeModel::new(2));
    // Whatever happens, let the wedged runs go at the end (the runtime waits for them).
    let _release = Release(model.clone());
    let w = worker(
        &redis,
        model.clone(),
        &["--job-timeout", "1", "--cpus", "2", "--max-attempts", "3"],
    );
    let run = tokio::spawn(w.run(CancellationToken::new()));
    enqueue(&mut conn, "stuck", b"hang").await;

    // First attempt: its session never returns; after JOB_TIMEOUT it is retired, the job
    // requeued, and the heartbeat says so.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen_one_retired = false;
    while !run.is_finished() {
        if let Some(info) = heartbeat(&mut conn).await {
            if info.sessions.get(MODEL)
                == Some(&SessionHealth {
                    healthy: 1,
                    retired: 1,
                })
            {
                seen_one_retired = true;
                assert!(info.can_serve(MODEL));
                assert_eq!(info.retired_sessions(), 1);
            }
        }
        assert!(Instant::now() < deadline, "the worker did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen_one_retired,
        "the heartbeat never showed the retired session"
    );
    // The retry wedged the second session: no session left, the worker stops with an error.
    let err = run.await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("no working inference session left for model m"),
        "{err}"
    );
    assert_eq!(
        model.sessions(),
        SessionCounts {
            healthy: 0,
            retired: 2
        }
    );
    // The job is not lost: it waits in its queue for another worker, its timeouts counted
    // (a delivery that found no session left was handed back without an attempt).
    let rec = producer::read_record(&mut conn, "stuck").await.unwrap();
    assert_eq!(rec.status, Some(JobStatus::Queued), "{rec:?}");
    assert_eq!(
        rec.attempts,
        Some(2),
        "two attempts timed out; none ran without a session"
    );
    // Let the wedged runs return: their sessions are dropped, never put back.
    model.release.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while model.running.load(Ordering::SeqCst) > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        model.sessions(),
        SessionCounts {
            healthy: 0,
            retired: 2
        }
    );
}

#[tokio::test]
async fn workers_sharing_a_machine_divide_its_cpus_at_run_time() {
    let redis = Redis::start_temp();
    let mut conn = redis.conn().await;
    let model = Arc::new(FakeModel::new(1));
    // No --cpus: the budget is shared with the machine's other workers, unless this test
    // runs under a cgroup quota, which makes it owned: then it must stay whole (checked below).
    let w = worker(&redis, model.clone(), &[]);
    let owned = w.cfg.budget().owned;
    let machine_cpus = std::thread::available_parallelism().unwrap().get();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(w.run(shutdown.clone()));
    // Another sharing worker on this machine announces itself (a heartbeat, as a worker does).
    let me = loop {
        if let Some(info) = heartbeat(&mut conn).await {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(me.cpus as usize, machine_cpus);
    assert_eq!(me.cpus_owned, owned);
    let other = WorkerInfo {
        id: "w2".into(),
        machine: me.machine.clone(),
        models: vec![MODEL.into()],
        cpus: machine_cpus as u32,
        last_seen_ms: shared::time_util::now_ms(),
        ..WorkerInfo::default()
    };
    shared::queue::workers::heartbeat(&mut conn, &other, Duration::from_secs(30))
        .await
        .unwrap();
    if owned {
        // Three heartbeats after the other worker's: an owned budget is never re-divided.
        let mut seen = me.last_seen_ms;
        for _ in 0..3 {
            let deadline = Instant::now() + Duration::from_secs(10);
            let info = loop {
                let info = heartbeat(&mut conn).await.unwrap();
                if info.last_seen_ms > seen {
                    break info;
                }
                assert!(Instant::now() < deadline, "no new heartbeat");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert_eq!(
                info.cpus as usize, machine_cpus,
                "an owned budget stays whole"
            );
            seen = info.last_seen_ms;
        }
        shutdown.cancel();
        run.await.unwrap().unwrap();
        return;
    }
    let want = (machine_cpus / 2).max(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = heartbeat(&mut conn).await.unwrap();
        if info.cpus as usize == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "share never became {want}: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The permit count follows (an executor of one session has at least one permit).
    let deadline = Instant::now() + Duration::from_secs(5);
    while model.exec.permits() != want {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The other worker leaves: the whole machine again.
    shared::queue::workers::deregister(&mut conn, "w2")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while heartbeat(&mut conn).await.unwrap().cpus as usize != machine_cpus {
        assert!(Instant::now() < deadline, "the share did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    run.await.unwrap().unwrap();
}
