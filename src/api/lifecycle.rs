//! Changing a key's settings, and rotating it.
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::json;

use super::{caller_and_key, created_row, generate_key};
use crate::authz::{self, Action};
use crate::backend::now_tz;
use crate::caller::{as_owner, Caller};
use crate::error;
use crate::jsonb::Jsonb;
use crate::key_settings::{self, Settings};
use crate::storage::{self, metering, StoredKey};

/// Change a key's settings: only the arguments given (non-NULL) change; `clear` names
/// fields to set back to NULL. Policy fields need a trusted caller.
// The Rust name differs from the SQL name so that the C symbol is new in 0.3.0: a database
// not yet updated still declares 0.2.0's arguments for `update_api_key_wrapper`, which
// src/api/outdated.rs answers with 55000.
#[pg_extern(volatile, name = "update_api_key")]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments)] // the contract's arguments
fn update_api_key_030(
    key_id: Option<Uuid>,
    name: default!(Option<String>, "NULL"),
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
    rate_limits: default!(Option<Jsonb>, "NULL"),
    refill_anchor: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> SetOfIterator<'static, pgrx::composite_type!('static, "apikey.key_info")> {
    let given = Settings {
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
    let (caller, key_id) = caller_and_key(key_id);
    let clear: Vec<String> = clear.unwrap_or_default().into_iter().flatten().collect();
    key_settings::require_clearable(&clear);
    if let Some(f) = given
        .given()
        .into_iter()
        .find(|f| clear.iter().any(|c| c == f))
    {
        error::bad_arg(
            format!("{f} is both given and cleared"),
            format!("Pass {f} or clear it, not both."),
        );
    }
    let clears_policy = clear.iter().any(|f| key_settings::is_policy_field(f));
    authz::forbid_policy_fields(&caller, given.sets_policy_field() || clears_policy);
    given.validate_values();
    let now = now_tz();

    let row = as_owner(|| {
        let cur = lock_for_change(&caller, key_id, now);
        // A new interval, a new anchor or a cleared one: the refill period starts over now
        // (the next refill is the first period end after it); a new interval with no
        // anchor given re-anchors at now.
        let refill_restart = given.refill_interval.is_some()
            || given.refill_anchor.is_some()
            || clear.iter().any(|c| c == "refill_anchor");
        let (mut changes, jsonb_changes) = given.audited();
        let anchor = given.refill_anchor;
        let mut merged = given.merge(&clear, cur.settings);
        if merged.refill_interval.is_none() && anchor.is_none() {
            merged.refill_anchor = None; // the refill was cleared: its anchor goes with it
        }
        merged.validate_pairs();
        let merged = merged.anchored(anchor, refill_restart && anchor.is_none(), now);
        let row = storage::key_update(
            key_id,
            &merged,
            enabled.unwrap_or(cur.enabled),
            refill_restart,
            now,
        );
        if let Some(e) = enabled {
            changes.insert("enabled".to_string(), json!(e));
        }
        storage::audit_key_update(
            key_id,
            &caller.actor(),
            json!({"changes": changes, "cleared": clear}),
            &jsonb_changes,
        );
        row
    });
    SetOfIterator::once(row.info)
}

/// The key's stored settings, locked for a change by a caller whose role allows `update`;
/// 55000 for a revoked key, which can no longer be changed or rotated.
fn lock_for_change(caller: &Caller, key_id: Uuid, now: TimestampWithTimeZone) -> StoredKey {
    authz::authorize_key(caller, key_id, Action::Update);
    // The row then holds what is left in total (its budget slots folded back).
    metering::key_fold(key_id, now);
    let Some(cur) = storage::key_settings_for_update(key_id, now) else {
        error::key_not_found()
    };
    if cur.revoked {
        error::not_ready(
            "the key is revoked",
            "A revoked key cannot be changed; create a new one.",
        );
    }
    cur
}

/// Replace a key with a new one (new id, new secret) with the same owner and settings.
/// The old key keeps verifying for `grace`, then answers KEY_EXPIRED.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // the contract's result columns
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
        name!(rate_limits, Option<Jsonb>),
    ),
> {
    let (caller, key_id) = caller_and_key(key_id);
    let grace = match grace {
        Some(g) if g.as_micros() >= 0 => g,
        _ => error::bad_arg(
            "grace must be zero or positive",
            "Pass an interval such as '1 hour', or '0' to stop the old key at once.",
        ),
    };
    let now = now_tz();
    let out = as_owner(|| {
        let cur = lock_for_change(&caller, key_id, now);
        if cur.replaced {
            error::not_ready(
                "the key was already rotated",
                "Rotate the key that replaced it.",
            );
        }
        if cur.expired {
            error::not_ready("the key has expired", "Create a new key instead.");
        }
        // An imported key's prefix may not be one of pg_apikey's (or there is none): its
        // successor gets the default prefix then.
        let prefix = if crate::keymat::is_valid_prefix(&cur.prefix) {
            cur.prefix.clone()
        } else {
            super::check_prefix(None)
        };
        let made = generate_key(&prefix);
        let (created, old_expires) = storage::key_rotate(
            key_id,
            &prefix,
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
