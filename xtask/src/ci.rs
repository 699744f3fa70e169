//! `cargo xtask ci`: every check and test of the project, in order (what `make test`, and so
//! `.ci/run`, runs after `scripts/provision.sh`). It installs and changes nothing on the
//! machine. Each step's output is shown and kept in `data/test-logs/<step>.log`; every step
//! runs even after another failed (those that need the build are "not run" when it failed);
//! the summary lists each step with its time, then the test runners' own closing lines and
//! every skipped test by name, so a skip is never mistaken for a pass.
//!
//! Env: `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), the PostgreSQL
//! admin URL the tests create their databases with; `SKIP_BROWSER=1` skips the browser tests;
//! `FUZZ_SECONDS` (default 60) is each fuzz target's run.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// `cargo xtask ci` options.
#[derive(Debug, clap::Args)]
pub struct CiArgs {
    /// Run only these steps (comma-separated names as the summary prints them, e.g.
    /// `fmt,clippy`); default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// One step: its name, the command, and whether it needs the workspace build.
struct Step {
    name: &'static str,
    argv: Vec<String>,
    needs_build: bool,
}

fn step(name: &'static str, needs_build: bool, argv: &[&str]) -> Step {
    Step {
        name,
        argv: argv.iter().map(|a| (*a).to_owned()).collect(),
        needs_build,
    }
}

/// The steps, in order. The network-namespace test runs alone after the other Rust tests;
/// the fuzz build is its own (fuzz/target) and runs niced.
fn steps() -> Vec<Step> {
    let fuzz_seconds = std::env::var("FUZZ_SECONDS").unwrap_or_else(|_| "60".into());
    let mut all = vec![
        step("fmt", false, &["cargo", "fmt", "--all", "--", "--check"]),
        step(
            "clippy",
            false,
            &[
                "cargo",
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        // Supply chain and deployment files: a few seconds each.
        step("cargo-deny", false, &["scripts/deny-check.sh"]),
        step("docker-check", false, &["scripts/docker-check.sh"]),
        step(
            "k8s-manifests",
            false,
            &[".venv/bin/python", "deploy/kubernetes/validate.py"],
        ),
        // The dev profile serves the tests, `make run` and `make model` alike: one compilation.
        step("build", false, &["cargo", "build", "--workspace"]),
        // --status-level skip: the log names every skipped (#[ignore]d) test.
        step(
            "rust tests",
            true,
            &[
                "cargo",
                "nextest",
                "run",
                "--workspace",
                "--no-fail-fast",
                "--no-tests=warn",
                "--status-level",
                "skip",
                "-E",
                "not binary_id(e2e::netns)",
            ],
        ),
        // --workspace (not -p e2e): the build's feature set, so nothing recompiles.
        step(
            "netns test",
            true,
            &[
                "cargo",
                "nextest",
                "run",
                "--workspace",
                "-E",
                "binary_id(e2e::netns)",
                "--run-ignored",
                "only",
                "--no-capture",
                "--no-fail-fast",
            ],
        ),
        // The locustfile against a private stack for a few seconds (`make locust` is the long run).
        step("locust smoke", true, &["scripts/locust.sh", "--smoke"]),
        // Every answer of the running API against its OpenAPI document.
        step("contract", true, &["bash", "scripts/schemathesis.sh"]),
        step(
            "fuzz",
            false,
            &["nice", "-n", "10", "bash", "scripts/fuzz.sh", &fuzz_seconds],
        ),
    ];
    if std::env::var("SKIP_BROWSER").as_deref() != Ok("1") {
        all.push(step(
            "browser tests",
            true,
            &["bash", "tests/browser/run.sh"],
        ));
    }
    all
}

/// Runs the steps and prints the summary; the exit status says whether every step passed.
pub fn run(args: CiArgs) -> anyhow::Result<std::process::ExitCode> {
    let repo = test_support::repo();
    std::env::set_current_dir(&repo)?;
    preflight(&repo)?;
    let logs = fresh_log_dir(&repo)?;
    let started = Instant::now();
    println!(
        "==> cargo xtask ci started (Unix time {})",
        shared::time_util::now_ms() / 1000
    );
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    let mut build_failed = false;
    for s in steps() {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == s.name) {
            continue;
        }
        let line = match skip_reason(&s, build_failed) {
            Some(why) => {
                if why.starts_with("not run") {
                    failed.push(s.name);
                }
                format!("{:<14} {why}", s.name)
            }
            None => {
                let log = logs.join(format!("{}.log", s.name.replace(' ', "-")));
                let t0 = Instant::now();
                let ok = run_step(&s, &log)?;
                let secs = t0.elapsed().as_secs();
                println!("==> {}: {secs} s", s.name);
                if ok {
                    format!("{:<14} ok      {secs:>4} s", s.name)
                } else {
                    failed.push(s.name);
                    build_failed |= s.name == "build";
                    let rel = log
                        .strip_prefix(&repo)
                        .unwrap_or(&log)
                        .display()
                        .to_string();
                    format!("{:<14} FAILED  {secs:>4} s  (log: {rel})", s.name)
                }
            }
        };
        lines.push(line);
    }
    println!("\n==> summary ({} s)", started.elapsed().as_secs());
    for line in lines.iter().chain(&runner_summaries(&logs)) {
        println!("  {line}");
    }
    if failed.is_empty() {
        println!("all checks and tests passed");
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        eprintln!("FAILED: {}", failed.join(" "));
        Ok(std::process::ExitCode::FAILURE)
    }
}

/// `data/test-logs`, emptied of the previous run's logs.
fn fresh_log_dir(repo: &Path) -> anyhow::Result<PathBuf> {
    let logs = repo.join("data/test-logs");
    std::fs::create_dir_all(&logs)?;
    for old in std::fs::read_dir(&logs)? {
        let path = old?.path();
        if path.extension().is_some_and(|e| e == "log") {
            std::fs::remove_file(path)?;
        }
    }
    Ok(logs)
}

/// Why a step does not run: the build it needs failed, or (the netns test) the machine
/// cannot make network namespaces.
fn skip_reason(s: &Step, build_failed: bool) -> Option<String> {
    if s.needs_build && build_failed {
        return Some("not run (the build failed)".into());
    }
    if s.name == "netns test" {
        return netns_unavailable().map(|why| format!("SKIPPED ({why})"));
    }
    None
}

/// Why `ip netns` cannot be used here, if it cannot.
fn netns_unavailable() -> Option<String> {
    let probe = format!("lens-probe-{}", std::process::id());
    let ok = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&["netns", "add", &probe]) {
        return Some("'ip netns add' refused (not root?)".into());
    }
    ok(&["netns", "delete", &probe]);
    None
}

/// The tools the steps run, checked before any of them: what provisioning installs.
fn preflight(repo: &Path) -> anyhow::Result<()> {
    let works = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut missing = Vec::new();
    if !works("redis-server", &["--version"]) {
        missing.push("redis-server");
    }
    if !works("cargo", &["nextest", "--version"]) {
        missing.push("cargo-nextest");
    }
    if !works("cargo", &["fuzz", "--version"]) {
        missing.push("cargo-fuzz");
    }
    if !repo.join(".venv/bin/schemathesis").exists() {
        missing.push(".venv/bin/schemathesis");
    }
    if !repo.join(".ort/libonnxruntime.so").exists() && std::env::var_os("ORT_DYLIB_PATH").is_none()
    {
        missing.push(".ort/libonnxruntime.so");
    }
    anyhow::ensure!(
        missing.is_empty(),
        "missing: {}; run scripts/provision.sh (make test does) first",
        missing.join(" ")
    );
    Ok(())
}

/// Runs one step with stderr joined to stdout, showing the output and keeping it in `log`.
fn run_step(s: &Step, log: &PathBuf) -> anyhow::Result<bool> {
    println!("\n==> {}: {}", s.name, s.argv.join(" "));
    let mut file = std::fs::File::create(log)?;
    // The shell joins stderr to stdout, so the log keeps both in the order they came.
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "exec \"$@\" 2>&1", "step"]).args(&s.argv);
    for (key, default) in [
        (
            "TEST_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        ),
        ("CARGO_TERM_COLOR", "never"),
    ] {
        if std::env::var_os(key).is_none() {
            cmd.env(key, default);
        }
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut buf = [0u8; 8192];
    let mut shown = std::io::stdout();
    loop {
        let n = out.read(&mut buf)?;
        if n == 0 {
            break;
        }
        shown.write_all(&buf[..n])?;
        shown.flush()?;
        file.write_all(&buf[..n])?;
    }
    Ok(child.wait()?.success())
}

/// The closing lines of the tools and test runners, from their logs: what each one says when
/// it ends, and every skipped Rust test by name.
fn runner_summaries(logs: &Path) -> Vec<String> {
    let read = |name: &str| std::fs::read_to_string(logs.join(name)).unwrap_or_default();
    let mut out = Vec::new();
    for name in ["cargo-deny.log", "docker-check.log", "k8s-manifests.log"] {
        out.extend(
            read(name)
                .lines()
                .map(str::trim)
                .filter(|l| is_tool_verdict(l))
                .map(str::to_owned),
        );
    }
    out.extend(rust_lines(&read("rust-tests.log")));
    let netns = read("netns-test.log");
    out.extend(
        netns
            .lines()
            .filter(|l| l.starts_with("netns: ok"))
            .map(str::to_owned),
    );
    out.extend(read("contract.log").lines().filter_map(schemathesis_line));
    out.extend(
        read("fuzz.log")
            .lines()
            .filter(|l| is_fuzz_line(l))
            .map(str::to_owned),
    );
    out.extend(read("browser-tests.log").lines().filter_map(browser_line));
    out
}

/// cargo-deny's per-check verdicts and the deployment checks' closing lines.
fn is_tool_verdict(l: &str) -> bool {
    let deny = ["advisories", "bans", "licenses", "sources"]
        .iter()
        .any(|w| l.starts_with(&format!("{w} ok")) || l.starts_with(&format!("{w} FAILED")));
    deny || ["advisories: ", "docker-check: ", "kubernetes manifests: "]
        .iter()
        .any(|p| l.starts_with(p))
}

/// nextest's closing line, and a line per skipped test: "SKIP [   0.000s] (2/3) crate name"
/// becomes "skipped: crate name".
fn rust_lines(log: &str) -> Vec<String> {
    let lines = log.lines().map(str::trim);
    let mut out: Vec<String> = lines
        .clone()
        .filter(|l| l.starts_with("Summary ["))
        .map(str::to_owned)
        .collect();
    out.extend(lines.filter(|l| l.starts_with("SKIP ")).map(|l| {
        let name = l.split_once(']').map_or(l, |(_, rest)| rest.trim());
        // The counter is "(2/3)", or a bar "(───────)" for tests that never ran.
        let name = match name.strip_prefix('(').and_then(|r| r.split_once(") ")) {
            Some((_, rest)) => rest,
            None => name,
        };
        format!("skipped: {name}")
    }));
    out
}

/// schemathesis closes with "=== No issues found in 20.5s ===" (or "=== 2 failures in ...").
fn schemathesis_line(l: &str) -> Option<String> {
    let inner = l
        .strip_prefix('=')?
        .strip_suffix('=')?
        .trim_matches('=')
        .trim();
    (inner.contains(" in ") && inner.ends_with('s')).then(|| format!("schemathesis: {inner}"))
}

/// scripts/fuzz.sh's "fuzz <target>: ..." line for each target.
fn is_fuzz_line(l: &str) -> bool {
    l.strip_prefix("fuzz ")
        .and_then(|rest| rest.split_once(": "))
        .is_some_and(|(target, _)| {
            !target.is_empty() && target.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
}

/// node --test closes with "ℹ tests N", "ℹ pass N", "ℹ fail N".
fn browser_line(l: &str) -> Option<String> {
    let l = l.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let (word, n) = l.split_once(' ')?;
    (["tests", "pass", "fail"].contains(&word) && n.parse::<u64>().is_ok())
        .then(|| format!("browser {l}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary picks each runner's closing lines out of real-looking logs, names every
    /// skipped test, and nothing else.
    #[test]
    fn the_summary_keeps_the_runners_closing_lines_and_names_the_skips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write =
            |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
        write(
            "rust-tests.log",
            "        PASS [   0.5s] (1/3) api auth::ok\n         SKIP [   0.000s] (2/3) test-support hostile::slow\n         SKIP [ 0.000s] (───────) e2e::netns cut\n     Summary [ 170.1s] 3 tests run: 2 passed, 1 skipped\n",
        );
        write("contract.log", "noise\n=== No issues found in 20.5s ===\n");
        write(
            "fuzz.log",
            "fuzz inspect_upload: ok, 1200 runs\nfuzz build took 300 s\n",
        );
        write(
            "browser-tests.log",
            "ℹ tests 8\nℹ pass 8\nℹ fail 0\nℹ duration_ms 9\n",
        );
        write("netns-test.log", "netns: ok: 2 hosts\n");
        let lines = runner_summaries(dir.path());
        assert_eq!(
            lines,
            [
                "Summary [ 170.1s] 3 tests run: 2 passed, 1 skipped",
                "skipped: test-support hostile::slow",
                "skipped: e2e::netns cut",
                "netns: ok: 2 hosts",
                "schemathesis: No issues found in 20.5s",
                "fuzz inspect_upload: ok, 1200 runs",
                "browser tests 8",
                "browser pass 8",
                "browser fail 0",
            ]
        );
    }
}
