//! Organizations, members, and what a member's role lets it do with the org's keys.
//!
//! The role-to-action mapping is data (`apikey.member_role_actions`). Shipped defaults:
//! `owner` and `admin` may `create`, `read`, `update` and `delete`; `member` may do none.
//! A trusted caller changes it with `apikey.set_role_action`.
//!
//! Organizations and memberships come from the built-in tables, or — when the settings
//! `apikey.org_exists_function` and `apikey.member_roles_function` name them — from the
//! application's own SQL functions, which then fully replace the built-in tables.
//!
//! Who may do what with them is decided in [`crate::authz`]. Call these inside
//! [`crate::caller::as_owner`].
use pgrx::pg_sys;

use crate::caller;
use crate::error;
use crate::settings::{self, MembershipSource};
use crate::storage::{self, AppFunction};

/// A membership function the application may provide: the setting that names it and
/// the signature it must have.
struct AppFunctionKind {
    setting: &'static str,
    args: &'static str,
    returns: pg_sys::Oid,
    returns_sql: &'static str,
}

const ORG_EXISTS_FUNCTION: AppFunctionKind = AppFunctionKind {
    setting: "apikey.org_exists_function",
    args: "text",
    returns: pg_sys::BOOLOID,
    returns_sql: "boolean",
};

const MEMBER_ROLES_FUNCTION: AppFunctionKind = AppFunctionKind {
    setting: "apikey.member_roles_function",
    args: "text,text",
    returns: pg_sys::TEXTARRAYOID,
    returns_sql: "text[]",
};

/// The application's function `name` of `kind`, checked: it exists with the expected
/// signature and result, it pins its own search_path, and it belongs to a trusted role
/// (so no ordinary role can change what it answers).
fn app_function(kind: &AppFunctionKind, name: &str) -> AppFunction {
    let signature = format!("{name}({})", kind.args);
    let Some(f) = storage::app_function(&signature, kind.returns) else {
        error::not_ready(
            format!("{} names {signature}, which does not exist", kind.setting),
            "Set it to a schema-qualified function name, e.g. 'app.member_roles'.",
        )
    };
    if !f.returns_expected {
        error::not_ready(
            format!("{signature} must return {}", kind.returns_sql),
            "Fix the function or the setting.",
        );
    }
    if f.temporary || !caller::is_trusted(f.owner) {
        error::not_ready(
            format!("{signature} must belong to a superuser or a member of the service role"),
            "ALTER FUNCTION … OWNER TO a trusted role, so that no ordinary role can change what it answers.",
        );
    }
    if !f.pins_search_path {
        error::not_ready(
            format!("{signature} must pin its own search_path"),
            "ALTER FUNCTION … SET search_path = '' (and qualify the names it uses).",
        );
    }
    f
}

/// The application's two functions, or `None` for the built-in tables.
fn app_source() -> Option<(String, String)> {
    match settings::membership_source() {
        MembershipSource::BuiltIn => None,
        MembershipSource::Functions { org_exists, member_roles } => Some((org_exists, member_roles)),
        MembershipSource::HalfSet => error::not_ready(
            "apikey.org_exists_function and apikey.member_roles_function must be set together",
            "Set both to use the application's membership, or clear both to use the built-in tables.",
        ),
    }
}

/// 55000 when the application's functions are the membership source: the built-in
/// tables would be written but never read.
pub fn require_builtin_source(what: &str) {
    if app_source().is_some() {
        error::not_ready(
            format!("{what} writes the built-in membership tables, but apikey.member_roles_function is set"),
            "Manage organizations and members in the application's own tables, or clear apikey.org_exists_function and apikey.member_roles_function.",
        );
    }
}

pub fn org_exists(org_id: &str) -> bool {
    let Some((name, _)) = app_source() else {
        return storage::org_exists(org_id);
    };
    let f = app_function(&ORG_EXISTS_FUNCTION, &name);
    caller::with_caller_rights(|| storage::call_org_exists(&f, org_id)).unwrap_or(false)
}

/// The roles `user_id` holds in `org_id`; empty when it is not a member (or the
/// organization does not exist: the two are indistinguishable to an ordinary caller).
pub fn member_roles(org_id: &str, user_id: &str) -> Vec<String> {
    let Some((_, name)) = app_source() else {
        return storage::member_roles(org_id, user_id);
    };
    let f = app_function(&MEMBER_ROLES_FUNCTION, &name);
    caller::with_caller_rights(|| storage::call_member_roles(&f, org_id, user_id))
}
