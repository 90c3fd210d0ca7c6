//! The limits on shadow requests: per thing, a token bucket holding at
//! most one second's worth of requests; per connection, at most ten requests in flight.

use std::collections::HashMap;
use std::time::Instant;

/// Things tracked before idle (full) buckets are forgotten.
const PRUNE_ABOVE: usize = 10_000;

/// Token buckets by thing name.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<String, (f64, Instant)>,
}

impl RateLimiter {
    /// Takes one request's token for `thing` at `now`, at `per_second` requests per second
    /// (0: unlimited). False when the thing is over its rate.
    pub fn allow(&mut self, thing: &str, per_second: u32, now: Instant) -> bool {
        if per_second == 0 {
            return true;
        }
        let capacity = f64::from(per_second);
        if self.buckets.len() > PRUNE_ABOVE {
            self.buckets
                .retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * capacity < capacity);
        }
        let (tokens, at) = self.buckets.entry(thing.to_string()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * capacity).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Shadow requests one connection may have in flight (started, not yet answered), as AWS
/// documents; one more is rejected with 429.
pub const MAX_IN_FLIGHT_PER_CONNECTION: u32 = 10;

/// In-flight shadow requests by connection (client id).
#[derive(Debug, Default)]
pub struct InFlight {
    by_client: HashMap<std::sync::Arc<str>, u32>,
}

impl InFlight {
    /// Starts one request of `client`; false when it already has the most allowed in flight.
    pub fn start(&mut self, client: &std::sync::Arc<str>) -> bool {
        let n = self.by_client.entry(client.clone()).or_insert(0);
        if *n >= MAX_IN_FLIGHT_PER_CONNECTION {
            return false;
        }
        *n += 1;
        true
    }

    /// Ends one started request of `client`.
    pub fn finish(&mut self, client: &str) {
        if let Some(n) = self.by_client.get_mut(client) {
            *n -= 1;
            if *n == 0 {
                self.by_client.remove(client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_thing_gets_its_rate_per_second_and_others_are_unaffected() {
        let mut r = RateLimiter::default();
        let t0 = Instant::now();
        assert!((0..3).all(|_| r.allow("lamp", 3, t0)));
        assert!(!r.allow("lamp", 3, t0));
        assert!(r.allow("fan", 3, t0));
        assert!(r.allow("lamp", 3, t0 + Duration::from_millis(400)));
        assert!(!r.allow("lamp", 3, t0 + Duration::from_millis(400)));
        assert!((0..100).all(|_| r.allow("lamp", 0, t0)), "0 means unlimited");
    }

    #[test]
    fn the_eleventh_request_waits_for_an_answer() {
        let mut f = InFlight::default();
        let a: std::sync::Arc<str> = "a".into();
        let b: std::sync::Arc<str> = "b".into();
        for _ in 0..MAX_IN_FLIGHT_PER_CONNECTION {
            assert!(f.start(&a));
        }
        assert!(!f.start(&a));
        assert!(f.start(&b), "connections are counted apart");
        f.finish("a");
        assert!(f.start(&a));
        for _ in 0..MAX_IN_FLIGHT_PER_CONNECTION {
            f.finish("a");
        }
        f.finish("b");
        assert!(f.by_client.is_empty(), "finished connections are forgotten");
    }
}
