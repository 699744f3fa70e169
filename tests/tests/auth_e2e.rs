//! End-to-end over HTTP with the real api and worker binaries: register, log in, classify with
//! the token, history newest first, feedback, isolation between users, and an API restart
//! (kill -9, new process on the same database) that keeps users, history and feedback.
//! Once on SQLite and once on a fresh PostgreSQL database (created and dropped by
//! `test_support::TestDb`; unreachable PostgreSQL fails the test).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use api_types::{
    Feedback, FeedbackPage, Job, JobAccepted, JobPage, JobStatus, Token, TokenType, User,
};
use serde_json::json;
use test_support::*;

fn photo(tag: &str) -> Vec<u8> {
    unique_photo(&format!("auth-e2e-{tag}"))
}

fn job_ids(list: &JobPage) -> Vec<String> {
    list.items.iter().map(|j| j.job_id.clone()).collect()
}

async fn register_classify_history_restart(backend: Backend) {
    let mut stack = Stack::builder().backend(backend).workers(1).start().await;
    let api_url = stack.api_url().to_owned();

    // Register, then log in with the OAuth2 form as well as JSON.
    let c = Client::register(&api_url).await;
    assert!(!c.token.is_empty());
    let r = c
        .http
        .post(format!("{api_url}/login"))
        .form(&[("username", c.email.as_str()), ("password", "password123")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let form_login: Token = r.json().await.unwrap();
    assert_eq!(form_login.token_type, TokenType::Bearer);
    // Without a token nothing is classified.
    // (Its own connection pool: the API answers 401 before reading the upload and closes
    // that connection.)
    let anon = c.anonymous();
    let (status, _, _) = anon.upload("/predictions", photo("anon"), None).await;
    assert_eq!(status, 401);

    // Three different images, each classified with the token.
    let mut jobs = Vec::new();
    for i in 0..3 {
        let (status, body, _) = c.upload("/predictions", photo(&i.to_string()), None).await;
        assert_eq!(status, 202, "{body}\n{}", stack.api.proc.log_text());
        let id = typed::<JobAccepted>(&body).job_id;
        let job = c.wait_done(&id, Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(top1(&job), "academic gown", "{job:?}");
        jobs.push(id);
    }

    // History: all three, newest first, recorded as done (the recorder is asynchronous).
    let newest_first: Vec<String> = jobs.iter().rev().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let hist = loop {
        let hist: JobPage = c.get_ok("/predictions").await;
        let all_done = hist.items.iter().all(|j| j.status == JobStatus::Done);
        if all_done || Instant::now() > deadline {
            break hist;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(hist.total, 3, "{hist:?}");
    assert_eq!(job_ids(&hist), newest_first);
    for j in &hist.items {
        assert_eq!(
            j.status,
            JobStatus::Done,
            "history records the result: {j:?}"
        );
        assert_eq!(top1(j), "academic gown");
    }

    // Feedback on the second job.
    let (status, fb) = c
        .post_json(
            "/feedback",
            &json!({"job_id": jobs[1], "predicted_class": "academic gown", "score": 0.25,
               "feedback": "close, but it is a uniform", "correct_label": "military uniform",
               "is_correct": false}),
        )
        .await;
    assert_eq!(status, 201, "{fb}\n{}", stack.api.proc.log_text());
    let fb: Feedback = typed(&fb);
    assert_eq!(fb.job_id.as_deref(), Some(jobs[1].as_str()));
    // The history now carries it on that job (and only there).
    let hist: JobPage = c.get_ok("/predictions").await;
    let marked: Vec<bool> = hist.items.iter().map(|j| j.feedback.is_some()).collect();
    let expect: Vec<bool> = hist.items.iter().map(|j| j.job_id == jobs[1]).collect();
    assert_eq!(marked, expect, "{hist:?}");

    // A second user sees none of it.
    let other = Client::register(&api_url).await;
    for id in &jobs {
        let (status, body) = other.get(&format!("/predictions/{id}")).await;
        assert_eq!(status, 404, "{body}");
    }
    let (status, body) = other
        .post_json(
            "/feedback",
            &json!({"job_id": jobs[0], "predicted_class": "x", "score": 0.5, "feedback": "mine?"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let h: JobPage = other.get_ok("/predictions").await;
    assert_eq!(h.total, 0);
    let (status, _) = other.get(&format!("/users/{}", c.user_id)).await;
    assert_eq!(status, 404);
    let (status, _) = other.get("/users").await;
    assert_eq!(status, 403);

    // Crash the API and start a new process on the same database.
    stack.restart_api().await.unwrap();
    let api2_url = stack.api_url().to_owned();
    let c2 = c.with_base(&api2_url);
    // The old token is still valid (same secret), and logging in works too.
    let me: User = c2.get_ok("/users/me").await;
    assert_eq!(me.id, c.user_id);
    let token = login(&c2.http, &api2_url, &c.email, PASSWORD).await;
    assert!(!token.is_empty(), "the user survives the restart");
    let c2 = Client { token, ..c2 };
    let hist2: JobPage = c2.get_ok("/predictions").await;
    assert_eq!(hist2.total, 3, "{hist2:?}");
    assert_eq!(job_ids(&hist2), newest_first);
    assert_eq!(hist2.items, hist.items, "history unchanged by the restart");
    let fbs: FeedbackPage = c2.get_ok("/feedback").await;
    assert_eq!(fbs.total, 1, "{fbs:?}");
    assert_eq!(fbs.items[0], fb);
    for id in &jobs {
        let job: Job = c2.get_ok(&format!("/predictions/{id}")).await;
        assert_eq!(job.status, JobStatus::Done);
    }
    let other2 = other.with_base(&api2_url);
    for id in &jobs {
        let (status, body) = other2.get(&format!("/predictions/{id}")).await;
        assert_eq!(status, 404, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_register_classify_history_restart() {
    register_classify_history_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_register_classify_history_restart() {
    register_classify_history_restart(Backend::Postgres).await;
}
