//! Prometheus metrics: every name the API exports, its HELP text, the histogram buckets, the
//! process-wide recorder and the middleware that counts every answer.
//!
//! Every label has a bounded set of values, so no client can grow the exposition: methods
//! outside [`method_label`]'s fixed set count as `other`, paths that match no route count as
//! `unmatched`, statuses are HTTP codes and models are registry names.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The metric names: a `pub const` each, with its doc, and all of them in [`NAMES`].
macro_rules! metric_names {
    ($($(#[$doc:meta])* $name:ident = $value:literal;)*) => {
        $($(#[$doc])* pub const $name: &str = $value;)*
        /// Every metric name above (the process metrics come from `metrics-process`).
        pub const NAMES: &[&str] = &[$($name),*];
    };
}

metric_names! {
    /// Requests answered, by method, route and status.
    HTTP_REQUESTS = "http_requests_total";
    /// Time from a request's arrival to its answer, by method and route.
    HTTP_DURATION = "http_request_duration_seconds";
    /// Requests being handled now (long polls included), by method and route.
    HTTP_IN_FLIGHT = "http_requests_in_flight";
    /// Jobs queued for a worker, by model.
    JOBS_SUBMITTED = "jobs_submitted_total";
    /// Uploads answered from the result cache.
    JOBS_CACHE_HITS = "jobs_cache_hits_total";
    /// Jobs recorded as finished, by outcome.
    JOBS_FINISHED = "jobs_finished_total";
    /// Uploads refused before queueing, by reason.
    UPLOADS_REJECTED = "uploads_rejected_total";
    /// Time a job waited in its queue: from being accepted to a worker starting it, by model.
    QUEUE_WAIT = "job_queue_wait_seconds";
    /// Time from a job being accepted to its result, by model.
    JOB_TURNAROUND = "job_turnaround_seconds";
    /// Jobs in each model's queue, read from Redis at each scrape.
    QUEUE_DEPTH = "queue_depth";
    /// Workers whose heartbeat is fresh, read from Redis at each scrape.
    WORKERS_LIVE = "workers_live";
}

/// Request latency buckets (seconds): from a cached `GET` to a `POST /predict` near its timeout.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Queue wait and turnaround buckets (seconds): up to minutes under a backlog.
pub const QUEUE_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The process-wide Prometheus recorder (installed once, shared by every app in a process):
/// histograms with explicit buckets, HELP text for every metric.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (tests): ours still renders what
            // reaches it, and the descriptions below go to whichever is installed.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            process_collector().describe();
            handle
        })
        .clone()
}

/// The exposition: process metrics are sampled now, then everything is rendered.
pub fn render(handle: &PrometheusHandle) -> String {
    process_collector().collect();
    handle.render()
}

fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

fn builder() -> PrometheusBuilder {
    let buckets = [
        (HTTP_DURATION, LATENCY_BUCKETS),
        (QUEUE_WAIT, QUEUE_BUCKETS),
        (JOB_TURNAROUND, QUEUE_BUCKETS),
    ];
    let mut b = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .expect("the bucket lists are not empty");
    for (name, list) in buckets {
        b = b
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), list)
            .expect("the bucket lists are not empty");
    }
    b
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or other), route template (or unmatched) and status code; 504s from the request timeout, 413s from the body limit and 500s from caught panics included."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its answer, by method and route template."
    );
    describe_gauge!(
        HTTP_IN_FLIGHT,
        Unit::Count,
        "Requests arrived and not yet answered (long polls waiting with ?wait included), by method and route template."
    );
    describe_counter!(
        JOBS_SUBMITTED,
        "Jobs queued for a worker, by model (cache hits excluded)."
    );
    describe_counter!(
        JOBS_CACHE_HITS,
        "Uploads answered from the result cache without queueing a job."
    );
    describe_counter!(
        JOBS_FINISHED,
        "Finished jobs recorded in the history, by outcome (done or failed)."
    );
    describe_counter!(
        UPLOADS_REJECTED,
        "Uploads refused before queueing, by reason (queue_full)."
    );
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time a job waited from being accepted to a worker starting it (its last start, for a retried job), by model."
    );
    describe_histogram!(
        JOB_TURNAROUND,
        Unit::Seconds,
        "Time from a job being accepted to its result being recorded by a worker, by model."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Jobs in each model's queue (Redis stream length), read at each scrape."
    );
    describe_gauge!(
        WORKERS_LIVE,
        Unit::Count,
        "Workers with a fresh heartbeat, read at each scrape."
    );
}

/// The method as a label: one of a fixed set, anything else `other`.
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The route label of a path no route matched.
pub const UNMATCHED: &str = "unmatched";

/// A request being handled: counted in [`HTTP_IN_FLIGHT`] until dropped, however the
/// request ends (a client hanging up included).
struct InFlight(metrics::Gauge);

impl InFlight {
    fn new(gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Counts every answer and records its latency per method, route template and status. It is
/// the outermost layer, so answers made by the layers inside it (timeout, body limit, caught
/// panic) are counted too.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let start = Instant::now();
    let _in_flight = InFlight::new(
        metrics::gauge!(HTTP_IN_FLIGHT, "method" => method, "route" => route.clone()),
    );
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_fixed_set_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(method_label(&Method::TRACE), "other");
        let invented = Method::from_bytes(b"FROBNICATE").unwrap_or(Method::CONNECT);
        assert_eq!(method_label(&invented), "other");
    }

    #[test]
    fn histograms_have_buckets_and_help() {
        let h = handle();
        metrics::histogram!(QUEUE_WAIT, "model" => "unit-test-model").record(0.3);
        let text = render(&h);
        assert!(
            text.contains(&format!(
                "{QUEUE_WAIT}_bucket{{model=\"unit-test-model\",le=\"0.5\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{QUEUE_WAIT}_bucket{{model=\"unit-test-model\",le=\"0.25\"}} 0"
            )),
            "{text}"
        );
        assert!(text.contains(&format!("# HELP {QUEUE_WAIT} ")), "{text}");
        assert!(
            text.contains(&format!("# TYPE {QUEUE_WAIT} histogram")),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }

    /// The layers inside the metrics layer make answers of their own; each is counted: a caught
    /// panic (500), the request timeout (504), the body limit (413), an invented method and an
    /// unmatched path.
    #[tokio::test]
    async fn answers_made_by_the_inner_layers_are_counted() {
        use axum::body::Body;
        use axum::routing::{get, post};
        use tower::ServiceExt;

        let h = handle();
        let app = crate::with_layers(
            axum::Router::new()
                .route(
                    "/unit-boom",
                    get(|| async {
                        if std::hint::black_box(true) {
                            panic!("boom");
                        }
                        "unreachable"
                    }),
                )
                .route(
                    "/unit-slow",
                    get(|| async { tokio::time::sleep(std::time::Duration::from_secs(5)).await }),
                )
                .route(
                    "/unit-body",
                    post(|b: axum::body::Bytes| async move { b.len().to_string() }),
                ),
            1024,
            std::time::Duration::from_millis(50),
        );
        let call = |method: &str, uri: &str, body: Vec<u8>| {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::from(body))
                .expect("request");
            let app = app.clone();
            async move {
                app.oneshot(req)
                    .await
                    .expect("infallible")
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(call("GET", "/unit-boom", vec![]).await, 500);
        assert_eq!(call("GET", "/unit-slow", vec![]).await, 504);
        assert_eq!(call("POST", "/unit-body", vec![0; 4096]).await, 413);
        assert_eq!(call("POST", "/unit-body", vec![0; 16]).await, 200);
        assert_eq!(call("BREW", "/unit-body", vec![]).await, 405);
        let text = render(&h);
        for line in [
            r#"http_requests_total{method="GET",route="/unit-boom",status="500"} 1"#,
            r#"http_requests_total{method="GET",route="/unit-slow",status="504"} 1"#,
            r#"http_requests_total{method="POST",route="/unit-body",status="413"} 1"#,
            r#"http_requests_total{method="POST",route="/unit-body",status="200"} 1"#,
            r#"http_requests_total{method="other",route="/unit-body",status="405"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        assert!(!text.contains("BREW"));
    }

    /// The Grafana dashboard queries only names the API exports (the `worker_*` ones are the
    /// worker's, checked by its own test) and shows every one.
    #[test]
    fn the_grafana_dashboard_uses_the_exported_names() {
        let used = test_support::grafana::queried_metrics();
        for name in &used {
            let known = NAMES.contains(&name.as_str())
                || name.starts_with("worker_")
                || ["process_resident_memory_bytes", "process_cpu_seconds_total"]
                    .contains(&name.as_str());
            assert!(
                known,
                "the dashboard queries {name}, which the API does not export"
            );
        }
        for name in NAMES {
            assert!(used.contains(*name), "the dashboard does not show {name}");
        }
        let p99 = "histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket";
        assert!(test_support::grafana::queries()
            .iter()
            .any(|q| q.starts_with(p99)));
    }
}
