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
//! Call these inside [`crate::caller::as_owner`].
use pgrx::{pg_sys, PgSqlErrorCode};

use crate::caller::{self, Caller};
use crate::error;
use crate::settings::{self, MembershipSource};
use crate::storage::{self, AppFunction};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

fn misconfigured(message: String, hint: &str) -> ! {
    error::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        message,
        hint.to_string(),
    )
}

/// The application's function named by `setting` (value `name`), checked: it exists with
/// the expected signature and result, it pins its own search_path, and it belongs to a
/// trusted role (so no ordinary role can change what it answers).
fn app_function(
    setting: &str,
    name: &str,
    args: &str,
    returns: pg_sys::Oid,
    returns_sql: &str,
) -> AppFunction {
    let signature = format!("{name}({args})");
    let Some(f) = storage::app_function(&signature, returns) else {
        misconfigured(
            format!("{setting} names {signature}, which does not exist"),
            "Set it to a schema-qualified function name, e.g. 'app.member_roles'.",
        )
    };
    if !f.returns_expected {
        misconfigured(
            format!("{signature} must return {returns_sql}"),
            "Fix the function or the setting.",
        );
    }
    if f.temporary || !caller::is_trusted(f.owner) {
        misconfigured(
            format!("{signature} must belong to a superuser or a member of the service role"),
            "ALTER FUNCTION … OWNER TO a trusted role, so that no ordinary role can change what it answers.",
        );
    }
    if !f.pins_search_path {
        misconfigured(
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
        MembershipSource::HalfSet => misconfigured(
            "apikey.org_exists_function and apikey.member_roles_function must be set together".into(),
            "Set both to use the application's membership, or clear both to use the built-in tables.",
        ),
    }
}

/// 55000 when the application's functions are the membership source: the built-in
/// tables would be written but never read.
pub fn require_builtin_source(what: &str) {
    if app_source().is_some() {
        misconfigured(
            format!("{what} writes the built-in membership tables, but apikey.member_roles_function is set"),
            "Manage organizations and members in the application's own tables, or clear apikey.org_exists_function and apikey.member_roles_function.",
        );
    }
}

pub fn org_exists(org_id: &str) -> bool {
    match app_source() {
        None => storage::org_exists(org_id),
        Some((name, _)) => {
            let f = app_function(
                "apikey.org_exists_function",
                &name,
                "text",
                pg_sys::BOOLOID,
                "boolean",
            );
            caller::with_caller_rights(|| storage::call_org_exists(&f, org_id)).unwrap_or(false)
        }
    }
}

/// The roles `user_id` holds in `org_id`; empty when it is not a member (or the
/// organization does not exist: the two are indistinguishable to an ordinary caller).
pub fn member_roles(org_id: &str, user_id: &str) -> Vec<String> {
    match app_source() {
        None => storage::member_roles(org_id, user_id),
        Some((_, name)) => {
            let f = app_function(
                "apikey.member_roles_function",
                &name,
                "text,text",
                pg_sys::TEXTARRAYOID,
                "text[]",
            );
            caller::with_caller_rights(|| storage::call_member_roles(&f, org_id, user_id))
        }
    }
}

/// Whether an ordinary caller's identity may perform `action` on `org_id`'s keys.
pub fn identity_may(org_id: &str, identity: &str, action: Action) -> bool {
    storage::roles_allow(&member_roles(org_id, identity), action.as_str())
}

/// Whether the caller may perform `action` on `org_id`'s keys: trusted callers always.
pub fn caller_may(caller: &Caller, org_id: &str, action: Action) -> bool {
    caller.trusted
        || caller
            .identity
            .as_deref()
            .is_some_and(|id| identity_may(org_id, id, action))
}

/// Whether the caller may manage `org_id`'s members: trusted callers, and members whose
/// role is `owner`.
pub fn caller_owns(caller: &Caller, org_id: &str) -> bool {
    caller.trusted
        || caller
            .identity
            .as_deref()
            .is_some_and(|id| member_roles(org_id, id).iter().any(|r| r == "owner"))
}
