//! The audit trail.
use pgrx::datum::{JsonB, TimestampWithTimeZone};
use pgrx::Uuid;

use super::{
    col, req, rows, run, stmt, Actor, Stmt, JSONB, JSONB_ARRAY, TEXT, TEXT_ARRAY, TIMESTAMPTZ, UUID,
};
use crate::jsonb::Jsonb;

static AUDIT: Stmt = stmt!("audit.sql", [TEXT, TEXT, UUID, TEXT, TEXT, TEXT, JSONB]);

/// Record a management action that is not about one key's stored row. `details` are
/// values the extension made (names, roles, booleans), never a caller's jsonb.
pub fn audit(
    action: &str,
    org_id: Option<&str>,
    subject: Option<&str>,
    by: &Actor<'_>,
    details: serde_json::Value,
) {
    let [role, identity] = by.args();
    let args = [
        action.into(),
        org_id.into(),
        Option::<Uuid>::None.into(),
        subject.into(),
        role,
        identity,
        JsonB(details).into(),
    ];
    run(&AUDIT, &args, |_| ())
}

static AUDIT_KEY: Stmt = stmt!(
    "audit_key.sql",
    [TEXT, UUID, TEXT, TEXT, JSONB, TEXT_ARRAY, JSONB_ARRAY]
);

/// Record an action on a key, with the key's public fields as they are now (never its
/// secret or digest) and `details` merged in.
pub fn audit_key(action: &str, key_id: Uuid, by: &Actor<'_>, details: serde_json::Value) {
    audit_key_with(action, key_id, by, details, &[])
}

/// Record an update of a key: `details`, with the jsonb settings given added to its
/// `changes` as the jsonb values they are.
pub fn audit_key_update(
    key_id: Uuid,
    by: &Actor<'_>,
    details: serde_json::Value,
    jsonb_changes: &[(&'static str, Jsonb)],
) {
    audit_key_with("key_updated", key_id, by, details, jsonb_changes)
}

fn audit_key_with(
    action: &str,
    key_id: Uuid,
    by: &Actor<'_>,
    details: serde_json::Value,
    jsonb_changes: &[(&'static str, Jsonb)],
) {
    let names: Vec<String> = jsonb_changes.iter().map(|(n, _)| n.to_string()).collect();
    let values: Vec<Jsonb> = jsonb_changes.iter().map(|(_, v)| *v).collect();
    let [role, identity] = by.args();
    let args = [
        action.into(),
        key_id.into(),
        role,
        identity,
        JsonB(details).into(),
        names.into(),
        values.into(),
    ];
    run(&AUDIT_KEY, &args, |_| ())
}

/// One row of the audit trail, as `list_audit_events` returns it.
pub type AuditRow = (
    i64,
    TimestampWithTimeZone,
    String,
    Option<String>,
    Option<Uuid>,
    Option<String>,
    String,
    Option<String>,
    Jsonb,
);

static AUDIT_LIST: Stmt = stmt!("audit_list.sql", [TEXT, TIMESTAMPTZ]);

pub fn audit_list(org_id: Option<&str>, since: Option<TimestampWithTimeZone>) -> Vec<AuditRow> {
    rows(&AUDIT_LIST, &[org_id.into(), since.into()], |r| {
        (
            req(r, "id"),
            req(r, "at"),
            req(r, "action"),
            col(r, "org_id"),
            col(r, "key_id"),
            col(r, "subject"),
            req(r, "actor_role"),
            col(r, "actor_identity"),
            req(r, "details"),
        )
    })
}
