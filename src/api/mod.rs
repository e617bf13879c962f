//! The SQL-facing functions of the contract (`docs/sql-contract.md`), by concern:
//! [`orgs`] organizations, members and role actions; [`keys`] creating, reading and
//! removing keys; [`lifecycle`] updating and rotating them; [`limits`] limits shared by
//! an owner's keys; [`import`] keys made by another system; [`audit`] the audit trail.
//! (`verify_api_key` is [`crate::verify`].)
//!
//! Each one: (1) decides on the calling role ([`Caller::current`]); (2) checks the
//! arguments; (3) inside [`as_owner`], asks [`crate::authz`] whether the caller may, and
//! only then reads or writes through [`crate::storage`]. Every function pins
//! `search_path` to `pg_catalog, pg_temp`: each is declared with `sql_function!` below
//! (`current_identity`, the one STABLE function, declares the same by hand).
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

/// Declares a function of the SQL API; write the function inside, as usual:
/// `sql_function!(/// doc  fn name(…) -> … { … });`. Each one is `volatile` and runs with
/// `search_path = pg_catalog, pg_temp`, pinned here for all of them: no object a caller
/// creates can stand in for one the function names.
///
/// Two forms read like the SQL they declare. (pgrx reads an argument's default and a result
/// column's name from the tokens of the signature, `default!(…)` and `name!(…)`, so no type
/// or helper can carry them; this macro writes those tokens before pgrx reads them.)
/// - **Arguments** `settings: with_settings![…]`: the function's SQL arguments in the
///   contract's order. `name: Type` is an argument as usual (one to a line). A bare name is
///   the key setting of that name: its SQL argument is `default!(Option<T>, "NULL")` with `T`
///   from the one list in `key_settings!`, and the body gets all of them gathered in one
///   [`Settings`], named by the argument (`settings` here), the settings not listed `None`.
///   The settings are named in runs, as the contract places them.
/// - **Result** `-> table![name: Type, …]`: the columns of `RETURNS TABLE`, written as in
///   SQL; a bare name is the key setting of that name (`Option<T>`). `-> NewKey` is the
///   result of `create_api_key` and `rotate_api_key`, which the contract gives the same
///   columns, written once below; the body returns `TableIterator::once(created_row(…))`.
///
/// A result column's type is a type's name or `Option<name>`; a typed argument's is
/// `Option<name>`, `Option<&str>`, `Option<&[u8]>` or `default!(…)`. The rules below take
/// them apart as tokens, one column or argument at a time (a `ty` fragment would reach pgrx
/// as an opaque group, hiding the `default!` and `Option` it reads).
///
/// [`Settings`]: crate::key_settings::Settings
macro_rules! sql_function {
    ($(#[$($attr:tt)*])* fn $name:ident $params:tt -> NewKey $body:block) => {
        sql_function!($(#[$($attr)*])* fn $name $params -> table![
            key_id: Uuid, key: String, start: String, prefix: String, org_id: Option<String>,
            user_id: Option<String>, name, expires_at, permissions, metadata, remaining,
            refill_amount, refill_interval, rate_limit_max, rate_limit_window,
            created_at: TimestampWithTimeZone, rate_limits
        ] $body);
    };
    ($(#[$($attr:tt)*])* fn $name:ident $params:tt -> table![$($cols:tt)*] $body:block) => {
        sql_function!(@columns [$(#[$($attr)*])*] $name $params [] [$($cols)*,] $body);
    };
    ($(#[$($attr:tt)*])* fn $name:ident $params:tt $(-> $ret:ty)? $body:block) => {
        sql_function!(@arguments [$(#[$($attr)*])*] $name $params [$(-> $ret)?] $body);
    };

    // `-> table![…]`, a column at a time, into `name!` columns (tokens as written).
    (@columns $attrs:tt $name:ident $params:tt [$($done:tt)*]
        [$col:ident: Option<$ty:ident>, $($rest:tt)*] $body:block) => {
        sql_function!(@columns $attrs $name $params [$($done)* name!($col, Option<$ty>),]
            [$($rest)*] $body);
    };
    (@columns $attrs:tt $name:ident $params:tt [$($done:tt)*]
        [$col:ident: $ty:ident, $($rest:tt)*] $body:block) => {
        sql_function!(@columns $attrs $name $params [$($done)* name!($col, $ty),]
            [$($rest)*] $body);
    };
    (@columns $attrs:tt $name:ident $params:tt [$($done:tt)*]
        [$setting:ident, $($rest:tt)*] $body:block) => {
        sql_function!(@columns $attrs $name $params
            [$($done)* name!($setting, Option<crate::key_settings::types::$setting>),]
            [$($rest)*] $body);
    };
    (@columns $attrs:tt $name:ident $params:tt [$($done:tt)*] [$(,)?] $body:block) => {
        sql_function!(@arguments $attrs $name $params
            [-> TableIterator<'static, ($($done)*)>] $body);
    };

    // `given: with_settings![…]`, an argument at a time (tokens as written).
    (@arguments $attrs:tt $name:ident ($given:ident: with_settings![$($args:tt)*] $(,)?)
        $ret:tt $body:block) => {
        sql_function!(@settings $attrs $name $given [] [] [$($args)*,] $ret $body);
    };
    (@settings $attrs:tt $name:ident $given:ident [$($done:tt)*] [$($set:ident)*]
        [$arg:ident: $mac:ident!$margs:tt, $($rest:tt)*] $ret:tt $body:block) => {
        sql_function!(@settings $attrs $name $given [$($done)* $arg: $mac!$margs,] [$($set)*]
            [$($rest)*] $ret $body);
    };
    (@settings $attrs:tt $name:ident $given:ident [$($done:tt)*] [$($set:ident)*]
        [$arg:ident: Option<$ty:ident>, $($rest:tt)*] $ret:tt $body:block) => {
        sql_function!(@settings $attrs $name $given [$($done)* $arg: Option<$ty>,] [$($set)*]
            [$($rest)*] $ret $body);
    };
    (@settings $attrs:tt $name:ident $given:ident [$($done:tt)*] [$($set:ident)*]
        [$arg:ident: Option<&$ty:tt>, $($rest:tt)*] $ret:tt $body:block) => {
        sql_function!(@settings $attrs $name $given [$($done)* $arg: Option<&$ty>,] [$($set)*]
            [$($rest)*] $ret $body);
    };
    (@settings $attrs:tt $name:ident $given:ident [$($done:tt)*] [$($set:ident)*]
        [$setting:ident, $($rest:tt)*] $ret:tt $body:block) => {
        sql_function!(@settings $attrs $name $given
            [$($done)* $setting: default!(Option<crate::key_settings::types::$setting>, "NULL"),]
            [$($set)* $setting] [$($rest)*] $ret $body);
    };
    (@settings $attrs:tt $name:ident $given:ident [$($done:tt)*] [$($set:ident)*] [$(,)?]
        $ret:tt $body:block) => {
        sql_function!(@arguments $attrs $name ($($done)*) $ret {
            #[allow(clippy::needless_update)] // when every setting is an argument
            let $given = crate::key_settings::Settings { $($set,)* ..Default::default() };
            $body
        });
    };

    (@arguments [$($attr:tt)*] $name:ident ($($params:tt)*) [$($ret:tt)*] $body:block) => {
        $($attr)*
        // The contract fixes the arguments and result columns, not this code.
        #[allow(clippy::too_many_arguments, clippy::type_complexity)]
        #[pg_extern(volatile)]
        #[search_path(pg_catalog, pg_temp)]
        fn $name($($params)*) $($ret)* $body
    };
}

mod audit;
mod import;
mod keys;
mod lifecycle;
mod limits;
mod orgs;

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

/// The row `create_api_key` and `rotate_api_key` return (`-> NewKey` above): the only
/// time a key's plaintext leaves the database.
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
