//! The client address behind trusted proxies: which peers may say, in which header, whose
//! request they forward; and a warning when a peer that is not trusted says so anyway.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use crate::config::ApiConfig;

/// Forwarded-for entries looked at, at most (a longer chain is cut from the left).
const MAX_HOPS: usize = 16;

/// One forwarded-for entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// `TRUSTED_PROXIES` and the `TRUSTED_PROXY_HEADER` they set.
pub(super) struct TrustedProxies {
    header: HeaderName,
    proxies: Vec<IpNet>,
    /// Whether [`TrustedProxies::untrusted_forward`] has reported its misconfiguration already.
    warned: AtomicBool,
}

impl TrustedProxies {
    pub(super) fn new(cfg: &ApiConfig) -> anyhow::Result<Self> {
        let header = HeaderName::from_str(cfg.trusted_proxy_header.trim())
            .map_err(|e| anyhow::anyhow!("TRUSTED_PROXY_HEADER is not a header name: {e}"))?;
        Ok(TrustedProxies {
            header,
            proxies: cfg.trusted_proxies.clone(),
            warned: AtomicBool::new(false),
        })
    }

    /// The client's address. A request whose peer is not a trusted proxy is its peer's. From a
    /// trusted proxy, the trusted header's entries are read from the right (the nearest proxy
    /// appends the address it saw): each trusted address hands on to the entry before it, and
    /// the first untrusted one is the client. Entries further left are whatever the client sent
    /// and are never believed. `None` without a connection (tests driving the router).
    pub(super) fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let mut client = peer?;
        if !self.is_trusted(client) {
            self.untrusted_forward(headers, peer);
            return Some(client);
        }
        let values: Vec<&str> = headers
            .get_all(&self.header)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let entries = values.iter().flat_map(|v| v.split(',')).collect::<Vec<_>>();
        for entry in entries.iter().rev().take(MAX_HOPS) {
            let Some(ip) = parse_entry(entry) else { break };
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        Some(client)
    }

    /// A forwarded-for header from a peer that is not a trusted proxy is ignored (a client could
    /// have forged it), but it is also the sign of a proxy missing from `TRUSTED_PROXIES` (the
    /// UI, an ingress), whose users would then all count as its one address. Logs a warning the
    /// first time in this process; true when it did.
    fn untrusted_forward(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> bool {
        let Some(peer) = peer.filter(|p| !self.is_trusted(*p)) else {
            return false;
        };
        if !headers.contains_key(&self.header) || self.warned.swap(true, Ordering::Relaxed) {
            return false;
        }
        tracing::warn!(
            %peer,
            header = %self.header,
            "a request carries a forwarded-for header from a peer not in TRUSTED_PROXIES: the \
             header is ignored. If this peer is a proxy (the UI, an ingress), list its address \
             in TRUSTED_PROXIES, or every user behind it counts as its one address for the rate \
             limits (logged once)"
        );
        true
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.proxies.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use crate::config::tests::cfg;

    #[test]
    fn the_address_comes_from_trusted_proxies_only() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let xff = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", v.parse().unwrap());
            h
        };
        let forged = xff("6.6.6.6, 203.0.113.7");
        let direct = TrustedProxies::new(&cfg(&[])).unwrap();
        assert_eq!(
            direct.client_ip(&forged, ip("10.0.0.9")),
            ip("10.0.0.9"),
            "no proxies"
        );

        let l = TrustedProxies::new(&cfg(&["--trusted-proxies", "10.0.0.0/24,192.0.2.1"])).unwrap();
        // A client talking to the API directly cannot choose its address.
        assert_eq!(l.client_ip(&forged, ip("198.51.100.4")), ip("198.51.100.4"));
        // Through the UI (10.0.0.9): the entry it appended, not the one the client forged.
        assert_eq!(l.client_ip(&forged, ip("10.0.0.9")), ip("203.0.113.7"));
        // Browser -> ingress (192.0.2.1) -> UI -> API: past both trusted hops.
        let chain = xff("6.6.6.6, 203.0.113.7, 192.0.2.1");
        assert_eq!(l.client_ip(&chain, ip("10.0.0.9")), ip("203.0.113.7"));
        // Several header lines are one list; ports and IPv4-mapped peers are understood.
        let mut lines = xff("203.0.113.8:4711");
        lines.append("x-forwarded-for", "10.0.0.3".parse().unwrap());
        assert_eq!(
            l.client_ip(&lines, ip("::ffff:10.0.0.9")),
            ip("203.0.113.8")
        );
        // Nothing forwarded, or garbage: the proxy itself (never the client's choice).
        assert_eq!(
            l.client_ip(&HeaderMap::new(), ip("10.0.0.9")),
            ip("10.0.0.9")
        );
        assert_eq!(
            l.client_ip(&xff("6.6.6.6, bogus"), ip("10.0.0.9")),
            ip("10.0.0.9")
        );
        // Another header, when the proxy sets one.
        let real = TrustedProxies::new(&cfg(&[
            "--trusted-proxies",
            "10.0.0.9",
            "--trusted-proxy-header",
            "X-Real-IP",
        ]))
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", "203.0.113.9".parse().unwrap());
        assert_eq!(real.client_ip(&h, ip("10.0.0.9")), ip("203.0.113.9"));
        assert_eq!(real.client_ip(&forged, ip("10.0.0.9")), ip("10.0.0.9"));
    }

    /// Issue 24, finding 7g: with `TRUSTED_PROXIES` unset, every user behind the UI counted
    /// as the UI's one address, silently. A forwarded-for header from a peer that is not a
    /// trusted proxy is that misconfiguration (or a client forging it): it is reported, once.
    #[test]
    fn a_forwarded_for_header_from_an_untrusted_peer_is_reported_once() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let mut forwarded = HeaderMap::new();
        forwarded.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
        let unset = TrustedProxies::new(&cfg(&[])).unwrap();
        assert!(!unset.untrusted_forward(&HeaderMap::new(), ip("10.0.0.9")));
        assert!(
            !unset.untrusted_forward(&forwarded, None),
            "no peer (tests)"
        );
        assert!(
            unset.untrusted_forward(&forwarded, ip("10.0.0.9")),
            "reported"
        );
        assert!(!unset.untrusted_forward(&forwarded, ip("10.0.0.9")), "once");
        let set = TrustedProxies::new(&cfg(&["--trusted-proxies", "10.0.0.9"])).unwrap();
        assert!(
            !set.untrusted_forward(&forwarded, ip("10.0.0.9")),
            "a trusted proxy"
        );
        assert!(
            set.untrusted_forward(&forwarded, ip("10.0.0.8")),
            "another peer"
        );
    }
}
