//! API configuration: every field is a flag and an environment variable of the same name.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use shared::config::{conventions, duration_secs, parse_bool, CommonConfig};

/// `api`: the HTTP front of the service.
#[derive(Debug, Parser)]
#[command(name = "api", version, mut_args = conventions)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: ApiConfig,
}

/// Subcommands besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Create (or promote) an admin account from ADMIN_EMAIL / ADMIN_PASSWORD and exit.
    CreateAdmin,
}

/// Deployment mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AppEnv {
    Dev,
    Production,
}

/// All API settings.
#[derive(Debug, Clone, Args)]
pub struct ApiConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Address to listen on.
    #[arg(long, env = "API_BIND", default_value = "127.0.0.1:8000")]
    pub api_bind: String,
    /// Serve `/metrics` on this address of its own (e.g. an internal interface) and not on
    /// API_BIND; unset: `/metrics` is served on the API port.
    #[arg(long, env = "METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// File the bound port is written to once listening: with `API_BIND=...:0`, how a
    /// supervisor (tests, `xtask stack`) learns the port from the process itself.
    #[arg(long, env = "PORT_FILE")]
    pub port_file: Option<std::path::PathBuf>,
    /// `sqlite://path` (created on first start) or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/app.db")]
    pub database_url: String,
    /// `dev` allows a built-in JWT secret; `production` requires a strong JWT_SECRET.
    #[arg(long, env = "APP_ENV", value_enum, default_value = "production")]
    pub app_env: AppEnv,
    /// HS256 signing key, at least 32 bytes.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,
    /// Token lifetime (bare number: seconds; old name `JWT_TTL_MINUTES`, in minutes).
    #[arg(long, env = "JWT_TTL", value_parser = duration_secs, default_value = "30m")]
    pub jwt_ttl: Duration,
    /// Admin account created at start (with ADMIN_PASSWORD).
    #[arg(long, env = "ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<SecretString>,
    /// Model used when a request names none (default: the registry's default, or the first
    /// registry model in the models folder when the default's file is not there).
    #[arg(long, env = "DEFAULT_MODEL")]
    pub default_model: Option<String>,
    /// Largest upload body in bytes.
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_upload_bytes: usize,
    /// Jobs waiting per model beyond which uploads get 429.
    #[arg(long, env = "MAX_QUEUE_DEPTH", default_value_t = 1000)]
    pub max_queue_depth: u64,
    /// How long `POST /predict` waits for its result before answering 504 (bare number: seconds).
    #[arg(long, env = "PREDICT_TIMEOUT", value_parser = duration_secs, default_value = "30s")]
    pub predict_timeout: Duration,
    /// Any request still running after this is cut with 504 (bare number: seconds).
    #[arg(long, env = "REQUEST_TIMEOUT", value_parser = duration_secs, default_value = "40s")]
    pub request_timeout: Duration,
    /// Deadline for each database call (bare number: seconds; old name `DB_TIMEOUT_MS`, in
    /// milliseconds).
    #[arg(long, env = "DB_TIMEOUT", value_parser = duration_secs, default_value = "3s")]
    pub db_timeout: Duration,
    /// Time in-flight requests get to finish after SIGTERM (bare number: seconds).
    #[arg(long, env = "SHUTDOWN_GRACE", value_parser = duration_secs, default_value = "20s")]
    pub shutdown_grace: Duration,
    /// Unfinished jobs one user may have queued; more get 429 `quota_exceeded`.
    #[arg(long, env = "MAX_QUEUED_JOBS_PER_USER", default_value_t = 100)]
    pub max_queued_jobs_per_user: u64,
    /// Bytes of unfinished uploads one user may have queued; more get 429 `quota_exceeded`.
    #[arg(long, env = "MAX_QUEUED_BYTES_PER_USER", default_value_t = 100 * 1024 * 1024)]
    pub max_queued_bytes_per_user: u64,
    /// Uploads get 503 once Redis uses this share of its `maxmemory` (percent; 0 = off), so
    /// Redis never has to refuse a write half-way through a job.
    #[arg(long, env = "REDIS_MEMORY_HIGH_WATER", default_value_t = 90)]
    pub redis_memory_high_water: u8,
    /// Accept jobs for benchmark-only models (`cargo xtask bench-e2e`, `make bench`).
    #[arg(long, env = "ALLOW_BENCHMARK_MODELS", value_parser = parse_bool, default_value = "false")]
    pub allow_benchmark_models: bool,
    /// Log-in attempts per client address (COUNT/DURATION, e.g. `30/1m`; `off`).
    #[arg(long, env = "LOGIN_RATE_PER_ADDRESS", default_value = "30/1m")]
    pub login_rate_per_address: Rate,
    /// Failed log-ins one account may have from one client address (an IPv6 /64 counting as one)
    /// before it is locked out from that address; its other addresses are not locked.
    #[arg(long, env = "LOGIN_FREE_FAILURES", default_value_t = 5)]
    pub login_free_failures: u32,
    /// First lock-out after the free failures; each further failure doubles it.
    #[arg(long, env = "LOGIN_LOCKOUT_BASE", value_parser = duration_secs, default_value = "2s")]
    pub login_lockout_base: Duration,
    /// Longest lock-out.
    #[arg(long, env = "LOGIN_LOCKOUT_MAX", value_parser = duration_secs, default_value = "15m")]
    pub login_lockout_max: Duration,
    /// Sign-ups per client address.
    #[arg(long, env = "SIGNUP_RATE_PER_ADDRESS", default_value = "10/1h")]
    pub signup_rate_per_address: Rate,
    /// Uploads (`POST /predictions`, `POST /predict`) per client address.
    #[arg(long, env = "UPLOAD_RATE_PER_ADDRESS", default_value = "1200/1m")]
    pub upload_rate_per_address: Rate,
    /// Uploads per account.
    #[arg(long, env = "UPLOAD_RATE_PER_USER", default_value = "600/1m")]
    pub upload_rate_per_user: Rate,
    /// Password hashes (log-ins, sign-ups) waiting or running at once; more get 429.
    #[arg(long, env = "ARGON2_QUEUE", default_value_t = DEFAULT_ARGON2_QUEUE)]
    pub argon2_queue: usize,
    /// Addresses of the proxies in front of the API (the UI, a load balancer, an ingress),
    /// comma-separated IPs or CIDR blocks. A request from one of them is attributed to the
    /// address its `TRUSTED_PROXY_HEADER` names: the entries are walked from the right (the one
    /// the nearest proxy appended) past every trusted address, so a client cannot choose its
    /// own. Empty: the header is ignored and the peer address counts.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,
    /// The header trusted proxies set to the client's address (`X-Forwarded-For`, or a
    /// one-address header such as `X-Real-IP`).
    #[arg(long, env = "TRUSTED_PROXY_HEADER", default_value = "X-Forwarded-For")]
    pub trusted_proxy_header: String,
    /// Requests held open at once waiting for a result (`GET /predictions/{id}?wait=` and
    /// `POST /predict`), over all users. Beyond it `?wait` answers at once with the job as it
    /// is, and `POST /predict` is 429 `rate_limited`.
    #[arg(long, env = "MAX_WAITS", default_value_t = 2048)]
    pub max_waits: usize,
    /// The same, per account.
    #[arg(long, env = "MAX_WAITS_PER_USER", default_value_t = 32)]
    pub max_waits_per_user: usize,
    #[command(flatten)]
    pub server: http_server::ServerLimits,
}

/// Largest body of the routes that take JSON or a log-in form (sign-up, log-in, feedback):
/// a few fields of at most a few thousand characters, far from the uploads' megabytes.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Default bound of the argon2 queue (waiting + running hashes).
pub const DEFAULT_ARGON2_QUEUE: usize = 32;

/// A rate: `count` requests per `per` (written `30/1m`), allowed in a burst and replenished
/// evenly; `0/…` or `off` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Rate {
                count: 0,
                per: Duration::from_secs(1),
            });
        }
        let (count, per) = s
            .split_once('/')
            .ok_or_else(|| format!("expected COUNT/DURATION such as 30/1m, got `{s}`"))?;
        let count = count
            .trim()
            .parse()
            .map_err(|_| format!("`{count}` is not a whole number"))?;
        let per = humantime::parse_duration(per.trim()).map_err(|e| format!("`{per}`: {e}"))?;
        if per.is_zero() {
            return Err("the period must be longer than zero".into());
        }
        Ok(Rate { count, per })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

/// `TRUSTED_PROXIES` entries: a CIDR block (`10.0.0.0/8`) or one address (`10.0.0.7`).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is neither an IP address nor a CIDR block"))
}

/// The dev-mode signing key: never valid in production.
const DEV_SECRET: &str = "dev-only-secret-do-not-use-in-production-0123456789";

impl ApiConfig {
    /// The JWT signing key, or a clear reason the API must not start.
    pub fn jwt_key(&self) -> anyhow::Result<Vec<u8>> {
        match (&self.jwt_secret, self.app_env) {
            (Some(s), AppEnv::Production) if s.expose_secret().contains("change-me") => anyhow::bail!(
                "JWT_SECRET still holds the placeholder from .env.original: set it to a random value (e.g. `openssl rand -hex 32`)"
            ),
            (Some(s), _) if s.expose_secret().len() >= 32 => Ok(s.expose_secret().as_bytes().to_vec()),
            (Some(_), AppEnv::Production) => anyhow::bail!(
                "JWT_SECRET is too short: use at least 32 random bytes (e.g. `openssl rand -hex 32`)"
            ),
            (None, AppEnv::Production) => anyhow::bail!(
                "JWT_SECRET is not set: production mode needs a secret of at least 32 bytes (set APP_ENV=dev for a local built-in one)"
            ),
            (_, AppEnv::Dev) => Ok(DEV_SECRET.as_bytes().to_vec()),
        }
    }

    /// Per-call database deadline (a method as well as the field, so callers written before
    /// the field became a `Duration` read it the same way).
    pub fn db_timeout(&self) -> Duration {
        self.db_timeout
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The configuration these command-line arguments give (the other modules' tests use it).
    pub(crate) fn cfg(args: &[&str]) -> ApiConfig {
        let mut all = vec!["api"];
        all.extend_from_slice(args);
        <Cli as clap::Parser>::parse_from(all).config
    }

    #[test]
    fn production_refuses_missing_or_short_secret() {
        let err = cfg(&["--app-env", "production"])
            .jwt_key()
            .expect_err("no secret");
        assert!(err.to_string().contains("JWT_SECRET is not set"));
        let err = cfg(&["--app-env", "production", "--jwt-secret", "short"])
            .jwt_key()
            .expect_err("short");
        assert!(err.to_string().contains("too short"));
        let long = "x".repeat(40);
        assert_eq!(
            cfg(&["--app-env", "production", "--jwt-secret", &long])
                .jwt_key()
                .ok(),
            Some(long.into_bytes())
        );
        assert!(cfg(&["--app-env", "dev"]).jwt_key().is_ok());
        let placeholder = "change-me-to-the-output-of-openssl-rand-hex-32";
        let err = cfg(&["--app-env", "production", "--jwt-secret", placeholder])
            .jwt_key()
            .expect_err("placeholder");
        assert!(err.to_string().contains("placeholder"));
    }

    #[test]
    fn rates_parse_with_units() {
        let r: Rate = "30/1m".parse().expect("a rate");
        assert_eq!((r.count, r.per), (30, Duration::from_secs(60)));
        assert_eq!("off".parse::<Rate>().map(|r| r.count), Ok(0));
        assert!("30".parse::<Rate>().is_err());
        assert!("x/1m".parse::<Rate>().is_err());
        assert!("3/0s".parse::<Rate>().is_err());
        assert!(parse_net("10.0.0.0/33").is_err() && parse_net("ui").is_err());
        assert!(parse_net("10.0.0.7").is_ok());
    }

    #[test]
    fn durations_take_units_and_bare_numbers_keep_their_old_unit() {
        let line = "--predict-timeout 2 --request-timeout 1m --db-timeout 750ms --jwt-ttl 45m";
        let c = cfg(&line.split(' ').collect::<Vec<_>>());
        assert_eq!(c.predict_timeout, Duration::from_secs(2));
        assert_eq!(c.request_timeout, Duration::from_secs(60));
        assert_eq!(c.db_timeout(), Duration::from_millis(750));
        assert_eq!(c.jwt_ttl, Duration::from_secs(45 * 60));
        assert_eq!(cfg(&[]).shutdown_grace, Duration::from_secs(20));
    }

    /// docs/configuration.md's api table is this command line's (`make config-docs`).
    #[test]
    fn the_settings_table_in_the_docs_matches_the_code() {
        let cmd = <Cli as clap::CommandFactory>::command();
        shared::settings_doc::assert_documented("api", &cmd);
    }
}
