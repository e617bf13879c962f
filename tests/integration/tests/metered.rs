//! Metered APIs under concurrency: cost per call, several named rate limits, and limits
//! shared by an owner's keys, exact with 8 clients on separate connections, each verify
//! its own transaction.
use std::time::Duration;

use pg_apikey_integration::*;

/// `n` keys of `<test>-org` with `settings`.
fn org_keys(
    su: &mut postgres::Client,
    test: &str,
    settings: &str,
    n: usize,
) -> Vec<(String, String)> {
    (0..n).map(|_| org_key(su, test, settings)).collect()
}

/// Set the limits shared by `<test>-org`'s keys: `limits` is set_owner_limits's named
/// arguments after `org_id`.
fn org_limits(su: &mut postgres::Client, test: &str, limits: &str) {
    su.batch_execute(&format!(
        "SELECT apikey.set_owner_limits(org_id => '{test}-org', {limits})"
    ))
    .unwrap();
}

fn texts(keys: &[(String, String)]) -> Vec<String> {
    keys.iter().map(|(_, k)| k.clone()).collect()
}

/// What is left of `org`'s quota in total (its row and its budget slots), as committed.
fn owner_remaining(su: &mut postgres::Client, org: &str) -> i64 {
    su.query_one(
        "SELECT remaining FROM apikey.get_owner_limits(org_id => $1)",
        &[&org],
    )
    .unwrap()
    .get(0)
}

/// What the keys have spent of `each` uses they started with.
fn keys_spent(su: &mut postgres::Client, keys: &[(String, String)], each: i64) -> i64 {
    keys.iter()
        .map(|(id, _)| {
            let left: i64 = stored_remaining(su, id);
            each - left
        })
        .sum()
}

#[test]
fn an_owner_quota_shared_by_eight_keys_admits_exactly_its_size() {
    let t = "mshared";
    let (mut su, api) = org_and_api_role(t);
    org_limits(&mut su, t, "remaining => 400");
    let keys = org_keys(&mut su, t, "", CLIENTS);
    let counts = race_keys(&api, &texts(&keys), 1, 60, None);
    assert_eq!(counts.get("VALID"), Some(&400), "{counts:?}");
    assert_eq!(
        counts.get("USAGE_EXCEEDED"),
        Some(&(CLIENTS * 60 - 400)),
        "{counts:?}"
    );
    assert_eq!(owner_remaining(&mut su, &format!("{t}-org")), 0);
}

#[test]
fn cost_three_against_a_quota_of_one_hundred_admits_thirty_three() {
    let t = "mcost";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(&mut su, t, "remaining => 100");
    let counts = race_keys(&api, &[key], 3, 10, None);
    assert_eq!(counts.get("VALID"), Some(&33), "{counts:?}");
    assert_eq!(
        counts.get("USAGE_EXCEEDED"),
        Some(&(CLIENTS * 10 - 33)),
        "{counts:?}"
    );
    let left: i64 = stored_remaining(&mut su, &id);
    assert_eq!(left, 1);
}

/// Each named window's count in total, for key row `k`: the row's count less what its
/// budget slots still hold of that window (the row's count includes what it handed out).
const TOTAL_COUNTS: &str = "ARRAY(SELECT u.c - coalesce((SELECT sum(s.windows[u.i]) FROM apikey.key_slots s
                                                   WHERE s.key_id = k.id), 0)
                     FROM unnest(k.rate_counts) WITH ORDINALITY AS u (c, i) ORDER BY u.i)::bigint[]";

#[test]
fn two_named_limits_each_admit_exactly_their_limit() {
    let t = "mtwo";
    let (mut su, api) = org_and_api_role(t);
    let (id, key) = org_key(
        &mut su,
        t,
        r#"rate_limits => '[{"name": "second", "limit": 5, "window": "1 second"},
                            {"name": "minute", "limit": 20, "window": "1 minute"}]'"#,
    );
    // A burst: the per-second limit admits exactly 5 of 40 concurrent calls.
    let counts = race_keys(&api, std::slice::from_ref(&key), 1, 5, None);
    assert_eq!(counts.get("VALID"), Some(&5), "{counts:?}");
    let (counts_now, resets): (Vec<i64>, i64) = {
        let row = su
            .query_one(
                &format!("SELECT {TOTAL_COUNTS}, cardinality(rate_resets) FROM apikey.keys k WHERE id = $1::text::uuid"),
                &[&id],
            )
            .unwrap();
        (row.get(0), i64::from(row.get::<_, i32>(1)))
    };
    assert_eq!(
        (counts_now, resets),
        (vec![5, 5], 2),
        "the refused calls counted nowhere"
    );
    // Steady pressure for 5.5 s: 5 more per second until the minute's 20 are used.
    let more = race_keys(
        &api,
        std::slice::from_ref(&key),
        1,
        10_000,
        Some((Duration::from_millis(5_500), Duration::from_millis(20))),
    );
    assert_eq!(
        counts.get("VALID").unwrap() + more.get("VALID").unwrap_or(&0),
        20,
        "{counts:?} {more:?}"
    );
    let minute: Vec<i64> = su
        .query_one(
            &format!("SELECT {TOTAL_COUNTS} FROM apikey.keys k WHERE id = $1::text::uuid"),
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(minute[1], 20);
    assert!(minute[0] <= 5, "{minute:?}");
}

#[test]
fn an_owner_rate_limit_over_eight_keys_admits_exactly_its_limit_and_spends_no_refused_quota() {
    let t = "mowner";
    let (mut su, api) = org_and_api_role(t);
    org_limits(
        &mut su,
        t,
        r#"rate_limits => '[{"name": "org", "limit": 50, "window": "1 hour"}]'"#,
    );
    let keys = org_keys(&mut su, t, "remaining => 1000", CLIENTS);
    let counts = race_keys(&api, &texts(&keys), 1, 20, None);
    assert_eq!(counts.get("VALID"), Some(&50), "{counts:?}");
    assert_eq!(
        counts.get("RATE_LIMITED"),
        Some(&(CLIENTS * 20 - 50)),
        "{counts:?}"
    );
    // The calls the owner's limit refused spent none of the keys' quotas.
    assert_eq!(keys_spent(&mut su, &keys, 1000), 50);
}

#[test]
fn a_call_refused_by_its_keys_limit_spends_none_of_the_owners_quota() {
    let t = "mreverse";
    let (mut su, api) = org_and_api_role(t);
    org_limits(&mut su, t, "remaining => 1000");
    let keys = org_keys(
        &mut su,
        t,
        "rate_limit_max => 5, rate_limit_window => '1 hour'",
        CLIENTS,
    );
    let counts = race_keys(&api, &texts(&keys), 2, 20, None);
    assert_eq!(counts.get("VALID"), Some(&(CLIENTS * 5)), "{counts:?}");
    assert_eq!(owner_remaining(&mut su, &format!("{t}-org")), 1000 - 2 * 40);
    // And a key's own quota refusing: the owner's quota is not spent either.
    let (_, small) = org_key(&mut su, t, "remaining => 3");
    let counts = race_keys(&api, &[small], 1, 10, None);
    assert_eq!(counts.get("VALID"), Some(&3), "{counts:?}");
    assert_eq!(owner_remaining(&mut su, &format!("{t}-org")), 1000 - 80 - 3);
}

#[test]
fn rate_limits_give_what_x_ratelimit_headers_need() {
    let t = "mheaders";
    let (mut su, api) = org_and_api_role(t);
    org_limits(
        &mut su,
        t,
        r#"remaining => 100000,
           rate_limits => '[{"name": "org-daily", "limit": 1000, "window": "1 day"}]'"#,
    );
    let (_, key) = org_key(
        &mut su,
        t,
        r#"rate_limits => '[{"name": "burst", "limit": 10, "window": "1 minute"}]'"#,
    );
    let mut c = connect(&api);
    // The headers an HTTP handler sends come from the tightest limit in force:
    // X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset (seconds from now).
    let row = c
        .query_one(
            "WITH v AS (SELECT * FROM apikey.verify_api_key($1, cost => 7)),
                  l AS (SELECT e FROM v, jsonb_array_elements(v.rate_limits) e
                         ORDER BY (e ->> 'remaining')::bigint LIMIT 1)
             SELECT v.valid, v.remaining, jsonb_array_length(v.rate_limits),
                    l.e ->> 'name', l.e ->> 'scope', (l.e ->> 'limit')::bigint,
                    (l.e ->> 'remaining')::bigint,
                    extract(epoch FROM (l.e ->> 'reset_at')::timestamptz - clock_timestamp())::float8
               FROM v, l",
            &[&key],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(
        row.get::<_, i64>(1),
        100_000 - 7,
        "the owner's quota, the only one"
    );
    assert_eq!(row.get::<_, i32>(2), 2, "the key's limit and the owner's");
    assert_eq!(row.get::<_, String>(3), "burst");
    assert_eq!(row.get::<_, String>(4), "key");
    assert_eq!(row.get::<_, i64>(5), 10, "X-RateLimit-Limit");
    assert_eq!(row.get::<_, i64>(6), 9, "X-RateLimit-Remaining");
    let reset_in: f64 = row.get(7);
    assert!(
        (50.0..=60.0).contains(&reset_in),
        "X-RateLimit-Reset: {reset_in}"
    );
    // The owner's daily limit counted the call once (unit requests).
    let daily: i64 = c
        .query_one(
            "SELECT (l ->> 'remaining')::bigint
               FROM apikey.verify_api_key($1, cost => 0), jsonb_array_elements(rate_limits) l
              WHERE l ->> 'name' = 'org-daily'",
            &[&key],
        )
        .unwrap()
        .get(0);
    assert_eq!(daily, 999);
}
