//! Who is posting: the client address (the socket peer, or a trusted proxy's header), the
//! optional allow-list of SePay's source addresses, and the limits on failed authentication:
//! per source (an IPv6 source is its /64, which one host usually holds whole) and for all
//! sources together, so a flood spread over many addresses is limited too. Only failures
//! count, so honest SePay traffic is never limited.

use axum::http::{HeaderMap, HeaderName};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

/// SePay's documented source addresses (`INGRESS_SOURCE_ALLOWLIST=sepay`).
pub const SEPAY_SOURCE_ADDRESSES: [&str; 6] = [
    "172.236.138.20",
    "172.233.83.68",
    "171.244.35.2",
    "151.158.108.68",
    "151.158.109.79",
    "103.255.238.139",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GuardConfigError {
    #[error("INGRESS_SOURCE_ALLOWLIST: {0:?} is not an address, a network or `sepay`")]
    Allowlist(String),
    #[error("INGRESS_CLIENT_IP_HEADER: {0:?} is not a header name")]
    Header(String),
    #[error(
        "INGRESS_SOURCE_ALLOWLIST needs INGRESS_CLIENT_IP_HEADER behind a proxy, or INGRESS_TRUST_SOCKET_ADDRESS=true"
    )]
    AllowlistWithoutClientAddress,
}

pub struct SourceGuard {
    client_ip_header: Option<HeaderName>,
    allowlist: Option<Vec<IpNet>>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    all_failures: DefaultDirectRateLimiter,
}

pub struct GuardSettings<'a> {
    pub client_ip_header: Option<&'a str>,
    pub allowlist: Option<&'a str>,
    /// The socket peer is SePay itself (no proxy in front): the allow-list may use it.
    pub trust_socket_address: bool,
    pub failures_per_sec: u32,
    pub failure_burst: u32,
    /// Failed authentications per second from all sources together (the burst is one second's).
    pub global_failures_per_sec: u32,
}

impl SourceGuard {
    pub fn new(s: &GuardSettings<'_>) -> Result<Self, GuardConfigError> {
        let client_ip_header = s
            .client_ip_header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| HeaderName::try_from(h).map_err(|_| GuardConfigError::Header(h.to_owned())))
            .transpose()?;
        let allowlist = match s.allowlist.map(str::trim).filter(|a| !a.is_empty()) {
            None => None,
            Some(list) => Some(parse_allowlist(list)?),
        };
        // behind a proxy the socket peer is the proxy: filtering on it would refuse everyone
        if allowlist.is_some() && client_ip_header.is_none() && !s.trust_socket_address {
            return Err(GuardConfigError::AllowlistWithoutClientAddress);
        }
        let per_sec = NonZeroU32::new(s.failures_per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(s.failure_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let global = NonZeroU32::new(s.global_failures_per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            client_ip_header,
            allowlist,
            failures: RateLimiter::keyed(Quota::per_second(per_sec).allow_burst(burst)),
            all_failures: RateLimiter::direct(Quota::per_second(global)),
        })
    }

    /// The client's address: the last entry of the trusted proxy's header (the one it added),
    /// else the socket peer.
    pub fn client_ip(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        self.client_ip_header
            .as_ref()
            .and_then(|name| headers.get_all(name).iter().next_back())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| peer.ip())
    }

    pub fn allowed(&self, ip: IpAddr) -> bool {
        self.allowlist
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|n| n.contains(&ip)))
    }

    /// Counts one failed authentication; `true` when its source, or all sources together, are
    /// over their limit.
    pub fn over_failure_limit(&self, ip: IpAddr) -> bool {
        self.failures.check_key(&failure_bucket(ip)).is_err() || self.all_failures.check().is_err()
    }

    /// Forgets addresses whose failures are long past (bounded memory under a spread flood).
    pub fn forget_idle(&self) {
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
    }
}

/// The key failures are counted under: an IPv4 address (also when written IPv4-mapped), or an
/// IPv6 address's /64, since a single host commonly holds a whole /64.
fn failure_bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

fn parse_allowlist(list: &str) -> Result<Vec<IpNet>, GuardConfigError> {
    let mut nets = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if item.eq_ignore_ascii_case("sepay") {
            nets.extend(
                SEPAY_SOURCE_ADDRESSES
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .map(IpNet::from),
            );
            continue;
        }
        let net = item
            .parse::<IpNet>()
            .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| GuardConfigError::Allowlist(item.to_owned()))?;
        nets.push(net);
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(header: Option<&'a str>, allowlist: Option<&'a str>, trust: bool) -> GuardSettings<'a> {
        GuardSettings {
            client_ip_header: header,
            allowlist,
            trust_socket_address: trust,
            failures_per_sec: 1,
            failure_burst: 3,
            global_failures_per_sec: 1000,
        }
    }

    fn peer() -> SocketAddr {
        "10.0.0.9:5555".parse().unwrap()
    }

    #[test]
    fn the_client_address_comes_from_the_trusted_header_only() {
        let direct = SourceGuard::new(&settings(None, None, false)).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 172.236.138.20".parse().unwrap());
        assert_eq!(
            direct.client_ip(&headers, peer()),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
        let proxied = SourceGuard::new(&settings(Some("X-Forwarded-For"), None, false)).unwrap();
        // the proxy appends the address it saw: the last entry, never one the client wrote
        assert_eq!(
            proxied.client_ip(&headers, peer()),
            "172.236.138.20".parse::<IpAddr>().unwrap()
        );
        headers.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(proxied.client_ip(&headers, peer()), peer().ip());
    }

    #[test]
    fn allowlists() {
        let cases: [(Option<&str>, bool, &str, bool); 6] = [
            (None, false, "8.8.8.8", true),
            (Some("sepay"), true, "172.233.83.68", true),
            (Some("sepay"), true, "8.8.8.8", false),
            (Some("10.0.0.0/8, 2001:db8::1"), true, "10.1.2.3", true),
            (Some("10.0.0.0/8, 2001:db8::1"), true, "2001:db8::1", true),
            (Some("10.0.0.0/8"), true, "11.0.0.1", false),
        ];
        for (list, trust, ip, allowed) in cases {
            let guard = SourceGuard::new(&settings(None, list, trust)).unwrap();
            assert_eq!(guard.allowed(ip.parse().unwrap()), allowed, "{list:?} {ip}");
        }
        assert_eq!(
            SourceGuard::new(&settings(None, Some("sepay"), false)).err(),
            Some(GuardConfigError::AllowlistWithoutClientAddress)
        );
        assert_eq!(
            SourceGuard::new(&settings(Some("x-real-ip"), Some("nonsense"), false)).err(),
            Some(GuardConfigError::Allowlist("nonsense".into()))
        );
        assert!(SourceGuard::new(&settings(Some("bad header\n"), None, false)).is_err());
    }

    #[test]
    fn failures_are_limited_per_address() {
        let guard = SourceGuard::new(&settings(None, None, false)).unwrap();
        let attacker: IpAddr = "6.6.6.6".parse().unwrap();
        let other: IpAddr = "7.7.7.7".parse().unwrap();
        let over: Vec<bool> = (0..5).map(|_| guard.over_failure_limit(attacker)).collect();
        assert_eq!(over, [false, false, false, true, true], "a burst of 3, then limited");
        assert!(!guard.over_failure_limit(other), "another address has its own budget");
    }

    #[test]
    fn an_ipv6_source_is_its_slash_64() {
        let guard = SourceGuard::new(&settings(None, None, false)).unwrap();
        // one host rotating through its /64: one budget
        let over: Vec<bool> = (1..=5)
            .map(|i| guard.over_failure_limit(format!("2001:db8:1:2::{i:x}").parse().unwrap()))
            .collect();
        assert_eq!(over, [false, false, false, true, true]);
        assert!(
            !guard.over_failure_limit("2001:db8:1:3::1".parse().unwrap()),
            "the next /64"
        );
        // an IPv4-mapped address counts as the IPv4 address
        let guard = SourceGuard::new(&settings(None, None, false)).unwrap();
        for _ in 0..3 {
            assert!(!guard.over_failure_limit("::ffff:6.6.6.6".parse().unwrap()));
        }
        assert!(guard.over_failure_limit("6.6.6.6".parse().unwrap()));
    }

    #[test]
    fn failures_spread_over_many_addresses_meet_the_global_budget() {
        let guard = SourceGuard::new(&GuardSettings {
            global_failures_per_sec: 50,
            ..settings(None, None, false)
        })
        .unwrap();
        // 9,302 loopback addresses, one failure each: each is within its own budget
        let limited = (0..9302u32)
            .filter(|i| guard.over_failure_limit(IpAddr::from([127, (i >> 16) as u8, (i >> 8) as u8, *i as u8])))
            .count();
        assert!(
            limited >= 9302 - 60,
            "only about a second's global budget gets through: {limited} limited"
        );
    }
}
