//! The worker's own Prometheus metrics (`WORKER_METRICS_BIND`, off by default): per model,
//! histograms with explicit buckets of how long a job waited in its queue (enqueue to a worker
//! starting it), decode, preprocessing (resize, crop, normalize into the input tensor),
//! inference (`session.run`) and the batch size of each inference call. Recording is a no-op
//! until [`handle`] installs the recorder, so the instrumented code costs nothing when off.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Enqueue (the job record's `enqueued_ms`) to a worker starting the job, by model.
pub const QUEUE_WAIT: &str = "worker_queue_wait_seconds";
/// Upload bytes to RGB pixels, by model.
pub const DECODE: &str = "worker_decode_seconds";
/// RGB pixels to the input tensor (resize, crop, normalize), by model.
pub const PREPROCESS: &str = "worker_preprocess_seconds";
/// One inference call (`session.run`), by model.
pub const INFERENCE: &str = "worker_inference_seconds";
/// Images per inference call, by model.
pub const BATCH_SIZE: &str = "worker_batch_size";

/// Every metric name above.
pub const NAMES: &[&str] = &[QUEUE_WAIT, DECODE, PREPROCESS, INFERENCE, BATCH_SIZE];

/// Decode, preprocess and inference buckets (seconds): 1 ms to 10 s.
pub const STAGE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Queue wait buckets (seconds): up to minutes under a backlog.
pub const QUEUE_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Batch size buckets (images).
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// The process-wide recorder, installed on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut b = PrometheusBuilder::new();
            for (name, list) in [
                (QUEUE_WAIT, QUEUE_BUCKETS),
                (DECODE, STAGE_BUCKETS),
                (PREPROCESS, STAGE_BUCKETS),
                (INFERENCE, STAGE_BUCKETS),
                (BATCH_SIZE, BATCH_BUCKETS),
            ] {
                b = b
                    .set_buckets_for_metric(Matcher::Full(name.to_owned()), list)
                    .expect("the bucket lists are not empty");
            }
            let recorder = b.build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time a job waited in its queue, from being enqueued to this worker starting it, by model."
    );
    describe_histogram!(
        DECODE,
        Unit::Seconds,
        "Upload bytes to RGB pixels (a large JPEG at reduced scale), by model."
    );
    describe_histogram!(
        PREPROCESS,
        Unit::Seconds,
        "RGB pixels to the model's input tensor (resize, center crop, normalize), by model."
    );
    describe_histogram!(
        INFERENCE,
        Unit::Seconds,
        "One inference call (ONNX Runtime session.run), by model."
    );
    describe_histogram!(
        BATCH_SIZE,
        Unit::Count,
        "Images per inference call, by model."
    );
}

/// Records one stage's duration for `model`.
pub fn stage(name: &'static str, model: &str, took: Duration) {
    metrics::histogram!(name, "model" => model.to_owned()).record(took.as_secs_f64());
}

/// Records the size of one inference call for `model`.
pub fn batch(model: &str, images: usize) {
    metrics::histogram!(BATCH_SIZE, "model" => model.to_owned()).record(images as f64);
}

/// Records a job's queue wait from its enqueue time (ms since the epoch).
pub fn queue_wait(model: &str, enqueued_ms: i64) {
    let waited = (shared::time_util::now_ms() - enqueued_ms).max(0);
    metrics::histogram!(QUEUE_WAIT, "model" => model.to_owned()).record(waited as f64 / 1e3);
}

/// Serves `GET /metrics` (the Prometheus text exposition) on `bind` until `shutdown`;
/// answers with the address actually bound (port 0 picks a free one).
pub async fn serve(
    bind: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let handle = handle();
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("WORKER_METRICS_BIND {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    let task = tokio::spawn(async move {
        let done = shutdown.cancelled_owned();
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(done)
            .await
        {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Grafana dashboard's `worker_*` queries name metrics this module exports.
    #[test]
    fn the_grafana_dashboard_uses_the_exported_names() {
        let used = test_support::grafana::queried_metrics();
        let ours: Vec<_> = used.iter().filter(|n| n.starts_with("worker_")).collect();
        assert!(
            !ours.is_empty(),
            "the dashboard shows the workers' inference time"
        );
        for name in ours {
            assert!(
                NAMES.contains(&name.as_str()),
                "the dashboard queries {name}, which the worker does not export"
            );
        }
    }
}
