//! [`retry`]: run an operation again when it failed with a transient error.

use std::future::Future;
use std::time::Duration;

#[cfg(test)]
use crate::error::Error;
use crate::error::Result;

/// How [`retry`] retries: at most `max_attempts` runs in all, waiting between them an
/// exponentially growing delay (`base_delay`, doubled after each failure, capped at
/// `max_delay`) of which a random part ("full jitter": a delay drawn between half the step and
/// the whole) keeps many clients that failed together from retrying together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Runs in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The delay after the first failure.
    pub base_delay: Duration,
    /// The longest delay between two runs.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts; 20 ms, 40 ms, 80 ms, 160 ms between them (each between half and all of
    /// that), at most 1 s.
    fn default() -> Self {
        RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(20), max_delay: Duration::from_secs(1) }
    }
}

impl RetryPolicy {
    /// The delay before run `attempt + 1` after run `attempt` (1-based) failed.
    fn delay(&self, attempt: u32) -> Duration {
        let step = self.base_delay.saturating_mul(1u32 << (attempt - 1).min(20)).min(self.max_delay);
        let half = step / 2;
        half + half.mul_f64(jitter())
    }
}

/// A number in `[0, 1)` that differs between calls and threads (not cryptographic).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `op` until it succeeds, fails with an error that is not transient
/// ([`Error::is_transient`]: a serialization failure or deadlock, a busy database, a lost
/// connection), or has run `policy.max_attempts` times; returns the last result.
///
/// `op` is called afresh for every attempt, so it must build the whole unit of work — for a
/// transaction, `begin` through `commit`: after a serialization failure it is the transaction
/// that must run again, not its last statement. Each retry is logged at `DEBUG` (target
/// `polystore::retry`) with the attempt and the error class.
///
/// ```no_run
/// # use polystore::prelude::*;
/// # use polystore::observe::{retry, RetryPolicy};
/// # async fn transfer(db: &Db) -> polystore::Result<()> {
/// retry(RetryPolicy::default(), || async {
///     let mut tx = db.begin().await?;
///     // ... reads and writes on &mut tx ...
///     tx.commit().await
/// })
/// .await
/// # }
/// ```
pub async fn retry<T, F, Fut>(policy: RetryPolicy, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt < policy.max_attempts.max(1) => {
                let delay = policy.delay(attempt);
                tracing::debug!(target: "polystore::retry", attempt, error_type = e.class().as_str(),
                    delay_ms = delay.as_millis() as u64, error = %e, "transient error, retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_base_and_stop_at_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        for (attempt, step) in [(1, 100), (2, 200), (3, 350), (8, 350)] {
            let d = p.delay(attempt);
            let step = Duration::from_millis(step);
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?} not within [{:?}, {step:?}]", step / 2);
        }
    }

    #[tokio::test]
    async fn permanent_errors_are_returned_at_once_and_transient_ones_until_the_limit() {
        let p =
            RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(1) };
        let mut runs = 0;
        let r: Result<()> = retry(p, || {
            runs += 1;
            async { Err(Error::NotFound { model: "M" }) }
        })
        .await;
        assert!(r.unwrap_err().is_not_found());
        assert_eq!(runs, 1);

        let mut runs = 0;
        let r: Result<()> = retry(p, || {
            runs += 1;
            async { Err(Error::Connection { store: "postgresql", message: "refused".into() }) }
        })
        .await;
        assert!(matches!(r, Err(Error::Connection { .. })));
        assert_eq!(runs, 3);

        let mut runs = 0;
        let r = retry(p, || {
            runs += 1;
            let n = runs;
            async move {
                if n < 2 {
                    Err(Error::Database { code: Some("40001".into()), message: "conflict".into() })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
    }
}
