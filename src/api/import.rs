//! Keys made by another system, imported by their digest so that the keys already in
//! customers' hands keep working: `import_api_key`.
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::Uuid;

use super::optional_id;
use crate::authz;
use crate::caller::{as_owner, Caller};
use crate::error;
use crate::jsonb::Jsonb;
use crate::key_settings::Settings;
use crate::keymat;
use crate::storage;

/// Import a key made by another system, by the SHA-256 digest of its whole text, with its
/// owner, settings and history. Trusted callers only. Re-runnable: a digest that is
/// already stored returns that key's id and changes nothing.
// The Rust name differs from the SQL name so that the C symbol is new in 0.3.0: a database
// not yet updated still declares 0.2.0's arguments for `import_api_key_wrapper`, which
// src/api/outdated.rs answers with 55000.
#[pg_extern(volatile, name = "import_api_key")]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments)] // the contract's arguments
fn import_api_key_030(
    digest: Option<&[u8]>,
    org_id: default!(Option<&str>, "NULL"),
    user_id: default!(Option<&str>, "NULL"),
    name: default!(Option<String>, "NULL"),
    prefix: default!(Option<&str>, "NULL"),
    start: default!(Option<&str>, "NULL"),
    enabled: default!(Option<bool>, "true"),
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    permissions: default!(Option<Jsonb>, "NULL"),
    metadata: default!(Option<Jsonb>, "NULL"),
    remaining: default!(Option<i64>, "NULL"),
    refill_amount: default!(Option<i64>, "NULL"),
    refill_interval: default!(Option<Interval>, "NULL"),
    last_refill_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    rate_limit_max: default!(Option<i32>, "NULL"),
    rate_limit_window: default!(Option<Interval>, "NULL"),
    created_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    last_used_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    refill_anchor: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> Uuid {
    // Imported keys have no named rate limits: the function takes no rate_limits.
    let mut settings = Settings {
        name,
        expires_at,
        permissions,
        metadata,
        remaining,
        refill_amount,
        refill_interval,
        rate_limit_max,
        rate_limit_window,
        rate_limits: None,
        refill_anchor,
    };
    let caller = Caller::current();
    caller.require_trusted("import_api_key");
    let digest = match digest {
        Some(d) if d.len() == 32 => d,
        Some(d) => error::bad_arg(
            format!("digest must be the 32 bytes of a SHA-256 digest, not {} bytes", d.len()),
            "Pass sha256(convert_to(key_text, 'UTF8')), or decode the other system's stored digest to its raw bytes.",
        ),
        None => error::bad_arg(
            "digest must not be NULL",
            "Pass the SHA-256 digest of the key's whole text, as bytea.",
        ),
    };
    // Expiry in the past is history, accepted here (checked without it); every other value
    // is checked as for create_api_key.
    let expires_at = settings.expires_at.take();
    settings.validate_values();
    settings.validate_pairs();
    settings.expires_at = expires_at;
    // The periods count from the anchor given, else from the last refill the key brings
    // along, else from its creation (its period goes on as it was), else from now.
    let settings = settings.anchored(
        refill_anchor.or(last_refill_at).or(created_at),
        true,
        crate::backend::now_tz(),
    );
    // The other system's prefix, as it is part of the key's text; none is "".
    let prefix = match prefix {
        None => "",
        Some(p) if keymat::is_valid_prefix(p) => p,
        Some(p) => error::bad_arg(
            format!(
                "prefix \"{p}\" is not 1 to {} characters of [A-Za-z0-9_-]",
                keymat::PREFIX_MAX
            ),
            "Pass the key's prefix as the other system stored it, or NULL for none.",
        ),
    };
    let start = start.unwrap_or(prefix);
    let org_id = optional_id("org_id", org_id);
    let user_id = optional_id("user_id", user_id);
    let owner_user = authz::key_owner(&caller, org_id, user_id);

    // Verifies of every backend learn at commit that imported keys exist, from the
    // table's trigger.
    as_owner(|| {
        if let Some(org) = org_id {
            authz::require_org(org);
        }
        storage::key_import(storage::ImportedKeyRow {
            key: storage::NewKeyRow {
                digest,
                prefix,
                start,
                org_id,
                user_id: owner_user.as_deref(),
                settings: &settings,
                created_by: caller.actor(),
            },
            enabled: enabled.unwrap_or(true),
            last_refill_at,
            created_at,
            last_used_at,
        })
    })
}
