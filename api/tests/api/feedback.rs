//! Feedback: round trip, newest first, per user, validation.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

both_backends!(feedback_round_trip_newest_first,);

async fn feedback_round_trip_newest_first(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let (_, tb) = c.user("Bob", "bob@example.com").await;
    let [job1, job2] = c.history(a, [(2000, true), (1000, false)]).await;

    let f1 = c
        .feedback(
            &ta,
            json!({"job_id": job1, "predicted_class": "academic gown", "score": 0.25,
                   "feedback": "wrong, it is a uniform", "correct_label": "military uniform",
                   "is_correct": false}),
        )
        .await;
    assert_eq!(f1["job_id"], job1.as_str());
    assert!(f1["image_file_name"].as_str().unwrap().ends_with(".jpg"));
    assert_eq!(f1["predicted_class"], "academic gown");
    assert!((f1["score"].as_f64().unwrap() - 0.25).abs() < 1e-9);
    assert_eq!(f1["feedback"], "wrong, it is a uniform");
    assert_eq!(f1["correct_label"], "military uniform");
    assert_eq!(f1["is_correct"], false);
    assert!(f1["created_at"].as_str().unwrap().contains('T'));
    // By image name, for the second job.
    let image2 = c
        .state
        .db
        .prediction(&job2)
        .await
        .unwrap()
        .unwrap()
        .image_file_name;
    let f2 = c
        .feedback(
            &ta,
            json!({"image_file_name": image2, "predicted_class": "mortarboard", "score": 1.0,
                   "feedback": "", "is_correct": true}),
        )
        .await;
    assert_eq!(f2["job_id"], job2.as_str());
    assert_eq!(f2["is_correct"], true);
    assert_eq!(f2["correct_label"], Value::Null);
    let f3 = c
        .feedback(
            &ta,
            json!({"job_id": job1, "predicted_class": "academic gown", "score": 0.0,
                   "feedback": "third"}),
        )
        .await;

    let (s, list) = c.get("/feedback", &ta).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3);
    let ids: Vec<i64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            f3["id"].as_i64().unwrap(),
            f2["id"].as_i64().unwrap(),
            f1["id"].as_i64().unwrap()
        ],
        "newest first"
    );
    assert_eq!(list["items"][2], f1, "stored as returned");
    let (s, page) = c.get("/feedback?page=2&per_page=2", &ta).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], f1["id"]);

    // Bob sees none of it and cannot give feedback on Alice's jobs.
    let (s, list) = c.get("/feedback", &tb).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["total"], 0);
    for body in [
        json!({"job_id": job1, "predicted_class": "x", "score": 0.5, "feedback": "mine?"}),
        json!({"image_file_name": image2, "predicted_class": "x", "score": 0.5}),
    ] {
        let (s, v) = c.post("/feedback", Some(&tb), body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    }
    // Invalid feedback is a 422 naming the field.
    for (body, field) in [
        (
            json!({"job_id": job1, "predicted_class": "x", "score": 1.5}),
            "score",
        ),
        (json!({"predicted_class": "x", "score": 0.5}), "job_id"),
    ] {
        let (s, v) = c.post("/feedback", Some(&ta), body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(error_field(&v), field);
    }
    // Without a token: 401.
    let (s, _) = c
        .post(
            "/feedback",
            None,
            json!({"job_id": job1, "predicted_class": "x", "score": 0.5}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
