//! `worker bench`: in one run on one machine, (a) raw ONNX Runtime session throughput at batch 1
//! with the worker's thread settings, then (b) the same image pushed end-to-end through
//! HTTP -> Redis -> a running worker -> result, and the ratio (b)/(a). Prints a table and
//! appends a JSON line to the report file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use api_types::{Job, JobStatus, LoginRequest, RegisterRequest, Submitted, Token};
use clap::Args;
use fast_image_resize::Resizer;
use serde_json::json;

use crate::config::WorkerConfig;
use crate::preprocess::{self, DecodeLimits};

/// Options of `worker bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Model to measure.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Image to classify.
    #[arg(long, default_value = "../shared/testdata/grace_hopper.jpg")]
    pub image: PathBuf,
    /// Measured inferences in the raw phase (after warm-up).
    #[arg(long, default_value_t = 100)]
    pub iterations: usize,
    /// Running API for the end-to-end phase (skipped when absent).
    #[arg(long)]
    pub api_url: Option<String>,
    /// End-to-end jobs.
    #[arg(long, default_value_t = 100)]
    pub jobs: usize,
    /// Concurrent HTTP clients in the end-to-end phase.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Where the JSON line of results is appended.
    #[arg(long, default_value = "stress/reports/bench.jsonl")]
    pub report: PathBuf,
}

/// Runs the benchmark.
pub async fn run(mut cfg: WorkerConfig, args: BenchArgs) -> anyhow::Result<()> {
    cfg.models = vec![args.model.clone()];
    let bytes = std::fs::read(&args.image)
        .with_context(|| format!("cannot read {}", args.image.display()))?;
    let threads = cfg.threads();
    let iterations = args.iterations.max(1);
    let (raw_ips, preprocess_ms, model_name) = {
        let cfg = cfg.clone();
        let bytes = bytes.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(f64, f64, String)> {
            let (_, models) = crate::load_models(&cfg)?;
            let model = models.into_values().next().context("model not loaded")?;
            let mut resizer = Resizer::new();
            let t = Instant::now();
            let img = preprocess::decode(&bytes, DecodeLimits::default())?;
            let tensor = preprocess::to_tensor(&img, &model.spec, &mut resizer);
            let preprocess_ms = t.elapsed().as_secs_f64() * 1e3;
            for _ in 0..5 {
                model.infer(&tensor)?;
            }
            let t = Instant::now();
            for _ in 0..iterations {
                model.infer(&tensor)?;
            }
            Ok((
                iterations as f64 / t.elapsed().as_secs_f64(),
                preprocess_ms,
                model.name.clone(),
            ))
        })
        .await??
    };
    println!(
        "model {model_name}, {threads} intra-op thread(s), image {}",
        args.image.display()
    );
    println!("(a) raw session.run, batch 1:        {raw_ips:8.1} img/s  ({:.1} ms/img; decode+preprocess {preprocess_ms:.1} ms)", 1e3 / raw_ips);

    let mut record = json!({
        "at": shared::time_util::rfc3339(shared::time_util::now_ms()),
        "model": model_name, "threads": threads, "raw_img_per_s": raw_ips,
        "preprocess_ms": preprocess_ms,
    });
    if let Some(api) = &args.api_url {
        let (e2e_ips, p50, p95) = end_to_end(api, &args, &bytes).await?;
        println!("(b) end-to-end HTTP->Redis->worker:   {e2e_ips:8.1} img/s  (latency p50 {p50:.0} ms, p95 {p95:.0} ms, {} clients)", args.clients);
        println!(
            "ratio (b)/(a):                        {:8.2}",
            e2e_ips / raw_ips
        );
        record["e2e_img_per_s"] = json!(e2e_ips);
        record["ratio"] = json!(e2e_ips / raw_ips);
        record["e2e_p50_ms"] = json!(p50);
        record["e2e_p95_ms"] = json!(p95);
        record["jobs"] = json!(args.jobs);
        record["clients"] = json!(args.clients);
    }
    if let Some(dir) = args.report.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.report)?;
    writeln!(f, "{record}")?;
    println!("report appended to {}", args.report.display());
    Ok(())
}

/// Registers a throwaway user (the API requires one), then pushes `jobs` distinct uploads of the
/// image (a unique JPEG comment defeats the result cache) through
/// `POST /predictions` + `GET ?wait=`.
async fn end_to_end(api: &str, args: &BenchArgs, bytes: &[u8]) -> anyhow::Result<(f64, f64, f64)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let token = bench_token(&http, api).await?;
    let run_id: u64 = rand::random();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let warm = upload_and_wait(
        &http,
        api,
        &token,
        &args.model,
        unique(bytes, run_id, usize::MAX),
    )
    .await;
    warm.context("warm-up job failed")?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients.max(1) {
        let (http, api, token, model, next, bytes) = (
            http.clone(),
            api.to_owned(),
            token.clone(),
            args.model.clone(),
            next.clone(),
            bytes.to_vec(),
        );
        let jobs = args.jobs;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= jobs {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                upload_and_wait(&http, &api, &token, &model, unique(&bytes, run_id, i)).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let ips = args.jobs as f64 / started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok((ips, pct(0.5), pct(0.95)))
}

fn unique(bytes: &[u8], run: u64, i: usize) -> Vec<u8> {
    shared::upload::with_jpeg_comment(bytes, format!("bench-{run}-{i}").as_bytes())
}

async fn bench_token(http: &reqwest::Client, api: &str) -> anyhow::Result<String> {
    let email = format!("bench-{}@example.com", rand::random::<u32>());
    let password = format!("pw-{}", rand::random::<u64>());
    let register = RegisterRequest {
        name: "bench".into(),
        email: email.clone(),
        password: password.clone(),
    };
    let r = http
        .post(format!("{api}/users"))
        .json(&register)
        .send()
        .await?;
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(String::new()); // an API without users
    }
    anyhow::ensure!(r.status().is_success(), "register failed: {}", r.status());
    let login = LoginRequest {
        username: email,
        password,
    };
    let token: Token = answer(http.post(format!("{api}/login")).json(&login)).await?;
    Ok(token.access_token)
}

/// Sends the request and reads its JSON answer; an error status is an error.
async fn answer<T: serde::de::DeserializeOwned>(req: reqwest::RequestBuilder) -> anyhow::Result<T> {
    Ok(req.send().await?.error_for_status()?.json().await?)
}

async fn upload_and_wait(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    model: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<()> {
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("bench.jpg"),
        )
        .text("model", model.to_owned());
    let submit = http.post(format!("{api}/predictions")).multipart(form);
    let submitted: Submitted = answer(submit.bearer_auth(token)).await?;
    let id = submitted.job_id().to_owned();
    loop {
        let poll = http.get(format!("{api}/predictions/{id}?wait=30"));
        let job: Job = answer(poll.bearer_auth(token)).await?;
        match job.status {
            JobStatus::Done => return Ok(()),
            JobStatus::Failed => anyhow::bail!(
                "job failed: {}",
                job.error.as_deref().unwrap_or("no reason given")
            ),
            JobStatus::Queued | JobStatus::Processing => continue,
        }
    }
}
