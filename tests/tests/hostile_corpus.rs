//! The hostile corpus (`test_support::hostile`, `tests/fixtures/hostile/`) end to end: real api,
//! real worker, the real EfficientNet-Lite0 model, a private Redis. Every file is refused at
//! upload with its expected status and code, or accepted and finished (done, or failed with a
//! reason) in bounded time; api and worker stay up and keep classifying; the worker's peak RSS
//! over the corpus is measured (README, "Hostile input").

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use api_types::{Job, JobStatus};
use test_support::hostile::{corpus, Expect, COMMITTED_MAX};
use test_support::*;

/// Longest a file may take from upload to a finished job.
const PER_FILE: Duration = Duration::from_secs(30);

fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn committed_files_match_the_generator() {
    let dir = repo().join("tests/fixtures/hostile");
    let mut committed = 0;
    for case in corpus() {
        if case.bytes.len() > COMMITTED_MAX {
            continue;
        }
        let on_disk = std::fs::read(dir.join(case.name))
            .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask hostile-corpus`)", case.name));
        assert!(
            on_disk == case.bytes,
            "{} differs from the generator",
            case.name
        );
        committed += 1;
    }
    assert!(committed >= 30, "only {committed} committed files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_hostile_file_is_refused_or_fails_cleanly_and_nothing_goes_down() {
    let (mut stack, c) = Stack::builder().workers(1).start_with_client().await;
    let worker_pid = stack
        .processes()
        .into_iter()
        .find(|(name, _)| name.starts_with("worker"))
        .map(|(_, pid)| pid)
        .unwrap();
    let rss_before = vm_hwm_kb(worker_pid);
    let mut report = Vec::new();
    for case in corpus() {
        eprintln!("hostile corpus: {}", case.name);
        let started = Instant::now();
        let (status, body, _) = c.upload("/predictions", case.bytes.clone(), None).await;
        let outcome = match case.expect {
            Expect::Refused(want, code) => {
                assert_eq!(
                    (status, body["error"]["code"].as_str().unwrap_or_default()),
                    (want, code),
                    "{}: {body}",
                    case.name
                );
                format!("{status} {code}")
            }
            Expect::Processed => {
                assert!(
                    status == 202 || status == 200,
                    "{}: {status} {body}",
                    case.name
                );
                let id = body["job_id"].as_str().unwrap().to_owned();
                let job: Job = c.wait_done(&id, PER_FILE).await;
                match job.status {
                    JobStatus::Done => "done".to_owned(),
                    JobStatus::Failed => {
                        let why = job.error.clone().unwrap_or_default();
                        assert!(!why.is_empty(), "{}: failed without a reason", case.name);
                        format!("failed: {why}")
                    }
                    other => panic!("{}: not finished within {PER_FILE:?}: {other:?}", case.name),
                }
            }
        };
        assert!(
            started.elapsed() < PER_FILE,
            "{} took {:?}",
            case.name,
            started.elapsed()
        );
        let v2 = v2_row(&c, &case).await;
        report.push(format!(
            "{:<36} {:>9} B  {outcome}; as a V2 row: {v2}",
            case.name,
            case.bytes.len()
        ));
        assert!(
            stack.exited().is_none(),
            "a process died on {}: {:?}",
            case.name,
            stack.exited()
        );
    }
    let peak_kb = vm_hwm_kb(worker_pid);
    println!("{}", report.join("\n"));
    println!(
        "worker peak RSS (VmHWM): {:.0} MB before the corpus, {:.0} MB after",
        rss_before as f64 / 1024.0,
        peak_kb as f64 / 1024.0
    );
    // The biggest accepted decode is 105 MB (7000x5000 RGB) plus its RGB copy and the model.
    assert!(peak_kb < 1024 * 1024, "worker peak RSS {peak_kb} kB");
    bombs_past_the_api_fail_at_once_and_leave_the_worker_idle(&stack, worker_pid).await;

    // Both still serve: a normal photo is classified.
    let (status, body, _) = c
        .upload("/predictions", unique_photo("after-corpus"), None)
        .await;
    assert_eq!(status, 202, "{body}");
    let job = c
        .wait_done(body["job_id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(top1(&job), "academic gown", "{job:?}");
    assert!(stack.exited().is_none());
}

/// `case` sent as the one BYTES row of a V2 inference request (binary extension): refused with
/// the upload's status, or classified (200) or failed (400), always in the protocol's error
/// shape and in bounded time.
async fn v2_row(c: &Client, case: &test_support::hostile::Case) -> String {
    let header = serde_json::json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
        "parameters": {"binary_data_size": case.bytes.len() + 4}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&(case.bytes.len() as u32).to_le_bytes());
    body.extend_from_slice(&case.bytes);
    let started = Instant::now();
    let r = c
        .http
        .post(format!("{}/v2/models/efficientnet-lite0/infer", c.base))
        .bearer_auth(&c.token)
        .header("inference-header-content-length", header.len())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    assert!(
        started.elapsed() < PER_FILE,
        "{}: V2 took {:?}",
        case.name,
        started.elapsed()
    );
    match case.expect {
        Expect::Refused(want, _) => assert_eq!(status, want, "{} as a V2 row: {body}", case.name),
        Expect::Processed => assert!(
            status == 200 || status == 400,
            "{} as a V2 row: {status} {body}",
            case.name
        ),
    }
    if status != 200 {
        assert!(body["error"].is_string(), "{}: {body}", case.name);
    }
    status.to_string()
}

/// CPU seconds (user + system) the process has used, from `/proc/PID/stat` (USER_HZ = 100 on
/// Linux).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) end with ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The progressive-scan bombs of issue 24 (finding 1) sent straight into the worker's queue,
/// past the API's check (a writer that skipped it): the worker's own check before decoding
/// fails each at once, its peak RSS stays put, and it is idle right after (a decode left
/// running would keep a core busy for minutes).
async fn bombs_past_the_api_fail_at_once_and_leave_the_worker_idle(stack: &Stack, pid: u32) {
    use test_support::hostile::scan_bomb;
    let client = redis::Client::open(stack.redis_url()).unwrap();
    let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let ids = ["bomb-colour", "bomb-grey"];
    for (id, components) in ids.iter().zip([3, 1]) {
        let bomb = scan_bomb(6000, 6600, components, None);
        test_support::queue::enqueue(&mut conn, id, "efficientnet-lite0", &bomb).await;
    }
    let started = Instant::now();
    eventually(Duration::from_secs(30), Duration::from_millis(50), || {
        let mut conn = conn.clone();
        async move {
            for id in ids {
                let record = shared::queue::producer::read_record(&mut conn, id)
                    .await
                    .map_err(|e| e.to_string())?;
                if record.status != Some(JobStatus::Failed) {
                    return Err(format!("{id} is {:?}, not failed yet", record.status));
                }
                // Failed for its scans, not for anything else about the job.
                let why = record.error.unwrap_or_default();
                assert!(
                    why.contains("scans"),
                    "{id} failed for another reason: {why}"
                );
            }
            Ok(())
        }
    })
    .await;
    let took = started.elapsed();
    let cpu_before = cpu_secs(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy = cpu_secs(pid) - cpu_before;
    let peak_kb = vm_hwm_kb(pid);
    println!(
        "scan bombs past the API: both failed in {took:?}; the worker used {busy:.2} CPU-s over \
         the next 2 s; peak RSS {:.0} MB",
        peak_kb as f64 / 1024.0
    );
    assert!(
        took < Duration::from_secs(10),
        "the bombs took {took:?} to fail"
    );
    assert!(
        busy < 0.5,
        "the worker kept working after the bombs: {busy:.2} CPU-s in 2 s"
    );
    assert!(
        peak_kb < 1024 * 1024,
        "worker peak RSS {peak_kb} kB after the bombs"
    );
}
