//! The statements of metering: a key's and an owner's quota and rate limits, read (locked
//! when the call will write) into [`Metered`], and written back after an admitted call;
//! an owner's limits set; the facts verify keeps per backend. The decision itself is
//! [`crate::meter::decide`], called by `crate::verify::metered`.
use pgrx::datum::{DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::spi::SpiHeapTupleData;
use pgrx::Uuid;

use super::{
    col, first, holds, req, rows, run, stmt, Actor, Stmt, BOOL, BOOL_ARRAY, INT4, INT8, INT8_ARRAY,
    INTERVAL, JSONB, TEXT, TIMESTAMPTZ, TIMESTAMPTZ_ARRAY, UUID,
};
use crate::backend::{micros, plus, timestamp};
use crate::jsonb::Jsonb;
use crate::key_settings::Settings;
use crate::meter::report::Metered;
use crate::meter::{self, Held, Quota, Refill, Share, Spent, Unit, Window, MAX_SLOTS};
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
static KEY_METER_SKIP_LOCKED: Stmt = stmt!(skip_locked "key_meter.sql", [UUID, TIMESTAMPTZ]);
static KEY_METER_0_2_0: Stmt = stmt!("key_meter_0_2_0.sql", [UUID, TIMESTAMPTZ]);
static KEY_METER_LOCKED_0_2_0: Stmt = stmt!(locked "key_meter_0_2_0.sql", [UUID, TIMESTAMPTZ]);
static KEY_METER_0_1_0: Stmt = stmt!("key_meter_0_1_0.sql", [UUID, TIMESTAMPTZ]);
static KEY_METER_LOCKED_0_1_0: Stmt = stmt!(locked "key_meter_0_1_0.sql", [UUID, TIMESTAMPTZ]);

/// Which schema the statements are written for: `V0_1_0` and `V0_2_0` are databases still
/// at that version (no 0.2.0 columns; no budget slots), served by this library until
/// `ALTER EXTENSION pg_apikey UPDATE` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    V0_1_0,
    V0_2_0,
    Current,
}

/// How a party's row is read: as committed, locked (waiting for another transaction that
/// holds it), or locked only if no other transaction holds it (else: no row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    No,
    Wait,
    Skip,
}

/// A key's limits, and the settings verify decided on before it read them (as the row
/// is when read: after the lock, if locked).
pub struct KeyMeter {
    /// The counts of the key's row.
    pub metered: Metered,
    /// What its budget slots hold (as committed; with one slot's spend, after
    /// [`slot_spend`]).
    pub held: Held,
    pub enabled: bool,
    pub expires_at: Option<TimestampWithTimeZone>,
    pub permissions: Option<Jsonb>,
}

/// Key `key_id`'s limits at `now`, its row locked as `lock` says; `None`: gone or
/// revoked, or (`Lock::Skip`) held by another transaction.
pub fn key_meter(
    key_id: Uuid,
    now: TimestampWithTimeZone,
    lock: Lock,
    schema: Schema,
) -> Option<KeyMeter> {
    let stmt = match (lock, schema) {
        (Lock::Wait, Schema::Current) => &KEY_METER_LOCKED,
        (Lock::Skip, Schema::Current) => &KEY_METER_SKIP_LOCKED,
        (Lock::No, Schema::Current) => &KEY_METER,
        (Lock::No, Schema::V0_2_0) => &KEY_METER_0_2_0,
        (_, Schema::V0_2_0) => &KEY_METER_LOCKED_0_2_0,
        (Lock::No, Schema::V0_1_0) => &KEY_METER_0_1_0,
        (_, Schema::V0_1_0) => &KEY_METER_LOCKED_0_1_0,
    };
    let slots = schema == Schema::Current;
    first(stmt, &[key_id.into(), now.into()], |row| {
        key_meter_row(row, now, slots)
    })
}

/// A key's limits from a row of key_meter.sql's columns (`slots`: with `slots_quota` and
/// `slots_windows`).
fn key_meter_row(row: &SpiHeapTupleData<'_>, now: TimestampWithTimeZone, slots: bool) -> KeyMeter {
    let default = col::<i32>(row, "rate_limit_max").map(|max| Window {
        limit: i64::from(max),
        unit: Unit::Requests,
        count: i64::from(req::<i32>(row, "rate_window_count")),
        reset_at: col(row, "rate_window_reset_at").map(micros),
        next_reset: micros(req(row, "default_next_reset")),
    });
    KeyMeter {
        metered: metered_row(row, now, default),
        held: if slots { held(row) } else { Held::default() },
        enabled: req(row, "enabled"),
        expires_at: col(row, "expires_at"),
        permissions: col(row, "permissions"),
    }
}

/// What a party's slots hold, from the `slots_quota` and `slots_windows` columns.
fn held(row: &SpiHeapTupleData<'_>) -> Held {
    let windows: Vec<Option<i64>> = col(row, "slots_windows").unwrap_or_default();
    Held {
        quota: col(row, "slots_quota").unwrap_or(0),
        windows: windows.into_iter().map(|w| w.unwrap_or(0)).collect(),
    }
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

const KEY_METER_SPEND_ARGS: [pg_sys::Oid; 9] = [
    UUID,
    INT8,
    BOOL,
    INT4,
    TIMESTAMPTZ,
    INT8_ARRAY,
    TIMESTAMPTZ_ARRAY,
    TIMESTAMPTZ,
    BOOL,
];
static KEY_METER_SPEND: Stmt = stmt!("key_meter_spend.sql", KEY_METER_SPEND_ARGS);
static KEY_METER_SPEND_0_2_0: Stmt = stmt!("key_meter_spend_0_2_0.sql", KEY_METER_SPEND_ARGS);
const KEY_METER_SPEND_ARGS_0_1_0: [pg_sys::Oid; 8] = [
    UUID,
    INT8,
    BOOL,
    INT4,
    TIMESTAMPTZ,
    INT8_ARRAY,
    TIMESTAMPTZ_ARRAY,
    TIMESTAMPTZ,
];
static KEY_METER_SPEND_0_1_0: Stmt = stmt!("key_meter_spend_0_1_0.sql", KEY_METER_SPEND_ARGS_0_1_0);

/// Set key `key_id`'s counts in its row: its windows and quota (`spent`), after an
/// admitted call (`used`) or when its budget slots are folded back into the row.
pub fn key_meter_spend(
    key_id: Uuid,
    m: &Metered,
    windows: &[Window],
    spent: Option<Spent>,
    now: TimestampWithTimeZone,
    schema: Schema,
    used: bool,
) {
    let (default_count, default_reset) = match windows.first() {
        Some(w) if m.has_default => (
            Some(i32::try_from(w.count).expect("a default window counts at most an integer")),
            w.reset_at.map(timestamp),
        ),
        _ => (None, None),
    };
    let (counts, resets) = named_state(m, windows);
    let mut args = vec![
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
        Schema::V0_1_0 => &KEY_METER_SPEND_0_1_0,
        Schema::V0_2_0 => {
            args.push(used.into());
            &KEY_METER_SPEND_0_2_0
        }
        Schema::Current => {
            args.push(used.into());
            &KEY_METER_SPEND
        }
    };
    run(stmt, &args, |_| ())
}

static OWNER_METER: Stmt = stmt!("owner_meter.sql", [TEXT, TEXT, TIMESTAMPTZ]);
static OWNER_METER_LOCKED: Stmt = stmt!(locked "owner_meter.sql", [TEXT, TEXT, TIMESTAMPTZ]);
static OWNER_METER_SKIP_LOCKED: Stmt =
    stmt!(skip_locked "owner_meter.sql", [TEXT, TEXT, TIMESTAMPTZ]);
static OWNER_METER_0_2_0: Stmt = stmt!("owner_meter_0_2_0.sql", [TEXT, TEXT, TIMESTAMPTZ]);
static OWNER_METER_LOCKED_0_2_0: Stmt =
    stmt!(locked "owner_meter_0_2_0.sql", [TEXT, TEXT, TIMESTAMPTZ]);

/// An owner's limits and their settings, as `get_owner_limits` shows them.
pub struct OwnerLimits {
    /// The counts of the owner's row.
    pub metered: Metered,
    /// What its budget slots hold (as for [`KeyMeter::held`]).
    pub held: Held,
    pub refill_amount: Option<i64>,
    pub refill_interval: Option<Interval>,
    pub rate_limits: Option<Jsonb>,
    pub set_at: TimestampWithTimeZone,
    pub refill_anchor: Option<TimestampWithTimeZone>,
}

/// `owner`'s limits at `now`, its row locked as `lock` says; `None`: it has none, or
/// (`Lock::Skip`) another transaction holds its row. A 0.1.0 schema has no owner limits.
pub fn owner_meter(
    owner: Owner<'_>,
    now: TimestampWithTimeZone,
    lock: Lock,
    schema: Schema,
) -> Option<OwnerLimits> {
    let stmt = match (lock, schema) {
        (_, Schema::V0_1_0) => return None,
        (Lock::Wait, Schema::Current) => &OWNER_METER_LOCKED,
        (Lock::Skip, Schema::Current) => &OWNER_METER_SKIP_LOCKED,
        (Lock::No, Schema::Current) => &OWNER_METER,
        (Lock::No, Schema::V0_2_0) => &OWNER_METER_0_2_0,
        (_, Schema::V0_2_0) => &OWNER_METER_LOCKED_0_2_0,
    };
    let slots = schema == Schema::Current;
    first(
        stmt,
        &[owner.kind.as_sql().into(), owner.id.into(), now.into()],
        |row| owner_limits_row(row, now, slots),
    )
}

fn owner_limits_row(
    row: &SpiHeapTupleData<'_>,
    now: TimestampWithTimeZone,
    slots: bool,
) -> OwnerLimits {
    OwnerLimits {
        metered: metered_row(row, now, None),
        held: if slots { held(row) } else { Held::default() },
        refill_amount: col(row, "refill_amount"),
        refill_interval: col(row, "refill_interval"),
        rate_limits: col(row, "rate_limits"),
        set_at: req(row, "set_at"),
        refill_anchor: col(row, "refill_anchor"),
    }
}

/// Whose budget slots: a key's, or an owner's.
#[derive(Clone, Copy, Debug)]
pub enum Party<'a> {
    Key(Uuid),
    Owner(Owner<'a>),
}

impl<'a> Party<'a> {
    /// The parameters that name the party, first in each slot statement.
    fn args(self) -> Vec<DatumWithOid<'a>> {
        match self {
            Party::Key(id) => vec![id.into()],
            Party::Owner(o) => vec![o.kind.as_sql().into(), o.id.into()],
        }
    }

    /// The statement of `key` or `owner` for this party.
    fn pick(self, key: &'static Stmt, owner: &'static Stmt) -> &'static Stmt {
        match self {
            Party::Key(_) => key,
            Party::Owner(_) => owner,
        }
    }
}

static KEY_SLOT_SPEND: Stmt = stmt!("key_slot_spend.sql", [UUID, TIMESTAMPTZ, INT8, INT4]);
static OWNER_SLOT_SPEND: Stmt = stmt!(
    "owner_slot_spend.sql",
    [TEXT, TEXT, TIMESTAMPTZ, INT8, INT4]
);

/// The order in which this backend tries slots: its process id, shuffling the slots'
/// order (a different start for each backend).
fn slot_order() -> i32 {
    std::process::id() as i32
}

/// Spend a call of `cost` at `now` from one slot of key `key_id` that holds enough,
/// without waiting (`key_slot_spend.sql`): the key's limits, what its slots hold after
/// the call, and which slot paid; `None`: no slot could.
pub fn key_slot_spend(
    key_id: Uuid,
    now: TimestampWithTimeZone,
    cost: i64,
) -> Option<(KeyMeter, i32)> {
    let args = [key_id.into(), now.into(), cost.into(), slot_order().into()];
    first(&KEY_SLOT_SPEND, &args, |row| {
        (key_meter_row(row, now, true), req(row, "slot"))
    })
}

/// [`key_slot_spend`] for an owner's slots.
pub fn owner_slot_spend(
    owner: Owner<'_>,
    now: TimestampWithTimeZone,
    cost: i64,
) -> Option<(OwnerLimits, i32)> {
    let args = [
        owner.kind.as_sql().into(),
        owner.id.into(),
        now.into(),
        cost.into(),
        slot_order().into(),
    ];
    first(&OWNER_SLOT_SPEND, &args, |row| {
        (owner_limits_row(row, now, true), req(row, "slot"))
    })
}

/// One budget slot as [`slots_lock`] reads it.
pub struct Slot {
    pub quota: Option<i64>,
    pub windows: Vec<i64>,
    pub used_at: TimestampWithTimeZone,
}

/// What `slots` hold, summed.
pub fn held_by(slots: &[Slot]) -> Held {
    let mut held = Held::default();
    for s in slots {
        held.add(s.quota, &s.windows);
    }
    held
}

static KEY_SLOTS_LOCK: Stmt = stmt!("key_slots_lock.sql", [UUID]);
static OWNER_SLOTS_LOCK: Stmt = stmt!("owner_slots_lock.sql", [TEXT, TEXT]);

/// Every slot of `party`, locked: waits for the verifies spending from them. The caller
/// holds the party's row locked (no slot is added meanwhile).
pub fn slots_lock(party: Party<'_>) -> Vec<Slot> {
    rows(
        party.pick(&KEY_SLOTS_LOCK, &OWNER_SLOTS_LOCK),
        &party.args(),
        |r| {
            let windows: Vec<Option<i64>> = col(r, "windows").unwrap_or_default();
            Slot {
                quota: col(r, "quota"),
                windows: windows.into_iter().map(|w| w.unwrap_or(0)).collect(),
                used_at: req(r, "used_at"),
            }
        },
    )
}

static KEY_SLOTS_REPLACE: Stmt = stmt!(
    "key_slots_replace.sql",
    [
        UUID,
        INT4,
        INT8,
        INT8_ARRAY,
        BOOL_ARRAY,
        TIMESTAMPTZ,
        TIMESTAMPTZ
    ]
);
static OWNER_SLOTS_REPLACE: Stmt = stmt!(
    "owner_slots_replace.sql",
    [
        TEXT,
        TEXT,
        INT4,
        INT8,
        INT8_ARRAY,
        BOOL_ARRAY,
        TIMESTAMPTZ,
        TIMESTAMPTZ
    ]
);

/// Replace `party`'s slots (locked by [`slots_lock`]) by `share.slots` slots of `share`
/// each, handed out at `now` (none: the party has no slots after).
pub fn slots_replace(party: Party<'_>, share: &Share, now: TimestampWithTimeZone) {
    let mut args = party.args();
    args.extend([
        i32::try_from(share.slots)
            .expect("at most MAX_SLOTS slots")
            .into(),
        share.quota.into(),
        share.windows.clone().into(),
        share.by_cost.clone().into(),
        share.due_at.map(timestamp).into(),
        now.into(),
    ]);
    run(
        party.pick(&KEY_SLOTS_REPLACE, &OWNER_SLOTS_REPLACE),
        &args,
        |_| (),
    )
}

static KEY_SLOT_ADD: Stmt = stmt!(
    "key_slot_add.sql",
    [
        UUID,
        INT4,
        INT8,
        INT8_ARRAY,
        BOOL_ARRAY,
        TIMESTAMPTZ,
        TIMESTAMPTZ
    ]
);
static OWNER_SLOT_ADD: Stmt = stmt!(
    "owner_slot_add.sql",
    [
        TEXT,
        TEXT,
        INT4,
        INT8,
        INT8_ARRAY,
        BOOL_ARRAY,
        TIMESTAMPTZ,
        TIMESTAMPTZ
    ]
);

/// Add one slot holding `share` (of which `share.slots` must be 1) to `party`, whose row
/// this transaction holds locked, unless it has [`MAX_SLOTS`] slots already: whether it was
/// added (if not, the row keeps the share).
pub fn slot_add(party: Party<'_>, share: &Share, now: TimestampWithTimeZone) -> bool {
    debug_assert_eq!(share.slots, 1);
    let mut args = party.args();
    args.extend([
        i32::try_from(MAX_SLOTS)
            .expect("MAX_SLOTS fits an int4")
            .into(),
        share.quota.into(),
        share.windows.clone().into(),
        share.by_cost.clone().into(),
        share.due_at.map(timestamp).into(),
        now.into(),
    ]);
    first(party.pick(&KEY_SLOT_ADD, &OWNER_SLOT_ADD), &args, |_| ()).is_some()
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
static OWNER_METER_SPEND_0_2_0: Stmt = stmt!(
    "owner_meter_spend_0_2_0.sql",
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
    schema: Schema,
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
    let stmt = match schema {
        Schema::Current => &OWNER_METER_SPEND,
        Schema::V0_1_0 | Schema::V0_2_0 => &OWNER_METER_SPEND_0_2_0,
    };
    run(stmt, &args, |_| ())
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
        TIMESTAMPTZ,
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
        limits.refill_anchor.into(),
    ];
    run(&OWNER_LIMITS_SET, &args, |_| ())
}

static REFILL_PERIOD_END: Stmt = stmt!(
    "refill_period_end.sql",
    [TIMESTAMPTZ, INTERVAL, TIMESTAMPTZ, INT4]
);

/// The end of the refill period of `anchor` and `every` that `t` falls in, moved by
/// `step` periods (`apikey.refill_period_end`).
pub fn refill_period_end(
    anchor: TimestampWithTimeZone,
    every: Interval,
    t: TimestampWithTimeZone,
    step: i32,
) -> TimestampWithTimeZone {
    let args = [anchor.into(), every.into(), t.into(), step.into()];
    first(&REFILL_PERIOD_END, &args, |r| req(r, "at")).expect("one row")
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

static KEY_LOCK: Stmt = stmt!("key_lock.sql", [UUID]);
static OWNER_LOCK: Stmt = stmt!("owner_lock.sql", [TEXT, TEXT]);

/// Lock `party`'s row, then every one of its slots (waiting for the verifies spending
/// from them). Reads nothing else of the row, so that a row whose stored limits another
/// writer broke can still be set again.
fn lock_party(party: Party<'_>) -> Vec<Slot> {
    if !holds(party.pick(&KEY_LOCK, &OWNER_LOCK), &party.args()) {
        return Vec::new();
    }
    slots_lock(party)
}

/// Fold key `key_id`'s budget slots back into its row, waiting for the verifies spending
/// from them, so that the row holds what is left in total: before a change of the key's
/// settings reads them, and before it is rotated or revoked. The row stays locked until
/// the transaction ends, so no slot is handed out meanwhile.
pub fn key_fold(key_id: Uuid, now: TimestampWithTimeZone) {
    let slots = lock_party(Party::Key(key_id));
    if slots.is_empty() {
        return;
    }
    let Some(m) = key_meter(key_id, now, Lock::Wait, Schema::Current) else {
        return;
    };
    let total = m.metered.limits.with_held(&held_by(&slots));
    slots_replace(Party::Key(key_id), &Share::none(), now);
    let spent = total.quota.map(|q| Spent {
        remaining: q.remaining,
        refilled: false,
    });
    key_meter_spend(
        key_id,
        &m.metered,
        &total.windows,
        spent,
        now,
        Schema::Current,
        false,
    );
}

/// Remove `owner`'s budget slots, waiting for the verifies spending from them, before
/// its limits are set again (which starts every count over).
pub fn owner_slots_clear(owner: Owner<'_>, now: TimestampWithTimeZone) {
    if !lock_party(Party::Owner(owner)).is_empty() {
        slots_replace(Party::Owner(owner), &Share::none(), now);
    }
}
