//! Limits shared by an owner's keys: `set_owner_limits` and `get_owner_limits`.
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::JsonB;

use super::optional_id;
use crate::authz;
use crate::backend::{micros, now_tz, timestamp};
use crate::caller::{as_owner, Caller};
use crate::error;
use crate::jsonb::Jsonb;
use crate::key_settings::Settings;
use crate::meter::report::{describe, Scope};
use crate::owner::{Owner, OwnerKind};
use crate::storage::metering;

/// What an organization names in the owner functions of this file.
const LIMITS: &str = "limits shared by its keys";

/// The owner named by exactly one of `org_id` and `user_id`; 22023 otherwise, with a hint
/// that says what an organization's owner stands for here (`for_org`, e.g. "limits shared
/// by its keys").
pub(super) fn one_owner<'a>(
    org_id: Option<&'a str>,
    user_id: Option<&'a str>,
    for_org: &str,
) -> Owner<'a> {
    match (
        optional_id("org_id", org_id),
        optional_id("user_id", user_id),
    ) {
        (Some(org), None) => Owner::org(org),
        (None, Some(user)) => Owner::user(user),
        _ => error::bad_arg(
            "name exactly one owner: org_id or user_id",
            format!("Pass org_id => '<organization>' for {for_org}, or user_id => '<user>' for a user's own keys."),
        ),
    }
}

/// Set the limits shared by every key of an organization (or by a user's own keys),
/// replacing any before; all NULL removes them. Trusted callers only.
// The Rust name differs from the SQL name so that the C symbol is new in 0.3.0: a database
// not yet updated still declares 0.2.0's arguments for `set_owner_limits_wrapper`, which
// src/api/outdated.rs answers with 55000.
#[pg_extern(volatile, name = "set_owner_limits")]
#[search_path(pg_catalog, pg_temp)]
fn set_owner_limits_030(
    org_id: default!(Option<&str>, "NULL"),
    user_id: default!(Option<&str>, "NULL"),
    remaining: default!(Option<i64>, "NULL"),
    refill_amount: default!(Option<i64>, "NULL"),
    refill_interval: default!(Option<Interval>, "NULL"),
    rate_limits: default!(Option<Jsonb>, "NULL"),
    refill_anchor: default!(Option<TimestampWithTimeZone>, "NULL"),
) {
    // The settings an owner can have too, checked as a key's of the same names.
    let limits = Settings {
        remaining,
        refill_amount,
        refill_interval,
        rate_limits,
        refill_anchor,
        ..Settings::default()
    };
    let caller = Caller::current();
    caller.require_trusted("set_owner_limits");
    let owner = one_owner(org_id, user_id, LIMITS);
    // The same checks as a key's settings of the same names.
    limits.validate_values();
    limits.validate_pairs();
    if limits.refill_amount.is_some() && limits.remaining.is_none() {
        error::bad_arg(
            "a refill needs a quota: refill_amount without remaining",
            "Pass remaining too (e.g. remaining => 100000, refill_amount => 100000, refill_interval => '1 month').",
        );
    }
    as_owner(|| {
        if owner.kind == OwnerKind::Org {
            authz::require_org(owner.id);
        }
        let now = now_tz();
        // The refill periods count from the anchor given, else from now.
        let limits = limits.clone().anchored(refill_anchor, true, now);
        // Every count starts over: the budget slots go, once the verifies spending from
        // them are done.
        metering::owner_slots_clear(owner, now);
        metering::owner_limits_set(owner, &limits, &caller.actor(), now);
    });
    // Verifies of every backend learn of it at commit, from the table's trigger.
}

/// The limits shared by an owner's keys and their state now: trusted callers, members
/// whose role allows `read` in the organization, and a user for its own limits; anyone
/// else gets P0002. No row: the owner has no limits.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // the contract's result columns
fn get_owner_limits(
    org_id: default!(Option<&str>, "NULL"),
    user_id: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(org_id, Option<String>),
        name!(user_id, Option<String>),
        name!(remaining, Option<i64>),
        name!(refill_amount, Option<i64>),
        name!(refill_interval, Option<Interval>),
        name!(next_refill_at, Option<TimestampWithTimeZone>),
        name!(rate_limits, Option<Jsonb>),
        name!(rate_limit_state, Option<JsonB>),
        name!(set_at, TimestampWithTimeZone),
        name!(refill_anchor, Option<TimestampWithTimeZone>),
    ),
> {
    let caller = Caller::current();
    let owner = one_owner(org_id, user_id, LIMITS);
    let now = now_tz();
    let found = as_owner(|| {
        authz::authorize_owner_read(
            &caller,
            owner,
            "limits",
            "Trusted callers, and members whose role allows read, see an organization's limits; a user sees its own.",
        );
        metering::owner_meter(owner, now, metering::Lock::No, metering::Schema::Current)
    });
    let Some(o) = found else {
        return TableIterator::new(Vec::new());
    };
    let now_us = micros(now);
    // What is left in total: the row's counts and what its budget slots hold.
    let total = o.metered.limits.with_held(&o.held);
    let quota = total.quota;
    let next_refill_at = match (quota.and_then(|q| q.refill), o.refill_interval) {
        (Some(r), _) if r.at > now_us => Some(timestamp(r.at)),
        // Due: the next call refills; the next refill after it ends the current period.
        (Some(_), Some(iv)) => Some(metering::refill_period_end(
            o.refill_anchor.unwrap_or(o.set_at),
            iv,
            now,
            1,
        )),
        _ => None,
    };
    let state = describe(now_us, Scope::Owner, &o.metered, &total.windows);
    let (org, user) = match owner.kind {
        OwnerKind::Org => (Some(owner.id.to_string()), None),
        OwnerKind::User => (None, Some(owner.id.to_string())),
    };
    TableIterator::once((
        org,
        user,
        quota.map(|q| q.left(now_us)),
        o.refill_amount,
        o.refill_interval,
        next_refill_at,
        o.rate_limits,
        (!state.is_empty()).then_some(JsonB(serde_json::Value::Array(state))),
        o.set_at,
        o.refill_anchor,
    ))
}
