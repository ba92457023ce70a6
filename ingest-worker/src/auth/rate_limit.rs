//! Per-client token bucket for failed stream-key attempts.
//!
//! Pure: the caller passes `now`, so tests drive time by hand. A client that runs out of tokens
//! is refused before its key is even looked at, which makes guessing keys cost real time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Upper bound on tracked clients, so a flood of addresses cannot grow the map without limit.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// Counts failed key attempts per client address.
///
/// IPv6 clients are grouped by their /64 prefix: one host usually owns a whole /64 and could
/// otherwise get a fresh bucket per address.
#[derive(Debug)]
pub struct FailedAttemptLimiter {
    burst: u32,
    interval: Duration,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    /// When `tokens` was last brought up to date; refills are counted from here.
    refilled_at: Instant,
}

impl FailedAttemptLimiter {
    /// `burst` failures are allowed at once; after that one more per `interval`.
    pub fn new(burst: u32, interval: Duration) -> Self {
        Self {
            burst: burst.max(1),
            interval: interval.max(Duration::from_millis(1)),
            buckets: HashMap::new(),
        }
    }

    /// Whether `client` may try a key now.
    pub fn is_allowed(&mut self, client: IpAddr, now: Instant) -> bool {
        let client = bucket_address(client);
        match self.buckets.get_mut(&client) {
            None => true,
            Some(bucket) => {
                refill(bucket, self.burst, self.interval, now);
                bucket.tokens > 0
            }
        }
    }

    /// Records one failed attempt by `client`.
    pub fn handle_failure(&mut self, client: IpAddr, now: Instant) {
        let client = bucket_address(client);
        if !self.buckets.contains_key(&client) && self.buckets.len() >= MAX_TRACKED_CLIENTS {
            self.evict_refilled(now);
        }
        let (burst, interval) = (self.burst, self.interval);
        let bucket = self.buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            refilled_at: now,
        });
        refill(bucket, burst, interval, now);
        bucket.tokens = bucket.tokens.saturating_sub(1);
    }

    /// Forgets clients whose bucket is full again (they are indistinguishable from new ones);
    /// if that frees nothing, forgets the fullest bucket so the map stays bounded.
    fn evict_refilled(&mut self, now: Instant) {
        let (burst, interval) = (self.burst, self.interval);
        self.buckets.retain(|_, bucket| {
            refill(bucket, burst, interval, now);
            bucket.tokens < burst
        });
        if self.buckets.len() >= MAX_TRACKED_CLIENTS {
            let fullest = self
                .buckets
                .iter()
                .max_by_key(|(_, b)| b.tokens)
                .map(|(ip, _)| *ip);
            if let Some(ip) = fullest {
                self.buckets.remove(&ip);
            }
        }
    }
}

fn refill(bucket: &mut Bucket, burst: u32, interval: Duration, now: Instant) {
    let elapsed = now.saturating_duration_since(bucket.refilled_at);
    let earned = elapsed.as_nanos() / interval.as_nanos();
    if earned == 0 {
        return;
    }
    let earned = u32::try_from(earned).unwrap_or(u32::MAX);
    bucket.tokens = bucket.tokens.saturating_add(earned).min(burst);
    bucket.refilled_at = if bucket.tokens == burst {
        now
    } else {
        // Keep the fractional progress towards the next token.
        bucket.refilled_at + interval * earned
    };
}

fn bucket_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn burst_then_one_per_interval() {
        let start = Instant::now();
        let mut limiter = FailedAttemptLimiter::new(3, 10 * SECOND);
        let client = ip("192.0.2.7");
        for _ in 0..3 {
            assert!(limiter.is_allowed(client, start));
            limiter.handle_failure(client, start);
        }
        assert!(!limiter.is_allowed(client, start));
        assert!(!limiter.is_allowed(client, start + 9 * SECOND));
        assert!(limiter.is_allowed(client, start + 10 * SECOND));
        limiter.handle_failure(client, start + 10 * SECOND);
        assert!(!limiter.is_allowed(client, start + 15 * SECOND));
        // The next token arrives one interval after the previous one.
        assert!(limiter.is_allowed(client, start + 20 * SECOND));
        // A long pause refills to the burst, not beyond.
        let later = start + 1000 * SECOND;
        for _ in 0..3 {
            assert!(limiter.is_allowed(client, later));
            limiter.handle_failure(client, later);
        }
        assert!(!limiter.is_allowed(client, later));
    }

    #[test]
    fn clients_are_independent() {
        let now = Instant::now();
        let mut limiter = FailedAttemptLimiter::new(1, 60 * SECOND);
        limiter.handle_failure(ip("192.0.2.1"), now);
        assert!(!limiter.is_allowed(ip("192.0.2.1"), now));
        assert!(limiter.is_allowed(ip("192.0.2.2"), now));
    }

    #[test]
    fn ipv6_is_limited_per_64_prefix() {
        let now = Instant::now();
        let mut limiter = FailedAttemptLimiter::new(1, 60 * SECOND);
        limiter.handle_failure(ip("2001:db8:1:2::1"), now);
        assert!(!limiter.is_allowed(ip("2001:db8:1:2:ffff::9"), now));
        assert!(limiter.is_allowed(ip("2001:db8:1:3::1"), now));
        // An IPv4-mapped address shares the IPv4 bucket.
        limiter.handle_failure(ip("192.0.2.9"), now);
        assert!(!limiter.is_allowed(ip("::ffff:192.0.2.9"), now));
    }

    #[test]
    fn tracked_clients_stay_bounded() {
        let now = Instant::now();
        let mut limiter = FailedAttemptLimiter::new(2, 60 * SECOND);
        for n in 0..(MAX_TRACKED_CLIENTS as u32 + 50) {
            limiter.handle_failure(IpAddr::V4(n.into()), now);
        }
        assert!(limiter.buckets.len() <= MAX_TRACKED_CLIENTS);
    }
}
