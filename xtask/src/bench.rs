//! `cargo xtask bench-e2e` (was `worker bench`): in one run on one machine, (a) raw ONNX Runtime session throughput at batch 1
//! with the worker's thread settings, then (b) the same image pushed end-to-end through
//! HTTP -> Redis -> a running worker -> result, and the ratio (b)/(a). Prints a table and
//! appends a JSON line to the report file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use api_types::{LoginRequest, PredictResponse, RegisterRequest, Token};
use clap::Args;
use fast_image_resize::Resizer;
use serde_json::json;

use shared::upload::DecodeLimits;
use worker::config::WorkerConfig;

/// Options of `cargo xtask bench-e2e`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The worker settings the raw phase loads the model with (the serving worker's flags).
    #[command(flatten)]
    pub worker: WorkerConfig,
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
    /// Run id recorded with every JSON line (`make bench` groups one run's lines by it).
    #[arg(long, env = "BENCH_RUN")]
    pub run_id: Option<String>,
    /// What was measured, recorded with the line (e.g. "1 worker", "2 workers").
    #[arg(long, env = "BENCH_SETUP")]
    pub setup: Option<String>,
    /// Stop issuing end-to-end jobs after this many seconds (then `--jobs` is only a cap).
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// Concurrent HTTP clients in the end-to-end phase.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Where the JSON line of results is appended.
    #[arg(long, default_value = "stress/reports/bench.jsonl")]
    pub report: PathBuf,
    /// Only the preprocessing comparison (no model, no API): photos of 640x480, 4000x3000 and
    /// 4240x2832 (JPEG) and a large PNG, made from `--image`, each to the model's input tensor
    /// on this one thread by the plain path (`image` decode at full size + resize) and by the
    /// worker's (reduced-scale JPEG decode + SIMD resize into a reused tensor).
    #[arg(long)]
    pub preprocess_only: bool,
    /// A process of the stack whose CPU time per image the end-to-end phase reports, as
    /// NAME=PID (repeatable; `make bench` passes the stack's redis, api and workers). This
    /// benchmark's own process is always counted, as `client`.
    #[arg(long = "watch", value_parser = parse_watch)]
    pub watch: Vec<(String, u32)>,
    /// Seconds of measurement per image and path in `--preprocess-only`.
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 3.0)]
    pub seconds: f64,
    /// The route of the end-to-end phase: `/predict` (multipart) or the V2 protocol's infer
    /// (one binary BYTES row, binary probabilities back, as tritonclient sends it).
    #[arg(long, value_enum, default_value = "predict")]
    pub path: BenchPath,
}

/// The route `bench-e2e` sends its uploads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchPath {
    Predict,
    V2,
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut cfg = args.worker.clone();
    cfg.models = vec![args.model.clone()];
    let bytes = std::fs::read(&args.image)
        .with_context(|| format!("cannot read {}", args.image.display()))?;
    if args.preprocess_only {
        let registry = cfg.common.registry()?;
        let spec = registry.get(&args.model)?.clone();
        let seconds = args.seconds;
        let rows =
            tokio::task::spawn_blocking(move || preprocess_bench(&bytes, &spec, seconds)).await??;
        println!("{}", preprocess_markdown(&rows));
        return append_record(
            &args.report,
            &json!({
                "at": shared::time_util::rfc3339(shared::time_util::now_ms()),
                "kind": "preprocess", "model": args.model, "rows": rows, "run": args.run_id,
            }),
        );
    }
    let threads = cfg.threads();
    let iterations = args.iterations.max(1);
    let (raw_ips, preprocess_ms, model_name) = {
        let cfg = cfg.clone();
        let bytes = bytes.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(f64, f64, String)> {
            let (_, models) = worker::load_models(&cfg)?;
            let model = models.into_values().next().context("model not loaded")?;
            let mut resizer = Resizer::new();
            let t = Instant::now();
            let img = preprocess::decode_for(&bytes, DecodeLimits::default(), model.spec.resize)?;
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
        "preprocess_ms": preprocess_ms, "run": args.run_id, "setup": args.setup,
        "kind": "e2e", "path": format!("{:?}", args.path).to_lowercase(),
    });
    if let Some(api) = &args.api_url {
        let mut watched = args.watch.clone();
        watched.push(("client".into(), std::process::id()));
        let before: Vec<Option<f64>> = watched.iter().map(|(_, p)| cpu_seconds(*p)).collect();
        let wall = Instant::now();
        let EndToEnd {
            img_per_s: e2e_ips,
            p50,
            p95,
            p99,
            worker_p50,
            jobs: done,
        } = end_to_end(api, &args, &bytes).await?;
        let wall = wall.elapsed().as_secs_f64();
        let mut cpu = serde_json::Map::new();
        for ((name, pid), before) in watched.iter().zip(before) {
            if let (Some(b), Some(a)) = (before, cpu_seconds(*pid)) {
                cpu.insert(name.clone(), json!((a - b) * 1e3 / done.max(1) as f64));
            }
        }
        let total: f64 = cpu.values().filter_map(serde_json::Value::as_f64).sum();
        println!(
            "CPU ms per image:                     {} (all: {total:.1} ms; {:.2} CPUs busy)",
            cpu.iter()
                .map(|(n, v)| format!("{n} {:.1}", v.as_f64().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(", "),
            total * done as f64 / 1e3 / wall
        );
        record["cpu_ms_per_image"] = serde_json::Value::Object(cpu);
        println!("(b) end-to-end HTTP->Redis->worker:   {e2e_ips:8.1} img/s  (latency p50 {p50:.0} ms, p95 {p95:.0} ms, p99 {p99:.0} ms; in the worker p50 {worker_p50:.0} ms; {} clients, {done} jobs)", args.clients);
        println!(
            "ratio (b)/(a):                        {:8.2}",
            e2e_ips / raw_ips
        );
        record["e2e_img_per_s"] = json!(e2e_ips);
        record["ratio"] = json!(e2e_ips / raw_ips);
        record["e2e_p50_ms"] = json!(p50);
        record["e2e_p95_ms"] = json!(p95);
        record["e2e_p99_ms"] = json!(p99);
        record["worker_p50_ms"] = json!(worker_p50);
        record["jobs"] = json!(done);
        record["clients"] = json!(args.clients);
    }
    append_record(&args.report, &record)
}

/// `NAME=PID` of `--watch`.
fn parse_watch(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
    let pid = pid.parse().map_err(|e| format!("pid {pid:?}: {e}"))?;
    Ok((name.to_owned(), pid))
}

/// CPU seconds (user + system, every thread) process `pid` has used so far, from
/// `/proc/PID/stat` (`None` when it is gone or this is not Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may hold spaces inside its parentheses: the
    // state first, then utime and stime as the 12th and 13th.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // /proc counts in USER_HZ, 100 on every Linux ABI.
    Some(ticks as f64 / 100.0)
}

fn append_record(report: &std::path::Path, record: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(dir) = report.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(report)?;
    writeln!(f, "{record}")?;
    println!("report appended to {}", report.display());
    Ok(())
}

/// One image of the preprocessing comparison: median milliseconds from bytes to input tensor.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreprocessRow {
    pub image: String,
    pub bytes: usize,
    /// The plain path: the `image` crate's decode and its own resize ([`plain_tensor`]).
    pub plain_ms: f64,
    /// The worker's full-size decode and its SIMD resize of the crop only: what the worker's
    /// path costs without the reduced-scale JPEG decode.
    pub full_decode_ms: f64,
    /// The worker's path: [`preprocess::decode_for`] + [`preprocess::to_tensor_into`].
    pub fast_ms: f64,
    /// 1/N of the DCT-scaled decode on the fast path (1: full size).
    pub jpeg_scale: u32,
    /// The history thumbnail from the decoded picture the plain way: `imageops::resize`
    /// (Triangle) and the `image` crate's JPEG encoder (quality 80).
    pub plain_thumb_ms: f64,
    /// The worker's thumbnail from the same picture ([`preprocess::thumbnail`]).
    pub thumb_ms: f64,
}

/// Test photos of realistic size and entropy made from `seed` (an upload-sized photo): the
/// photo stretched to each size with a little deterministic grain, so a JPEG of it costs about
/// what a camera's does to decode.
fn synthetic(seed: &image::RgbImage, w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    use fast_image_resize::images::{Image, ImageRef};
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions};
    let src = ImageRef::new(seed.width(), seed.height(), seed.as_raw(), PixelType::U8x3)
        .expect("buffer matches size");
    let mut dst = Image::new(w, h, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom)),
        )
        .expect("same pixel type");
    let mut px = dst.into_vec();
    let mut x: u32 = 0x9E37_79B9;
    for v in &mut px {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *v = v.saturating_add((x % 9) as u8).saturating_sub(4);
    }
    let img = image::RgbImage::from_raw(w, h, px).expect("buffer matches size");
    let mut out = std::io::Cursor::new(Vec::new());
    if format == image::ImageFormat::Jpeg {
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        img.write_with_encoder(enc).expect("encodes");
    } else {
        img.write_to(&mut out, format).expect("encodes");
    }
    out.into_inner()
}

/// Median milliseconds of `f` over about `seconds` (at least 3 runs, after one warm-up).
fn median_ms(seconds: f64, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed().as_secs_f64() < seconds && times.len() < 1000) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The preprocessing comparison on this thread (one core), see [`BenchArgs::preprocess_only`].
pub fn preprocess_bench(
    seed: &[u8],
    spec: &shared::ModelSpec,
    seconds: f64,
) -> anyhow::Result<Vec<PreprocessRow>> {
    use image::ImageFormat::{Jpeg, Png};
    let limits = DecodeLimits::default();
    let seed = preprocess::decode(seed, limits)?;
    let cases = [
        ("640x480 JPEG", 640, 480, Jpeg),
        ("4000x3000 JPEG (12 MP)", 4000, 3000, Jpeg),
        ("4240x2832 JPEG (12 MP, 3:2)", 4240, 2832, Jpeg),
        ("2400x1800 PNG", 2400, 1800, Png),
    ];
    let side = spec.input_size as usize;
    let mut tensor = vec![0f32; 3 * side * side];
    let mut resizer = Resizer::new();
    let mut rows = Vec::new();
    for (name, w, h, format) in cases {
        let bytes = synthetic(&seed, w, h, format);
        let plain_ms = median_ms(seconds, || {
            std::hint::black_box(plain_tensor(&bytes, spec)?);
            Ok(())
        })?;
        let full_decode_ms = median_ms(seconds, || {
            let img = preprocess::decode(&bytes, limits)?;
            std::hint::black_box(preprocess::to_tensor(&img, spec, &mut resizer));
            Ok(())
        })?;
        let fast_ms = median_ms(seconds, || {
            let img = preprocess::decode_for(&bytes, limits, spec.resize)?;
            preprocess::to_tensor_into(&img, spec, &mut resizer, &mut tensor);
            std::hint::black_box(&tensor);
            Ok(())
        })?;
        let jpeg_scale = if format == Jpeg {
            preprocess::jpeg_scale(w, h, spec.resize).unwrap_or(1)
        } else {
            1
        };
        let img = preprocess::decode_for(&bytes, limits, spec.resize)?;
        let plain_thumb_ms = median_ms(seconds, || {
            std::hint::black_box(plain_thumbnail(&img)?);
            Ok(())
        })?;
        let thumb_ms = median_ms(seconds, || {
            let jpg = preprocess::thumbnail(&img, worker::model::THUMB_SIDE, &mut resizer);
            anyhow::ensure!(!jpg.is_empty(), "thumbnail failed");
            std::hint::black_box(jpg);
            Ok(())
        })?;
        rows.push(PreprocessRow {
            image: name.to_owned(),
            bytes: bytes.len(),
            plain_ms,
            full_decode_ms,
            fast_ms,
            jpeg_scale,
            plain_thumb_ms,
            thumb_ms,
        });
    }
    Ok(rows)
}

/// The history thumbnail the plain way: the `image` crate's resize (Triangle) and its JPEG
/// encoder, at the worker's size and quality.
fn plain_thumbnail(img: &image::RgbImage) -> anyhow::Result<Vec<u8>> {
    let (w, h) = preprocess::thumbnail_size(img.width(), img.height(), worker::model::THUMB_SIDE);
    let small = image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    let quality = preprocess::THUMB_QUALITY as u8;
    small.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
        &mut out, quality,
    ))?;
    Ok(out)
}

/// The plain path a service without the worker's preprocessing would take, bytes to the same
/// tensor: the `image` crate's full decode, its own resize of the whole picture
/// (`imageops::resize`, `Triangle`: the antialiased bilinear of Pillow's reference), the centre
/// crop, then the normalised NCHW planes.
pub fn plain_tensor(bytes: &[u8], spec: &shared::ModelSpec) -> anyhow::Result<Vec<f32>> {
    let img = image::load_from_memory(bytes)?.into_rgb8();
    let (w, h) = (u64::from(img.width()), u64::from(img.height()));
    let (r, s) = (spec.resize, spec.input_size);
    let (nw, nh) = if w <= h {
        (r, (u64::from(r) * h / w) as u32)
    } else {
        ((u64::from(r) * w / h) as u32, r)
    };
    let (nw, nh) = (nw.max(s), nh.max(s));
    let resized = image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
    let crop = image::imageops::crop_imm(&resized, (nw - s) / 2, (nh - s) / 2, s, s).to_image();
    let plane = (s * s) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in crop.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(px[c]) / 255.0 - spec.mean[c]) / spec.std[c];
        }
    }
    Ok(out)
}

/// The comparison as a Markdown table.
pub fn preprocess_markdown(rows: &[PreprocessRow]) -> String {
    let mut out = String::from(
        "| image | file | plain: `image` decode + resize | full decode + SIMD crop resize | worker path | speed-up vs plain | vs full decode | JPEG decoded at | thumbnail: plain | thumbnail: worker |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.1} MB | {:.1} ms | {:.1} ms | {:.1} ms | {:.1}x | {:.1}x | 1/{} | {:.1} ms | {:.1} ms |\n",
            r.image,
            r.bytes as f64 / 1e6,
            r.plain_ms,
            r.full_decode_ms,
            r.fast_ms,
            r.plain_ms / r.fast_ms,
            r.full_decode_ms / r.fast_ms,
            r.jpeg_scale,
            r.plain_thumb_ms,
            r.thumb_ms
        ));
    }
    out
}

/// Registers a throwaway user (the API requires one), then pushes `jobs` distinct uploads of the
/// image (a unique JPEG comment defeats the result cache) through the synchronous
/// `POST /predict`.
async fn end_to_end(api: &str, args: &BenchArgs, bytes: &[u8]) -> anyhow::Result<EndToEnd> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let token = bench_token(&http, api).await?;
    let run_id: u64 = rand::random();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let path = args.path;
    let warm = send(
        path,
        &http,
        api,
        &token,
        &args.model,
        unique(bytes, run_id, usize::MAX),
    )
    .await;
    warm.context("warm-up job failed")?;
    let started = Instant::now();
    let deadline = args
        .duration_secs
        .map(|s| started + Duration::from_secs_f64(s.max(0.1)));
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
                if i >= jobs || deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                let worker_ms =
                    send(path, &http, &api, &token, &model, unique(&bytes, run_id, i)).await?;
                lat.push((t.elapsed().as_secs_f64() * 1e3, worker_ms));
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let ips = lat.len() as f64 / started.elapsed().as_secs_f64();
    let (mut total, mut worker): (Vec<f64>, Vec<f64>) = lat.into_iter().unzip();
    total.sort_by(f64::total_cmp);
    worker.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| {
        v.get(((v.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok(EndToEnd {
        img_per_s: ips,
        p50: pct(&total, 0.5),
        p95: pct(&total, 0.95),
        p99: pct(&total, 0.99),
        worker_p50: pct(&worker, 0.5),
        jobs: total.len(),
    })
}

/// One end-to-end point: throughput, latency percentiles (ms) as the client saw them, and the
/// median of the worker's own time per job (decode to thumbnail, the rest being HTTP, the API,
/// Redis and the wait in the queue).
struct EndToEnd {
    img_per_s: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    worker_p50: f64,
    jobs: usize,
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

/// One upload by `path`; answers the worker's own time for the job where the answer says it
/// (`/predict`), else 0.
async fn send(
    path: BenchPath,
    http: &reqwest::Client,
    api: &str,
    token: &str,
    model: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<f64> {
    match path {
        BenchPath::Predict => predict(http, api, token, model, bytes).await,
        BenchPath::V2 => v2_infer(http, api, token, model, bytes).await.map(|()| 0.0),
    }
}

/// One V2 inference request as tritonclient sends it: a JSON header naming one binary BYTES
/// row (a little-endian u32 length, then the image), no outputs named, so the probabilities
/// come back in binary.
async fn v2_infer(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    model: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<()> {
    let header = json!({
        "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                    "parameters": {"binary_data_size": bytes.len() + 4}}],
        "parameters": {"binary_data_output": true},
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    body.extend_from_slice(&bytes);
    let r = http
        .post(format!("{api}/v2/models/{model}/infer"))
        .bearer_auth(token)
        .header("inference-header-content-length", header.len())
        .body(body)
        .send()
        .await?;
    let status = r.status();
    let answer = r.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "V2 infer: {status} {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}

/// One synchronous `POST /predict` (the seeds' endpoint, one round trip); answers the worker's
/// own time for the job (`elapsed_ms`: decode to thumbnail).
async fn predict(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    model: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<f64> {
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("bench.jpg"),
        )
        .text("model", model.to_owned());
    let req = http.post(format!("{api}/predict")).multipart(form);
    let answer: PredictResponse = answer(req.bearer_auth(token)).await?;
    anyhow::ensure!(!answer.cached, "a cached answer: the upload was not unique");
    Ok(answer.result.elapsed_ms)
}
