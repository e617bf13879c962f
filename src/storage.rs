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

use crate::jsonb::Jsonb;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use pgrx::{pg_sys, PgOid, Uuid};

/// One statement: its text and the types of its parameters.
pub struct Stmt {
    sql: &'static str,
    args: &'static [pg_sys::Oid],
}

thread_local! {
    /// Kept plans of the statements below, by the statement's address.
    static PLANS: RefCell<HashMap<usize, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
    /// Kept plans of statements built at run time (calls of the application's functions),
    /// by their text.
    static DYNAMIC_PLANS: RefCell<HashMap<String, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// Prepare `sql` (parameters of `arg_types`) and keep its plan for the backend's life.
fn prepare_kept(
    client: &SpiClient<'_>,
    sql: &str,
    arg_types: &[pg_sys::Oid],
) -> Rc<OwnedPreparedStatement> {
    let oids: Vec<PgOid> = arg_types.iter().map(|&o| PgOid::from(o)).collect();
    let prepared = client
        .prepare_mut(sql, &oids)
        .unwrap_or_else(|e| panic!("pg_apikey: preparing {sql}: {e}"))
        .keep();
    Rc::new(prepared)
}

/// Execute a kept plan with `args` and hand the result to `read`.
fn execute<'c, R>(
    client: &mut SpiClient<'c>,
    plan: &OwnedPreparedStatement,
    sql: &str,
    args: &[DatumWithOid<'_>],
    read: impl FnOnce(SpiTupleTable<'c>) -> R,
) -> R {
    let table = client
        .update(plan, None, args)
        .unwrap_or_else(|e| panic!("pg_apikey: {sql} failed: {e}"));
    read(table)
}

/// Execute `stmt` with `args` and hand the result to `read`, inside one SPI connection.
pub fn run<R>(
    stmt: &'static Stmt,
    args: &[DatumWithOid<'_>],
    read: impl for<'c> FnOnce(SpiTupleTable<'c>) -> R,
) -> R {
    let key = stmt as *const Stmt as usize;
    Spi::connect_mut(|client| {
        let plan = PLANS
            .with(|p| p.borrow().get(&key).cloned())
            .unwrap_or_else(|| {
                let plan = prepare_kept(client, stmt.sql, stmt.args);
                PLANS.with(|p| p.borrow_mut().insert(key, plan.clone()));
                plan
            });
        execute(client, &plan, stmt.sql, args, read)
    })
}

/// Like [`run`], for a statement built at run time: its plan is kept by its text.
fn run_dynamic<R>(
    sql: &str,
    arg_types: &[pg_sys::Oid],
    args: &[DatumWithOid<'_>],
    read: impl for<'c> FnOnce(SpiTupleTable<'c>) -> R,
) -> R {
    Spi::connect_mut(|client| {
        let plan = DYNAMIC_PLANS
            .with(|p| p.borrow().get(sql).cloned())
            .unwrap_or_else(|| {
                let plan = prepare_kept(client, sql, arg_types);
                DYNAMIC_PLANS.with(|p| p.borrow_mut().insert(sql.to_string(), plan.clone()));
                plan
            });
        execute(client, &plan, sql, args, read)
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

// ---------------------------------------------------------------- the application's functions

/// What the catalog says of a function named by a membership setting.
pub struct AppFunction {
    /// `schema.name`, each part quoted as needed.
    pub qualified: String,
    pub returns_expected: bool,
    pub pins_search_path: bool,
    pub owner: pg_sys::Oid,
    pub temporary: bool,
}

static APP_FUNCTION: Stmt = Stmt {
    sql: "SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname), p.prorettype = $2, \
                 coalesce((SELECT bool_or(c LIKE 'search_path=%') FROM unnest(p.proconfig) c), false), \
                 p.proowner, n.oid = pg_my_temp_schema() OR n.nspname LIKE 'pg\\_temp\\_%' \
          FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
          WHERE p.oid = to_regprocedure($1)",
    args: &[TEXT, pg_sys::OIDOID],
};

/// Look up `signature` (e.g. `app.member_roles(text,text)`); `None` when no such function.
pub fn app_function(signature: &str, returns: pg_sys::Oid) -> Option<AppFunction> {
    run(&APP_FUNCTION, &[signature.into(), returns.into()], |t| {
        t.into_iter().next().map(|r| AppFunction {
            qualified: col(&r, 1).unwrap(),
            returns_expected: col(&r, 2).unwrap(),
            pins_search_path: col(&r, 3).unwrap(),
            owner: col(&r, 4).unwrap(),
            temporary: col(&r, 5).unwrap(),
        })
    })
}

/// Call the application's `(org_id text) RETURNS boolean`.
pub fn call_org_exists(f: &AppFunction, org_id: &str) -> Option<bool> {
    let sql = format!("SELECT {}($1)", f.qualified);
    run_dynamic(&sql, &[TEXT], &[org_id.into()], |t| {
        t.into_iter().next().and_then(|r| col::<bool>(&r, 1))
    })
}

/// Call the application's `(org_id text, user_id text) RETURNS text[]`.
pub fn call_member_roles(f: &AppFunction, org_id: &str, user_id: &str) -> Vec<String> {
    let sql = format!("SELECT {}($1, $2)", f.qualified);
    run_dynamic(&sql, &[TEXT, TEXT], &[org_id.into(), user_id.into()], |t| {
        t.into_iter()
            .next()
            .and_then(|r| col::<Vec<Option<String>>>(&r, 1))
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .map(|role| role.trim().to_string())
            .filter(|role| !role.is_empty())
            .collect()
    })
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
             k.revoked_at, k.created_by_role, k.created_by_identity, k.updated_at, \
             k.rotated_from, k.replaced_by)::apikey.key_info"
    };
}

pub type KeyInfo = pgrx::composite_type!('static, "apikey.key_info");

/// A key's public fields with its owner, for deciding who may see it.
pub struct KeyRow {
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub revoked: bool,
    pub info: KeyInfo,
}

fn key_rows(t: SpiTupleTable<'_>) -> Vec<KeyRow> {
    t.into_iter()
        .map(|r| KeyRow {
            org_id: col(&r, 1),
            user_id: col(&r, 2),
            revoked: col(&r, 3).unwrap(),
            info: col::<KeyInfo>(&r, 4).expect("key_info is never NULL"),
        })
        .collect()
}

/// Everything `create_api_key` stores (and records in the audit trail).
pub struct NewKeyRow<'a> {
    pub digest: &'a [u8],
    pub prefix: &'a str,
    pub start: &'a str,
    pub org_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub expires_at: Option<TimestampWithTimeZone>,
    pub permissions: Option<Jsonb>,
    pub metadata: Option<Jsonb>,
    pub remaining: Option<i64>,
    pub refill_amount: Option<i64>,
    pub refill_interval: Option<Interval>,
    pub rate_limit_max: Option<i32>,
    pub rate_limit_window: Option<Interval>,
    pub created_by_role: &'a str,
    pub created_by_identity: Option<&'a str>,
}

// The key and its `key_created` audit row, in one statement.
static KEY_INSERT: Stmt = Stmt {
    sql: concat!(
        "WITH k AS (INSERT INTO apikey.keys (digest, prefix, start, org_id, user_id, name, \
             expires_at, permissions, metadata, remaining, refill_amount, refill_interval, \
             rate_limit_max, rate_limit_window, created_by_role, created_by_identity) \
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
          RETURNING *), \
         audit AS (INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details) \
          SELECT 'key_created', k.org_id, k.id, $15, $16, \
                 jsonb_build_object('key', to_jsonb(", key_info!(), ")) FROM k) \
         SELECT k.id, k.created_at FROM k"
    ),
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

// Refill due: refill_interval has passed since the last refill (or creation).
macro_rules! refill_due {
    () => {
        "(k.refill_interval IS NOT NULL \
          AND coalesce(k.last_refill_at, k.created_at) + k.refill_interval <= $2)"
    };
}
// A new rate window starts with this request: none yet, or the last one has ended.
macro_rules! window_over {
    () => {
        "(k.rate_window_reset_at IS NULL OR k.rate_window_reset_at <= $2)"
    };
}

// Admit one use of a limited key, atomically: refill if due, start a new rate window if
// the last one ended, count the request and spend one use, all in one UPDATE that only
// matches when both the rate limit and the quota allow it. Concurrent verifies of the
// same key queue on the row lock and re-evaluate against the row they then see, so the
// counts are exact. Nothing is written for a refused request.
static KEY_CONSUME: Stmt = Stmt {
    sql: concat!(
        "UPDATE apikey.keys k SET \
            remaining = CASE WHEN k.remaining IS NULL THEN NULL \
                             WHEN ",
        refill_due!(),
        " THEN k.refill_amount - 1 \
                             ELSE k.remaining - 1 END, \
            last_refill_at = CASE WHEN ",
        refill_due!(),
        " THEN $2 ELSE k.last_refill_at END, \
            rate_window_count = CASE WHEN k.rate_limit_max IS NULL THEN k.rate_window_count \
                                     WHEN ",
        window_over!(),
        " THEN 1 \
                                     ELSE k.rate_window_count + 1 END, \
            rate_window_reset_at = CASE WHEN k.rate_limit_max IS NULL THEN k.rate_window_reset_at \
                                        WHEN ",
        window_over!(),
        " THEN $2 + k.rate_limit_window \
                                        ELSE k.rate_window_reset_at END, \
            last_used_at = $2 \
         WHERE k.id = $1 AND k.revoked_at IS NULL \
           AND (k.rate_limit_max IS NULL OR ",
        window_over!(),
        " \
                OR k.rate_window_count < k.rate_limit_max) \
           AND (k.remaining IS NULL \
                OR CASE WHEN ",
        refill_due!(),
        " THEN k.refill_amount ELSE k.remaining END > 0) \
         RETURNING k.remaining"
    ),
    args: &[UUID, TIMESTAMPTZ],
};

/// `Some(remaining after this use)` when the use was admitted, `None` when refused.
pub fn key_consume(key_id: Uuid, now: TimestampWithTimeZone) -> Option<Option<i64>> {
    run(&KEY_CONSUME, &[key_id.into(), now.into()], |t| {
        t.into_iter().next().map(|r| col::<i64>(&r, 1))
    })
}

/// Why a limited key was refused just now.
pub enum Refusal {
    RateLimited {
        retry_after: Option<Interval>,
        remaining: Option<i64>,
    },
    UsageExceeded {
        retry_after: Option<Interval>,
    },
    /// Neither holds any more (another transaction changed the key meanwhile): try again.
    Neither,
    Gone,
}

static KEY_REFUSAL: Stmt = Stmt {
    sql: concat!(
        "SELECT k.rate_limit_max IS NOT NULL AND NOT ",
        window_over!(),
        " \
                AND k.rate_window_count >= k.rate_limit_max, \
                k.rate_window_reset_at - $2, \
                CASE WHEN ",
        refill_due!(),
        " THEN k.refill_amount ELSE k.remaining END, \
                coalesce(k.last_refill_at, k.created_at) + k.refill_interval - $2 \
         FROM apikey.keys k WHERE k.id = $1 AND k.revoked_at IS NULL"
    ),
    args: &[UUID, TIMESTAMPTZ],
};

pub fn key_refusal(key_id: Uuid, now: TimestampWithTimeZone) -> Refusal {
    run(&KEY_REFUSAL, &[key_id.into(), now.into()], |t| {
        let Some(r) = t.into_iter().next() else {
            return Refusal::Gone;
        };
        let remaining = col::<i64>(&r, 3);
        if col::<bool>(&r, 1).unwrap() {
            Refusal::RateLimited {
                retry_after: col(&r, 2),
                remaining,
            }
        } else if remaining.is_some_and(|n| n <= 0) {
            Refusal::UsageExceeded {
                retry_after: col(&r, 4),
            }
        } else {
            Refusal::Neither
        }
    })
}

static KEY_TOUCH: Stmt = Stmt {
    sql: "UPDATE apikey.keys k SET last_used_at = $2 \
          WHERE k.id = (SELECT l.id FROM apikey.keys l \
                        WHERE l.id = $1 AND (l.last_used_at IS NULL OR l.last_used_at <= $2 - $3) \
                        FOR UPDATE SKIP LOCKED)",
    args: &[UUID, TIMESTAMPTZ, INTERVAL],
};

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

static KEY_GET: Stmt = Stmt {
    sql: concat!(
        "SELECT k.org_id, k.user_id, k.revoked_at IS NOT NULL, ",
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
        "SELECT k.org_id, k.user_id, k.revoked_at IS NOT NULL, ",
        key_info!(),
        " FROM apikey.keys k WHERE k.org_id = $1 AND ($2::text IS NULL OR k.user_id = $2) \
          ORDER BY k.created_at, k.id"
    ),
    args: &[TEXT, TEXT],
};

static KEY_LIST_USER: Stmt = Stmt {
    sql: concat!(
        "SELECT k.org_id, k.user_id, k.revoked_at IS NOT NULL, ",
        key_info!(),
        " FROM apikey.keys k WHERE k.org_id IS NULL AND k.user_id = $1 ORDER BY k.created_at, k.id"
    ),
    args: &[TEXT],
};

static KEY_LIST_ALL: Stmt = Stmt {
    sql: concat!(
        "SELECT k.org_id, k.user_id, k.revoked_at IS NOT NULL, ",
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
         WHERE k.id = $1 RETURNING k.org_id, k.user_id, k.revoked_at IS NOT NULL, ",
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

/// Who performed a management action, for the audit trail.
pub struct Actor<'a> {
    pub role: &'a str,
    pub identity: Option<&'a str>,
}

static KEY_DELETE: Stmt = Stmt {
    sql: concat!(
        "WITH gone AS (DELETE FROM apikey.keys k WHERE k.id = $1 \
                       RETURNING k.id, k.org_id, ", key_info!(), " AS info) \
         INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details) \
         SELECT 'key_deleted', g.org_id, g.id, $2, $3, jsonb_build_object('key', to_jsonb(g.info)) \
         FROM gone g"
    ),
    args: &[UUID, TEXT, TEXT],
};

/// Delete a key and record it; whether there was one.
pub fn key_delete(key_id: Uuid, by: &Actor<'_>) -> bool {
    run(
        &KEY_DELETE,
        &[key_id.into(), by.role.into(), by.identity.into()],
        |t| t.len() > 0,
    )
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
    sql: concat!(
        "WITH gone AS (DELETE FROM apikey.keys k WHERE k.expires_at <= clock_timestamp() AND ( \
                         $1 OR (k.org_id IS NULL AND k.user_id = $2) OR k.org_id = ANY ($3)) \
                       RETURNING k.id, k.org_id, ", key_info!(), " AS info) \
         INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details) \
         SELECT 'key_deleted', g.org_id, g.id, $4, $5, \
                jsonb_build_object('reason', 'expired', 'key', to_jsonb(g.info)) \
         FROM gone g"
    ),
    args: &[BOOL, TEXT, TEXT_ARRAY, TEXT, TEXT],
};

/// Delete expired keys: all of them when `all`, else `user_id`'s own and those of `orgs`.
/// Each deletion is recorded in the audit trail.
pub fn delete_expired(all: bool, user_id: Option<&str>, orgs: Vec<String>, by: &Actor<'_>) -> i64 {
    let args = [
        all.into(),
        user_id.into(),
        orgs.into(),
        by.role.into(),
        by.identity.into(),
    ];
    run(&DELETE_EXPIRED, &args, |t| t.len() as i64)
}

// ---------------------------------------------------------------- update and rotate

/// A key's settings as stored, locked for the update or rotation that reads them.
pub struct KeySettings {
    pub prefix: String,
    pub name: Option<String>,
    pub expires_at: Option<TimestampWithTimeZone>,
    pub permissions: Option<Jsonb>,
    pub metadata: Option<Jsonb>,
    pub remaining: Option<i64>,
    pub refill_amount: Option<i64>,
    pub refill_interval: Option<Interval>,
    pub rate_limit_max: Option<i32>,
    pub rate_limit_window: Option<Interval>,
    pub enabled: bool,
    pub revoked: bool,
    pub replaced: bool,
    pub expired: bool,
}

static KEY_SETTINGS: Stmt = Stmt {
    sql: "SELECT k.prefix, k.name, k.expires_at, k.permissions, k.metadata, k.remaining, \
                 k.refill_amount, k.refill_interval, k.rate_limit_max, k.rate_limit_window, \
                 k.enabled, k.revoked_at IS NOT NULL, k.replaced_by IS NOT NULL, \
                 k.expires_at IS NOT NULL AND k.expires_at <= $2 \
          FROM apikey.keys k WHERE k.id = $1 FOR UPDATE",
    args: &[UUID, TIMESTAMPTZ],
};

pub fn key_settings_for_update(key_id: Uuid, now: TimestampWithTimeZone) -> Option<KeySettings> {
    run(&KEY_SETTINGS, &[key_id.into(), now.into()], |t| {
        t.into_iter().next().map(|r| KeySettings {
            prefix: col(&r, 1).unwrap(),
            name: col(&r, 2),
            expires_at: col(&r, 3),
            permissions: col(&r, 4),
            metadata: col(&r, 5),
            remaining: col(&r, 6),
            refill_amount: col(&r, 7),
            refill_interval: col(&r, 8),
            rate_limit_max: col(&r, 9),
            rate_limit_window: col(&r, 10),
            enabled: col(&r, 11).unwrap(),
            revoked: col(&r, 12).unwrap(),
            replaced: col(&r, 13).unwrap(),
            expired: col(&r, 14).unwrap(),
        })
    })
}

static KEY_UPDATE: Stmt = Stmt {
    sql: concat!(
        "UPDATE apikey.keys k SET name = $2, expires_at = $3, permissions = $4, metadata = $5, \
            remaining = $6, refill_amount = $7, refill_interval = $8, rate_limit_max = $9, \
            rate_limit_window = $10, enabled = $11, \
            last_refill_at = CASE WHEN $12 THEN $13 ELSE k.last_refill_at END, \
            updated_at = $13 \
         WHERE k.id = $1 RETURNING k.org_id, k.user_id, k.revoked_at IS NOT NULL, ",
        key_info!()
    ),
    args: &[
        UUID,
        TEXT,
        TIMESTAMPTZ,
        JSONB,
        JSONB,
        INT8,
        INT8,
        INTERVAL,
        INT4,
        INTERVAL,
        BOOL,
        BOOL,
        TIMESTAMPTZ,
    ],
};

/// Store a key's new settings. `refill_restart`: the refill period starts over now.
pub fn key_update(
    key_id: Uuid,
    s: KeySettings,
    refill_restart: bool,
    now: TimestampWithTimeZone,
) -> KeyRow {
    let args = [
        key_id.into(),
        s.name.into(),
        s.expires_at.into(),
        s.permissions.into(),
        s.metadata.into(),
        s.remaining.into(),
        s.refill_amount.into(),
        s.refill_interval.into(),
        s.rate_limit_max.into(),
        s.rate_limit_window.into(),
        s.enabled.into(),
        refill_restart.into(),
        now.into(),
    ];
    run(&KEY_UPDATE, &args, key_rows)
        .pop()
        .expect("the key was locked for this update")
}

/// The columns `create_api_key` and `rotate_api_key` return, but the key text itself.
pub struct CreatedKey {
    pub key_id: Uuid,
    pub prefix: String,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub expires_at: Option<TimestampWithTimeZone>,
    pub permissions: Option<Jsonb>,
    pub metadata: Option<Jsonb>,
    pub remaining: Option<i64>,
    pub refill_amount: Option<i64>,
    pub refill_interval: Option<Interval>,
    pub rate_limit_max: Option<i32>,
    pub rate_limit_window: Option<Interval>,
    pub created_at: TimestampWithTimeZone,
}

static KEY_ROTATE: Stmt = Stmt {
    sql: "INSERT INTO apikey.keys (digest, prefix, start, org_id, user_id, name, enabled, expires_at, \
             permissions, metadata, remaining, refill_amount, refill_interval, last_refill_at, \
             rate_limit_max, rate_limit_window, created_by_role, created_by_identity, rotated_from) \
          SELECT $2, k.prefix, $3, k.org_id, k.user_id, k.name, k.enabled, k.expires_at, \
             k.permissions, k.metadata, k.remaining, k.refill_amount, k.refill_interval, \
             k.last_refill_at, k.rate_limit_max, k.rate_limit_window, $4, $5, k.id \
          FROM apikey.keys k WHERE k.id = $1 \
          RETURNING id, prefix, org_id, user_id, name, expires_at, permissions, metadata, \
             remaining, refill_amount, refill_interval, rate_limit_max, rate_limit_window, created_at",
    args: &[UUID, BYTEA, TEXT, TEXT, TEXT],
};

static KEY_MARK_ROTATED: Stmt = Stmt {
    sql: "UPDATE apikey.keys k SET replaced_by = $2, updated_at = $3, \
             expires_at = CASE WHEN k.expires_at IS NULL OR k.expires_at > $3 + $4 \
                               THEN $3 + $4 ELSE k.expires_at END \
          WHERE k.id = $1 RETURNING k.expires_at",
    args: &[UUID, UUID, TIMESTAMPTZ, INTERVAL],
};

/// A new key with the old one's owner and settings, linked both ways; the old key
/// expires `grace` after `now`. Returns the new key's columns and the old key's expiry.
pub fn key_rotate(
    old: Uuid,
    digest: &[u8],
    start: &str,
    by: &Actor<'_>,
    now: TimestampWithTimeZone,
    grace: Interval,
) -> (CreatedKey, TimestampWithTimeZone) {
    let args = [
        old.into(),
        digest.into(),
        start.into(),
        by.role.into(),
        by.identity.into(),
    ];
    let created = run(&KEY_ROTATE, &args, |t| {
        let r = t
            .into_iter()
            .next()
            .expect("the old key was locked for this rotation");
        CreatedKey {
            key_id: col(&r, 1).unwrap(),
            prefix: col(&r, 2).unwrap(),
            org_id: col(&r, 3),
            user_id: col(&r, 4),
            name: col(&r, 5),
            expires_at: col(&r, 6),
            permissions: col(&r, 7),
            metadata: col(&r, 8),
            remaining: col(&r, 9),
            refill_amount: col(&r, 10),
            refill_interval: col(&r, 11),
            rate_limit_max: col(&r, 12),
            rate_limit_window: col(&r, 13),
            created_at: col(&r, 14).unwrap(),
        }
    });
    let old_expires = one::<TimestampWithTimeZone>(
        &KEY_MARK_ROTATED,
        &[old.into(), created.key_id.into(), now.into(), grace.into()],
    )
    .expect("the old key was locked for this rotation");
    (created, old_expires)
}

// ---------------------------------------------------------------- audit trail

static AUDIT: Stmt = Stmt {
    sql: "INSERT INTO apikey.audit_log (action, org_id, key_id, subject, actor_role, actor_identity, details) \
          VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, '{}'::jsonb))",
    args: &[TEXT, TEXT, UUID, TEXT, TEXT, TEXT, JSONB],
};

/// Record a management action that is not about one key's stored row.
pub fn audit(
    action: &str,
    org_id: Option<&str>,
    subject: Option<&str>,
    by: &Actor<'_>,
    details: serde_json::Value,
) {
    let args = [
        action.into(),
        org_id.into(),
        Option::<Uuid>::None.into(),
        subject.into(),
        by.role.into(),
        by.identity.into(),
        JsonB(details).into(),
    ];
    run(&AUDIT, &args, |_| ())
}

static AUDIT_KEY: Stmt = Stmt {
    sql: concat!(
        "INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details) \
         SELECT $1, k.org_id, k.id, $3, $4, \
                jsonb_build_object('key', to_jsonb(", key_info!(), ")) || coalesce($5, '{}'::jsonb) \
                || CASE WHEN $6::jsonb IS NULL AND $7::jsonb IS NULL THEN '{}'::jsonb \
                   ELSE jsonb_build_object('changes', coalesce($5 -> 'changes', '{}'::jsonb) \
                        || CASE WHEN $6::jsonb IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('permissions', $6) END \
                        || CASE WHEN $7::jsonb IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('metadata', $7) END) END \
         FROM apikey.keys k WHERE k.id = $2"
    ),
    args: &[TEXT, UUID, TEXT, TEXT, JSONB, JSONB, JSONB],
};

/// Record an action on a key, with the key's public fields as they are now (never its
/// secret or digest) and `details` merged in.
pub fn audit_key(action: &str, key_id: Uuid, by: &Actor<'_>, details: serde_json::Value) {
    audit_key_with(action, key_id, by, details, None, None)
}

/// Record an update of a key: `details` with the given `permissions` and `metadata`
/// added to its `changes` as the jsonb values they are.
pub fn audit_key_update(
    key_id: Uuid,
    by: &Actor<'_>,
    details: serde_json::Value,
    permissions: Option<Jsonb>,
    metadata: Option<Jsonb>,
) {
    audit_key_with("key_updated", key_id, by, details, permissions, metadata)
}

fn audit_key_with(
    action: &str,
    key_id: Uuid,
    by: &Actor<'_>,
    details: serde_json::Value,
    permissions: Option<Jsonb>,
    metadata: Option<Jsonb>,
) {
    let args = [
        action.into(),
        key_id.into(),
        by.role.into(),
        by.identity.into(),
        JsonB(details).into(),
        permissions.into(),
        metadata.into(),
    ];
    run(&AUDIT_KEY, &args, |_| ())
}

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

static AUDIT_LIST: Stmt = Stmt {
    sql: "SELECT a.id, a.at, a.action, a.org_id, a.key_id, a.subject, a.actor_role, \
                 a.actor_identity, a.details \
          FROM apikey.audit_log a \
          WHERE ($1::text IS NULL OR a.org_id = $1) AND ($2::timestamptz IS NULL OR a.at >= $2) \
          ORDER BY a.id",
    args: &[TEXT, TIMESTAMPTZ],
};

pub fn audit_list(org_id: Option<&str>, since: Option<TimestampWithTimeZone>) -> Vec<AuditRow> {
    run(&AUDIT_LIST, &[org_id.into(), since.into()], |t| {
        t.into_iter()
            .map(|r| {
                (
                    col(&r, 1).unwrap(),
                    col(&r, 2).unwrap(),
                    col(&r, 3).unwrap(),
                    col(&r, 4),
                    col(&r, 5),
                    col(&r, 6),
                    col(&r, 7).unwrap(),
                    col(&r, 8),
                    col(&r, 9).unwrap(),
                )
            })
            .collect()
    })
}
