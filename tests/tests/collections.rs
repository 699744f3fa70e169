//! Collections end to end: real api and worker, the real EfficientNet-Lite0 model, a private
//! Redis. A folder's files go up in one multipart body; the recorder counts each result as the
//! worker finishes it, and the export carries the model's answers.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_folder_is_classified_counted_and_exported() {
    let (_stack, c) = Stack::builder().workers(1).start_with_client().await;
    let (s, col) = c
        .post_json("/collections", &json!({"name": "folder"}))
        .await;
    assert_eq!(s, 201, "{col}");
    let id = col["id"].as_i64().unwrap();
    let (a, b) = (unique_photo("col-a"), unique_photo("col-b"));
    let part = |path: &str, bytes: &[u8]| {
        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(path.to_owned())
    };
    let form = reqwest::multipart::Form::new()
        .part("file", part("trip/a.jpg", &a))
        .part("file", part("trip/b.jpg", &b))
        .part("file", part("copy/a.jpg", &a))
        .part("file", part("notes.jpg", b"plain text"));
    let r = c
        .http
        .post(format!("{}/collections/{id}/images", c.base))
        .bearer_auth(&c.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let added: Value = r.json().await.unwrap();
    assert_eq!(
        (
            added["queued"].as_u64(),
            added["duplicate"].as_u64(),
            added["refused"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{added}"
    );

    let started = Instant::now();
    let col = loop {
        let (_, col) = c.get(&format!("/collections/{id}")).await;
        if col["counts"]["done"] == 2 || started.elapsed() > Duration::from_secs(30) {
            break col;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        col["counts"],
        json!({"items": 3, "queued": 0, "done": 2, "failed": 0, "duplicate": 1, "uncertain": 2}),
        "{col}"
    );
    assert_eq!(
        col["histogram"][0],
        json!({"label": "academic gown", "count": 2})
    );

    let csv = c
        .http
        .get(format!("{}/collections/{id}/export", c.base))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows.iter().all(|r| r.contains(",academic gown,")), "{csv}");
    assert!(rows
        .iter()
        .any(|r| r.starts_with("copy/a.jpg,a.jpg,") && r.contains(",duplicate,")));
}
