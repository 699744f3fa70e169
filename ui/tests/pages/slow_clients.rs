//! The UI on a real socket against clients that send little (issue 24, findings 3 and 4): a
//! form post is refused before its body is read when the session is made up or the CSRF
//! token does not come first, and a post that trickles in ends at `UI_REQUEST_TIMEOUT`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{spawn_fake_api, CSRF};
use ui::api::ApiClient;
use ui::{app, AppState};

/// 44 MiB: what each of the finding's connections announced (and never sent).
const ANNOUNCED: usize = 44 * 1024 * 1024;
const BOUNDARY: &str = "XyZboundary";

/// The UI on a free port (a 50 MiB form limit, requests cut at `timeout`), talking to the
/// fake API.
async fn ui_on_a_port(timeout: Duration) -> SocketAddr {
    let api = ApiClient::new(&spawn_fake_api().await, Duration::from_secs(5)).unwrap();
    let mut state = AppState::new(api, false, 50);
    state.request_timeout = timeout;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = http_server::ServerLimits {
        header_timeout: Duration::from_secs(10),
        max_connections: 64,
    };
    let never = std::future::pending::<()>();
    tokio::spawn(http_server::serve(
        listener,
        app(state),
        limits,
        http_server::Shutdown {
            signal: never,
            grace: None,
        },
    ));
    addr
}

/// Sends the head of a `POST /classify` announcing [`ANNOUNCED`] bytes, and `first` of its
/// body; the rest never comes.
async fn start_post(addr: SocketAddr, cookie: &str, first: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /classify HTTP/1.1\r\nHost: ui\r\nCookie: {cookie}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {ANNOUNCED}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(first.as_bytes()).await.unwrap();
    s
}

/// The status line of the answer, if one comes within `limit`.
async fn status_within(s: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(limit, s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().map(str::to_owned)
}

fn part(name: &str, file: Option<&str>) -> String {
    let file = file
        .map(|f| format!("; filename=\"{f}\""))
        .unwrap_or_default();
    format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n")
}

#[tokio::test]
async fn a_made_up_session_is_sent_to_log_in_before_the_upload_is_read() {
    let addr = ui_on_a_port(Duration::from_secs(120)).await;
    let first = format!(
        "{}{CSRF}\r\n{}",
        part("csrf", None),
        part("files", Some("a.jpg"))
    );
    let mut post = start_post(addr, &format!("csrf={CSRF}; session=anything"), &first).await;
    let status = status_within(&mut post, Duration::from_secs(5)).await;
    let status = status.expect("an answer without the announced 44 MiB");
    assert!(status.contains(" 303 "), "to the log-in page: {status}");
}

#[tokio::test]
async fn a_form_whose_files_come_before_its_csrf_token_is_refused_unread() {
    let addr = ui_on_a_port(Duration::from_secs(120)).await;
    let first = part("files", Some("a.jpg"));
    let mut post = start_post(addr, &format!("csrf={CSRF}; session=good-token"), &first).await;
    let status = status_within(&mut post, Duration::from_secs(5)).await;
    let status = status.expect("an answer without the announced 44 MiB");
    assert!(
        status.contains(" 403 "),
        "refused as a form without its token: {status}"
    );
}

#[tokio::test]
async fn a_post_that_trickles_in_ends_at_the_request_timeout() {
    let addr = ui_on_a_port(Duration::from_secs(1)).await;
    let first = format!(
        "{}{CSRF}\r\n{}",
        part("csrf", None),
        part("files", Some("a.jpg"))
    );
    let started = Instant::now();
    let mut post = start_post(addr, &format!("csrf={CSRF}; session=good-token"), &first).await;
    // A byte now and then, as the finding's clients did (every 5 s there; 200 ms here).
    let mut status = None;
    for _ in 0..50 {
        if post.write_all(b"x").await.is_err() {
            break;
        }
        status = status_within(&mut post, Duration::from_millis(200)).await;
        if status.is_some() {
            break;
        }
    }
    let status = status.expect("an answer while the body still trickles");
    assert!(status.contains(" 408 "), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
