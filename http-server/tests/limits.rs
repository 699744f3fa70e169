//! The listener's limits with real sockets: a client that sends no headers, sends them too
//! slowly, or keeps a connection idle is cut off at `header_timeout`; connections beyond
//! `max_connections` wait until one closes; a stop closes what outlives the grace period.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use http_server::{serve, ServerLimits, Shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// A server on a free port with these limits; `/` answers "ok", `/slow` after 10 s. It stops
/// (grace 200 ms) when the returned token is cancelled.
async fn start(
    header_timeout: Duration,
    max_connections: usize,
) -> (SocketAddr, CancellationToken) {
    let router = Router::new().route("/", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late"
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let limits = ServerLimits {
        header_timeout,
        max_connections,
    };
    tokio::spawn(serve(
        listener,
        router,
        limits,
        Shutdown {
            signal: async move { signal.cancelled().await },
            grace: Some(Duration::from_millis(200)),
        },
    ));
    (addr, stop)
}

/// Reads until the server closes the connection (or `limit` passes): what it sent, and when
/// it closed (None: still open at `limit`).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&got).into(),
                    Some(started.elapsed()),
                )
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one answer's head and body ("ok"), leaving the connection open.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"ok") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into()
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_timeout() {
    let (addr, _stop) = start(Duration::from_millis(500), 100).await;
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    let closed = closed.expect("the server closes a connection that sends nothing");
    assert!(
        closed >= Duration::from_millis(400),
        "not before the timeout: {closed:?}"
    );
}

#[tokio::test]
async fn headers_sent_too_slowly_are_cut_off() {
    let (addr, _stop) = start(Duration::from_millis(500), 100).await;
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    // One byte every 100 ms: the whole head would take 2.7 s.
    for b in REQUEST {
        if slow.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (answer, closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    assert!(closed.is_some(), "closed");
    assert!(
        !answer.contains("\r\n\r\nok"),
        "no answer to a head that came too late: {answer}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "cut off near the timeout, not after the head: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_kept_alive_connection_left_idle_is_closed() {
    let (addr, _stop) = start(Duration::from_millis(500), 100).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(REQUEST).await.expect("write");
    let answer = read_answer(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, closed) = read_until_closed(&mut client, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "an idle kept-alive connection is closed");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let (addr, _stop) = start(Duration::from_secs(30), 2).await;
    let mut a = TcpStream::connect(addr).await.expect("connect a");
    let _b = TcpStream::connect(addr).await.expect("connect b");
    a.write_all(REQUEST).await.expect("write a");
    read_answer(&mut a).await;
    // The third connects (the kernel's backlog) but is not served while two are open.
    let mut c = TcpStream::connect(addr).await.expect("connect c");
    c.write_all(REQUEST).await.expect("write c");
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), c.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the third connection is not served while two are open"
    );
    drop(a);
    let answer = read_answer(&mut c).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "served once one closed: {answer}"
    );
}

#[tokio::test]
async fn a_stop_closes_requests_that_outlive_the_grace_period() {
    let (addr, stop) = start(Duration::from_secs(30), 100).await;
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    let (answer, closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "closed within the grace period, not after the handler's 10 s"
    );
    assert!(!answer.contains("late"), "{answer}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connections after the stop"
    );
}
