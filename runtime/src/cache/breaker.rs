//! The circuit breaker in front of a cache backend. After one failed operation no caller waits
//! on the backend any more: operations are skipped (reads go to the database, writes record
//! that an invalidation was lost) until a background probe — a `PING` after an exponentially
//! growing back-off — finds the backend answering. If an invalidation was lost meanwhile, the
//! probe first advances the cache's generation (the *fence*, see `mod.rs`), and only then
//! closes the breaker.
//!
//! States: `Closed` (use the backend) → `Open` (skip it until `retry_at`) → `Probing` (one
//! probe in flight, everyone else still skips) → `Closed` or `Open` with a doubled back-off.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    Open { retry_at: Instant, backoff: Duration },
    Probing { backoff: Duration },
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// An invalidation was not delivered: the generation must advance before the cache is
    /// used again.
    owed_fence: bool,
}

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Use the backend.
    Pass,
    /// Skip it, and start the probe (this caller is the first after the back-off).
    Probe,
    /// Skip it.
    Skip,
}

/// The breaker of one cache (shared by its clones).
#[derive(Debug)]
pub(crate) struct Breaker {
    inner: Mutex<Inner>,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl Breaker {
    pub(crate) fn new(min_backoff: Duration, max_backoff: Duration) -> Self {
        Breaker {
            inner: Mutex::new(Inner { state: State::Closed, owed_fence: false }),
            min_backoff,
            max_backoff: max_backoff.max(min_backoff),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an operation may use the backend now.
    pub(crate) fn admit(&self) -> Admit {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => Admit::Pass,
            State::Open { retry_at, backoff } if Instant::now() >= retry_at => {
                inner.state = State::Probing { backoff };
                Admit::Probe
            }
            _ => Admit::Skip,
        }
    }

    /// A backend operation failed: open (or keep open). With `lost_invalidation`, a fence is
    /// owed. Returns whether the breaker was closed before (the caller logs the transition).
    pub(crate) fn trip(&self, lost_invalidation: bool) -> bool {
        let mut inner = self.lock();
        inner.owed_fence |= lost_invalidation;
        let (was_closed, backoff) = match inner.state {
            State::Closed => (true, self.min_backoff),
            State::Open { backoff, .. } | State::Probing { backoff } => (false, backoff),
        };
        inner.state = State::Open { retry_at: Instant::now() + backoff, backoff };
        was_closed
    }

    /// An invalidation was skipped because the breaker is open: a fence is owed. A probe in
    /// flight must not close the breaker without it, so the state goes back to `Open`
    /// (retrying at once).
    pub(crate) fn owe_fence(&self) {
        let mut inner = self.lock();
        inner.owed_fence = true;
        if let State::Probing { backoff } = inner.state {
            inner.state = State::Open { retry_at: Instant::now(), backoff };
        }
    }

    /// Whether a fence is owed.
    pub(crate) fn fence_owed(&self) -> bool {
        self.lock().owed_fence
    }

    /// The fence was made (the generation advanced past `generation`'s entries).
    pub(crate) fn fence_made(&self) {
        self.lock().owed_fence = false;
    }

    /// The probe's verdict. Returns the new state's name when it changed (for the log), or
    /// `None` when something happened meanwhile (a failure or a lost invalidation), in which
    /// case the breaker stays open.
    pub(crate) fn finish_probe(&self, ok: bool) -> Option<&'static str> {
        let mut inner = self.lock();
        let State::Probing { backoff } = inner.state else { return None };
        if ok && !inner.owed_fence {
            inner.state = State::Closed;
            Some("closed")
        } else {
            let backoff = (backoff * 2).min(self.max_backoff);
            inner.state = State::Open { retry_at: Instant::now() + backoff, backoff };
            Some("open")
        }
    }

    /// Whether the breaker is closed (the backend is in use).
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().state == State::Closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_failure_probes_after_the_backoff_and_closes() {
        let b = Breaker::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(b.admit(), Admit::Pass);
        assert!(b.trip(false));
        assert!(!b.trip(false), "already open");
        assert_eq!(b.admit(), Admit::Probe);
        assert_eq!(b.admit(), Admit::Skip, "one probe at a time");
        assert_eq!(b.finish_probe(true), Some("closed"));
        assert_eq!(b.admit(), Admit::Pass);
    }

    #[test]
    fn a_lost_invalidation_keeps_it_open_until_the_fence_is_made() {
        let b = Breaker::new(Duration::ZERO, Duration::from_secs(1));
        b.trip(false);
        assert_eq!(b.admit(), Admit::Probe);
        b.owe_fence(); // a write skipped its invalidation while the probe ran
        assert_eq!(b.finish_probe(true), None, "the probe's verdict is stale");
        assert_eq!(b.admit(), Admit::Probe);
        assert!(b.fence_owed());
        assert_eq!(b.finish_probe(true), Some("open"), "no closing with a fence owed");
        b.fence_made();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(b.admit(), Admit::Probe);
        assert_eq!(b.finish_probe(true), Some("closed"));
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let b = Breaker::new(Duration::from_millis(10), Duration::from_millis(25));
        b.trip(false);
        for expected in [20, 25, 25] {
            std::thread::sleep(Duration::from_millis(30));
            assert_eq!(b.admit(), Admit::Probe);
            b.finish_probe(false);
            let State::Open { backoff, .. } = b.lock().state else { panic!("open") };
            assert_eq!(backoff, Duration::from_millis(expected));
        }
    }
}
