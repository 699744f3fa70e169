//! The answers the OpenAPI document promises, over HTTP: paging values out of range are 422
//! naming the parameter (never clamped), malformed ids are 400, protected routes without a
//! token are 401, an empty log-in is 422, an oversized log-in body is a JSON 413, and the
//! registration rules are the schema's. schemathesis checks every answer against the document
//! in CI (scripts/schemathesis.sh); these pin the behaviour it relies on.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

both_backends!(
    paging_out_of_range_is_422_naming_the_parameter,
    malformed_ids_are_400_and_protected_routes_401,
    empty_and_oversized_logins_are_json_errors,
    registration_follows_the_schema_rules,
);

async fn paging_out_of_range_is_422_naming_the_parameter(b: Backend) {
    let c = Ctx::new(b).await;
    let admin = c.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    for route in ["/predictions", "/feedback", "/users"] {
        for (query, field) in [
            ("per_page=2147483648", "per_page"),
            ("per_page=0", "per_page"),
            ("per_page=-1", "per_page"),
            ("per_page=101", "per_page"),
            ("per_page=99999999999999999999999", "per_page"),
            ("per_page=lots", "per_page"),
            ("page=0", "page"),
            ("page=-5", "page"),
            ("page=2147483648", "page"),
            ("page=1.5", "page"),
        ] {
            let uri = format!("{route}?{query}");
            let (s, v) = c.get(&uri, &admin).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {v}");
            assert_eq!(error_code(&v), ErrorCode::ValidationFailed, "{uri}: {v}");
            assert_eq!(error_field(&v), field, "{uri}: {v}");
        }
        // The bounds themselves are fine, and answer with the values asked for.
        for (query, page, per_page) in [
            ("per_page=1", 1, 1),
            ("per_page=100", 1, 100),
            ("page=2147483647&per_page=100", 2147483647_i64, 100),
            ("", 1, 20),
        ] {
            let uri = format!("{route}?{query}");
            let (s, v) = c.get(&uri, &admin).await;
            assert_eq!(s, StatusCode::OK, "{uri}: {v}");
            assert_eq!(
                (v["page"].as_i64(), v["per_page"].as_i64()),
                (Some(page), Some(per_page)),
                "{uri}: {v}"
            );
        }
    }
}

async fn malformed_ids_are_400_and_protected_routes_401(b: Backend) {
    let c = Ctx::new(b).await;
    let (_, ta) = c.user("Alice", "alice@example.com").await;
    for uri in [
        "/predictions/not-a-uuid",
        "/predictions/not-a-uuid/image",
        "/predictions/not-a-uuid/thumbnail",
        "/predictions/123",
        "/users/abc",
        "/users/1.5",
        "/users/99999999999999999999999",
    ] {
        let (s, v) = c.get(uri, &ta).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
        assert_eq!(error_code(&v), ErrorCode::BadRequest, "{uri}: {v}");
    }
    let (s, v) = c.delete("/users/abc", &ta).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
        "{v}"
    );
    // A well-formed id nobody owns is still 404, in any spelling of the UUID.
    let unknown = uuid::Uuid::now_v7();
    for id in [
        unknown.to_string(),
        unknown.simple().to_string(),
        unknown.to_string().to_uppercase(),
    ] {
        let (s, v) = c.get(&format!("/predictions/{id}"), &ta).await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            "{id}: {v}"
        );
    }
    // Without a token every protected route is 401 (before any look at the id or the query).
    for route in [
        "GET /users/me",
        "GET /users",
        "GET /users/abc",
        "DELETE /users/1",
        "GET /predictions?per_page=0",
        "GET /predictions/not-a-uuid",
        "GET /predictions/not-a-uuid/image",
        "GET /predictions/not-a-uuid/thumbnail",
        "GET /feedback",
        "POST /feedback",
        "POST /predictions",
        "POST /predict",
    ] {
        let (method, uri) = route.split_once(' ').expect("METHOD /path");
        let method: Method = method.parse().expect("an HTTP method");
        let (s, h, v) = c.json(method.clone(), uri, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri}: {v}");
        assert_eq!(
            error_code(&v),
            ErrorCode::Unauthorized,
            "{method} {uri}: {v}"
        );
        assert!(h.contains_key("www-authenticate"), "{method} {uri}");
    }
    // Ids and queries a client made up: a JSON 4xx, and the database untouched.
    for uri in [
        "/users/abc",
        "/users/99999999999999999999999",
        "/users/1%27%3B%20DROP%20TABLE%20users%3B%20--",
        "/users?page=abc",
        "/predictions?page=-1",
        "/feedback?per_page=lots",
        "/predictions/x?wait=soon",
    ] {
        let (s, _, body) = c.get_bytes(uri, &ta).await;
        assert!(s.is_client_error(), "{uri}: {s}");
        let v: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!("{uri}: {s} is not JSON: {}", String::from_utf8_lossy(&body))
        });
        assert!(v["error"]["code"].is_string(), "{uri}: {v}");
    }
    c.tables_exist().await;
}

async fn empty_and_oversized_logins_are_json_errors(b: Backend) {
    let c = Ctx::new(b).await;
    c.user("Alice", "alice@example.com").await;
    for (ctype, body) in [
        ("application/x-www-form-urlencoded", ""),
        (
            "application/x-www-form-urlencoded",
            "username=alice%40example.com",
        ),
        ("application/json", ""),
        ("application/json", "{}"),
        ("application/json", "{\"email\": \"alice@example.com\"}"),
    ] {
        let (s, _, bytes) = c.raw(Method::POST, "/login", None, Some(ctype), body).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{ctype} {body:?}: {v}");
        assert_eq!(error_code(&v), ErrorCode::ValidationFailed, "{v}");
    }
    // A body over the limit is the JSON 413 (it was axum's plain-text one).
    let limit = c.state.cfg.max_upload_bytes + 64 * 1024;
    let (s, _, bytes) = c
        .login_form(format!("username=a%40b.co&password={}", "x".repeat(limit)))
        .await;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{s}: not JSON: {}",
            String::from_utf8_lossy(&bytes[..100.min(bytes.len())])
        )
    });
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge),
        "{v}"
    );
    let limit = format!("limit of {} bytes", api::config::MAX_JSON_BODY);
    assert!(
        v["error"]["message"].as_str().unwrap().contains(&limit),
        "{v}"
    );
}

async fn registration_follows_the_schema_rules(b: Backend) {
    let c = Ctx::new(b).await;
    let long = "n".repeat(51);
    let padded = format!("  {}  ", "n".repeat(48)); // 52 as sent, 48 once trimmed
    for (i, (name, password, field)) in [
        ("A", PASSWORD, "name"),
        ("  A  ", PASSWORD, "name"),
        (long.as_str(), PASSWORD, "name"),
        (padded.as_str(), PASSWORD, "name"),
        ("Ada", "seven77", "password"),
    ]
    .into_iter()
    .enumerate()
    {
        let (s, v) = c
            .register(name, &format!("u{i}@example.com"), password)
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}: {v}");
        assert_eq!(error_field(&v), field, "{name:?}: {v}");
    }
    // The bounds are allowed: 2 characters once trimmed, 50 as sent, 8 and 256 for passwords.
    let fifty = "é".repeat(50);
    for (i, (name, password)) in [
        (" Al ", "eight888".to_owned()),
        (fifty.as_str(), "ü".repeat(256)),
    ]
    .into_iter()
    .enumerate()
    {
        let (s, v) = c
            .register(name, &format!("ok{i}@example.com"), &password)
            .await;
        assert_eq!(s, StatusCode::CREATED, "{name:?}: {v}");
        assert_eq!(v["name"], name.trim());
    }
    let (s, v) = c
        .register("Ada", "long@example.com", &"p".repeat(257))
        .await;
    assert_eq!(
        (s, error_field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "password"),
        "{v}"
    );
}
