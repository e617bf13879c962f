//! The SQL-facing functions of the contract (`docs/sql-contract.md`).
//!
//! Each one: (1) decides on the calling role ([`Caller::current`]); (2) checks the
//! arguments; (3) inside [`as_owner`], checks ownership and membership, and only then
//! reads or writes. Every function pins `search_path` to `pg_catalog, pg_temp`.
use pgrx::datum::{Interval, TimestampWithTimeZone};

use crate::jsonb::Jsonb;
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::json;

use crate::caller::{as_owner, Caller};
use crate::error;
use crate::keymat;
use crate::membership::{self, Action};
use crate::permissions;
use crate::settings;
use crate::storage::{self, KeyRow};
use crate::verify::now_tz;

// ---------------------------------------------------------------- argument checks

fn require_id<'a>(what: &str, value: Option<&'a str>) -> &'a str {
    match value {
        Some(v) if !v.is_empty() => v,
        _ => error::bad_arg(
            format!("{what} must not be NULL or empty"),
            format!("Pass a non-empty {what}."),
        ),
    }
}

fn optional_id<'a>(what: &str, value: Option<&'a str>) -> Option<&'a str> {
    value.map(|v| require_id(what, Some(v)))
}

fn check_prefix(prefix: Option<String>) -> String {
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

fn positive(iv: &Interval) -> bool {
    iv.as_micros() > 0
}

/// The settings of a key that `create_api_key` and `update_api_key` take.
#[derive(Default)]
struct Policy<'a> {
    name: Option<&'a str>,
    expires_at: Option<TimestampWithTimeZone>,
    permissions: Option<Jsonb>,
    metadata: Option<Jsonb>,
    remaining: Option<i64>,
    refill_amount: Option<i64>,
    refill_interval: Option<Interval>,
    rate_limit_max: Option<i32>,
    rate_limit_window: Option<Interval>,
}

/// The fields that grant power or spend money: trusted callers only.
const POLICY_FIELDS: &str =
    "permissions, remaining, refill_amount, refill_interval, rate_limit_max, rate_limit_window";

impl Policy<'_> {
    /// Whether any field that grants power or spends money is given.
    fn sets_policy_field(&self) -> bool {
        self.permissions.is_some()
            || self.remaining.is_some()
            || self.refill_amount.is_some()
            || self.refill_interval.is_some()
            || self.rate_limit_max.is_some()
            || self.rate_limit_window.is_some()
    }

    /// Checks of each given value on its own.
    fn validate_values(&self) {
        if let Some(exp) = self.expires_at {
            if exp <= now_tz() {
                error::bad_arg(
                    "expires_at is in the past",
                    "Pass a future time, or NULL for a key that does not expire.",
                );
            }
        }
        if let Some(p) = self.permissions {
            permissions::require_valid("permissions", &p.value());
        }
        if let Some(m) = self.metadata {
            if !m.is_object() {
                error::bad_arg(
                    "metadata must be a JSON object",
                    "Pass an object such as '{\"env\": \"prod\"}', or NULL.",
                );
            }
        }
        if self.remaining.is_some_and(|r| r < 0) {
            error::bad_arg(
                "remaining must not be negative",
                "Pass 0 or more, or NULL for unlimited use.",
            );
        }
        if self.refill_amount.is_some_and(|r| r < 0) {
            error::bad_arg("refill_amount must not be negative", "Pass 0 or more.");
        }
        if self
            .refill_interval
            .as_ref()
            .is_some_and(|iv| !positive(iv))
        {
            error::bad_arg(
                "refill_interval must be positive",
                "Pass an interval such as '1 day'.",
            );
        }
        if self.rate_limit_max.is_some_and(|m| m <= 0) {
            error::bad_arg("rate_limit_max must be positive", "Pass 1 or more.");
        }
        if self
            .rate_limit_window
            .as_ref()
            .is_some_and(|iv| !positive(iv))
        {
            error::bad_arg(
                "rate_limit_window must be positive",
                "Pass an interval such as '1 minute'.",
            );
        }
    }

    /// Checks of the settings a key ends up with: the pairs that go together.
    fn validate_pairs(&self) {
        if self.refill_amount.is_some() != self.refill_interval.is_some() {
            error::bad_arg(
                "refill_amount and refill_interval go together",
                "Pass both (e.g. refill_amount => 1000, refill_interval => '1 day') or neither.",
            );
        }
        if self.rate_limit_max.is_some() != self.rate_limit_window.is_some() {
            error::bad_arg(
                "rate_limit_max and rate_limit_window go together",
                "Pass both (e.g. rate_limit_max => 100, rate_limit_window => '1 minute') or neither.",
            );
        }
    }
}

/// 42501 for an ordinary caller that sets (or clears) a policy field.
fn forbid_policy_fields(caller: &Caller, sets_policy: bool) {
    if sets_policy && !caller.trusted {
        error::denied(
            format!("role \"{}\" may not set policy fields ({POLICY_FIELDS})", caller.role_name),
            "Leave them out to get the defaults, or ask a trusted caller (the service role) to set them.",
        );
    }
}

// ---------------------------------------------------------------- organizations

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
        authorize_member_management(&caller, org_id);
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
        authorize_member_management(&caller, org_id);
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

/// 42501 unless the caller may manage `org_id`'s members; P0002 for a trusted caller
/// naming an unknown organization. (An ordinary caller cannot own an organization that
/// does not exist, so it learns nothing about which ids exist.)
fn authorize_member_management(caller: &Caller, org_id: &str) {
    if !membership::caller_owns(caller, org_id) {
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
fn require_org(org_id: &str) {
    if !membership::org_exists(org_id) {
        error::not_found(
            format!("organization \"{org_id}\" does not exist"),
            "Create it first with apikey.create_organization.",
        );
    }
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
    let _caller = Caller::current();
    TableIterator::new(as_owner(storage::role_actions_list))
}

/// The identity pg_apikey would use for the current caller: the role name for an ordinary
/// role, the JWT claim for a gateway role, NULL for a trusted caller or a missing claim.
/// For the application's own row-level security policies.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn current_identity() -> Option<String> {
    Caller::current().identity
}

// ---------------------------------------------------------------- create

/// Create an API key. The plaintext key is returned here and never again.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn create_api_key(
    org_id: default!(Option<&str>, "NULL"),
    user_id: default!(Option<&str>, "NULL"),
    name: default!(Option<&str>, "NULL"),
    prefix: default!(Option<String>, "NULL"),
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    permissions: default!(Option<Jsonb>, "NULL"),
    metadata: default!(Option<Jsonb>, "NULL"),
    remaining: default!(Option<i64>, "NULL"),
    refill_amount: default!(Option<i64>, "NULL"),
    refill_interval: default!(Option<Interval>, "NULL"),
    rate_limit_max: default!(Option<i32>, "NULL"),
    rate_limit_window: default!(Option<Interval>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(key_id, Uuid),
        name!(key, String),
        name!(start, String),
        name!(prefix, String),
        name!(org_id, Option<String>),
        name!(user_id, Option<String>),
        name!(name, Option<String>),
        name!(expires_at, Option<TimestampWithTimeZone>),
        name!(permissions, Option<Jsonb>),
        name!(metadata, Option<Jsonb>),
        name!(remaining, Option<i64>),
        name!(refill_amount, Option<i64>),
        name!(refill_interval, Option<Interval>),
        name!(rate_limit_max, Option<i32>),
        name!(rate_limit_window, Option<Interval>),
        name!(created_at, TimestampWithTimeZone),
    ),
> {
    let caller = Caller::current();
    let policy = Policy {
        name,
        expires_at,
        permissions,
        metadata,
        remaining,
        refill_amount,
        refill_interval,
        rate_limit_max,
        rate_limit_window,
    };
    forbid_policy_fields(&caller, policy.sets_policy_field());
    policy.validate_values();
    policy.validate_pairs();
    let prefix = check_prefix(prefix);
    let org_id = optional_id("org_id", org_id);
    let user_id = optional_id("user_id", user_id);

    // Ownership: who the key belongs to, decided before anything is written.
    let owner_user = match (org_id, user_id, caller.trusted) {
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
    };

    let made = generate_key(&prefix);

    let (key_id, created_at) = as_owner(|| {
        if let Some(org) = org_id {
            if caller.trusted {
                require_org(org);
            } else if !membership::identity_may(org, caller.require_identity(), Action::Create) {
                error::denied(
                    format!(
                        "role \"{}\" may not create keys for organization \"{org}\"",
                        caller.role_name
                    ),
                    "Ask an owner to add you with a role that allows create (owner or admin).",
                );
            }
        }
        storage::key_insert(storage::NewKeyRow {
            digest: &made.digest,
            prefix: &prefix,
            start: &made.start,
            org_id,
            user_id: owner_user.as_deref(),
            name,
            expires_at,
            permissions,
            metadata,
            remaining,
            refill_amount,
            refill_interval,
            rate_limit_max,
            rate_limit_window,
            created_by_role: &caller.role_name,
            created_by_identity: caller.identity.as_deref(),
        })
    });

    TableIterator::once(created_row(
        made,
        storage::CreatedKey {
            key_id,
            prefix,
            org_id: org_id.map(str::to_string),
            user_id: owner_user,
            name: name.map(str::to_string),
            expires_at,
            permissions,
            metadata,
            remaining,
            refill_amount,
            refill_interval,
            rate_limit_max,
            rate_limit_window,
            created_at,
        },
    ))
}

/// The row `create_api_key` and `rotate_api_key` return: the only time a key's
/// plaintext leaves the database.
type CreatedOut = (
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
);

fn created_row(made: keymat::NewKey, c: storage::CreatedKey) -> CreatedOut {
    (
        c.key_id,
        made.key,
        made.start,
        c.prefix,
        c.org_id,
        c.user_id,
        c.name,
        c.expires_at,
        c.permissions,
        c.metadata,
        c.remaining,
        c.refill_amount,
        c.refill_interval,
        c.rate_limit_max,
        c.rate_limit_window,
        c.created_at,
    )
}

fn generate_key(prefix: &str) -> keymat::NewKey {
    keymat::generate(prefix).unwrap_or_else(|e| {
        error::raise(
            PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            format!("the operating system's random number generator failed: {e}"),
            "Check the server's entropy source; no key was created.",
        )
    })
}

// ---------------------------------------------------------------- read and manage

/// Find a key and check that the caller may do `action` with it. A key the caller may
/// not read is answered exactly as a missing one (P0002); one it may read but not change
/// is refused with 42501.
fn authorize_key(caller: &Caller, key_id: Uuid, action: Action) -> KeyRow {
    let Some(row) = storage::key_get(key_id) else {
        error::key_not_found()
    };
    if caller.trusted {
        return row;
    }
    let identity = caller.require_identity();
    let may = |a: Action| match row.org_id.as_deref() {
        None => row.user_id.as_deref() == Some(identity),
        Some(org) => membership::identity_may(org, identity, a),
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
                "Ask an owner for a role that allows {} on the organization's keys.",
                action.as_str()
            ),
        );
    }
    row
}

fn require_key_id(key_id: Option<Uuid>) -> Uuid {
    key_id.unwrap_or_else(|| {
        error::bad_arg(
            "key_id must not be NULL",
            "Pass the key_id that create_api_key returned.",
        )
    })
}

/// List keys' public fields (never a secret or digest).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn list_api_keys(
    org_id: default!(Option<&str>, "NULL"),
    user_id: default!(Option<&str>, "NULL"),
) -> SetOfIterator<'static, pgrx::composite_type!('static, "apikey.key_info")> {
    let caller = Caller::current();
    let org_id = optional_id("org_id", org_id);
    let user_id = optional_id("user_id", user_id);
    let rows = as_owner(|| match (org_id, user_id) {
        (Some(org), user) => {
            if caller.trusted && !membership::org_exists(org) {
                error::not_found(
                    format!("organization \"{org}\" does not exist"),
                    "Check the organization id.",
                );
            }
            if !membership::caller_may(&caller, org, Action::Read) {
                error::denied(
                    format!(
                        "role \"{}\" may not read the keys of organization \"{org}\"",
                        caller.role_name
                    ),
                    "Ask an owner for a role that allows read.",
                );
            }
            storage::keys_of_org(org, user)
        }
        (None, None) if caller.trusted => storage::keys_all(),
        (None, Some(user)) if caller.trusted => storage::keys_of_user(user),
        (None, user) => {
            let identity = caller.require_identity();
            if user.is_some_and(|u| u != identity) {
                error::denied(
                    format!(
                        "role \"{}\" may not list the keys of user \"{}\"",
                        caller.role_name,
                        user.unwrap_or_default()
                    ),
                    "Leave user_id out to list your own keys.",
                );
            }
            storage::keys_of_user(identity)
        }
    });
    SetOfIterator::new(rows.into_iter().map(|r| r.info))
}

/// One key's public fields; P0002 when it does not exist or the caller may not read it.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn get_api_key(
    key_id: Option<Uuid>,
) -> SetOfIterator<'static, pgrx::composite_type!('static, "apikey.key_info")> {
    let caller = Caller::current();
    let key_id = require_key_id(key_id);
    let row = as_owner(|| authorize_key(&caller, key_id, Action::Read));
    SetOfIterator::once(row.info)
}

/// Revoke a key: verify answers KEY_NOT_FOUND from now on; the row stays for history.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn revoke_api_key(
    key_id: Option<Uuid>,
) -> SetOfIterator<'static, pgrx::composite_type!('static, "apikey.key_info")> {
    let caller = Caller::current();
    let key_id = require_key_id(key_id);
    let row = as_owner(|| {
        let before = authorize_key(&caller, key_id, Action::Delete);
        let row = storage::key_revoke(key_id, &caller.role_name, caller.identity.as_deref());
        if !before.revoked {
            storage::audit_key("key_revoked", key_id, &caller.actor(), json!({}));
        }
        row
    });
    match row {
        Some(row) => SetOfIterator::once(row.info),
        None => error::key_not_found(),
    }
}

/// Delete a key for good.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn delete_api_key(key_id: Option<Uuid>) {
    let caller = Caller::current();
    let key_id = require_key_id(key_id);
    as_owner(|| {
        authorize_key(&caller, key_id, Action::Delete);
        if !storage::key_delete(key_id, &caller.actor()) {
            error::key_not_found();
        }
    });
}

/// Delete every expired key the caller may delete; returns how many.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn delete_expired_api_keys() -> i64 {
    let caller = Caller::current();
    as_owner(|| {
        if caller.trusted {
            return storage::delete_expired(true, None, Vec::new(), &caller.actor());
        }
        let identity = caller.require_identity();
        let orgs = storage::orgs_with_expired_keys()
            .into_iter()
            .filter(|org| membership::identity_may(org, identity, Action::Delete))
            .collect();
        storage::delete_expired(false, Some(identity), orgs, &caller.actor())
    })
}

// ---------------------------------------------------------------- update and rotate

/// The fields `update_api_key(clear => …)` can set back to NULL.
const CLEARABLE: [&str; 9] = [
    "name",
    "expires_at",
    "permissions",
    "metadata",
    "remaining",
    "refill_amount",
    "refill_interval",
    "rate_limit_max",
    "rate_limit_window",
];

/// Change a key's settings: only the arguments given (non-NULL) change; `clear` names
/// fields to set back to NULL. Policy fields need a trusted caller.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn update_api_key(
    key_id: Option<Uuid>,
    name: default!(Option<&str>, "NULL"),
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    permissions: default!(Option<Jsonb>, "NULL"),
    metadata: default!(Option<Jsonb>, "NULL"),
    remaining: default!(Option<i64>, "NULL"),
    refill_amount: default!(Option<i64>, "NULL"),
    refill_interval: default!(Option<Interval>, "NULL"),
    rate_limit_max: default!(Option<i32>, "NULL"),
    rate_limit_window: default!(Option<Interval>, "NULL"),
    enabled: default!(Option<bool>, "NULL"),
    clear: default!(Option<Vec<Option<String>>>, "NULL"),
) -> SetOfIterator<'static, pgrx::composite_type!('static, "apikey.key_info")> {
    let caller = Caller::current();
    let key_id = require_key_id(key_id);
    let given = Policy {
        name,
        expires_at,
        permissions,
        metadata,
        remaining,
        refill_amount,
        refill_interval,
        rate_limit_max,
        rate_limit_window,
    };
    let clear: Vec<String> = clear.unwrap_or_default().into_iter().flatten().collect();
    for field in &clear {
        if !CLEARABLE.contains(&field.as_str()) {
            error::bad_arg(
                format!("clear names unknown field \"{field}\""),
                format!("Fields that can be cleared: {}.", CLEARABLE.join(", ")),
            );
        }
    }
    let cleared = |f: &str| clear.iter().any(|c| c == f);
    let clears_policy = clear
        .iter()
        .any(|f| POLICY_FIELDS.split(", ").any(|p| p == f));
    forbid_policy_fields(&caller, given.sets_policy_field() || clears_policy);
    given.validate_values();
    let now = now_tz();

    let row = as_owner(|| {
        authorize_key(&caller, key_id, Action::Update);
        let Some(cur) = storage::key_settings_for_update(key_id, now) else {
            error::key_not_found()
        };
        if cur.revoked {
            error::raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the key is revoked",
                "A revoked key cannot be changed; create a new one.",
            );
        }
        // Given values win, then clears, then what is stored.
        fn pick<T>(given: Option<T>, clear: bool, stored: Option<T>) -> Option<T> {
            if clear {
                None
            } else {
                given.or(stored)
            }
        }
        for f in CLEARABLE {
            let is_given = match f {
                "name" => given.name.is_some(),
                "expires_at" => given.expires_at.is_some(),
                "permissions" => given.permissions.is_some(),
                "metadata" => given.metadata.is_some(),
                "remaining" => given.remaining.is_some(),
                "refill_amount" => given.refill_amount.is_some(),
                "refill_interval" => given.refill_interval.is_some(),
                "rate_limit_max" => given.rate_limit_max.is_some(),
                _ => given.rate_limit_window.is_some(),
            };
            if is_given && cleared(f) {
                error::bad_arg(
                    format!("{f} is both given and cleared"),
                    format!("Pass {f} or clear it, not both."),
                );
            }
        }
        let merged = storage::KeySettings {
            prefix: cur.prefix,
            name: pick(given.name.map(str::to_string), cleared("name"), cur.name),
            expires_at: pick(given.expires_at, cleared("expires_at"), cur.expires_at),
            permissions: pick(given.permissions, cleared("permissions"), cur.permissions),
            metadata: pick(given.metadata, cleared("metadata"), cur.metadata),
            remaining: pick(given.remaining, cleared("remaining"), cur.remaining),
            refill_amount: pick(
                given.refill_amount,
                cleared("refill_amount"),
                cur.refill_amount,
            ),
            refill_interval: pick(
                given.refill_interval,
                cleared("refill_interval"),
                cur.refill_interval,
            ),
            rate_limit_max: pick(
                given.rate_limit_max,
                cleared("rate_limit_max"),
                cur.rate_limit_max,
            ),
            rate_limit_window: pick(
                given.rate_limit_window,
                cleared("rate_limit_window"),
                cur.rate_limit_window,
            ),
            enabled: enabled.unwrap_or(cur.enabled),
            revoked: cur.revoked,
            replaced: cur.replaced,
            expired: cur.expired,
        };
        Policy {
            refill_amount: merged.refill_amount,
            refill_interval: merged.refill_interval,
            rate_limit_max: merged.rate_limit_max,
            rate_limit_window: merged.rate_limit_window,
            ..Policy::default()
        }
        .validate_pairs();
        let row = storage::key_update(key_id, merged, given.refill_interval.is_some(), now);
        let changes = json!({
            "name": given.name,
            "expires_at": given.expires_at,
            "remaining": given.remaining,
            "refill_amount": given.refill_amount,
            "refill_interval": given.refill_interval,
            "rate_limit_max": given.rate_limit_max,
            "rate_limit_window": given.rate_limit_window,
            "enabled": enabled,
        });
        let changes: serde_json::Map<_, _> = changes
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // permissions and metadata join the changes as the jsonb values given.
        storage::audit_key_update(
            key_id,
            &caller.actor(),
            json!({"changes": changes, "cleared": clear}),
            given.permissions,
            given.metadata,
        );
        row
    });
    SetOfIterator::once(row.info)
}

/// Replace a key with a new one (new id, new secret) with the same owner and settings.
/// The old key keeps verifying for `grace`, then answers KEY_EXPIRED.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn rotate_api_key(
    key_id: Option<Uuid>,
    grace: default!(Option<Interval>, "'0'"),
) -> TableIterator<
    'static,
    (
        name!(key_id, Uuid),
        name!(key, String),
        name!(start, String),
        name!(prefix, String),
        name!(org_id, Option<String>),
        name!(user_id, Option<String>),
        name!(name, Option<String>),
        name!(expires_at, Option<TimestampWithTimeZone>),
        name!(permissions, Option<Jsonb>),
        name!(metadata, Option<Jsonb>),
        name!(remaining, Option<i64>),
        name!(refill_amount, Option<i64>),
        name!(refill_interval, Option<Interval>),
        name!(rate_limit_max, Option<i32>),
        name!(rate_limit_window, Option<Interval>),
        name!(created_at, TimestampWithTimeZone),
    ),
> {
    let caller = Caller::current();
    let key_id = require_key_id(key_id);
    let grace = match grace {
        Some(g) if g.as_micros() >= 0 => g,
        _ => error::bad_arg(
            "grace must be zero or positive",
            "Pass an interval such as '1 hour', or '0' to stop the old key at once.",
        ),
    };
    let now = now_tz();
    let out = as_owner(|| {
        authorize_key(&caller, key_id, Action::Update);
        let Some(cur) = storage::key_settings_for_update(key_id, now) else {
            error::key_not_found()
        };
        let refuse = |why: &str, hint: &str| -> ! {
            error::raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                why.to_string(),
                hint.to_string(),
            )
        };
        if cur.revoked {
            refuse("the key is revoked", "Create a new key instead.");
        }
        if cur.replaced {
            refuse(
                "the key was already rotated",
                "Rotate the key that replaced it.",
            );
        }
        if cur.expired {
            refuse("the key has expired", "Create a new key instead.");
        }
        let made = generate_key(&cur.prefix);
        let (created, old_expires) = storage::key_rotate(
            key_id,
            &made.digest,
            &made.start,
            &caller.actor(),
            now,
            grace,
        );
        storage::audit_key(
            "key_created",
            created.key_id,
            &caller.actor(),
            json!({"rotated_from": key_id.to_string()}),
        );
        storage::audit_key(
            "key_rotated",
            key_id,
            &caller.actor(),
            json!({"replaced_by": created.key_id.to_string(), "grace": grace, "old_key_expires_at": old_expires}),
        );
        created_row(made, created)
    });
    TableIterator::once(out)
}

// ---------------------------------------------------------------- audit trail

/// Management actions recorded by pg_apikey. Trusted callers read all of them (or one
/// organization's); an organization's owners read that organization's.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn list_audit_events(
    org_id: default!(Option<&str>, "NULL"),
    since: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(id, i64),
        name!(at, TimestampWithTimeZone),
        name!(action, String),
        name!(org_id, Option<String>),
        name!(key_id, Option<Uuid>),
        name!(subject, Option<String>),
        name!(actor_role, String),
        name!(actor_identity, Option<String>),
        name!(details, Jsonb),
    ),
> {
    let caller = Caller::current();
    let org_id = optional_id("org_id", org_id);
    let rows = as_owner(|| {
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
            if !membership::caller_owns(&caller, org) {
                error::denied(
                    format!(
                        "role \"{}\" may not read the audit events of organization \"{org}\"",
                        caller.role_name
                    ),
                    "Only trusted callers and the organization's owners read its audit events.",
                );
            }
        }
        storage::audit_list(org_id, since)
    });
    TableIterator::new(rows)
}
