//! Feedback: round trip, newest first, per user, validation.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

both_backends!(
    feedback_round_trip_newest_first,
    feedback_is_one_per_job_and_shown_on_the_job,
    an_oversized_feedback_body_is_413_stating_the_real_limit,
);

async fn feedback_round_trip_newest_first(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let (_, tb) = c.user("Bob", "bob@example.com").await;
    let [job1, job2, job3] = c
        .history(a, [(3000, true), (2000, false), (1000, true)])
        .await;

    let wrong = json!({"feedback": "wrong, it is a uniform", "correct_label": "military uniform",
                       "is_correct": false});
    let f1 = c.feedback(&ta, gown_feedback(&job1, wrong)).await;
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
            json!({"job_id": job3, "predicted_class": "academic gown", "score": 0.0,
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

/// A second feedback on a job replaces the first (200, same id); the job view and the history
/// carry the caller's feedback; `feedback=wrong` finds it.
async fn feedback_is_one_per_job_and_shown_on_the_job(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let [job, other] = c.history(a, [(2000, true), (1000, true)]).await;
    let (s, v) = c.get(&format!("/predictions/{job}"), &ta).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.get("feedback"), None, "no feedback yet: {v}");

    let right = json!({"feedback": "", "is_correct": true});
    let first = c.feedback(&ta, gown_feedback(&job, right)).await;
    let wrong = json!({"feedback": "on second look, a uniform",
                       "correct_label": "military uniform", "is_correct": false});
    let (s, second) = c
        .post("/feedback", Some(&ta), gown_feedback(&job, wrong))
        .await;
    assert_eq!(s, StatusCode::OK, "a change, not a new row: {second}");
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["is_correct"], false);
    assert_eq!(second["correct_label"], "military uniform");
    assert_eq!(c.count("feedback", a).await, 1);

    let (_, v) = c.get(&format!("/predictions/{job}"), &ta).await;
    assert_eq!(v["feedback"]["is_correct"], false, "{v}");
    assert_eq!(v["feedback"]["correct_label"], "military uniform");
    assert_eq!(v["feedback"]["feedback"], "on second look, a uniform");
    let (_, hist) = c.get("/predictions", &ta).await;
    assert_eq!(hist["items"][1]["job_id"], job.as_str());
    assert_eq!(hist["items"][1]["feedback"]["is_correct"], false);
    assert_eq!(hist["items"][0].get("feedback"), None, "{hist}");
    for (filter, expect) in [
        ("wrong", vec![job.as_str()]),
        ("given", vec![job.as_str()]),
        ("right", vec![]),
        ("none", vec![other.as_str()]),
    ] {
        let (s, list) = c.get(&format!("/predictions?feedback={filter}"), &ta).await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(item_strs(&list, "job_id"), expect, "feedback={filter}");
        assert_eq!(list["total"], expect.len());
    }
    // Bob's feedback on nothing of his does not show on Alice's job.
    let (_, tb) = c.user("Bob", "bob@example.com").await;
    let (s, _) = c.get(&format!("/predictions/{job}"), &tb).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Issue 24, finding 7c: a body over the limit used to say "limit of 0 bytes". The 413 states
/// the limit that applies, and it is the real one: a body of exactly that size passes it (and is
/// judged on its content), one byte more does not.
async fn an_oversized_feedback_body_is_413_stating_the_real_limit(b: Backend) {
    let c = Ctx::new(b).await;
    let (_, token) = c.user("Alice", "alice@example.com").await;
    let send = |len: usize| {
        // `{"feedback":"xx…"}`: 15 bytes of JSON around the text.
        let body = format!(r#"{{"feedback":"{}"}}"#, "x".repeat(len - 15));
        assert_eq!(body.len(), len);
        let (c, token) = (&c, token.clone());
        async move {
            let (s, _, bytes) = c
                .raw(
                    Method::POST,
                    "/feedback",
                    Some(&token),
                    Some("application/json"),
                    body,
                )
                .await;
            (s, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let (s, v) = send(c.state.cfg.max_upload_bytes + 128 * 1024).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(error_code(&v), ErrorCode::PayloadTooLarge);
    let message = v["error"]["message"].as_str().unwrap();
    let limit: usize = message
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no limit stated: {message}"));
    assert!(limit > 0, "{message}");
    let (s, v) = send(limit + 1).await;
    assert_eq!(
        s,
        StatusCode::PAYLOAD_TOO_LARGE,
        "one byte over {limit}: {v}"
    );
    let (s, v) = send(limit).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "within {limit}, judged on content: {v}"
    );
}
