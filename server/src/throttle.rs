//! Limits on guessing, per client address: sign-in attempts, portal link redemptions, and failed bearer tokens.
//! Past a limit the client is answered 429 with `Retry-After`; for bearer tokens, every request it makes is,
//! right token or wrong, until the limit refills, so a guesser learns nothing from the answers. Addresses are
//! forgotten once their limit is full again, so the tables stay small.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Sign-in attempts per client address and minute.
pub const SIGN_INS_PER_MINUTE: u32 = 10;
/// Portal link redemptions per client address and minute.
pub const PORTAL_LINKS_PER_MINUTE: u32 = 30;
/// Failed bearer tokens per client address and minute before the address is refused altogether.
pub const BEARER_FAILURES_PER_MINUTE: u32 = 10;
/// Most addresses refused at once; past it the oldest refusals are forgotten first.
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
    pub sign_ins: Attempts,
    pub portal_links: Attempts,
    pub bearer_tokens: Failures,
}

impl Default for Throttles {
    fn default() -> Self {
        Throttles {
            sign_ins: Attempts::per_minute(SIGN_INS_PER_MINUTE),
            portal_links: Attempts::per_minute(PORTAL_LINKS_PER_MINUTE),
            bearer_tokens: Failures::per_minute(BEARER_FAILURES_PER_MINUTE),
        }
    }
}

impl Throttles {
    /// Forgets addresses whose limits are full again; run now and then.
    pub fn forget_idle(&self) {
        self.sign_ins.limiter.retain_recent();
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

/// The client's address, where the server knows it (it is served with its connection's address).
pub fn client_address(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// `client_address` as a handler argument.
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(&parts.extensions)))
    }
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

/// A limit on failures: past it, every request from the address is refused until it refills.
pub struct Failures {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    refused_until: Mutex<HashMap<IpAddr, Instant>>,
}

impl Failures {
    pub fn per_minute(failures: u32) -> Self {
        Failures {
            limiter: RateLimiter::keyed(quota(failures)),
            refused_until: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `address` may try at all now.
    pub fn admit(&self, address: IpAddr) -> Result<(), RetryAfter> {
        let refused = self.refused_until.lock().expect("refusals lock");
        match refused.get(&address) {
            Some(until) if *until > Instant::now() => Err(RetryAfter(*until - Instant::now())),
            _ => Ok(()),
        }
    }

    /// Counts a failure from `address`; past the limit the address is refused until the limit refills.
    pub fn failed(&self, address: IpAddr) -> Result<(), RetryAfter> {
        let Err(not_until) = self.limiter.check_key(&address) else {
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
                    .map(|(address, _)| *address)
                {
                    refused.remove(&oldest);
                }
            }
        }
        refused.insert(address, Instant::now() + wait);
        Err(RetryAfter(wait))
    }

    fn forget_idle(&self) {
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
        let sign_ins = Attempts::per_minute(3);
        for _ in 0..3 {
            assert_eq!(sign_ins.attempt(HERE), Ok(()));
        }
        let refused = sign_ins.attempt(HERE).unwrap_err();
        assert!(
            refused.0 > Duration::ZERO && refused.0 <= Duration::from_secs(20),
            "{refused:?}"
        );
        assert!((1..=20).contains(&refused.seconds()));
        assert_eq!(sign_ins.attempt(THERE), Ok(()));
    }

    #[test]
    fn past_the_failure_limit_an_address_is_refused_even_before_it_tries() {
        let bearers = Failures::per_minute(2);
        assert_eq!(bearers.admit(HERE), Ok(()));
        assert_eq!(bearers.failed(HERE), Ok(()));
        assert_eq!(bearers.failed(HERE), Ok(()));
        assert!(bearers.failed(HERE).is_err());
        assert!(bearers.admit(HERE).is_err(), "refused whatever it sends next");
        assert_eq!(bearers.admit(THERE), Ok(()));
    }
}
