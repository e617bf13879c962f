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

/// Whether this transaction cannot write: a read-only transaction, or a hot standby.
pub fn read_only() -> bool {
    // SAFETY: XactReadOnly is a backend global set by the transaction machinery;
    // RecoveryInProgress reads shared state under its own lock.
    unsafe { pg_sys::XactReadOnly || pg_sys::RecoveryInProgress() }
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
