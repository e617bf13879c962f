//! The statements of `report_exposed_keys` (src/api/exposed.rs).
use pgrx::datum::TimestampWithTimeZone;
use pgrx::Uuid;

use super::{first, req, run, stmt, Stmt, BOOL, BYTEA, TIMESTAMPTZ, UUID};

/// A stored key that a report names.
pub struct Exposed {
    pub key_id: Uuid,
    pub revoked: bool,
    pub enabled: bool,
}

static EXPOSED: Stmt = stmt!(locked "exposed_key.sql", [BYTEA, BOOL]);

/// The key stored with `digest` (only an imported one when `imported_only`), its row
/// locked for the action.
pub fn exposed_key(digest: &[u8; 32], imported_only: bool) -> Option<Exposed> {
    first(
        &EXPOSED,
        &[digest.as_slice().into(), imported_only.into()],
        |r| Exposed {
            key_id: req(r, "key_id"),
            revoked: req(r, "revoked"),
            enabled: req(r, "enabled"),
        },
    )
}

static KEY_DISABLE: Stmt = stmt!("key_disable.sql", [UUID, TIMESTAMPTZ]);

/// Disable a key; whether it was enabled.
pub fn key_disable(key_id: Uuid, now: TimestampWithTimeZone) -> bool {
    run(&KEY_DISABLE, &[key_id.into(), now.into()], |t| {
        !t.is_empty()
    })
}
