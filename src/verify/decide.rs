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
use crate::permissions::Requirement;
use crate::settings;
use crate::storage;

/// The outcome of one verify.
pub struct Outcome {
    pub code: &'static str,
    pub key: Option<KeyRead>,
    pub remaining: Option<i64>,
    pub retry_after: Option<Interval>,
}

impl Outcome {
    fn not_found() -> Outcome {
        Outcome {
            code: "KEY_NOT_FOUND",
            key: None,
            remaining: None,
            retry_after: None,
        }
    }
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

/// How many times a refused limited key is re-tried when the reason for the refusal has
/// vanished by the time it is looked up (another transaction changed the key).
const CONSUME_ATTEMPTS: usize = 3;

/// The whole verify decision at instant `now` (a parameter so that tests can pin time).
pub fn decide(
    key: Option<&str>,
    required: Option<&Required>,
    now: TimestampWithTimeZone,
    probe: impl FnOnce(&[u8; 32]) -> Option<KeyRead>,
) -> Outcome {
    // Shape and checksum first: a mistyped or made-up key never reaches a table.
    let Some(digest) = key.and_then(keymat::check) else {
        return Outcome::not_found();
    };
    let Some(k) = probe(&digest) else {
        return Outcome::not_found();
    };
    if k.revoked() {
        return Outcome::not_found();
    }
    let now_tz = pg_sys::TimestampTz::from(now);
    let enabled = k.enabled();
    let expired = k.expires_at().is_some_and(|t| t <= now_tz);
    let permitted = required.is_none_or(|r| r.granted_by(k.permissions()));
    let remaining = k.remaining();
    let limited = remaining.is_some() || k.has_rate_limit();

    let code = if !enabled {
        "KEY_DISABLED"
    } else if expired {
        "KEY_EXPIRED"
    } else if !permitted {
        "INSUFFICIENT_PERMISSIONS"
    } else if limited {
        return consume(k, now);
    } else {
        let resolution = settings::last_used_resolution_micros();
        let touch_due = k.last_used_at().is_none_or(|t| t <= now_tz - resolution);
        if touch_due && !scan::read_only() {
            relax_commit_for_usage();
            settings::with_pinned_search_path(|| {
                as_owner(|| storage::key_touch(k.id(), now, Interval::from_micros(resolution)))
            });
        }
        "VALID"
    };
    Outcome {
        code,
        key: Some(k),
        remaining,
        retry_after: None,
    }
}

/// Spend one use of a key with a quota or rate limit, or say why not.
fn consume(k: KeyRead, now: TimestampWithTimeZone) -> Outcome {
    require_writable();
    relax_commit_for_usage();
    let key_id = k.id();
    settings::with_pinned_search_path(|| {
        as_owner(|| {
            let mut outcome = Outcome {
                code: "USAGE_EXCEEDED",
                key: None,
                remaining: Some(0),
                retry_after: None,
            };
            for _ in 0..CONSUME_ATTEMPTS {
                if let Some(left) = storage::key_consume(key_id, now) {
                    (outcome.code, outcome.remaining) = ("VALID", left);
                    break;
                }
                match storage::key_refusal(key_id, now) {
                    storage::Refusal::RateLimited {
                        retry_after,
                        remaining,
                    } => {
                        (outcome.code, outcome.retry_after, outcome.remaining) =
                            ("RATE_LIMITED", retry_after, remaining);
                        break;
                    }
                    storage::Refusal::UsageExceeded { retry_after } => {
                        (outcome.code, outcome.retry_after) = ("USAGE_EXCEEDED", retry_after);
                        break;
                    }
                    storage::Refusal::Gone => return Outcome::not_found(),
                    // The key changed between the two statements: decide again. After the last
                    // attempt this reports usage exceeded, the conservative answer.
                    storage::Refusal::Neither => {}
                }
            }
            Outcome {
                key: Some(k),
                ..outcome
            }
        })
    })
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
    now: TimestampWithTimeZone,
) -> (String, Option<i64>, Option<Interval>) {
    let required = required.map(|r| Required::check(jsonb::parse(r)));
    let o = decide(Some(key), required.as_ref(), now, scan::probe);
    (o.code.to_string(), o.remaining, o.retry_after)
}
