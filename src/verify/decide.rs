//! The verify decision: safe Rust on typed values. The key is read by [`scan::probe`];
//! uses are spent through [`storage`]; this file decides what the answer is.
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::scan::{self, KeyRead};
use crate::caller::as_owner;
use crate::error;
use crate::jsonb::{self, Jsonb};
use crate::keymat;
use crate::meter;
use crate::permissions::Requirement;
use crate::settings;
use crate::storage;
use crate::storage::metering::{self, Owner, Schema, Scope};

/// The outcome of one verify.
pub struct Outcome {
    pub code: &'static str,
    pub key: Option<KeyRead>,
    pub remaining: Option<i64>,
    pub retry_after: Option<Interval>,
    /// One object per rate limit in force (the `rate_limits` column); `None`: none.
    pub rate_limits: Option<serde_json::Value>,
}

impl Outcome {
    fn not_found() -> Outcome {
        Outcome::of(None, "KEY_NOT_FOUND")
    }

    fn of(key: Option<KeyRead>, code: &'static str) -> Outcome {
        Outcome {
            code,
            key,
            remaining: None,
            retry_after: None,
            rate_limits: None,
        }
    }
}

/// A `cost` argument, checked: 22023 unless it is 0 or more.
pub fn check_cost(cost: Option<i32>) -> i64 {
    match cost {
        Some(c) if c >= 0 => i64::from(c),
        Some(c) => error::bad_arg(
            format!("cost must be 0 or more, not {c}"),
            "Pass what this call spends from every quota that applies, e.g. cost => 3; 0 spends nothing.",
        ),
        None => error::bad_arg(
            "cost must not be NULL",
            "Leave cost out for 1, or pass what this call spends.",
        ),
    }
}

/// Keys imported from another system are looked up by the digest of their text only
/// up to this length; anything longer cannot be one of them.
const MAX_IMPORTED_KEY_LEN: usize = 512;

/// The stored key that `key` names, if any. A key with pg_apikey's shape and checksum is
/// looked up by its digest; one without is refused without touching a table, unless
/// imported keys are in use and accepted (then it is looked up by digest too).
fn find(key: Option<&str>, probe: impl FnOnce(&[u8; 32]) -> Option<KeyRead>) -> Option<KeyRead> {
    let key = key?;
    if let Some(digest) = keymat::check(key) {
        return probe(&digest);
    }
    if key.is_empty()
        || key.len() > MAX_IMPORTED_KEY_LEN
        || !settings::ACCEPT_IMPORTED_KEYS.get()
        || !scan::imported_keys_exist()
    {
        return None;
    }
    probe(&keymat::digest(key.as_bytes()))
}

/// A `required_permissions` argument, checked once.
pub struct Required {
    value: Jsonb,
    requirement: Requirement,
}

impl Required {
    /// 22023 unless it is a well-formed requirement (an object of resources and actions,
    /// or an `$all`/`$any` query). The shape is read from the jsonb value itself; the
    /// value is used as it is.
    pub fn check(value: Jsonb) -> Required {
        match Requirement::parse(&value.value()) {
            Ok(requirement) => Required { value, requirement },
            Err(why) => error::bad_arg(
                format!("required_permissions is malformed: {why}"),
                "Pass an object mapping each resource to an array of actions, e.g. '{\"files\": [\"read\"]}', \
                 or a query such as '{\"$any\": [{\"files\": [\"write\"]}, {\"admin\": [\"*\"]}]}'.",
            ),
        }
    }

    /// Whether the key's granted `permissions` meet the requirement. A plain object is
    /// met when jsonb containment says so (decided in C, the common case); otherwise, and
    /// for queries, the granted value is read and the requirement evaluated (`"*"` grants).
    fn granted_by(&self, permissions: Option<Jsonb>) -> bool {
        match permissions {
            Some(granted)
                if self.requirement.is_plain() && jsonb::contains(granted, self.value) =>
            {
                true
            }
            Some(granted) => self.requirement.is_met_by(Some(&granted.value())),
            None => self.requirement.is_met_by(None),
        }
    }
}

/// The whole verify decision at instant `now` (a parameter so that tests can pin time)
/// for a call that spends `cost` (checked by [`check_cost`]).
pub fn decide(
    key: Option<&str>,
    required: Option<&Required>,
    cost: i64,
    now: TimestampWithTimeZone,
    probe: impl FnOnce(&[u8; 32]) -> Option<KeyRead>,
) -> Outcome {
    // Shape and checksum first: a mistyped or made-up key never reaches a table.
    let Some(k) = find(key, probe) else {
        return Outcome::not_found();
    };
    if k.revoked() {
        return Outcome::not_found();
    }
    let now_tz = pg_sys::TimestampTz::from(now);
    let expired = k.expires_at().is_some_and(|t| t <= now_tz);
    // Refused before any limit is looked at: remaining is the key's own, as stored.
    let refused = |k: KeyRead, code| Outcome {
        remaining: k.remaining(),
        ..Outcome::of(Some(k), code)
    };
    if !k.enabled() {
        refused(k, "KEY_DISABLED")
    } else if expired {
        refused(k, "KEY_EXPIRED")
    } else if !required.is_none_or(|r| r.granted_by(k.permissions())) {
        refused(k, "INSUFFICIENT_PERMISSIONS")
    } else {
        // The owner whose limits may apply (None: surely none do).
        let owner = owner_of(&k).filter(|(kind, id)| scan::owner_may_have_limits(kind, id));
        if k.is_limited() || owner.is_some() {
            settings::with_pinned_search_path(|| as_owner(|| metered(k, owner, cost, now)))
        } else {
            touch(&k, now);
            Outcome::of(Some(k), "VALID")
        }
    }
}

/// Record a use that spends nothing: `last_used_at`, at most once per
/// `apikey.last_used_resolution`, never waiting, never in a read-only transaction.
fn touch(k: &KeyRead, now: TimestampWithTimeZone) {
    let resolution = settings::last_used_resolution_micros();
    let now_tz = pg_sys::TimestampTz::from(now);
    let touch_due = k.last_used_at().is_none_or(|t| t <= now_tz - resolution);
    if touch_due && !scan::read_only() {
        relax_commit_for_usage();
        settings::with_pinned_search_path(|| {
            as_owner(|| storage::key_touch(k.id(), now, Interval::from_micros(resolution)))
        });
    }
}

/// The owner whose limits apply to a key: its organization, or for a user-owned key its
/// user.
fn owner_of(k: &KeyRead) -> Option<(&'static str, String)> {
    match (k.org_id(), k.user_id()) {
        (Some(org), _) => Some(("org", org)),
        (None, Some(user)) => Some(("user", user)),
        (None, None) => None,
    }
}

/// A call of `cost` by a key that has limits, or whose `owner` may have. The key's and the
/// owner's limits are read — locked when the call will write: the key first, then the
/// owner, in every verify, so that two verifies never wait on each other in opposite
/// orders — decided together by [`meter::decide`], and written back only when the call
/// is admitted. A call of cost 0 writes nothing, so it takes no lock either.
fn metered(
    k: KeyRead,
    owner: Option<(&'static str, String)>,
    cost: i64,
    now: TimestampWithTimeZone,
) -> Outcome {
    let owner = owner.as_ref().map(|(kind, id)| Owner { kind, id });
    let writes = cost > 0;
    let lock = writes && !scan::read_only();
    let schema = if k.is_from_0_1_0() {
        Schema::V0_1_0
    } else {
        Schema::Current
    };
    let key_state = if k.is_limited() {
        if writes {
            require_writable();
        }
        match metering::key_meter(k.id(), now, lock, schema) {
            Some(m) => Some(m),
            None => return Outcome::not_found(),
        }
    } else {
        None
    };
    // Locked too when the call writes (after the key: always in that order). None: the
    // owner has no limits after all.
    let owner_state = owner.and_then(|o| metering::owner_meter(o, now, lock));
    if key_state.is_none() && owner_state.is_none() {
        touch(&k, now);
        return Outcome::of(Some(k), "VALID");
    }
    if writes {
        require_writable();
        relax_commit_for_usage();
    }
    let key_state = key_state.unwrap_or_default();
    let owner_state = owner_state.map(|o| o.metered).unwrap_or_default();
    let now_us = metering::micros(now);
    let verdict = meter::decide(now_us, cost, &key_state.limits, &owner_state.limits);
    let (code, wait) = match &verdict {
        meter::Verdict::Admitted { .. } => ("VALID", None),
        meter::Verdict::RateLimited { retry_after } => ("RATE_LIMITED", *retry_after),
        meter::Verdict::UsageExceeded { retry_after } => ("USAGE_EXCEEDED", *retry_after),
    };
    let mut out = Outcome {
        retry_after: wait.map(Interval::from_micros),
        ..Outcome::of(None, code)
    };
    let (key_windows, owner_windows) =
        if let meter::Verdict::Admitted { key, owner: shared } = verdict {
            if writes && k.is_limited() {
                metering::key_meter_spend(k.id(), &key_state, &key.0, key.1, now, schema);
            } else {
                touch(&k, now);
            }
            if let (true, Some(o)) = (writes && !owner_state.limits.is_empty(), owner) {
                metering::owner_meter_spend(o, &owner_state, &shared.0, shared.1, now);
            }
            out.remaining = [key.1, shared.1]
                .into_iter()
                .flatten()
                .map(|s| s.remaining)
                .min();
            (key.0, shared.0)
        } else {
            // Refused: nothing changes; what is left is as the call found it.
            out.remaining = [key_state.limits.quota, owner_state.limits.quota]
                .into_iter()
                .flatten()
                .map(|q| q.left(now_us))
                .min();
            (
                key_state.limits.windows.clone(),
                owner_state.limits.windows.clone(),
            )
        };
    let mut items = metering::describe(now_us, Scope::Key, &key_state, &key_windows);
    items.extend(metering::describe(
        now_us,
        Scope::Owner,
        &owner_state,
        &owner_windows,
    ));
    out.rate_limits = (!items.is_empty()).then_some(serde_json::Value::Array(items));
    Outcome {
        key: Some(k),
        ..out
    }
}

/// Keys with a quota or rate limit are counted exactly, which needs a write.
fn require_writable() {
    if scan::read_only() {
        error::raise(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "verifying a key with a quota or rate limit needs a read-write transaction",
            "Verify on the primary, outside a read-only transaction.",
        );
    }
}

/// With `apikey.usage_synchronous_commit = off`, let the single-statement transaction of
/// a verify that records usage commit without waiting for its WAL flush. Never inside an
/// explicit transaction block, whose other writes are the application's.
fn relax_commit_for_usage() {
    if settings::USAGE_SYNCHRONOUS_COMMIT.get() || scan::in_transaction_block() {
        return;
    }
    settings::set_local(c"synchronous_commit", c"off");
}

/// The row verify returns, decoded, for tests.
#[cfg(any(test, feature = "pg_test"))]
pub fn decide_for_test(
    key: &str,
    required: Option<&str>,
    cost: i64,
    now: TimestampWithTimeZone,
) -> (
    String,
    Option<i64>,
    Option<Interval>,
    Option<serde_json::Value>,
) {
    let required = required.map(|r| Required::check(jsonb::parse(r)));
    let o = decide(Some(key), required.as_ref(), cost, now, scan::probe);
    (
        o.code.to_string(),
        o.remaining,
        o.retry_after,
        o.rate_limits,
    )
}
