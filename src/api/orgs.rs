//! Organizations, members and the role-to-action mapping (built-in membership source).
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use serde_json::json;

use super::require_id;
use crate::authz;
use crate::caller::{as_owner, Caller};
use crate::error;
use crate::membership;
use crate::storage;

/// Create an organization. Trusted callers only.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn create_organization(
    id: Option<&str>,
    name: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(id, String),
        name!(name, Option<String>),
        name!(created_at, TimestampWithTimeZone),
    ),
> {
    let caller = Caller::current();
    membership::require_builtin_source("create_organization");
    caller.require_trusted("create_organization");
    let id = require_id("organization id", id);
    let row = as_owner(|| {
        let row = storage::org_insert(id, name, &caller.role_name);
        if row.is_some() {
            storage::audit(
                "org_created",
                Some(id),
                None,
                &caller.actor(),
                json!({"name": name}),
            );
        }
        row
    });
    match row {
        Some(row) => TableIterator::once(row),
        None => error::raise(
            PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
            format!("organization \"{id}\" already exists"),
            "Pick another id, or use the existing organization.",
        ),
    }
}

/// Add a member to an organization, or change the role of an existing member.
/// Trusted callers, or members whose role is `owner`.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn add_member(
    org_id: Option<&str>,
    user_id: Option<&str>,
    role: default!(Option<&str>, "'member'"),
) -> TableIterator<
    'static,
    (
        name!(org_id, String),
        name!(user_id, String),
        name!(role, String),
        name!(created_at, TimestampWithTimeZone),
    ),
> {
    let caller = Caller::current();
    membership::require_builtin_source("add_member");
    let org_id = require_id("org_id", org_id);
    let user_id = require_id("user_id", user_id);
    let role = require_id("role", role);
    let row = as_owner(|| {
        authz::authorize_member_management(&caller, org_id);
        if !storage::role_known(role) {
            error::bad_arg(
                format!("unknown member role \"{role}\""),
                "Use owner, admin or member, or define the role first with apikey.set_role_action.",
            );
        }
        let row = storage::member_upsert(org_id, user_id, role);
        storage::audit(
            "member_added",
            Some(org_id),
            Some(user_id),
            &caller.actor(),
            json!({"role": role}),
        );
        row
    });
    TableIterator::once(row)
}

/// Remove a member. Returns whether there was such a member.
/// Trusted callers, or members whose role is `owner`.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn remove_member(org_id: Option<&str>, user_id: Option<&str>) -> bool {
    let caller = Caller::current();
    membership::require_builtin_source("remove_member");
    let org_id = require_id("org_id", org_id);
    let user_id = require_id("user_id", user_id);
    as_owner(|| {
        authz::authorize_member_management(&caller, org_id);
        let removed = storage::member_delete(org_id, user_id);
        if removed {
            storage::audit(
                "member_removed",
                Some(org_id),
                Some(user_id),
                &caller.actor(),
                json!({}),
            );
        }
        removed
    })
}

/// Set whether a member role allows an action (`create`, `read`, `update`, `delete`, or
/// an application's own). A new role name defines a new role. Trusted callers only.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn set_role_action(
    role: Option<&str>,
    action: Option<&str>,
    allowed: default!(Option<bool>, "true"),
) {
    let caller = Caller::current();
    caller.require_trusted("set_role_action");
    let role = require_id("role", role);
    let action = require_id("action", action);
    let Some(allowed) = allowed else {
        error::bad_arg("allowed must not be NULL", "Pass true or false.")
    };
    as_owner(|| {
        storage::role_action_set(role, action, allowed);
        storage::audit(
            "role_action_set",
            None,
            Some(role),
            &caller.actor(),
            json!({"action": action, "allowed": allowed}),
        );
    });
}

/// The role-to-action mapping in force (customisations over the shipped defaults).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn list_role_actions() -> TableIterator<
    'static,
    (
        name!(role, String),
        name!(action, String),
        name!(allowed, bool),
        name!(is_default, bool),
    ),
> {
    TableIterator::new(as_owner(storage::role_actions_list))
}

/// The identity pg_apikey would use for the current caller: the role name for an ordinary
/// role, the JWT claim for a gateway role, NULL for a trusted caller or a missing claim.
/// For the application's own row-level security policies.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn current_identity() -> Option<String> {
    Caller::current_unchecked().identity
}
