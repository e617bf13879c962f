//! The statements of metering: a key's and an owner's quota and rate limits, read (locked
//! when the call will write) into [`Metered`], and written back after an admitted call;
//! an owner's limits set; the facts verify keeps per backend. The decision itself is
//! [`crate::meter::decide`], called by `crate::verify::metered`.
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::spi::SpiHeapTupleData;
use pgrx::Uuid;

use super::{
    col, first, holds, req, rows, run, stmt, Actor, Stmt, BOOL, INT4, INT8, INT8_ARRAY, INTERVAL,
    JSONB, TEXT, TIMESTAMPTZ, TIMESTAMPTZ_ARRAY, UUID,
};
use crate::backend::{micros, plus, timestamp};
use crate::jsonb::Jsonb;
use crate::key_settings::Settings;
use crate::meter::report::Metered;
use crate::meter::{self, Quota, Refill, Spent, Unit, Window};
use crate::owner::{Owner, OwnerKind};
use crate::rate_limits::{self, DEFAULT_NAME};

/// The named limits of a row that has `rate_limits`, `rate_counts` and `rate_resets`
/// columns, for a call at `now`.
fn named_windows(row: &SpiHeapTupleData<'_>, m: &mut Metered, now: TimestampWithTimeZone) {
    let Some(list) = col::<Jsonb>(row, "rate_limits") else {
        return;
    };
    let counts: Vec<Option<i64>> = col(row, "rate_counts").unwrap_or_default();
    let resets: Vec<Option<TimestampWithTimeZone>> = col(row, "rate_resets").unwrap_or_default();
    for (i, limit) in rate_limits::stored(list).into_iter().enumerate() {
        m.limits.windows.push(Window {
            limit: limit.limit,
            unit: limit.unit,
            count: counts.get(i).copied().flatten().unwrap_or(0),
            reset_at: resets.get(i).copied().flatten().map(micros),
            next_reset: micros(plus(now, limit.window)),
        });
        m.names.push(limit.name);
    }
}

fn quota(row: &SpiHeapTupleData<'_>) -> Option<Quota> {
    col::<i64>(row, "remaining").map(|remaining| Quota {
        remaining,
        refill: col::<i64>(row, "refill_amount").map(|amount| Refill {
            amount,
            at: micros(req(row, "refill_at")),
        }),
    })
}

static KEY_METER: Stmt = stmt!("key_meter.sql", [UUID, TIMESTAMPTZ]);
static KEY_METER_LOCKED: Stmt = stmt!(locked "key_meter.sql", [UUID, TIMESTAMPTZ]);
static KEY_METER_0_1_0: Stmt = stmt!("key_meter_0_1_0.sql", [UUID, TIMESTAMPTZ]);
static KEY_METER_LOCKED_0_1_0: Stmt = stmt!(locked "key_meter_0_1_0.sql", [UUID, TIMESTAMPTZ]);

/// Which schema the statements are written for: `V0_1_0` is a database still at 0.1.0,
/// served by this library until `ALTER EXTENSION pg_apikey UPDATE` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    V0_1_0,
    Current,
}

/// A key's limits, and the settings verify decided on before it read them (as the row
/// is when read: after the lock, if locked).
pub struct KeyMeter {
    pub metered: Metered,
    pub enabled: bool,
    pub expires_at: Option<TimestampWithTimeZone>,
    pub permissions: Option<Jsonb>,
}

/// Key `key_id`'s limits at `now`, its row locked when `lock`; `None`: gone or revoked.
pub fn key_meter(
    key_id: Uuid,
    now: TimestampWithTimeZone,
    lock: bool,
    schema: Schema,
) -> Option<KeyMeter> {
    let stmt = match (lock, schema) {
        (true, Schema::Current) => &KEY_METER_LOCKED,
        (false, Schema::Current) => &KEY_METER,
        (true, Schema::V0_1_0) => &KEY_METER_LOCKED_0_1_0,
        (false, Schema::V0_1_0) => &KEY_METER_0_1_0,
    };
    first(stmt, &[key_id.into(), now.into()], |row| {
        let default = col::<i32>(row, "rate_limit_max").map(|max| Window {
            limit: i64::from(max),
            unit: Unit::Requests,
            count: i64::from(req::<i32>(row, "rate_window_count")),
            reset_at: col(row, "rate_window_reset_at").map(micros),
            next_reset: micros(req(row, "default_next_reset")),
        });
        KeyMeter {
            metered: metered_row(row, now, default),
            enabled: req(row, "enabled"),
            expires_at: col(row, "expires_at"),
            permissions: col(row, "permissions"),
        }
    })
}

/// One party's limits from its row: the quota, then `default` (a key's
/// `rate_limit_max`/`rate_limit_window` window) and the named windows.
fn metered_row(
    row: &SpiHeapTupleData<'_>,
    now: TimestampWithTimeZone,
    default: Option<Window>,
) -> Metered {
    let mut m = Metered {
        limits: meter::Limits {
            windows: Vec::new(),
            quota: quota(row),
        },
        ..Metered::default()
    };
    if let Some(w) = default {
        m.limits.windows.push(w);
        m.names.push(DEFAULT_NAME.to_string());
        m.has_default = true;
    }
    named_windows(row, &mut m, now);
    m
}

/// The counts and ends of the named windows (after the default one), as stored arrays.
fn named_state(
    m: &Metered,
    windows: &[Window],
) -> (Option<Vec<i64>>, Option<Vec<Option<TimestampWithTimeZone>>>) {
    let named = &windows[usize::from(m.has_default)..];
    if named.is_empty() {
        return (None, None);
    }
    (
        Some(named.iter().map(|w| w.count).collect()),
        Some(named.iter().map(|w| w.reset_at.map(timestamp)).collect()),
    )
}

const KEY_METER_SPEND_ARGS: [pg_sys::Oid; 8] = [
    UUID,
    INT8,
    BOOL,
    INT4,
    TIMESTAMPTZ,
    INT8_ARRAY,
    TIMESTAMPTZ_ARRAY,
    TIMESTAMPTZ,
];
static KEY_METER_SPEND: Stmt = stmt!("key_meter_spend.sql", KEY_METER_SPEND_ARGS);
static KEY_METER_SPEND_0_1_0: Stmt = stmt!("key_meter_spend_0_1_0.sql", KEY_METER_SPEND_ARGS);

/// Record an admitted call of key `key_id`: its new windows and quota.
pub fn key_meter_spend(
    key_id: Uuid,
    m: &Metered,
    windows: &[Window],
    spent: Option<Spent>,
    now: TimestampWithTimeZone,
    schema: Schema,
) {
    let (default_count, default_reset) = match windows.first() {
        Some(w) if m.has_default => (
            Some(i32::try_from(w.count).expect("a default window counts at most an integer")),
            w.reset_at.map(timestamp),
        ),
        _ => (None, None),
    };
    let (counts, resets) = named_state(m, windows);
    let args = [
        key_id.into(),
        spent.map(|s| s.remaining).into(),
        spent.is_some_and(|s| s.refilled).into(),
        default_count.into(),
        default_reset.into(),
        counts.into(),
        resets.into(),
        now.into(),
    ];
    let stmt = match schema {
        Schema::Current => &KEY_METER_SPEND,
        Schema::V0_1_0 => &KEY_METER_SPEND_0_1_0,
    };
    run(stmt, &args, |_| ())
}

static OWNER_METER: Stmt = stmt!("owner_meter.sql", [TEXT, TEXT, TIMESTAMPTZ]);
static OWNER_METER_LOCKED: Stmt = stmt!(locked "owner_meter.sql", [TEXT, TEXT, TIMESTAMPTZ]);

/// An owner's limits and their settings, as `get_owner_limits` shows them.
pub struct OwnerLimits {
    pub metered: Metered,
    pub refill_amount: Option<i64>,
    pub refill_interval: Option<Interval>,
    pub rate_limits: Option<Jsonb>,
    pub set_at: TimestampWithTimeZone,
}

/// `owner`'s limits at `now`, its row locked when `lock`; `None`: it has none.
pub fn owner_meter(
    owner: Owner<'_>,
    now: TimestampWithTimeZone,
    lock: bool,
) -> Option<OwnerLimits> {
    let stmt = if lock {
        &OWNER_METER_LOCKED
    } else {
        &OWNER_METER
    };
    first(
        stmt,
        &[owner.kind.as_sql().into(), owner.id.into(), now.into()],
        |row| OwnerLimits {
            metered: metered_row(row, now, None),
            refill_amount: col(row, "refill_amount"),
            refill_interval: col(row, "refill_interval"),
            rate_limits: col(row, "rate_limits"),
            set_at: req(row, "set_at"),
        },
    )
}

static OWNER_METER_SPEND: Stmt = stmt!(
    "owner_meter_spend.sql",
    [
        TEXT,
        TEXT,
        INT8,
        BOOL,
        INT8_ARRAY,
        TIMESTAMPTZ_ARRAY,
        TIMESTAMPTZ
    ]
);

/// Record an admitted call against `owner`'s limits.
pub fn owner_meter_spend(
    owner: Owner<'_>,
    m: &Metered,
    windows: &[Window],
    spent: Option<Spent>,
    now: TimestampWithTimeZone,
) {
    let (counts, resets) = named_state(m, windows);
    let args = [
        owner.kind.as_sql().into(),
        owner.id.into(),
        spent.map(|s| s.remaining).into(),
        spent.is_some_and(|s| s.refilled).into(),
        counts.into(),
        resets.into(),
        now.into(),
    ];
    run(&OWNER_METER_SPEND, &args, |_| ())
}

static OWNER_LIMITS_SET: Stmt = stmt!(
    "owner_limits_set.sql",
    [
        TEXT,
        TEXT,
        INT8,
        INT8,
        INTERVAL,
        JSONB,
        TEXT,
        TEXT,
        TIMESTAMPTZ
    ]
);
static OWNER_LIMITS_DELETE: Stmt = stmt!("owner_limits_delete.sql", [TEXT, TEXT, TEXT, TEXT]);

/// Replace `owner`'s limits (all `None`: remove them), with the audit row: the settings
/// an owner can have too (remaining, refill_amount, refill_interval, rate_limits).
pub fn owner_limits_set(
    owner: Owner<'_>,
    limits: &Settings,
    by: &Actor<'_>,
    now: TimestampWithTimeZone,
) {
    let none = limits.remaining.is_none()
        && limits.refill_amount.is_none()
        && limits.refill_interval.is_none()
        && limits.rate_limits.is_none();
    let [role, identity] = by.args();
    if none {
        let args = [owner.kind.as_sql().into(), owner.id.into(), role, identity];
        return run(&OWNER_LIMITS_DELETE, &args, |_| ());
    }
    let args = [
        owner.kind.as_sql().into(),
        owner.id.into(),
        limits.remaining.into(),
        limits.refill_amount.into(),
        limits.refill_interval.into(),
        limits.rate_limits.into(),
        role,
        identity,
        now.into(),
    ];
    run(&OWNER_LIMITS_SET, &args, |_| ())
}

static OWNERS_WITH_LIMITS: Stmt = stmt!("owners_with_limits.sql", [INT8]);
static IMPORTED_KEYS_EXIST: Stmt = stmt!("imported_keys_exist.sql", []);

/// Every owner that has limits, as (kind, id); `None` when there are more than `most`.
pub fn owners_with_limits(most: i64) -> Option<Vec<(OwnerKind, String)>> {
    let owners = rows(&OWNERS_WITH_LIMITS, &[(most + 1).into()], |r| {
        let kind: String = req(r, "owner_kind");
        let kind = OwnerKind::from_sql(&kind).expect("owner_kind is checked to be org or user");
        (kind, req(r, "owner_id"))
    });
    (owners.len() as i64 <= most).then_some(owners)
}

pub fn imported_keys_exist() -> bool {
    holds(&IMPORTED_KEYS_EXIST, &[])
}
