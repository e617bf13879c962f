//! Quotas, refills and rate limits under concurrent verifies from separate connections,
//! and the fixed window's timing on a real clock.
use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use pg_apikey_integration::*;

/// `CLIENTS` connections verify `key` `per_client` times each, all starting together;
/// returns how many times each code came back.
fn race(role: &str, key: &str, per_client: usize) -> HashMap<String, usize> {
    race_keys(role, &[key.to_string()], 1, per_client, None)
}

#[test]
fn exactly_remaining_verifies_succeed_under_concurrency() {
    let t = "cquota";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(&mut su, t, "remaining => 50");
    let counts = race(&api, &key, 20);
    assert_eq!(counts.get("VALID"), Some(&50), "{counts:?}");
    assert_eq!(
        counts.get("USAGE_EXCEEDED"),
        Some(&(CLIENTS * 20 - 50)),
        "{counts:?}"
    );
    let left: i64 = stored_remaining(&mut su, &id);
    assert_eq!(left, 0);
}

#[test]
fn exactly_rate_limit_max_admissions_under_concurrency() {
    let t = "crate";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(
        &mut su,
        t,
        "rate_limit_max => 50, rate_limit_window => '1 hour'",
    );
    let counts = race(&api, &key, 20);
    assert_eq!(counts.get("VALID"), Some(&50), "{counts:?}");
    assert_eq!(
        counts.get("RATE_LIMITED"),
        Some(&(CLIENTS * 20 - 50)),
        "{counts:?}"
    );
    let n: i32 = su
        .query_one(
            "SELECT rate_window_count FROM apikey.keys WHERE id = $1::text::uuid",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 50);
}

#[test]
fn refill_happens_exactly_once_per_interval_under_concurrency() {
    let t = "crefill";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(
        &mut su,
        t,
        "remaining => 0, refill_amount => 5, refill_interval => '1 hour'",
    );
    assert_eq!(verify_code(&mut su, &key), "USAGE_EXCEEDED");
    // Two intervals have passed since creation: one refill is due, not two.
    su.execute("UPDATE apikey.keys SET created_at = created_at - interval '2 hours' WHERE id = $1::text::uuid", &[&id])
        .unwrap();
    let counts = race(&api, &key, 5);
    assert_eq!(counts.get("VALID"), Some(&5), "{counts:?}");
    assert_eq!(
        counts.get("USAGE_EXCEEDED"),
        Some(&(CLIENTS * 5 - 5)),
        "{counts:?}"
    );
    let row = su
        .query_one(
            "SELECT remaining, last_refill_at > now() - interval '1 minute' FROM apikey.keys WHERE id = $1::text::uuid",
            &[&id],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, bool>(1)), (0, true));
}

#[test]
fn quota_and_rate_limit_together_stay_exact() {
    let t = "cboth";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(
        &mut su,
        t,
        "remaining => 30, rate_limit_max => 40, rate_limit_window => '1 hour'",
    );
    let counts = race(&api, &key, 10);
    // 30 uses admitted; the other 50 are refused for usage, which spends no rate limit.
    assert_eq!(counts.get("VALID"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("USAGE_EXCEEDED"), Some(&50), "{counts:?}");
    let row = su
        .query_one(
            // The totals: the row's counts with what its budget slots hold (the row's
            // window count includes the allowance handed to slots).
            "SELECT k.remaining + coalesce((SELECT sum(s.quota) FROM apikey.key_slots s WHERE s.key_id = k.id), 0)::bigint,
                    k.rate_window_count - coalesce((SELECT sum(s.windows[1]) FROM apikey.key_slots s WHERE s.key_id = k.id), 0)::int
               FROM apikey.keys k WHERE k.id = $1::text::uuid",
            &[&id],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i32>(1)), (0, 30));
}

/// The steady-traffic case of docs/sql-reference.md (2 per second; requests at 0, 0.5, 0.9, 1.25 s) on a real
/// clock, scaled by 8 so that a slow machine keeps a wide margin on every side.
#[test]
fn steady_traffic_is_admitted_again_when_the_window_ends() {
    let t = "csteady";
    let (mut su, api) = org_and_api_role(t);
    let (_, key) = org_key(
        &mut su,
        t,
        "rate_limit_max => 2, rate_limit_window => '8 seconds'",
    );
    let mut c = connect(&api);
    let t0 = Instant::now();
    let mut codes = Vec::new();
    for at_ms in [0u64, 4_000, 7_200, 10_000] {
        let due = t0 + Duration::from_millis(at_ms);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        codes.push(verify_code(&mut c, &key));
    }
    assert_eq!(codes, ["VALID", "VALID", "RATE_LIMITED", "VALID"]);
}

/// `apikey.usage_synchronous_commit = off` relaxes the commit of a single-statement
/// verify that records usage, never an explicit transaction's; counts stay exact.
#[test]
fn async_usage_commit_is_opt_in_and_stays_exact() {
    let t = "casync";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(&mut su, t, "remaining => 40");
    let probe = "SELECT (SELECT code FROM apikey.verify_api_key($1)), current_setting('synchronous_commit')";
    let mut c = connect(&api);
    let row = c.query_one(probe, &[&key]).unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("VALID".into(), "on".into())
    );
    // Only a superuser turns it off (here for the api role's sessions).
    assert_eq!(
        sqlstate(c.batch_execute("SET apikey.usage_synchronous_commit = off")),
        "42501"
    );
    su.batch_execute(&format!(
        "ALTER ROLE \"{api}\" SET apikey.usage_synchronous_commit = off"
    ))
    .unwrap();
    let mut c = connect(&api);
    let row = c.query_one(probe, &[&key]).unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("VALID".into(), "off".into())
    );
    // Inside an explicit transaction the application's commit is left alone.
    let mut tx = c.transaction().unwrap();
    let row = tx.query_one(probe, &[&key]).unwrap();
    assert_eq!(row.get::<_, String>(1), "on");
    tx.commit().unwrap();
    // Exact under concurrency all the same: 37 uses left for 8 × 10 racing verifies.
    let counts = race(&api, &key, 10);
    assert_eq!(counts.get("VALID"), Some(&37), "{counts:?}");
    let left: i64 = stored_remaining(&mut su, &id);
    assert_eq!(left, 0);
}
