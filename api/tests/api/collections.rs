//! Collections: create, add a folder's files (queued, duplicate, present, refused per part),
//! counts kept as outcomes are recorded (once, however often redelivered), items by state,
//! the export (CSV quoting, the formula guard, JSON lines), ownership and delete.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

both_backends!(
    a_collection_classifies_a_folder_counts_and_exports_it,
    parts_over_the_quota_are_refused_alone_with_when_to_send_them_again,
);

/// `POST /collections/{id}/images` with one `file` part per `(path, bytes)`.
async fn add(c: &Ctx, token: &str, id: i64, parts: &[(&str, Vec<u8>)]) -> (StatusCode, Value) {
    let boundary = format!("b{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (path, bytes) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/collections/{id}/images"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap();
    let (s, _, b) = c.send(req).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// Records `job_id`'s outcome as the recorder does.
async fn finish(c: &Ctx, job_id: &str, top: Option<(&str, f32)>) {
    let result = top.map(|(label, score)| api_types::JobResult {
        predictions: vec![api_types::Prediction {
            label: label.into(),
            class_id: 400,
            score,
        }],
        model: "efficientnet-lite0".into(),
        elapsed_ms: 5.0,
    });
    let finished = api::db::Finished {
        job_id,
        status: if top.is_some() {
            shared::JobStatus::Done
        } else {
            shared::JobStatus::Failed
        },
        result: result.as_ref(),
        error: top.is_none().then_some("the image could not be decoded"),
        thumbnail: None,
        finished_ms: shared::time_util::now_ms(),
        cached: false,
    };
    assert!(c.state.db.finish_prediction(&finished).await.unwrap());
}

async fn a_collection_classifies_a_folder_counts_and_exports_it(b: Backend) {
    let c = Ctx::new(b).await;
    let (_, ta) = c.user("Alice", "alice@example.com").await;
    let (_, tb) = c.user("Bob", "bob@example.com").await;

    let (s, v) = c
        .post(
            "/collections",
            Some(&ta),
            json!({"name": "holiday", "min_confidence": 0.5}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_i64().unwrap();
    assert_eq!(v["counts"]["items"], 0);
    let (s, _) = c
        .post("/collections", Some(&ta), json!({"name": "holiday"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = c
        .post(
            "/collections",
            Some(&ta),
            json!({"name": "x", "min_confidence": 2}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("min_confidence"))
    );

    let (a, b2, f) = (
        test_support::unique_photo("a"),
        test_support::unique_photo("b"),
        test_support::unique_photo("f"),
    );
    let (s, v) = add(
        &c,
        &ta,
        id,
        &[
            ("2019/beach/a.jpg", a.clone()),
            ("2019/b.jpg", b2.clone()),
            ("copies/a.jpg", a.clone()),
            ("../evil.jpg", a.clone()),
            ("/etc/abs.jpg", a.clone()),
            ("notes.jpg", b"this is text, not a photo".to_vec()),
            ("=cmd.jpg", f.clone()),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let outcomes: Vec<&str> = v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "queued",
            "queued",
            "duplicate",
            "refused",
            "refused",
            "refused",
            "queued"
        ],
        "{v}"
    );
    assert_eq!(v["parts"][2]["duplicate_of"], "2019/beach/a.jpg");
    assert_eq!(
        v["parts"][2]["job_id"], v["parts"][0]["job_id"],
        "a copy points at the same job"
    );
    assert_eq!(v["parts"][5]["error"]["code"], "unsupported_media_type");
    assert!(
        v["parts"][3]["error"]["message"]
            .as_str()
            .unwrap()
            .contains(".."),
        "{v}"
    );
    let job = |i: usize| v["parts"][i]["job_id"].as_str().unwrap().to_owned();
    let (ja, jb, jf) = (job(0), job(1), job(6));

    let (_, col) = c.get(&format!("/collections/{id}"), &ta).await;
    assert_eq!(
        col["counts"],
        json!({"items": 4, "queued": 3, "done": 0, "failed": 0, "duplicate": 1, "uncertain": 0})
    );

    finish(&c, &ja, Some(("academic gown", 0.9))).await;
    finish(&c, &ja, Some(("academic gown", 0.9))).await; // redelivered: counted once
    finish(&c, &jb, None).await;
    finish(&c, &jf, Some(("mortarboard", 0.2))).await;
    let (_, col) = c.get(&format!("/collections/{id}"), &ta).await;
    assert_eq!(
        col["counts"],
        json!({"items": 4, "queued": 0, "done": 2, "failed": 1, "duplicate": 1, "uncertain": 1}),
        "{col}"
    );
    assert_eq!(
        col["histogram"],
        json!([{"label": "academic gown", "count": 1}, {"label": "mortarboard", "count": 1}])
    );
    assert!(col.get("eta_seconds").is_none(), "nothing queued: {col}");

    // A resumed upload: the same path and bytes are present; other bytes at a held path refused.
    let (_, v) = add(
        &c,
        &ta,
        id,
        &[("2019/beach/a.jpg", a.clone()), ("2019/b.jpg", f.clone())],
    )
    .await;
    assert_eq!(v["parts"][0]["outcome"], "present", "{v}");
    assert_eq!(v["parts"][1]["error"]["code"], "conflict", "{v}");

    let (_, items) = c
        .get(&format!("/collections/{id}/items?state=done"), &ta)
        .await;
    assert_eq!(items["total"], 2, "{items}");
    let (_, items) = c
        .get(&format!("/collections/{id}/items?uncertain=true"), &ta)
        .await;
    assert_eq!(items["items"][0]["path"], "=cmd.jpg", "{items}");
    let (_, items) = c
        .get(&format!("/collections/{id}/items?state=duplicate"), &ta)
        .await;
    assert_eq!(
        (
            items["total"].as_i64(),
            items["items"][0]["top_label"].as_str()
        ),
        (Some(1), Some("academic gown"))
    );
    let (s, _) = c
        .get(&format!("/collections/{id}/items?state=bogus"), &ta)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let (s, h, csv) = c.get_bytes(&format!("/collections/{id}/export"), &ta).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("path,original_file_name,sha256,state"));
    let gown = lines
        .iter()
        .find(|l| l.starts_with("2019/beach/a.jpg,a.jpg,"))
        .unwrap();
    assert!(
        gown.contains(",done,,academic gown,0.900000,\"[{\"\"label\"\":\"\"academic gown\"\""),
        "{gown}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("'=cmd.jpg,'=cmd.jpg,")),
        "formula guard: {csv}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("copies/a.jpg,a.jpg,") && l.contains(",duplicate,")),
        "{csv}"
    );
    let (s, _, jsonl) = c
        .get_bytes(&format!("/collections/{id}/export?format=jsonl"), &ta)
        .await;
    assert_eq!(s, StatusCode::OK);
    let rows: Vec<Value> = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    assert!(rows
        .iter()
        .any(|r| r["state"] == "failed" && r["error"].is_string()));

    // Another user sees none of it.
    for path in ["", "/items", "/export"] {
        let (s, _) = c.get(&format!("/collections/{id}{path}"), &tb).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (s, _) = add(&c, &tb, id, &[("x.jpg", a.clone())]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = c.delete(&format!("/collections/{id}"), &tb).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = c.get("/collections", &tb).await;
    assert_eq!(list["total"], 0);
    let (_, list) = c.get("/collections", &ta).await;
    assert_eq!(list["total"], 1);

    // An empty collection exports its header only.
    let (_, empty) = c
        .post("/collections", Some(&ta), json!({"name": "empty"}))
        .await;
    let (_, _, csv) = c
        .get_bytes(&format!("/collections/{}/export", empty["id"]), &ta)
        .await;
    assert_eq!(String::from_utf8(csv).unwrap().matches("\r\n").count(), 1);

    // Deleting the collection keeps its jobs in the history.
    let (s, _) = c.delete(&format!("/collections/{id}"), &ta).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c.get(&format!("/collections/{id}"), &ta).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, hist) = c.get("/predictions", &ta).await;
    assert_eq!(hist["total"], 3, "{hist}");
}

async fn parts_over_the_quota_are_refused_alone_with_when_to_send_them_again(b: Backend) {
    let c = Ctx::with(b, &["--max-queued-jobs-per-user", "2"]).await;
    let (alice, ta) = c.user("Alice", "alice@example.com").await;
    let (_, v) = c
        .post("/collections", Some(&ta), json!({"name": "big"}))
        .await;
    let id = v["id"].as_i64().unwrap();
    let photos: Vec<Vec<u8>> = (0..3)
        .map(|i| test_support::unique_photo(&format!("q{i}")))
        .collect();
    let parts = [
        ("a.jpg", photos[0].clone()),
        ("b.jpg", photos[1].clone()),
        ("c.jpg", photos[2].clone()),
        ("not.jpg", b"text".to_vec()),
    ];
    let (s, v) = add(&c, &ta, id, &parts).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let codes: Vec<&str> = v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["error"]["code"]
                .as_str()
                .unwrap_or(p["outcome"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        codes,
        [
            "queued",
            "queued",
            "quota_exceeded",
            "unsupported_media_type"
        ],
        "{v}"
    );
    assert_eq!(v["retry_after_seconds"], 5, "{v}");

    // Once a job is done (the worker gives its quota back) the refused part goes in; what is
    // held answers `present`.
    let first = v["parts"][0]["job_id"].as_str().unwrap().to_owned();
    finish(&c, &first, Some(("academic gown", 0.9))).await;
    let quota = shared::queue::keys::quota(alice);
    let _: i64 = redis::AsyncCommands::hincr(
        &mut c.redis_conn().await,
        &quota,
        shared::queue::keys::quota_field::JOBS,
        -1,
    )
    .await
    .unwrap();
    let (_, v) = add(&c, &ta, id, &parts[..3]).await;
    let outcomes: Vec<&str> = v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["present", "present", "queued"], "{v}");
    assert_eq!(v.get("retry_after_seconds"), None, "{v}");
}
