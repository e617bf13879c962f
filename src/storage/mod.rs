//! Every SQL statement the extension runs: the statements are SQL files in
//! `sql/queries/` (a DBA reads them as SQL), each loaded with `include_str!` beside the
//! function that runs it, by concern: [`orgs`] organizations, members, roles and the
//! application's membership functions; [`keys`] keys, their use and their lifecycle;
//! [`audit`] the audit trail; [`metering`] the quotas and rate limits verify spends,
//! a key's and its owner's. Columns are read by name.
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

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiHeapTupleData, SpiTupleTable};
use pgrx::{pg_sys, PgOid};

mod audit;
pub mod exposed;
mod keys;
pub mod metering;
mod orgs;
pub mod usage;

pub use audit::*;
pub use keys::*;
pub use orgs::*;

/// A statement file of `sql/queries/` with the types of its parameters, listed or named
/// (`stmt!("file.sql", ARGS)` for a constant array built by
/// [`crate::key_settings::with_settings`]).
/// `stmt!(locked "file.sql", [...])`: the file's SELECT with `FOR NO KEY UPDATE` appended,
/// locking the rows it reads; `stmt!(skip_locked …)`: with `FOR NO KEY UPDATE SKIP
/// LOCKED`, locking those it can without waiting and leaving out the others.
macro_rules! stmt {
    ($file:literal, [$($arg:expr),* $(,)?]) => {
        $crate::storage::Stmt {
            sql: include_str!(concat!("../../sql/queries/", $file)),
            args: &[$($arg),*],
        }
    };
    ($file:literal, $args:ident) => {
        $crate::storage::Stmt {
            sql: include_str!(concat!("../../sql/queries/", $file)),
            args: &$args,
        }
    };
    (locked $file:literal, [$($arg:expr),* $(,)?]) => {
        $crate::storage::Stmt {
            sql: concat!(include_str!(concat!("../../sql/queries/", $file)), "   FOR NO KEY UPDATE\n"),
            args: &[$($arg),*],
        }
    };
    (skip_locked $file:literal, [$($arg:expr),* $(,)?]) => {
        $crate::storage::Stmt {
            sql: concat!(include_str!(concat!("../../sql/queries/", $file)), "   FOR NO KEY UPDATE SKIP LOCKED\n"),
            args: &[$($arg),*],
        }
    };
}
pub(crate) use stmt;

/// One statement: its text and the types of its parameters.
pub struct Stmt {
    pub sql: &'static str,
    pub args: &'static [pg_sys::Oid],
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
    client: &SpiClient<'c>,
    plan: &OwnedPreparedStatement,
    sql: &str,
    args: &[DatumWithOid<'_>],
    read: impl FnOnce(SpiTupleTable<'c>) -> R,
) -> R {
    // `select`, for writes too: every plan is prepared with `prepare_mut`, so SPI runs it
    // read-write (a fresh snapshot per statement, as for a volatile function). pgrx's
    // `update` would also ask for a transaction id first — which a read-only transaction
    // does not need and a hot standby cannot give (XX000) — while a statement that writes
    // gets one by writing.
    let table = client
        .select(plan, None, args)
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
pub(crate) fn run_dynamic<R>(
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

/// Every row of the result, each read by `read`.
pub fn rows<T>(
    stmt: &'static Stmt,
    args: &[DatumWithOid<'_>],
    read: impl Fn(&SpiHeapTupleData<'_>) -> T,
) -> Vec<T> {
    run(stmt, args, |t| t.into_iter().map(|r| read(&r)).collect())
}

/// The first row of the result, if any, read by `read`.
pub fn first<T>(
    stmt: &'static Stmt,
    args: &[DatumWithOid<'_>],
    read: impl FnOnce(&SpiHeapTupleData<'_>) -> T,
) -> Option<T> {
    run(stmt, args, |t| t.into_iter().next().map(|r| read(&r)))
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

/// Whether the statement answers true (no row, or NULL: false).
fn holds(stmt: &'static Stmt, args: &[DatumWithOid<'_>]) -> bool {
    one::<bool>(stmt, args).unwrap_or(false)
}

static EXTENSION_VERSION: Stmt = stmt!("extension_version.sql", []);

/// The version of pg_apikey installed in this database, if any (a catalog every role
/// reads: no need to run as the owner).
pub fn extension_version() -> Option<String> {
    one(&EXTENSION_VERSION, &[])
}

/// The value of column `name` of `row` (NULL: `None`).
pub fn col<T: FromDatum + IntoDatum>(row: &SpiHeapTupleData<'_>, name: &str) -> Option<T> {
    row.get_by_name::<T, _>(name)
        .unwrap_or_else(|e| panic!("pg_apikey: reading column {name}: {e}"))
}

impl crate::key_settings::Columns for SpiHeapTupleData<'_> {
    fn column<T: FromDatum + IntoDatum>(&self, name: &str) -> Option<T> {
        col(self, name)
    }
}

/// Like [`col`], for a column that is never NULL.
pub fn req<T: FromDatum + IntoDatum>(row: &SpiHeapTupleData<'_>, name: &str) -> T {
    col(row, name).unwrap_or_else(|| panic!("pg_apikey: column {name} is NULL"))
}

/// The types of statement parameters, by their SQL names.
pub use pg_sys::{
    BOOLARRAYOID as BOOL_ARRAY, BOOLOID as BOOL, BYTEAOID as BYTEA, INT4OID as INT4,
    INT8ARRAYOID as INT8_ARRAY, INT8OID as INT8, INTERVALOID as INTERVAL,
    JSONBARRAYOID as JSONB_ARRAY, JSONBOID as JSONB, OIDOID as OID, TEXTARRAYOID as TEXT_ARRAY,
    TEXTOID as TEXT, TIMESTAMPTZARRAYOID as TIMESTAMPTZ_ARRAY, TIMESTAMPTZOID as TIMESTAMPTZ,
    UUIDARRAYOID as UUID_ARRAY, UUIDOID as UUID,
};

/// Who performed a management action, for the audit trail.
pub struct Actor<'a> {
    pub role: &'a str,
    pub identity: Option<&'a str>,
}

impl<'a> Actor<'a> {
    /// The role and the identity, the two parameters that record who acted.
    pub fn args(&self) -> [DatumWithOid<'a>; 2] {
        [self.role.into(), self.identity.into()]
    }
}
