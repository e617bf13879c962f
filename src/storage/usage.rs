//! The statements of usage analytics: the writer's (`src/usage/worker.rs`) and the
//! readers' (`src/api/usage.rs`).
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::Uuid;

use super::{
    col, first, req, rows, run, stmt, Stmt, INT4, INT8_ARRAY, TEXT, TEXT_ARRAY, TIMESTAMPTZ,
    TIMESTAMPTZ_ARRAY, UUID, UUID_ARRAY,
};
use crate::backend::timestamp;
use crate::usage::Counter;

static PIN: Stmt = stmt!("usage_pin.sql", []);
static TABLES: Stmt = stmt!("usage_tables.sql", []);
static LOCK: Stmt = stmt!("usage_lock.sql", [INT4, INT4]);
static WRITE: Stmt = stmt!(
    "usage_write.sql",
    [
        UUID_ARRAY,
        TIMESTAMPTZ_ARRAY,
        TEXT_ARRAY,
        INT8_ARRAY,
        INT8_ARRAY
    ]
);
static LAST_USED: Stmt = stmt!("usage_last_used.sql", [UUID_ARRAY, TIMESTAMPTZ_ARRAY]);
static EXPIRE: Stmt = stmt!("usage_expire.sql", [INT4]);
static OF_KEY: Stmt = stmt!(
    "usage_key.sql",
    [
        UUID,
        TIMESTAMPTZ,
        TIMESTAMPTZ,
        TEXT,
        TIMESTAMPTZ_ARRAY,
        TEXT_ARRAY,
        INT8_ARRAY,
        INT8_ARRAY
    ]
);
/// The arguments of an owner's counts: the owner, since, until, bucket, and the counters
/// in memory as columns. Two statements, not one with an OR: each filters its table by
/// the owner with a condition its partial index (org_id, or a user's own keys) can serve
/// in a kept generic plan.
const OWNER_ARGS: [pgrx::pg_sys::Oid; 9] = [
    TEXT,
    TIMESTAMPTZ,
    TIMESTAMPTZ,
    TEXT,
    UUID_ARRAY,
    TIMESTAMPTZ_ARRAY,
    TEXT_ARRAY,
    INT8_ARRAY,
    INT8_ARRAY,
];
static OF_ORG: Stmt = stmt!("usage_org.sql", OWNER_ARGS);
static OF_USER: Stmt = stmt!("usage_user.sql", OWNER_ARGS);

/// The writer's transaction settings (search_path, lock_timeout).
pub fn pin_session() {
    run(&PIN, &[], |_| ());
}

/// Which tables exist in this database.
pub struct Tables {
    pub keys: bool,
    pub usage: bool,
}

pub fn tables() -> Tables {
    first(&TABLES, &[], |r| Tables {
        keys: req(r, "keys"),
        usage: req(r, "usage"),
    })
    .expect("one row")
}

/// The writer's exclusive advisory lock, until its transaction ends.
pub fn lock_for_write() {
    run(
        &LOCK,
        &[
            crate::usage::LOCK_KEY1.into(),
            crate::usage::LOCK_KEY2.into(),
        ],
        |_| (),
    );
}

/// Counters as the columns of `unnest`: key ids, hour starts, codes, calls, cost.
struct Columns {
    keys: Vec<Option<Uuid>>,
    hours: Vec<TimestampWithTimeZone>,
    codes: Vec<&'static str>,
    calls: Vec<i64>,
    cost: Vec<i64>,
}

fn columns<'a>(counters: impl IntoIterator<Item = &'a Counter>) -> Columns {
    let mut c = Columns {
        keys: Vec::new(),
        hours: Vec::new(),
        codes: Vec::new(),
        calls: Vec::new(),
        cost: Vec::new(),
    };
    for n in counters {
        c.keys.push(n.key_id());
        c.hours.push(timestamp(n.hour));
        c.codes.push(n.code_name());
        c.calls.push(i64::try_from(n.calls).unwrap_or(i64::MAX));
        c.cost.push(i64::try_from(n.cost).unwrap_or(i64::MAX));
    }
    c
}

/// Add the counters to their hourly rows; the number of counters written.
pub fn write(counters: &[Counter]) -> u64 {
    let c = columns(counters);
    let args: [DatumWithOid<'_>; 5] = [
        c.keys.into(),
        c.hours.into(),
        c.codes.into(),
        c.calls.into(),
        c.cost.into(),
    ];
    run(&WRITE, &args, |_| ());
    counters.len() as u64
}

/// `last_used_at` of each key from its latest VALID call.
pub fn last_used(counters: &[Counter]) {
    let mut latest: std::collections::BTreeMap<[u8; 16], i64> = Default::default();
    for c in counters.iter().filter(|c| c.code == 0) {
        if let Some(k) = c.key {
            let at = latest.entry(k).or_insert(c.last_at);
            *at = (*at).max(c.last_at);
        }
    }
    if latest.is_empty() {
        return;
    }
    let keys: Vec<Uuid> = latest.keys().map(|k| Uuid::from_bytes(*k)).collect();
    let at: Vec<TimestampWithTimeZone> = latest.values().map(|&t| timestamp(t)).collect();
    run(&LAST_USED, &[keys.into(), at.into()], |_| ());
}

/// Delete hourly rows older than `minutes`.
pub fn expire(minutes: i32) {
    run(&EXPIRE, &[minutes.into()], |_| ());
}

/// A row of `key_usage` or `owner_usage`.
pub struct UsageRow {
    pub bucket_start: TimestampWithTimeZone,
    pub key_id: Option<Uuid>,
    pub code: String,
    pub calls: i64,
    pub cost: i64,
}

fn usage_row(r: &pgrx::spi::SpiHeapTupleData<'_>) -> UsageRow {
    UsageRow {
        bucket_start: req(r, "bucket_start"),
        key_id: col(r, "key_id"),
        code: req(r, "code"),
        calls: req(r, "calls"),
        cost: req(r, "cost"),
    }
}

/// One key's counts: written, and `live` (its counters in memory).
pub fn of_key(
    key_id: Uuid,
    since: TimestampWithTimeZone,
    until: TimestampWithTimeZone,
    bucket: &str,
    live: &[Counter],
) -> Vec<UsageRow> {
    let c = columns(live);
    let args: [DatumWithOid<'_>; 8] = [
        key_id.into(),
        since.into(),
        until.into(),
        bucket.into(),
        c.hours.into(),
        c.codes.into(),
        c.calls.into(),
        c.cost.into(),
    ];
    rows(&OF_KEY, &args, usage_row)
}

/// An owner's counts (an organization's keys, or a user's own), written and in memory.
pub fn of_owner(
    org: bool,
    owner_id: &str,
    since: TimestampWithTimeZone,
    until: TimestampWithTimeZone,
    bucket: &str,
    live: &[Counter],
) -> Vec<UsageRow> {
    let c = columns(live.iter().filter(|c| c.key.is_some()));
    let args: [DatumWithOid<'_>; 9] = [
        owner_id.into(),
        since.into(),
        until.into(),
        bucket.into(),
        c.keys.into(),
        c.hours.into(),
        c.codes.into(),
        c.calls.into(),
        c.cost.into(),
    ];
    rows(if org { &OF_ORG } else { &OF_USER }, &args, usage_row)
}
