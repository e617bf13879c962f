//! Creating, listing, reading, revoking and deleting keys.
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::json;

use super::{caller_and_key, check_prefix, created_row, generate_key, optional_id};
use crate::authz::{self, Action};
use crate::backend::now_tz;
use crate::caller::{as_owner, Caller};
use crate::error;
use crate::jsonb::Jsonb;
use crate::key_settings::Settings;
use crate::storage;

/// Create an API key. The plaintext key is returned here and never again.
// The Rust name differs from the SQL name so that the C symbol is new in 0.3.0: a database
// not yet updated still declares 0.2.0's arguments for `create_api_key_wrapper`, which
// src/api/outdated.rs answers with 55000.
#[pg_extern(volatile, name = "create_api_key")]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments, clippy::type_complexity)] // the contract's signature
fn create_api_key_030(
    org_id: default!(Option<&str>, "NULL"),
    user_id: default!(Option<&str>, "NULL"),
    name: default!(Option<String>, "NULL"),
    prefix: default!(Option<String>, "NULL"),
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    permissions: default!(Option<Jsonb>, "NULL"),
    metadata: default!(Option<Jsonb>, "NULL"),
    remaining: default!(Option<i64>, "NULL"),
    refill_amount: default!(Option<i64>, "NULL"),
    refill_interval: default!(Option<Interval>, "NULL"),
    rate_limit_max: default!(Option<i32>, "NULL"),
    rate_limit_window: default!(Option<Interval>, "NULL"),
    rate_limits: default!(Option<Jsonb>, "NULL"),
    refill_anchor: default!(Option<TimestampWithTimeZone>, "NULL"),
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
        name!(rate_limits, Option<Jsonb>),
    ),
> {
    let settings = Settings {
        name,
        expires_at,
        permissions,
        metadata,
        remaining,
        refill_amount,
        refill_interval,
        rate_limit_max,
        rate_limit_window,
        rate_limits,
        refill_anchor,
    };
    let caller = Caller::current();
    authz::forbid_policy_fields(&caller, settings.sets_policy_field());
    settings.validate_values();
    settings.validate_pairs();
    // The refill periods count from the anchor given, else from now.
    let settings = settings.anchored(refill_anchor, true, now_tz());
    let prefix = check_prefix(prefix);
    let org_id = optional_id("org_id", org_id);
    let user_id = optional_id("user_id", user_id);

    // Ownership: who the key belongs to, decided before anything is written.
    let owner_user = authz::key_owner(&caller, org_id, user_id);

    let made = generate_key(&prefix);

    let (key_id, created_at) = as_owner(|| {
        if let Some(org) = org_id {
            authz::authorize_org_key_creation(&caller, org);
        }
        storage::key_insert(storage::NewKeyRow {
            digest: &made.digest,
            prefix: &prefix,
            start: &made.start,
            org_id,
            user_id: owner_user.as_deref(),
            settings: &settings,
            created_by: caller.actor(),
        })
    });

    TableIterator::once(created_row(
        made,
        storage::CreatedKey {
            key_id,
            prefix,
            org_id: org_id.map(str::to_string),
            user_id: owner_user,
            settings,
            created_at,
        },
    ))
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
    let rows = as_owner(|| match authz::key_listing(&caller, org_id, user_id) {
        authz::KeyListing::Org(org, user) => storage::keys_of_org(org, user),
        authz::KeyListing::All => storage::keys_all(),
        authz::KeyListing::User(user) => storage::keys_of_user(user),
    });
    SetOfIterator::new(rows.into_iter().map(|r| r.info))
}

/// One key's public fields; P0002 when it does not exist or the caller may not read it.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn get_api_key(
    key_id: Option<Uuid>,
) -> SetOfIterator<'static, pgrx::composite_type!('static, "apikey.key_info")> {
    let (caller, key_id) = caller_and_key(key_id);
    let row = as_owner(|| authz::authorize_key(&caller, key_id, Action::Read));
    SetOfIterator::once(row.info)
}

/// Revoke a key: verify answers KEY_NOT_FOUND from now on; the row stays for history.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn revoke_api_key(
    key_id: Option<Uuid>,
) -> SetOfIterator<'static, pgrx::composite_type!('static, "apikey.key_info")> {
    let (caller, key_id) = caller_and_key(key_id);
    let row = as_owner(|| {
        let before = authz::authorize_key(&caller, key_id, Action::Delete);
        // Its remaining, as shown, is what was left in total.
        storage::metering::key_fold(key_id, crate::backend::now_tz());
        let row = storage::key_revoke(key_id, &caller.actor());
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
    let (caller, key_id) = caller_and_key(key_id);
    as_owner(|| {
        authz::authorize_key(&caller, key_id, Action::Delete);
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
    as_owner(|| match authz::expired_scope(&caller) {
        authz::ExpiredScope::All => {
            storage::delete_expired(true, None, Vec::new(), &caller.actor())
        }
        authz::ExpiredScope::Own { identity, orgs } => {
            storage::delete_expired(false, Some(identity), orgs, &caller.actor())
        }
    })
}
