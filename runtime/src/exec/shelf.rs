//! Warm PostgreSQL connections kept by a [`Db`](crate::Db) between statements, so that a
//! statement that ran cleanly does not pay sqlx's return-to-pool round trip.
//!
//! sqlx pings every connection it gets back (`Sync`, then waits for `ReadyForQuery`) in a task
//! spawned on drop: on a request/response service that is one extra round trip, a task and two
//! wake-ups per statement, competing with the next statement for the server and the cores. A
//! connection whose statement ran to completion outside a transaction is known to be in a clean
//! state, so the execution point puts it on this shelf instead, and the next statement takes it
//! from there without asking the pool.
//!
//! Bounds, so that the shelf never keeps connections from other users of the pool for long:
//! - at most a quarter of the pool's `max_connections` (none for pools of fewer than 4);
//! - a connection leaves the shelf through the pool (with sqlx's ping, lifetime and idle checks)
//!   once [`LEASE`] has passed since the shelf took it from the pool, and a sweeper task returns
//!   connections nobody took within that time;
//! - a connection whose statement failed or was cancelled, or that is inside a transaction,
//!   goes back through the pool as before; [`Db::close`](crate::Db::close) empties the shelf.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

/// How long the shelf keeps reusing a connection it took from the pool before handing it back.
pub(crate) const LEASE: Duration = Duration::from_secs(1);

/// A connection taken from the pool by the shelf, and when.
pub(crate) struct Leased {
    conn: PoolConnection<Postgres>,
    since: Instant,
    /// Counts the statement as under way while it holds the connection; `None` on the shelf.
    busy: Option<Busy>,
}

/// One statement or transaction under way on a pool, from the moment it asks for a connection
/// until it gives it up: counted in [`PgShelf::outstanding`] while this lives.
#[derive(Debug)]
pub(crate) struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Leased {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.conn
    }

    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.since) >= LEASE
    }
}

/// A PostgreSQL pool with its shelf of warm connections. Not for direct use.
#[doc(hidden)]
#[derive(Debug)]
pub struct PgShelf {
    pool: PgPool,
    cap: usize,
    slots: Mutex<Vec<Leased>>,
    sweeping: AtomicBool,
    /// Where a read goes once more when this pool's server is lost (a replica's primary).
    failover: OnceLock<Failover>,
    /// Statements and transactions under way on the pool ([`Busy`]).
    outstanding: Arc<AtomicUsize>,
}

/// Called with the error when a read fails over (a replica set marks the replica down);
/// returns another handle to run the read on instead of the failover pool (a replica set
/// returns a healthy replica that has replayed at least as far as the lost one), if any.
pub(crate) type FailoverReport = Box<dyn Fn(&crate::error::Error) -> Option<crate::Db> + Send + Sync>;

/// The pool a read runs on once more when this pool's server is lost, with the counters it is
/// counted in there.
pub(crate) struct Failover {
    shelf: Arc<PgShelf>,
    stats: Arc<crate::db::Stats>,
    report: FailoverReport,
}

impl std::fmt::Debug for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failover").finish_non_exhaustive()
    }
}

impl Failover {
    pub(crate) fn new(shelf: Arc<PgShelf>, stats: Arc<crate::db::Stats>, report: FailoverReport) -> Failover {
        Failover { shelf, stats, report }
    }

    /// Reports the error that made the read fail over, and returns where to run it once
    /// more: the pool (and counters) the report chose, else the failover pool.
    pub(crate) fn elsewhere(&self, e: &crate::error::Error) -> (Arc<PgShelf>, Arc<crate::db::Stats>) {
        (self.report)(e)
            .and_then(|db| db.pg_shelf_and_stats())
            .unwrap_or_else(|| (self.shelf.clone(), self.stats.clone()))
    }
}

impl std::fmt::Debug for Leased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leased").field("since", &self.since).finish_non_exhaustive()
    }
}

impl PgShelf {
    /// A shelf over `pool`, sized from the pool's `max_connections`.
    pub(crate) fn new(pool: PgPool) -> Arc<PgShelf> {
        let cap = (pool.options().get_max_connections() / 4) as usize;
        Arc::new(PgShelf {
            pool,
            cap,
            slots: Mutex::new(Vec::new()),
            sweeping: AtomicBool::new(false),
            failover: OnceLock::new(),
            outstanding: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The pool.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Leased>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection: the most recently shelved one still within its lease, else one from the
    /// pool.
    pub(crate) async fn take(&self) -> Result<Leased, sqlx::Error> {
        let now = Instant::now();
        // Under way from now on, also while waiting for the pool (until the lease is dropped
        // or put back).
        let busy = self.busy();
        loop {
            let top = self.slots().pop();
            match top {
                Some(mut leased) if !leased.expired(now) && !self.pool.is_closed() => {
                    leased.busy = Some(busy);
                    return Ok(leased);
                }
                // Back to the pool (sqlx pings it there); look at the next one.
                Some(expired) => drop(expired),
                None => break,
            }
        }
        let conn = self.pool.acquire().await?;
        let since = Instant::now();
        crate::observe::pool_wait("postgresql", since - now);
        Ok(Leased { conn, since, busy: Some(busy) })
    }

    /// Counts a statement or transaction as under way on this pool while the guard lives.
    pub(crate) fn busy(&self) -> Busy {
        Busy::new(&self.outstanding)
    }

    /// Statements and transactions under way on this pool right now: waiting for a connection
    /// or holding one. A connection on its way back to the pool, or idle on the shelf, does not
    /// count.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Takes back a connection whose statement ran to completion. It goes to the pool instead
    /// when it is inside a transaction, its lease is over, the shelf is full or the pool closed.
    pub(crate) fn put(self: &Arc<Self>, mut leased: Leased) {
        // The statement is over, whichever way the connection goes.
        leased.busy = None;
        let clean = !sqlx::Connection::is_in_transaction(&*leased.conn);
        if !clean || leased.expired(Instant::now()) || self.pool.is_closed() {
            return;
        }
        let rejected = {
            let mut slots = self.slots();
            if slots.len() < self.cap {
                slots.push(leased);
                None
            } else {
                Some(leased)
            }
        };
        if rejected.is_none() {
            self.sweep_later();
        }
    }

    /// Where reads go once more when this pool's server is lost, if anywhere.
    pub(crate) fn failover(&self) -> Option<&Failover> {
        self.failover.get()
    }

    /// Sets the failover pool (once; later calls keep the first). Whether it was set.
    pub(crate) fn set_failover(&self, failover: Failover) -> bool {
        self.failover.set(failover).is_ok()
    }

    /// Hands every shelved connection back to the pool.
    pub(crate) fn clear(&self) {
        let all = std::mem::take(&mut *self.slots());
        drop(all);
    }

    /// Starts the sweeper unless it runs: every [`LEASE`] it hands back the connections whose
    /// lease is over, and stops when the shelf is empty.
    fn sweep_later(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<PgShelf> = Arc::downgrade(self);
        let spawned = tokio::runtime::Handle::try_current().map(|rt| rt.spawn(sweep(weak)));
        if spawned.is_err() {
            // No runtime to sweep on: keep nothing on the shelf.
            self.sweeping.store(false, Ordering::Release);
            self.clear();
        }
    }
}

/// The sweeper task of a shelf; ends when the shelf is empty or gone.
async fn sweep(shelf: Weak<PgShelf>) {
    // Clears the flag if the task is dropped early (its runtime shut down), so that the next
    // `put` starts a sweeper again.
    struct Running(Option<Weak<PgShelf>>);
    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(shelf) = self.0.take().and_then(|w| w.upgrade()) {
                shelf.sweeping.store(false, Ordering::Release);
            }
        }
    }
    let mut running = Running(Some(shelf.clone()));
    loop {
        tokio::time::sleep(LEASE).await;
        let Some(shelf) = shelf.upgrade() else { return };
        let now = Instant::now();
        let expired: Vec<Leased> = {
            let mut slots = shelf.slots();
            let closed = shelf.pool.is_closed();
            let (old, keep): (Vec<Leased>, Vec<Leased>) = slots.drain(..).partition(|l| closed || l.expired(now));
            *slots = keep;
            old
        };
        drop(expired);
        if shelf.slots().is_empty() {
            shelf.sweeping.store(false, Ordering::Release);
            // A `put` between the check and the store saw the flag still set: look again.
            if shelf.slots().is_empty() || shelf.sweeping.swap(true, Ordering::AcqRel) {
                running.0 = None;
                return;
            }
        }
    }
}
