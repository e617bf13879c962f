//! Usage analytics (`src/usage`): what was counted, by key and by owner, written and still
//! in memory; what this server counted and has not written; a write now.
use std::time::{Duration, Instant};

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::Uuid;

use super::caller_and_key;
use super::limits::one_owner;
use crate::authz::{self, Action};
use crate::backend::timestamp;
use crate::caller::{as_owner, Caller};
use crate::error;
use crate::owner::OwnerKind;
use crate::storage::usage::{self as store, UsageRow};
use crate::usage::{shared, ReadLock};

/// How long `flush_usage` waits for the writer's round.
const FLUSH_WAIT: Duration = Duration::from_secs(60);

/// 55000 unless the shared table exists.
fn require_analytics(what: &str) {
    if !shared::available() {
        error::not_ready(
            format!("{what} needs usage analytics, which needs pg_apikey in shared_preload_libraries"),
            "Add pg_apikey to shared_preload_libraries in postgresql.conf (ALTER SYSTEM SET shared_preload_libraries = 'pg_apikey' keeps others you list with it) and restart PostgreSQL; apikey.usage_analytics (default on) turns counting on and off.",
        );
    }
}

/// The range and bucket arguments, checked (22023).
fn check_range(
    since: Option<TimestampWithTimeZone>,
    until: Option<TimestampWithTimeZone>,
    bucket: Option<&str>,
) -> (TimestampWithTimeZone, TimestampWithTimeZone, &str) {
    let bucket = match bucket {
        Some(b @ ("hour" | "day" | "month")) => b,
        other => error::bad_arg(
            format!("bucket must be 'hour', 'day' or 'month', not {}", other.map_or("NULL".into(), |b| format!("'{b}'"))),
            "Pass bucket => 'day' (the default), 'hour' or 'month'; days and months are those of the session's TimeZone.",
        ),
    };
    let (Some(since), Some(until)) = (since, until) else {
        error::bad_arg(
            "since and until must not be NULL",
            "Leave them out for the last 30 days, or pass the start and end of the range.",
        )
    };
    if since > until {
        error::bad_arg(
            "since is after until",
            "Pass since <= until; the range holds the hours that start from since's hour until before until.",
        );
    }
    (since, until, bucket)
}

/// One key's calls and cost by bucket and code: the written hourly rows and what is
/// counted in memory and not yet written. Readable by whoever may read the key (others:
/// P0002, as `get_api_key`).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // the contract's result columns
fn key_usage(
    key_id: Option<Uuid>,
    since: default!(Option<TimestampWithTimeZone>, "now() - interval '30 days'"),
    until: default!(Option<TimestampWithTimeZone>, "now()"),
    bucket: default!(Option<&str>, "'day'"),
) -> TableIterator<
    'static,
    (
        name!(bucket_start, TimestampWithTimeZone),
        name!(code, String),
        name!(calls, i64),
        name!(cost, i64),
    ),
> {
    require_analytics("apikey.key_usage");
    let (caller, key_id) = caller_and_key(key_id);
    let (since, until, bucket) = check_range(since, until, bucket);
    let rows = as_owner(|| {
        authz::authorize_key(&caller, key_id, Action::Read);
        let _lock = ReadLock::take();
        let live: Vec<_> = shared::live(Some(my_db()))
            .into_iter()
            .filter(|c| c.key_id() == Some(key_id))
            .collect();
        store::of_key(key_id, since, until, bucket, &live)
    });
    TableIterator::new(
        rows.into_iter()
            .map(|r| (r.bucket_start, r.code, r.calls, r.cost)),
    )
}

/// An owner's keys' calls and cost by bucket, key and code (exactly one of org_id and
/// user_id). Trusted callers, members whose role allows read, a user for its own keys
/// (others: P0002, as `get_owner_limits`).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // the contract's result columns
fn owner_usage(
    org_id: default!(Option<&str>, "NULL"),
    user_id: default!(Option<&str>, "NULL"),
    since: default!(Option<TimestampWithTimeZone>, "now() - interval '30 days'"),
    until: default!(Option<TimestampWithTimeZone>, "now()"),
    bucket: default!(Option<&str>, "'day'"),
) -> TableIterator<
    'static,
    (
        name!(bucket_start, TimestampWithTimeZone),
        name!(key_id, Option<Uuid>),
        name!(code, String),
        name!(calls, i64),
        name!(cost, i64),
    ),
> {
    require_analytics("apikey.owner_usage");
    let caller = Caller::current();
    let owner = one_owner(org_id, user_id, "the usage of its keys");
    let (since, until, bucket) = check_range(since, until, bucket);
    let rows: Vec<UsageRow> = as_owner(|| {
        authz::authorize_owner_read(
            &caller,
            owner,
            "usage",
            "Trusted callers, and members whose role allows read, see an organization's usage; a user sees its own keys'.",
        );
        let _lock = ReadLock::take();
        let live = shared::live(Some(my_db()));
        store::of_owner(
            owner.kind == OwnerKind::Org,
            owner.id,
            since,
            until,
            bucket,
            &live,
        )
    });
    TableIterator::new(
        rows.into_iter()
            .map(|r| (r.bucket_start, r.key_id, r.code, r.calls, r.cost)),
    )
}

/// What this server counted in this database and has not written yet, by key, hour and
/// code (key_id NULL: unknown keys, and the OVERFLOW counter). Trusted callers only. On a
/// standby, where nothing is written, everything it counted since it started.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // the contract's result columns
fn usage_live() -> TableIterator<
    'static,
    (
        name!(key_id, Option<Uuid>),
        name!(bucket_start, TimestampWithTimeZone),
        name!(code, String),
        name!(calls, i64),
        name!(cost, i64),
    ),
> {
    require_analytics("apikey.usage_live");
    Caller::current().require_trusted("apikey.usage_live");
    let mut live = shared::live(Some(my_db()));
    live.sort_by_key(|c| (c.hour, c.key, c.code));
    TableIterator::new(live.into_iter().map(|c| {
        (
            c.key_id(),
            timestamp(c.hour),
            c.code_name().to_string(),
            i64::try_from(c.calls).unwrap_or(i64::MAX),
            i64::try_from(c.cost).unwrap_or(i64::MAX),
        )
    }))
}

/// Write what is counted now, without waiting for the next interval: asks the background
/// writer for a round and waits for it (at most a minute). Returns how many counters of
/// this database it wrote. Trusted callers only.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn flush_usage() -> i64 {
    require_analytics("apikey.flush_usage");
    Caller::current().require_trusted("apikey.flush_usage");
    // SAFETY: reads shared state under its own lock.
    if unsafe { pg_sys::RecoveryInProgress() } {
        error::raise(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "usage counts are not written on a standby",
            "Read them with apikey.usage_live() on the standby, and store them on the primary if you need them there (docs/usage-analytics.md).",
        );
    }
    let seq = shared::request_round();
    let started = Instant::now();
    while !shared::is_done(seq) {
        if started.elapsed() > FLUSH_WAIT {
            error::not_ready(
                format!(
                    "the usage writer did not finish a round within {} s",
                    FLUSH_WAIT.as_secs()
                ),
                if shared::writer_running() {
                    "It may be waiting for a lock (a session in a long transaction); see the server log for \"pg_apikey usage\"."
                } else {
                    "The background worker \"pg_apikey usage writer\" is not running; see the server log (max_worker_processes?)."
                },
            );
        }
        shared::wake_writer();
        // SAFETY: waits on this backend's own latch for 20 ms, then resets it and checks
        // for interrupts (a cancel ends the wait).
        unsafe {
            pg_sys::WaitLatch(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                20,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
        pgrx::check_for_interrupts!();
    }
    match shared::written(my_db(), seq) {
        Some(n) => i64::try_from(n).unwrap_or(i64::MAX),
        None => error::not_ready(
            "the usage writer could not write this database's counts (they stay in memory, and the next round tries again)",
            "See the server log for the error of \"pg_apikey usage flush\" (a lock held for more than 5 s, for instance).",
        ),
    }
}

fn my_db() -> u32 {
    // SAFETY: a backend global, set at connection.
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}
