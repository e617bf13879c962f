//! The verify decision: safe Rust on typed values. The key is read by
//! [`probe::probe`]; a call that limits count is [`metered`]; this file decides what the
//! answer is.
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys;

use super::facts;
use super::metered::{metered, touch};
use super::probe::KeyRead;
use crate::caller::as_owner;
use crate::error;
use crate::jsonb::{self, Jsonb};
use crate::keymat;
use crate::owner::Owner;
use crate::permissions::Requirement;
use crate::settings;

/// The answer's `code`: what verify says of a key. Spelled for SQL in one place,
/// [`Code::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Valid,
    KeyNotFound,
    KeyExpired,
    KeyDisabled,
    InsufficientPermissions,
    RateLimited,
    UsageExceeded,
}

impl Code {
    /// The code as the contract spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Valid => "VALID",
            Code::KeyNotFound => "KEY_NOT_FOUND",
            Code::KeyExpired => "KEY_EXPIRED",
            Code::KeyDisabled => "KEY_DISABLED",
            Code::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            Code::RateLimited => "RATE_LIMITED",
            Code::UsageExceeded => "USAGE_EXCEEDED",
        }
    }

    /// The code's number in usage analytics ([`crate::usage::CODES`]).
    pub fn index(self) -> u8 {
        match self {
            Code::Valid => 0,
            Code::KeyNotFound => 1,
            Code::KeyExpired => 2,
            Code::KeyDisabled => 3,
            Code::InsufficientPermissions => 4,
            Code::RateLimited => 5,
            Code::UsageExceeded => 6,
        }
    }

    /// The answer's `valid` column.
    pub fn is_valid(self) -> bool {
        self == Code::Valid
    }
}

/// The outcome of one verify.
pub struct Outcome {
    pub code: Code,
    pub key: Option<KeyRead>,
    pub remaining: Option<i64>,
    pub retry_after: Option<Interval>,
    /// One object per rate limit in force (the `rate_limits` column); `None`: none.
    pub rate_limits: Option<serde_json::Value>,
}

impl Outcome {
    pub(super) fn not_found() -> Outcome {
        Outcome::of(None, Code::KeyNotFound)
    }

    pub(super) fn of(key: Option<KeyRead>, code: Code) -> Outcome {
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
        || !facts::imported_keys_exist()
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

/// The first refusal that a key's own settings give, in the contract's order: disabled,
/// expired, then insufficient permissions (`permissions` is read only when a requirement
/// is given). `None`: the key may be used, as far as its limits allow. Asked of the row
/// as the probe read it, and again of the row as locked ([`super::metered`]).
pub(super) fn own_refusal(
    enabled: bool,
    expires_at: Option<pg_sys::TimestampTz>,
    now: TimestampWithTimeZone,
    required: Option<&Required>,
    permissions: impl FnOnce() -> Option<Jsonb>,
) -> Option<Code> {
    if !enabled {
        Some(Code::KeyDisabled)
    } else if expires_at.is_some_and(|t| t <= pg_sys::TimestampTz::from(now)) {
        Some(Code::KeyExpired)
    } else if !required.is_none_or(|r| r.granted_by(permissions())) {
        Some(Code::InsufficientPermissions)
    } else {
        None
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
    let refusal = own_refusal(k.enabled(), k.expires_at(), now, required, || {
        k.permissions()
    });
    if let Some(code) = refusal {
        // Refused before any limit is looked at: remaining is the key's own, as stored.
        return Outcome {
            remaining: k.remaining(),
            ..Outcome::of(Some(k), code)
        };
    }
    // The owner whose limits may apply (None: surely none do).
    let (org_id, user_id) = (k.org_id(), k.user_id());
    let owner = Owner::of_key(org_id.as_deref(), user_id.as_deref())
        .filter(|&o| facts::owner_may_have_limits(o));
    if k.is_limited() || owner.is_some() {
        settings::with_pinned_search_path(|| as_owner(|| metered(k, owner, required, cost, now)))
    } else {
        touch(&k, now);
        Outcome::of(Some(k), Code::Valid)
    }
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
    let o = decide(Some(key), required.as_ref(), cost, now, super::probe::probe);
    (
        o.code.as_str().to_string(),
        o.remaining,
        o.retry_after,
        o.rate_limits,
    )
}
