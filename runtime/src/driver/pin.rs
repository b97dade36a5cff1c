//! One pooled connection for a whole operation: a query and the batched loads of its
//! relations run on the connection the first statement took, instead of taking one from the
//! pool (and handing it back, which costs the pool a round trip) per statement.

use std::sync::Arc;

use crate::cache::CacheScope;
use crate::db::{Executor, Stats, Target};
use crate::error::Result;

/// A connection held for the duration of one operation.
enum Held {
    #[cfg(feature = "postgres")]
    Postgres(crate::exec::Leased),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

/// An executor that runs every statement on one connection taken from `inner`'s pool (or
/// on `inner` itself when it is a transaction or another store). Counters and the cache
/// scope are `inner`'s.
pub(crate) struct Pinned<E> {
    inner: E,
    held: Option<Held>,
}

/// `db` holding one of its pool's connections when `hold` is set (an operation about to run
/// several statements); `db` unchanged otherwise.
///
/// A routing executor is never pinned: each of the operation's statements is routed on its own.
pub(crate) async fn pin<E: Executor>(mut db: E, hold: bool) -> Result<Pinned<E>> {
    let held = if hold && !db.is_routed() {
        match db.target().0 {
            #[cfg(feature = "postgres")]
            Target::PgPool(p) => {
                Some(Held::Postgres(p.take().await.map_err(|e| crate::exec::map_error(e, "postgresql", None))?))
            }
            #[cfg(feature = "sqlite")]
            Target::SqlitePool(p) => {
                Some(Held::Sqlite(p.acquire().await.map_err(|e| crate::exec::map_error(e, "sqlite", None))?))
            }
            _ => None,
        }
    } else {
        None
    };
    Ok(Pinned { inner: db, held })
}

impl<E: Executor> Executor for Pinned<E> {
    fn target(&mut self) -> (Target<'_>, &Arc<Stats>) {
        let (target, stats) = self.inner.target();
        match &mut self.held {
            #[cfg(feature = "postgres")]
            Some(Held::Postgres(c)) => (Target::PgConn(c.conn()), stats),
            #[cfg(feature = "sqlite")]
            Some(Held::Sqlite(c)) => (Target::SqliteConn(c), stats),
            #[allow(unreachable_patterns)]
            _ => (target, stats),
        }
    }

    fn cache_scope(&self) -> CacheScope<'_> {
        self.inner.cache_scope()
    }

    fn routed(&mut self, op: &crate::driver::Operation<'_>) -> Option<&mut dyn Executor> {
        self.inner.routed(op)
    }

    #[cfg(feature = "mongodb")]
    fn mongo_store(&self) -> Option<&crate::mongo::MongoStore> {
        self.inner.mongo_store()
    }

    fn is_routed(&self) -> bool {
        self.inner.is_routed()
    }

    fn guard(&mut self, op: &crate::driver::Operation<'_>) -> Result<()> {
        self.inner.guard(op)
    }

    fn tenant(&self) -> Option<&crate::db::TenantScope> {
        self.inner.tenant()
    }
}
