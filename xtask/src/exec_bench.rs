//! `cargo xtask bench-executor` (was `worker bench-executor`): the engine layouts and the executor on one model, in one run on
//! this machine, so the executor's policy is chosen (and checked) by measurement:
//! - the all-cores session alone at batch 1 (throughput and latency) and at batch 8,
//! - the pool of one-thread sessions, all at once (throughput),
//! - the executor's automatic choice with one job in hand (latency: must stay the all-cores
//!   one) and with the worker's capacity in hand (throughput: must reach the pool's).
//!
//! Prints a table and appends a JSON line to the report file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use fast_image_resize::Resizer;
use serde_json::json;

use shared::upload::DecodeLimits;
use worker::config::WorkerConfig;
use worker::executor::Choice;
use worker::model::{Classifier as _, Model};

/// Options of `cargo xtask bench-executor`.
#[derive(Debug, Clone, Args)]
pub struct ExecBenchArgs {
    /// The worker settings the model is loaded with (the serving worker's flags: `--cpus`,
    /// `--sessions`, `--models-dir`, ...).
    #[command(flatten)]
    pub worker: WorkerConfig,
    /// Model to measure.
    #[arg(long, default_value = "resnet50-synthetic")]
    pub model: String,
    /// Image to classify.
    #[arg(long, default_value = "../shared/testdata/grace_hopper.jpg")]
    pub image: PathBuf,
    /// Seconds per measured point (after warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Rounds the points are interleaved in (each round runs every point for seconds/rounds),
    /// so a load change on a shared machine hits every point alike.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Where the JSON line of results is appended.
    #[arg(long, default_value = "stress/reports/bench-executor.jsonl")]
    pub report: PathBuf,
    /// Run id recorded with the line (`make bench` puts the engine layouts of its run beside
    /// the end-to-end points, `kind: "engine"`, and reports their ratios).
    #[arg(long, env = "BENCH_RUN")]
    pub run_id: Option<String>,
}

/// The batch of the batched engine point (dynamic batching's usual upper size).
const BATCH: usize = 8;

/// Throughput and median latency of one point (latency: of one call, a whole batch).
#[derive(Debug, Clone, Copy)]
struct Point {
    ips: f64,
    p50_ms: f64,
}

/// Latencies of one point over its rounds (one per call), the time they took, the images
/// per call.
#[derive(Default)]
struct Samples {
    lat: Vec<f64>,
    secs: f64,
    batch: usize,
}

impl Samples {
    fn point(&self) -> Point {
        let mut sorted = self.lat.clone();
        sorted.sort_by(f64::total_cmp);
        Point {
            ips: (self.lat.len() * self.batch.max(1)) as f64 / self.secs.max(1e-9),
            p50_ms: sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
        }
    }
}

/// `callers` threads each run `choice` in a loop for `secs` (holding a job in hand each).
fn measure(
    model: &Arc<Model>,
    tensor: &[f32],
    choice: Choice,
    callers: usize,
    secs: f64,
    into: &mut Samples,
) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let lat: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..callers)
            .map(|_| {
                s.spawn(move || {
                    let mut lat = Vec::new();
                    while Instant::now() < until {
                        let _held = model.hold();
                        let t = Instant::now();
                        if let Err(e) = model.infer_on(choice, tensor) {
                            eprintln!("bench-executor: {e}");
                            break;
                        }
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    into.secs += started.elapsed().as_secs_f64();
    into.lat.extend(lat);
}

/// Runs the benchmark.
pub async fn run(args: ExecBenchArgs) -> anyhow::Result<()> {
    let mut cfg = args.worker.clone();
    cfg.models = vec![args.model.clone()];
    let bytes = std::fs::read(&args.image)
        .with_context(|| format!("cannot read {}", args.image.display()))?;
    let layout = cfg.layout();
    let capacity = cfg.capacity(layout.permits);
    let secs = args.seconds.max(1.0);
    let rounds = args.rounds.max(1);
    let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(String, Point)>> {
        let (_, models) = worker::load_models(&cfg)?;
        let model = models.into_values().next().context("model not loaded")?;
        let img = preprocess::decode(&bytes, DecodeLimits::default())?;
        let tensor = preprocess::to_tensor(&img, &model.spec, &mut Resizer::new());
        for _ in 0..3 {
            model.infer_on(Choice::Auto, &tensor)?;
        }
        // (name, session kind, callers, images per call)
        let mut points: Vec<(String, Choice, usize, usize)> = Vec::new();
        if layout.wide_threads > 1 || layout.narrow == 0 {
            for batch in [1, BATCH] {
                let name = format!("1 session x {} threads, batch {batch}", layout.wide_threads);
                points.push((name, Choice::Wide, 1, batch));
            }
        }
        if layout.narrow > 0 {
            let name = format!("{} sessions x 1 thread, batch 1", layout.narrow);
            points.push((name, Choice::Narrow, layout.narrow, 1));
        }
        points.push(("executor, 1 job in hand".to_owned(), Choice::Auto, 1, 1));
        let name = format!("executor, {capacity} jobs in hand");
        points.push((name, Choice::Auto, capacity, 1));
        let batched = tensor.repeat(BATCH);
        let mut samples: Vec<Samples> = points
            .iter()
            .map(|p| Samples {
                batch: p.3,
                ..Samples::default()
            })
            .collect();
        let slice = secs / rounds as f64;
        for round in 0..rounds {
            // Rotate the order so no point always runs first or last in a round.
            for k in 0..points.len() {
                let i = (k + round) % points.len();
                let (_, choice, callers, batch) = &points[i];
                let input = if *batch == 1 { &tensor } else { &batched };
                measure(&model, input, *choice, *callers, slice, &mut samples[i]);
            }
        }
        Ok(points
            .into_iter()
            .zip(&samples)
            .map(|((name, ..), s)| (name, s.point()))
            .collect::<Vec<_>>())
    })
    .await??;
    println!(
        "model {}, {} CPU permit(s), {} one-thread session(s), all-cores session {} thread(s), spin {}",
        args.model, layout.permits, layout.narrow, layout.wide_threads, layout.spin
    );
    let mut record = json!({
        "at": shared::time_util::rfc3339(shared::time_util::now_ms()),
        "model": args.model, "permits": layout.permits, "sessions": layout.narrow,
        "wide_threads": layout.wide_threads, "spin": layout.spin, "seconds": secs, "rounds": rounds,
        "kind": "engine", "run": args.run_id,
    });
    let mut points = Vec::new();
    for (name, p) in &rows {
        println!("{name:40} {:7.1} img/s  p50 {:6.1} ms", p.ips, p.p50_ms);
        points.push(json!({"layout": name, "img_per_s": p.ips, "p50_ms": p.p50_ms}));
    }
    record["points"] = json!(points);
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
