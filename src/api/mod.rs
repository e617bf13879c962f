//! The SQL-facing functions of the contract (`docs/sql-contract.md`), by concern:
//! [`orgs`] organizations, members and role actions; [`keys`] creating, reading and
//! removing keys; [`lifecycle`] updating and rotating them; [`limits`] limits shared by
//! an owner's keys; [`import`] keys made by another system; [`audit`] the audit trail.
//! (`verify_api_key` is [`crate::verify`].)
//!
//! Each one is a plain `#[pg_extern]` whose signature is the contract's: arguments with
//! `default!(…)`, result columns with `name!(…)` in a `TableIterator` (the pg_regress file
//! `contract.sql` pins every signature). Each is `volatile` (but `current_identity`,
//! `stable`) and runs with `#[search_path(pg_catalog, pg_temp)]`: no object a caller
//! creates can stand in for one the function names. A key's settings arrive as separate
//! arguments and are gathered into a [`Settings`] struct literal in the body, so that an
//! argument of the wrong type is a compile error.
//!
//! Each function: (1) decides on the calling role ([`Caller::current`]); (2) checks the
//! arguments; (3) inside [`as_owner`], asks [`crate::authz`] whether the caller may, and
//! only then reads or writes through [`crate::storage`].
//!
//! [`Settings`]: crate::key_settings::Settings
//!
//! [`Caller::current`]: crate::caller::Caller::current
//! [`as_owner`]: crate::caller::as_owner
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::Uuid;

use crate::caller::Caller;
use crate::error;
use crate::jsonb::Jsonb;
use crate::keymat;
use crate::settings;
use crate::storage;

mod audit;
mod exposed;
mod import;
mod keys;
mod lifecycle;
mod limits;
mod orgs;
mod outdated;
mod usage;

// ---------------------------------------------------------------- argument checks

pub(crate) fn require_id<'a>(what: &str, value: Option<&'a str>) -> &'a str {
    match value {
        Some(v) if !v.is_empty() => v,
        _ => error::bad_arg(
            format!("{what} must not be NULL or empty"),
            format!("Pass a non-empty {what}."),
        ),
    }
}

pub(crate) fn optional_id<'a>(what: &str, value: Option<&'a str>) -> Option<&'a str> {
    value.map(|v| require_id(what, Some(v)))
}

pub(crate) fn check_prefix(prefix: Option<String>) -> String {
    let prefix = prefix.or_else(settings::default_prefix).unwrap_or_default();
    if !keymat::is_valid_prefix(&prefix) {
        error::bad_arg(
            format!(
                "prefix \"{prefix}\" is not 1 to {} characters of [A-Za-z0-9_-]",
                keymat::PREFIX_MAX
            ),
            "Pass a prefix such as 'ak_' or 'dp_live_' (or fix apikey.default_prefix).",
        );
    }
    prefix
}

/// The calling role, and the key it names (22023 when NULL): how each function on one
/// key begins.
pub(crate) fn caller_and_key(key_id: Option<Uuid>) -> (Caller, Uuid) {
    let caller = Caller::current();
    let key_id = key_id.unwrap_or_else(|| {
        error::bad_arg(
            "key_id must not be NULL",
            "Pass the key_id that create_api_key returned.",
        )
    });
    (caller, key_id)
}

/// The row `create_api_key` and `rotate_api_key` return (the same columns, declared in
/// each signature): the only time a key's plaintext leaves the database.
pub(crate) type CreatedOut = (
    Uuid,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<TimestampWithTimeZone>,
    Option<Jsonb>,
    Option<Jsonb>,
    Option<i64>,
    Option<i64>,
    Option<Interval>,
    Option<i32>,
    Option<Interval>,
    TimestampWithTimeZone,
    Option<Jsonb>,
);

pub(crate) fn created_row(made: keymat::NewKey, c: storage::CreatedKey) -> CreatedOut {
    (
        c.key_id,
        made.key,
        made.start,
        c.prefix,
        c.org_id,
        c.user_id,
        c.settings.name,
        c.settings.expires_at,
        c.settings.permissions,
        c.settings.metadata,
        c.settings.remaining,
        c.settings.refill_amount,
        c.settings.refill_interval,
        c.settings.rate_limit_max,
        c.settings.rate_limit_window,
        c.created_at,
        c.settings.rate_limits,
    )
}

pub(crate) fn generate_key(prefix: &str) -> keymat::NewKey {
    keymat::generate(prefix).unwrap_or_else(|e| {
        error::raise(
            PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            format!("the operating system's random number generator failed: {e}"),
            "Check the server's entropy source; no key was created.",
        )
    })
}
