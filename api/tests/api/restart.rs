//! A restart (new state on the same database) keeps users, history and feedback.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::*;

both_backends!(restart_keeps_users_history_and_feedback,);

async fn restart_keeps_users_history_and_feedback(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let [j1, j2, j3] = c
        .history(a, [(3000, true), (2000, true), (1000, false)])
        .await;
    let verdict = json!({"feedback": "persist me", "correct_label": "suit"});
    let fb = c.feedback(&ta, gown_feedback(&j2, verdict)).await;
    let (_, hist_before) = c.get("/predictions", &ta).await;

    let c = c.restart().await;
    // The old token still works (same secret), and so does logging in again.
    let (s, me) = c.get("/users/me", &ta).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["id"], a);
    let t2 = c.login("alice@example.com", PASSWORD).await;
    let (s, hist) = c.get("/predictions", &t2).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hist, hist_before);
    assert_eq!(
        item_strs(&hist, "job_id"),
        vec![j3.as_str(), j2.as_str(), j1.as_str()]
    );
    assert_eq!(
        hist["items"][1]["result"]["predictions"][0]["label"],
        "academic gown"
    );
    let (s, list) = c.get("/feedback", &t2).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0], fb);
    let (s, job) = c.get(&format!("/predictions/{j1}"), &t2).await;
    assert_eq!(s, StatusCode::OK, "{job}");
    assert_eq!(job["status"], "done");
    // The admin is not duplicated by the second start-up.
    let admin = c.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (s, users) = c.get("/users", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(users["total"], 2);
    // New writes after the restart work (sequences intact).
    let (s, u) = c.register("Bob", "bob@example.com", PASSWORD).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert!(u["id"].as_i64().unwrap() > a);
    let fb2 = c
        .feedback(
            &t2,
            json!({"job_id": j3, "predicted_class": "x", "score": 0.1}),
        )
        .await;
    assert!(fb2["id"].as_i64().unwrap() > fb["id"].as_i64().unwrap());
}
