//! Leaked keys: `apikey.report_exposed_keys`, what a secret scanner's report (GitHub's
//! secret scanning partner program, for one) does to the keys it names. The events it and
//! the other key actions send on channel `apikey_events` come from the audit trail (the
//! trigger `key_events` on `apikey.audit_log`, sql/bootstrap.sql).
use pgrx::prelude::*;
use serde_json::json;

use crate::backend::now_tz;
use crate::caller::{as_owner, Caller};
use crate::error;
use crate::jsonb::{Jsonb, Value as JsonValue};
use crate::keymat;
use crate::storage::{self, exposed, metering};

/// At most this many reports in one call (GitHub sends a few at a time).
const MAX_REPORTS: usize = 1000;
/// At most this many bytes in one token, and in each of `type`, `url` and `source`.
const MAX_FIELD_BYTES: usize = 4096;
/// Keys imported from another system are looked up by the digest of their text only up
/// to this length (as verify does).
const MAX_IMPORTED_KEY_LEN: usize = 512;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Revoke,
    Disable,
    Nothing,
}

/// One report, as a scanner posts it.
struct Report {
    token: String,
    token_type: Option<String>,
    url: Option<String>,
    source: Option<String>,
}

/// Take reports of leaked keys (the array a secret scanner posts:
/// `[{"token", "type", "url", "source"}]`) and answer each with GitHub's feedback row: the
/// token's hex SHA-256, its type as reported, and `true_positive` when it is a key of this
/// database (its checksum holds and its digest is found, or it is an imported key), else
/// `false_positive`. `action` (`revoke`, `disable` or `none`) applies to true positives
/// that are not revoked; every true positive is audited as `key_exposed` and announced on
/// channel `apikey_events`. Trusted callers only.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // the contract's result columns
fn report_exposed_keys(
    reports: Option<Jsonb>,
    action: default!(Option<&str>, "'revoke'"),
) -> TableIterator<
    'static,
    (
        name!(token_hash, String),
        name!(token_type, Option<String>),
        name!(label, String),
    ),
> {
    let caller = Caller::current();
    caller.require_trusted("apikey.report_exposed_keys");
    let action = match action {
        Some("revoke") => Action::Revoke,
        Some("disable") => Action::Disable,
        Some("none") => Action::Nothing,
        other => error::bad_arg(
            format!(
                "action must be 'revoke', 'disable' or 'none', not {}",
                other.map_or("NULL".into(), |a| format!("'{a}'"))
            ),
            "Leave it out to revoke the keys reported, or pass 'disable' (reversible) or 'none' (only record and announce).",
        ),
    };
    let reports = parse(reports);
    let now = now_tz();
    let rows = as_owner(|| {
        reports
            .iter()
            .map(|r| {
                let label = match find(&r.token) {
                    Some(found) => {
                        act(&caller, r, &found, action, now);
                        "true_positive"
                    }
                    None => "false_positive",
                };
                (
                    hex(&keymat::digest(r.token.as_bytes())),
                    r.token_type.clone(),
                    label.to_string(),
                )
            })
            .collect::<Vec<_>>()
    });
    TableIterator::new(rows)
}

/// The reports, checked: 22023 naming the element and field that is wrong.
fn parse(reports: Option<Jsonb>) -> Vec<Report> {
    let hint = "Pass the JSON array the scanner posted: [{\"token\": \"...\", \"type\": \"...\", \"url\": \"...\", \"source\": \"...\"}].";
    let Some(reports) = reports else {
        error::bad_arg("reports must not be NULL", hint)
    };
    let JsonValue::Array(items) = reports.value() else {
        error::bad_arg("reports must be a JSON array", hint)
    };
    if items.len() > MAX_REPORTS {
        error::bad_arg(
            format!(
                "reports holds {} elements; at most {MAX_REPORTS} are taken in one call",
                items.len()
            ),
            "Split the list and call once for each part.",
        );
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let JsonValue::Object(fields) = item else {
                error::bad_arg(
                    format!("reports[{i}] must be an object, not {}", item.kind()),
                    hint,
                )
            };
            let field = |name: &str, required: bool| -> Option<String> {
                match fields.iter().find(|(k, _)| k == name).map(|(_, v)| v) {
                    Some(JsonValue::String(s)) if s.is_empty() && required => {
                        error::bad_arg(format!("reports[{i}].{name} must not be empty"), hint)
                    }
                    Some(JsonValue::String(s)) if s.len() > MAX_FIELD_BYTES => error::bad_arg(
                        format!("reports[{i}].{name} is longer than {MAX_FIELD_BYTES} bytes"),
                        "No key of this database is that long: leave such a report out.",
                    ),
                    Some(JsonValue::String(s)) => Some(s.clone()),
                    None | Some(JsonValue::Null) if !required => None,
                    None | Some(JsonValue::Null) => {
                        error::bad_arg(format!("reports[{i}] has no {name}"), hint)
                    }
                    Some(other) => error::bad_arg(
                        format!("reports[{i}].{name} must be a string, not {}", other.kind()),
                        hint,
                    ),
                }
            };
            Report {
                token: field("token", true).expect("required"),
                token_type: field("type", false),
                url: field("url", false),
                source: field("source", false),
            }
        })
        .collect()
}

/// The stored key a token is, if any: a key with pg_apikey's shape and checksum by its
/// digest; one without, only while imported keys are in use, among those. A token whose
/// checksum fails touches no table otherwise.
fn find(token: &str) -> Option<exposed::Exposed> {
    if let Some(digest) = keymat::check(token) {
        return exposed::exposed_key(&digest, false);
    }
    if token.len() > MAX_IMPORTED_KEY_LEN || !metering::imported_keys_exist() {
        return None;
    }
    exposed::exposed_key(&keymat::digest(token.as_bytes()), true)
}

/// Record a true positive (`key_exposed`, with what is done), then do it.
fn act(
    caller: &Caller,
    r: &Report,
    k: &exposed::Exposed,
    action: Action,
    now: pgrx::datum::TimestampWithTimeZone,
) {
    let done = match action {
        _ if k.revoked => "none: already revoked",
        Action::Revoke => "revoked",
        Action::Disable if k.enabled => "disabled",
        Action::Disable => "none: already disabled",
        Action::Nothing => "none",
    };
    let by = caller.actor();
    storage::audit_key(
        "key_exposed",
        k.key_id,
        &by,
        json!({"url": r.url, "source": r.source, "type": r.token_type, "action": done}),
    );
    match done {
        "revoked" => {
            // Its remaining, as shown, is what was left in total.
            metering::key_fold(k.key_id, now);
            storage::key_revoke(k.key_id, &by);
            storage::audit_key("key_revoked", k.key_id, &by, json!({"reason": "exposed"}));
        }
        "disabled" => {
            exposed::key_disable(k.key_id, now);
            storage::audit_key_update(
                k.key_id,
                &by,
                json!({"changes": {"enabled": false}, "reason": "exposed"}),
                &[],
            );
        }
        _ => {}
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
