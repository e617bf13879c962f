//! Helpers the `#[pg_test]`s share: SQL run in a subtransaction, organizations and keys
//! made as the test's superuser, verify with a pinned clock.
use pgrx::prelude::*;

/// The SQLSTATE a statement raises ('00000' when it succeeds), caught in a
/// subtransaction so the test's transaction goes on.
pub fn sqlstate_of(sql: &str) -> String {
    let defined =
        Spi::get_one::<bool>("SELECT to_regprocedure('pg_temp.sqlstate_of(text)') IS NOT NULL")
            .unwrap();
    if defined != Some(true) {
        Spi::run(
            "CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$ \
         BEGIN EXECUTE q; RETURN '00000'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$",
        )
        .unwrap();
    }
    Spi::get_one_with_args::<String>("SELECT pg_temp.sqlstate_of($1)", &[sql.into()])
        .unwrap()
        .unwrap()
}

pub fn org(id: &str) {
    Spi::run_with_args("SELECT apikey.create_organization($1)", &[id.into()]).unwrap();
}

/// Create a key as the test's superuser; returns (key_id, key).
pub fn org_key(org_id: &str, permissions: &str) -> (pgrx::Uuid, String) {
    let (id, key) = Spi::get_two_with_args::<pgrx::Uuid, String>(
        "SELECT key_id, key FROM apikey.create_api_key(org_id => $1, permissions => $2::jsonb)",
        &[org_id.into(), permissions.into()],
    )
    .unwrap();
    (id.unwrap(), key.unwrap())
}

pub fn code_of(key: &str) -> String {
    Spi::get_one_with_args::<String>("SELECT code FROM apikey.verify_api_key($1)", &[key.into()])
        .unwrap()
        .unwrap()
}

// ------------------------------------------------------------ quotas, refill, rate limits
// These call the verify decision with a pinned clock, so the timing rules are checked
// exactly, without sleeping.

pub fn at(base: i64, offset_ms: i64) -> pgrx::datum::TimestampWithTimeZone {
    pgrx::datum::TimestampWithTimeZone::try_from(base + offset_ms * 1000).unwrap()
}

pub fn clock() -> i64 {
    crate::backend::micros(crate::backend::now_tz())
}

pub fn limited_key(args: &str) -> (pgrx::Uuid, String) {
    let sql = format!("SELECT key_id, key FROM apikey.create_api_key(org_id => 'acme', {args})");
    let (id, key) = Spi::get_two::<pgrx::Uuid, String>(&sql).unwrap();
    (id.unwrap(), key.unwrap())
}

pub fn verify_at(
    key: &str,
    required: Option<&str>,
    t: pgrx::datum::TimestampWithTimeZone,
) -> (String, Option<i64>, Option<pgrx::datum::Interval>) {
    let (code, remaining, retry_after, _) = crate::verify::decide_for_test(key, required, 1, t);
    (code, remaining, retry_after)
}

// ------------------------------------------------------------ metered APIs (0.2.0)

/// verify's answer: code, remaining, retry_after in µs, and each rate limit's
/// (name, scope, remaining).
pub type Metered = (
    String,
    Option<i64>,
    Option<i128>,
    Vec<(String, String, i64)>,
);

/// verify at instant `t` with `cost`.
pub fn meter_at(key: &str, cost: i64, t: pgrx::datum::TimestampWithTimeZone) -> Metered {
    let (code, remaining, retry_after, limits) = crate::verify::decide_for_test(key, None, cost, t);
    let limits = limits
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l["name"].as_str().unwrap().to_string(),
                        l["scope"].as_str().unwrap().to_string(),
                        l["remaining"].as_i64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (
        code,
        remaining,
        retry_after.map(|iv| iv.as_micros()),
        limits,
    )
}

/// `calls` calls `every_ms` apart from `t0 + start_ms`, each must be VALID.
pub fn steady(key: &str, t0: i64, start_ms: i64, every_ms: i64, calls: i64, cost: i64) {
    for i in 0..calls {
        let t = start_ms + i * every_ms;
        let (code, ..) = meter_at(key, cost, at(t0, t));
        assert_eq!(code, "VALID", "call {i} at {t} ms");
    }
}

/// A key's stored quota and default-window count.
pub fn stored_counts(id: pgrx::Uuid) -> (Option<i64>, Option<i32>) {
    Spi::get_two_with_args::<i64, i32>(
        "SELECT remaining, rate_window_count FROM apikey.keys WHERE id = $1",
        &[id.into()],
    )
    .unwrap()
}
