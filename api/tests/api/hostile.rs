//! Hostile input: injection strings and huge and odd text are stored or refused with a JSON 4xx,
//! never a 5xx (malformed ids and queries: `contract.rs`).

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

both_backends!(hostile_strings_never_cause_5xx);

const INJECTIONS: [&str; 4] = [
    "'; DROP TABLE users; --",
    "\" OR 1=1 --",
    "x'); DELETE FROM feedback; --",
    "Robert'); DROP TABLE predictions;--",
];

fn hostile_values() -> Vec<String> {
    let mut v: Vec<String> = INJECTIONS.iter().map(|s| (*s).to_owned()).collect();
    v.push("a".repeat(10 * 1024));
    v.push(format!("{}'; DROP TABLE users; --", "é".repeat(5 * 1024)));
    v.push("nul \u{0} byte'; --".to_owned());
    v
}

#[track_caller]
fn assert_clean(s: StatusCode, what: &str) {
    assert!(
        s.is_success() || s.is_client_error(),
        "{what}: got {s}, expected stored (2xx) or rejected (4xx)"
    );
}

async fn hostile_strings_never_cause_5xx(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let job = c.prediction(a, shared::time_util::now_ms(), true).await;
    let mut stored_names = Vec::new();
    for (i, h) in hostile_values().iter().enumerate() {
        // /users: each text field in turn.
        let email = format!("h{i}@example.com");
        let (s, v) = c.register(h, &email, PASSWORD).await;
        assert_clean(s, &format!("name {i}: {v}"));
        if s == StatusCode::CREATED {
            assert_eq!(v["name"], h.trim());
            stored_names.push((email.clone(), h.trim().to_owned()));
        } else if s == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(error_field(&v), "name");
        }
        let (s, v) = c.register("Hostile", h, PASSWORD).await;
        assert_clean(s, &format!("email {i}: {v}"));
        let (s, v) = c
            .register("Hostile", &format!("{h}@example.com"), PASSWORD)
            .await;
        assert_clean(s, &format!("email local part {i}: {v}"));
        let pw_email = format!("pw{i}@example.com");
        let (s, v) = c.register("Hostile", &pw_email, h).await;
        assert_clean(s, &format!("password {i}: {v}"));
        if s == StatusCode::CREATED {
            // A stored hostile password logs in exactly.
            let t = c.login(&pw_email, h).await;
            assert!(!t.is_empty());
        }

        // /login, JSON and form.
        for body in [
            json!({"email": h, "password": PASSWORD}),
            json!({"email": "alice@example.com", "password": h}),
            json!({"username": h, "password": h}),
        ] {
            let (s, v) = c.post("/login", None, body).await;
            assert_clean(s, &format!("login {i}: {v}"));
            assert_ne!(s, StatusCode::OK);
        }
        let enc: String = h
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect::<Vec<_>>()
            .concat();
        for form in [
            format!("username={enc}&password=whatever1"),
            format!("username=alice%40example.com&password={enc}"),
        ] {
            let (s, _, body) = c.login_form(form).await;
            assert_clean(s, &format!("login form {i}"));
            assert_ne!(s, StatusCode::OK);
            serde_json::from_slice::<Value>(&body).unwrap();
        }

        // /feedback: each text field in turn.
        let base = json!({"job_id": job, "predicted_class": "x", "score": 0.5, "feedback": "ok", "correct_label": "y"});
        for field in ["predicted_class", "feedback", "correct_label"] {
            let mut body = base.clone();
            body[field] = json!(h);
            let (s, v) = c.post("/feedback", Some(&ta), body).await;
            assert_clean(s, &format!("feedback.{field} {i}: {v}"));
            if s == StatusCode::CREATED {
                assert_eq!(v[field], h.as_str());
            } else if s == StatusCode::UNPROCESSABLE_ENTITY {
                assert_eq!(error_field(&v), field, "{v}");
            }
        }
        for field in ["job_id", "image_file_name"] {
            let mut body = base.clone();
            if field == "image_file_name" {
                body.as_object_mut().unwrap().remove("job_id");
            }
            body[field] = json!(h);
            let (s, v) = c.post("/feedback", Some(&ta), body).await;
            assert_clean(s, &format!("feedback.{field} {i}: {v}"));
            assert!(s.is_client_error(), "no such job: {v}");
        }
        // In the path and the query too.
        let uri = format!("/predictions/{enc}");
        let (s, _) = c.get(&uri, &ta).await;
        assert_clean(s, &format!("job path {i}"));
    }
    c.tables_exist().await;
    // Stored hostile names come back byte for byte.
    let admin = c.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (s, list) = c.get("/users?per_page=100", &admin).await;
    assert_eq!(s, StatusCode::OK);
    for (email, name) in stored_names {
        let u = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email.as_str())
            .unwrap();
        assert_eq!(u["name"], name.as_str());
    }
    let (s, fb) = c.get("/feedback?per_page=100", &ta).await;
    assert_eq!(s, StatusCode::OK);
    assert!(fb["total"].as_i64().unwrap() > 0);
    let (s, me) = c.get("/users/me", &ta).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["id"], a);
}
