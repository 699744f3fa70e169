//! The protocol against a private `redis-server`: every transition of a job, as api and
//! worker drive it, checked in what Redis holds afterwards.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::StreamExt as _;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use shared::job::WorkerInfo;
use shared::queue::producer::{self, Ttls};
use shared::queue::{
    dead, keys, results, workers, Consumer, DeadLetter, Delivery, Finish, JobRecord, Outcome,
    QueuedJob, Recorded, Started,
};
use shared::{JobResult, JobStatus, Prediction};
use test_support::Redis;

const MODEL: &str = "m";
const TTLS: Ttls = Ttls {
    result: Duration::from_secs(60),
    image: Duration::from_secs(60),
};

fn job(id: &str) -> QueuedJob {
    QueuedJob {
        job_id: id.to_owned(),
        owner: 7,
        model: MODEL.to_owned(),
        sha256: format!("sha-{id}"),
        top_k: 3,
        enqueued_ms: 1_000,
        input: Default::default(),
        scores: false,
    }
}

fn result(label: &str) -> JobResult {
    JobResult {
        predictions: vec![Prediction {
            label: label.to_owned(),
            class_id: 1,
            score: 0.5,
        }],
        model: MODEL.to_owned(),
        elapsed_ms: 3.0,
    }
}

fn done(label: &str) -> Outcome {
    Outcome::Done {
        result: result(label),
        thumb: vec![0xff, 0xd8, 0x00, 0x01],
        scores: Vec::new(),
    }
}

/// Enqueues `q` the way the API does, owned by user 7.
async fn enqueue(conn: &mut ConnectionManager, q: &QueuedJob, ttls: Ttls) {
    let record = JobRecord::queued(q, &format!("{}.jpg", q.sha256), "image/jpeg");
    producer::enqueue(conn, q, &record, b"image bytes", ttls)
        .await
        .unwrap();
}

/// A private Redis, a connection to it and a consumer `w1` on the model's queue.
async fn setup() -> (Redis, ConnectionManager, Consumer) {
    let redis = Redis::start_temp();
    let conn = redis.conn().await;
    let w = consumer(&redis, "w1").await;
    (redis, conn, w)
}

/// Enqueues job `id`, reads and starts it.
async fn started(
    conn: &mut ConnectionManager,
    w: &mut Consumer,
    id: &str,
) -> (QueuedJob, Delivery) {
    let q = job(id);
    enqueue(conn, &q, TTLS).await;
    let d = read_one(w).await;
    assert_eq!(d.job.as_ref(), Some(&q));
    assert!(matches!(
        w.start(&d, id).await.unwrap(),
        Started::Attempt(_)
    ));
    (q, d)
}

async fn consumer(redis: &Redis, name: &str) -> Consumer {
    let mut c = Consumer {
        conn: redis.conn().await,
        name: name.to_owned(),
        result_ttl: Duration::from_secs(60),
    };
    c.ensure_groups(&[MODEL.to_owned()]).await.unwrap();
    c
}

/// Reads exactly one delivery.
async fn read_one(c: &mut Consumer) -> Delivery {
    let got = c.read(&[MODEL.to_owned()], 10, 100).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    got.into_iter().next().unwrap()
}

async fn record(conn: &mut ConnectionManager, id: &str) -> JobRecord {
    producer::read_record(conn, id).await.unwrap()
}

/// The error of a failed job, as its owner sees it.
async fn failed_error(conn: &mut ConnectionManager, id: &str) -> String {
    let view = record(conn, id).await.to_job(id).unwrap();
    assert_eq!(view.status, JobStatus::Failed, "{view:?}");
    view.error.unwrap()
}

/// Entries waiting in the model's stream and entries delivered but not acknowledged.
async fn queue_state(conn: &mut ConnectionManager) -> (u64, u64) {
    let len: u64 = conn.xlen(keys::queue(MODEL)).await.unwrap();
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(keys::queue(MODEL), keys::GROUP)
        .await
        .unwrap();
    (len, pending.count() as u64)
}

#[tokio::test]
async fn a_job_goes_from_queued_to_done_and_is_recorded_once() {
    let (redis, mut conn, mut w) = setup().await;
    let mut events = redis::Client::open(redis.url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    events.subscribe(keys::EVENTS).await.unwrap();

    let q = job("j1");
    enqueue(&mut conn, &q, TTLS).await;
    let queued_record = record(&mut conn, "j1").await;
    assert_eq!(queued_record.owner, Some(7));
    let queued = queued_record.to_job("j1").unwrap();
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.image_file_name, "sha-j1.jpg");

    let d = read_one(&mut w).await;
    assert_eq!(d.job.as_ref(), Some(&q));
    assert_eq!(w.image(&q.sha256).await.unwrap().unwrap(), b"image bytes");
    assert_eq!(w.start(&d, "j1").await.unwrap(), Started::Attempt(1));
    let started = record(&mut conn, "j1").await;
    assert_eq!(started.status, Some(JobStatus::Processing));
    assert_eq!(started.worker.as_deref(), Some("w1"));
    assert_eq!(started.attempts, Some(1));
    assert!(started.started_ms.is_some());

    assert_eq!(
        w.finish(&d, &q, done("cat")).await.unwrap(),
        Recorded::First
    );
    let finished = record(&mut conn, "j1").await;
    assert_eq!(finished.status, Some(JobStatus::Done));
    assert_eq!(finished.result, Some(result("cat")));
    assert_eq!(finished.thumb, Some(vec![0xff, 0xd8, 0x00, 0x01]));
    assert!(finished.finished_ms.is_some());
    assert_eq!(
        queue_state(&mut conn).await,
        (0, 0),
        "entry acked and deleted"
    );
    // The owner's next identical upload is answered from the cache; another owner's is not.
    let cached = producer::cached_result(&mut conn, &q)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached.result, result("cat"));
    assert_eq!(cached.thumb, vec![0xff, 0xd8, 0x00, 0x01]);
    let others = QueuedJob {
        owner: 8,
        ..q.clone()
    };
    assert_eq!(
        producer::cached_result(&mut conn, &others).await.unwrap(),
        None
    );
    // Waiters are woken with the job id.
    let msg = tokio::time::timeout(Duration::from_secs(2), events.on_message().next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.get_payload::<String>().unwrap(), "j1");

    // The API's recorder reads one typed entry and acknowledges it.
    let entries = results::read(&mut conn, "api-1", Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let f = entries[0].finished.clone().unwrap();
    assert_eq!(f.job_id, "j1");
    assert_eq!(f.status, JobStatus::Done);
    assert_eq!(f.result, Some(result("cat")));
    assert_eq!(f.worker, "w1");
    assert_eq!(f.thumb, vec![0xff, 0xd8, 0x00, 0x01]);
    assert_eq!(Some(f.finished_ms), finished.finished_ms);
    // Unacknowledged, it is handed to the same consumer again ...
    let again = results::read(&mut conn, "api-1", Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(again, entries);
    // ... and once acknowledged it is gone.
    results::ack(&mut conn, &[&entries[0].id]).await.unwrap();
    let len: u64 = conn.xlen(keys::RESULTS).await.unwrap();
    assert_eq!(len, 0);
    let none = results::read(&mut conn, "api-1", Duration::from_millis(100))
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test]
async fn a_failed_job_keeps_its_error_and_is_not_cached() {
    let (_redis, mut conn, mut w) = setup().await;
    let (q, d) = started(&mut conn, &mut w, "j1").await;
    let failed = Outcome::Failed {
        error: "the image could not be decoded".into(),
    };
    assert_eq!(w.finish(&d, &q, failed).await.unwrap(), Recorded::First);
    assert_eq!(
        failed_error(&mut conn, "j1").await,
        "the image could not be decoded"
    );
    assert_eq!(record(&mut conn, "j1").await.result, None);
    let cached = producer::cached_result(&mut conn, &q).await.unwrap();
    assert_eq!(cached, None);
    let entries = results::read(&mut conn, "api-1", Duration::from_millis(100))
        .await
        .unwrap();
    let f = entries[0].finished.clone().unwrap();
    assert_eq!(f.status, JobStatus::Failed);
    assert_eq!(f.error.as_deref(), Some("the image could not be decoded"));
    assert!(f.thumb.is_empty());
    let dead = dead::list(&mut conn).await.unwrap();
    assert!(
        dead.is_empty(),
        "a plain failure is no dead letter: {dead:?}"
    );
}

#[tokio::test]
async fn a_requeued_job_goes_to_the_back_of_the_queue_with_its_attempts() {
    let (_redis, mut conn, mut w) = setup().await;
    let (q, d) = started(&mut conn, &mut w, "j1").await;
    assert!(w.requeue(&d, &q, "decoder panicked").await.unwrap());
    let r = record(&mut conn, "j1").await;
    assert_eq!(r.status, Some(JobStatus::Queued));
    assert_eq!(r.last_error.as_deref(), Some("decoder panicked"));
    assert_eq!(
        w.last_error("j1").await.unwrap().as_deref(),
        Some("decoder panicked")
    );
    assert_eq!(r.attempts, Some(1));
    assert_eq!(
        queue_state(&mut conn).await,
        (1, 0),
        "old entry gone, new one waiting"
    );

    let d2 = read_one(&mut w).await;
    assert_ne!(d2.entry_id, d.entry_id);
    assert_eq!(d2.job.as_ref(), Some(&q));
    assert_eq!(w.start(&d2, "j1").await.unwrap(), Started::Attempt(2));
}

#[tokio::test]
async fn start_drops_the_entry_of_a_finished_or_expired_job() {
    let (redis, mut conn, mut w) = setup().await;
    let (q, d) = started(&mut conn, &mut w, "j1").await;
    w.finish(&d, &q, done("cat")).await.unwrap();

    // A stray second entry of the finished job (e.g. an operator's requeue raced the worker).
    redis
        .push_entry(MODEL, &serde_json::to_string(&q).unwrap())
        .await;
    let stray = read_one(&mut w).await;
    assert_eq!(w.start(&stray, "j1").await.unwrap(), Started::Gone);
    assert_eq!(queue_state(&mut conn).await, (0, 0));
    assert_eq!(record(&mut conn, "j1").await.result, Some(result("cat")));

    // A job whose record is gone.
    let q2 = job("j2");
    enqueue(&mut conn, &q2, TTLS).await;
    let _: () = conn.del(keys::job("j2")).await.unwrap();
    let d2 = read_one(&mut w).await;
    assert_eq!(w.start(&d2, "j2").await.unwrap(), Started::Gone);
    assert_eq!(queue_state(&mut conn).await, (0, 0));
    // Finishing it anyway records nothing.
    assert_eq!(
        w.finish(&d2, &q2, done("dog")).await.unwrap(),
        Recorded::Expired
    );
    let len: u64 = conn.xlen(keys::RESULTS).await.unwrap();
    assert_eq!(len, 1, "only j1 reached the results stream");
}

#[tokio::test]
async fn a_finish_after_a_reclaim_is_a_no_op_for_the_second_finisher() {
    let redis = Redis::start_temp();
    let mut conn = redis.conn().await;
    let mut slow = consumer(&redis, "slow").await;
    let mut other = consumer(&redis, "other").await;
    let q = job("j1");
    enqueue(&mut conn, &q, TTLS).await;
    let d = read_one(&mut slow).await;
    assert_eq!(slow.start(&d, "j1").await.unwrap(), Started::Attempt(1));
    assert_eq!(slow.own_pending(MODEL).await.unwrap(), vec![d.clone()]);

    // The slow worker looks dead: another one takes the delivery over.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let claimed = other.reclaim(MODEL, 10, 16).await.unwrap();
    assert_eq!(claimed, vec![d.clone()]);
    assert!(slow.own_pending(MODEL).await.unwrap().is_empty());
    assert_eq!(other.start(&d, "j1").await.unwrap(), Started::Attempt(2));
    assert_eq!(
        other.finish(&d, &q, done("cat")).await.unwrap(),
        Recorded::First
    );

    // The slow one comes back with another answer: nothing changes.
    let late = Outcome::Failed {
        error: "late".into(),
    };
    assert_eq!(
        slow.finish(&d, &q, late).await.unwrap(),
        Recorded::AlreadyFinished
    );
    let r = record(&mut conn, "j1").await;
    assert_eq!(r.status, Some(JobStatus::Done));
    assert_eq!(r.worker.as_deref(), Some("other"));
    assert_eq!(r.error, None);
    let len: u64 = conn.xlen(keys::RESULTS).await.unwrap();
    assert_eq!(len, 1, "one results entry");
    assert_eq!(queue_state(&mut conn).await, (0, 0));
}

#[tokio::test]
async fn a_requeue_after_finish_does_nothing() {
    let (_redis, mut conn, mut w) = setup().await;
    let (q, d) = started(&mut conn, &mut w, "j1").await;
    w.finish(&d, &q, done("cat")).await.unwrap();
    assert!(!w.requeue(&d, &q, "shutdown").await.unwrap());
    let r = record(&mut conn, "j1").await;
    assert_eq!(r.status, Some(JobStatus::Done));
    assert_eq!(r.last_error, None);
    assert_eq!(queue_state(&mut conn).await, (0, 0));
}

#[tokio::test]
async fn records_images_and_results_expire_with_their_ttl() {
    let (_redis, mut conn, mut w) = setup().await;
    let short = Ttls {
        result: Duration::from_secs(1),
        image: Duration::from_secs(1),
    };
    let q = job("j1");
    enqueue(&mut conn, &q, short).await;
    let ttl: i64 = conn.pttl(keys::job("j1")).await.unwrap();
    assert!((1..=1000).contains(&ttl), "{ttl}");
    let ttl: i64 = conn.pttl(keys::image(&q.sha256)).await.unwrap();
    assert!((1..=1000).contains(&ttl), "{ttl}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(record(&mut conn, "j1").await, JobRecord::default());
    assert_eq!(w.image(&q.sha256).await.unwrap(), None);
    let d = read_one(&mut w).await;
    assert_eq!(w.start(&d, "j1").await.unwrap(), Started::Gone);

    // A finished job's record and cached result live for the consumer's result TTL.
    let q2 = job("j2");
    enqueue(&mut conn, &q2, TTLS).await;
    w.result_ttl = Duration::from_secs(5);
    let d2 = read_one(&mut w).await;
    w.start(&d2, "j2").await.unwrap();
    w.finish(&d2, &q2, done("cat")).await.unwrap();
    for key in [
        keys::job("j2"),
        keys::cache(q2.owner, MODEL, &q2.sha256, q2.top_k),
    ] {
        let ttl: i64 = conn.ttl(&key).await.unwrap();
        assert!((1..=5).contains(&ttl), "{key}: {ttl}");
    }
}

#[tokio::test]
async fn a_dead_letter_is_written_listed_and_requeued() {
    let (_redis, mut conn, mut w) = setup().await;
    let (q, d) = started(&mut conn, &mut w, "j1").await;
    let letter = DeadLetter {
        reason: "decoder panicked".into(),
        attempts: 3,
        model: MODEL.into(),
        at_ms: 5,
        job: q.clone(),
    };
    let outcome = Outcome::DeadLettered {
        error: "gave up after 3 attempts: decoder panicked".into(),
        letter: letter.clone(),
    };
    assert_eq!(w.finish(&d, &q, outcome).await.unwrap(), Recorded::First);
    assert_eq!(
        failed_error(&mut conn, "j1").await,
        "gave up after 3 attempts: decoder panicked"
    );
    assert_eq!(
        dead::list(&mut conn).await.unwrap(),
        vec![("j1".to_owned(), letter.clone())]
    );
    // The record's JSON is what operators and the e2e tests read.
    let raw: String = conn.hget(keys::DEAD, "j1").await.unwrap();
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(raw["attempts"], 3);
    assert_eq!(raw["job"]["job_id"], "j1");

    assert!(matches!(
        dead::requeue(&mut conn, "nope", Duration::from_secs(60)).await,
        Err(dead::RequeueError::NotDead(_))
    ));
    assert_eq!(
        dead::requeue(&mut conn, "j1", Duration::from_secs(60))
            .await
            .unwrap(),
        letter
    );
    let revived = record(&mut conn, "j1").await;
    assert_eq!(revived.status, Some(JobStatus::Queued));
    assert_eq!(revived.attempts, Some(0));
    assert_eq!(revived.to_job("j1").unwrap().error, None);
    assert!(dead::list(&mut conn).await.unwrap().is_empty());
    let d2 = read_one(&mut w).await;
    assert_eq!(d2.job.as_ref(), Some(&q));
    assert_eq!(w.start(&d2, "j1").await.unwrap(), Started::Attempt(1));

    // Without its image a dead letter cannot be retried, and stays listed.
    w.finish(
        &d2,
        &q,
        Outcome::DeadLettered {
            error: "again".into(),
            letter: letter.clone(),
        },
    )
    .await
    .unwrap();
    let _: () = conn.del(keys::image(&q.sha256)).await.unwrap();
    assert!(matches!(
        dead::requeue(&mut conn, "j1", Duration::from_secs(60)).await,
        Err(dead::RequeueError::ImageExpired(_))
    ));
    assert_eq!(dead::list(&mut conn).await.unwrap().len(), 1);
}

#[tokio::test]
async fn several_jobs_finish_in_one_call() {
    let (_redis, mut conn, mut w) = setup().await;
    let (q1, q2) = (job("j1"), job("j2"));
    enqueue(&mut conn, &q1, TTLS).await;
    enqueue(&mut conn, &q2, TTLS).await;
    let ds = w.read(&[MODEL.to_owned()], 10, 100).await.unwrap();
    assert_eq!(ds.len(), 2);
    for (d, q) in ds.iter().zip([&q1, &q2]) {
        w.start(d, &q.job_id).await.unwrap();
    }
    let answers = w
        .finish_all(&[
            Finish {
                delivery: &ds[0],
                job: &q1,
                outcome: done("cat"),
            },
            Finish {
                delivery: &ds[1],
                job: &q2,
                outcome: Outcome::Failed {
                    error: "bad".into(),
                },
            },
        ])
        .await
        .unwrap();
    assert_eq!(answers, vec![Recorded::First, Recorded::First]);
    assert_eq!(record(&mut conn, "j1").await.status, Some(JobStatus::Done));
    assert_eq!(
        record(&mut conn, "j2").await.status,
        Some(JobStatus::Failed)
    );
    let entries = results::read(&mut conn, "api-1", Duration::from_millis(100))
        .await
        .unwrap();
    let ids: Vec<String> = entries
        .iter()
        .map(|e| e.finished.clone().unwrap().job_id)
        .collect();
    assert_eq!(ids, ["j1", "j2"]);
    assert_eq!(queue_state(&mut conn).await, (0, 0));
}

#[tokio::test]
async fn a_cache_hit_writes_a_done_record() {
    let redis = Redis::start_temp();
    let mut conn = redis.conn().await;
    let q = job("j1");
    let rec = JobRecord::from_cache(&q, "sha-j1.jpg", "image/jpeg", result("cat"));
    producer::record_cache_hit(&mut conn, "j1", &rec, TTLS)
        .await
        .unwrap();
    let back = record(&mut conn, "j1").await;
    assert_eq!(back, rec);
    let fields: Vec<String> = conn.hkeys(keys::job("j1")).await.unwrap();
    assert!(
        !fields.iter().any(|f| f == "thumb"),
        "no thumbnail copy per repeat: {fields:?}"
    );
    let view = back.to_job("j1").unwrap();
    assert_eq!(view.status, JobStatus::Done);
    assert!(view.cached);
    assert_eq!(view.result, Some(result("cat")));
    let ttl: i64 = conn.ttl(keys::job("j1")).await.unwrap();
    assert!((1..=60).contains(&ttl), "{ttl}");
    assert_eq!(
        producer::depth(&mut conn, MODEL).await.unwrap(),
        0,
        "nothing queued"
    );
}

#[tokio::test]
async fn unreadable_entries_are_dropped() {
    let (redis, mut conn, mut w) = setup().await;
    redis.push_entry(MODEL, "not json").await;
    let d = read_one(&mut w).await;
    assert_eq!(d.job, None);
    w.drop_entry(&d).await.unwrap();
    assert_eq!(queue_state(&mut conn).await, (0, 0));

    let _: String = conn
        .xadd(keys::RESULTS, "*", &[(keys::stream::FINISHED, "{}")])
        .await
        .unwrap();
    let entries = results::read(&mut conn, "api-1", Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].finished, None);
}

#[tokio::test]
async fn heartbeats_register_and_deregister_a_worker() {
    let redis = Redis::start_temp();
    let mut conn = redis.conn().await;
    let info = WorkerInfo {
        id: "w1".into(),
        host: "h".into(),
        models: vec![MODEL.into()],
        version: "0".into(),
        started_ms: 1,
        last_seen_ms: 2,
        jobs_done: 3,
        jobs_failed: 0,
        busy: 1,
        ..Default::default()
    };
    workers::heartbeat(&mut conn, &info, Duration::from_secs(10))
        .await
        .unwrap();
    let ids: Vec<String> = conn.zrange(keys::WORKERS, 0, -1).await.unwrap();
    assert_eq!(ids, ["w1"]);
    let json: String = conn.get(keys::worker("w1")).await.unwrap();
    let back: WorkerInfo = serde_json::from_str(&json).unwrap();
    assert_eq!(back, info);
    let ttl: i64 = conn.ttl(keys::worker("w1")).await.unwrap();
    assert!((1..=10).contains(&ttl), "{ttl}");
    workers::deregister(&mut conn, "w1").await.unwrap();
    let ids: Vec<String> = conn.zrange(keys::WORKERS, 0, -1).await.unwrap();
    assert!(ids.is_empty());
    let gone: Option<String> = conn.get(keys::worker("w1")).await.unwrap();
    assert_eq!(gone, None);
}

#[tokio::test]
async fn a_finished_job_gives_back_its_image_and_its_owners_quota() {
    let (_redis, mut conn, mut w) = setup().await;
    // Two jobs of the same image: the bytes stay until both are finished.
    let a = job("a");
    let b = QueuedJob {
        sha256: a.sha256.clone(),
        ..job("b")
    };
    enqueue(&mut conn, &a, TTLS).await;
    enqueue(&mut conn, &b, TTLS).await;
    let len = b"image bytes".len() as u64;
    assert_eq!(
        producer::queued_by(&mut conn, 7).await.unwrap(),
        (2, 2 * len)
    );
    let got = w.read(&[MODEL.to_owned()], 10, 100).await.unwrap();
    assert_eq!(got.len(), 2);
    for (d, q) in got.iter().zip([&a, &b]) {
        assert!(matches!(
            w.start(d, &q.job_id).await.unwrap(),
            Started::Attempt(_)
        ));
    }
    let image = keys::image(&a.sha256);
    w.finish(&got[0], &a, done("x")).await.unwrap();
    assert!(
        conn.exists::<_, bool>(&image).await.unwrap(),
        "b still needs it"
    );
    assert_eq!(producer::queued_by(&mut conn, 7).await.unwrap(), (1, len));
    w.finish(
        &got[1],
        &b,
        Outcome::Failed {
            error: "bad".into(),
        },
    )
    .await
    .unwrap();
    assert!(
        !conn.exists::<_, bool>(&image).await.unwrap(),
        "deleted when done"
    );
    assert!(!conn
        .exists::<_, bool>(keys::image_refs(&a.sha256))
        .await
        .unwrap());
    assert_eq!(producer::queued_by(&mut conn, 7).await.unwrap(), (0, 0));
    // The results and the records stay.
    assert_eq!(record(&mut conn, "a").await.status, Some(JobStatus::Done));
}

/// A job that asks for every class's score (the V2 protocol) carries its input kind and the
/// request through the queue, and its scores are kept in its record and its cache entry; a
/// job that does not ask stores none.
#[tokio::test]
async fn scores_asked_for_are_kept_with_the_record_and_the_cache() {
    let (_redis, mut conn, mut w) = setup().await;
    let q = QueuedJob {
        input: shared::queue::JobInput::Tensor,
        scores: true,
        ..job("s1")
    };
    enqueue(&mut conn, &q, TTLS).await;
    let d = read_one(&mut w).await;
    assert_eq!(
        d.job.as_ref(),
        Some(&q),
        "input kind and scores travel with the job"
    );
    assert!(matches!(
        w.start(&d, "s1").await.unwrap(),
        Started::Attempt(1)
    ));
    let scores: Vec<u8> = [0.25f32, 0.75]
        .iter()
        .flat_map(|p| p.to_le_bytes())
        .collect();
    let outcome = Outcome::Done {
        result: result("cat"),
        thumb: Vec::new(),
        scores: scores.clone(),
    };
    assert_eq!(w.finish(&d, &q, outcome).await.unwrap(), Recorded::First);
    assert_eq!(record(&mut conn, "s1").await.scores, Some(scores.clone()));
    let cached = producer::cached_result(&mut conn, &q)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached.scores, scores);

    let (plain, d) = started(&mut conn, &mut w, "s2").await;
    w.finish(&d, &plain, done("dog")).await.unwrap();
    assert_eq!(record(&mut conn, "s2").await.scores, None);
}
