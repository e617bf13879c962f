//! Every "may this caller do this to that" of pg_apikey, in one place, so that a review of
//! authorization reads one file. The caller is decided in [`crate::caller`] (trusted or
//! not, and its identity); what an organization's members may do comes from
//! [`crate::membership`]; the functions here combine the two and refuse with the
//! contract's SQLSTATEs: 42501 when the caller may not, P0002 for what it may not see
//! (exactly as for what does not exist, so that ids cannot be probed).
//!
//! Call these inside [`crate::caller::as_owner`].
use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::Uuid;

use crate::caller::Caller;
use crate::error;
use crate::membership;
use crate::owner::{Owner, OwnerKind};
use crate::settings;
use crate::storage::{self, KeyRow};

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

/// 42501 for an ordinary caller that sets (or clears) a policy field.
pub fn forbid_policy_fields(caller: &Caller, sets_policy: bool) {
    if sets_policy && !caller.trusted {
        error::denied(
            format!("role \"{}\" may not set policy fields ({})", caller.role_name, crate::key_settings::policy_field_names()),
            "Leave them out to get the defaults, or ask a trusted caller (the service role) to set them.",
        );
    }
}

/// The user a new key belongs to (`None` for an organization key made by a trusted
/// caller with no user), decided before anything is written. Ordinary callers act only
/// as themselves; a trusted caller must name an owner.
pub fn key_owner(caller: &Caller, org_id: Option<&str>, user_id: Option<&str>) -> Option<String> {
    match (org_id, user_id, caller.trusted) {
        (None, None, true) => error::bad_arg(
            "a trusted caller must name an owner: org_id, user_id or both",
            "Pass org_id => '<organization>' for an organization key, or user_id => '<user>' for a user key.",
        ),
        (None, None, false) => Some(caller.require_identity().to_string()),
        (_, Some(u), false) if u != caller.require_identity() => error::denied(
            format!("role \"{}\" may not create a key for user \"{u}\"", caller.role_name),
            "Ordinary callers act only as themselves: leave user_id out or pass your own identity.",
        ),
        (_, u, _) => u.map(str::to_string),
    }
}

/// P0002 for a trusted caller naming an unknown organization; 42501 for an ordinary
/// caller whose role in it does not allow `create`.
pub fn authorize_org_key_creation(caller: &Caller, org: &str) {
    if caller.trusted {
        require_org(org);
    } else if !identity_may(org, caller.require_identity(), Action::Create) {
        error::denied(
            format!(
                "role \"{}\" may not create keys for organization \"{org}\"",
                caller.role_name
            ),
            format!(
                "Ask an owner to add you with a role that allows create (owner or admin). {}",
                backend_hint(caller)
            ),
        );
    }
}

/// The second half of a 42501 hint for an ordinary caller refused on an organization's
/// keys: what a backend (not a member) needs, as the statement to run.
fn backend_hint(caller: &Caller) -> String {
    let svc = settings::service_role().unwrap_or_else(|| "apikey_service".into());
    format!(
        "A backend that manages keys for every organization needs the service role: GRANT {} TO {};",
        ident(&svc),
        ident(&caller.role_name)
    )
}

/// `name` as an SQL identifier, quoted where PostgreSQL would need it (`quote_ident`).
fn ident(name: &str) -> String {
    let Ok(c) = CString::new(name) else {
        return name.to_string();
    };
    // SAFETY: quote_identifier reads a NUL-terminated string and returns either that
    // string or a palloc'd quoted copy; both are copied out here, while `c` lives.
    unsafe { CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr())) }
        .to_string_lossy()
        .into_owned()
}

/// Find a key and check that the caller may do `action` with it. A key the caller may
/// not read is answered exactly as a missing one (P0002); one it may read but not change
/// is refused with 42501.
pub fn authorize_key(caller: &Caller, key_id: Uuid, action: Action) -> KeyRow {
    let Some(row) = storage::key_get(key_id) else {
        error::key_not_found()
    };
    if caller.trusted {
        return row;
    }
    let identity = caller.require_identity();
    let may = |a: Action| match row.org_id.as_deref() {
        None => row.user_id.as_deref() == Some(identity),
        Some(org) => identity_may(org, identity, a),
    };
    if !may(Action::Read) {
        error::key_not_found();
    }
    if action != Action::Read && !may(action) {
        error::denied(
            format!(
                "role \"{}\" may not {} this key",
                caller.role_name,
                action.as_str()
            ),
            format!(
                "Ask an owner for a role that allows {} on the organization's keys. {}",
                action.as_str(),
                backend_hint(caller)
            ),
        );
    }
    row
}

/// 42501 unless the caller may manage `org_id`'s members; P0002 for a trusted caller
/// naming an unknown organization. (An ordinary caller cannot own an organization that
/// does not exist, so it learns nothing about which ids exist.)
pub fn authorize_member_management(caller: &Caller, org_id: &str) {
    if !caller_owns(caller, org_id) {
        error::denied(
            format!(
                "role \"{}\" may not manage the members of organization \"{org_id}\"",
                caller.role_name
            ),
            "Only trusted callers and the organization's owners manage its members.",
        );
    }
    require_org(org_id);
}

/// P0002 for an organization that does not exist (asked by trusted callers only: an
/// ordinary caller is refused earlier, so it learns nothing about which ids exist).
pub fn require_org(org_id: &str) {
    if !membership::org_exists(org_id) {
        error::not_found(
            format!("organization \"{org_id}\" does not exist"),
            "Create it first with apikey.create_organization.",
        );
    }
}

/// Which keys `list_api_keys(org_id, user_id)` returns to the caller.
pub enum KeyListing<'a> {
    /// An organization's keys (of one user, when given).
    Org(&'a str, Option<&'a str>),
    /// Every key (trusted callers).
    All,
    /// One user's own keys.
    User(&'a str),
}

/// What `list_api_keys` may list: an organization's keys for trusted callers and roles
/// that allow `read` (P0002 for an unknown organization asked by a trusted caller); all
/// keys or any user's for trusted callers; an ordinary caller's own user keys.
pub fn key_listing<'a>(
    caller: &'a Caller,
    org_id: Option<&'a str>,
    user_id: Option<&'a str>,
) -> KeyListing<'a> {
    match (org_id, user_id) {
        (Some(org), user) => {
            if caller.trusted && !membership::org_exists(org) {
                error::not_found(
                    format!("organization \"{org}\" does not exist"),
                    "Check the organization id.",
                );
            }
            if !caller_may(caller, org, Action::Read) {
                error::denied(
                    format!(
                        "role \"{}\" may not read the keys of organization \"{org}\"",
                        caller.role_name
                    ),
                    "Ask an owner for a role that allows read.",
                );
            }
            KeyListing::Org(org, user)
        }
        (None, None) if caller.trusted => KeyListing::All,
        (None, Some(user)) if caller.trusted => KeyListing::User(user),
        (None, user) => {
            let identity = caller.require_identity();
            if let Some(other) = user.filter(|u| *u != identity) {
                error::denied(
                    format!(
                        "role \"{}\" may not list the keys of user \"{other}\"",
                        caller.role_name
                    ),
                    "Leave user_id out to list your own keys.",
                );
            }
            KeyListing::User(identity)
        }
    }
}

/// Which expired keys `delete_expired_api_keys` deletes for the caller.
pub enum ExpiredScope<'a> {
    /// Every expired key (trusted callers).
    All,
    /// The caller's own user keys, and the keys of the organizations where its role
    /// allows `delete`.
    Own {
        identity: &'a str,
        orgs: Vec<String>,
    },
}

pub fn expired_scope(caller: &Caller) -> ExpiredScope<'_> {
    if caller.trusted {
        return ExpiredScope::All;
    }
    let identity = caller.require_identity();
    let orgs = storage::orgs_with_expired_keys()
        .into_iter()
        .filter(|org| identity_may(org, identity, Action::Delete))
        .collect();
    ExpiredScope::Own { identity, orgs }
}

/// 42501 unless the caller may read the audit trail it asks for: trusted callers read
/// every row; an organization's owners read that organization's.
pub fn authorize_audit_read(caller: &Caller, org_id: Option<&str>) {
    if !caller.trusted {
        let Some(org) = org_id else {
            error::denied(
                format!(
                    "role \"{}\" may read only an organization's audit events",
                    caller.role_name
                ),
                "Pass org_id => '<organization>' of which you are an owner.",
            )
        };
        if !caller_owns(caller, org) {
            error::denied(
                format!(
                    "role \"{}\" may not read the audit events of organization \"{org}\"",
                    caller.role_name
                ),
                "Only trusted callers and the organization's owners read its audit events.",
            );
        }
    }
}

/// Whether an ordinary caller's identity may perform `action` on `org_id`'s keys.
pub fn identity_may(org_id: &str, identity: &str, action: Action) -> bool {
    storage::roles_allow(&membership::member_roles(org_id, identity), action.as_str())
}

/// Reading what belongs to an owner (its limits, its keys' usage): trusted callers, members
/// whose role allows `read` in the organization, a user for itself; P0002 ("no `what`
/// visible", `hint`) for anyone else, and for an unknown organization asked by a trusted
/// caller.
pub fn authorize_owner_read(caller: &Caller, owner: Owner<'_>, what: &str, hint: &str) {
    let visible = match owner.kind {
        _ if caller.trusted => true,
        OwnerKind::Org => caller_may(caller, owner.id, Action::Read),
        OwnerKind::User => caller.identity.as_deref() == Some(owner.id),
    };
    if !visible {
        error::not_found(
            format!("no {what} visible for {} \"{}\"", owner.kind, owner.id),
            hint,
        );
    }
    if caller.trusted && owner.kind == OwnerKind::Org {
        require_org(owner.id);
    }
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
        || caller.identity.as_deref().is_some_and(|id| {
            membership::member_roles(org_id, id)
                .iter()
                .any(|r| r == "owner")
        })
}
