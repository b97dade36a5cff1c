//! Leased fills: how a read that missed stores what it loaded without ever storing a value
//! older than a write that committed meanwhile.
//!
//! 0. A read first sends one plain `MGET` of the generation key and the keys: when every key
//!    holds something (a value or another reader's lease), that is the answer — a hit costs
//!    one round trip and no script. (A cluster backend may send this probe to replicas; one
//!    that shows an older generation than this process has seen is ignored.)
//! 1. Otherwise the read asks the backend for the keys ([`CacheBackend::read_leasing`](super::CacheBackend::read_leasing)):
//!    each key that holds nothing gets the reader's *lease* marker (a random token), in the
//!    same atomic step; the namespace's generation comes back in the same round trip.
//! 2. The reader loads the database.
//! 3. It stores the row (or "no such row") only where its marker is still in place
//!    ([`CacheBackend::fill`](super::CacheBackend::fill)), atomically.
//!
//! A write deletes the key *after* it committed. If that happens after step 1, the marker is
//! gone and step 3 stores nothing; if before, step 2 started after the commit and read the new
//! row. Either way the value stored is at least as new as every write invalidated before the
//! fill. The same holds for negative entries and unique lookups.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::backend::Fill;
use super::codec;
use super::keys::KeyScheme;
use super::{Cache, CacheStats};

/// A fresh lease marker (128 random bits).
pub(crate) fn new_lease() -> Vec<u8> {
    let token = (u128::from(super::policy::random_u64()) << 64) | u128::from(super::policy::random_u64());
    codec::encode_lease(token)
}

/// What a leased read found under one key.
#[derive(Debug)]
pub(crate) enum Found {
    /// A value (a row, an absence, a lookup — or something corrupt).
    Value(Vec<u8>),
    /// Another reader holds the key's lease: read the database, do not fill.
    Busy,
    /// Nothing was there; our lease is: read the database, then fill.
    Leased,
}

/// Reads the keys `make` builds (with the current generation), leasing the empty ones.
/// Retries when the backend's generation is newer than ours; `None` when the cache cannot be
/// used (breaker open, failure, or a generation that went back).
pub(crate) async fn read(
    cache: &Cache,
    make: impl Fn(&KeyScheme) -> Vec<String>,
    lease: &[u8],
) -> Option<(Vec<String>, Vec<Found>)> {
    let gkey = cache.keys().generation_key();
    for _ in 0..3 {
        let keys = make(cache.keys());
        let backend = &cache.inner.backend;
        // Hits first: one plain `MGET` of the generation and the keys (no script, one round
        // trip). Only when a key holds nothing is the leasing script sent.
        let mut probe = Vec::with_capacity(keys.len() + 1);
        probe.push(gkey.clone());
        probe.extend(keys.iter().cloned());
        // A backend reading replicas may answer from one that has not seen the latest
        // generation: then the masters decide (the leasing read below), not "data was lost".
        let mut got = cache.guard("get", backend.probe(&probe)).await?;
        let guard = if got.is_empty() { None } else { got.remove(0) };
        let lagging = backend.probes_replicas() && cache.generation_behind(guard.as_deref());
        if !lagging {
            if !cache.check_generation(guard.as_deref()) {
                if !cache.is_available() {
                    return None;
                }
                continue;
            }
            if got.len() == keys.len() && got.iter().all(Option::is_some) {
                return Some((keys, got.into_iter().map(classify).collect()));
            }
        }
        let leased = cache.guard("get", backend.read_leasing(&gkey, &keys, lease, cache.inner.lease_ttl)).await?;
        if cache.check_generation(leased.guard.as_deref()) {
            let found = leased.values.into_iter().map(classify).collect();
            return Some((keys, found));
        }
        if !cache.is_available() {
            return None;
        }
    }
    None
}

/// What a key's value means to a reader: `None` is a lease just taken (by the leasing read).
fn classify(value: Option<Vec<u8>>) -> Found {
    match value {
        None => Found::Leased,
        Some(b) if codec::is_lease(&b) => Found::Busy,
        Some(b) => Found::Value(b),
    }
}

/// One fill of a leased key: `value` with its lifetime, or `None` to release the lease.
pub(crate) fn fill(key: String, lease: &[u8], value: Option<(Vec<u8>, Duration)>) -> Fill {
    match value {
        Some((value, ttl)) => Fill { key, lease: lease.to_vec(), value: Some(value), ttl },
        None => Fill { key, lease: lease.to_vec(), value: None, ttl: Duration::from_millis(1) },
    }
}

/// Sends fills; counts those a write's invalidation refused.
pub(crate) async fn store(cache: &Cache, fills: Vec<Fill>) {
    if fills.is_empty() {
        return;
    }
    let wanted = fills.iter().filter(|f| f.value.is_some()).count() as u64;
    if let Some(stored) = cache.guard("fill", cache.inner.backend.fill(fills)).await {
        let stats = &cache.inner.stats;
        CacheStats::add(&stats.fills, stored);
        if wanted > stored {
            stats.refused_fills.fetch_add(wanted - stored, Ordering::Relaxed);
        }
    }
}
