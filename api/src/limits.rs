//! Limits that keep one client from taking the service: rate limits per client address
//! (log-in, sign-up, uploads) and per account (uploads), a growing lock-out after repeated
//! failed log-ins for one account, and the client address itself (the connection's peer, or
//! one configured header set by a trusted proxy, never a header the client chose).
//!
//! The counters live in this process (`governor`'s keyed GCRA limiters and a map of failed
//! log-ins), so with several API replicas each enforces its own share; their memory is bounded
//! by pruning idle keys.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::state::AppState;

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

/// One keyed limiter, or none when the rate is off.
struct Keyed<K: std::hash::Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    what: &'static str,
}

/// Keys kept before idle ones are pruned.
const PRUNE_ABOVE: usize = 10_000;

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    fn new(rate: Rate, what: &'static str) -> Self {
        let limiter = NonZeroU32::new(rate.count).and_then(|n| {
            let quota = Quota::with_period(rate.per / n.get())?.allow_burst(n);
            Some(RateLimiter::keyed(quota))
        });
        Keyed { limiter, what }
    }

    /// Takes one request from `key`'s allowance, or 429 with when to retry.
    fn check(&self, key: &K) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > PRUNE_ABOVE {
            limiter.retain_recent();
        }
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            metrics::counter!("rate_limited_total", "limit" => self.what).increment(1);
            ApiError::RateLimited(
                format!("too many {}; retry later", self.what),
                wait.as_secs() + 1,
            )
        })
    }
}

/// Failed log-ins of one account.
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// Every limit of the process, built from the configuration.
pub struct Limits {
    login_address: Keyed<IpAddr>,
    signup_address: Keyed<IpAddr>,
    upload_address: Keyed<IpAddr>,
    upload_user: Keyed<i64>,
    failures: Mutex<HashMap<String, Failures>>,
    free_failures: u32,
    lockout_base: Duration,
    lockout_max: Duration,
    trusted_header: Option<HeaderName>,
}

impl Limits {
    pub fn new(cfg: &ApiConfig) -> anyhow::Result<Self> {
        let trusted_header = cfg
            .trusted_proxy_header
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(HeaderName::from_str)
            .transpose()
            .map_err(|e| anyhow::anyhow!("TRUSTED_PROXY_HEADER is not a header name: {e}"))?;
        Ok(Limits {
            login_address: Keyed::new(
                cfg.login_rate_per_address,
                "log-in attempts from this address",
            ),
            signup_address: Keyed::new(cfg.signup_rate_per_address, "sign-ups from this address"),
            upload_address: Keyed::new(cfg.upload_rate_per_address, "uploads from this address"),
            upload_user: Keyed::new(cfg.upload_rate_per_user, "uploads for this account"),
            failures: Mutex::default(),
            free_failures: cfg.login_free_failures,
            lockout_base: cfg.login_lockout_base,
            lockout_max: cfg.login_lockout_max,
            trusted_header,
        })
    }

    /// The client's address: from the trusted proxy header when one is configured and present
    /// (for `X-Forwarded-For`, its last entry: the one the proxy appended), else the peer.
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let from_header = self.trusted_header.as_ref().and_then(|name| {
            let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
            value.rsplit(',').next()?.trim().parse().ok()
        });
        from_header.or(peer)
    }

    /// A log-in attempt from `addr` for `account`: refused while the address is over its rate
    /// or the account is locked out after failures.
    pub fn check_login(&self, addr: Option<IpAddr>, account: &str) -> Result<(), ApiError> {
        if let Some(ip) = addr {
            self.login_address.check(&ip)?;
        }
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = map.get(account).and_then(|f| f.locked_until) {
            if until > now {
                metrics::counter!("rate_limited_total", "limit" => "login lock-out").increment(1);
                return Err(ApiError::RateLimited(
                    "too many failed log-ins for this account; retry later".into(),
                    (until - now).as_secs() + 1,
                ));
            }
        }
        Ok(())
    }

    /// A failed log-in: past `LOGIN_FREE_FAILURES`, each failure locks the account for twice
    /// as long as the one before (from `LOGIN_LOCKOUT_BASE` up to `LOGIN_LOCKOUT_MAX`).
    pub fn login_failed(&self, account: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_ABOVE {
            let keep = self.lockout_max.max(Duration::from_secs(3600));
            map.retain(|_, f| now.duration_since(f.last) < keep);
        }
        let f = map.entry(account.to_owned()).or_insert(Failures {
            count: 0,
            locked_until: None,
            last: now,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.count > self.free_failures {
            let doublings = (f.count - self.free_failures - 1).min(30);
            let lock = self
                .lockout_base
                .saturating_mul(1u32 << doublings)
                .min(self.lockout_max);
            f.locked_until = Some(now + lock);
        }
    }

    /// A successful log-in forgets the account's failures.
    pub fn login_succeeded(&self, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(account);
    }

    /// A sign-up from `addr`.
    pub fn check_signup(&self, addr: Option<IpAddr>) -> Result<(), ApiError> {
        addr.map_or(Ok(()), |ip| self.signup_address.check(&ip))
    }

    /// An upload by `user` from `addr`.
    pub fn check_upload(&self, addr: Option<IpAddr>, user: i64) -> Result<(), ApiError> {
        if let Some(ip) = addr {
            self.upload_address.check(&ip)?;
        }
        self.upload_user.check(&user)
    }
}

/// The client's address (see [`Limits::client_ip`]); `None` when the request came without a
/// connection (tests driving the router directly), which per-address limits then skip.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddr(state.limits.client_ip(&parts.headers, peer)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg(args: &[&str]) -> ApiConfig {
        let mut all = vec!["api"];
        all.extend_from_slice(args);
        <crate::config::Cli as clap::Parser>::parse_from(all).config
    }

    #[test]
    fn rates_parse_with_units() {
        let r: Rate = "30/1m".parse().unwrap();
        assert_eq!((r.count, r.per), (30, Duration::from_secs(60)));
        assert_eq!("off".parse::<Rate>().unwrap().count, 0);
        assert!("30".parse::<Rate>().is_err());
        assert!("x/1m".parse::<Rate>().is_err());
        assert!("3/0s".parse::<Rate>().is_err());
    }

    #[test]
    fn failed_logins_lock_the_account_for_longer_each_time() {
        let l = Limits::new(&cfg(&[
            "--login-free-failures",
            "2",
            "--login-lockout-base",
            "10s",
            "--login-lockout-max",
            "25s",
        ]))
        .unwrap();
        let retry = |l: &Limits| match l.check_login(None, "a@b.co") {
            Err(ApiError::RateLimited(_, s)) => Some(s),
            _ => None,
        };
        l.login_failed("a@b.co");
        l.login_failed("a@b.co");
        assert_eq!(retry(&l), None, "two failures are free");
        l.login_failed("a@b.co");
        assert!(matches!(retry(&l), Some(10 | 11)));
        l.login_failed("a@b.co");
        assert!(matches!(retry(&l), Some(20 | 21)));
        l.login_failed("a@b.co");
        assert!(matches!(retry(&l), Some(25 | 26)), "capped");
        assert!(l.check_login(None, "other@b.co").is_ok());
        l.login_succeeded("a@b.co");
        assert_eq!(retry(&l), None);
    }

    #[test]
    fn the_address_comes_from_the_trusted_header_only() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4, 5.6.7.8".parse().unwrap());
        let direct = Limits::new(&cfg(&[])).unwrap();
        assert_eq!(direct.client_ip(&h, Some(peer)), Some(peer), "not trusted");
        let proxied = Limits::new(&cfg(&["--trusted-proxy-header", "X-Forwarded-For"])).unwrap();
        assert_eq!(
            proxied.client_ip(&h, Some(peer)),
            Some("5.6.7.8".parse().unwrap()),
            "the entry the proxy appended"
        );
        assert_eq!(proxied.client_ip(&HeaderMap::new(), Some(peer)), Some(peer));
    }

    #[test]
    fn address_limits_refuse_with_a_retry_time() {
        let l = Limits::new(&cfg(&["--signup-rate-per-address", "2/1h"])).unwrap();
        let ip = Some("192.0.2.1".parse().unwrap());
        assert!(l.check_signup(ip).is_ok());
        assert!(l.check_signup(ip).is_ok());
        match l.check_signup(ip) {
            Err(ApiError::RateLimited(_, secs)) => assert!((1700..=1801).contains(&secs), "{secs}"),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(l.check_signup(Some("192.0.2.2".parse().unwrap())).is_ok());
        assert!(l.check_signup(None).is_ok(), "no address: not limited");
    }
}
