//! The UI driven through `oneshot` against a small fake API that speaks the documented contract.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use api_types::{
    ErrorBody, ErrorCode, Feedback, FeedbackRequest, Info, Job, JobAccepted, JobPage, JobResult,
    JobStatus, ModelInfo, ModelLabels, Prediction, Token, TokenType, User,
};
use axum::body::Body;
use axum::extract::{Multipart, Path};
use axum::http::{header, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use tower::ServiceExt;
use ui::api::ApiClient;
use ui::{app, AppState};

const JOB: &str = "0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b";
/// Tokens the fake API was asked to revoke (`POST /logout`).
static REVOKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn api_error(status: StatusCode, code: ErrorCode) -> Response {
    (status, Json(ErrorBody::new(code, "from the fake api"))).into_response()
}

/// The fake API's auth: routes behind it answer 401 unless the caller sends the good token.
async fn require_token(req: Request<Body>, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if token == Some("Bearer good-token") {
        next.run(req).await
    } else {
        api_error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized)
    }
}

fn prediction(label: &str, class_id: usize, score: f32) -> Prediction {
    Prediction {
        label: label.into(),
        class_id,
        score,
    }
}

fn done_job() -> Job {
    Job {
        job_id: JOB.into(),
        status: JobStatus::Done,
        model: "efficientnet-lite0".into(),
        image_file_name: "abc.jpg".into(),
        original_file_name: Some("peony in the garden.jpg".into()),
        created_at: "2025-11-22T14:03:09Z".into(),
        cached: false,
        feedback: None,
        result: Some(JobResult {
            model: "efficientnet-lite0".into(),
            elapsed_ms: 42.0,
            predictions: vec![
                prediction("academic gown", 400, 0.255),
                prediction("mortarboard", 667, 0.206),
                prediction("military uniform", 652, 0.125),
            ],
        }),
        error: None,
    }
}

/// The fake API: just enough of v1 for the pages, answering with the `api_types` bodies.
fn fake_api() -> Router {
    Router::new()
        .route(
            "/info",
            get(|| async {
                Json(Info {
                    version: "0.1.0".into(),
                    default_model: "efficientnet-lite0".into(),
                    queue_depth: 0,
                    workers_live: 1,
                    models: vec![
                        ModelInfo {
                            name: "efficientnet-lite0".into(),
                            display_name: "EfficientNet-Lite0".into(),
                            top1_accuracy_pct: Some(75.0),
                            speed: "fast".into(),
                            available: true,
                            description: "converted from something".into(),
                            input_size: 224,
                            default: true,
                            workers: 1,
                            queue_depth: 0,
                        },
                        ModelInfo {
                            name: "resnet50".into(),
                            display_name: "ResNet-50".into(),
                            top1_accuracy_pct: Some(75.0),
                            speed: "medium".into(),
                            available: false,
                            description: "ResNet".into(),
                            input_size: 224,
                            default: false,
                            workers: 0,
                            queue_depth: 0,
                        },
                    ],
                    your_jobs_waiting: None,
                })
            }),
        )
        .route(
            "/login",
            post(|body: String| async move {
                if body.contains("password=right") {
                    Json(Token {
                        access_token: "good-token".into(),
                        token_type: TokenType::Bearer,
                        expires_in: 3600,
                    })
                    .into_response()
                } else {
                    api_error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized)
                }
            }),
        )
        .route(
            "/models/{name}/labels",
            get(|| async {
                Json(ModelLabels {
                    model: "efficientnet-lite0".into(),
                    labels: vec!["tench".into(), "goldfish".into()],
                })
            }),
        )
        .merge(
            Router::new()
                .route(
                    "/users/me",
                    get(|| async {
                        Json(User {
                            id: 1,
                            name: "Grace".into(),
                            email: "g@example.com".into(),
                            is_admin: false,
                            created_at: "2025-11-22T14:00:00Z".into(),
                        })
                    }),
                )
                .route(
                    "/predictions",
                    post(|mut mp: Multipart| async move {
                        while let Some(field) = mp.next_field().await.unwrap() {
                            if field.name() == Some("file") {
                                let bytes = field.bytes().await.unwrap();
                                if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
                                    return api_error(
                                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                                        ErrorCode::UnsupportedMediaType,
                                    );
                                }
                            }
                        }
                        let accepted = JobAccepted {
                            job_id: JOB.into(),
                            status: JobStatus::Queued,
                            status_url: format!("/predictions/{JOB}"),
                        };
                        (StatusCode::ACCEPTED, Json(accepted)).into_response()
                    })
                    .get(|| async {
                        Json(JobPage {
                            items: vec![done_job()],
                            page: 1,
                            per_page: 12,
                            total: 1,
                        })
                    }),
                )
                .route(
                    "/predictions/{id}",
                    get(|Path(id): Path<String>| async move {
                        if id == JOB {
                            Json(done_job()).into_response()
                        } else {
                            api_error(StatusCode::NOT_FOUND, ErrorCode::NotFound)
                        }
                    }),
                )
                .route(
                    "/feedback",
                    post(|Json(body): Json<FeedbackRequest>| async move {
                        if body.predicted_class != "academic gown" {
                            return api_error(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                ErrorCode::ValidationFailed,
                            );
                        }
                        let stored = Feedback {
                            id: 1,
                            job_id: body.job_id,
                            image_file_name: "abc.jpg".into(),
                            predicted_class: body.predicted_class,
                            score: body.score,
                            feedback: body.feedback,
                            correct_label: body.correct_label,
                            is_correct: body.is_correct,
                            created_at: "2025-11-22T14:05:00Z".into(),
                        };
                        (StatusCode::CREATED, Json(stored)).into_response()
                    }),
                )
                .route(
                    "/logout",
                    post(|| async {
                        REVOKED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        StatusCode::NO_CONTENT
                    }),
                )
                .route_layer(middleware::from_fn(require_token)),
        )
}

async fn spawn_fake_api() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, fake_api()).await.unwrap() });
    format!("http://{addr}")
}

fn ui_for(api_url: &str) -> Router {
    let api = ApiClient::new(api_url, Duration::from_secs(5)).unwrap();
    app(AppState::new(api, false, 10))
}

/// A URL where nothing listens: the API is "down".
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

async fn body_text(resp: Response) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sends one request through the UI's router, checks the answer's status, returns its body.
async fn page(ui: &Router, req: Request<Body>, status: StatusCode) -> String {
    let resp = send(ui, req).await;
    assert_eq!(resp.status(), status);
    body_text(resp).await
}

/// Sends one request through the UI's router.
async fn send(ui: &Router, req: Request<Body>) -> Response {
    let what = format!("{} {}", req.method(), req.uri());
    let resp = ui.clone().oneshot(req).await.unwrap();
    let Ok(dir) = std::env::var("UI_DUMP") else {
        return resp;
    };
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let name = std::thread::current()
        .name()
        .unwrap_or("x")
        .replace("::", "_");
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{dir}/{name}"))
        .unwrap();
    let mut hs: Vec<String> = parts
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
        .collect();
    hs.sort();
    writeln!(
        f,
        "=== {what} -> {}\n{}\n{}",
        parts.status,
        hs.join("\n"),
        String::from_utf8_lossy(&bytes)
    )
    .unwrap();
    Response::from_parts(parts, Body::from(bytes))
}

fn get_req(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

/// A signed-in person's `GET`.
fn signed_in_get(uri: &str) -> Request<Body> {
    get_req(uri, Some(&logged_in()))
}

fn form_req(uri: &str, cookie: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn multipart_req(cookie: &str, csrf: &str, file_name: &str, bytes: &[u8]) -> Request<Body> {
    let boundary = "XyZboundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{file_name}\"\r\n\
             Content-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Request::post("/classify")
        .header(header::COOKIE, cookie)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap()
}

/// Every `Set-Cookie` of an answer.
fn set_cookies(resp: &Response) -> Vec<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn location(resp: &Response) -> &str {
    resp.headers()
        .get(header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
}

fn logged_in() -> String {
    format!("csrf={CSRF}; session=good-token")
}

/// A visitor's form post (log in, sign up): the CSRF cookie, and `fields` after the same token.
fn visitor_form(uri: &str, fields: &str) -> Request<Body> {
    form_req(
        uri,
        &format!("csrf={CSRF}"),
        &format!("csrf={CSRF}&{fields}"),
    )
}

/// A visitor logs in with `fields` (email, password, maybe next).
async fn log_in(ui: &Router, fields: &str) -> Response {
    send(ui, visitor_form("/login", fields)).await
}

/// Posts `fields` to the visitor's form at `uri`, expects the form back (422) with an error next
/// to each of the `invalid` fields, and returns the page.
async fn refused_form(ui: &Router, uri: &str, fields: &str, invalid: &[&str]) -> String {
    let html = page(
        ui,
        visitor_form(uri, fields),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    for field in invalid {
        assert!(
            html.contains(&format!(r#"<p class="field-error" id="{field}-error">"#)),
            "{field}: {html}"
        );
    }
    html
}

#[tokio::test]
async fn health_answers_without_the_api() {
    let ui = ui_for(&closed_port_url().await);
    let html = page(&ui, get_req("/health", None), StatusCode::OK).await;
    assert!(html.contains("ok"), "{html}");
}

#[tokio::test]
async fn pages_need_a_login_and_come_back_after_it() {
    let ui = ui_for(&closed_port_url().await);
    let resp = send(&ui, get_req("/history?page=2", None)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/login?next=/history%3Fpage%3D2");
    let resp = send(&ui, get_req("/login?next=/history%3Fpage%3D2", None)).await;
    assert!(resp
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .contains("HttpOnly"));
    let html = body_text(resp).await;
    assert!(html.contains("name=\"next\" value=\"/history?page=2\""));
    assert!(html.contains("name=\"csrf\""));
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let ui = ui_for(&spawn_fake_api().await);
    let html = page(
        &ui,
        form_req(
            "/login",
            &format!("csrf={CSRF}"),
            "csrf=wrong&email=g%40example.com&password=right",
        ),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(html.contains("This form has expired"), "{html}");
    // No cookie at all: the token in the form cannot match anything.
    let resp = send(
        &ui,
        form_req("/logout", "session=good-token", &format!("csrf={CSRF}")),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn login_sets_an_httponly_session_cookie_and_follows_next() {
    let ui = ui_for(&spawn_fake_api().await);
    let resp = log_in(&ui, "email=g%40example.com&password=right&next=%2Fhistory").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/history");
    let cookies = set_cookies(&resp);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("session=good-token"))
        .unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"));

    let wrong = visitor_form("/login", "email=g%40example.com&password=wrong");
    let html = page(&ui, wrong, StatusCode::UNAUTHORIZED).await;
    assert!(html.contains("do not match an account"), "{html}");
}

#[tokio::test]
async fn the_signup_form_marks_every_invalid_field_next_to_it() {
    let ui = ui_for(&spawn_fake_api().await);
    let html = body_text(send(&ui, get_req("/signup", None)).await).await;
    assert!(
        html.contains(r#"aria-describedby="password-hint""#),
        "{html}"
    );
    assert!(!html.contains("aria-invalid"), "{html}");

    let fields = "name=&email=nope&password=short";
    let html = refused_form(&ui, "/signup", fields, &["name", "email", "password"]).await;
    for (field, described_by) in [
        ("name", "name-error"),
        ("email", "email-error"),
        ("password", "password-hint password-error"),
    ] {
        assert!(
            html.contains(&format!(
                r#"aria-describedby="{described_by}" aria-invalid="true""#
            )),
            "{field}: {html}"
        );
    }
    assert!(
        html.contains(r#"value="nope""#),
        "the email is kept: {html}"
    );
}

#[tokio::test]
async fn next_is_followed_only_to_a_same_origin_path_and_never_fails() {
    let ui = ui_for(&spawn_fake_api().await);
    // Browsers drop tabs and newlines, so `/` + tab + `/evil.example` means `//evil.example`.
    for next in [
        "%2F%09%2Fevil.example",
        "%2F%0B",
        "%2F%0D%0A%2Fevil.example",
        "%2F%5Cevil.example",
        "%2F%2Fevil.example",
        "https%3A%2F%2Fevil.example",
        "%2F%C3%A9",
    ] {
        let fields = format!("email=g%40example.com&password=right&next={next}");
        let resp = log_in(&ui, &fields).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{next}");
        assert_eq!(location(&resp), "/", "{next}");
        let resp = send(&ui, get_req(&format!("/login?next={next}"), None)).await;
        assert_eq!(resp.status(), StatusCode::OK, "{next}");
        assert!(
            body_text(resp).await.contains("name=\"next\" value=\"/\""),
            "{next}"
        );
    }
}

/// Issue 24, finding 7e: on a UI whose cookies are `Secure` (an https `UI_PUBLIC_URL`) the CSRF
/// cookie is `__Host-csrf`, which browsers accept only Secure, for `Path=/` and without a
/// `Domain`, so a sibling subdomain cannot plant one; a plain `csrf` cookie counts for nothing
/// there. Over plain http (the other tests) the cookie cannot be Secure, so it stays `csrf`.
#[tokio::test]
async fn a_secure_ui_names_its_csrf_cookie_host_prefixed() {
    let api = ApiClient::new(&spawn_fake_api().await, Duration::from_secs(5)).unwrap();
    let ui = app(AppState::new(api, true, 10));
    let resp = send(&ui, get_req("/login", None)).await;
    let minted = set_cookies(&resp)
        .into_iter()
        .find(|c| c.contains("csrf="))
        .expect("a CSRF cookie");
    assert!(minted.starts_with("__Host-csrf="), "{minted}");
    for attr in ["Secure", "Path=/", "HttpOnly"] {
        assert!(minted.contains(attr), "{attr}: {minted}");
    }
    assert!(!minted.contains("Domain"), "{minted}");
    let fields = format!("csrf={CSRF}&email=g%40example.com&password=right");
    let plain = send(&ui, form_req("/login", &format!("csrf={CSRF}"), &fields)).await;
    assert_eq!(
        plain.status(),
        StatusCode::FORBIDDEN,
        "an unprefixed cookie"
    );
    let resp = send(
        &ui,
        form_req("/login", &format!("__Host-csrf={CSRF}"), &fields),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let rotated = set_cookies(&resp)
        .into_iter()
        .find(|c| c.contains("csrf="))
        .expect("a new CSRF cookie at log-in");
    assert!(rotated.starts_with("__Host-csrf="), "{rotated}");
}

#[tokio::test]
async fn log_in_rotates_the_csrf_token_and_log_out_revokes_the_token() {
    let ui = ui_for(&spawn_fake_api().await);
    let resp = log_in(&ui, "email=g%40example.com&password=right").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let csrf = set_cookies(&resp)
        .into_iter()
        .find(|c| c.starts_with("csrf="))
        .expect("a new CSRF cookie at log-in");
    assert!(!csrf.starts_with(&format!("csrf={CSRF}")), "{csrf}");
    assert!(csrf.contains("HttpOnly"));

    let before = REVOKED.load(std::sync::atomic::Ordering::SeqCst);
    let resp = send(
        &ui,
        form_req("/logout", &logged_in(), &format!("csrf={CSRF}")),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/login?logged_out=1");
    assert_eq!(
        REVOKED.load(std::sync::atomic::Ordering::SeqCst),
        before + 1,
        "the API was asked to revoke the token"
    );
}

#[tokio::test]
async fn api_down_shows_a_service_unavailable_page() {
    let ui = ui_for(&closed_port_url().await);
    let html = page(&ui, signed_in_get("/"), StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(html.contains("The service is unavailable"));
    assert!(html.contains("try again"));
    assert!(
        html.contains("Log out"),
        "the error page still shows who is logged in"
    );
}

#[tokio::test]
async fn an_expired_token_sends_the_user_to_log_in_again() {
    let ui = ui_for(&spawn_fake_api().await);
    let resp = send(
        &ui,
        get_req("/history", Some(&format!("csrf={CSRF}; session=old-token"))),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/login?expired=1");
    let cleared = set_cookies(&resp)
        .iter()
        .any(|v| v.starts_with("session=") && v.contains("Max-Age=0"));
    assert!(cleared, "the stale session cookie is removed");
}

#[tokio::test]
async fn a_text_file_named_jpg_is_explained_on_the_classify_page() {
    let ui = ui_for(&spawn_fake_api().await);
    let html = page(
        &ui,
        multipart_req(&logged_in(), CSRF, "notes.jpg", b"just some text"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert!(html.contains("“notes.jpg” is not an image we can read"));
    assert!(html.contains("id=\"files\""), "the form is shown again");
}

#[tokio::test]
async fn an_accepted_image_leads_to_its_result_page_with_bars_and_feedback() {
    let ui = ui_for(&spawn_fake_api().await);
    let resp = send(
        &ui,
        multipart_req(&logged_in(), CSRF, "grace.jpg", &[0xFF, 0xD8, 0xFF, 0xE0]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), format!("/results/{JOB}"));

    let html = page(
        &ui,
        signed_in_get(&format!("/results/{JOB}")),
        StatusCode::OK,
    )
    .await;
    assert!(html.contains("Academic gown") && html.contains("25.5%"));
    assert!(html.contains("w-26\""));
    // 25.5% is not an answer: the page says it is not sure and names the candidates, and the
    // title and heading name the image by its file name.
    assert!(
        html.contains("It could be “Academic gown”, “Mortarboard” or “Military uniform”"),
        "{html}"
    );
    assert!(
        html.contains("<title>peony in the garden.jpg — not sure · Lens</title>"),
        "{html}"
    );
    assert!(html.contains("<h1 class=\"result-name\">peony in the garden.jpg</h1>"));
    assert!(
        html.contains("placeholder=\"Start typing, e.g. “tench”\"")
            || html.contains("e.g. “goldfish”"),
        "a real label as the example"
    );
    assert!(
        html.contains("<option value=\"goldfish\">"),
        "labels feed the datalist"
    );
    assert!(
        !html.contains("http-equiv=\"refresh\""),
        "a finished job does not refresh"
    );

    let body = format!("csrf={CSRF}&verdict=correct&correct_label=&comment=nice");
    let resp = send(
        &ui,
        form_req(&format!("/results/{JOB}/feedback"), &logged_in(), &body),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(location(&resp).ends_with("?feedback=sent#feedback"));
}

#[tokio::test]
async fn the_status_endpoint_returns_the_finished_panel_as_json() {
    let ui = ui_for(&spawn_fake_api().await);
    let body: serde_json::Value = serde_json::from_str(
        &page(
            &ui,
            signed_in_get(&format!("/results/{JOB}/status?wait=1")),
            StatusCode::OK,
        )
        .await,
    )
    .unwrap();
    assert_eq!(body["finished"], true);
    assert!(body["html"].as_str().unwrap().contains("Academic gown"));

    let body: serde_json::Value = serde_json::from_str(
        &page(
            &ui,
            get_req(&format!("/results/{JOB}/status"), None),
            StatusCode::UNAUTHORIZED,
        )
        .await,
    )
    .unwrap();
    assert_eq!(body["redirect"], "/login?expired=1");
}

#[tokio::test]
async fn history_lists_thumbnails_and_unknown_pages_are_friendly() {
    let ui = ui_for(&spawn_fake_api().await);
    let html = page(&ui, signed_in_get("/history"), StatusCode::OK).await;
    assert!(html.contains(&format!("/results/{JOB}/thumbnail")));
    assert!(html.contains("1 image classified"));

    assert!(page(&ui, get_req("/nope", None), StatusCode::NOT_FOUND)
        .await
        .contains("Not found"));
}

#[tokio::test]
async fn static_assets_are_cached_and_pages_are_not() {
    let ui = ui_for(&closed_port_url().await);
    let resp = send(&ui, get_req("/static/style.css", None)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cc = resp
        .headers()
        .get(header::CACHE_CONTROL)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cc.contains("max-age=31536000"));
    let resp = send(&ui, get_req("/login", None)).await;
    assert_eq!(
        resp.headers().get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    assert!(resp
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .is_some());
}

#[tokio::test]
async fn visitors_get_the_landing_page_and_people_the_available_models_only() {
    let ui = ui_for(&spawn_fake_api().await);
    let html = page(&ui, get_req("/", None), StatusCode::OK).await;
    assert!(html.contains("See what is in your photos"), "{html}");
    assert!(html.contains("href=\"/signup\"") && html.contains("/example.jpg"));
    let resp = send(&ui, get_req("/example.jpg", None)).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let html = page(&ui, signed_in_get("/"), StatusCode::OK).await;
    assert!(html.contains(">EfficientNet-Lite0</option>"), "{html}");
    assert!(
        !html.contains("resnet50"),
        "a model no worker serves is not offered: {html}"
    );
    assert!(
        !html.contains("converted from"),
        "no developer text: {html}"
    );
    assert!(html.contains("75% right"), "{html}");
    assert!(html.contains("accept=\"image/*\""));
}

#[tokio::test]
async fn the_login_form_marks_both_empty_fields_at_once() {
    let ui = ui_for(&spawn_fake_api().await);
    refused_form(&ui, "/login", "email=&password=", &["email", "password"]).await;
}

mod slow_clients;
