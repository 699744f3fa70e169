//! Worker configuration: every field is a flag and an environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use shared::config::{duration_secs, parse_bool, CommonConfig};

/// Settings of a serving worker.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Models this worker serves, comma-separated (default: every non-benchmark registry model
    /// whose file is in the models folder).
    #[arg(long, env = "MODELS", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Path of libonnxruntime.so (default: the project's `.ort/` install).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib_path: Option<PathBuf>,
    /// CPUs this worker owns (rounded up: its CPU permits). Default: the CPUs this process may
    /// use (`available_parallelism`, cgroup quota included); without a quota, workers on one
    /// host share its CPUs out among themselves through their heartbeats. Give the container
    /// the same budget (compose `cpus:`, a Kubernetes CPU limit).
    #[arg(long = "cpus", env = "WORKER_CPUS", value_parser = positive_cpus)]
    pub worker_cpus: Option<f64>,
    /// Intra-op threads of the all-cores session (default: WORKER_CPUS rounded up).
    #[arg(long, env = "INTRA_THREADS")]
    pub intra_threads: Option<usize>,
    /// One-thread sessions per model, run in parallel while several jobs are in hand
    /// (default: one per CPU of the budget; 0: only the all-cores session).
    #[arg(long, env = "WORKER_SESSIONS")]
    pub sessions: Option<usize>,
    /// Worker id in heartbeats and as the Redis consumer name (default: host-pid-random).
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,
    /// Serve Prometheus `GET /metrics` (queue wait, decode, preprocess, inference, batch size
    /// histograms per model) on this address, e.g. 0.0.0.0:9100. Off when unset.
    #[arg(long, env = "WORKER_METRICS_BIND")]
    pub metrics_bind: Option<std::net::SocketAddr>,
    /// Jobs in hand at once, read from the queue in one batch when several wait
    /// (default: the CPU permits + 1, so the next job is decoded while every session runs).
    #[arg(long, env = "WORKER_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// How long a delivered job may stay unacknowledged before another worker reclaims it
    /// (bare number: seconds).
    #[arg(long, env = "VISIBILITY_TIMEOUT", value_parser = duration_secs, default_value = "30s")]
    pub visibility_timeout: Duration,
    /// Deliveries after which a job is failed and dead-lettered.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// How long one job's decode + inference may take before it is abandoned and retried
    /// (bare number: seconds).
    #[arg(long, env = "JOB_TIMEOUT", value_parser = duration_secs, default_value = "30s")]
    pub job_timeout: Duration,
    /// Time between heartbeats (bare number: seconds).
    #[arg(long, env = "HEARTBEAT_INTERVAL", value_parser = duration_secs, default_value = "2s")]
    pub heartbeat_interval: Duration,
    /// Time to finish the job in hand after SIGTERM before handing it back (bare number: seconds).
    #[arg(long, env = "SHUTDOWN_GRACE", value_parser = duration_secs, default_value = "20s")]
    pub shutdown_grace: Duration,
    /// Let the all-cores session's intra-op threads spin between operators (default: only
    /// when the worker owns its cores: WORKER_CPUS given or a cgroup CPU quota).
    #[arg(long, env = "ORT_SPIN", value_parser = parse_bool)]
    pub ort_spin: Option<bool>,
    /// Test-only: uploads containing `#panic` (e.g. in a JPEG comment) panic the decoder, `#hang` stall it.
    #[arg(long, env = "FAULT_INJECTION", value_parser = parse_bool, default_value = "false")]
    pub fault_injection: bool,
}

impl WorkerConfig {
    /// The one line a starting worker logs about its models: which, from where, and why
    /// (`MODELS`, or the registry models present in the folder, and why that folder).
    pub fn serving_summary(&self, names: &[String]) -> String {
        let dir = self.common.models_dir_choice();
        let what = if !self.listed_models().is_empty() {
            "as MODELS lists".to_owned()
        } else {
            "every registry model whose file is there (MODELS is not set)".to_owned()
        };
        let mut line = format!(
            "serving {} from {}: {what}",
            names.join(", "),
            dir.path.display()
        );
        if let Some(why) = &dir.fallback_reason {
            line.push_str("; ");
            line.push_str(why);
        }
        line
    }

    /// The models `MODELS` names, trimmed, blanks dropped (empty: serve what is present).
    pub fn listed_models(&self) -> Vec<String> {
        self.models
            .iter()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// Threads for each session: INTRA_THREADS, else WORKER_CPUS rounded up, else the CPUs
    /// this process may use (`available_parallelism` honours cgroup CPU quotas).
    pub fn threads(&self) -> usize {
        if let Some(n) = self.intra_threads {
            return n.max(1);
        }
        match self.worker_cpus {
            // Validated positive, finite and at most 4096: the cast is exact.
            Some(cpus) => (cpus.ceil() as usize).max(1),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The CPUs a worker may use and whether they are its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuBudget {
    /// CPU permits (whole CPUs, rounded up; at least 1).
    pub permits: usize,
    /// True when the budget was given (WORKER_CPUS) or enforced (cgroup quota): the worker
    /// owns these cores. False: it shares its host's CPUs with the other workers there.
    pub owned: bool,
}

impl WorkerConfig {
    /// The CPU budget at start-up (see [`CpuBudget`]).
    pub fn budget(&self) -> CpuBudget {
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        match self.worker_cpus {
            Some(cpus) => CpuBudget {
                permits: (cpus.ceil() as usize).max(1),
                owned: true,
            },
            None => CpuBudget {
                permits: available,
                owned: crate::budget::cgroup_quota().is_some(),
            },
        }
    }

    /// Sessions per model and their threads.
    pub fn layout(&self) -> crate::model::Layout {
        let budget = self.budget();
        crate::model::Layout {
            narrow: self.sessions.unwrap_or(budget.permits),
            wide_threads: self.threads(),
            permits: budget.permits,
            spin: self.spin(),
        }
    }

    /// ORT_SPIN, else spin only when the worker owns its cores.
    pub fn spin(&self) -> bool {
        self.ort_spin.unwrap_or_else(|| self.budget().owned)
    }

    /// Jobs in hand at once for `permits` CPU permits.
    pub fn capacity(&self, permits: usize) -> usize {
        self.concurrency.unwrap_or(permits + 1).max(1)
    }
}

/// A CPU budget: a positive number of CPUs, fractions allowed (`0.5`, `2`).
fn positive_cpus(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n <= 4096.0 => Ok(n),
        _ => Err(format!(
            "`{text}` is not a CPU count: give a positive number such as 1, 2 or 0.5"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn cfg(args: &[&str]) -> WorkerConfig {
        let mut all = vec!["worker"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("parses").config
    }

    #[test]
    fn durations_and_booleans_parse_one_way() {
        let c = cfg(&[]);
        assert_eq!(c.visibility_timeout, Duration::from_secs(30));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(c.ort_spin, None);
        assert!(!c.fault_injection);
        let line = "--job-timeout 3 --heartbeat-interval 500ms --ort-spin=off --fault-injection";
        let c = cfg(&line.split(' ').collect::<Vec<_>>());
        assert_eq!(c.job_timeout, Duration::from_secs(3));
        assert_eq!(c.heartbeat_interval, Duration::from_millis(500));
        assert!(!c.spin());
        assert!(c.fault_injection);
        assert!(Cli::try_parse_from(["worker", "--ort-spin", "maybe"]).is_err());
    }

    #[test]
    fn the_cpu_budget_sets_the_threads_unless_intra_threads_overrides_it() {
        let all = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(cfg(&[]).threads(), all);
        assert_eq!(cfg(&["--cpus", "2"]).threads(), 2);
        assert_eq!(cfg(&["--cpus", "0.5"]).threads(), 1);
        assert_eq!(cfg(&["--cpus", "1.5"]).threads(), 2);
        assert_eq!(cfg(&["--cpus", "2", "--intra-threads", "3"]).threads(), 3);
        // A given budget is owned: the wide session spins, the pool has one session per CPU.
        let c = cfg(&["--cpus", "1.5"]);
        assert_eq!(
            c.budget(),
            CpuBudget {
                permits: 2,
                owned: true
            }
        );
        assert!(c.spin());
        assert_eq!(c.layout().narrow, 2);
        assert_eq!(c.capacity(2), 3);
        assert_eq!(cfg(&["--sessions", "0"]).layout().narrow, 0);
        assert_eq!(cfg(&["--concurrency", "5"]).capacity(2), 5);
        for bad in ["0", "-1", "many", "inf", "NaN"] {
            assert!(
                Cli::try_parse_from(["worker", "--cpus", bad]).is_err(),
                "{bad} must be refused"
            );
        }
    }
}
