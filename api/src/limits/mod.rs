//! Limits that keep one client from taking the service: rate limits per client address
//! (log-in, sign-up, uploads; an IPv6 /64 is one address) and per account (uploads), a growing lock-out after repeated
//! failed log-ins for one account, and the client address itself (the connection's peer, or
//! what a configured header says when the peer is a trusted proxy, never a header the client
//! chose: [`proxies`]).
//!
//! The counters live in this process (`governor`'s keyed GCRA limiters and a map of failed
//! log-ins), so with several API replicas each enforces its own share; their memory is bounded
//! by pruning idle keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{ApiConfig, Rate};
use crate::error::ApiError;
use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

mod proxies;

use proxies::TrustedProxies;

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

/// Failed log-ins of one account from one address (see [`lockout_key`]).
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// What every per-address limit counts a client address as: an IPv6 address grouped by its
/// /64 (one host's usual allocation, so rotating addresses inside it does not reset a count),
/// an IPv4-mapped IPv6 address as its IPv4 address.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(ipnet::Ipv6Net::new_assert(v6, 64).network()),
        v4 => v4,
    }
}

impl Keyed<IpAddr> {
    /// Takes one request from the allowance of `addr`'s [`address_key`]; a request without an
    /// address (tests driving the router) is not limited.
    fn check_address(&self, addr: Option<IpAddr>) -> Result<(), ApiError> {
        addr.map_or(Ok(()), |ip| self.check(&address_key(ip)))
    }
}

/// What failed log-ins are counted under: the account and the client's [`address_key`].
fn lockout_key(account: &str, addr: Option<IpAddr>) -> (String, Option<IpAddr>) {
    (account.to_owned(), addr.map(address_key))
}

/// Every limit of the process, built from the configuration.
pub struct Limits {
    login_address: Keyed<IpAddr>,
    signup_address: Keyed<IpAddr>,
    upload_address: Keyed<IpAddr>,
    upload_user: Keyed<i64>,
    failures: Mutex<HashMap<(String, Option<IpAddr>), Failures>>,
    free_failures: u32,
    lockout_base: Duration,
    lockout_max: Duration,
    proxies: TrustedProxies,
}

impl Limits {
    pub fn new(cfg: &ApiConfig) -> anyhow::Result<Self> {
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
            proxies: TrustedProxies::new(cfg)?,
        })
    }

    /// The client's address (see [`TrustedProxies::client_ip`]).
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        self.proxies.client_ip(headers, peer)
    }

    /// A log-in attempt from `addr` for `account`: refused while the address is over its rate
    /// or the account is locked out, from this address, after failures there.
    pub fn check_login(&self, addr: Option<IpAddr>, account: &str) -> Result<(), ApiError> {
        self.login_address.check_address(addr)?;
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let key = lockout_key(account, addr);
        if let Some(until) = map.get(&key).and_then(|f| f.locked_until) {
            if until > now {
                metrics::counter!("rate_limited_total", "limit" => "login lock-out").increment(1);
                return Err(ApiError::RateLimited(
                    "too many failed log-ins for this account from this address; retry later"
                        .into(),
                    (until - now).as_secs() + 1,
                ));
            }
        }
        Ok(())
    }

    /// A failed log-in from `addr`: past `LOGIN_FREE_FAILURES`, each failure locks the account
    /// from that address for twice as long as the one before (from `LOGIN_LOCKOUT_BASE` up to
    /// `LOGIN_LOCKOUT_MAX`). Scoped to the address, so someone who knows an email cannot lock its
    /// owner out from everywhere; guessing from many addresses is bounded by each address's
    /// `LOGIN_RATE_PER_ADDRESS` and lock-out.
    pub fn login_failed(&self, account: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_ABOVE {
            let keep = self.lockout_max.max(Duration::from_secs(3600));
            map.retain(|_, f| now.duration_since(f.last) < keep);
        }
        let f = map.entry(lockout_key(account, addr)).or_insert(Failures {
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

    /// A successful log-in forgets the account's failures from that address.
    pub fn login_succeeded(&self, account: &str, addr: Option<IpAddr>) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&lockout_key(account, addr));
    }

    /// A sign-up from `addr`.
    pub fn check_signup(&self, addr: Option<IpAddr>) -> Result<(), ApiError> {
        self.signup_address.check_address(addr)
    }

    /// An upload by `user` from `addr`.
    pub fn check_upload(&self, addr: Option<IpAddr>, user: i64) -> Result<(), ApiError> {
        self.upload_address.check_address(addr)?;
        self.upload_user.check(&user)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use crate::config::tests::cfg;

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
        l.login_failed("a@b.co", None);
        l.login_failed("a@b.co", None);
        assert_eq!(retry(&l), None, "two failures are free");
        l.login_failed("a@b.co", None);
        assert!(matches!(retry(&l), Some(10 | 11)));
        l.login_failed("a@b.co", None);
        assert!(matches!(retry(&l), Some(20 | 21)));
        l.login_failed("a@b.co", None);
        assert!(matches!(retry(&l), Some(25 | 26)), "capped");
        assert!(l.check_login(None, "other@b.co").is_ok());
        l.login_succeeded("a@b.co", None);
        assert_eq!(retry(&l), None);
    }

    /// Issue 24 finding 6: whoever knows an email can lock it out only from their own address
    /// (an IPv6 /64 counting as one); its owner logs in from theirs.
    #[test]
    fn a_lock_out_holds_only_for_the_address_that_failed() {
        let l = Limits::new(&cfg(&["--login-free-failures", "1"])).unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let locked = |l: &Limits, addr| {
            matches!(
                l.check_login(addr, "victim@b.co"),
                Err(ApiError::RateLimited(..))
            )
        };
        let (attacker, owner) = (ip("203.0.113.7"), ip("198.51.100.20"));
        for _ in 0..3 {
            l.login_failed("victim@b.co", attacker);
        }
        assert!(locked(&l, attacker));
        assert!(!locked(&l, owner), "the owner's address is not locked");
        // The owner's success does not unlock the attacker's address.
        l.login_succeeded("victim@b.co", owner);
        assert!(locked(&l, attacker));
        // Another address in the same IPv6 /64 is the same attacker.
        for _ in 0..3 {
            l.login_failed("victim@b.co", ip("2001:db8:1:2::1"));
        }
        assert!(locked(&l, ip("2001:db8:1:2:ffff::9")));
        assert!(!locked(&l, ip("2001:db8:1:3::1")));
        // An IPv4 client seen through an IPv6 socket counts as its IPv4 address.
        assert!(locked(&l, ip("::ffff:203.0.113.7")));
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

    /// Issue 24, finding 7f: every per-address limit used to key the full IPv6 address, so one
    /// host rotating through its /64 had 2^64 allowances. An IPv6 /64 is one address for each
    /// of them (as for the log-in lock-out), and an IPv4-mapped address is its IPv4 one.
    #[test]
    fn every_address_limit_counts_an_ipv6_64_as_one_address() {
        let l = Limits::new(&cfg(&[
            "--signup-rate-per-address",
            "2/1h",
            "--login-rate-per-address",
            "2/1h",
            "--upload-rate-per-address",
            "2/1h",
        ]))
        .unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        type Check = fn(&Limits, Option<IpAddr>) -> Result<(), ApiError>;
        let checks: [(&str, Check); 3] = [
            ("sign-up", |l, a| l.check_signup(a)),
            ("log-in", |l, a| l.check_login(a, "a@b.co")),
            ("upload", |l, a| l.check_upload(a, 1)),
        ];
        for (what, check) in checks {
            assert!(check(&l, ip("2001:db8:1:2::1")).is_ok(), "{what}");
            assert!(check(&l, ip("2001:db8:1:2::2")).is_ok(), "{what}");
            assert!(
                check(&l, ip("2001:db8:1:2:ffff::9")).is_err(),
                "{what}: the same /64"
            );
            assert!(
                check(&l, ip("2001:db8:1:3::1")).is_ok(),
                "{what}: another /64"
            );
            assert!(check(&l, ip("192.0.2.7")).is_ok(), "{what}");
            assert!(check(&l, ip("::ffff:192.0.2.7")).is_ok(), "{what}");
            assert!(
                check(&l, ip("192.0.2.7")).is_err(),
                "{what}: an IPv4-mapped address is its IPv4 address"
            );
        }
    }
}
