//! Cache policies: the one a model declares (`#[model(cache(ttl = "5m", jitter = "30s",
//! negative_ttl = "10s", max_entry_bytes = 65536))]`, [`CachePolicy`]), per-call overrides
//! ([`PolicyOverride`]), and the randomised TTL each written entry gets.

use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use crate::schema::CachePolicy;

/// Changes to a model's declared policy for one call (`User::cached(&db).ttl(..).get(..)`).
/// Fields left `None` keep the declared value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyOverride {
    /// Another entry lifetime.
    pub ttl: Option<Duration>,
    /// Another jitter.
    pub jitter: Option<Duration>,
    /// `Some(None)` turns negative caching off, `Some(Some(d))` caches misses for `d`.
    pub negative_ttl: Option<Option<Duration>>,
    /// `Some(None)` lifts the size limit, `Some(Some(n))` sets it.
    pub max_entry_bytes: Option<Option<usize>>,
}

impl PolicyOverride {
    /// `policy` with these overrides applied.
    pub fn apply(&self, policy: CachePolicy) -> CachePolicy {
        CachePolicy {
            ttl: self.ttl.unwrap_or(policy.ttl),
            jitter: self.jitter.unwrap_or(policy.jitter),
            negative_ttl: self.negative_ttl.unwrap_or(policy.negative_ttl),
            max_entry_bytes: self.max_entry_bytes.unwrap_or(policy.max_entry_bytes),
        }
    }
}

/// The lifetime of one entry written now: `ttl` plus a random part of `jitter`, so entries
/// written together do not all expire (and reload) together.
pub fn entry_ttl(policy: &CachePolicy) -> Duration {
    policy.ttl + random_part(policy.jitter)
}

/// A uniformly random duration in `0..=max` (millisecond resolution).
pub fn random_part(max: Duration) -> Duration {
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(random_u64() % (ms + 1))
}

/// A random number from the standard library's per-process random hasher keys and a counter:
/// good enough to spread expiry times, not for anything secret.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let policy = CachePolicy {
            ttl: Duration::from_secs(60),
            jitter: Duration::from_secs(10),
            negative_ttl: None,
            max_entry_bytes: None,
        };
        let ttls: Vec<Duration> = (0..200).map(|_| entry_ttl(&policy)).collect();
        assert!(ttls.iter().all(|t| *t >= Duration::from_secs(60) && *t <= Duration::from_secs(70)));
        assert!(ttls.iter().any(|t| *t != ttls[0]));
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let policy = CachePolicy {
            ttl: Duration::from_secs(60),
            jitter: Duration::ZERO,
            negative_ttl: Some(Duration::from_secs(5)),
            max_entry_bytes: Some(10),
        };
        let o = PolicyOverride { ttl: Some(Duration::from_secs(1)), negative_ttl: Some(None), ..Default::default() };
        let p = o.apply(policy);
        assert_eq!(p.ttl, Duration::from_secs(1));
        assert_eq!(p.negative_ttl, None);
        assert_eq!(p.max_entry_bytes, Some(10));
    }
}
