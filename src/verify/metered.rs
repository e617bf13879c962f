//! A verify that limits count: read → decide → record.
//!
//! - **read**: the key's limits and its owner's ([`read`]), locked when the call will
//!   write — the key first, then the owner, in every verify, so that two verifies never
//!   wait on each other in opposite orders;
//! - **decide**: [`meter::decide`], on both at once (pure, unit-tested in `src/meter/`);
//! - **record**: only an admitted call that spends writes ([`record`]); a refusal changes
//!   nothing anywhere.
//!
//! A call of cost 0 writes nothing, so it takes no lock either. Keys without limits (and
//! every plain key) only [`touch`] `last_used_at`.
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::decide::{own_refusal, Code, Outcome, Required};
use super::probe::KeyRead;
use crate::backend::{
    has_written, in_transaction_block, micros, read_only, uses_transaction_snapshot, Micros,
};
use crate::caller::as_owner;
use crate::error;
use crate::meter::report::{describe, Metered, Scope};
use crate::meter::{self, Spent, Verdict, Window};
use crate::owner::Owner;
use crate::settings;
use crate::storage;
use crate::storage::metering::{self, Schema};

/// The limits that apply to one call, as read (empty where a party has none).
struct Read {
    key: Metered,
    owner: Metered,
    schema: Schema,
}

/// What [`read`] found.
enum Found {
    /// The key was revoked or deleted since the probe.
    Gone,
    /// The key's row, once locked, says no: another transaction disabled it, let it
    /// expire or changed its permissions while this call waited for the lock.
    Refused(Code, Option<i64>),
    /// No limits apply after all (the owner has none).
    Unlimited,
    Limits(Read),
}

/// Read the key's and the owner's limits at `now`, each row locked when the call writes.
/// The key's row is checked again as it is then: the probe read it before the lock.
fn read(
    k: &KeyRead,
    owner: Option<Owner<'_>>,
    required: Option<&Required>,
    now: TimestampWithTimeZone,
    writes: bool,
) -> Found {
    let lock = writes && !read_only();
    let schema = if k.is_from_0_1_0() {
        Schema::V0_1_0
    } else {
        Schema::Current
    };
    let key = if k.is_limited() {
        if writes {
            require_writable();
        }
        let Some(m) = metering::key_meter(k.id(), now, lock, schema) else {
            return Found::Gone;
        };
        let remaining = m.metered.limits.quota.map(|q| q.remaining);
        let expires_at = m.expires_at.map(micros);
        if let Some(code) = own_refusal(m.enabled, expires_at, now, required, || m.permissions) {
            return Found::Refused(code, remaining);
        }
        Some(m.metered)
    } else {
        None
    };
    // After the key: always in that order.
    let owner = owner.and_then(|o| metering::owner_meter(o, now, lock));
    match (key, owner) {
        (None, None) => Found::Unlimited,
        (key, owner) => Found::Limits(Read {
            key: key.unwrap_or_default(),
            owner: owner.map(|o| o.metered).unwrap_or_default(),
            schema,
        }),
    }
}

/// A call of `cost` by a key that has limits, or whose `owner` may have.
pub(super) fn metered(
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
    let read = match read(&k, owner, required, now, writes) {
        Found::Gone => return Outcome::not_found(),
        Found::Refused(code, remaining) => {
            return Outcome {
                remaining,
                ..Outcome::of(Some(k), code)
            }
        }
        Found::Unlimited => {
            touch(&k, now);
            return Outcome::of(Some(k), Code::Valid);
        }
        Found::Limits(read) => read,
    };
    if writes {
        require_writable();
    }
    let (key_state, owner_state) = (&read.key, &read.owner);
    let now_us = micros(now);
    let verdict = meter::decide(now_us, cost, &key_state.limits, &owner_state.limits);
    let (code, wait) = match &verdict {
        Verdict::Admitted { .. } => (Code::Valid, None),
        Verdict::RateLimited { retry_after } => (Code::RateLimited, *retry_after),
        Verdict::UsageExceeded { retry_after } => (Code::UsageExceeded, *retry_after),
    };
    let (remaining, key_windows, owner_windows) = match verdict {
        Verdict::Admitted { key, owner: shared } => {
            let spent = Spending {
                key: &key,
                owner: &shared,
            };
            record(&k, owner, &read, spent, writes, now);
            let remaining = [key.1, shared.1]
                .into_iter()
                .flatten()
                .map(|s| s.remaining)
                .min();
            (remaining, key.0, shared.0)
        }
        // Refused: nothing changes; what is left is as the call found it.
        _ => (
            [key_state.limits.quota, owner_state.limits.quota]
                .into_iter()
                .flatten()
                .map(|q| q.left(now_us))
                .min(),
            key_state.limits.windows.clone(),
            owner_state.limits.windows.clone(),
        ),
    };
    Outcome {
        code,
        key: Some(k),
        remaining,
        retry_after: wait.map(Interval::from_micros),
        rate_limits: rate_limits(now_us, key_state, &key_windows, owner_state, &owner_windows),
    }
}

/// The new state of an admitted call's windows and quotas, the key's and the owner's.
struct Spending<'a> {
    key: &'a (Vec<Window>, Option<Spent>),
    owner: &'a (Vec<Window>, Option<Spent>),
}

/// Write an admitted call back: the key's new windows and quota (a key without limits of
/// its own only touches `last_used_at`), and the owner's.
fn record(
    k: &KeyRead,
    owner: Option<Owner<'_>>,
    read: &Read,
    spent: Spending<'_>,
    writes: bool,
    now: TimestampWithTimeZone,
) {
    if writes && k.is_limited() {
        metering::key_meter_spend(
            k.id(),
            &read.key,
            &spent.key.0,
            spent.key.1,
            now,
            read.schema,
        );
    } else {
        touch(k, now);
    }
    if let (true, Some(o)) = (writes && !read.owner.limits.is_empty(), owner) {
        metering::owner_meter_spend(o, &read.owner, &spent.owner.0, spent.owner.1, now);
    }
}

/// Verify's `rate_limits` column: one object per window in force, the key's then the
/// owner's; `None` when there is none.
fn rate_limits(
    now: Micros,
    key: &Metered,
    key_windows: &[Window],
    owner: &Metered,
    owner_windows: &[Window],
) -> Option<serde_json::Value> {
    let mut items = describe(now, Scope::Key, key, key_windows);
    items.extend(describe(now, Scope::Owner, owner, owner_windows));
    (!items.is_empty()).then_some(serde_json::Value::Array(items))
}

/// Record a use that spends nothing: `last_used_at`, at most once per
/// `apikey.last_used_resolution`, never waiting, never in a read-only transaction. It is
/// a hint, and must never fail an authentication: not under REPEATABLE READ or
/// SERIALIZABLE either, where a row touched by another session after the snapshot would
/// raise 40001 (the touch is left to the next verify in READ COMMITTED).
pub(super) fn touch(k: &KeyRead, now: TimestampWithTimeZone) {
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
