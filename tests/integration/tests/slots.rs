//! Counting that scales: one hot key, and an organization's keys sharing its limits,
//! verified by 16 connections at once (each call its own transaction). Their budgets are
//! split into slots under that concurrency; what must hold is what held before: never
//! more admitted than a limit allows, no refusal while the total has enough, and setters
//! that set the total exactly while verifies run.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pg_apikey_integration::*;

const SIXTEEN: usize = 16;

/// 16 connections verify `keys[i % len]` `per_client` times each with `cost`.
fn race16(role: &str, keys: &[String], cost: i32, per_client: usize) -> HashMap<String, usize> {
    race_clients(SIXTEEN, role, keys, cost, per_client, None)
}

fn slots_of_key(su: &mut postgres::Client, id: &str) -> i64 {
    su.query_one(
        "SELECT count(*) FROM apikey.key_slots WHERE key_id = $1::text::uuid",
        &[&id],
    )
    .unwrap()
    .get(0)
}

fn org_keys(su: &mut postgres::Client, t: &str, n: usize) -> Vec<String> {
    (0..n).map(|_| org_key(su, t, "").1).collect()
}

/// What is left of `org`'s quota, and of its first rate limit, as `get_owner_limits`
/// reports them.
fn owner_left(su: &mut postgres::Client, org: &str) -> (Option<i64>, Option<i64>) {
    let row = su
        .query_one(
            "SELECT remaining, (rate_limit_state -> 0 ->> 'remaining')::bigint
               FROM apikey.get_owner_limits(org_id => $1)",
            &[&org],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn a_hot_key_with_a_quota_of_2000_admits_exactly_2000() {
    let t = "shot";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(&mut su, t, "remaining => 2000");
    let counts = race16(&api, &[key], 1, 150);
    assert_eq!(counts.get("VALID"), Some(&2000), "{counts:?}");
    assert_eq!(counts.get("USAGE_EXCEEDED"), Some(&400), "{counts:?}");
    assert_eq!(stored_remaining(&mut su, &id), 0);
}

#[test]
fn no_false_refusal_800_calls_on_a_quota_of_1000_are_all_admitted() {
    let t = "snofalse";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(&mut su, t, "remaining => 1000");
    let counts = race16(&api, &[key], 1, 50);
    assert_eq!(counts.get("VALID"), Some(&800), "{counts:?}");
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(stored_remaining(&mut su, &id), 200);
    // The budget was split: 16 clients on one key made slots, and what is left is the
    // row's count plus theirs.
    assert!(slots_of_key(&mut su, &id) >= 2, "no budget slots were made");
    let row: i64 = su
        .query_one(
            "SELECT remaining FROM apikey.keys WHERE id = $1::text::uuid",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert!(row < 200, "the row holds everything: {row}");
}

#[test]
fn cost_seven_against_1000_admits_exactly_142() {
    let t = "scost";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(&mut su, t, "remaining => 1000");
    let counts = race16(&api, &[key], 7, 20);
    assert_eq!(counts.get("VALID"), Some(&142), "{counts:?}");
    assert_eq!(
        counts.get("USAGE_EXCEEDED"),
        Some(&(320 - 142)),
        "{counts:?}"
    );
    assert_eq!(stored_remaining(&mut su, &id), 6);
}

#[test]
fn a_named_limit_of_500_an_hour_admits_exactly_500() {
    let t = "snamed";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(
        &mut su,
        t,
        r#"rate_limits => '[{"name": "hourly", "limit": 500, "window": "1 hour"}]'"#,
    );
    let counts = race16(&api, std::slice::from_ref(&key), 1, 40);
    assert_eq!(counts.get("VALID"), Some(&500), "{counts:?}");
    assert_eq!(counts.get("RATE_LIMITED"), Some(&140), "{counts:?}");
    // Verify's answer counts every slot: nothing of the hour is left.
    let mut c = connect(&api);
    let (code, left): (String, i64) = {
        let row = c
            .query_one(
                "SELECT code, (rate_limits -> 0 ->> 'remaining')::bigint FROM apikey.verify_api_key($1)",
                &[&key],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((code.as_str(), left), ("RATE_LIMITED", 0));
    let counted: i64 = su
        .query_one(
            "SELECT rate_counts[1] - coalesce((SELECT sum(s.windows[1]) FROM apikey.key_slots s
                                               WHERE s.key_id = k.id), 0)::bigint
               FROM apikey.keys k WHERE k.id = $1::text::uuid",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(counted, 500);
}

#[test]
fn an_organization_quota_of_1000_over_8_keys_admits_exactly_1000() {
    let t = "sorgq";
    let (mut su, api) = org_and_api_role(t);
    su.batch_execute(&format!(
        "SELECT apikey.set_owner_limits(org_id => '{t}-org', remaining => 1000)"
    ))
    .unwrap();
    let keys = org_keys(&mut su, t, 8);
    let counts = race16(&api, &keys, 1, 80);
    assert_eq!(counts.get("VALID"), Some(&1000), "{counts:?}");
    assert_eq!(counts.get("USAGE_EXCEEDED"), Some(&280), "{counts:?}");
    assert_eq!(owner_left(&mut su, &format!("{t}-org")).0, Some(0));
}

#[test]
fn an_organization_rate_limit_over_8_keys_admits_exactly_its_limit() {
    let t = "sorgr";
    let (mut su, api) = org_and_api_role(t);
    su.batch_execute(&format!(
        r#"SELECT apikey.set_owner_limits(org_id => '{t}-org',
               rate_limits => '[{{"name": "plan", "limit": 300, "window": "1 hour"}}]')"#
    ))
    .unwrap();
    let keys = org_keys(&mut su, t, 8);
    let counts = race16(&api, &keys, 1, 30);
    assert_eq!(counts.get("VALID"), Some(&300), "{counts:?}");
    assert_eq!(counts.get("RATE_LIMITED"), Some(&180), "{counts:?}");
    assert_eq!(owner_left(&mut su, &format!("{t}-org")).1, Some(0));
}

/// 16 connections verify `keys` until each has seen 20 answers after `set` committed (at
/// most 60 s); `set` runs on its own connection 300 ms in, holds its transaction 300 ms,
/// and commits. Returns the VALID answers of calls that ended after the commit was sent:
/// every call that ended before it committed before it (the set holds every part of the
/// budget until it commits, so none can end in between).
fn valid_after_a_racing_set(su_set: &str, role: &str, keys: &[String]) -> usize {
    let begin = Arc::new(Barrier::new(SIXTEEN + 1));
    let committed: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..SIXTEEN)
        .map(|i| {
            let (role, key) = (role.to_string(), keys[i % keys.len()].clone());
            let (begin, committed) = (begin.clone(), committed.clone());
            thread::spawn(move || {
                let mut c = connect(&role);
                begin.wait();
                let started = Instant::now();
                let mut answers = Vec::new();
                let mut after = 0;
                while after < 20 && started.elapsed() < Duration::from_secs(60) {
                    let code: String = c
                        .query_one("SELECT code FROM apikey.verify_api_key($1)", &[&key])
                        .unwrap()
                        .get(0);
                    let ended = Instant::now();
                    if committed.lock().unwrap().is_some_and(|t| ended >= t) {
                        after += 1;
                    }
                    answers.push((ended, code));
                }
                answers
            })
        })
        .collect();
    let setter = {
        let (begin, committed, done) = (begin.clone(), committed.clone(), done.clone());
        let sql = su_set.to_string();
        thread::spawn(move || {
            let mut su = superuser();
            begin.wait();
            thread::sleep(Duration::from_millis(300));
            su.batch_execute("BEGIN").unwrap();
            su.batch_execute(&sql).unwrap();
            thread::sleep(Duration::from_millis(300));
            *committed.lock().unwrap() = Some(Instant::now());
            su.batch_execute("COMMIT").unwrap();
            done.store(true, Ordering::SeqCst);
        })
    };
    let answers: Vec<(Instant, String)> = clients
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    setter.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    let at = committed.lock().unwrap().unwrap();
    let before = answers.iter().filter(|(t, _)| *t < at).count();
    assert!(
        before > 16,
        "the set came before the race: {before} calls before it"
    );
    answers
        .iter()
        .filter(|(t, code)| *t >= at && code == "VALID")
        .count()
}

#[test]
fn update_remaining_to_50_while_slots_exist_admits_exactly_50_more() {
    let t = "sset";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(&mut su, t, "remaining => 1000000");
    // Slots first: a race on the key.
    let warm = race16(&api, std::slice::from_ref(&key), 1, 20);
    assert_eq!(warm.get("VALID"), Some(&320), "{warm:?}");
    assert!(slots_of_key(&mut su, &id) >= 2, "no budget slots were made");
    // Then the total set to 50 while 16 connections verify.
    let set = format!("SELECT apikey.update_api_key('{id}', remaining => 50)");
    assert_eq!(valid_after_a_racing_set(&set, &api, &[key]), 50);
    assert_eq!(stored_remaining(&mut su, &id), 0);
}

#[test]
fn set_owner_limits_while_8_keys_verify_admits_exactly_the_new_quota() {
    let t = "sownerset";
    let (mut su, api) = org_and_api_role(t);
    su.batch_execute(&format!(
        "SELECT apikey.set_owner_limits(org_id => '{t}-org', remaining => 1000000)"
    ))
    .unwrap();
    let keys = org_keys(&mut su, t, 8);
    let set = format!("SELECT apikey.set_owner_limits(org_id => '{t}-org', remaining => 50)");
    assert_eq!(valid_after_a_racing_set(&set, &api, &keys), 50);
    assert_eq!(owner_left(&mut su, &format!("{t}-org")).0, Some(0));
}
