//! The per-thing request-rate limit of shadow requests: a token bucket per thing, holding at
//! most one second's worth of requests.

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
}
