//! Keys: creating, reading, spending uses, changing, rotating, revoking and deleting them.
use pgrx::datum::{DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::spi::SpiHeapTupleData;
use pgrx::Uuid;

use super::{
    col, first, one, req, rows, run, stmt, Actor, Stmt, BOOL, BYTEA, INTERVAL, TEXT, TEXT_ARRAY,
    TIMESTAMPTZ, UUID,
};
use crate::key_settings::{with_settings, Settings};
use pgrx::pg_sys::Oid;

/// A key's public fields (`apikey.key_info`): the statements build it with the type's
/// column list, which `pgrx-tests` checks in every statement file.
pub type KeyInfo = pgrx::composite_type!('static, "apikey.key_info");

/// A key's public fields with its owner, for deciding who may see it.
pub struct KeyRow {
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub revoked: bool,
    pub info: KeyInfo,
}

fn key_row(r: &SpiHeapTupleData<'_>) -> KeyRow {
    KeyRow {
        org_id: col(r, "org_id"),
        user_id: col(r, "user_id"),
        revoked: req(r, "revoked"),
        info: req(r, "info"),
    }
}

// ---------------------------------------------------------------- create

/// Everything `create_api_key` stores (and records in the audit trail).
pub struct NewKeyRow<'a> {
    pub digest: &'a [u8],
    pub prefix: &'a str,
    pub start: &'a str,
    pub org_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub settings: &'a Settings,
    pub created_by: Actor<'a>,
}

/// digest, prefix, start, org_id, user_id, the settings, created_by_role and _identity.
const KEY_INSERT_ARGS: [Oid; 18] = with_settings(&[BYTEA, TEXT, TEXT, TEXT, TEXT], &[TEXT, TEXT]);
static KEY_INSERT: Stmt = stmt!("key_insert.sql", KEY_INSERT_ARGS);

impl NewKeyRow<'_> {
    /// The statement arguments of key_insert.sql, which key_import.sql begins with too.
    fn args(&self) -> Vec<DatumWithOid<'_>> {
        let mut args = vec![
            self.digest.into(),
            self.prefix.into(),
            self.start.into(),
            self.org_id.into(),
            self.user_id.into(),
        ];
        args.extend(self.settings.args());
        args.extend(self.created_by.args());
        args
    }
}

/// Store a new key and its `key_created` audit row; its id and creation time.
pub fn key_insert(k: NewKeyRow<'_>) -> (Uuid, TimestampWithTimeZone) {
    first(&KEY_INSERT, &k.args(), |r| {
        (req(r, "key_id"), req(r, "created_at"))
    })
    .expect("the insert returns its row")
}

// ---------------------------------------------------------------- use

static KEY_TOUCH: Stmt = stmt!("key_touch.sql", [UUID, TIMESTAMPTZ, INTERVAL]);

/// Record a use of an unlimited key, at most once per `resolution`. Never waits: when
/// another transaction holds the key's row (an open transaction that verified it, or
/// an update), this use is not recorded; `last_used_at` is a hint, not a count.
pub fn key_touch(key_id: Uuid, now: TimestampWithTimeZone, resolution: Interval) {
    run(
        &KEY_TOUCH,
        &[key_id.into(), now.into(), resolution.into()],
        |_| (),
    )
}

// ---------------------------------------------------------------- read

static KEY_GET: Stmt = stmt!("key_get.sql", [UUID]);

pub fn key_get(key_id: Uuid) -> Option<KeyRow> {
    first(&KEY_GET, &[key_id.into()], key_row)
}

static KEY_LIST_ORG: Stmt = stmt!("key_list_org.sql", [TEXT, TEXT]);
static KEY_LIST_USER: Stmt = stmt!("key_list_user.sql", [TEXT]);
static KEY_LIST_ALL: Stmt = stmt!("key_list_all.sql", []);

/// An organization's keys, optionally only those recorded with `user_id`.
pub fn keys_of_org(org_id: &str, user_id: Option<&str>) -> Vec<KeyRow> {
    rows(&KEY_LIST_ORG, &[org_id.into(), user_id.into()], key_row)
}

/// A user's own (user-owned) keys.
pub fn keys_of_user(user_id: &str) -> Vec<KeyRow> {
    rows(&KEY_LIST_USER, &[user_id.into()], key_row)
}

pub fn keys_all() -> Vec<KeyRow> {
    rows(&KEY_LIST_ALL, &[], key_row)
}

// ---------------------------------------------------------------- revoke and delete

static KEY_REVOKE: Stmt = stmt!("key_revoke.sql", [UUID, TEXT, TEXT]);

/// Mark a key revoked (the first revocation's time and role are kept).
pub fn key_revoke(key_id: Uuid, by: &Actor<'_>) -> Option<KeyRow> {
    let [role, identity] = by.args();
    first(&KEY_REVOKE, &[key_id.into(), role, identity], key_row)
}

static KEY_DELETE: Stmt = stmt!("key_delete.sql", [UUID, TEXT, TEXT]);

/// Delete a key and record it; whether there was one.
pub fn key_delete(key_id: Uuid, by: &Actor<'_>) -> bool {
    let [role, identity] = by.args();
    run(&KEY_DELETE, &[key_id.into(), role, identity], |t| {
        !t.is_empty()
    })
}

static EXPIRED_ORGS: Stmt = stmt!("expired_orgs.sql", []);

/// The organizations that have expired keys.
pub fn orgs_with_expired_keys() -> Vec<String> {
    rows(&EXPIRED_ORGS, &[], |r| req(r, "org_id"))
}

static DELETE_EXPIRED: Stmt = stmt!("delete_expired.sql", [BOOL, TEXT, TEXT_ARRAY, TEXT, TEXT]);

/// Delete expired keys: all of them when `all`, else `user_id`'s own and those of `orgs`.
/// Each deletion is recorded in the audit trail.
pub fn delete_expired(all: bool, user_id: Option<&str>, orgs: Vec<String>, by: &Actor<'_>) -> i64 {
    let [role, identity] = by.args();
    let args = [all.into(), user_id.into(), orgs.into(), role, identity];
    run(&DELETE_EXPIRED, &args, |t| t.len() as i64)
}

// ---------------------------------------------------------------- update and rotate

/// A key's settings and state as stored, locked for the update or rotation that reads
/// them.
pub struct StoredKey {
    pub prefix: String,
    pub settings: Settings,
    pub enabled: bool,
    pub revoked: bool,
    pub replaced: bool,
    pub expired: bool,
}

static KEY_SETTINGS: Stmt = stmt!("key_settings.sql", [UUID, TIMESTAMPTZ]);

pub fn key_settings_for_update(key_id: Uuid, now: TimestampWithTimeZone) -> Option<StoredKey> {
    first(&KEY_SETTINGS, &[key_id.into(), now.into()], |r| StoredKey {
        prefix: req(r, "prefix"),
        settings: Settings::from_columns(r),
        enabled: req(r, "enabled"),
        revoked: req(r, "revoked"),
        replaced: req(r, "replaced"),
        expired: req(r, "expired"),
    })
}

/// key_id, the settings, enabled, whether the refill restarts, now.
const KEY_UPDATE_ARGS: [Oid; 15] = with_settings(&[UUID], &[BOOL, BOOL, TIMESTAMPTZ]);
static KEY_UPDATE: Stmt = stmt!("key_update.sql", KEY_UPDATE_ARGS);

/// Store a key's new settings. `refill_restart`: the refill period starts over now.
pub fn key_update(
    key_id: Uuid,
    settings: &Settings,
    enabled: bool,
    refill_restart: bool,
    now: TimestampWithTimeZone,
) -> KeyRow {
    let mut args = vec![key_id.into()];
    args.extend(settings.args());
    args.extend([enabled.into(), refill_restart.into(), now.into()]);
    first(&KEY_UPDATE, &args, key_row).expect("the key was locked for this update")
}

/// The columns `create_api_key` and `rotate_api_key` return, but the key text itself.
pub struct CreatedKey {
    pub key_id: Uuid,
    pub prefix: String,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub settings: Settings,
    pub created_at: TimestampWithTimeZone,
}

static KEY_ROTATE: Stmt = stmt!("key_rotate.sql", [UUID, BYTEA, TEXT, TEXT, TEXT, TEXT]);
static KEY_MARK_ROTATED: Stmt = stmt!("key_mark_rotated.sql", [UUID, UUID, TIMESTAMPTZ, INTERVAL]);

/// A new key with the old one's owner and settings, linked both ways; the old key
/// expires `grace` after `now`. Returns the new key's columns and the old key's expiry.
pub fn key_rotate(
    old: Uuid,
    prefix: &str,
    digest: &[u8],
    start: &str,
    by: &Actor<'_>,
    now: TimestampWithTimeZone,
    grace: Interval,
) -> (CreatedKey, TimestampWithTimeZone) {
    let [role, identity] = by.args();
    let args = [
        old.into(),
        digest.into(),
        start.into(),
        role,
        identity,
        prefix.into(),
    ];
    let created = first(&KEY_ROTATE, &args, |r| CreatedKey {
        key_id: req(r, "key_id"),
        prefix: req(r, "prefix"),
        org_id: col(r, "org_id"),
        user_id: col(r, "user_id"),
        settings: Settings::from_columns(r),
        created_at: req(r, "created_at"),
    })
    .expect("the old key was locked for this rotation");
    let old_expires = one::<TimestampWithTimeZone>(
        &KEY_MARK_ROTATED,
        &[old.into(), created.key_id.into(), now.into(), grace.into()],
    )
    .expect("the old key was locked for this rotation");
    (created, old_expires)
}

// ---------------------------------------------------------------- import

/// Everything `import_api_key` stores: what create stores, and the key's history.
pub struct ImportedKeyRow<'a> {
    pub key: NewKeyRow<'a>,
    pub enabled: bool,
    pub last_refill_at: Option<TimestampWithTimeZone>,
    pub created_at: Option<TimestampWithTimeZone>,
    pub last_used_at: Option<TimestampWithTimeZone>,
}

/// key_insert.sql's arguments, then enabled, last_refill_at, created_at, last_used_at.
const KEY_IMPORT_ARGS: [Oid; 22] = with_settings(
    &[BYTEA, TEXT, TEXT, TEXT, TEXT],
    &[TEXT, TEXT, BOOL, TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ],
);
static KEY_IMPORT: Stmt = stmt!("key_import.sql", KEY_IMPORT_ARGS);
static KEY_ID_BY_DIGEST: Stmt = stmt!("key_id_by_digest.sql", [BYTEA]);

/// Store an imported key with its `key_imported` audit row and return its id; or, when its
/// digest is already stored, return that key's id (nothing is written).
pub fn key_import(k: ImportedKeyRow<'_>) -> Uuid {
    let mut args = k.key.args();
    args.extend([
        k.enabled.into(),
        k.last_refill_at.into(),
        k.created_at.into(),
        k.last_used_at.into(),
    ]);
    one::<Uuid>(&KEY_IMPORT, &args).unwrap_or_else(|| {
        one::<Uuid>(&KEY_ID_BY_DIGEST, &[k.key.digest.into()])
            .expect("a digest that conflicted on insert is stored")
    })
}
