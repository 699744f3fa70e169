//! Users: registration, validation, duplicates, who may read and delete whom, and deleting a user with their data.

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

both_backends!(
    register_returns_201_without_secrets,
    duplicate_email_is_409_case_insensitive,
    invalid_fields_are_422_naming_the_field,
    invisible_characters_are_refused_and_look_alikes_fold,
    users_cannot_touch_each_other_admin_can,
    deleting_a_user_removes_their_data,
);

async fn register_returns_201_without_secrets(b: Backend) {
    let c = Ctx::new(b).await;
    let (s, h, bytes) = c
        .raw(
            Method::POST,
            "/users",
            None,
            Some("application/json"),
            json!({"name": "  Ada Lovelace ", "email": "Ada@Example.com", "password": PASSWORD})
                .to_string(),
        )
        .await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert_eq!(s, StatusCode::CREATED, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let id = v["id"].as_i64().unwrap();
    assert!(id > 0);
    assert_eq!(v["name"], "Ada Lovelace");
    assert_eq!(v["email"], "ada@example.com");
    assert_eq!(v["is_admin"], false);
    assert!(v["created_at"].as_str().unwrap().contains('T'));
    assert!(v.get("password").is_none() && v.get("password_hash").is_none());
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "{text}"
    );
    assert_eq!(
        h.get(header::LOCATION).unwrap().to_str().unwrap(),
        format!("/users/{id}")
    );
    // The stored hash is argon2id, never the password.
    let hash: String = c
        .scalar(
            "SELECT password_hash FROM users WHERE id = $1",
            id,
            "password_hash",
        )
        .await;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    // /users/me answers with the same user.
    let token = c.login("ada@example.com", PASSWORD).await;
    let (s, me) = c.get("/users/me", &token).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["id"], id);
    assert!(me.get("password_hash").is_none());
}

async fn duplicate_email_is_409_case_insensitive(b: Backend) {
    let c = Ctx::new(b).await;
    c.user("Alice", "Alice@Example.com").await;
    for email in [
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
        " alice@Example.com ",
    ] {
        let (s, v) = c.register("Alice Two", email, PASSWORD).await;
        assert_eq!(s, StatusCode::CONFLICT, "{email}: {v}");
        assert_eq!(error_code(&v), ErrorCode::Conflict);
    }
    // Also the admin created from the config.
    let (s, _) = c.register("Mallory", "ADMIN@example.com", PASSWORD).await;
    assert_eq!(s, StatusCode::CONFLICT);
}

async fn invalid_fields_are_422_naming_the_field(b: Backend) {
    let c = Ctx::new(b).await;
    let cases = [
        ("A", "a@example.com", PASSWORD, "name"),
        ("   B   ", "a@example.com", PASSWORD, "name"),
        (&"n".repeat(51), "a@example.com", PASSWORD, "name"),
        ("Bob", "not-an-email", PASSWORD, "email"),
        ("Bob", "a@b", PASSWORD, "email"),
        ("Bob", "a b@example.com", PASSWORD, "email"),
        ("Bob", "", PASSWORD, "email"),
        ("Bob", "a@example.com", "short", "password"),
        ("Bob", "a@example.com", "1234567", "password"),
    ];
    for (name, email, pw, field) in cases {
        let (s, v) = c.register(name, email, pw).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{name}/{email}: {v}");
        assert_eq!(error_code(&v), ErrorCode::ValidationFailed);
        assert_eq!(error_field(&v), field, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(field));
    }
    // Boundaries are accepted: 2 and 50 characters, 8-character password.
    c.user("Bo", "bo@example.com").await;
    let (s, v) = c
        .register(&"n".repeat(50), "fifty@example.com", "12345678")
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // A missing field is a JSON 4xx too.
    let (s, v) = c
        .post("/users", None, json!({"name": "Bob", "email": "x@y.zz"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["code"].is_string());
}

async fn users_cannot_touch_each_other_admin_can(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let (bid, tb) = c.user("Bob", "bob@example.com").await;
    // A cannot read, delete or list.
    let (s, v) = c.get(&format!("/users/{bid}"), &ta).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = c.delete(&format!("/users/{bid}"), &ta).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = c.get("/users", &ta).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(error_code(&v), ErrorCode::Forbidden);
    // Unknown id looks the same as a foreign one.
    let (s, v2) = c.get("/users/999999", &ta).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&v2), ErrorCode::NotFound);
    // B is untouched.
    let (s, me) = c.get("/users/me", &tb).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["id"], bid);
    // Self may read.
    let (s, _) = c.get(&format!("/users/{a}"), &ta).await;
    assert_eq!(s, StatusCode::OK);

    // The admin from the config lists, reads and deletes.
    let admin = c.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (s, me) = c.get("/users/me", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["is_admin"], true);
    let (s, list) = c.get("/users", &admin).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3);
    let emails = item_strs(&list, "email");
    assert!(emails.contains(&"alice@example.com") && emails.contains(&"bob@example.com"));
    assert!(list["items"][0].get("password_hash").is_none());
    let (s, v) = c.get(&format!("/users/{bid}"), &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["email"], "bob@example.com");
    let (s, _) = c.delete(&format!("/users/{bid}"), &admin).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c.get(&format!("/users/{bid}"), &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // B's token no longer works; B cannot log in.
    let (s, _, v) = c.json(Method::GET, "/users/me", Some(&tb), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _) = c
        .post(
            "/login",
            None,
            json!({"email": "bob@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A deletes themself.
    let (s, _) = c.delete(&format!("/users/{a}"), &ta).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, list) = c.get("/users", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["total"], 1);
}

async fn deleting_a_user_removes_their_data(b: Backend) {
    let c = Ctx::new(b).await;
    let (a, ta) = c.user("Alice", "alice@example.com").await;
    let (bid, tb) = c.user("Bob", "bob@example.com").await;
    let now = shared::time_util::now_ms();
    for (user, token) in [(a, &ta), (bid, &tb)] {
        for i in 0..3 {
            let job = c.prediction(user, now - i * 1000, i % 2 == 0).await;
            c.feedback(
                token,
                json!({"job_id": job, "predicted_class": "x", "score": 0.5, "feedback": "f"}),
            )
            .await;
        }
    }
    assert_eq!(c.count("predictions", a).await, 3);
    assert_eq!(c.count("feedback", a).await, 3);
    let (s, v) = c.delete(&format!("/users/{a}"), &ta).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(c.count("predictions", a).await, 0);
    assert_eq!(c.count("feedback", a).await, 0);
    let n: i64 = c
        .scalar("SELECT COUNT(*) AS n FROM users WHERE id = $1", a, "n")
        .await;
    assert_eq!(n, 0);
    // Bob's data is untouched.
    assert_eq!(c.count("predictions", bid).await, 3);
    assert_eq!(c.count("feedback", bid).await, 3);
    let (s, hist) = c.get("/predictions", &tb).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hist["total"], 3);
    // Deleting again: the token is dead (401); the admin gets 404.
    let (s, _) = c.delete(&format!("/users/{a}"), &ta).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let admin = c.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (s, _) = c.delete(&format!("/users/{a}"), &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The admin deleting Bob removes Bob's data too.
    let (s, _) = c.delete(&format!("/users/{bid}"), &admin).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(c.count("predictions", bid).await, 0);
    assert_eq!(c.count("feedback", bid).await, 0);
}

/// Issue 24, finding 7a: names and emails that look like someone else's, or like nothing. Control,
/// zero-width, invisible and direction-changing characters are refused (the same 422 naming the
/// field as any invalid field), as are names of nothing else and domains with a label starting
/// or ending with `-`; full-width and other compatibility forms fold (NFKC) into the plain one,
/// so they are the same account at sign-up and log-in.
async fn invisible_characters_are_refused_and_look_alikes_fold(b: Backend) {
    let c = Ctx::new(b).await;
    c.user("Ada", "ada@x.com").await;
    for (name, email, field) in [
        ("Ada", "\u{200b}ada@x.com", "email"),
        ("Ada", "ada\u{202e}moc.x@x.com", "email"),
        ("Ada", "ada\0@x.com", "email"),
        ("Ada", "ada@\u{2060}x.com", "email"),
        ("Ada", "ada@-x.com", "email"),
        ("Ada", "ada@x-.com", "email"),
        ("\u{200b}\u{200c}\u{200d}", "zw@x.com", "name"),
        ("\u{2060}\u{feff}\u{00ad}", "wj@x.com", "name"),
        ("\u{3164}\u{3164}", "filler@x.com", "name"),
        ("Ad\u{202e}a", "rlo@x.com", "name"),
        ("Ad\u{2066}a", "isolate@x.com", "name"),
        ("Ada\0", "nul@x.com", "name"),
        ("Ada\nLovelace", "newline@x.com", "name"),
    ] {
        let (s, v) = c.register(name, email, PASSWORD).await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?} {email:?}: {v}"
        );
        assert_eq!(error_code(&v), ErrorCode::ValidationFailed, "{v}");
        assert_eq!(error_field(&v), field, "{name:?} {email:?}: {v}");
    }
    // Full-width look-alikes are the same email: taken at sign-up, Ada's at log-in.
    let (s, v) = c
        .register("Ada", "\u{ff41}\u{ff44}\u{ff41}@\u{ff58}.com", PASSWORD)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    c.login("\u{ff21}DA@x.\u{ff43}om", PASSWORD).await;
    // A name folds too (U+FF27... is "Grace" in full width; U+2168 is the numeral "IX").
    let (s, v) = c
        .register("\u{ff27}race \u{2168}", "grace@x.com", PASSWORD)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["name"], "Grace IX");
}
