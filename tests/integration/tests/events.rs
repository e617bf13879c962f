//! Key events on channel `apikey_events` (docs/sql-reference.md, "Key events"): a
//! listening connection hears each action on a key after its commit — with the key's id
//! and owner, never the key — and nothing of a rolled-back one.
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use pg_apikey_integration::*;
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use serde_json::Value;

/// The tests of this file run one at a time: each listens to every event of the cluster.
static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The events `listener` has received within `wait`, as JSON, in order.
fn events(listener: &mut Client, wait: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    let mut notifications = listener.notifications();
    let mut it = notifications.timeout_iter(wait);
    while let Some(n) = it.next().unwrap() {
        assert_eq!(n.channel(), "apikey_events");
        got.push(serde_json::from_str(n.payload()).expect("a JSON payload"));
    }
    got
}

fn event_names(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn each_key_action_is_announced_after_commit_and_a_rolled_back_one_is_not() {
    let _serial = one_at_a_time();
    let t = "events";
    let (mut su, _api) = org_and_api_role(t);
    let mut listener = superuser();
    listener.batch_execute("LISTEN apikey_events").unwrap();
    let (id, key) = org_key(&mut su, t, "");

    // Created keys are not announced (nothing to drop from a cache).
    assert!(events(&mut listener, Duration::from_millis(300)).is_empty());

    su.batch_execute(&format!(
        "SELECT apikey.update_api_key('{id}', name => 'renamed')"
    ))
    .unwrap();
    su.batch_execute(&format!(
        "SELECT apikey.update_api_key('{id}', enabled => false)"
    ))
    .unwrap();
    let evs = events(&mut listener, Duration::from_millis(500));
    assert_eq!(event_names(&evs), ["key_updated", "key_disabled"]);
    for e in &evs {
        assert_eq!(e["key_id"], id.as_str());
        assert_eq!(e["org_id"], format!("{t}-org").as_str());
        assert!(e["user_id"].is_null());
        assert!(e["audit_id"].as_i64().is_some_and(|n| n > 0));
        assert!(
            !e.to_string().contains(&key),
            "the payload never holds the key"
        );
    }
    // The audit row it names holds the same action.
    let audit_id = evs[1]["audit_id"].as_i64().unwrap();
    let action: String = su
        .query_one(
            "SELECT action FROM apikey.audit_log WHERE id = $1",
            &[&audit_id],
        )
        .unwrap()
        .get(0);
    assert_eq!(action, "key_updated");

    // A revoke inside a transaction that rolls back: nothing; inside one still open:
    // nothing until it commits.
    su.batch_execute(&format!(
        "BEGIN; SELECT apikey.revoke_api_key('{id}'); ROLLBACK"
    ))
    .unwrap();
    assert!(events(&mut listener, Duration::from_millis(500)).is_empty());
    su.batch_execute(&format!("BEGIN; SELECT apikey.revoke_api_key('{id}')"))
        .unwrap();
    assert!(events(&mut listener, Duration::from_millis(300)).is_empty());
    su.batch_execute("COMMIT").unwrap();
    let evs = events(&mut listener, Duration::from_millis(500));
    assert_eq!(event_names(&evs), ["key_revoked"]);
    assert_eq!(evs[0]["key_id"], id.as_str());

    // Rotate (the old key's id), delete, and a leaked key reported by a scanner.
    let (id2, _) = org_key(&mut su, t, "");
    su.batch_execute(&format!("SELECT apikey.rotate_api_key('{id2}')"))
        .unwrap();
    su.batch_execute(&format!("SELECT apikey.delete_api_key('{id}')"))
        .unwrap();
    let (id3, key3) = org_key(&mut su, t, "");
    su.query(
        "SELECT * FROM apikey.report_exposed_keys(jsonb_build_array(jsonb_build_object('token', $1::text)))",
        &[&key3],
    )
    .unwrap();
    let evs = events(&mut listener, Duration::from_millis(500));
    assert_eq!(
        event_names(&evs),
        ["key_rotated", "key_deleted", "key_exposed", "key_revoked"]
    );
    assert_eq!(evs[0]["key_id"], id2.as_str());
    assert_eq!(evs[1]["key_id"], id.as_str());
    assert_eq!(evs[2]["key_id"], id3.as_str());
    assert_eq!(evs[3]["key_id"], id3.as_str());
    assert!(!evs[2].to_string().contains(&key3));
}

/// A user key's events name the user, not an organization.
#[test]
fn a_user_keys_event_names_its_user() {
    let _serial = one_at_a_time();
    let mut su = superuser();
    let mut listener = superuser();
    listener.batch_execute("LISTEN apikey_events").unwrap();
    let row = su
        .query_one(
            "SELECT key_id::text FROM apikey.create_api_key(user_id => 'events-user-1')",
            &[],
        )
        .unwrap();
    let id: String = row.get(0);
    su.batch_execute(&format!("SELECT apikey.revoke_api_key('{id}')"))
        .unwrap();
    let evs = events(&mut listener, Duration::from_millis(500));
    assert_eq!(event_names(&evs), ["key_revoked"]);
    assert_eq!(evs[0]["user_id"], "events-user-1");
    assert!(evs[0]["org_id"].is_null());
}
