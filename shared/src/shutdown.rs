//! The stop signal every process obeys: SIGTERM (containers, systemd) or Ctrl-C.

use tokio_util::sync::CancellationToken;

/// A token cancelled on SIGTERM or Ctrl-C; call once, inside the runtime.
pub fn signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
        tracing::info!("shutdown signal received");
        t.cancel();
    });
    token
}
