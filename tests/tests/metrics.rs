//! `/metrics` end to end, over real HTTP against the real binaries (a private Redis, the real
//! EfficientNet-Lite0 model): histograms with buckets move by exactly the requests and jobs
//! made, invented methods and paths add no series, a 504 from the request timeout and a 413
//! from the body limit are counted, and `METRICS_BIND` moves `/metrics` off the API port.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use api_types::{Job, JobAccepted};
use test_support::*;

const MODEL: &str = "efficientnet-lite0";

/// One scrape: series (`name{k="v",...}`, labels sorted by key) to value.
#[derive(Debug, Clone)]
struct Scrape {
    text: String,
    series: BTreeMap<String, f64>,
}

impl Scrape {
    /// The value of `name` with exactly `labels`, 0 when the series does not exist (yet).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series.get(&key(name, labels)).copied().unwrap_or(0.0)
    }

    /// How much `name` with exactly `labels` grew since `earlier`.
    fn since(&self, earlier: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels) - earlier.get(name, labels)
    }

    /// Sum over every series of `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series
            .iter()
            .filter(|(k, _)| {
                k.split_once('{').map_or(k.as_str(), |(n, _)| n) == name
                    && labels
                        .iter()
                        .all(|(lk, lv)| k.contains(&format!("{lk}=\"{lv}\"")))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l: Vec<_> = labels.to_vec();
    l.sort();
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Parses the Prometheus text format (enough of it for what the exporter writes).
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|e| panic!("{line}: {e}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut pairs = Vec::new();
        let mut rest = labels;
        while let Some((k, after)) = rest.split_once("=\"") {
            let end = after.find('"').expect("closing quote");
            pairs.push((k.trim_start_matches(','), &after[..end]));
            rest = &after[end + 1..];
        }
        out.insert(key(name, &pairs), value);
    }
    out
}

async fn scrape(http: &reqwest::Client, base: &str) -> Scrape {
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    Scrape {
        series: parse(&text),
        text,
    }
}

/// Long-polls a job (`?wait=2`, under the stack's request timeout) until it is finished.
async fn wait_job(c: &Client, job_id: &str) -> Job {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job: Job = c.get_ok(&format!("/predictions/{job_id}?wait=2")).await;
        if job.status.is_terminal() {
            return job;
        }
        assert!(Instant::now() < deadline, "job {job_id} never finished");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn histograms_count_every_request_and_job_and_labels_stay_bounded() {
    let mut stack = Stack::builder()
        .workers(1)
        .env("REQUEST_TIMEOUT", "5")
        .env("MAX_UPLOAD_BYTES", "300000")
        .start()
        .await;
    let base = stack.api_url().to_owned();
    let c = Client::register(&base).await;
    let http = reqwest::Client::new();

    // 20 classifications through POST /predictions and the real model.
    let before = scrape(&http, &base).await;
    for i in 0..20 {
        let (status, body, _) = c
            .upload("/predictions", unique_photo(&format!("metrics-{i}")), None)
            .await;
        assert_eq!(status, 202, "{body}");
        let accepted: JobAccepted = typed(&body);
        let job = wait_job(&c, &accepted.job_id).await;
        assert_eq!(top1(&job), "academic gown", "{job:?}");
    }
    // The results are recorded (and timed) in the background: wait for all 20.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let s = scrape(&http, &base).await;
        let done = s.since(&before, "job_queue_wait_seconds_count", &[("model", MODEL)]);
        if done >= 20.0 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let moved = |name: &str, labels: &[(&str, &str)]| after.since(&before, name, labels);
    let post = [("method", "POST"), ("route", "/predictions")];
    let post_le = |le: &'static str| [post[0], post[1], ("le", le)];
    assert_eq!(moved("http_request_duration_seconds_count", &post), 20.0);
    assert_eq!(
        moved("http_request_duration_seconds_bucket", &post_le("+Inf")),
        20.0
    );
    assert_eq!(
        moved("http_request_duration_seconds_bucket", &post_le("10")),
        20.0,
        "every upload answered within 10 s lands in a finite bucket"
    );
    assert!(moved("http_request_duration_seconds_sum", &post) > 0.0);
    assert_eq!(
        moved(
            "http_requests_total",
            &[post[0], post[1], ("status", "202")]
        ),
        20.0
    );
    let model = [("model", MODEL)];
    let model_le = [("model", MODEL), ("le", "+Inf")];
    for name in ["job_queue_wait_seconds", "job_turnaround_seconds"] {
        assert_eq!(moved(&format!("{name}_count"), &model), 20.0, "{name}");
        assert_eq!(moved(&format!("{name}_bucket"), &model_le), 20.0, "{name}");
    }
    assert_eq!(moved("jobs_finished_total", &[("outcome", "done")]), 20.0);
    // Real histograms (never summaries), each with its HELP text; process metrics too.
    for name in [
        "http_request_duration_seconds",
        "job_queue_wait_seconds",
        "job_turnaround_seconds",
    ] {
        assert!(
            after.text.contains(&format!("# TYPE {name} histogram")),
            "{name}"
        );
        assert!(after.text.contains(&format!("# HELP {name} ")), "{name}");
    }
    for name in ["http_requests_total", "queue_depth", "workers_live"] {
        assert!(after.text.contains(&format!("# HELP {name} ")), "{name}");
    }
    assert!(!after.text.contains("quantile="), "no summaries");
    assert!(after.get("process_resident_memory_bytes", &[]) > 1e6);
    // A counter of whole seconds (the metrics crate's counters are integers): present.
    assert!(after.series.contains_key("process_cpu_seconds_total{}"));
    assert_eq!(after.get("workers_live", &[]), 1.0);

    // Invented methods and paths add no series: they count as `other` and `unmatched`.
    let invented = |i: usize| reqwest::Method::from_bytes(format!("INVENT{i}").as_bytes()).unwrap();
    let send = |m: reqwest::Method, path: String| {
        let r = http.request(m, format!("{base}{path}")).send();
        async move { r.await.unwrap().status().as_u16() }
    };
    send(invented(0), "/health".into()).await;
    send(reqwest::Method::GET, "/no-such-path-0".into()).await;
    send(invented(100), "/no/such/thing".into()).await;
    let warm = scrape(&http, &base).await;
    for i in 1..=30 {
        let s = send(invented(i), "/health".into()).await;
        assert!((400..500).contains(&s), "{s}");
        assert_eq!(
            send(reqwest::Method::GET, format!("/no-such-path-{i}")).await,
            404
        );
        send(
            invented(100 + i),
            format!("/no/such/{}", uuid::Uuid::new_v4()),
        )
        .await;
    }
    let later = scrape(&http, &base).await;
    let new: Vec<_> = later
        .series
        .keys()
        .filter(|k| !warm.series.contains_key(*k))
        .collect();
    assert!(new.is_empty(), "new series: {new:?}");
    assert_eq!(later.series.len(), warm.series.len());
    assert!(!later.text.contains("INVENT") && !later.text.contains("no-such-path"));
    assert_eq!(
        later.sum("http_requests_total", &[("method", "other")])
            - warm.sum("http_requests_total", &[("method", "other")]),
        60.0
    );
    assert_eq!(
        later.sum("http_requests_total", &[("route", "unmatched")])
            - warm.sum("http_requests_total", &[("route", "unmatched")]),
        60.0
    );
    assert!(
        later.text.len() < warm.text.len() + 2048,
        "the exposition does not grow"
    );

    // A 413 from the body limit is counted.
    let big = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![0u8; 1 << 20]).file_name("big.jpg"),
    );
    // A client of its own: the API may close the connection after refusing the body.
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = once
        .post(format!("{base}/predictions"))
        .bearer_auth(&c.token)
        .multipart(big)
        .send()
        .await;
    // The API may answer before the whole body is sent; then the client sees a reset, but
    // the answer was made (and counted) all the same.
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    let s = scrape(&http, &base).await;
    let too_large = [post[0], post[1], ("status", "413")];
    let counted = s.since(&later, "http_requests_total", &too_large);
    assert_eq!(counted, 1.0, "{}", s.text);

    // A 504 from the request timeout is counted: with the worker gone and a live heartbeat
    // from one that takes no jobs, a job stays queued, and a 20 s wait is cut at
    // REQUEST_TIMEOUT (5 s).
    stack.workers[0].kill9();
    let silent = shared::job::WorkerInfo {
        id: "silent".into(),
        models: vec![MODEL.into()],
        last_seen_ms: shared::time_util::now_ms(),
        ..Default::default()
    };
    let mut conn = stack
        .redis
        .as_ref()
        .expect("the stack's own Redis")
        .conn()
        .await;
    shared::queue::workers::heartbeat(&mut conn, &silent, Duration::from_secs(60))
        .await
        .unwrap();
    let (status, body, _) = c.upload("/predictions", unique_photo("stuck"), None).await;
    assert_eq!(status, 202, "{body}");
    let accepted: JobAccepted = typed(&body);
    let (status, body) = c
        .get(&format!("/predictions/{}?wait=20", accepted.job_id))
        .await;
    assert_eq!(status, 504, "{body}");
    let job_route = [("method", "GET"), ("route", "/predictions/{job_id}")];
    let end = scrape(&http, &base).await;
    let timed_out = [job_route[0], job_route[1], ("status", "504")];
    let counted = end.since(&s, "http_requests_total", &timed_out);
    assert_eq!(counted, 1.0, "{}", end.text);
    assert!(
        end.get(
            "http_request_duration_seconds_bucket",
            &[job_route[0], job_route[1], ("le", "2.5")]
        ) < end.get(
            "http_request_duration_seconds_bucket",
            &[job_route[0], job_route[1], ("le", "10")]
        ),
        "the 5 s answer lands between the 2.5 s and 10 s buckets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_bind_serves_metrics_on_its_own_address_only() {
    let port = free_port().unwrap();
    let stack = Stack::builder()
        .env("METRICS_BIND", format!("127.0.0.1:{port}"))
        .wait_ready(false)
        .start()
        .await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/metrics", stack.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "not on the API port");
    let metrics = format!("http://127.0.0.1:{port}");
    let s = scrape(&http, &metrics).await;
    assert!(
        s.get(
            "http_requests_total",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ) >= 1.0,
        "the API port's requests are counted: {}",
        s.text
    );
    assert!(
        s.get(
            "http_requests_total",
            &[("method", "GET"), ("route", "/health"), ("status", "200")]
        ) >= 1.0
    );
    assert!(s
        .text
        .contains("# TYPE http_request_duration_seconds histogram"));
    let r = http.get(format!("{metrics}/health")).send().await.unwrap();
    assert_eq!(r.status(), 404, "the metrics address serves /metrics only");
    // Scrapes are not requests to the API: they are not counted.
    let again = scrape(&http, &metrics).await;
    assert_eq!(
        again.sum("http_requests_total", &[("route", "/metrics")]),
        0.0
    );
}
