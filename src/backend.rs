//! The backend's clock and transaction state, timestamp arithmetic, and the catalog
//! lookups and relcache invalidations the per-backend caches rely on: the small,
//! low-level module every other module may import. Each function is a safe wrapper of
//! one PostgreSQL call; nothing here decides anything.
use std::cell::RefCell;
use std::ffi::CStr;

use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys::{self, Datum};
use pgrx::prelude::*;
use pgrx::IntoDatum;

/// Microseconds since 2000-01-01, PostgreSQL's own representation of a timestamptz.
pub type Micros = i64;

/// The current time (not the transaction's start: verify decides at the moment of the call).
pub fn now_tz() -> TimestampWithTimeZone {
    // SAFETY: GetCurrentTimestamp only reads the system clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    TimestampWithTimeZone::try_from(now).expect("the current time is a valid timestamptz")
}

/// `t` as microseconds since 2000-01-01.
pub fn micros(t: TimestampWithTimeZone) -> Micros {
    pg_sys::TimestampTz::from(t)
}

/// Microseconds since 2000-01-01 as a timestamptz (one PostgreSQL computed).
pub fn timestamp(m: Micros) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(m).expect("a timestamptz PostgreSQL computed")
}

/// `t + iv`, with PostgreSQL's calendar arithmetic (months and days as the calendar has
/// them in the session's time zone).
pub fn plus(t: TimestampWithTimeZone, iv: Interval) -> TimestampWithTimeZone {
    // SAFETY: timestamptz_pl_interval takes a timestamptz and an interval datum, both
    // built here from valid values; it raises an ERROR (never UB) on overflow.
    unsafe {
        pgrx::direct_function_call::<TimestampWithTimeZone>(
            pg_sys::timestamptz_pl_interval,
            &[t.into_datum(), iv.into_datum()],
        )
    }
    .expect("a timestamptz plus an interval is a timestamptz")
}

/// The longest window or refill interval a limit may have: 100 years (as PostgreSQL
/// compares intervals: a month is 30 days). Longer ones would make `now + window`
/// overflow a timestamptz, failing every verify of the key.
pub const MAX_PERIOD_DAYS: i128 = 100 * 12 * 30;

/// Whether `iv` is at most [`MAX_PERIOD_DAYS`] long.
pub fn within_max_period(iv: Interval) -> bool {
    let micros = i128::from(iv.months()) * 30 * 86_400_000_000
        + i128::from(iv.days()) * 86_400_000_000
        + i128::from(iv.micros());
    micros <= MAX_PERIOD_DAYS * 86_400_000_000
}

/// PostgreSQL's own reading of an interval's text (`interval_in`, in the session's
/// `IntervalStyle`); `None` when it is not one. No error is left half-handled: from 16
/// on, `interval_in` reports a bad input as a soft error; on 15, it runs in an internal
/// subtransaction that is rolled back when it raises.
///
/// Verify reads the windows of stored `rate_limits` lists on every metered call, and they
/// are few distinct texts ("1 minute", "1 day"): each backend keeps what it read, per
/// `IntervalStyle` (the one setting `interval_in` depends on), up to
/// [`INTERVALS_KEPT`] texts, so a call costs a hash lookup and no subtransaction.
pub fn parse_interval(text: &str) -> Option<Interval> {
    // SAFETY: IntervalStyle is a backend global (a GUC's variable).
    let style = unsafe { pg_sys::IntervalStyle };
    let kept = INTERVALS.with(|k| {
        let k = k.borrow();
        (k.0 == style).then(|| k.1.get(text).copied()).flatten()
    });
    if let Some(parsed) = kept {
        return parsed;
    }
    let parsed = std::ffi::CString::new(text)
        .ok()
        .and_then(|c| parse_interval_c(&c));
    INTERVALS.with(|k| {
        let mut k = k.borrow_mut();
        if k.0 != style || k.1.len() >= INTERVALS_KEPT {
            *k = (style, std::collections::HashMap::new());
        }
        k.1.insert(text.to_string(), parsed);
    });
    parsed
}

/// How many interval texts a backend keeps read ([`parse_interval`]).
pub const INTERVALS_KEPT: usize = 1024;

thread_local! {
    /// (IntervalStyle, text → what interval_in made of it).
    static INTERVALS: RefCell<(i32, std::collections::HashMap<String, Option<Interval>>)> =
        RefCell::new((-1, std::collections::HashMap::new()));
}

#[cfg(not(feature = "pg15"))]
fn parse_interval_c(text: &CStr) -> Option<Interval> {
    let mut escontext = pg_sys::ErrorSaveContext {
        type_: pg_sys::NodeTag::T_ErrorSaveContext,
        error_occurred: false,
        details_wanted: false,
        error_data: std::ptr::null_mut(),
    };
    let mut result = Datum::from(0);
    let mut flinfo = pg_sys::FmgrInfo::default();
    // SAFETY: fills flinfo for the built-in interval_in, in the current memory context.
    unsafe { pg_sys::fmgr_info(pg_sys::Oid::from(pg_sys::F_INTERVAL_IN), &mut flinfo) };
    // SAFETY: interval_in with a NUL-terminated string, no type modifier, and an
    // ErrorSaveContext node that lives for the call: a bad input sets error_occurred and
    // returns false instead of raising.
    let ok = unsafe {
        pg_sys::InputFunctionCallSafe(
            &mut flinfo,
            text.as_ptr().cast_mut(),
            pg_sys::InvalidOid,
            -1,
            std::ptr::addr_of_mut!(escontext).cast(),
            &mut result,
        )
    };
    if !ok || escontext.error_occurred {
        return None;
    }
    // SAFETY: a non-null interval datum interval_in returned.
    unsafe { <Interval as pgrx::FromDatum>::from_datum(result, false) }
}

#[cfg(feature = "pg15")]
fn parse_interval_c(text: &CStr) -> Option<Interval> {
    // SAFETY: the current memory context and resource owner, restored after the
    // subtransaction as PL/pgSQL's exception blocks do; the subtransaction is released on
    // success and rolled back (with whatever interval_in left) on error. pgrx's catch
    // copies and flushes the error before the rollback.
    unsafe {
        let (context, owner) = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let parsed = PgTryBuilder::new(|| {
            pgrx::direct_function_call::<Interval>(
                pg_sys::interval_in,
                &[
                    Some(Datum::from(text.as_ptr())),
                    Some(Datum::from(pg_sys::InvalidOid)),
                    Some(Datum::from(-1i32)),
                ],
            )
        })
        .catch_others(|_| None)
        .execute();
        if parsed.is_some() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        parsed
    }
}

/// Run `f` in a subtransaction: kept when it returns `Some`, rolled back when `None` —
/// with every row lock it took, so that the caller may then wait for rows in its own
/// lock order. An error in `f` aborts the transaction as usual.
pub fn subtransaction<T>(f: impl FnOnce() -> Option<T>) -> Option<T> {
    // SAFETY: the subtransaction is begun and ended here, inside one function call, with
    // the caller's memory context and resource owner restored after either end (as
    // PL/pgSQL's exception blocks do). An error raised by `f` unwinds past this frame and
    // the abort of the transaction ends the subtransaction with it.
    unsafe {
        let (context, owner) = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let result = f();
        if result.is_some() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        result
    }
}

/// Whether this transaction cannot write: a read-only transaction, or a hot standby.
pub fn read_only() -> bool {
    // SAFETY: XactReadOnly is a backend global set by the transaction machinery;
    // RecoveryInProgress reads shared state under its own lock.
    unsafe { pg_sys::XactReadOnly || pg_sys::RecoveryInProgress() }
}

/// Whether the transaction reads through one snapshot taken at its start (REPEATABLE
/// READ or SERIALIZABLE), rather than a new one per statement (READ COMMITTED).
pub fn uses_transaction_snapshot() -> bool {
    // SAFETY: XactIsoLevel is a backend global set by the transaction machinery.
    unsafe { pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 }
}

/// Whether this transaction has written anything yet (it has a transaction id).
pub fn has_written() -> bool {
    // SAFETY: reads the backend's transaction state; valid inside any function call.
    unsafe { pg_sys::GetTopTransactionIdIfAny() != pg_sys::InvalidTransactionId }
}

/// Whether the current statement runs inside an explicit transaction block.
pub fn in_transaction_block() -> bool {
    // SAFETY: reads the backend's transaction state; valid inside any function call.
    unsafe { pg_sys::IsTransactionBlock() }
}

/// The oid of the relation `apikey.<name>`; `None` when the schema or the relation does
/// not exist.
pub fn apikey_relation(name: &CStr) -> Option<pg_sys::Oid> {
    // SAFETY: syscache lookups by name, with missing_ok; both strings are NUL-terminated.
    let oid = unsafe {
        let nsp = pg_sys::get_namespace_oid(c"apikey".as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            return None;
        }
        pg_sys::get_relname_relid(name.as_ptr(), nsp)
    };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Whether relation `rel` has a (not dropped) column `column`.
pub fn has_column(rel: pg_sys::Oid, column: &CStr) -> bool {
    // SAFETY: a syscache lookup by relation oid and NUL-terminated name; it returns
    // InvalidAttrNumber (0) when there is no such column.
    unsafe { pg_sys::get_attnum(rel, column.as_ptr()) > 0 }
}

/// Take in the invalidations other backends have committed (what every lock acquisition
/// does; cheap when nothing is pending).
pub fn accept_invalidations() {
    // SAFETY: valid inside a transaction, which every SQL function call is.
    unsafe { pg_sys::AcceptInvalidationMessages() };
}

/// Tell every backend, when this transaction commits, that relation `rel` changed: their
/// relcache callbacks ([`on_relation_invalidation`]) run for it.
pub fn invalidate_relation(rel: pg_sys::Oid) {
    // SAFETY: queues a relcache invalidation for `rel`, sent at commit (dropped on abort).
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(rel) };
}

thread_local! {
    /// What [`on_relation_invalidation`] registered, called in order.
    static LISTENERS: RefCell<Vec<fn(pg_sys::Oid)>> = const { RefCell::new(Vec::new()) };
}

/// Call `listener` with a relation's oid whenever PostgreSQL invalidates that relation in
/// this backend, and with `InvalidOid` when it invalidates every relation. Register from
/// `_PG_init` only; a listener only clears per-backend state and must not raise an error.
pub fn on_relation_invalidation(listener: fn(pg_sys::Oid)) {
    let first = LISTENERS.with(|l| {
        let mut l = l.borrow_mut();
        l.push(listener);
        l.len() == 1
    });
    if first {
        // SAFETY: registers a callback for the backend's life; `relation_invalidated`
        // has the signature PostgreSQL calls it with.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(relation_invalidated), Datum::from(0))
        };
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_invalidated(_arg: Datum, relid: pg_sys::Oid) {
    let listeners = LISTENERS.with(|l| l.borrow().clone());
    for listener in listeners {
        listener(relid);
    }
}
