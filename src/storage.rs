//! Every SQL statement the extension runs, in one place.
//!
//! Statements are prepared once per backend and kept (`SPI_keepplan`), so a call costs an
//! execution, not a parse and plan. PostgreSQL re-plans a kept statement by itself when a
//! table it reads changes (including `DROP`/`CREATE EXTENSION`). Every name is
//! schema-qualified and every function runs with `search_path = pg_catalog, pg_temp`, so
//! no object a caller creates can stand in for one of these.
//!
//! These functions read and write the extension's tables: call them only inside
//! [`crate::caller::as_owner`], after deciding on the caller.
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::datum::{DatumWithOid, Interval, JsonB, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use pgrx::{pg_sys, PgOid, Uuid};

/// One statement: its text and the types of its parameters.
pub struct Stmt {
    sql: &'static str,
    args: &'static [pg_sys::Oid],
}

thread_local! {
    static PLANS: RefCell<HashMap<usize, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

fn plan(client: &SpiClient<'_>, stmt: &'static Stmt) -> Rc<OwnedPreparedStatement> {
    let key = stmt as *const Stmt as usize;
    if let Some(plan) = PLANS.with(|p| p.borrow().get(&key).cloned()) {
        return plan;
    }
    let oids: Vec<PgOid> = stmt.args.iter().map(|&o| PgOid::from(o)).collect();
    let prepared = client
        .prepare_mut(stmt.sql, &oids)
        .unwrap_or_else(|e| panic!("pg_apikey: preparing an internal statement failed: {e}"))
        .keep();
    let plan = Rc::new(prepared);
    PLANS.with(|p| p.borrow_mut().insert(key, plan.clone()));
    plan
}

/// Execute `stmt` with `args` and hand the result to `read`, inside one SPI connection.
pub fn run<R>(
    stmt: &'static Stmt,
    args: &[DatumWithOid<'_>],
    read: impl for<'c> FnOnce(SpiTupleTable<'c>) -> R,
) -> R {
    Spi::connect_mut(|client| {
        let plan = plan(client, stmt);
        let table = client
            .update(&*plan, None, args)
            .unwrap_or_else(|e| panic!("pg_apikey: an internal statement failed: {e}"));
        read(table)
    })
}

/// The first column of the first row, if any.
fn one<T: FromDatum + IntoDatum>(stmt: &'static Stmt, args: &[DatumWithOid<'_>]) -> Option<T> {
    run(stmt, args, |t| {
        if t.is_empty() {
            None
        } else {
            t.first().get_one::<T>().ok().flatten()
        }
    })
}

fn col<T: FromDatum + IntoDatum>(row: &pgrx::spi::SpiHeapTupleData<'_>, i: usize) -> Option<T> {
    row.get::<T>(i)
        .unwrap_or_else(|e| panic!("pg_apikey: reading column {i}: {e}"))
}

const TEXT: pg_sys::Oid = pg_sys::TEXTOID;
const TEXT_ARRAY: pg_sys::Oid = pg_sys::TEXTARRAYOID;
const BOOL: pg_sys::Oid = pg_sys::BOOLOID;
const BYTEA: pg_sys::Oid = pg_sys::BYTEAOID;
const UUID: pg_sys::Oid = pg_sys::UUIDOID;
const JSONB: pg_sys::Oid = pg_sys::JSONBOID;
const INT8: pg_sys::Oid = pg_sys::INT8OID;
const INT4: pg_sys::Oid = pg_sys::INT4OID;
const INTERVAL: pg_sys::Oid = pg_sys::INTERVALOID;
const TIMESTAMPTZ: pg_sys::Oid = pg_sys::TIMESTAMPTZOID;

// ---------------------------------------------------------------- organizations

static ORG_EXISTS: Stmt = Stmt {
    sql: "SELECT EXISTS (SELECT 1 FROM apikey.organizations o WHERE o.id = $1)",
    args: &[TEXT],
};

pub fn org_exists(org_id: &str) -> bool {
    one::<bool>(&ORG_EXISTS, &[org_id.into()]).unwrap_or(false)
}

static ORG_INSERT: Stmt = Stmt {
    sql: "INSERT INTO apikey.organizations (id, name, created_by_role) VALUES ($1, $2, $3) \
          ON CONFLICT (id) DO NOTHING RETURNING id, name, created_at",
    args: &[TEXT, TEXT, TEXT],
};

/// Insert an organization; `None` when the id is taken.
pub fn org_insert(
    id: &str,
    name: Option<&str>,
    created_by: &str,
) -> Option<(String, Option<String>, TimestampWithTimeZone)> {
    run(
        &ORG_INSERT,
        &[id.into(), name.into(), created_by.into()],
        |t| {
            t.into_iter().next().map(|r| {
                (
                    col::<String>(&r, 1).unwrap(),
                    col::<String>(&r, 2),
                    col(&r, 3).unwrap(),
                )
            })
        },
    )
}

// ---------------------------------------------------------------- members and roles

static MEMBER_ROLES: Stmt = Stmt {
    sql: "SELECT m.role FROM apikey.members m WHERE m.org_id = $1 AND m.user_id = $2",
    args: &[TEXT, TEXT],
};

/// The member's roles in the built-in tables; empty when not a member.
pub fn member_roles(org_id: &str, user_id: &str) -> Vec<String> {
    run(&MEMBER_ROLES, &[org_id.into(), user_id.into()], |t| {
        t.into_iter().filter_map(|r| col::<String>(&r, 1)).collect()
    })
}

// A customised row (is_default = false) overrides the shipped default for the same
// role and action.
static ROLES_ALLOW: Stmt = Stmt {
    sql: "SELECT coalesce(bool_or(e.allowed), false) FROM ( \
            SELECT DISTINCT ON (ra.role) ra.allowed FROM apikey.member_role_actions ra \
            WHERE ra.role = ANY ($1) AND ra.action = $2 \
            ORDER BY ra.role, ra.is_default) e",
    args: &[TEXT_ARRAY, TEXT],
};

/// Whether any of `roles` allows `action`.
pub fn roles_allow(roles: &[String], action: &str) -> bool {
    !roles.is_empty()
        && one::<bool>(&ROLES_ALLOW, &[roles.to_vec().into(), action.into()]).unwrap_or(false)
}

static ROLE_KNOWN: Stmt = Stmt {
    sql: "SELECT EXISTS (SELECT 1 FROM apikey.member_role_actions ra WHERE ra.role = $1)",
    args: &[TEXT],
};

pub fn role_known(role: &str) -> bool {
    one::<bool>(&ROLE_KNOWN, &[role.into()]).unwrap_or(false)
}

static MEMBER_UPSERT: Stmt = Stmt {
    sql: "INSERT INTO apikey.members (org_id, user_id, role) VALUES ($1, $2, $3) \
          ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role \
          RETURNING org_id, user_id, role, created_at",
    args: &[TEXT, TEXT, TEXT],
};

pub fn member_upsert(
    org_id: &str,
    user_id: &str,
    role: &str,
) -> (String, String, String, TimestampWithTimeZone) {
    run(
        &MEMBER_UPSERT,
        &[org_id.into(), user_id.into(), role.into()],
        |t| {
            let r = t.first();
            (
                r.get::<String>(1).unwrap().unwrap(),
                r.get::<String>(2).unwrap().unwrap(),
                r.get::<String>(3).unwrap().unwrap(),
                r.get::<TimestampWithTimeZone>(4).unwrap().unwrap(),
            )
        },
    )
}

static MEMBER_DELETE: Stmt = Stmt {
    sql: "DELETE FROM apikey.members m WHERE m.org_id = $1 AND m.user_id = $2",
    args: &[TEXT, TEXT],
};

pub fn member_delete(org_id: &str, user_id: &str) -> bool {
    run(&MEMBER_DELETE, &[org_id.into(), user_id.into()], |t| {
        t.len() > 0
    })
}

static ROLE_ACTION_SET: Stmt = Stmt {
    sql: "INSERT INTO apikey.member_role_actions (role, action, allowed, is_default) \
          VALUES ($1, $2, $3, false) \
          ON CONFLICT (role, action, is_default) DO UPDATE SET allowed = EXCLUDED.allowed",
    args: &[TEXT, TEXT, BOOL],
};

pub fn role_action_set(role: &str, action: &str, allowed: bool) {
    run(
        &ROLE_ACTION_SET,
        &[role.into(), action.into(), allowed.into()],
        |_| (),
    )
}

static ROLE_ACTIONS_LIST: Stmt = Stmt {
    sql: "SELECT DISTINCT ON (ra.role, ra.action) ra.role, ra.action, ra.allowed, ra.is_default \
          FROM apikey.member_role_actions ra ORDER BY ra.role, ra.action, ra.is_default",
    args: &[],
};

pub fn role_actions_list() -> Vec<(String, String, bool, bool)> {
    run(&ROLE_ACTIONS_LIST, &[], |t| {
        t.into_iter()
            .map(|r| {
                (
                    col::<String>(&r, 1).unwrap(),
                    col::<String>(&r, 2).unwrap(),
                    col::<bool>(&r, 3).unwrap(),
                    col::<bool>(&r, 4).unwrap(),
                )
            })
            .collect()
    })
}

// ---------------------------------------------------------------- keys

/// The public fields of a key as one `apikey.key_info` value: never the digest.
macro_rules! key_info {
    () => {
        "ROW(k.id, k.org_id, k.user_id, k.name, k.prefix, k.start, k.enabled, k.expires_at, \
             k.permissions, k.metadata, k.remaining, k.refill_amount, k.refill_interval, \
             k.rate_limit_max, k.rate_limit_window, k.created_at, k.last_used_at, \
             k.revoked_at, k.created_by_role, k.created_by_identity)::apikey.key_info"
    };
}

pub type KeyInfo = pgrx::composite_type!('static, "apikey.key_info");

/// A key's public fields with its owner, for deciding who may see it.
pub struct KeyRow {
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub info: KeyInfo,
}

fn key_rows(t: SpiTupleTable<'_>) -> Vec<KeyRow> {
    t.into_iter()
        .map(|r| KeyRow {
            org_id: col(&r, 1),
            user_id: col(&r, 2),
            info: col::<KeyInfo>(&r, 3).expect("key_info is never NULL"),
        })
        .collect()
}

/// Everything `create_api_key` stores.
pub struct NewKeyRow<'a> {
    pub digest: &'a [u8],
    pub prefix: &'a str,
    pub start: &'a str,
    pub org_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub expires_at: Option<TimestampWithTimeZone>,
    pub permissions: Option<JsonB>,
    pub metadata: Option<JsonB>,
    pub remaining: Option<i64>,
    pub refill_amount: Option<i64>,
    pub refill_interval: Option<Interval>,
    pub rate_limit_max: Option<i32>,
    pub rate_limit_window: Option<Interval>,
    pub created_by_role: &'a str,
    pub created_by_identity: Option<&'a str>,
}

static KEY_INSERT: Stmt = Stmt {
    sql: "INSERT INTO apikey.keys (digest, prefix, start, org_id, user_id, name, expires_at, \
             permissions, metadata, remaining, refill_amount, refill_interval, rate_limit_max, \
             rate_limit_window, created_by_role, created_by_identity) \
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
          RETURNING id, created_at",
    args: &[
        BYTEA,
        TEXT,
        TEXT,
        TEXT,
        TEXT,
        TEXT,
        TIMESTAMPTZ,
        JSONB,
        JSONB,
        INT8,
        INT8,
        INTERVAL,
        INT4,
        INTERVAL,
        TEXT,
        TEXT,
    ],
};

pub fn key_insert(k: NewKeyRow<'_>) -> (Uuid, TimestampWithTimeZone) {
    let args: [DatumWithOid<'_>; 16] = [
        k.digest.into(),
        k.prefix.into(),
        k.start.into(),
        k.org_id.into(),
        k.user_id.into(),
        k.name.into(),
        k.expires_at.into(),
        k.permissions.into(),
        k.metadata.into(),
        k.remaining.into(),
        k.refill_amount.into(),
        k.refill_interval.into(),
        k.rate_limit_max.into(),
        k.rate_limit_window.into(),
        k.created_by_role.into(),
        k.created_by_identity.into(),
    ];
    run(&KEY_INSERT, &args, |t| {
        let r = t.first();
        (
            r.get::<Uuid>(1).unwrap().unwrap(),
            r.get::<TimestampWithTimeZone>(2).unwrap().unwrap(),
        )
    })
}

/// What verify needs of a key, found by one probe of the unique digest index.
pub struct VerifyRow {
    pub key_id: Uuid,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub permissions: Option<JsonB>,
    pub metadata: Option<JsonB>,
    pub remaining: Option<i64>,
    pub expires_at: Option<TimestampWithTimeZone>,
    pub revoked: bool,
    pub enabled: bool,
    pub expired: bool,
    pub permitted: bool,
}

static KEY_VERIFY: Stmt = Stmt {
    sql: "SELECT k.id, k.org_id, k.user_id, k.name, k.permissions, k.metadata, k.remaining, \
                 k.expires_at, k.revoked_at IS NOT NULL, k.enabled, \
                 k.expires_at IS NOT NULL AND k.expires_at <= clock_timestamp(), \
                 coalesce(k.permissions, '{}'::jsonb) @> coalesce($2, '{}'::jsonb) \
          FROM apikey.keys k WHERE k.digest = $1",
    args: &[BYTEA, JSONB],
};

pub fn key_for_verify(digest: &[u8], required: Option<JsonB>) -> Option<VerifyRow> {
    run(&KEY_VERIFY, &[digest.into(), required.into()], |t| {
        t.into_iter().next().map(|r| VerifyRow {
            key_id: col(&r, 1).unwrap(),
            org_id: col(&r, 2),
            user_id: col(&r, 3),
            name: col(&r, 4),
            permissions: col(&r, 5),
            metadata: col(&r, 6),
            remaining: col(&r, 7),
            expires_at: col(&r, 8),
            revoked: col(&r, 9).unwrap(),
            enabled: col(&r, 10).unwrap(),
            expired: col(&r, 11).unwrap(),
            permitted: col(&r, 12).unwrap(),
        })
    })
}

static KEY_GET: Stmt = Stmt {
    sql: concat!(
        "SELECT k.org_id, k.user_id, ",
        key_info!(),
        " FROM apikey.keys k WHERE k.id = $1"
    ),
    args: &[UUID],
};

pub fn key_get(key_id: Uuid) -> Option<KeyRow> {
    run(&KEY_GET, &[key_id.into()], key_rows).pop()
}

static KEY_LIST_ORG: Stmt = Stmt {
    sql: concat!(
        "SELECT k.org_id, k.user_id, ",
        key_info!(),
        " FROM apikey.keys k WHERE k.org_id = $1 AND ($2::text IS NULL OR k.user_id = $2) \
          ORDER BY k.created_at, k.id"
    ),
    args: &[TEXT, TEXT],
};

static KEY_LIST_USER: Stmt = Stmt {
    sql: concat!(
        "SELECT k.org_id, k.user_id, ",
        key_info!(),
        " FROM apikey.keys k WHERE k.org_id IS NULL AND k.user_id = $1 ORDER BY k.created_at, k.id"
    ),
    args: &[TEXT],
};

static KEY_LIST_ALL: Stmt = Stmt {
    sql: concat!(
        "SELECT k.org_id, k.user_id, ",
        key_info!(),
        " FROM apikey.keys k ORDER BY k.created_at, k.id"
    ),
    args: &[],
};

/// An organization's keys, optionally only those recorded with `user_id`.
pub fn keys_of_org(org_id: &str, user_id: Option<&str>) -> Vec<KeyRow> {
    run(&KEY_LIST_ORG, &[org_id.into(), user_id.into()], key_rows)
}

/// A user's own (user-owned) keys.
pub fn keys_of_user(user_id: &str) -> Vec<KeyRow> {
    run(&KEY_LIST_USER, &[user_id.into()], key_rows)
}

pub fn keys_all() -> Vec<KeyRow> {
    run(&KEY_LIST_ALL, &[], key_rows)
}

static KEY_REVOKE: Stmt = Stmt {
    sql: concat!(
        "UPDATE apikey.keys k SET revoked_at = coalesce(k.revoked_at, clock_timestamp()), \
            revoked_by_role = coalesce(k.revoked_by_role, $2), \
            revoked_by_identity = CASE WHEN k.revoked_at IS NULL THEN $3 ELSE k.revoked_by_identity END \
         WHERE k.id = $1 RETURNING k.org_id, k.user_id, ",
        key_info!()
    ),
    args: &[UUID, TEXT, TEXT],
};

/// Mark a key revoked (the first revocation's time and role are kept).
pub fn key_revoke(key_id: Uuid, by_role: &str, by_identity: Option<&str>) -> Option<KeyRow> {
    run(
        &KEY_REVOKE,
        &[key_id.into(), by_role.into(), by_identity.into()],
        key_rows,
    )
    .pop()
}

static KEY_DELETE: Stmt = Stmt {
    sql: "DELETE FROM apikey.keys k WHERE k.id = $1",
    args: &[UUID],
};

pub fn key_delete(key_id: Uuid) -> bool {
    run(&KEY_DELETE, &[key_id.into()], |t| t.len() > 0)
}

static EXPIRED_ORGS: Stmt = Stmt {
    sql: "SELECT DISTINCT k.org_id FROM apikey.keys k \
          WHERE k.org_id IS NOT NULL AND k.expires_at <= clock_timestamp()",
    args: &[],
};

/// The organizations that have expired keys.
pub fn orgs_with_expired_keys() -> Vec<String> {
    run(&EXPIRED_ORGS, &[], |t| {
        t.into_iter().filter_map(|r| col::<String>(&r, 1)).collect()
    })
}

static DELETE_EXPIRED: Stmt = Stmt {
    sql: "DELETE FROM apikey.keys k WHERE k.expires_at <= clock_timestamp() AND ( \
            $1 OR (k.org_id IS NULL AND k.user_id = $2) OR k.org_id = ANY ($3))",
    args: &[BOOL, TEXT, TEXT_ARRAY],
};

/// Delete expired keys: all of them when `all`, else `user_id`'s own and those of `orgs`.
pub fn delete_expired(all: bool, user_id: Option<&str>, orgs: Vec<String>) -> i64 {
    run(
        &DELETE_EXPIRED,
        &[all.into(), user_id.into(), orgs.into()],
        |t| t.len() as i64,
    )
}
