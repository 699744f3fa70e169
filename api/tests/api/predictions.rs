//! History and job views: per user, foreign jobs are 404, thumbnails, uploads need a user.

use axum::http::{header, Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

both_backends!(
    history_is_per_user_and_foreign_jobs_are_404,
    the_original_file_name_is_kept_safe,
    history_search_and_filters,
    another_accounts_upload_is_answered_like_bytes_nobody_sent,
    repeats_store_no_second_thumbnail_and_stop_when_redis_is_nearly_full,
    info_lists_display_fields_and_the_callers_own_waiting_jobs,
);

fn multipart(bytes: &[u8]) -> (String, Vec<u8>) {
    multipart_named(bytes, "photo.jpg")
}

fn multipart_named(bytes: &[u8], file_name: &str) -> (String, Vec<u8>) {
    let boundary = format!("b{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: image/jpeg\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn history_is_per_user_and_foreign_jobs_are_404(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let (_, tb) = c.user("Bob", "bob@example.com").await;
    // One real upload (no worker: it stays queued) plus two rows written directly.
    let photo = test_support::unique_photo("oneshot");
    let (ctype, body) = multipart(&photo);
    let (s, h, bytes) = c
        .raw(Method::POST, "/predictions", Some(&ta), Some(&ctype), body)
        .await;
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let uploaded = v["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.get(header::LOCATION).unwrap().to_str().unwrap(),
        format!("/predictions/{uploaded}")
    );
    let [old, older] = c.history(a, [(60_000, true), (120_000, false)]).await;
    let (s, hist) = c.get("/predictions", &ta).await;
    assert_eq!(s, StatusCode::OK, "{hist}");
    assert_eq!(hist["total"], 3);
    assert_eq!(
        item_strs(&hist, "job_id"),
        vec![uploaded.as_str(), old.as_str(), older.as_str()],
        "newest first"
    );
    assert_eq!(hist["items"][0]["status"], "queued");
    assert_eq!(hist["items"][1]["status"], "done");
    assert_eq!(
        hist["items"][1]["result"]["predictions"][0]["label"],
        "academic gown"
    );
    let (s, page) = c.get("/predictions?page=2&per_page=2", &ta).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"][0]["job_id"], older.as_str());

    // The owner reads each job; Bob gets 404 for all of them, like an unknown id.
    for id in [&uploaded, &old, &older] {
        let (s, j) = c.get(&format!("/predictions/{id}"), &ta).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["job_id"], id.as_str());
        let (s, j) = c.get(&format!("/predictions/{id}"), &tb).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{j}");
        let (s, _, _) = c
            .get_bytes(&format!("/predictions/{id}/thumbnail"), &tb)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (s, h, thumb) = c
        .get_bytes(&format!("/predictions/{old}/thumbnail"), &ta)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "image/jpeg");
    assert_eq!(thumb, vec![0xff, 0xd8, 0xff]);
    let (s, _) = c
        .get(&format!("/predictions/{}", uuid::Uuid::now_v7()), &tb)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, hist) = c.get("/predictions", &tb).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hist["total"], 0);
    // Uploading needs a user.
    let (ctype, body) = multipart(&photo);
    let (s, _, _) = c
        .raw(Method::POST, "/predictions", None, Some(&ctype), body)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// `POST /predictions` as `token` with the file named `file_name`: the JSON answer.
async fn upload_named(c: &Ctx, token: &str, bytes: &[u8], file_name: &str) -> (StatusCode, Value) {
    let (ctype, body) = multipart_named(bytes, file_name);
    let (s, _, bytes) = c
        .raw(
            Method::POST,
            "/predictions",
            Some(token),
            Some(&ctype),
            body,
        )
        .await;
    (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Uploads `bytes` as `file_name` for the owner of `token`, which must queue a job (202), and
/// reads that job back: the status and body of `GET /predictions/{job_id}`.
async fn upload_queued(c: &Ctx, token: &str, bytes: &[u8], file_name: &str) -> (StatusCode, Value) {
    let (s, v) = upload_named(c, token, bytes, file_name).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["job_id"].as_str().unwrap();
    c.get(&format!("/predictions/{id}"), token).await
}

async fn the_original_file_name_is_kept_safe(b: Backend) {
    let c = Ctx::new(b).await;
    let (_, ta) = c.user("Alice", "alice@example.com").await;
    for (sent, kept) in [
        ("Peony (garden).jpg", Some("Peony (garden).jpg")),
        ("C:\\fakepath\\tulip.png", Some("tulip.png")),
        ("../../etc/evil\u{202e}gnp.exe", Some("evilgnp.exe")),
        ("", None),
    ] {
        let photo = test_support::unique_photo(&format!("name {sent}"));
        // Live (the Redis record) and from the history row alike.
        let (s, job) = upload_queued(&c, &ta, &photo, sent).await;
        assert_eq!(s, StatusCode::OK, "{job}");
        assert_eq!(job["original_file_name"].as_str(), kept, "{sent:?}: {job}");
        assert!(job["image_file_name"].as_str().unwrap().len() > 64);
        let (_, hist) = c.get("/predictions?per_page=1", &ta).await;
        assert_eq!(hist["items"][0]["original_file_name"].as_str(), kept);
    }
    // A very long name is bounded.
    let long = format!("{}.jpg", "n".repeat(500));
    let (_, job) = upload_queued(&c, &ta, &test_support::unique_photo("long"), &long).await;
    let kept = job["original_file_name"].as_str().unwrap();
    assert!(
        kept.chars().count() <= 120 && kept.ends_with(".jpg"),
        "{kept}"
    );
}

/// A finished history row of `user` with these labels (best first), model and age.
async fn labelled(c: &Ctx, user: i64, labels: &[&str], model: &str, created_ms: i64) -> String {
    let job_id = uuid::Uuid::now_v7().to_string();
    let sha = format!("{:064x}", created_ms);
    c.state
        .db
        .insert_prediction(&api::db::NewPrediction {
            job_id: &job_id,
            user_id: user,
            image_file_name: &format!("{sha}.jpg"),
            sha256: &sha,
            model,
            top_k: labels.len(),
            created_ms,
            original_name: None,
        })
        .await
        .unwrap();
    let predictions: Vec<Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| serde_json::json!({"label": l, "class_id": i, "score": 0.5 / (i as f64 + 1.0)}))
        .collect();
    let result: shared::JobResult = serde_json::from_value(
        serde_json::json!({"predictions": predictions, "model": model, "elapsed_ms": 3.0}),
    )
    .unwrap();
    c.state
        .db
        .finish_prediction(&api::db::Finished {
            job_id: &job_id,
            status: shared::JobStatus::Done,
            result: Some(&result),
            error: None,
            thumbnail: None,
            finished_ms: created_ms + 5,
            cached: false,
        })
        .await
        .unwrap();
    job_id
}

async fn history_search_and_filters(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let (bob, tb) = c.user("Bob", "bob@example.com").await;
    let day = 86_400_000;
    let base = 1_700_000_000_000 - 1_700_000_000_000 % day; // 2023-11-14 00:00 UTC
    let beagle = labelled(&c, a, &["beagle", "basset", "hot dog"], "resnet50", base).await;
    let tabby = labelled(
        &c,
        a,
        &["tabby", "tiger cat", "Egyptian cat"],
        "efficientnet-lite0",
        base + day,
    )
    .await;
    let frank = labelled(
        &c,
        a,
        &["hotdog 100%_off", "bagel"],
        "efficientnet-lite0",
        base + 2 * day,
    )
    .await;
    let bobs = labelled(&c, bob, &["beagle"], "resnet50", base).await;
    let ids = |v: &Value| {
        item_strs(v, "job_id")
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for (query, expect) in [
        ("label=dog", vec![&frank, &beagle]),
        ("label=DOG", vec![&frank, &beagle]),
        ("label=%20cat", vec![&tabby]),
        ("label=egyptian", vec![&tabby]),
        ("label=100%25_", vec![&frank]),
        ("label=_", vec![&frank]),
        ("label=%25", vec![&frank]),
        ("label=zebra", vec![]),
        ("model=resnet50", vec![&beagle]),
        ("label=dog&model=efficientnet-lite0", vec![&frank]),
        ("from=2023-11-15", vec![&frank, &tabby]),
        ("to=2023-11-15", vec![&tabby, &beagle]),
        ("from=2023-11-15&to=2023-11-15", vec![&tabby]),
        (
            "label=&model=&from=&to=&feedback=",
            vec![&frank, &tabby, &beagle],
        ),
    ] {
        let (s, v) = c.get(&format!("/predictions?{query}"), &ta).await;
        assert_eq!(s, StatusCode::OK, "{query}: {v}");
        let expect: Vec<String> = expect.into_iter().cloned().collect();
        assert_eq!(ids(&v), expect, "{query}");
        assert_eq!(v["total"], expect.len(), "{query}");
    }
    // Pages keep the filter: total counts matches, not the whole history.
    let (_, p2) = c.get("/predictions?label=dog&per_page=1&page=2", &ta).await;
    assert_eq!(ids(&p2), vec![beagle.clone()]);
    assert_eq!(p2["total"], 2);
    assert_eq!(p2["page"], 2);
    // Bob's search never finds Alice's rows.
    let (_, v) = c.get("/predictions?label=beagle", &tb).await;
    assert_eq!(ids(&v), vec![bobs]);
    // Unreadable filters are 422 naming the parameter.
    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=2023-02-30", "to"),
        ("feedback=maybe", "feedback"),
    ] {
        let (s, v) = c.get(&format!("/predictions?{query}"), &ta).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {v}");
        assert_eq!(error_field(&v), field);
    }
    let (s, v) = c
        .get(&format!("/predictions?label={}", "a".repeat(101)), &ta)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

/// Issue 24, finding 5: the result cache was shared, so Bob sending the bytes Alice sent got
/// `done` at once (200) where bytes nobody sent get `queued` (202): a one-request oracle of
/// what another account uploaded. The cache is per account now: Bob's copy of Alice's bytes is
/// answered exactly like fresh bytes, and only an account's own repeat is answered from it.
async fn another_accounts_upload_is_answered_like_bytes_nobody_sent(b: Backend) {
    let c = Ctx::new(b).await;
    let (_, ta) = c.user("Alice", "alice@example.com").await;
    let (_, tb) = c.user("Bob", "bob@example.com").await;
    let photo = test_support::unique_photo("shared bytes");
    let (_, alices) = upload_queued(&c, &ta, &photo, "alice.jpg").await;
    finish_as_the_worker(&c, alices["job_id"].as_str().unwrap(), &[]).await;

    let (fresh_status, fresh) = upload_named(
        &c,
        &tb,
        &test_support::unique_photo("nobody sent"),
        "new.jpg",
    )
    .await;
    let (s, bobs) = upload_named(&c, &tb, &photo, "bob.jpg").await;
    assert_eq!(fresh_status, StatusCode::ACCEPTED, "{fresh}");
    assert_eq!(
        s, fresh_status,
        "Alice's bytes look like fresh bytes: {bobs}"
    );
    assert_eq!(bobs["status"], fresh["status"], "{bobs}");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&bobs),
        keys(&fresh),
        "the same shape: {bobs} vs {fresh}"
    );
    let id = bobs["job_id"].as_str().unwrap();
    let (_, again) = c.get(&format!("/predictions/{id}"), &tb).await;
    assert_eq!(
        again["status"], "queued",
        "a real job, waiting for a worker: {again}"
    );

    // Alice's own repeat is answered from her result, and says so.
    let (s, repeat) = upload_named(&c, &ta, &photo, "alice again.jpg").await;
    assert_eq!(s, StatusCode::OK, "{repeat}");
    assert_eq!(repeat["status"], "done");
    assert_eq!(repeat["cached"], true, "Alice's own repeat: {repeat}");
    let id = repeat["job_id"].as_str().unwrap();
    let (_, again) = c.get(&format!("/predictions/{id}"), &ta).await;
    assert_eq!(again["cached"], true, "{again}");
}

/// The result every test job that a worker "finishes" here gets.
fn beagle() -> api_types::JobResult {
    serde_json::from_value(serde_json::json!({
        "predictions": [{"label": "beagle", "class_id": 162, "score": 0.9}],
        "model": "efficientnet-lite0", "elapsed_ms": 4.0}))
    .unwrap()
}

/// Plays the worker and the persistence consumer (neither runs here) for the queued job
/// `job_id`: the queue's own finish script records it done with [`beagle`] and `thumb`
/// (writing the cache entry wherever the worker writes it), and the history row gets the same.
async fn finish_as_the_worker(c: &Ctx, job_id: &str, thumb: &[u8]) {
    let client = redis::Client::open(c.redis.url()).unwrap();
    let mut worker = shared::queue::Consumer {
        conn: client.get_connection_manager().await.unwrap(),
        name: "test-worker".into(),
        result_ttl: std::time::Duration::from_secs(60),
    };
    let models = ["efficientnet-lite0".to_owned()];
    worker.ensure_groups(&models).await.unwrap();
    let delivery = worker.read(&models, 1, 100).await.unwrap().pop().unwrap();
    let job = delivery.job.clone().unwrap();
    assert_eq!(job.job_id, job_id, "the one queued job");
    let outcome = shared::queue::Outcome::Done {
        result: beagle(),
        thumb: thumb.to_vec(),
        scores: Vec::new(),
    };
    let recorded = worker.finish(&delivery, &job, outcome).await.unwrap();
    assert_eq!(recorded, shared::queue::Recorded::First);
    c.state
        .db
        .finish_prediction(&api::db::Finished {
            job_id,
            status: shared::JobStatus::Done,
            result: Some(&beagle()),
            error: None,
            thumbnail: Some(thumb).filter(|t| !t.is_empty()),
            finished_ms: shared::time_util::now_ms(),
            cached: false,
        })
        .await
        .unwrap();
}

/// Issue 24, finding 2: repeats of one upload used to copy its thumbnail into every job record
/// (Redis) and history row (database) and skipped the Redis high-water mark, so one account
/// could fill Redis for everyone. Now a repeat writes no thumbnail anywhere (the history keeps
/// one per content, shown to every job of that content) and gets 503 near Redis's ceiling.
async fn repeats_store_no_second_thumbnail_and_stop_when_redis_is_nearly_full(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let (b, tb) = c.user("Bob", "bob@example.com").await;
    let photo = test_support::unique_photo("repeated");
    let (_, first) = upload_queued(&c, &ta, &photo, "a.jpg").await;
    let first_id = first["job_id"].as_str().unwrap().to_owned();
    // What the worker's finish leaves: the cache entry (result + thumbnail) and, through the
    // persistence consumer, the history row with the thumbnail.
    let thumb = vec![0xff, 0xd8, 0xff, 0xe0, 7];
    finish_as_the_worker(&c, &first_id, &thumb).await;
    let mut conn = c.redis_conn().await;
    let mut repeats = Vec::new();
    for name in ["a2.jpg", "a3.jpg"] {
        let (s, v) = upload_named(&c, &ta, &photo, name).await;
        assert_eq!(s, StatusCode::OK, "a cache hit: {v}");
        let id = v["job_id"].as_str().unwrap().to_owned();
        let fields: Vec<String> = redis::AsyncCommands::hkeys(&mut conn, shared::keys::job(&id))
            .await
            .unwrap();
        assert!(!fields.is_empty(), "the repeat has its record");
        assert!(
            !fields.iter().any(|f| f == shared::keys::field::THUMB),
            "no thumbnail copy in the repeat's record: {fields:?}"
        );
        repeats.push((ta.clone(), id));
    }
    // Bob's copy is a job of its own (the cache is per account); finished, it shares the
    // content's one thumbnail.
    let (s, v) = upload_named(&c, &tb, &photo, "b.jpg").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let bobs = v["job_id"].as_str().unwrap().to_owned();
    let (s, _, _) = c
        .get_bytes(&format!("/predictions/{bobs}/thumbnail"), &tb)
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "no thumbnail before his own job is done"
    );
    finish_as_the_worker(&c, &bobs, &thumb).await;
    repeats.push((tb.clone(), bobs));
    let stored: i64 = c
        .scalar("SELECT COUNT(*) AS n FROM thumbnails WHERE $1 = $1", 0, "n")
        .await;
    assert_eq!(
        stored, 1,
        "one thumbnail for one content, however many jobs"
    );
    // Every job of that content, anyone's, shows it; nobody else's job is reachable.
    for (token, id) in repeats.iter().chain([&(ta.clone(), first_id.clone())]) {
        let (s, _, bytes) = c
            .get_bytes(&format!("/predictions/{id}/thumbnail"), token)
            .await;
        assert_eq!(s, StatusCode::OK, "{id}");
        assert_eq!(bytes, thumb);
    }
    let (s, _, _) = c
        .get_bytes(&format!("/predictions/{first_id}/thumbnail"), &tb)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "Alice's job stays hers");

    // Redis at ~95 % of its maxmemory: a repeat is refused like a new upload.
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used * 100 / 95)
        .query_async(&mut conn)
        .await
        .unwrap();
    // The API rereads Redis's memory at most once a second: within a few seconds it refuses.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (s, v) = loop {
        let (s, v) = upload_named(&c, &ta, &photo, "a4.jpg").await;
        if s != StatusCode::OK || std::time::Instant::now() > deadline {
            break (s, v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "unavailable", "{v}");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("512mb")
        .query_async(&mut conn)
        .await
        .unwrap();

    // Deleting Alice keeps the thumbnail Bob's job still shows; deleting Bob removes it.
    for (id, token, left) in [(a, &ta, 1), (b, &tb, 0)] {
        let (s, _, _) = c
            .raw(
                Method::DELETE,
                &format!("/users/{id}"),
                Some(token),
                None,
                Vec::new(),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let stored: i64 = c
            .scalar("SELECT COUNT(*) AS n FROM thumbnails WHERE $1 = $1", 0, "n")
            .await;
        assert_eq!(stored, left, "thumbnails of contents nobody refers to go");
    }
}

async fn info_lists_display_fields_and_the_callers_own_waiting_jobs(b: Backend) {
    let c = Ctx::new(b).await;
    let (_, ta) = c.user("Alice", "alice@example.com").await;
    let (_, tb) = c.user("Bob", "bob@example.com").await;
    for n in 0..2 {
        let (s, v) = upload_named(
            &c,
            &ta,
            &test_support::unique_photo(&format!("w{n}")),
            "a.jpg",
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    let (s, _, anon) = c.json(Method::GET, "/info", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(anon.get("your_jobs_waiting"), None, "{anon}");
    assert_eq!(anon["queue_depth"], 2);
    let lite = anon["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "efficientnet-lite0")
        .unwrap();
    assert_eq!(lite["display_name"], "EfficientNet-Lite0");
    assert_eq!(lite["speed"], "fast");
    assert!(lite["top1_accuracy_pct"].as_f64().unwrap() > 70.0);
    // No worker in these tests: nothing is available to choose.
    assert_eq!(lite["available"], false, "{lite}");
    let (_, mine) = c.get("/info", &ta).await;
    assert_eq!(mine["your_jobs_waiting"], 2, "{mine}");
    let (_, theirs) = c.get("/info", &tb).await;
    assert_eq!(
        theirs["your_jobs_waiting"], 0,
        "other people's jobs are not counted: {theirs}"
    );
}
