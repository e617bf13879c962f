//! Verify never waits on another session for what it need not, and never deadlocks with
//! maintenance: two or more connections, real locks.
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use pg_apikey_integration::*;

/// The tests of this file run one at a time: two of them run REINDEX and VACUUM FULL on
/// apikey.keys, whose queued locks would make the others' verifies wait.
static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A plain key verified in one session's open transaction (psycopg's default, a
/// request-scoped transaction) holds its row for the `last_used_at` write; another
/// session's verify of the same key must not wait for it.
#[test]
fn plain_verify_does_not_wait_on_an_open_transaction() {
    let _serial = one_at_a_time();
    let t = "lkopen";
    let (mut su, api) = org_and_api_role(t);
    // Every verify is due a last_used_at write.
    su.batch_execute(&format!(
        "ALTER ROLE \"{api}\" SET apikey.last_used_resolution = 0"
    ))
    .unwrap();
    let (id, key) = org_key(&mut su, t, "");

    let mut first = connect(&api);
    first.batch_execute("BEGIN").unwrap();
    assert_eq!(verify_code(&mut first, &key), "VALID");
    // The first session now holds the key's row lock until it ends: a lock of that row
    // that does not wait fails (the precondition of what follows).
    let locked = su
        .query_one(
            "SELECT 1 FROM apikey.keys WHERE id = $1::text::uuid FOR UPDATE NOWAIT",
            &[&id],
        )
        .expect_err("the first session holds the key's row lock");
    assert_eq!(
        locked.code(),
        Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE),
        "{locked}"
    );

    let mut second = connect(&api);
    second.batch_execute("SET lock_timeout = '2s'").unwrap();
    let started = Instant::now();
    let row = second.query_one("SELECT code FROM apikey.verify_api_key($1)", &[&key]);
    let waited = started.elapsed();
    let row = row.unwrap_or_else(|e| panic!("the second verify failed with {:?}: {e}", e.code()));
    assert_eq!(row.get::<_, String>(0), "VALID");
    assert!(waited < Duration::from_secs(1), "verify waited {waited:?}");
    first.batch_execute("COMMIT").unwrap();
}

/// For a key with a quota the row lock is inherent: the use is counted in the caller's
/// transaction. A rolled-back transaction gives the use back.
#[test]
fn rolled_back_verify_gives_the_use_back() {
    let _serial = one_at_a_time();
    let t = "lkrollback";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(&mut su, t, "remaining => 5");
    let mut c = connect(&api);
    c.batch_execute("BEGIN").unwrap();
    let left: i64 = c
        .query_one("SELECT remaining FROM apikey.verify_api_key($1)", &[&key])
        .unwrap()
        .get(0);
    assert_eq!(left, 4);
    c.batch_execute("ROLLBACK").unwrap();
    let stored: i64 = stored_remaining(&mut su, &id);
    assert_eq!(stored, 5, "the rolled-back use is given back");
    let left: i64 = c
        .query_one("SELECT remaining FROM apikey.verify_api_key($1)", &[&key])
        .unwrap()
        .get(0);
    assert_eq!(left, 4);
}

/// One statement verifies a plain key (reading the table), waits, then verifies a key
/// with a quota (writing to it), while REINDEX TABLE starts in between. Verify takes the
/// lock it may need for writing from the start, so the two queue instead of deadlocking.
#[test]
fn verify_and_reindex_do_not_deadlock() {
    let _serial = one_at_a_time();
    let t = "lkreindex";
    let (mut su, api) = org_and_api_role(t);
    let (_, plain) = org_key(&mut su, t, "");
    let (_, quota) = org_key(&mut su, t, "remaining => 10");
    let mut warm = connect(&api);
    assert_eq!(verify_code(&mut warm, &plain), "VALID");

    let session_a = {
        let (api, plain, quota) = (api.clone(), plain.clone(), quota.clone());
        thread::spawn(move || {
            let mut a = connect(&api);
            a.query_one(
                "SELECT (SELECT code FROM apikey.verify_api_key($1)), pg_sleep(1.5), \
                        (SELECT code FROM apikey.verify_api_key($2))",
                &[&plain, &quota],
            )
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(2)))
        })
    };
    thread::sleep(Duration::from_millis(500));
    let mut b = superuser();
    b.batch_execute("SET lock_timeout = '20s'").unwrap();
    let reindex = b.batch_execute("REINDEX TABLE apikey.keys");
    let a = session_a.join().unwrap();
    assert_eq!(sqlstate(reindex), "00000", "REINDEX failed");
    match a {
        Ok(codes) => assert_eq!(codes, ("VALID".to_string(), "VALID".to_string())),
        Err(e) => panic!("verify failed with {:?}: {e}", e.code()),
    }
}

/// Maintenance on the keys table while clients verify plain and limited keys: lock
/// waits, no errors.
#[test]
fn maintenance_under_verify_load_raises_no_error() {
    let _serial = one_at_a_time();
    let t = "lkmaint";
    let (mut su, api) = org_and_api_role(t);
    let (_, plain) = org_key(&mut su, t, "");
    let (_, quota) = org_key(&mut su, t, "remaining => 1000000");
    let deadline = Instant::now() + Duration::from_secs(4);
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (api, key) = (
                api.clone(),
                if i % 2 == 0 {
                    plain.clone()
                } else {
                    quota.clone()
                },
            );
            thread::spawn(move || {
                let mut c = connect(&api);
                let mut verified = 0usize;
                while Instant::now() < deadline && verified < 200_000 {
                    let r = c.query_one("SELECT code FROM apikey.verify_api_key($1)", &[&key]);
                    match r {
                        Ok(row) => assert_eq!(row.get::<_, String>(0), "VALID"),
                        Err(e) => panic!("verify failed under maintenance: {:?} {e}", e.code()),
                    }
                    verified += 1;
                }
                verified
            })
        })
        .collect();
    for statement in [
        "REINDEX TABLE apikey.keys",
        "VACUUM FULL apikey.keys",
        "ANALYZE apikey.keys",
        "CREATE INDEX lkmaint_idx ON apikey.keys (name)",
        "DROP INDEX apikey.lkmaint_idx",
        "REINDEX TABLE apikey.keys",
    ] {
        su.batch_execute(statement)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
        thread::sleep(Duration::from_millis(200));
    }
    for c in clients {
        assert!(c.join().unwrap() > 0, "every client verified");
    }
}

/// A limited key's verify waits for another transaction that holds the key's row (its
/// use is counted there); a `lock_timeout` ends that wait with 55P03, as the docs say.
#[test]
fn limited_verify_waits_for_the_rows_holder_and_lock_timeout_ends_it() {
    let _serial = one_at_a_time();
    let t = "lktimeout";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(&mut su, t, "remaining => 10");
    let mut first = connect(&api);
    first.batch_execute("BEGIN").unwrap();
    assert_eq!(verify_code(&mut first, &key), "VALID");

    let mut second = connect(&api);
    second.batch_execute("SET lock_timeout = '300ms'").unwrap();
    let started = Instant::now();
    let err = second
        .query_one("SELECT code FROM apikey.verify_api_key($1)", &[&key])
        .expect_err("the second verify waits for the first transaction, then times out");
    assert_lock_wait_explained(&err, &id);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "it waited {:?}",
        started.elapsed()
    );
    first.batch_execute("COMMIT").unwrap();
    // Once the holder commits, the key verifies again at once, with its use counted.
    assert_eq!(verify_code(&mut second, &key), "VALID");
}

/// The 55P03 a verify's lock wait ends with, in pg_apikey's words: whose counts, why
/// another transaction holds them, what to do.
fn assert_lock_wait_explained(err: &postgres::Error, key_id: &str) {
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE),
        "{err}"
    );
    let db = err.as_db_error().expect("a server error");
    assert_eq!(
        db.message(),
        format!(
            "pg_apikey: verify of key {key_id} waited lock_timeout for its usage counts, \
             which another transaction holds"
        )
    );
    let detail = db.detail().unwrap_or_default();
    assert!(
        detail.starts_with("canceling statement due to lock timeout."),
        "{detail}"
    );
    let hint = db.hint().unwrap_or_default();
    assert!(
        hint.contains("autocommit") && hint.contains("idle in transaction"),
        "{hint}"
    );
}

/// The same for a key with no limits of its own whose organization has shared ones: the
/// wait is for the owner's row, held by a transaction that verified another of its keys.
#[test]
fn owner_limit_wait_ended_by_lock_timeout_is_explained() {
    let _serial = one_at_a_time();
    let t = "lkownertimeout";
    let (mut su, api) = org_and_api_role(t);
    su.batch_execute(&format!(
        "SELECT FROM apikey.set_owner_limits(org_id => '{t}-org', remaining => 100)"
    ))
    .unwrap();
    let (_, one) = org_key(&mut su, t, "");
    let (other_id, other) = org_key(&mut su, t, "");
    let mut first = connect(&api);
    first.batch_execute("BEGIN").unwrap();
    assert_eq!(verify_code(&mut first, &one), "VALID");

    let mut second = connect(&api);
    second.batch_execute("SET lock_timeout = '300ms'").unwrap();
    let err = second
        .query_one("SELECT code FROM apikey.verify_api_key($1)", &[&other])
        .expect_err("the owner's row is held by the first transaction");
    assert_lock_wait_explained(&err, &other_id);
    first.batch_execute("COMMIT").unwrap();
    assert_eq!(verify_code(&mut second, &other), "VALID");
}

/// Under REPEATABLE READ, a limited key whose use another transaction committed after
/// this transaction's snapshot raises 40001, as any concurrent update would.
#[test]
fn limited_verify_under_repeatable_read_after_a_concurrent_use_is_40001() {
    let _serial = one_at_a_time();
    let t = "lkrepeatable";
    let (mut su, api) = org_and_api_role(t);
    let (_, key) = org_key(&mut su, t, "remaining => 10");
    let mut rr = connect(&api);
    rr.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .unwrap();
    let mut other = connect(&api);
    assert_eq!(verify_code(&mut other, &key), "VALID");
    let err = rr
        .query_one("SELECT code FROM apikey.verify_api_key($1)", &[&key])
        .expect_err("the key's row changed after the snapshot");
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::T_R_SERIALIZATION_FAILURE),
        "{err}"
    );
    rr.batch_execute("ROLLBACK").unwrap();
    // In READ COMMITTED (the default) the same call verifies.
    assert_eq!(verify_code(&mut rr, &key), "VALID");
}
