//! A verify that limits count, on a budget that may be split.
//!
//! Each party's limits — the key's own, and its owner's — live in its row (`apikey.keys`,
//! `apikey.owner_limits`) and, while verifies of that party come concurrently, in budget
//! slots (`apikey.key_slots`, `apikey.owner_slots`) that hold parts of what is left. What
//! is left in total is always the row's count plus what its slots hold.
//!
//! - **fast** ([`fast`]): each party's row is taken if no other transaction holds it
//!   (`SKIP LOCKED`); a party whose row is held pays from one of its slots that holds
//!   enough, again without waiting. The call is admitted there only when those parts pay
//!   for it and nothing is due (no window starts, no refill): a refusal, a window start and
//!   a refill are never decided on a part of the budget.
//! - **exact** ([`exact`]): otherwise each party's row is locked, waiting, then all of its
//!   slots, and [`meter::decide`] decides on the totals — the rules of 0.2.0, so that a
//!   refusal is for what is left in total. An admitted call writes the totals back; where
//!   the party's row was held by another transaction, slots are handed out (one more than
//!   before, up to [`meter::MAX_SLOTS`]) for the next calls to pay from in parallel, and
//!   slots unused for [`IDLE`] fold back into the row.
//!
//! Locks are taken key first, then owner; a party's row before its slots; only the exact
//! path waits, so two verifies never wait on each other in opposite orders (slots are
//! tried in a subtransaction, rolled back with its locks when they cannot pay). A refusal
//! changes nothing anywhere. A call of cost 0 writes and locks nothing. Keys without limits (and every plain key) only [`touch`] `last_used_at`.
//! Databases not yet updated to 0.3.0 have no slots: there, every call takes the exact
//! path, as 0.2.0 did.
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::decide::{own_refusal, Code, Outcome, Required};
use super::probe::KeyRead;
use crate::backend::{
    self, apikey_relation, has_written, in_transaction_block, micros, read_only,
    uses_transaction_snapshot, Micros,
};
use crate::caller::as_owner;
use crate::error;
use crate::meter::report::{describe, Metered, Scope};
use crate::meter::{self, Held, Limits, Quota, Share, Spent, Verdict, Window};
use crate::owner::{Owner, OwnerKind};
use crate::settings;
use crate::storage;
use crate::storage::metering::{self, KeyMeter, Lock, OwnerLimits, Party, Schema, Slot};

/// Slots not spent from for this long fold back into their party's row at its next
/// exact-path call.
pub const IDLE: Micros = 10_000_000;

thread_local! {
    /// The key whose row this backend last found held by another transaction (its bytes):
    /// its next calls try its slots first, and its row only when no slot pays. A hint
    /// only — any part may pay for an admitted call; forgotten when the row is found free.
    static BUSY_KEY: std::cell::Cell<Option<[u8; 16]>> = const { std::cell::Cell::new(None) };
    /// The same for the owner whose limits' row this backend last found held.
    static BUSY_OWNER: std::cell::RefCell<Option<(OwnerKind, String)>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether `o` is the owner this backend last found busy; with `set`, remember whether it
/// is now.
fn owner_busy(o: Owner<'_>, set: Option<bool>) -> bool {
    BUSY_OWNER.with_borrow_mut(|b| {
        if let Some(busy) = set {
            *b = busy.then(|| (o.kind, o.id.to_owned()));
        }
        b.as_ref()
            .is_some_and(|(kind, id)| *kind == o.kind && id == o.id)
    })
}

/// Which parties' rows another transaction held when the fast path tried them.
#[derive(Clone, Copy, Default)]
struct Busy {
    key: bool,
    owner: bool,
}

/// A party's limits as one call found them, for its answer: the names, each window in
/// total, and what is left of its quota in total.
struct View<'a> {
    metered: &'a Metered,
    windows: Vec<Window>,
    remaining: Option<i64>,
}

impl<'a> View<'a> {
    /// The totals as found: `metered`'s counts with what the slots hold.
    fn found(metered: &'a Metered, held: &Held, now: Micros) -> View<'a> {
        let total = metered.limits.with_held(held);
        View {
            metered,
            remaining: total.quota.map(|q| q.left(now)),
            windows: total.windows,
        }
    }

    /// The totals after an admitted call: `after` (its new windows and quota, of the row
    /// or of the totals) with what the slots hold.
    fn after(metered: &'a Metered, after: &(Vec<Window>, Option<Spent>), held: &Held) -> View<'a> {
        let total = Limits {
            windows: after.0.clone(),
            quota: after.1.map(|s| Quota {
                remaining: s.remaining,
                refill: None,
            }),
        }
        .with_held(held);
        View {
            metered,
            remaining: total.quota.map(|q| q.remaining),
            windows: total.windows,
        }
    }
}

/// The answer for a call: `code`, what is left of the quotas (the least), and the rate
/// limits in force, the key's then the owner's.
fn answer(
    k: KeyRead,
    code: Code,
    retry_after: Option<Micros>,
    views: [Option<View<'_>>; 2],
    now: Micros,
) -> Outcome {
    let remaining = views.iter().flatten().filter_map(|v| v.remaining).min();
    let mut items = Vec::new();
    for (scope, view) in [Scope::Key, Scope::Owner].into_iter().zip(&views) {
        if let Some(v) = view {
            items.extend(describe(now, scope, v.metered, &v.windows));
        }
    }
    Outcome {
        code,
        key: Some(k),
        remaining,
        retry_after: retry_after.map(Interval::from_micros),
        rate_limits: (!items.is_empty()).then_some(serde_json::Value::Array(items)),
    }
}

/// Whether the key's row, as read here, says no (another transaction disabled it, let it
/// expire or changed its permissions since the probe read it).
fn refusal(m: &KeyMeter, now: TimestampWithTimeZone, required: Option<&Required>) -> Option<Code> {
    let expires_at = m.expires_at.map(micros);
    own_refusal(m.enabled, expires_at, now, required, || m.permissions)
}

/// The schema of the database: 0.1.0 (the probe found no 0.2.0 columns), 0.2.0 (no
/// budget slots), or this release's.
fn schema_of(k: &KeyRead) -> Schema {
    if k.is_from_0_1_0() {
        Schema::V0_1_0
    } else if apikey_relation(c"key_slots").is_some() {
        Schema::Current
    } else {
        Schema::V0_2_0
    }
}

/// A call of `cost` by a key that has limits, or whose `owner` may have.
///
/// A wait for a row that another transaction holds may be ended by `lock_timeout`: that
/// error (55P03) is raised again with pg_apikey's words for it (whose counts, why another
/// transaction holds them, what to do). Nothing is caught otherwise, and nothing goes on
/// after the error: the transaction aborts as it would have.
pub(super) fn metered(
    k: KeyRead,
    owner: Option<Owner<'_>>,
    required: Option<&Required>,
    cost: i64,
    now: TimestampWithTimeZone,
) -> Outcome {
    let key_id = k.id();
    PgTryBuilder::new(std::panic::AssertUnwindSafe(move || {
        counted(k, owner, required, cost, now)
    }))
    .catch_when(
        PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
        move |cause| match &cause {
            pg_sys::panic::CaughtError::PostgresError(e) => {
                error::lock_wait_ended(key_id, e.message())
            }
            _ => cause.rethrow(),
        },
    )
    .execute()
}

fn counted(
    k: KeyRead,
    owner: Option<Owner<'_>>,
    required: Option<&Required>,
    cost: i64,
    now: TimestampWithTimeZone,
) -> Outcome {
    let writes = cost > 0;
    if writes && !read_only() {
        // Before the rows are locked: a lock gives the transaction an id, and an id
        // before this verify means the application wrote first.
        relax_commit_for_usage();
    }
    let schema = schema_of(&k);
    if writes && schema == Schema::Current && !read_only() {
        match fast(k, owner, required, cost, now, Lock::Skip) {
            Fast::Done(outcome) => outcome,
            // The key's row was held and no slot of it could pay: wait for the row (holding
            // nothing), and pay from it if it can, handing out one more slot.
            Fast::Exact(k, busy) if busy.key => {
                match fast(k, owner, required, cost, now, Lock::Wait) {
                    Fast::Done(outcome) => outcome,
                    Fast::Exact(k, again) => {
                        let busy = Busy {
                            key: true,
                            owner: busy.owner || again.owner,
                        };
                        exact(k, owner, required, cost, now, schema, busy)
                    }
                }
            }
            Fast::Exact(k, busy) => exact(k, owner, required, cost, now, schema, busy),
        }
    } else {
        exact(k, owner, required, cost, now, schema, Busy::default())
    }
}

/// What the fast path did: answered, or found that the call takes the exact path (with
/// which parties' rows were held), nothing spent.
enum Fast {
    Done(Outcome),
    Exact(KeyRead, Busy),
}

/// The fast path: the call paid from the parts of each party's budget it can take, each
/// on its own. A party's row is taken with `SKIP LOCKED` (the key's: waiting, with
/// `key_lock` [`Lock::Wait`], after a first try found it held and no slot could pay);
/// where it is held, one of its slots pays, again without waiting; where no slot can, the
/// owner's row is waited for — but only by a call that holds no key slot — and an
/// admitted call that waited for a row hands one more slot out of it. Slots are tried
/// inside a subtransaction, rolled back when the call cannot be paid there: with the
/// spend, it releases every slot lock taken (also those `SKIP LOCKED` leaves on a slot it
/// found changed and then passed over). So a transaction holding a slot never waits, and
/// waits only come in the exact path's order (key row, key slots, owner row, owner slots):
/// no two verifies wait on each other in a cycle.
fn fast(
    k: KeyRead,
    owner: Option<Owner<'_>>,
    required: Option<&Required>,
    cost: i64,
    now: TimestampWithTimeZone,
    key_lock: Lock,
) -> Fast {
    let now_us = micros(now);
    let mut busy = Busy::default();
    let waited = key_lock == Lock::Wait;
    // The key's row, where no other transaction holds it (or, waiting, in any case) —
    // unless its row was held the last time: then its slots are tried first.
    let id = *k.id().as_bytes();
    let key_row = if !k.is_limited() {
        None
    } else if !waited && BUSY_KEY.get() == Some(id) {
        busy.key = true;
        None
    } else {
        let m = metering::key_meter(k.id(), now, key_lock, Schema::Current);
        if m.is_none() && waited {
            return Fast::Exact(k, busy); // the key is gone: the exact path says so
        }
        busy.key = m.is_none();
        BUSY_KEY.set(busy.key.then_some(id));
        m
    };
    if let Some(code) = key_row.as_ref().and_then(|m| refusal(m, now, required)) {
        let m = key_row.as_ref().expect("refused by the row read");
        let view = View::found(&m.metered, &m.held, now_us);
        return Fast::Done(answer(k, code, None, [Some(view), None], now_us));
    }
    let none = Limits::default();
    let key_part = key_row.as_ref().map_or(&none, |m| &m.metered.limits);
    if !key_part.current(now_us) {
        return Fast::Exact(k, busy);
    }
    // The owner's row, then the slots: when the key's row is held, all of it in the
    // subtransaction (the owner's row must not be held while the key's is waited for).
    let paid = if busy.key {
        backend::subtransaction(|| {
            let key_slot = metering::key_slot_spend(k.id(), now, cost)?;
            let owner = owner_part(owner, &mut busy, key_part, cost, now)?;
            Some((Some(key_slot), owner))
        })
    } else {
        owner_part(owner, &mut busy, key_part, cost, now).map(|owner| (None, owner))
    };
    let Some((key_slot, shared)) = paid else {
        return Fast::Exact(k, busy);
    };
    // The key's row's new counts (the owner's are written by owner_part).
    let key_view = match (&key_row, &key_slot) {
        (Some(m), _) => {
            let Verdict::Admitted { key: after, .. } = meter::decide(now_us, cost, key_part, &none)
            else {
                unreachable!("owner_part admitted the call on these counts")
            };
            let (windows, spent) = grown(Party::Key(k.id()), key_part, &after, waited, cost, now);
            metering::key_meter_spend(
                k.id(),
                &m.metered,
                &windows,
                spent,
                now,
                Schema::Current,
                true,
            );
            // The answer's totals: a slot handed out moves a share, not the total.
            Some(View::after(&m.metered, &after, &m.held))
        }
        (None, Some((m, _))) => Some(View::found(&m.metered, &m.held, now_us)),
        (None, None) => {
            touch(&k, now);
            None
        }
    };
    let owner_view = shared.as_ref().map(|s| match s {
        OwnerPaid::Row(m, after) => View::after(&m.metered, after, &m.held),
        OwnerPaid::Slot(m) => View::found(&m.metered, &m.held, now_us),
    });
    Fast::Done(answer(k, Code::Valid, None, [key_view, owner_view], now_us))
}

/// How the owner's part of a call was paid: from its row (written), or one of its slots.
enum OwnerPaid {
    Row(OwnerLimits, (Vec<Window>, Option<Spent>)),
    Slot(OwnerLimits),
}

/// The owner's part of a fast call whose key's part is `key_part` (its row's counts, or
/// nothing when the key has no row taken): the owner's row, where no other transaction
/// holds it, else one of its slots (in the caller's subtransaction when it may fail),
/// else — when the call holds no key slot (`busy.key` false) — its row, waiting, handing
/// out one more slot. `Some(None)`: no owner limits; `None`: the call takes the exact path.
fn owner_part(
    owner: Option<Owner<'_>>,
    busy: &mut Busy,
    key_part: &Limits,
    cost: i64,
    now: TimestampWithTimeZone,
) -> Option<Option<OwnerPaid>> {
    let now_us = micros(now);
    let key_alone = || {
        matches!(
            meter::decide(now_us, cost, key_part, &Limits::default()),
            Verdict::Admitted { .. }
        )
    };
    let Some(o) = owner else {
        // Only the key's row: what it alone admits.
        return key_alone().then_some(None);
    };
    // The owner's row as taken: what it alone (with the key's part) admits, written.
    let by_row = |m: OwnerLimits, grow: bool| {
        if !m.metered.limits.current(now_us) {
            return None;
        }
        let Verdict::Admitted { owner: after, .. } =
            meter::decide(now_us, cost, key_part, &m.metered.limits)
        else {
            return None;
        };
        let (windows, spent) = grown(Party::Owner(o), &m.metered.limits, &after, grow, cost, now);
        metering::owner_meter_spend(o, &m.metered, &windows, spent, now, Schema::Current);
        Some(Some(OwnerPaid::Row(m, after)))
    };
    // Its row unless it was held the last time (then its slots first).
    if !owner_busy(o, None) {
        if let Some(m) = metering::owner_meter(o, now, Lock::Skip, Schema::Current) {
            return by_row(m, false);
        }
        owner_busy(o, Some(true));
    }
    busy.owner = true;
    // The key's row alone must admit it, before a part of the owner's pays.
    if !key_alone() {
        return None;
    }
    let pay = || metering::owner_slot_spend(o, now, cost).map(|(m, _)| m);
    if busy.key {
        // Already in the caller's subtransaction, holding a key slot: never wait.
        return pay().map(|m| Some(OwnerPaid::Slot(m)));
    }
    if let Some(m) = backend::subtransaction(pay) {
        return Some(Some(OwnerPaid::Slot(m)));
    }
    owner_busy(o, Some(false));
    by_row(
        metering::owner_meter(o, now, Lock::Wait, Schema::Current)?,
        true,
    )
}

/// A party's limits after an admitted call (`after`, of the counts `of`: the refill to
/// come is theirs), as [`meter::hand_out`] shares them out.
fn limits_after(after: &(Vec<Window>, Option<Spent>), of: &Limits) -> Limits {
    Limits {
        windows: after.0.clone(),
        quota: after.1.map(|s| Quota {
            remaining: s.remaining,
            refill: of.quota.and_then(|q| q.refill),
        }),
    }
}

/// What is left of a row's quota (`row`), as its spend statement writes it.
fn spent_of(row: &Limits, refilled: bool) -> Option<Spent> {
    row.quota.map(|q| Spent {
        remaining: q.remaining,
        refilled,
    })
}

/// The counts to write to a party's row after an admitted call (`after`, of the row's
/// counts `part`: the refill to come is theirs), with one more
/// slot handed out of them when the call waited for the row (`grow`; unless the party has
/// [`meter::MAX_SLOTS`] slots, or too little left to share): the next calls find a part
/// they can pay from while the row is held.
fn grown(
    party: Party<'_>,
    part: &Limits,
    after: &(Vec<Window>, Option<Spent>),
    grow: bool,
    cost: i64,
    now: TimestampWithTimeZone,
) -> (Vec<Window>, Option<Spent>) {
    if grow {
        let (row, share) = meter::hand_out(&limits_after(after, part), micros(now), cost, 1);
        if share.slots == 1 && metering::slot_add(party, &share, now) {
            let spent = spent_of(&row, false);
            return (row.windows, spent);
        }
    }
    after.clone()
}

/// One party's limits as the exact path holds them: its row, and its slots (locked).
struct Taken<'a> {
    party: Party<'a>,
    metered: &'a Metered,
    held: Held,
    slots: Vec<Slot>,
}

impl<'a> Taken<'a> {
    /// A party whose row was read as `metered` (with `held`, its slots as committed):
    /// with `lock_slots`, every slot locked (the row is locked) and what they hold summed
    /// again from them.
    fn new(party: Party<'a>, metered: &'a Metered, held: &Held, lock_slots: bool) -> Taken<'a> {
        let (held, slots) = if lock_slots {
            let slots = metering::slots_lock(party);
            (metering::held_by(&slots), slots)
        } else {
            (held.clone(), Vec::new())
        };
        Taken {
            party,
            metered,
            held,
            slots,
        }
    }
}

/// The exact path: each party's row locked (waiting) when the call writes, then all its
/// slots; the decision on the totals; an admitted call's totals written back, with slots
/// handed out where the row was `busy`.
fn exact(
    k: KeyRead,
    owner: Option<Owner<'_>>,
    required: Option<&Required>,
    cost: i64,
    now: TimestampWithTimeZone,
    schema: Schema,
    busy: Busy,
) -> Outcome {
    let writes = cost > 0;
    let lock = if writes && !read_only() {
        Lock::Wait
    } else {
        Lock::No
    };
    let slots = schema == Schema::Current && lock == Lock::Wait;
    let now_us = micros(now);
    let key_row: Option<KeyMeter> = if k.is_limited() {
        if writes {
            require_writable();
        }
        let Some(m) = metering::key_meter(k.id(), now, lock, schema) else {
            return Outcome::not_found();
        };
        if let Some(code) = refusal(&m, now, required) {
            let view = View::found(&m.metered, &m.held, now_us);
            let remaining = view.remaining;
            return Outcome {
                remaining,
                ..Outcome::of(Some(k), code)
            };
        }
        Some(m)
    } else {
        None
    };
    let key = key_row
        .as_ref()
        .map(|m| Taken::new(Party::Key(k.id()), &m.metered, &m.held, slots));
    // After the key: always in that order.
    let owner_row: Option<(Owner<'_>, OwnerLimits)> =
        owner.and_then(|o| metering::owner_meter(o, now, lock, schema).map(|m| (o, m)));
    let shared = owner_row
        .as_ref()
        .map(|(o, m)| Taken::new(Party::Owner(*o), &m.metered, &m.held, slots));
    if key.is_none() && shared.is_none() {
        // No limits apply after all (the owner has none).
        touch(&k, now);
        return Outcome::of(Some(k), Code::Valid);
    }
    if writes {
        require_writable();
    }
    let total = |p: &Option<Taken<'_>>| {
        p.as_ref()
            .map(|p| p.metered.limits.with_held(&p.held))
            .unwrap_or_default()
    };
    let (key_total, owner_total) = (total(&key), total(&shared));
    match meter::decide(now_us, cost, &key_total, &owner_total) {
        Verdict::Admitted {
            key: key_after,
            owner: owner_after,
        } => {
            match &key {
                Some(p) if writes => settle(p, &key_total, &key_after, busy.key, cost, now, schema),
                _ => touch(&k, now),
            }
            if let (Some(p), true) = (&shared, writes) {
                settle(p, &owner_total, &owner_after, busy.owner, cost, now, schema);
            }
            let nothing = Held::default();
            let views = [
                key.as_ref()
                    .map(|p| View::after(p.metered, &key_after, &nothing)),
                shared
                    .as_ref()
                    .map(|p| View::after(p.metered, &owner_after, &nothing)),
            ];
            answer(k, Code::Valid, None, views, now_us)
        }
        // Refused: nothing changes; what is left is as the call found it.
        refused => {
            let (code, wait) = match refused {
                Verdict::RateLimited { retry_after } => (Code::RateLimited, retry_after),
                Verdict::UsageExceeded { retry_after } => (Code::UsageExceeded, retry_after),
                Verdict::Admitted { .. } => unreachable!("matched above"),
            };
            let views = [
                key.as_ref()
                    .map(|p| View::found(p.metered, &p.held, now_us)),
                shared
                    .as_ref()
                    .map(|p| View::found(p.metered, &p.held, now_us)),
            ];
            answer(k, code, wait, views, now_us)
        }
    }
}

/// Write an admitted call back to party `p`: its totals after the call (`after`, of
/// `total`), minus what is handed out to its slots — one more slot than it had when its
/// row was `busy`, else as many as were spent from within [`IDLE`] (idle ones fold back).
fn settle(
    p: &Taken<'_>,
    total: &Limits,
    after: &(Vec<Window>, Option<Spent>),
    busy: bool,
    cost: i64,
    now: TimestampWithTimeZone,
    schema: Schema,
) {
    let now_us = micros(now);
    let refilled = after.1.is_some_and(|s| s.refilled);
    let after = limits_after(after, total);
    let wanted = if schema != Schema::Current || refilled {
        0
    } else if busy {
        (p.slots.len() + 1).min(meter::MAX_SLOTS)
    } else {
        p.slots
            .iter()
            .filter(|s| micros(s.used_at) > now_us - IDLE)
            .count()
    };
    let (row, share) = if wanted > 0 {
        meter::hand_out(&after, now_us, cost, wanted)
    } else {
        (after, Share::none())
    };
    if !p.slots.is_empty() || share.slots > 0 {
        metering::slots_replace(p.party, &share, now);
    }
    let spent = spent_of(&row, refilled);
    match p.party {
        Party::Key(id) => {
            metering::key_meter_spend(id, p.metered, &row.windows, spent, now, schema, true)
        }
        Party::Owner(o) => {
            metering::owner_meter_spend(o, p.metered, &row.windows, spent, now, schema)
        }
    }
}

/// Record a use that spends nothing: `last_used_at`, at most once per
/// `apikey.last_used_resolution`, never waiting, never in a read-only transaction. It is
/// a hint, and must never fail an authentication: not under REPEATABLE READ or
/// SERIALIZABLE either, where a row touched by another session after the snapshot would
/// raise 40001 (the touch is left to the next verify in READ COMMITTED).
pub(super) fn touch(k: &KeyRead, now: TimestampWithTimeZone) {
    // With usage analytics counting, the writer sets last_used_at from the counts.
    if crate::usage::counting() {
        return;
    }
    let resolution = settings::last_used_resolution_micros();
    let now_tz = pg_sys::TimestampTz::from(now);
    let touch_due = k.last_used_at().is_none_or(|t| t <= now_tz - resolution);
    if touch_due && !read_only() && !uses_transaction_snapshot() {
        relax_commit_for_usage();
        settings::with_pinned_search_path(|| {
            as_owner(|| storage::key_touch(k.id(), now, Interval::from_micros(resolution)))
        });
    }
}

/// Keys with a quota or rate limit are counted exactly, which needs a write.
fn require_writable() {
    if read_only() {
        error::raise(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "verifying a key with a quota or rate limit needs a read-write transaction",
            "Verify on the primary, outside a read-only transaction.",
        );
    }
}

/// With `apikey.usage_synchronous_commit = off`, let the single-statement transaction of
/// a verify that records usage commit without waiting for its WAL flush. Never inside an
/// explicit transaction block, whose other writes are the application's, nor when the
/// transaction has written before this verify (a DO block, a function or a writable CTE
/// that wrote first, or an earlier statement of a pipeline). What the same implicit
/// transaction writes after the verify commits asynchronously too (docs/operations.md).
fn relax_commit_for_usage() {
    if settings::USAGE_SYNCHRONOUS_COMMIT.get() || in_transaction_block() || has_written() {
        return;
    }
    settings::set_local(c"synchronous_commit", c"off");
}
