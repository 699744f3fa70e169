//! The HTTP server the api and the ui run. `axum::serve` has no limits of its own: a client
//! may take forever to send its headers, keep a connection idle for good, and open as many
//! connections as the process has file descriptors (issue 24, finding 3: 21,000 silent
//! connections took the API to its fd limit, `/health` timing out). [`serve`] runs the same
//! router on hyper's HTTP/1 server with:
//!
//! - a header deadline ([`ServerLimits::header_timeout`]) that hyper applies from the moment a
//!   connection opens and again while a kept-alive connection waits for its next request, so
//!   it is the idle timeout too;
//! - at most [`ServerLimits::max_connections`] connections open at once (lowered to what the
//!   open-file limit allows): at the limit, new connections wait in the kernel's backlog
//!   instead of failing `accept` for everyone;
//! - a graceful stop: no new connections, requests in flight finish within a grace period,
//!   then the remaining connections are closed.
//!
//! Request bodies are bounded by the routers themselves (a body limit and a whole-request
//! timeout). HTTP/2 is not served: both binaries sit behind a proxy that terminates TLS (and
//! HTTP/2) in production, and HTTP/1 alone keeps one set of limits to reason about.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{debug, error, info, warn};

use shared::config::duration_secs;

/// File descriptors kept free for what is not a client connection (Redis, the database,
/// outgoing HTTP, files, the listener itself).
const FD_RESERVE: u64 = 256;

/// The listener's limits, the same settings for the api and the ui.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerLimits {
    /// Longest a client may take to send a request's headers, counted from when the connection
    /// opens or, kept alive, from its previous answer (so it is also the idle timeout); then
    /// the connection is closed.
    #[arg(long, env = "HEADER_TIMEOUT", value_parser = duration_secs, default_value = "10s")]
    pub header_timeout: Duration,

    /// Most client connections open at once; beyond it, new ones wait in the kernel's backlog
    /// until one closes. Lowered, with a warning at start, to what the process's open-file
    /// limit allows.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
}

/// How [`serve`] stops: when `signal` completes it accepts nothing more and gives the requests
/// in flight `grace` (none: as long as they take) before closing their connections.
pub struct Shutdown<F> {
    pub signal: F,
    pub grace: Option<Duration>,
}

/// Serves `router` on `listener` until the shutdown signal, with `limits`. Handlers can extract
/// `ConnectInfo<SocketAddr>` as with `into_make_service_with_connect_info`.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: Shutdown<F>,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    let max = allowed_connections(limits.max_connections);
    let permits = Arc::new(Semaphore::new(max));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    let mut warned: Option<Instant> = None;
    let signal = shutdown.signal;
    tokio::pin!(signal);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut signal => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        if permits.available_permits() == 0 && warned.is_none_or(|t| t.elapsed() > WARN_EVERY) {
            warn!(
                max,
                "connection limit reached: new connections wait until one closes"
            );
            warned = Some(Instant::now());
        }
        while conns.try_join_next().is_some() {}
        let conn = Accepted {
            stream,
            peer,
            permit,
        };
        conns.spawn(conn.serve(&http, &graceful, router.clone()));
    }
    drop(listener);
    stop(graceful, conns, shutdown.grace).await;
    Ok(())
}

/// An accepted connection and its place under `MAX_CONNECTIONS`.
struct Accepted {
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    permit: OwnedSemaphorePermit,
}

impl Accepted {
    /// The connection served by `router` (handlers see `ConnectInfo(peer)`), watched by the
    /// graceful stop; its place is given back when it ends.
    fn serve(
        self,
        http: &hyper::server::conn::http1::Builder,
        graceful: &GracefulShutdown,
        router: Router,
    ) -> impl Future<Output = ()> + Send + 'static {
        let Accepted {
            stream,
            peer,
            permit,
        } = self;
        // Answers are small and often written in two parts: do not let Nagle hold the second.
        let _ = stream.set_nodelay(true);
        let service = router.map_request(move |mut req: axum::http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        async move {
            if let Err(e) = conn.await {
                // Timeouts, resets and malformed requests: the client's problem, not ours.
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        }
    }
}

/// How often "connection limit reached" may be logged.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Waits for the connections in flight to finish (after hyper has told each to close once its
/// request is answered), then closes what is left when the grace period ends.
async fn stop(graceful: GracefulShutdown, mut conns: JoinSet<()>, grace: Option<Duration>) {
    let drained = graceful.shutdown();
    match grace {
        None => drained.await,
        Some(grace) => {
            if tokio::time::timeout(grace, drained).await.is_err() {
                warn!("grace period over; closing remaining connections");
            }
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

/// A failed `accept`: an aborted handshake is skipped; running out of file descriptors (or
/// anything else) is logged and retried after a pause rather than in a busy loop.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    error!(error = %e, "accept failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// `wanted`, or fewer if the open-file limit (raised first to its hard ceiling, as Go's
/// runtime does) cannot hold that many connections besides [`FD_RESERVE`].
fn allowed_connections(wanted: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            warn!(error = %e, "cannot read the open-file limit; MAX_CONNECTIONS is not checked");
            return wanted.max(1);
        }
    };
    let usable = limit.saturating_sub(FD_RESERVE).max(1);
    if wanted as u64 > usable {
        warn!(
            wanted,
            open_file_limit = limit,
            "MAX_CONNECTIONS is more than the open-file limit allows; serving at most {usable}"
        );
        return usable as usize;
    }
    info!(
        max_connections = wanted,
        open_file_limit = limit,
        "connection limits"
    );
    wanted.max(1)
}
