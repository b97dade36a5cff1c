//! PostgreSQL read replicas: [`ReplicatedDb`] holds a primary and its streaming replicas, and
//! a [`Session`] (one per request or unit of work) sends each operation to one of them.
//!
//! - Writes, transactions, raw statements and schema changes go to the primary.
//! - Reads outside a transaction go to a healthy replica that has replayed the session's own
//!   writes (read-your-writes by WAL position, below); otherwise to another such replica, or
//!   to the primary.
//! - [`Session::on_primary`] and [`Session::on_replica`] override that per session;
//!   [`ReplicatedDb::primary`] and [`ReplicatedDb::any_replica`] are plain [`Db`] handles for
//!   one query.
//!
//! **Read-your-writes.** After a write the session asks the primary for its WAL insert
//! position (`pg_current_wal_insert_lsn()`, one round trip off the request path, once per run
//! of writes) and keeps it as the session's floor; a read goes to a replica only when that
//! replica's replay position (`pg_last_wal_replay_lsn()`, cached per replica) has reached the
//! floor. Until the position is known, reads after a write go to the primary. A cached
//! replay position that is behind a floor is refreshed in the background (one query per
//! replica at a time), so reads return to the replicas as soon as they have caught up; no
//! read waits on a timer. The floor travels between requests as a [`SessionToken`].
//!
//! **Health.** A background task checks every replica each `check_interval`: a replica that
//! does not answer, is not in recovery, or lags more than `max_lag_bytes` behind the primary
//! (or has been behind for longer than `max_lag_time`) leaves the rotation and comes back
//! when a check finds it healthy again. With no healthy replica, reads go to the primary. A
//! read that loses its replica's server between two checks runs once more on another healthy
//! replica that has replayed at least as far (so it still covers the session's floor), else
//! on the primary, and the replica leaves the rotation at once.
//!
//! **Balancing.** [`Balance::RoundRobin`] (weighted) or [`Balance::LeastOutstanding`]
//! (fewest statements running on the replica's pool, relative to its weight); every replica
//! has a pool of its own, sized by its [`ReplicaOptions`].

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::cache::CacheScope;
use crate::db::{Db, Executor, PoolConfig, Stats, Target};
use crate::driver::{OpKind, Operation};
use crate::error::{Error, Result};

/// A position in PostgreSQL's write-ahead log (a `pg_lsn`), written as PostgreSQL writes it:
/// two hexadecimal halves, `16/B374D848`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = Error;

    fn from_str(s: &str) -> Result<Lsn> {
        let bad = || Error::Config(format!("not a WAL position (expected e.g. 16/B374D848): {s:?}"));
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let half = |h: &str| {
            if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            u32::from_str_radix(h, 16).map_err(|_| bad())
        };
        Ok(Lsn((u64::from(half(hi)?) << 32) | u64::from(half(lo)?)))
    }
}

/// What a [`Session`] has written, as a string a web application can carry to the next
/// request (a cookie, a header): the primary's WAL position after the session's last write.
/// A session made from it ([`ReplicatedDb::session_after`]) reads only from replicas that
/// have replayed up to there.
///
/// The text is the WAL position (`16/B374D848`); it carries no secret, and a client that
/// changes it can only make its own reads go to the primary (a higher position) or see
/// older data (a lower one, as a session without a token would).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionToken {
    lsn: Lsn,
}

impl SessionToken {
    /// A token for `lsn`.
    pub fn new(lsn: Lsn) -> SessionToken {
        SessionToken { lsn }
    }

    /// The WAL position reads must have reached.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.lsn.fmt(f)
    }
}

impl FromStr for SessionToken {
    type Err = Error;

    fn from_str(s: &str) -> Result<SessionToken> {
        s.parse().map(SessionToken::new)
    }
}

/// How reads are spread over the replicas that may serve them. Weights
/// ([`ReplicaOptions::weight`]) apply to both; a replica of weight 0 serves no reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Balance {
    /// In turn, each replica as often as its weight says.
    #[default]
    RoundRobin,
    /// To the replica with the fewest statements and transactions under way on its pool
    /// (waiting for a connection or holding one) per unit of weight; replicas tied take turns.
    LeastOutstanding,
}

/// One replica's settings.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// Its share of the reads relative to the other replicas (default 1; 0: none).
    pub weight: u32,
    /// Its own connection pool. The default is [`PoolConfig::default`] with a 2 s acquire
    /// timeout, so that a replica that went down between two health checks fails its reads
    /// quickly instead of holding them for the default 10 s.
    pub pool: PoolConfig,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            weight: 1,
            pool: PoolConfig { acquire_timeout: Duration::from_secs(2), ..PoolConfig::default() },
        }
    }
}

enum Source {
    Url(String),
    Db(Db),
}

/// Configures a [`ReplicatedDb`]; from [`ReplicatedDb::builder`].
pub struct Builder {
    primary: Option<Source>,
    primary_pool: PoolConfig,
    replicas: Vec<(Source, ReplicaOptions)>,
    balance: Balance,
    max_lag_bytes: Option<u64>,
    max_lag_time: Option<Duration>,
    check_interval: Duration,
    check_timeout: Duration,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("replicas", &self.replicas.len())
            .field("balance", &self.balance)
            .field("max_lag_bytes", &self.max_lag_bytes)
            .field("max_lag_time", &self.max_lag_time)
            .field("check_interval", &self.check_interval)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// The primary's URL (`postgres://…`).
    pub fn primary(mut self, url: impl Into<String>) -> Self {
        self.primary = Some(Source::Url(url.into()));
        self
    }

    /// The primary as an open handle (e.g. one made [`Db::with_transaction_pooling`]).
    pub fn primary_db(mut self, db: Db) -> Self {
        self.primary = Some(Source::Db(db));
        self
    }

    /// The primary's pool settings (when given by URL).
    pub fn primary_pool(mut self, pool: PoolConfig) -> Self {
        self.primary_pool = pool;
        self
    }

    /// A replica by URL, with the default [`ReplicaOptions`].
    pub fn replica(self, url: impl Into<String>) -> Self {
        self.replica_with(url, ReplicaOptions::default())
    }

    /// A replica by URL with its own weight and pool.
    pub fn replica_with(mut self, url: impl Into<String>, options: ReplicaOptions) -> Self {
        self.replicas.push((Source::Url(url.into()), options));
        self
    }

    /// Replicas from a comma-separated URL list (as in `POLYSTORE_PG_REPLICA_URLS`), each with
    /// the default [`ReplicaOptions`]; empty entries are skipped.
    pub fn replica_urls(mut self, urls: &str) -> Self {
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            self = self.replica(url);
        }
        self
    }

    /// A replica as an open PostgreSQL handle, with `weight` (its pool is the handle's own).
    /// Reads on that pool that lose their server then run once more on another replica of
    /// this set that has replayed as far, else on its primary, also when made through `db`
    /// itself (once per pool: the first replica set wins).
    pub fn replica_db(mut self, db: Db, weight: u32) -> Self {
        self.replicas.push((Source::Db(db), ReplicaOptions { weight, ..ReplicaOptions::default() }));
        self
    }

    /// The balancing policy (default [`Balance::RoundRobin`]).
    pub fn balance(mut self, balance: Balance) -> Self {
        self.balance = balance;
        self
    }

    /// Takes a replica out of the rotation while its replay position is more than `bytes` of
    /// WAL behind the primary's (default: no bound).
    pub fn max_lag_bytes(mut self, bytes: u64) -> Self {
        self.max_lag_bytes = Some(bytes);
        self
    }

    /// Takes a replica out of the rotation once it has been behind a WAL position of the
    /// primary for longer than `lag` (measured between health checks, so with a resolution of
    /// `check_interval`; default: no bound).
    pub fn max_lag_time(mut self, lag: Duration) -> Self {
        self.max_lag_time = Some(lag);
        self
    }

    /// How often the background task checks the replicas (default 1 s).
    pub fn check_interval(mut self, every: Duration) -> Self {
        self.check_interval = every;
        self
    }

    /// How long a health query may take before its replica counts as down (default 2 s).
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// Connects to the primary (which must answer), opens the replicas' pools lazily (a
    /// replica that is down starts out of the rotation), runs a first health check and starts
    /// the background checks. Needs a tokio runtime.
    pub async fn connect(self) -> Result<ReplicatedDb> {
        let primary = match self.primary {
            Some(Source::Url(url)) => Db::connect_with(&url, self.primary_pool).await?,
            Some(Source::Db(db)) => db,
            None => return Err(Error::Config("a replicated database needs a primary".into())),
        };
        if primary.pg_pool().is_none() {
            return Err(Error::Config("the primary of a replicated database must be PostgreSQL".into()));
        }
        let mut replicas = Vec::with_capacity(self.replicas.len());
        for (source, options) in self.replicas {
            let (db, label) = match source {
                Source::Url(url) => {
                    let opts: sqlx::postgres::PgConnectOptions =
                        url.parse().map_err(|e| Error::Config(format!("bad replica URL: {e}")))?;
                    let label =
                        format!("{}:{}/{}", opts.get_host(), opts.get_port(), opts.get_database().unwrap_or_default());
                    let pool = crate::db::pool_options(&options.pool, false).connect_lazy_with(opts);
                    (Db::from_pg_pool(pool), label)
                }
                Source::Db(db) => {
                    let Some(pool) = db.pg_pool() else {
                        return Err(Error::Config("a replica must be a PostgreSQL handle".into()));
                    };
                    let opts = pool.connect_options();
                    let label =
                        format!("{}:{}/{}", opts.get_host(), opts.get_port(), opts.get_database().unwrap_or_default());
                    (db, label)
                }
            };
            replicas.push(Replica::new(db, label, options.weight));
        }
        let inner = Arc::new(Inner {
            primary,
            replicas,
            balance: self.balance,
            max_lag_bytes: self.max_lag_bytes,
            max_lag_time: self.max_lag_time,
            check_timeout: self.check_timeout,
            cursor: AtomicUsize::new(0),
            checking: tokio::sync::Mutex::new(()),
            primary_lsn: AtomicU64::new(0),
            checker: Mutex::new(None),
        });
        // A read that loses its replica runs once more elsewhere, and the replica leaves the
        // rotation until a health check finds it well again. Elsewhere: a healthy replica that
        // has replayed at least as far as the lost one had when last seen — the read was sent
        // to the lost one because that position covered the session's floor, so it covers it
        // there too — by the balancing policy; else the primary.
        for (i, r) in inner.replicas.iter().enumerate() {
            let weak = Arc::downgrade(&inner);
            r.db.set_failover(
                &inner.primary,
                Box::new(move |e| {
                    let inner = weak.upgrade()?;
                    let lost = &inner.replicas[i];
                    lost.set_health(false, Some(format!("a read lost the server: {e}")));
                    let reached = lost.replay_lsn.load(Ordering::Acquire);
                    if reached == 0 {
                        return None;
                    }
                    inner.pick(reached).map(|r| r.db.clone())
                }),
            );
        }
        inner.check().await;
        let task = tokio::spawn(run_checks(Arc::downgrade(&inner), self.check_interval));
        *inner.checker.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        Ok(ReplicatedDb { inner })
    }
}

/// A PostgreSQL primary with its read replicas. Cheap to clone (clones share the pools and
/// the health state); operations run through a [`Session`] ([`ReplicatedDb::session`]). The
/// background health checks stop when the last clone is dropped.
#[derive(Clone)]
pub struct ReplicatedDb {
    inner: Arc<Inner>,
}

impl fmt::Debug for ReplicatedDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicatedDb")
            .field("replicas", &self.inner.replicas)
            .field("balance", &self.inner.balance)
            .finish_non_exhaustive()
    }
}

struct Inner {
    primary: Db,
    replicas: Vec<Replica>,
    balance: Balance,
    max_lag_bytes: Option<u64>,
    max_lag_time: Option<Duration>,
    check_timeout: Duration,
    /// Turns for round-robin, and the tie-break rotation of least-outstanding.
    cursor: AtomicUsize,
    /// One health round at a time.
    checking: tokio::sync::Mutex<()>,
    /// The primary's WAL insert position at the last health check.
    primary_lsn: AtomicU64,
    checker: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.checker.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

/// One replica: its handle (with its own pool and [`Stats`]) and what the health checks found.
pub struct Replica {
    db: Db,
    label: String,
    weight: u32,
    healthy: AtomicBool,
    replay_lsn: AtomicU64,
    lag_bytes: AtomicU64,
    refreshing: AtomicBool,
    /// The primary position this replica was first seen missing, and when.
    behind: Mutex<Option<(u64, Instant)>>,
    last_error: Mutex<Option<String>>,
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("label", &self.label)
            .field("weight", &self.weight)
            .field("healthy", &self.is_healthy())
            .field("replay_lsn", &self.replay_lsn())
            .field("lag_bytes", &self.lag_bytes())
            .finish_non_exhaustive()
    }
}

impl Replica {
    fn new(db: Db, label: String, weight: u32) -> Replica {
        Replica {
            db,
            label,
            weight,
            healthy: AtomicBool::new(false),
            replay_lsn: AtomicU64::new(0),
            lag_bytes: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            behind: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    /// The replica's handle: its pool and its statement counters ([`Db::stats`]).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// `host:port/database`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its balancing weight.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Whether it is in the rotation (the last health check found it up and not lagging).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Its replay position as last seen (by a health check or a refresh).
    pub fn replay_lsn(&self) -> Lsn {
        Lsn(self.replay_lsn.load(Ordering::Acquire))
    }

    /// How many bytes of WAL it was behind the primary at the last health check.
    pub fn lag_bytes(&self) -> u64 {
        self.lag_bytes.load(Ordering::Relaxed)
    }

    /// Why the last health check took it out of the rotation, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn serves(&self, floor: u64) -> bool {
        self.weight > 0 && self.is_healthy() && self.replay_lsn.load(Ordering::Acquire) >= floor
    }

    fn set_health(&self, healthy: bool, why: Option<String>) {
        let was = self.healthy.swap(healthy, Ordering::AcqRel);
        if was != healthy {
            match &why {
                Some(why) => tracing::warn!(replica = %self.label, reason = %why, "replica leaves the rotation"),
                None => tracing::info!(replica = %self.label, "replica joins the rotation"),
            }
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// One health check against the primary's position `primary` (unknown when the primary
    /// did not answer: then only reachability counts).
    async fn check(&self, primary: Option<u64>, inner: &Inner) {
        let Some(pool) = self.db.pg_pool() else { return };
        let query = sqlx::raw_sql("SELECT pg_is_in_recovery()::text, pg_last_wal_replay_lsn()::text").fetch_one(pool);
        let row = match tokio::time::timeout(inner.check_timeout, query).await {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => return self.set_health(false, Some(format!("health query failed: {e}"))),
            Err(_) => {
                return self.set_health(false, Some(format!("no answer within {:?}", inner.check_timeout)));
            }
        };
        use sqlx::Row as _;
        let recovering: Option<String> = row.try_get(0).ok().flatten();
        let replay: Option<String> = row.try_get(1).ok().flatten();
        if recovering.as_deref() != Some("true") {
            return self.set_health(false, Some("not in recovery: not a replica (promoted?)".into()));
        }
        let Some(replay) = replay.and_then(|r| r.parse::<Lsn>().ok()) else {
            return self.set_health(false, Some("has replayed no WAL yet".into()));
        };
        self.replay_lsn.fetch_max(replay.0, Ordering::AcqRel);
        let Some(primary) = primary else { return self.set_health(true, None) };
        let lag = primary.saturating_sub(replay.0);
        self.lag_bytes.store(lag, Ordering::Relaxed);
        let now = Instant::now();
        let behind_for = {
            let mut behind = self.behind.lock().unwrap_or_else(|p| p.into_inner());
            *behind = match *behind {
                _ if lag == 0 => None,
                Some((target, _)) if replay.0 >= target => Some((primary, now)),
                Some(kept) => Some(kept),
                None => Some((primary, now)),
            };
            behind.map_or(Duration::ZERO, |(_, since)| now.duration_since(since))
        };
        if let Some(max) = inner.max_lag_bytes.filter(|max| lag > *max) {
            return self.set_health(false, Some(format!("{lag} bytes of WAL behind the primary (bound {max})")));
        }
        if let Some(max) = inner.max_lag_time.filter(|max| behind_for > *max) {
            return self.set_health(false, Some(format!("behind the primary for {behind_for:?} (bound {max:?})")));
        }
        self.set_health(true, None);
    }

    /// Reads the replay position again.
    async fn refresh(&self, timeout: Duration) {
        let Some(pool) = self.db.pg_pool() else { return };
        let query = sqlx::raw_sql("SELECT pg_last_wal_replay_lsn()::text").fetch_one(pool);
        if let Ok(Ok(row)) = tokio::time::timeout(timeout, query).await {
            use sqlx::Row as _;
            let lsn: Option<String> = row.try_get(0).ok().flatten();
            if let Some(lsn) = lsn.and_then(|l| l.parse::<Lsn>().ok()) {
                self.replay_lsn.fetch_max(lsn.0, Ordering::AcqRel);
            }
        }
    }
}

/// The background health checks: every `every`, until the handle is gone.
async fn run_checks(inner: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else { return };
        inner.check().await;
    }
}

/// The primary's WAL insert position: every record inserted so far, committed or not, lies
/// before it (unlike `pg_current_wal_lsn()`, the *write* position, which lags behind commits
/// under `synchronous_commit = off`). One simple-protocol round trip, safe behind a
/// transaction-pooling proxy.
async fn primary_position(primary: &Db) -> Result<u64> {
    let pool = primary.pg_pool().ok_or_else(|| Error::Config("the primary must be PostgreSQL".into()))?;
    let row = sqlx::raw_sql("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(pool)
        .await
        .map_err(|e| crate::exec::map_error(e, "postgresql", None))?;
    use sqlx::Row as _;
    let text: String = row.try_get(0).map_err(|e| crate::exec::map_error(e, "postgresql", None))?;
    Ok(text.parse::<Lsn>()?.0)
}

impl Inner {
    async fn check(&self) {
        let _one = self.checking.lock().await;
        let primary = match tokio::time::timeout(self.check_timeout, primary_position(&self.primary)).await {
            Ok(Ok(lsn)) => {
                self.primary_lsn.fetch_max(lsn, Ordering::AcqRel);
                Some(lsn)
            }
            _ => None,
        };
        futures_util::future::join_all(self.replicas.iter().map(|r| r.check(primary, self))).await;
    }

    /// A replica to read from among those that serve `floor`, by the balancing policy; when
    /// none does, starts refreshing the positions of the healthy ones behind it.
    fn pick(self: &Arc<Self>, floor: u64) -> Option<&Replica> {
        let n = self.replicas.len();
        if n == 0 {
            return None;
        }
        let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
        let chosen = match self.balance {
            Balance::RoundRobin => {
                let total: u64 = self.replicas.iter().filter(|r| r.serves(floor)).map(|r| u64::from(r.weight)).sum();
                if total == 0 {
                    None
                } else {
                    let mut at = turn as u64 % total;
                    self.replicas.iter().filter(|r| r.serves(floor)).find(|r| {
                        let w = u64::from(r.weight);
                        if at < w {
                            true
                        } else {
                            at -= w;
                            false
                        }
                    })
                }
            }
            Balance::LeastOutstanding => (0..n)
                .map(|i| &self.replicas[(turn + i) % n])
                .filter(|r| r.serves(floor))
                .map(|r| (r, r.db.outstanding() as u64))
                .min_by(|(a, busy_a), (b, busy_b)| (busy_a * u64::from(b.weight)).cmp(&(busy_b * u64::from(a.weight))))
                .map(|(r, _)| r),
        };
        if chosen.is_none() {
            self.refresh_behind(floor);
        }
        chosen
    }

    /// Refreshes, in the background, the replay positions of the healthy replicas behind
    /// `floor` (at most one query per replica at a time).
    fn refresh_behind(self: &Arc<Self>, floor: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        for (i, r) in self.replicas.iter().enumerate() {
            if !r.is_healthy() || r.replay_lsn.load(Ordering::Acquire) >= floor {
                continue;
            }
            if r.refreshing.swap(true, Ordering::AcqRel) {
                continue;
            }
            let inner = self.clone();
            runtime.spawn(async move {
                let r = &inner.replicas[i];
                r.refresh(inner.check_timeout).await;
                r.refreshing.store(false, Ordering::Release);
            });
        }
    }
}

impl ReplicatedDb {
    /// A builder: `ReplicatedDb::builder().primary(url).replica(url1).replica(url2).connect()`.
    pub fn builder() -> Builder {
        Builder {
            primary: None,
            primary_pool: PoolConfig::default(),
            replicas: Vec::new(),
            balance: Balance::default(),
            max_lag_bytes: None,
            max_lag_time: None,
            check_interval: Duration::from_secs(1),
            check_timeout: Duration::from_secs(2),
        }
    }

    /// The URL-list form: the primary's URL and the replicas' as one comma-separated list,
    /// with the default settings.
    pub async fn connect(primary: &str, replicas: &str) -> Result<ReplicatedDb> {
        ReplicatedDb::builder().primary(primary).replica_urls(replicas).connect().await
    }

    /// A session with an empty floor: reads go to any healthy replica until it writes.
    pub fn session(&self) -> Session<'_> {
        Session {
            db: self,
            current: &self.inner.primary,
            read_from: ReadFrom::Fresh,
            state: Arc::new(SessionState::default()),
        }
    }

    /// A session that continues one that handed out `token` (in an earlier request): reads go
    /// only to replicas that have replayed that session's writes.
    pub fn session_after(&self, token: SessionToken) -> Session<'_> {
        let session = self.session();
        session.state.floor.store(token.lsn.0, Ordering::Release);
        session
    }

    /// The primary, as a plain handle: `User::find(db.primary(), 1)` reads there (and
    /// `create_all`, migrations, raw SQL belong there).
    pub fn primary(&self) -> &Db {
        &self.inner.primary
    }

    /// A healthy replica chosen by the balancing policy, as a plain handle, without any
    /// read-your-writes check; the primary when no replica is healthy.
    pub fn any_replica(&self) -> &Db {
        self.inner.pick(0).map_or(&self.inner.primary, |r| &r.db)
    }

    /// The replicas, in the order given.
    pub fn replicas(&self) -> &[Replica] {
        &self.inner.replicas
    }

    /// Runs one health check of every replica now (the background task does so every
    /// `check_interval`); returns when it is done.
    pub async fn check_health(&self) {
        self.inner.check().await;
    }

    /// The primary's WAL insert position as of the last health check.
    pub fn primary_lsn(&self) -> Lsn {
        Lsn(self.inner.primary_lsn.load(Ordering::Acquire))
    }
}

/// Where a [`Session`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadFrom {
    /// A replica that has replayed the session's writes, else the primary.
    Fresh,
    /// The primary.
    Primary,
    /// Any healthy replica, however far behind the session's writes.
    AnyReplica,
}

/// What a session knows about its own writes; shared with the task that fetches the primary's
/// position after them.
#[derive(Debug, Default)]
struct SessionState {
    /// The WAL position reads must have reached.
    floor: AtomicU64,
    /// Operations sent to the primary that may have written (writes, transactions, raw SQL).
    writes: AtomicU64,
    /// How many of those `floor` covers.
    synced: AtomicU64,
    /// A fetch of the primary's position is running.
    fetching: AtomicBool,
}

impl SessionState {
    fn pending(&self) -> bool {
        self.synced.load(Ordering::Acquire) < self.writes.load(Ordering::Acquire)
    }

    /// Records the primary position `lsn`, read after the first `writes` writes completed.
    fn synced_to(&self, lsn: u64, writes: u64) {
        self.floor.fetch_max(lsn, Ordering::AcqRel);
        self.synced.fetch_max(writes, Ordering::AcqRel);
    }
}

/// One unit of work on a [`ReplicatedDb`] (a request, a job): operations take `&mut session`
/// wherever they take `&db`, and each is sent to the primary or a replica (see the
/// [module documentation](self)). Operations of one session run one after another (it is
/// borrowed mutably); use one session per concurrent task.
#[derive(Debug)]
pub struct Session<'a> {
    db: &'a ReplicatedDb,
    /// The handle the last operation was routed to.
    current: &'a Db,
    read_from: ReadFrom,
    state: Arc<SessionState>,
}

impl<'a> Session<'a> {
    /// From now on this session reads from the primary too.
    pub fn on_primary(&mut self) -> &mut Self {
        self.read_from = ReadFrom::Primary;
        self
    }

    /// From now on this session reads from any healthy replica, without waiting for its own
    /// writes to be replayed there (stale reads accepted); writes still go to the primary.
    pub fn on_replica(&mut self) -> &mut Self {
        self.read_from = ReadFrom::AnyReplica;
        self
    }

    /// Back to the default: reads from replicas that have replayed this session's writes.
    pub fn read_your_writes(&mut self) -> &mut Self {
        self.read_from = ReadFrom::Fresh;
        self
    }

    /// The token to continue this session in a later request ([`ReplicatedDb::session_after`]).
    /// After writes whose WAL position is not known yet, asks the primary for it first (one
    /// round trip).
    pub async fn token(&self) -> Result<SessionToken> {
        if self.state.pending() {
            let writes = self.state.writes.load(Ordering::Acquire);
            let lsn = primary_position(&self.db.inner.primary).await?;
            self.state.synced_to(lsn, writes);
        }
        Ok(SessionToken::new(Lsn(self.state.floor.load(Ordering::Acquire))))
    }

    /// The handle the last operation of this session was sent to.
    pub fn last_target(&self) -> &'a Db {
        self.current
    }

    /// The handle `op` runs on.
    fn route(&mut self, op: &Operation<'_>) -> &mut dyn Executor {
        let db = self.db;
        self.current = match op.kind {
            OpKind::Read => self.read_target(),
            _ => {
                self.state.writes.fetch_add(1, Ordering::AcqRel);
                &db.inner.primary
            }
        };
        &mut self.current
    }

    fn read_target(&self) -> &'a Db {
        let db: &'a ReplicatedDb = self.db;
        let primary = &db.inner.primary;
        match self.read_from {
            ReadFrom::Primary => primary,
            ReadFrom::AnyReplica => db.inner.pick(0).map_or(primary, |r| &r.db),
            ReadFrom::Fresh if self.state.pending() => {
                self.fetch_position();
                primary
            }
            ReadFrom::Fresh => {
                let floor = self.state.floor.load(Ordering::Acquire);
                db.inner.pick(floor).map_or(primary, |r| &r.db)
            }
        }
    }

    /// Starts fetching the primary's position after the writes so far (unless a fetch runs).
    /// Called between operations, so every write counted has completed.
    fn fetch_position(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.state.fetching.swap(true, Ordering::AcqRel) {
            return;
        }
        let writes = self.state.writes.load(Ordering::Acquire);
        let state = self.state.clone();
        let primary = self.db.inner.primary.clone();
        runtime.spawn(async move {
            match primary_position(&primary).await {
                Ok(lsn) => state.synced_to(lsn, writes),
                Err(e) => tracing::debug!(error = %e, "reading the primary's WAL position failed"),
            }
            state.fetching.store(false, Ordering::Release);
        });
    }
}

impl Executor for &mut Session<'_> {
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        self.route(&Operation::other("execute")).target()
    }

    fn cache_scope(&self) -> CacheScope<'_> {
        CacheScope::None
    }

    fn routed(&mut self, op: &Operation<'_>) -> Option<&mut dyn Executor> {
        Some(self.route(op))
    }

    fn is_routed(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text_round_trips() {
        for (text, value) in [("0/0", 0u64), ("16/B374D848", 0x16_B374_D848), ("FFFFFFFF/FFFFFFFF", u64::MAX)] {
            let lsn: Lsn = text.parse().unwrap();
            assert_eq!(lsn, Lsn(value));
            assert_eq!(lsn.to_string(), text);
        }
        assert_eq!("0/1a".parse::<Lsn>().unwrap(), Lsn(0x1A), "lower case hex is accepted");
    }

    #[test]
    fn hostile_tokens_are_refused() {
        for bad in ["", "/", "1/", "/1", "x/1", "1/1/1", "100000000/0", "1 /2", "-1/0", "0/+1", "0x1/0"] {
            assert!(bad.parse::<SessionToken>().is_err(), "{bad:?} must not parse");
        }
        let token: SessionToken = " 3/4 ".parse().unwrap();
        assert_eq!(token.lsn(), Lsn((3 << 32) | 4));
    }
}
