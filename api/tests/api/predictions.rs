//! History and job views: per user, foreign jobs are 404, thumbnails, uploads need a user.

use axum::http::{header, Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

both_backends!(history_is_per_user_and_foreign_jobs_are_404,);

fn multipart(bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("b{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
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
