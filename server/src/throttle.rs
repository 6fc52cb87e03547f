//! Limits on guessing, per client address: failed sign-ins, portal link redemptions, and failed bearer tokens.
//! Past a limit the client is answered 429 with `Retry-After`; after too many failures, every request it makes
//! is, right credentials or wrong, until the limit refills, so a guesser learns nothing from the answers.
//! Addresses are forgotten once their limit is full again, so the tables stay small.
//!
//! Which address is the client's: the connection's peer, unless the peer is one of the `TrustedProxies`, whose
//! `X-Forwarded-For` then names it (`TrustedProxies::client_address`). The listener resolves it once per request
//! and hands it on as a `ClientAddress` extension.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

/// Failed sign-ins per client address and minute before the address is refused altogether.
pub const SIGN_INS_PER_MINUTE: u32 = 10;
/// Portal link redemptions per client address and minute.
pub const PORTAL_LINKS_PER_MINUTE: u32 = 30;
/// Failed bearer tokens per client address and minute before the address is refused altogether.
pub const BEARER_FAILURES_PER_MINUTE: u32 = 10;
/// The header in which each reverse proxy appends the address it was connected from.
const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// Most addresses (or other keys) refused at once; past it the oldest refusals are forgotten first.
const MAX_REFUSED_ADDRESSES: usize = 65_536;

/// How long a refused client should wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for the `Retry-After` header, at least one.
    pub fn seconds(self) -> u64 {
        self.0.as_secs_f64().ceil().max(1.0) as u64
    }

    /// The `Retry-After` header's value.
    pub fn header_value(self) -> axum::http::HeaderValue {
        self.seconds().into()
    }
}

/// Every limit of one server.
pub struct Throttles {
    pub sign_ins: Failures,
    pub portal_links: Attempts,
    pub bearer_tokens: Failures,
}

impl Default for Throttles {
    fn default() -> Self {
        Throttles {
            sign_ins: Failures::per_minute(SIGN_INS_PER_MINUTE),
            portal_links: Attempts::per_minute(PORTAL_LINKS_PER_MINUTE),
            bearer_tokens: Failures::per_minute(BEARER_FAILURES_PER_MINUTE),
        }
    }
}

impl Throttles {
    /// Forgets addresses whose limits are full again; run now and then.
    pub fn forget_idle(&self) {
        self.sign_ins.forget_idle();
        self.portal_links.limiter.retain_recent();
        self.bearer_tokens.forget_idle();
    }
}

/// How often idle addresses are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// A server's throttles, with a task that forgets idle addresses for as long as they are in use.
pub fn start() -> Arc<Throttles> {
    let throttles = Arc::new(Throttles::default());
    let held = Arc::downgrade(&throttles);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(FORGET_EVERY).await;
            let Some(throttles) = held.upgrade() else { break };
            throttles.forget_idle();
        }
    });
    throttles
}

/// The client's address, where the server knows it (the listener serves each request with it).
pub fn client_address(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions.get::<ClientAddress>().and_then(|address| address.0)
}

/// The client's address: a request extension set by the listener, and a handler argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(&parts.extensions)))
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`); none by default, so the header
/// is ignored unless the operator names the proxies in front of the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// `TRUSTED_PROXIES`: addresses (`10.0.0.5`, `::1`) and CIDR ranges (`10.0.0.0/8`), comma-separated; empty
    /// entries are skipped, so an empty list trusts no one.
    pub fn parse(list: &str) -> Result<Self, String> {
        let proxies = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{entry}` is neither an IP address nor a CIDR range (such as 10.0.0.0/8)"))
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies(proxies))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `address` is one of the trusted proxies.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|proxy| proxy.contains(&address))
    }

    /// The client of a request that arrived from `peer`. From a trusted proxy, it is the right-most address in
    /// `X-Forwarded-For` that is not itself a trusted proxy: each proxy appends the address it was connected
    /// from, so everything left of the first untrusted hop was written by the client and could be anything. When
    /// every hop is trusted it is the left-most; without the header, or at an entry that is not an address, it is
    /// the last hop a trusted proxy vouched for. From any other peer the header is ignored.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let hops = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .rev()
            .flat_map(|value| value.to_str().unwrap_or_default().rsplit(','));
        for hop in hops {
            let Some(address) = forwarded_address(hop) else { break };
            client = address;
            if !self.contains(address) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn forwarded_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let address = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|socket| socket.ip()))?;
    Some(address.to_canonical())
}

/// A limit on attempts, each counted.
pub struct Attempts {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl Attempts {
    pub fn per_minute(attempts: u32) -> Self {
        Attempts {
            limiter: RateLimiter::keyed(quota(attempts)),
        }
    }

    /// Counts one attempt from `address`; refused past the limit.
    pub fn attempt(&self, address: IpAddr) -> Result<(), RetryAfter> {
        self.limiter
            .check_key(&address)
            .map_err(|not_until| RetryAfter(not_until.wait_time_from(DefaultClock::default().now())))
    }
}

/// A limit on failures, per client address unless keyed otherwise (an email): past it, every attempt of the key
/// is refused until it refills.
pub struct Failures<K: Hash + Eq + Clone = IpAddr> {
    limiter: DefaultKeyedRateLimiter<K>,
    refused_until: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    pub fn per_minute(failures: u32) -> Self {
        Failures {
            limiter: RateLimiter::keyed(quota(failures)),
            refused_until: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` may try at all now.
    pub fn admit(&self, key: &K) -> Result<(), RetryAfter> {
        let refused = self.refused_until.lock().expect("refusals lock");
        match refused.get(key) {
            Some(until) if *until > Instant::now() => Err(RetryAfter(*until - Instant::now())),
            _ => Ok(()),
        }
    }

    /// Counts a failure of `key`; past the limit the key is refused until the limit refills.
    pub fn failed(&self, key: &K) -> Result<(), RetryAfter> {
        let Err(not_until) = self.limiter.check_key(key) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut refused = self.refused_until.lock().expect("refusals lock");
        if refused.len() >= MAX_REFUSED_ADDRESSES {
            let now = Instant::now();
            refused.retain(|_, until| *until > now);
            if refused.len() >= MAX_REFUSED_ADDRESSES {
                if let Some(oldest) = refused
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(key, _)| key.clone())
                {
                    refused.remove(&oldest);
                }
            }
        }
        refused.insert(key.clone(), Instant::now() + wait);
        Err(RetryAfter(wait))
    }

    /// Forgets keys whose limits are full again; run now and then.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        let now = Instant::now();
        self.refused_until
            .lock()
            .expect("refusals lock")
            .retain(|_, until| *until > now);
    }
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute.max(1)).expect("at least one"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn attempts_past_the_limit_are_refused_for_that_address_only() {
        let portal_links = Attempts::per_minute(3);
        for _ in 0..3 {
            assert_eq!(portal_links.attempt(HERE), Ok(()));
        }
        let refused = portal_links.attempt(HERE).unwrap_err();
        assert!(
            refused.0 > Duration::ZERO && refused.0 <= Duration::from_secs(20),
            "{refused:?}"
        );
        assert!((1..=20).contains(&refused.seconds()));
        assert_eq!(portal_links.attempt(THERE), Ok(()));
    }

    #[test]
    fn past_the_failure_limit_an_address_is_refused_even_before_it_tries() {
        let bearers = Failures::per_minute(2);
        assert_eq!(bearers.admit(&HERE), Ok(()));
        assert_eq!(bearers.failed(&HERE), Ok(()));
        assert_eq!(bearers.failed(&HERE), Ok(()));
        assert!(bearers.failed(&HERE).is_err());
        assert!(bearers.admit(&HERE).is_err(), "refused whatever it sends next");
        assert_eq!(bearers.admit(&THERE), Ok(()));
    }

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.join(",")).unwrap()
    }

    fn forwarded_for(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(X_FORWARDED_FOR, value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn proxies_are_addresses_or_cidr_ranges_and_anything_else_is_refused() {
        let trusted = proxies(&["10.0.0.0/8", " 192.0.2.1 ", "2001:db8::/32"]);
        assert!(trusted.contains(ip("10.20.30.40")));
        assert!(trusted.contains(ip("192.0.2.1")));
        assert!(!trusted.contains(ip("192.0.2.2")));
        assert!(trusted.contains(ip("2001:db8::7")));
        assert!(
            trusted.contains(ip("::ffff:10.1.2.3")),
            "an IPv4 peer on an IPv6 socket"
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("10.0.0.1,proxy.internal")
            .unwrap_err()
            .contains("`proxy.internal`"));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse(" , ").unwrap().is_empty());
        assert_eq!(TrustedProxies::parse("10.0.0.1,").unwrap(), proxies(&["10.0.0.1"]));
        assert!(TrustedProxies::default().is_empty());
    }

    #[test]
    fn the_header_is_ignored_from_a_peer_that_is_not_a_trusted_proxy() {
        let headers = forwarded_for(&["203.0.113.7"]);
        assert_eq!(
            TrustedProxies::default().client_address(ip("198.51.100.1"), &headers),
            ip("198.51.100.1")
        );
        assert_eq!(
            proxies(&["10.0.0.1"]).client_address(ip("10.0.0.2"), &headers),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn from_a_trusted_proxy_the_client_is_the_right_most_untrusted_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        // The client wrote the first entry itself; the proxies appended the rest.
        let headers = forwarded_for(&["1.1.1.1, 203.0.113.7, 10.0.0.9"]);
        assert_eq!(trusted.client_address(peer, &headers), ip("203.0.113.7"));
        // Several headers read as one list, in order.
        let headers = forwarded_for(&["1.1.1.1", "203.0.113.7:4711", "10.0.0.9"]);
        assert_eq!(trusted.client_address(peer, &headers), ip("203.0.113.7"));
        let headers = forwarded_for(&["[2001:db8::1]:443"]);
        assert_eq!(trusted.client_address(peer, &headers), ip("2001:db8::1"));
    }

    #[test]
    fn without_a_usable_header_the_client_is_the_last_hop_a_trusted_proxy_vouched_for() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        assert_eq!(trusted.client_address(peer, &HeaderMap::new()), peer);
        assert_eq!(trusted.client_address(peer, &forwarded_for(&["garbage"])), peer);
        assert_eq!(
            trusted.client_address(peer, &forwarded_for(&["203.0.113.7, unknown, 10.0.0.9"])),
            ip("10.0.0.9")
        );
        assert_eq!(
            trusted.client_address(peer, &forwarded_for(&["10.0.0.7, 10.0.0.9"])),
            ip("10.0.0.7"),
            "every hop trusted: the left-most"
        );
    }
}
