//! Lifecycle hooks (`#[model(hooks)]` + `impl Hooks`) on PostgreSQL, SQLite and MongoDB: the
//! order hooks run in and the rows they see, hooks that change the row, hooks that write
//! another model through the write's executor, and hooks that refuse a write — which must leave
//! no trace: not the row, not the hooks' own writes, not a cached copy.

use std::cell::RefCell;

use polystore::Cache;
use polystore::prelude::*;
use polystore_tests::{assert_err, store_test};

/// An account whose hooks log what they see, normalise the e-mail address, write an audit row
/// through the write's executor, and refuse writes whose data asks for it.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "hk_accounts", hooks, cache(ttl = "5m"), dto(AccountPatch, update), dto(NewAccount, create))]
struct Account {
    #[model(primary_key, generated)]
    id: i64,
    email: String,
    balance: i64,
}

/// What the account hooks wrote, in the same transaction as the account's write.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "hk_audit")]
struct Audit {
    #[model(primary_key, generated)]
    id: i64,
    action: String,
    email: String,
}

/// A model whose relation loads accounts (through which `after_load` must run too).
#[derive(Model, Debug, Clone)]
#[model(table = "hk_logins")]
struct Login {
    #[model(primary_key, generated)]
    id: i64,
    account_id: i64,
    #[model(belongs_to)]
    account: Rel<Account>,
}

/// A model without hooks next to one with them: bulk writes work as always.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "hk_plain")]
struct Plain {
    #[model(primary_key)]
    id: i64,
    n: i64,
}

/// The error the account hooks refuse writes with.
#[derive(Debug, PartialEq)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused by {}", self.0)
    }
}

impl std::error::Error for Refused {}

thread_local! {
    /// What the hooks saw, on this test's thread (`#[tokio::test]` runs each test on its own
    /// thread with a current-thread runtime).
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(entry: String) {
    LOG.with(|l| l.borrow_mut().push(entry));
}

/// Takes the log.
fn taken() -> Vec<String> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

async fn audit(cx: &mut HookCx<'_>, action: &str, email: &str) -> Result<()> {
    Audit { id: 0, action: action.into(), email: email.into() }.insert(cx.db()).await.map(drop)
}

impl Hooks for Account {
    async fn before_insert(&mut self, cx: &mut HookCx<'_>) -> Result<()> {
        log(format!("before_insert {} {} ({})", self.id, self.email, cx.operation()));
        self.email = self.email.trim().to_lowercase();
        if self.email.contains("refuse-before") {
            return Err(cx.refuse(Refused("before_insert")));
        }
        audit(cx, "insert", &self.email).await
    }

    async fn after_insert(&mut self, cx: &mut HookCx<'_>) -> Result<()> {
        log(format!("after_insert {} {}", self.id != 0, self.email));
        if self.email.contains("refuse-after-insert") {
            return Err(cx.refuse(Refused("after_insert")));
        }
        Ok(())
    }

    async fn before_update(&mut self, cx: &mut HookCx<'_>) -> Result<()> {
        log(format!("before_update {} {} ({})", self.email, self.balance, cx.operation()));
        self.email = self.email.trim().to_lowercase();
        if self.balance < 0 {
            return Err(cx.refuse(Refused("before_update")));
        }
        Ok(())
    }

    async fn after_update(&mut self, cx: &mut HookCx<'_>) -> Result<()> {
        log(format!("after_update {} {}", self.email, self.balance));
        audit(cx, "update", &self.email).await?;
        if self.email.contains("refuse-after-update") {
            return Err(cx.refuse(Refused("after_update")));
        }
        Ok(())
    }

    async fn before_delete(&self, cx: &mut HookCx<'_>) -> Result<()> {
        log(format!("before_delete {} ({})", self.email, cx.operation()));
        audit(cx, "delete", &self.email).await?;
        if self.email.contains("keep") {
            return Err(cx.refuse(Refused("before_delete")));
        }
        Ok(())
    }

    async fn after_delete(&self, cx: &mut HookCx<'_>) -> Result<()> {
        log(format!("after_delete {}", self.email));
        if self.balance == 13 {
            return Err(cx.refuse(Refused("after_delete")));
        }
        Ok(())
    }

    fn after_load(&mut self) -> Result<()> {
        log(format!("after_load {}", self.email));
        if self.email.contains("corrupt") {
            return Err(Error::hook("Account", "after_load", Refused("after_load")));
        }
        Ok(())
    }
}

fn account(email: &str, balance: i64) -> Account {
    Account { id: 0, email: email.into(), balance }
}

/// The audit rows, oldest first, as `action email`.
async fn audits<E: Executor>(db: E) -> Result<Vec<String>> {
    let rows = Audit::query().order_by(Audit::ID.asc()).all(db).await?;
    Ok(rows.into_iter().map(|a| format!("{} {}", a.action, a.email)).collect())
}

/// Whether `e` is the account hooks' refusal from `hook`.
fn refused_by(e: &Error, hook: &'static str) -> bool {
    matches!(e, Error::Hook { model: "Account", hook: h, .. } if *h == hook)
        && e.hook_source::<Refused>() == Some(&Refused(hook))
}

store_test!(insert_hooks_run_in_order_and_can_change_the_row, |db| async move {
    db.create_all(&[Account::SCHEMA, Audit::SCHEMA]).await?;
    taken();
    let stored = account("  Ada@Example.COM ", 10).insert(&db).await?;
    assert_eq!(stored.email, "ada@example.com", "before_insert's normalised e-mail is what was stored");
    assert!(stored.id > 0);
    assert_eq!(
        taken(),
        [
            "before_insert 0   Ada@Example.COM  (insert)",
            // The row the insert returns is decoded from the store, so after_load sees it.
            "after_load ada@example.com",
            "after_insert true ada@example.com",
        ]
    );
    assert_eq!(audits(&db).await?, ["insert ada@example.com"], "the hook's audit row was committed with it");

    // A create DTO goes through the same insert.
    let from_dto = NewAccount { email: "DTO@x.org".into(), balance: 1 }.insert(&db).await?;
    assert_eq!(from_dto.email, "dto@x.org");

    // insert_many runs the hooks for every row, in one transaction.
    taken();
    let many = Account::insert_many(&db, &[account("B@x.org", 1), account("C@x.org", 2)]).await?;
    assert_eq!(many.iter().map(|a| a.email.as_str()).collect::<Vec<_>>(), ["b@x.org", "c@x.org"]);
    let log = taken();
    let hooks: Vec<&str> = log.iter().filter(|l| !l.starts_with("after_load")).map(String::as_str).collect();
    assert_eq!(
        hooks,
        [
            "before_insert 0 B@x.org (insert_many)",
            "before_insert 0 C@x.org (insert_many)",
            "after_insert true b@x.org",
            "after_insert true c@x.org",
        ]
    );
    assert_eq!(Account::query().count(&db).await?, 4);
    Ok::<(), Error>(())
});

store_test!(a_refused_insert_leaves_no_trace, |db| async move {
    db.create_all(&[Account::SCHEMA, Audit::SCHEMA]).await?;
    let kept = account("kept@x.org", 1).insert(&db).await?;

    // Refused before the write: nothing reaches the store.
    let e = account("refuse-before@x.org", 1).insert(&db).await.unwrap_err();
    assert!(refused_by(&e, "before_insert"), "{e:?}");
    assert_eq!(e.class(), polystore::ErrorClass::Validation);

    // Refused after the write and after the hook wrote its audit row: both are rolled back.
    let e = account("refuse-after-insert@x.org", 1).insert(&db).await.unwrap_err();
    assert!(refused_by(&e, "after_insert"), "{e:?}");
    assert_eq!(Account::query().all(&db).await?, vec![kept.clone()]);
    assert_eq!(audits(&db).await?, ["insert kept@x.org"], "the refused insert's audit row is gone");

    // One refused row in insert_many: none of the rows (nor their audit rows) is stored.
    let rows = [account("d@x.org", 1), account("refuse-after-insert-2@x.org", 1), account("e@x.org", 1)];
    let e = Account::insert_many(&db, &rows).await.unwrap_err();
    assert!(refused_by(&e, "after_insert"), "{e:?}");
    assert_eq!(Account::query().all(&db).await?, vec![kept]);
    assert_eq!(audits(&db).await?, ["insert kept@x.org"]);
    Ok::<(), Error>(())
});

store_test!(update_hooks_and_a_refused_update_that_leaves_no_trace, |db| async move {
    db.create_all(&[Account::SCHEMA, Audit::SCHEMA]).await?;
    let refresh =
        Cache::builder(polystore::cache::MemoryBackend::new(1 << 20)).write_mode(polystore::cache::WriteMode::Refresh);
    let db = db.with_cache(refresh.build());
    let stored = account("ada@x.org", 10).insert(&db).await?;
    taken();

    let mut changed = stored.clone();
    changed.email = " ADA2@x.org".into();
    changed.balance = 20;
    let updated = changed.update(&db).await?;
    assert_eq!((updated.email.as_str(), updated.balance), ("ada2@x.org", 20));
    assert_eq!(
        taken(),
        ["before_update  ADA2@x.org 20 (update)", "after_load ada2@x.org", "after_update ada2@x.org 20"]
    );

    // Warm the cache with the stored row.
    assert_eq!(Account::get_cached(&db, stored.id).await?, Some(updated.clone()));

    // Refused before the write.
    let mut negative = updated.clone();
    negative.balance = -1;
    let e = negative.update(&db).await.unwrap_err();
    assert!(refused_by(&e, "before_update"), "{e:?}");

    // Refused after the write (and after after_update's audit row): all rolled back, and the
    // cache does not hold the refused row.
    let mut refused = updated.clone();
    refused.email = "refuse-after-update@x.org".into();
    refused.balance = 99;
    let e = refused.update(&db).await.unwrap_err();
    assert!(refused_by(&e, "after_update"), "{e:?}");
    assert_eq!(Account::find(&db, stored.id).await?, updated, "the row is unchanged");
    assert_eq!(Account::get_cached(&db, stored.id).await?, Some(updated.clone()), "the cache too");
    assert_eq!(audits(&db).await?, ["insert ada@x.org", "update ada2@x.org"], "the refused update's audit row is gone");
    Ok::<(), Error>(())
});

store_test!(patch_dtos_run_the_update_hooks, |db| async move {
    db.create_all(&[Account::SCHEMA, Audit::SCHEMA]).await?;
    let stored = account("ada@x.org", 10).insert(&db).await?;
    taken();

    // before_update sees the stored row with the patch applied; what it changes (the e-mail's
    // case) is written along with the patch's own fields.
    let patched = AccountPatch { email: Some(" PATCHED@x.org".into()), balance: None }.update(&db, stored.id).await?;
    assert_eq!((patched.email.as_str(), patched.balance), ("patched@x.org", 10));
    let log = taken();
    let hooks: Vec<&str> = log.iter().filter(|l| !l.starts_with("after_load")).map(String::as_str).collect();
    assert_eq!(hooks, ["before_update  PATCHED@x.org 10 (patch)", "after_update patched@x.org 10"]);
    assert_eq!(Account::find(&db, stored.id).await?, patched);

    // A patch a hook refuses writes nothing.
    let e = AccountPatch { email: None, balance: Some(-5) }.update(&db, stored.id).await.unwrap_err();
    assert!(refused_by(&e, "before_update"), "{e:?}");
    let e = AccountPatch { email: Some("refuse-after-update@x.org".into()), balance: Some(7) }
        .update(&db, stored.id)
        .await
        .unwrap_err();
    assert!(refused_by(&e, "after_update"), "{e:?}");
    assert_eq!(Account::find(&db, stored.id).await?, patched, "the refused patches wrote nothing");
    assert_eq!(audits(&db).await?, ["insert ada@x.org", "update patched@x.org"]);

    // A patch of a missing row is NotFound, as without hooks.
    assert_err!(
        AccountPatch { email: None, balance: Some(1) }.update(&db, stored.id + 100).await,
        Error::NotFound { model: "Account" }
    );
    Ok::<(), Error>(())
});

store_test!(delete_hooks_and_refused_deletes, |db| async move {
    db.create_all(&[Account::SCHEMA, Audit::SCHEMA]).await?;
    let gone = account("gone@x.org", 1).insert(&db).await?;
    let by_key = account("by-key@x.org", 2).insert(&db).await?;
    let keep = account("keep@x.org", 3).insert(&db).await?;
    let unlucky = account("unlucky@x.org", 13).insert(&db).await?;
    Audit::query().delete_many(&db).await?;
    taken();

    gone.delete(&db).await?;
    assert_eq!(taken(), ["before_delete gone@x.org (delete)", "after_delete gone@x.org"]);

    // delete_by_key reads the row first, so its hooks see it; a missing key runs no hook.
    assert!(Account::delete_by_key(&db, by_key.id).await?);
    assert_eq!(
        taken(),
        ["after_load by-key@x.org", "before_delete by-key@x.org (delete_by_key)", "after_delete by-key@x.org"]
    );
    assert!(!Account::delete_by_key(&db, by_key.id).await?);
    assert_eq!(taken(), Vec::<String>::new());

    // Refused before and after the delete: the row and the audit rows stay as they were.
    let e = keep.delete(&db).await.unwrap_err();
    assert!(refused_by(&e, "before_delete"), "{e:?}");
    let e = Account::delete_by_key(&db, unlucky.id).await.unwrap_err();
    assert!(refused_by(&e, "after_delete"), "{e:?}");
    let mut left = Account::query().order_by(Account::ID.asc()).all(&db).await?;
    left.sort_by_key(|a| a.id);
    assert_eq!(left, vec![keep, unlucky]);
    assert_eq!(audits(&db).await?, ["delete gone@x.org", "delete by-key@x.org"]);
    Ok::<(), Error>(())
});

store_test!(after_load_runs_on_every_decoded_row, |db| async move {
    db.create_all(&[Account::SCHEMA, Audit::SCHEMA]).await?;
    let a = account("a@x.org", 1).insert(&db).await?;
    account("b@x.org", 2).insert(&db).await?;
    taken();

    Account::find(&db, a.id).await?;
    assert_eq!(taken(), ["after_load a@x.org"]);
    Account::query().order_by(Account::ID.asc()).all(&db).await?;
    assert_eq!(taken(), ["after_load a@x.org", "after_load b@x.org"]);
    let page = Account::query().order_by(Account::ID.asc()).paginate(&db, PageRequest::first(1)).await?;
    assert_eq!(page.items.len(), 1);
    // A page reads one row more than it returns, to know whether another page follows.
    assert_eq!(taken(), ["after_load a@x.org", "after_load b@x.org"]);

    // Relation loads decode the related rows through the same path.
    db.create_all(&[Login::SCHEMA]).await?;
    Login { id: 0, account_id: a.id, account: Rel::default() }.insert(&db).await?;
    taken();
    let logins = Login::query().with(Login::ACCOUNT).all(&db).await?;
    assert_eq!(logins[0].account.get(), Some(&a));
    assert_eq!(taken(), ["after_load a@x.org"]);

    // An after_load error fails the read.
    let corrupt = account("corrupt@x.org", 3).insert(&db).await.unwrap_err();
    assert!(matches!(corrupt, Error::Hook { hook: "after_load", .. }), "{corrupt:?}");
    Ok::<(), Error>(())
});

store_test!(bulk_writes_are_refused_unless_hooks_are_skipped_explicitly, |db| async move {
    db.create_all(&[Account::SCHEMA, Audit::SCHEMA, Plain::SCHEMA]).await?;
    let a = account("a@x.org", 1).insert(&db).await?;

    let e = Account::query().update_many(&db, [Account::BALANCE.set(5)]).await.unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("update_many_without_hooks")), "{e:?}");
    let e = Account::query().delete_many(&db).await.unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("delete_many_without_hooks")), "{e:?}");
    let e = a.upsert(&db).await.unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("upsert")), "{e:?}");
    let e = Account::query().claim(&db, 1, [Account::BALANCE.set(0)]).await.unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("claim")), "{e:?}");
    assert_eq!(Account::find(&db, a.id).await?, a, "the refused bulk writes wrote nothing");

    assert_eq!(Account::query().update_many_without_hooks(&db, [Account::BALANCE.set(5)]).await?, 1);
    taken();
    assert_eq!(Account::find(&db, a.id).await?.balance, 5);
    assert_eq!(Account::query().delete_many_without_hooks(&db).await?, 1);
    assert_eq!(taken(), ["after_load a@x.org"], "only the read ran a hook");

    // Models without hooks are not affected.
    Plain::insert_many(&db, &[Plain { id: 1, n: 1 }, Plain { id: 2, n: 2 }]).await?;
    assert_eq!(Plain::query().update_many(&db, [Plain::N.set(0)]).await?, 2);
    assert_eq!(Plain::query().delete_many(&db).await?, 2);
    Ok::<(), Error>(())
});

/// Inside a transaction the caller opened, hooks write in it; a refusal (a savepoint on SQL)
/// undoes only the refused write, and the caller's rollback undoes everything.
#[tokio::test]
async fn hooks_inside_a_sql_transaction() {
    polystore_tests::run_on_postgres(|db| async move {
        db.create_all(&[Account::SCHEMA, Audit::SCHEMA]).await?;
        let mut tx = db.begin().await?;
        let a = account("in-tx@x.org", 1).insert(&mut tx).await?;
        let e = account("refuse-after-insert@x.org", 1).insert(&mut tx).await.unwrap_err();
        assert!(refused_by(&e, "after_insert"), "{e:?}");
        assert_eq!(Account::query().all(&mut tx).await?, vec![a.clone()], "the refused insert was undone alone");
        assert_eq!(audits(&mut tx).await?, ["insert in-tx@x.org"]);
        tx.rollback().await?;
        assert_eq!(Account::query().count(&db).await?, 0);
        assert_eq!(audits(&db).await?, Vec::<String>::new());
        Ok::<(), Error>(())
    })
    .await
}

/// Runs the write `$write` (an awaited expression) again while it fails in the `conflict`
/// class: MongoDB transactions that write the same document at once (here the generated-key
/// counter every insert bumps) conflict, and the loser fails as a whole. At most 200 attempts.
macro_rules! retry_conflicts {
    ($write:expr) => {{
        let mut attempts = 0;
        loop {
            match $write {
                Err(e) if e.class() == polystore::ErrorClass::Conflict && attempts < 200 => {
                    attempts += 1;
                    tokio::task::yield_now().await
                }
                other => break other,
            }
        }
    }};
}

// Many hooked inserts and updates at once, every other one refused after its write and its
// audit row: whatever the interleaving, exactly the accepted writes and their audit rows
// remain (each accepted account has its one audit row, no refused one has any).
store_test!(concurrent_refused_writes_leave_no_trace, |db| async move {
    db.create_all(&[Account::SCHEMA, Audit::SCHEMA]).await?;
    const WRITERS: usize = 16;
    let inserts = (0..WRITERS).map(|i| {
        let db = db.clone();
        async move {
            let email = if i % 2 == 0 { format!("ok-{i}@x.org") } else { format!("refuse-after-insert-{i}@x.org") };
            retry_conflicts!(account(&email, i as i64).insert(&db).await)
        }
    });
    let results = futures_util::future::join_all(inserts).await;
    let mut accepted = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match (i % 2, r) {
            (0, Ok(a)) => accepted.push(a),
            (1, Err(e)) if refused_by(&e, "after_insert") => {}
            (_, other) => panic!("writer {i}: {other:?}"),
        }
    }
    accepted.sort_by_key(|a| a.id);
    let mut stored = Account::query().all(&db).await?;
    stored.sort_by_key(|a| a.id);
    assert_eq!(stored, accepted);
    let mut audit = audits(&db).await?;
    audit.sort();
    let mut expected: Vec<String> = accepted.iter().map(|a| format!("insert {}", a.email)).collect();
    expected.sort();
    assert_eq!(audit, expected, "one audit row per accepted insert, none for a refused one");

    // Concurrent updates of the accepted rows, every other one refused after its write.
    let updates = accepted.iter().enumerate().map(|(i, a)| {
        let (db, mut a) = (db.clone(), a.clone());
        async move {
            a.email = if i % 2 == 0 { format!("upd-{i}@x.org") } else { format!("refuse-after-update-{i}@x.org") };
            retry_conflicts!(a.update(&db).await)
        }
    });
    let results = futures_util::future::join_all(updates).await;
    let mut updated = Vec::new();
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(a) if i % 2 == 0 => updated.push(format!("update {}", a.email)),
            Err(e) if i % 2 == 1 && refused_by(e, "after_update") => {}
            other => panic!("update {i}: {other:?}"),
        }
    }
    let mut stored = Account::query().all(&db).await?;
    stored.sort_by_key(|a| a.id);
    for (i, (now, before)) in stored.iter().zip(&accepted).enumerate() {
        let changed = format!("update {}", now.email);
        if !updated.contains(&changed) {
            assert_eq!(now, before, "row {i}: only accepted updates are stored");
        }
    }
    let mut audit: Vec<String> = audits(&db).await?.into_iter().filter(|a| a.starts_with("update")).collect();
    audit.sort();
    updated.sort();
    assert_eq!(audit, updated, "audit rows exactly for the accepted updates");
    Ok::<(), Error>(())
});
