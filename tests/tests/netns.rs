//! Workers share nothing but Redis, across hosts. Redis, the api, two workers and the client
//! each run in a network namespace of their own (`test_support::netns::Lab`: veth links to a
//! bridge, addresses only inside namespaces this test creates), so the only path between a
//! worker and the rest is the lab network to Redis. 50 images with unique bytes (no cache
//! hits) are classified through the api with the real EfficientNet-Lite0 model; mid-run,
//! worker-1's link is cut while it holds jobs. worker-2 reclaims them once they have been idle
//! for `VISIBILITY_TIMEOUT`, and every job finishes exactly once: one `done` record, one
//! completion event, one history row, nothing left queued or pending. Then the link comes
//! back: worker-1 rejoins without a restart, and whatever it sent while cut (it arrives late)
//! changes nothing.
//!
//! The tests are `#[ignore]`d, so a plain `cargo nextest run` lists them as skipped; `cargo xtask ci`
//! runs them as a step of its own (`--run-ignored only`, alone, so their timing is their own)
//! where it runs as root, and its summary says `netns test SKIPPED: <why>` elsewhere. Run, they
//! fail where the kernel forbids network namespaces: they never pass without running.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_types::{Job, JobStatus};
use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use test_support::netns::Lab;
use test_support::*;

const JOBS: usize = 50;
const MODEL: &str = "efficientnet-lite0";
const W1: &str = "netns-worker-1";
const W2: &str = "netns-worker-2";
/// How long a held job must sit idle before another worker may take it over.
const VISIBILITY: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs root and network namespaces: `cargo xtask ci` runs it as a step of its own"]
async fn workers_share_only_redis_and_a_cut_worker_loses_no_job() {
    let t0 = Instant::now();
    let lab = lab(&["redis", "api", "worker-1", "worker-2", "client"]);
    // Declared after the lab, so dropped before it: the logs are still there to print.
    let _logs = LogsOnFailure(lab.dir());

    // --- the hosts ------------------------------------------------------------------------------
    let (redis, env, db_url) = redis_and_database(&lab);
    // A worker counts as gone after 3 s without a heartbeat (1 s apart: fresh_for(1 s)).
    let api_env = with(&env, &[("DATABASE_URL", &db_url)]);
    let api = lab.api("api", &api_env).await.unwrap();
    let relay = lab
        .relay("client", "api-relay", api.url.trim_start_matches("http://"))
        .unwrap();
    let base = "http://api.lab";
    let http = relay.http_client().unwrap();
    wait_health(&http, base, &api.proc).await;

    let visibility = format!("{}s", VISIBILITY.as_secs());
    let worker_env = with(
        &env,
        &[("MODELS", MODEL), ("VISIBILITY_TIMEOUT", &visibility)],
    );
    let worker = |host: &str, id: &str| {
        lab.worker(host, host, &with(&worker_env, &[("WORKER_ID", id)]))
            .unwrap()
    };
    let mut w1 = worker("worker-1", W1);
    let mut w2 = worker("worker-2", W2);

    let c = Client::register_with(http, base).await;
    c.wait_workers(2, Duration::from_secs(60)).await;
    let (status, body) = c.get("/ready").await;
    assert_eq!(status, 200, "/ready: {body}");
    let started = t0.elapsed();

    // --- watch Redis: every completion event, from the start ------------------------------------
    let rc = redis::Client::open(redis.local_url.as_str()).unwrap();
    let mut conn = rc.get_multiplexed_async_connection().await.unwrap();
    let mut events = rc.get_async_pubsub().await.unwrap();
    events.subscribe(shared::keys::EVENTS).await.unwrap();
    let finished: Arc<Mutex<Vec<String>>> = Arc::default();
    let events_task = {
        let finished = finished.clone();
        tokio::spawn(async move {
            let mut stream = events.into_on_message();
            while let Some(msg) = stream.next().await {
                if let Ok(id) = msg.get_payload::<String>() {
                    finished.lock().unwrap().push(id);
                }
            }
        })
    };

    // --- 50 uploads, each with bytes never seen before ------------------------------------------
    let uploader = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(JOBS);
            for i in 0..JOBS {
                let (status, body, _) = c
                    .upload("/predictions", unique_photo(&format!("netns-{i}")), None)
                    .await;
                assert_eq!(status, 202, "upload {i} (a cache hit would be 200): {body}");
                ids.push(body["job_id"].as_str().unwrap().to_owned());
            }
            ids
        })
    };

    // --- cut worker-1's link while it holds jobs ------------------------------------------------
    let (held, cut_at, tries) = cut_while_holding(&lab, &mut conn, &finished).await;
    let cut_ms = shared::time_util::now_ms() - cut_at.elapsed().as_millis() as i64;
    let held_jobs = job_ids_of(&mut conn, &held).await;
    assert_eq!(held_jobs.len(), held.len(), "held entries name their jobs");
    let done_at_cut = finished.lock().unwrap().len();
    eprintln!(
        "netns: worker-1 cut after {done_at_cut} of {JOBS} jobs finished, holding {} ({tries} tries)",
        held.len()
    );
    // The cut is real: worker-1's heartbeats stop reaching Redis, so the api counts one worker.
    c.wait_workers(1, Duration::from_secs(15)).await;

    // --- every job finishes, the held ones on worker-2 ------------------------------------------
    let ids = uploader.await.unwrap();
    let jobs = wait_all_done(&c, &ids).await;
    let all_done_after_cut = cut_at.elapsed();
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(top1(job), "academic gown", "{job:?}");
        assert!(!job.cached, "unique bytes, no cache hit: {job:?}");
    }
    let workers = job_field(&mut conn, &ids, shared::keys::field::WORKER).await;
    for id in &held_jobs {
        assert_eq!(
            workers[id].as_deref(),
            Some(W2),
            "job {id}, held by the cut worker-1, was finished by worker-2"
        );
    }
    // ... once they had sat unacknowledged for VISIBILITY_TIMEOUT (the last delivery to
    // worker-1 came a little before the cut, hence the slack).
    let mut reclaimed_after_ms = 0;
    for (id, ms) in job_field(&mut conn, &held_jobs, shared::keys::field::FINISHED).await {
        let after = ms.unwrap().parse::<i64>().unwrap() - cut_ms;
        assert!(
            after >= VISIBILITY.as_millis() as i64 - 1000,
            "job {id} was finished by worker-2 {after} ms after the cut, before it could be \
             reclaimed"
        );
        reclaimed_after_ms = reclaimed_after_ms.max(after);
    }
    let by_w1 = workers
        .values()
        .filter(|w| w.as_deref() == Some(W1))
        .count();
    let by_w2 = workers
        .values()
        .filter(|w| w.as_deref() == Some(W2))
        .count();
    assert_eq!(
        by_w1 + by_w2,
        JOBS,
        "every job names the worker that did it"
    );
    assert_exactly_once(&c, &mut conn, &ids, &finished, "while worker-1 is cut").await;
    assert!(
        w1.exited().is_none(),
        "worker-1 keeps running while cut off"
    );

    // --- the link comes back: worker-1 rejoins, its late writes change nothing ------------------
    let healed_at = Instant::now();
    lab.heal("worker-1").unwrap();
    let rejoin = wait_rejoined(&lab, &mut conn, healed_at).await;
    // (the api counts worker-1 again)
    c.wait_workers(2, Duration::from_secs(10)).await;
    assert_exactly_once(&c, &mut conn, &ids, &finished, "after worker-1 rejoined").await;
    let after = job_field(&mut conn, &ids, shared::keys::field::WORKER).await;
    assert_eq!(after, workers, "no job changed hands after the heal");
    // Each worker counts the completions it recorded first; a heartbeat written after
    // everything was done carries the final count.
    let mut done_counts = HashMap::new();
    for w in [W1, W2] {
        let since = shared::time_util::now_ms();
        let deadline = Instant::now() + Duration::from_secs(10);
        let beat = loop {
            if let Some(beat) = heartbeat(&mut conn, w).await {
                if beat.last_seen_ms > since {
                    break beat;
                }
            }
            assert!(Instant::now() < deadline, "no fresh heartbeat from {w}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        done_counts.insert(w, beat.jobs_done);
    }
    assert_eq!(
        done_counts.values().sum::<u64>(),
        JOBS as u64,
        "the workers recorded {JOBS} completions between them: {done_counts:?}"
    );
    assert_eq!(done_counts[W1], by_w1 as u64, "{done_counts:?}");
    for (name, w) in [("worker-1", &mut w1), ("worker-2", &mut w2)] {
        assert!(w.exited().is_none(), "{name} exited:\n{}", w.log_tail(30));
    }
    events_task.abort();

    println!(
        "netns: ok: {JOBS} jobs through 5 hosts (redis, api, 2 workers, client), each finished \
         once; worker-1 cut holding {} job(s) after {done_at_cut} finished, worker-2 finished \
         them {:.1} s after the cut (VISIBILITY_TIMEOUT {} s), all done {:.1} s after it; \
         worker-1 rejoined {rejoin}; start-up {:.1} s, total {:.1} s",
        held.len(),
        reclaimed_after_ms as f64 / 1000.0,
        VISIBILITY.as_secs(),
        all_done_after_cut.as_secs_f64(),
        started.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

/// Waits until worker-1 holds a delivery (and a few jobs are done: mid-run), cuts its link,
/// and reads what Redis says it holds once packets already on the wire have landed. When it
/// holds nothing by then (it acknowledged its last job just before the cut), the link is put
/// back and the cut tried again. Returns the held entry ids, when the cut was, and the tries.
async fn cut_while_holding(
    lab: &Lab,
    conn: &mut MultiplexedConnection,
    finished: &Mutex<Vec<String>>,
) -> (Vec<String>, Instant, u32) {
    for tries in 1..=5 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let done = finished.lock().unwrap().len();
            assert!(
                done < JOBS,
                "the batch finished before worker-1 could be cut holding a job"
            );
            if done >= 5 && !pending_of(conn, W1).await.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "worker-1 never held a job");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lab.cut("worker-1").unwrap();
        let cut_at = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = pending_of(conn, W1).await;
        if !held.is_empty() {
            return (held, cut_at, tries);
        }
        lab.heal("worker-1").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("worker-1 held no job at any of 5 cuts");
}

/// The stream entries delivered to `consumer` and not yet acknowledged.
async fn pending_of(conn: &mut MultiplexedConnection, consumer: &str) -> Vec<String> {
    let reply: redis::streams::StreamPendingCountReply = conn
        .xpending_consumer_count(
            shared::keys::queue(MODEL),
            shared::keys::GROUP,
            "-",
            "+",
            100,
            consumer,
        )
        .await
        .unwrap();
    reply.ids.into_iter().map(|p| p.id).collect()
}

/// The job ids of queue entries (read from the entries' job records).
async fn job_ids_of(conn: &mut MultiplexedConnection, entries: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for id in entries {
        let reply: redis::streams::StreamRangeReply = conn
            .xrange(shared::keys::queue(MODEL), id, id)
            .await
            .unwrap();
        for e in reply.ids {
            let raw: Vec<u8> = e.get(shared::keys::stream::JOB).unwrap();
            let job: shared::queue::QueuedJob = serde_json::from_slice(&raw).unwrap();
            out.push(job.job_id);
        }
    }
    out
}

/// One field of each job's Redis record.
async fn job_field(
    conn: &mut MultiplexedConnection,
    ids: &[String],
    field: &str,
) -> HashMap<String, Option<String>> {
    let mut out = HashMap::new();
    for id in ids {
        let v: Option<String> = conn.hget(shared::keys::job(id), field).await.unwrap();
        out.insert(id.clone(), v);
    }
    out
}

/// Each job finished once: one completion event each and none for anything else, the queue
/// drained (nothing waiting, nothing held), and the history holds each job once, done.
async fn assert_exactly_once(
    c: &Client,
    conn: &mut MultiplexedConnection,
    ids: &[String],
    finished: &Mutex<Vec<String>>,
    when: &str,
) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for id in finished.lock().unwrap().iter() {
        *counts.entry(id.clone()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{when}: jobs finished more than once: {twice:?}"
    );
    let want: HashSet<&String> = ids.iter().collect();
    let got: HashSet<&String> = counts.keys().collect();
    assert_eq!(got, want, "{when}: one completion event per uploaded job");

    let depth: u64 = conn.xlen(shared::keys::queue(MODEL)).await.unwrap();
    assert_eq!(depth, 0, "{when}: entries left in the queue");
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(shared::keys::queue(MODEL), shared::keys::GROUP)
        .await
        .unwrap();
    assert_eq!(pending.count(), 0, "{when}: entries still pending");

    c.assert_history_exactly(ids, Duration::from_secs(30), when)
        .await;
}

/// Every job through the api's `?wait`, in parallel.
async fn wait_all_done(c: &Client, ids: &[String]) -> Vec<Job> {
    let waits = ids.iter().map(|id| {
        let (c, id) = (c.clone(), id.clone());
        async move { c.wait_done(&id, Duration::from_secs(60)).await }
    });
    futures::future::join_all(waits).await
}

/// Waits (up to 30 s) until worker-1 is back after the heal: a heartbeat written after it, a
/// connection from worker-1 reading the queue within the last second, and nothing unsent on
/// any of worker-1's sockets to Redis (so whatever it sent while it was cut off has reached
/// Redis; a connection that records finished jobs may stay idle while there is nothing to
/// finish). Says how long it took.
async fn wait_rejoined(lab: &Lab, conn: &mut MultiplexedConnection, healed_at: Instant) -> String {
    let healed_ms = shared::time_util::now_ms();
    let prefix = format!("addr={}:", lab.host("worker-1").unwrap().addr);
    let deadline = healed_at + Duration::from_secs(30);
    loop {
        let seen = heartbeat(conn, W1).await.map_or(0, |b| b.last_seen_ms);
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(conn)
            .await
            .unwrap();
        let mine: Vec<&str> = list.lines().filter(|l| l.contains(&prefix)).collect();
        let field = |line: &str, key: &str| -> String {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .unwrap_or_default()
                .to_owned()
        };
        // Reading again: a blocking XREADGROUP used within the last second (Redis counts idle
        // time in whole seconds). The connection that records finished jobs may stay idle
        // while there is nothing to finish.
        let reading = mine.iter().any(|l| {
            field(l, "cmd=") == "xreadgroup"
                && field(l, "idle=").parse::<u64>().is_ok_and(|s| s <= 1)
        });
        // Nothing worker-1 wrote is still on its way: every socket to Redis has an empty send
        // queue (`ss`'s Send-Q column).
        let sockets = lab.output("worker-1", "ss", &["-tn"]).unwrap_or_default();
        let unsent: u64 = sockets
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .nth(4)
                    .is_some_and(|p| p.ends_with(":6379"))
            })
            .map(|l| {
                l.split_whitespace()
                    .nth(2)
                    .and_then(|q| q.parse::<u64>().ok())
                    .unwrap_or(u64::MAX)
            })
            .sum();
        if healed_at.elapsed() >= Duration::from_secs(2)
            && seen > healed_ms
            && reading
            && unsent == 0
        {
            return format!(
                "{:.1} s after the heal ({} connections)",
                healed_at.elapsed().as_secs_f64(),
                mine.len()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "worker-1 did not rejoin within 30 s of the heal (last heartbeat {} ms after \
                 it)\nRedis clients:\n{list}\nworker-1's sockets:\n{}",
                seen - healed_ms,
                lab.output("worker-1", "ss", &["-tnoi"]).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A worker's last heartbeat as Redis holds it (None once it has expired).
async fn heartbeat(
    conn: &mut MultiplexedConnection,
    worker: &str,
) -> Option<shared::job::WorkerInfo> {
    let raw: Option<String> = conn.get(shared::keys::worker(worker)).await.unwrap();
    raw.map(|r| serde_json::from_str(&r).unwrap())
}

/// Polls the api's `/health` through the relay.
async fn wait_health(http: &reqwest::Client, base: &str, api: &Proc) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/health")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the api's /health never answered through the relay:\n{}",
            api.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Per-address limits behind the UI count each browser, not the UI. Two browsers on two hosts
/// sign up through one UI, on an api that allows one sign-up per address per hour and trusts the
/// UI's host as a proxy (`TRUSTED_PROXIES`): each gets its first sign-up, the second from the
/// same host is refused with 429, and an `X-Forwarded-For` the browser writes itself buys it no
/// new address. (Before the UI forwarded the browser's address, bob's first sign-up was
/// refused: every UI user was the UI's one address.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and network namespaces: `cargo xtask ci` runs it as a step of its own"]
async fn per_address_limits_count_each_browser_behind_the_ui() {
    let lab = lab(&["redis", "api", "ui", "alice", "bob"]);
    let _logs = LogsOnFailure(lab.dir());
    let (_redis, env, db_url) = redis_and_database(&lab);
    let ui_host = lab.host("ui").unwrap().addr.to_string();
    let api_env = with(
        &env,
        &[
            ("DATABASE_URL", &db_url),
            ("SIGNUP_RATE_PER_ADDRESS", "1/1h"),
            ("TRUSTED_PROXIES", &ui_host),
        ],
    );
    let api = lab.api("api", &api_env).await.unwrap();
    let ui = lab
        .ui("ui", &with(&test_defaults(), &[("API_URL", &api.url)]))
        .await
        .unwrap();
    let target = ui.url.trim_start_matches("http://").to_owned();
    let browser = |role: &str| {
        let relay = lab.relay(role, &format!("{role}-relay"), &target).unwrap();
        let http = relay.http_client().unwrap();
        (relay, http)
    };
    let (_alice_relay, alice) = browser("alice");
    let (_bob_relay, bob) = browser("bob");

    let alice_first = ui_signup(&alice, "alice-1@example.com", None).await;
    let bob_first = ui_signup(&bob, "bob-1@example.com", None).await;
    let alice_again = ui_signup(&alice, "alice-2@example.com", None).await;
    let alice_forged = ui_signup(&alice, "alice-3@example.com", Some("198.51.100.77")).await;
    // A sign-up that worked is redirected on (followed: 200); a refused one re-renders the form
    // with the API's status.
    assert_eq!(alice_first.as_u16(), 200, "alice's first sign-up");
    assert_eq!(
        bob_first.as_u16(),
        200,
        "bob's first sign-up (another address)"
    );
    assert_eq!(alice_again.as_u16(), 429, "alice's second sign-up");
    assert_eq!(
        alice_forged.as_u16(),
        429,
        "a forwarded-for header the browser wrote"
    );
    println!("netns: ok: one UI, two browsers, each counted at its own address");
}

/// Signs up through the UI's form as a browser would (csrf cookie from the form page, then the
/// post); returns the answer's status.
async fn ui_signup(
    http: &reqwest::Client,
    email: &str,
    forged: Option<&str>,
) -> reqwest::StatusCode {
    let form = http.get("http://ui/signup").send().await.unwrap();
    let csrf = form
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("csrf="))
        .and_then(|c| c.split(';').next())
        .expect("a csrf cookie")
        .to_owned();
    let mut post = http
        .post("http://ui/signup")
        .header(reqwest::header::COOKIE, format!("csrf={csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "Browser"),
            ("email", email),
            ("password", "correct horse battery"),
        ]);
    if let Some(addr) = forged {
        post = post.header("x-forwarded-for", addr);
    }
    post.send().await.unwrap().status()
}

/// A lab of `roles`; fails the test where namespaces are forbidden (it is only run where they
/// are allowed, see the module's doc).
#[track_caller]
fn lab(roles: &[&str]) -> Lab {
    Lab::create(roles).unwrap_or_else(|e| panic!("{e}"))
}

/// Redis on the `redis` host, the test environment pointing at it, and a SQLite database URL
/// in the lab's folder.
fn redis_and_database(lab: &Lab) -> (test_support::netns::NsRedis, Vec<(String, String)>, String) {
    let redis = lab.redis("redis").unwrap();
    let env = with(&test_defaults(), &[("REDIS_URL", &redis.url)]);
    let db_url = format!("sqlite://{}", lab.dir().join("app.db").display());
    (redis, env, db_url)
}

/// Prints the tail of every process log of the lab when the test fails.
struct LogsOnFailure<'a>(&'a Path);

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(dir) = std::fs::read_dir(self.0) else {
            return;
        };
        let mut logs: Vec<_> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        for p in logs {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "--- {} ---\n{}",
                p.display(),
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}
