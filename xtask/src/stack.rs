//! `xtask stack`: a private stack in the foreground, for people (`make run`), shell scripts
//! (`-- COMMAND`, which gets the URLs in `STACK_*` variables) and Node (`--json FILE`, and
//! `--control`: commands on stdin, one JSON line per answer on stdout).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use test_support::{Backend, Stack, StackBuilder};
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{signal, SignalKind};

/// Options of `xtask stack`.
#[derive(Debug, Args)]
pub struct StackArgs {
    /// Number of worker processes.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Start the ui too.
    #[arg(long)]
    ui: bool,
    /// `private` (a redis-server of our own on a free port), `auto` (REDIS_URL when it
    /// answers PING, else private) or a redis:// URL to use.
    #[arg(long, default_value = "private")]
    redis: String,
    /// `sqlite` (a fresh file in --dir), `postgres` (a fresh database through
    /// TEST_DATABASE_URL, dropped at exit) or a database URL to use.
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// Models the workers serve (MODELS), comma-separated.
    #[arg(long)]
    models: Option<String>,
    /// The api's default model (DEFAULT_MODEL).
    #[arg(long)]
    default_model: Option<String>,
    /// Folder of the model files (MODELS_DIR).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Which build's binaries to run.
    #[arg(long, value_enum, default_value = "debug")]
    profile: Profile,
    /// Folder of the binaries (overrides --profile).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Folder for logs, port files and the private Redis (default: a temp folder removed at
    /// exit).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The api's address (default 127.0.0.1:0, a free port).
    #[arg(long)]
    api_bind: Option<String>,
    /// The ui's address (default 127.0.0.1:0, a free port).
    #[arg(long)]
    ui_bind: Option<String>,
    /// Extra variables for every process, NAME=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Write the URLs and process ids as JSON to this file once the stack is ready.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Read commands from stdin (`stop NAME`, `start-worker`, `quit`) and answer each with one
    /// JSON line on stdout; EOF stops the stack. The ready line is the first JSON line.
    #[arg(long)]
    control: bool,
    /// Seconds start-up may take.
    #[arg(long, default_value_t = 120)]
    ready_timeout: u64,
    /// Run this command once the stack is ready (with the stack's environment plus
    /// STACK_API_URL, STACK_UI_URL, STACK_REDIS_URL, STACK_DATABASE_URL, STACK_DIR and
    /// STACK_PIDS="name=pid ..."), then stop the stack and exit with its status.
    #[arg(last = true)]
    command: Vec<String>,
}

/// A cargo profile's output folder.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Profile {
    Debug,
    Release,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))
}

/// Whether a Redis answers PING at `url` (within a second).
fn redis_answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    client
        .get_connection_with_timeout(Duration::from_secs(1))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok_and(|p| p == "PONG")
}

fn builder(args: &StackArgs) -> anyhow::Result<StackBuilder> {
    let repo = test_support::repo();
    let bin_dir = args.bin_dir.clone().unwrap_or_else(|| {
        repo.join(match args.profile {
            Profile::Debug => "target/debug",
            Profile::Release => "target/release",
        })
    });
    let mut b = StackBuilder::new()
        .inherit_env(true)
        .workers(args.workers)
        .ui(args.ui)
        .bin_dir(bin_dir)
        .ready_within(Duration::from_secs(args.ready_timeout))
        .wait_ready(args.workers > 0)
        .default_env("APP_ENV", "dev")
        .default_env("RUST_LOG", "info")
        .default_env(
            "ORT_DYLIB_PATH",
            repo.join(".ort/libonnxruntime.so").display().to_string(),
        );
    b = match args.redis.as_str() {
        "private" => b,
        "auto" => {
            let url =
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            if redis_answers(&url) {
                eprintln!("==> redis: using the one answering at {url}");
                b.redis_url(url)
            } else {
                eprintln!("==> redis: none answers at {url}; starting a private one");
                b
            }
        }
        url => b.redis_url(url),
    };
    b = match args.database.as_str() {
        "sqlite" => b.backend(Backend::Sqlite),
        "postgres" => b.backend(Backend::Postgres),
        url => b.database_url(url),
    };
    if let Some(dir) = &args.dir {
        b = b.dir(dir.clone());
    }
    for (key, value) in [
        ("MODELS", args.models.clone()),
        ("DEFAULT_MODEL", args.default_model.clone()),
        (
            "MODELS_DIR",
            args.models_dir.as_ref().map(|d| d.display().to_string()),
        ),
        ("API_BIND", args.api_bind.clone()),
        ("UI_BIND", args.ui_bind.clone()),
    ] {
        if let Some(v) = value {
            b = b.env(key, v);
        }
    }
    for (k, v) in &args.env {
        b = b.env(k, v.clone());
    }
    Ok(b)
}

/// What callers learn about a ready stack.
fn describe(stack: &Stack) -> Value {
    let pids: serde_json::Map<String, Value> = stack
        .processes()
        .into_iter()
        .map(|(n, p)| (n, json!(p)))
        .collect();
    json!({
        "event": "ready",
        "api_url": stack.api_url(),
        "ui_url": stack.ui_url(),
        "redis_url": stack.redis_url(),
        "database_url": stack.database_url(),
        "dir": stack.dir(),
        "pids": pids,
    })
}

fn print_human(stack: &Stack, info: &Value) {
    let api = stack.api_url();
    eprintln!();
    eprintln!("The stack is up (logs in {}):", stack.dir().display());
    if let Some(ui) = stack.ui_url() {
        eprintln!("  UI        {ui}");
    }
    eprintln!("  API       {api}      (health: {api}/health, readiness: {api}/ready)");
    eprintln!("  API docs  {api}/docs (OpenAPI: {api}/openapi.json)");
    eprintln!("  Redis     {}", stack.redis_url());
    eprintln!("  Database  {}", stack.database_url());
    if let Some(models) = info["models"].as_array() {
        let served: Vec<String> = models
            .iter()
            .filter(|m| m["workers"].as_u64().unwrap_or(0) > 0)
            .map(|m| m["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        eprintln!(
            "  Models    {} (default: {})",
            if served.is_empty() {
                "none served yet".to_owned()
            } else {
                served.join(", ")
            },
            info["default_model"].as_str().unwrap_or_default()
        );
    }
    eprintln!();
}

/// Runs `xtask stack`.
pub async fn run(args: StackArgs) -> anyhow::Result<ExitCode> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let b = builder(&args)?;
    eprintln!("==> starting the stack");
    let start = b.try_start();
    let mut stack = tokio::select! {
        s = start => s?,
        _ = sigint.recv() => return Ok(ExitCode::from(130)),
        _ = sigterm.recv() => return Ok(ExitCode::from(143)),
    };
    let ready = describe(&stack);
    if let Some(path) = &args.json {
        // Through a rename: a reader polling for the file never sees half of it.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&ready)?)
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let info = test_support::probe(&format!("{}/info", stack.api_url()))
        .await
        .map(|(_, v)| v)
        .unwrap_or(Value::Null);
    print_human(&stack, &info);
    if args.control {
        println!("{ready}");
    }

    let mut code: u8 = 0;
    let mut stopped: HashSet<String> = HashSet::new();
    let mut command = match args.command.split_first() {
        Some((program, rest)) => {
            let pids: Vec<String> = stack
                .processes()
                .into_iter()
                .map(|(n, p)| format!("{n}={p}"))
                .collect();
            Some(
                tokio::process::Command::new(program)
                    .args(rest)
                    // The stack's own settings (REDIS_URL, MODELS_DIR, ORT_DYLIB_PATH, ...), so a
                    // tool like `xtask bench-e2e` sees what the stack sees.
                    .envs(stack.env().iter().map(|(k, v)| (k, v)))
                    .env("STACK_API_URL", stack.api_url())
                    .env("STACK_UI_URL", stack.ui_url().unwrap_or_default())
                    .env("STACK_REDIS_URL", stack.redis_url())
                    .env("STACK_DATABASE_URL", stack.database_url())
                    .env("STACK_DIR", stack.dir())
                    .env("STACK_PIDS", pids.join(" "))
                    .spawn()
                    .with_context(|| format!("cannot run {program}"))?,
            )
        }
        None => {
            if !args.control {
                eprintln!("Ctrl-C stops it.");
            }
            None
        }
    };
    let mut stdin = args
        .control
        .then(|| tokio::io::BufReader::new(tokio::io::stdin()).lines());
    let mut watch = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = sigint.recv() => { code = 130; break; }
            _ = sigterm.recv() => { code = 143; break; }
            status = async { command.as_mut().expect("guarded").wait().await }, if command.is_some() => {
                let status = status?;
                code = status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1);
                break;
            }
            line = async { stdin.as_mut().expect("guarded").next_line().await }, if stdin.is_some() => {
                match line? {
                    None => break,
                    Some(line) => {
                        let (answer, quit) = control(&mut stack, &mut stopped, line.trim());
                        println!("{answer}");
                        if quit { break; }
                    }
                }
            }
            _ = watch.tick() => {
                // A process that dies on its own ends the stack (a deliberate `stop` does not).
                if let Some((name, status)) = stack.exited().filter(|(n, _)| !stopped.contains(n)) {
                    eprintln!("xtask: {name} exited ({status}); its last lines:");
                    eprintln!("{}", stack.logs_tail(25));
                    code = 1;
                    break;
                }
            }
        }
    }
    if let Some(mut c) = command {
        let _ = c.kill().await;
    }
    eprintln!("==> stopping the stack");
    let mut clean = true;
    for (name, status) in tokio::task::spawn_blocking(move || stack.shutdown()).await? {
        match status {
            Some(s) if s.success() => eprintln!("    {name} exited 0"),
            Some(s) => {
                eprintln!("    {name} exited with {s}");
                // A process stopped on request may have been killed on purpose.
                clean &= stopped.contains(&name);
            }
            None => {
                eprintln!("    {name} did not stop within 30 s and was killed");
                clean = false;
            }
        }
    }
    if !clean && code == 0 {
        code = 1;
    }
    Ok(ExitCode::from(code))
}

/// One control command; the JSON answer and whether to stop.
fn control(stack: &mut Stack, stopped: &mut HashSet<String>, line: &str) -> (Value, bool) {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("stop"), Some(name)) => match stack.stop(name) {
            Ok((full, status)) => {
                stopped.insert(full);
                (
                    json!({"event": "stopped", "name": name, "code": status.and_then(|s| s.code())}),
                    false,
                )
            }
            Err(e) => (
                json!({"event": "error", "message": format!("{e:#}")}),
                false,
            ),
        },
        (Some("start-worker"), None) => match stack.add_worker() {
            Ok(w) => (
                json!({"event": "started", "name": w.name, "pid": w.pid()}),
                false,
            ),
            Err(e) => (
                json!({"event": "error", "message": format!("{e:#}")}),
                false,
            ),
        },
        (Some("quit"), None) => (json!({"event": "quitting"}), true),
        _ => (
            json!({"event": "error", "message": format!("unknown command {line:?}: stop NAME | start-worker | quit")}),
            false,
        ),
    }
}
