//! Organizations, members, and what a member's role lets it do with the org's keys.
//!
//! The role-to-action mapping is data (`apikey.member_role_actions`). Shipped defaults:
//! `owner` and `admin` may `create`, `read`, `update` and `delete`; `member` may do none.
//! A trusted caller changes it with `apikey.set_role_action`.
//!
//! Call these inside [`crate::caller::as_owner`].
use crate::caller::Caller;
use crate::storage;

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

pub fn org_exists(org_id: &str) -> bool {
    storage::org_exists(org_id)
}

/// The roles `user_id` holds in `org_id`; empty when it is not a member (or the
/// organization does not exist: the two are indistinguishable to an ordinary caller).
pub fn member_roles(org_id: &str, user_id: &str) -> Vec<String> {
    storage::member_roles(org_id, user_id)
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
