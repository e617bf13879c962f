//! Organizations, members and roles (the built-in membership source), and calls of the
//! application's membership functions.
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;

use super::{
    col, first, holds, req, rows, run, run_dynamic, stmt, Stmt, BOOL, OID, TEXT, TEXT_ARRAY,
};

static ORG_EXISTS: Stmt = stmt!("org_exists.sql", [TEXT]);

pub fn org_exists(org_id: &str) -> bool {
    holds(&ORG_EXISTS, &[org_id.into()])
}

static ORG_INSERT: Stmt = stmt!("org_insert.sql", [TEXT, TEXT, TEXT]);

/// Insert an organization; `None` when the id is taken.
pub fn org_insert(
    id: &str,
    name: Option<&str>,
    created_by: &str,
) -> Option<(String, Option<String>, TimestampWithTimeZone)> {
    first(
        &ORG_INSERT,
        &[id.into(), name.into(), created_by.into()],
        |r| (req(r, "id"), col(r, "name"), req(r, "created_at")),
    )
}

// ---------------------------------------------------------------- the application's functions

/// What the catalog says of a function named by a membership setting.
pub struct AppFunction {
    /// `schema.name`, each part quoted as needed.
    pub qualified: String,
    pub returns_expected: bool,
    pub pins_search_path: bool,
    pub owner: pg_sys::Oid,
    pub temporary: bool,
}

static APP_FUNCTION: Stmt = stmt!("app_function.sql", [TEXT, OID]);

/// Look up `signature` (e.g. `app.member_roles(text,text)`); `None` when no such function.
pub fn app_function(signature: &str, returns: pg_sys::Oid) -> Option<AppFunction> {
    first(&APP_FUNCTION, &[signature.into(), returns.into()], |r| {
        AppFunction {
            qualified: req(r, "qualified"),
            returns_expected: req(r, "returns_expected"),
            pins_search_path: req(r, "pins_search_path"),
            owner: req(r, "owner"),
            temporary: req(r, "temporary"),
        }
    })
}

/// Call the application's `(org_id text) RETURNS boolean`.
pub fn call_org_exists(f: &AppFunction, org_id: &str) -> Option<bool> {
    let sql = format!("SELECT {}($1) AS found", f.qualified);
    run_dynamic(&sql, &[TEXT], &[org_id.into()], |t| {
        t.into_iter().next().and_then(|r| col::<bool>(&r, "found"))
    })
}

/// Call the application's `(org_id text, user_id text) RETURNS text[]`.
pub fn call_member_roles(f: &AppFunction, org_id: &str, user_id: &str) -> Vec<String> {
    let sql = format!("SELECT {}($1, $2) AS roles", f.qualified);
    run_dynamic(&sql, &[TEXT, TEXT], &[org_id.into(), user_id.into()], |t| {
        t.into_iter()
            .next()
            .and_then(|r| col::<Vec<Option<String>>>(&r, "roles"))
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .map(|role| role.trim().to_string())
            .filter(|role| !role.is_empty())
            .collect()
    })
}

// ---------------------------------------------------------------- members

static MEMBER_ROLES: Stmt = stmt!("member_roles.sql", [TEXT, TEXT]);

/// The member's roles in the built-in tables; empty when not a member.
pub fn member_roles(org_id: &str, user_id: &str) -> Vec<String> {
    rows(&MEMBER_ROLES, &[org_id.into(), user_id.into()], |r| {
        req(r, "role")
    })
}

static MEMBER_UPSERT: Stmt = stmt!("member_upsert.sql", [TEXT, TEXT, TEXT]);

/// Add a member or change its role: (org_id, user_id, role, created_at).
pub fn member_upsert(
    org_id: &str,
    user_id: &str,
    role: &str,
) -> (String, String, String, TimestampWithTimeZone) {
    let args = [org_id.into(), user_id.into(), role.into()];
    first(&MEMBER_UPSERT, &args, |r| {
        (
            req(r, "org_id"),
            req(r, "user_id"),
            req(r, "role"),
            req(r, "created_at"),
        )
    })
    .expect("the upsert returns its row")
}

static MEMBER_DELETE: Stmt = stmt!("member_delete.sql", [TEXT, TEXT]);

/// Remove a member; whether there was one.
pub fn member_delete(org_id: &str, user_id: &str) -> bool {
    run(&MEMBER_DELETE, &[org_id.into(), user_id.into()], |t| {
        !t.is_empty()
    })
}

// ---------------------------------------------------------------- roles and their actions

static ROLES_ALLOW: Stmt = stmt!("roles_allow.sql", [TEXT_ARRAY, TEXT]);

/// Whether any of `roles` allows `action`.
pub fn roles_allow(roles: &[String], action: &str) -> bool {
    !roles.is_empty() && holds(&ROLES_ALLOW, &[roles.to_vec().into(), action.into()])
}

static ROLE_KNOWN: Stmt = stmt!("role_known.sql", [TEXT]);

/// Whether `role` is a defined member role (shipped or customised).
pub fn role_known(role: &str) -> bool {
    holds(&ROLE_KNOWN, &[role.into()])
}

static ROLE_ACTION_SET: Stmt = stmt!("role_action_set.sql", [TEXT, TEXT, BOOL]);

pub fn role_action_set(role: &str, action: &str, allowed: bool) {
    let args = [role.into(), action.into(), allowed.into()];
    run(&ROLE_ACTION_SET, &args, |_| ())
}

static ROLE_ACTIONS_LIST: Stmt = stmt!("role_actions_list.sql", []);

/// (role, action, allowed, is_default) in force.
pub fn role_actions_list() -> Vec<(String, String, bool, bool)> {
    rows(&ROLE_ACTIONS_LIST, &[], |r| {
        (
            req(r, "role"),
            req(r, "action"),
            req(r, "allowed"),
            req(r, "is_default"),
        )
    })
}
