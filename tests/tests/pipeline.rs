//! End-to-end: real api and worker binaries on free ports against a private Redis, the real
//! EfficientNet-Lite0 model and real HTTP.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use api_types::{Job, JobAccepted, JobPage, JobStatus, PredictResponse};
use redis::AsyncCommands;
use test_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_wait_predict_and_cache() {
    let (stack, c) = Stack::builder().workers(1).start_with_client().await;

    // 202 + job id + Location, then one ?wait call returns the finished result.
    let (status, body, location) = c.upload("/predictions", grace_hopper(), None).await;
    assert_eq!(status, 202, "{body}");
    let accepted: JobAccepted = typed(&body);
    let job_id = accepted.job_id;
    assert_eq!(accepted.status, JobStatus::Queued);
    assert_eq!(
        location.as_deref(),
        Some(format!("/predictions/{job_id}").as_str())
    );
    let started = Instant::now();
    let job: Job = c.get_ok(&format!("/predictions/{job_id}?wait=10")).await;
    assert_eq!(
        job.status,
        JobStatus::Done,
        "a single ?wait call returns the result: {job:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the worker, not by the timeout"
    );
    assert_eq!(top1(&job), "academic gown");
    let preds = job.predictions();
    assert_eq!(preds.len(), 5);
    assert_eq!(preds[1].label, "mortarboard");
    assert!((preds[0].score - 0.255).abs() < 0.05);
    assert!(!job.cached);
    assert!(job.image_file_name.ends_with(".jpg"));

    // Same bytes again: answered from the cache at once, with its own job id.
    let (status, cached, _) = c.upload("/predictions", grace_hopper(), None).await;
    assert_eq!(status, 200, "{cached}");
    let cached: Job = typed(&cached);
    assert!(cached.cached);
    assert_eq!(cached.status, JobStatus::Done);
    assert_ne!(cached.job_id, job.job_id);
    assert_eq!(cached.result, job.result);

    // The synchronous form agrees on the top class.
    let (status, sync, _) = c
        .upload("/predict", with_trailer(&grace_hopper(), "sync"), None)
        .await;
    assert_eq!(status, 200, "{sync}");
    let sync: PredictResponse = typed(&sync);
    assert!(sync.success);
    assert_eq!(sync.prediction.as_deref(), Some("academic gown"));
    assert_eq!(sync.result.predictions.len(), 5);
    assert!(sync.image_file_name.ends_with(".jpg"));

    // History has all three, newest first; the thumbnail is served to the owner only.
    let hist: JobPage = c.get_ok("/predictions").await;
    assert_eq!(hist.total, 3, "{hist:?}");
    let other = Client::register(stack.api_url()).await;
    let (status, _) = other.get(&format!("/predictions/{job_id}")).await;
    assert_eq!(status, 404, "foreign job ids are not found");
    let r = c
        .http
        .get(format!("{}/predictions/{job_id}/image", stack.api_url()))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    // The upload was deleted from Redis as soon as its job finished (issue 10: bounded
    // memory); the thumbnail stays with the history.
    assert_eq!(r.status(), 404);
    let redis = redis::Client::open(stack.redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let images: Vec<String> = conn.keys("ic:img:*").await.unwrap();
    assert!(
        images.is_empty(),
        "finished uploads stay in Redis: {images:?}"
    );
    let thumb_ok = wait_until(Duration::from_secs(10), || {
        let url = format!("{}/predictions/{job_id}/thumbnail", stack.api_url());
        let token = c.token.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                reqwest::Client::new()
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .map(|r| r.status() == 200)
                    .unwrap_or(false)
            })
        })
        .join()
        .unwrap()
    });
    assert!(thumb_ok.is_ok(), "thumbnail recorded in the history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_clear_errors_and_the_worker_keeps_serving() {
    let (mut stack, c) = Stack::builder()
        .env("MAX_UPLOAD_BYTES", "1000000")
        .workers(1)
        .start_with_client()
        .await;
    let photo = grace_hopper();

    // (what, bytes, model, status, error code)
    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("empty body", Vec::new(), None, 400, "empty_file"),
        (
            "text named .jpg",
            b"hello, I am a text file pretending to be a photo\n".to_vec(),
            None,
            415,
            "unsupported_media_type",
        ),
        (
            "truncated JPEG",
            photo[..photo.len() / 2].to_vec(),
            None,
            400,
            "invalid_image",
        ),
        ("1x1 PNG", png(1, 1), None, 422, "image_too_small"),
        (
            "PNG declaring 50000x50000",
            png_declaring(50_000, 50_000),
            None,
            413,
            "image_too_large",
        ),
        (
            "over the size limit",
            with_trailer(&photo, &"x".repeat(1_100_000)),
            None,
            413,
            "payload_too_large",
        ),
        (
            "unknown model",
            photo.clone(),
            Some("no-such-model"),
            422,
            "unknown_model",
        ),
    ];
    for path in ["/predictions", "/predict"] {
        for (what, bytes, model, status, code) in &cases {
            let (got, body, _) = c.upload(path, bytes.clone(), *model).await;
            assert_eq!(got, *status, "{path} {what}: {body}");
            assert_eq!(body["error"]["code"], *code, "{path} {what}: {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{what}"
            );
            if path == "/predict" {
                assert_eq!(body["success"], false, "{what}");
            }
        }
    }
    // A form without a file, an unknown job id, an unknown route, no token.
    let r = c
        .http
        .post(format!("{}/predictions", stack.api_url()))
        .bearer_auth(&c.token)
        .multipart(reqwest::multipart::Form::new().text("model", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, body) = c
        .get("/predictions/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = c.get("/no/such/route").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let r = reqwest::Client::new()
        .get(format!("{}/predictions", stack.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");

    // A hostile file that slips past the API's header checks (pushed straight into Redis):
    // it fails its own job with a reason, and the worker serves the next good job.
    let mut conn = redis::Client::open(stack.redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut hostile = png(64, 64);
    let n = hostile.len();
    for b in &mut hostile[40..n - 20] {
        *b = 0xAB;
    }
    let sha = "f".repeat(64);
    let job_id = "0193a1b2-7c3d-7e4f-8a9b-00000000b0b0"; // job ids are UUIDs (400 otherwise)
    let _: () = conn.set(shared::keys::image(&sha), hostile).await.unwrap();
    let _: () = conn
        .hset_multiple(
            shared::keys::job(job_id),
            &[
                ("status", "queued"),
                ("model", "efficientnet-lite0"),
                ("owner", &c.user_id.to_string()),
                ("created_ms", "0"),
            ],
        )
        .await
        .unwrap();
    let q = shared::QueuedJob {
        job_id: job_id.into(),
        owner: c.user_id,
        model: "efficientnet-lite0".into(),
        sha256: sha,
        top_k: 5,
        enqueued_ms: 0,
        input: Default::default(),
        scores: false,
    };
    let _: String = conn
        .xadd(
            shared::keys::queue("efficientnet-lite0"),
            "*",
            &[("job", serde_json::to_string(&q).unwrap())],
        )
        .await
        .unwrap();
    let failed = c.wait_done(job_id, Duration::from_secs(20)).await;
    assert_eq!(failed.status, JobStatus::Failed, "{failed:?}");
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("could not be decoded")),
        "{failed:?}"
    );

    let (status, body, _) = c
        .upload("/predictions", with_trailer(&photo, "after-bad"), None)
        .await;
    assert_eq!(status, 202, "{body}");
    let job = c
        .wait_done(body["job_id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(top1(&job), "academic gown");
    assert!(
        stack.workers[0].exited().is_none(),
        "the worker kept serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_share_fifty_jobs_each_completed_exactly_once() {
    let stack = Stack::builder().workers(2).start().await;
    // Both heartbeats present before the load starts.
    let c = Client::register(stack.api_url()).await;
    c.wait_workers(2, Duration::from_secs(20)).await;

    let photo = grace_hopper();
    let mut ids = Vec::new();
    for i in 0..50 {
        let (status, body, _) = c
            .upload(
                "/predictions",
                with_trailer(&photo, &format!("job-{i}")),
                None,
            )
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["job_id"].as_str().unwrap().to_owned());
    }
    let mut handles = Vec::new();
    for id in ids.clone() {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            c.wait_done(&id, Duration::from_secs(120)).await
        }));
    }
    for h in handles {
        let job = h.await.unwrap();
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(top1(&job), "academic gown");
    }

    // Exactly once: the workers' own counters add up to 50, both took part, and the
    // history holds 50 distinct finished rows.
    let mut conn = redis::Client::open(stack.redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // The heartbeats carry the final counts a beat after the last job: wait for them (a
    // deadline, not a fixed sleep); a count that overshoots or never arrives fails below.
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let done = heartbeat_counts(&mut conn).await;
        if done.iter().sum::<u64>() >= 50 || Instant::now() > deadline {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done.iter().sum::<u64>(), 50, "{done:?}");
    assert!(done.iter().all(|&d| d > 0), "both workers served: {done:?}");
    let depth: u64 = conn
        .xlen(shared::keys::queue("efficientnet-lite0"))
        .await
        .unwrap();
    assert_eq!(depth, 0, "every stream entry acknowledged and removed");

    eventually(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let hist: JobPage = c.get_ok("/predictions?per_page=100").await;
            let finished: HashSet<&str> = hist
                .items
                .iter()
                .filter(|j| j.status == JobStatus::Done)
                .map(|j| j.job_id.as_str())
                .collect();
            if finished.len() < 50 {
                return Err(format!("history has {} finished rows", finished.len()));
            }
            assert_eq!(hist.total, 50);
            Ok(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_and_wait_end_at_their_limits_without_a_worker() {
    let (_stack, c) = Stack::builder()
        .env("PREDICT_TIMEOUT", "2")
        .start_with_client()
        .await;

    let started = Instant::now();
    let (status, body, _) = c.upload("/predict", grace_hopper(), None).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ends at PREDICT_TIMEOUT"
    );

    // ?wait returns the unfinished state when S passes (a long poll, not an error).
    let (status, body, _) = c.upload_photo("w").await;
    assert_eq!(status, 202);
    let id = body["job_id"].as_str().unwrap();
    let started = Instant::now();
    let job: Job = c.get_ok(&format!("/predictions/{id}?wait=1.5")).await;
    assert_eq!(job.status, JobStatus::Queued);
    assert!(started.elapsed() >= Duration::from_millis(1400));
    let (status, body) = c.get(&format!("/predictions/{id}?wait=31")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("wait"))
    );
}

/// `jobs_done` of every worker with a heartbeat now.
async fn heartbeat_counts(conn: &mut redis::aio::MultiplexedConnection) -> Vec<u64> {
    let wids: Vec<String> = conn.zrange(shared::keys::WORKERS, 0, -1).await.unwrap();
    let mut done = Vec::new();
    for w in wids {
        let info: Option<String> = conn.get(shared::keys::worker(&w)).await.unwrap();
        if let Some(info) = info {
            let info: shared::job::WorkerInfo = serde_json::from_str(&info).unwrap();
            done.push(info.jobs_done);
        }
    }
    done
}
