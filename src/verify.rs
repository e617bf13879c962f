//! `apikey.verify_api_key`: the hot path, run on every request of every API that uses
//! pg_apikey, so built to sit on the cost of one index probe.
//!
//! - The key's shape and checksum are checked first; a made-up key never touches a table.
//! - The key is found by one probe of the unique digest index, read straight from the
//!   index and heap (no SQL, no planner, no executor start-up) under a fresh snapshot, as
//!   SPI would take for a volatile function.
//! - `permissions` and `metadata` go from the table row to the result row as the jsonb
//!   values they are, never through text or a JSON parser.
//! - The result is one row handed to PostgreSQL as a materialized set, with the row type
//!   worked out once per call site (cached in `fn_extra`).
//! - Only keys with a quota or rate limit write, through one atomic `UPDATE` (see
//!   [`crate::storage::key_consume`]); other keys write `last_used_at` at most once per
//!   `apikey.last_used_resolution`.
//!
//! The SQL declaration (`RETURNS TABLE`, `SET search_path`) is in `sql/verify.sql`.
use std::cell::Cell;
use std::ffi::CStr;

use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys::{self, Datum};
use pgrx::prelude::*;
use pgrx::{IntoDatum, Uuid};

use crate::caller::as_owner;
use crate::error;
use crate::jsonb::{Jsonb, Value};
use crate::keymat;
use crate::permissions;
use crate::settings;
use crate::storage;

/// The columns of `apikey.keys` that verify reads, in this order.
const COLUMNS: [&CStr; 12] = [
    c"id",
    c"org_id",
    c"user_id",
    c"name",
    c"permissions",
    c"metadata",
    c"remaining",
    c"expires_at",
    c"revoked_at",
    c"enabled",
    c"last_used_at",
    c"rate_limit_max",
];
const ID: usize = 0;
const ORG_ID: usize = 1;
const USER_ID: usize = 2;
const NAME: usize = 3;
const PERMISSIONS: usize = 4;
const METADATA: usize = 5;
const REMAINING: usize = 6;
const EXPIRES_AT: usize = 7;
const REVOKED_AT: usize = 8;
const ENABLED: usize = 9;
const LAST_USED_AT: usize = 10;
const RATE_LIMIT_MAX: usize = 11;

/// A found key's columns, copied out of the buffer (detoasted) into the current memory
/// context, so they outlive the scan.
pub struct KeyRead {
    values: [Datum; COLUMNS.len()],
    nulls: [bool; COLUMNS.len()],
}

impl KeyRead {
    fn get(&self, col: usize) -> Option<Datum> {
        (!self.nulls[col]).then_some(self.values[col])
    }

    fn key_id(&self) -> Uuid {
        // SAFETY: id is a NOT NULL uuid column.
        unsafe { Uuid::from_datum(self.values[ID], false) }.expect("id is never NULL")
    }
}

/// Where one of [`COLUMNS`] sits in the table's rows, and how its values are stored.
#[derive(Clone, Copy)]
struct Column {
    /// Zero-based attribute index.
    index: usize,
    byval: bool,
    /// `attlen`: -1 for varlena, else the fixed length in bytes.
    len: i16,
}

const NO_COLUMN: Column = Column {
    index: 0,
    byval: false,
    len: 0,
};

thread_local! {
    /// (relation oid, number of attributes, where COLUMNS sit): recomputed when the table
    /// is re-created or gains columns.
    static ATTNUMS: Cell<(pg_sys::Oid, i32, [Column; COLUMNS.len()])> =
        const { Cell::new((pg_sys::InvalidOid, 0, [NO_COLUMN; COLUMNS.len()])) };
}

unsafe fn attnums(rel: pg_sys::Relation) -> [Column; COLUMNS.len()] {
    let relid = (*rel).rd_id;
    let natts = (*(*rel).rd_att).natts;
    let (cached_rel, cached_natts, cached) = ATTNUMS.with(Cell::get);
    if cached_rel == relid && cached_natts == natts {
        return cached;
    }
    // pgrx's descriptor wrapper reads attributes the same way on every major (PostgreSQL
    // 18 moved them behind TupleDescAttr); it borrows the relcache's descriptor.
    let desc = pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att);
    let mut found = [NO_COLUMN; COLUMNS.len()];
    for (slot, name) in found.iter_mut().zip(COLUMNS) {
        let n = pg_sys::attnameAttNum(rel, name.as_ptr(), false);
        if n <= 0 {
            error::raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("apikey.keys has no column {}", name.to_string_lossy()),
                "Reinstall the extension: ALTER EXTENSION pg_apikey UPDATE, or DROP and CREATE it.",
            );
        }
        let index = n as usize - 1;
        let attr = desc
            .get(index)
            .expect("attribute number within the descriptor");
        *slot = Column {
            index,
            byval: attr.attbyval,
            len: attr.attlen,
        };
    }
    ATTNUMS.with(|c| c.set((relid, natts, found)));
    found
}

thread_local! {
    /// The oids of `apikey.keys` and its digest index, looked up once per backend and
    /// forgotten whenever PostgreSQL invalidates either relation (or everything).
    static RELATIONS: Cell<Option<(pg_sys::Oid, pg_sys::Oid)>> = const { Cell::new(None) };
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_relations(_arg: Datum, relid: pg_sys::Oid) {
    RELATIONS.with(|r| {
        if let Some((keys, index)) = r.get() {
            if relid == pg_sys::InvalidOid || relid == keys || relid == index {
                r.set(None);
            }
        }
    });
}

/// Called once from `_PG_init`.
pub fn register_invalidation() {
    // SAFETY: registers a callback that only clears a thread-local cell.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(forget_relations), Datum::from(0)) };
}

fn relations() -> (pg_sys::Oid, pg_sys::Oid) {
    if let Some(rels) = RELATIONS.with(Cell::get) {
        return rels;
    }
    // SAFETY: a syscache lookup by name.
    let nsp = unsafe { pg_sys::get_namespace_oid(c"apikey".as_ptr(), false) };
    let rels = (
        relation_oid(nsp, c"keys"),
        relation_oid(nsp, c"keys_digest_key"),
    );
    RELATIONS.with(|r| r.set(Some(rels)));
    rels
}

fn relation_oid(nsp: pg_sys::Oid, name: &CStr) -> pg_sys::Oid {
    // SAFETY: a syscache lookup by name.
    let oid = unsafe { pg_sys::get_relname_relid(name.as_ptr(), nsp) };
    if oid == pg_sys::InvalidOid {
        error::raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("apikey.{} does not exist", name.to_string_lossy()),
            "Run CREATE EXTENSION pg_apikey in this database.",
        );
    }
    oid
}

/// `apikey.keys` and its digest index, open, with an index scan.
struct KeyScan {
    rel: pg_sys::Relation,
    idx: pg_sys::Relation,
    scan: pg_sys::IndexScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
    cols: [Column; COLUMNS.len()],
}

impl KeyScan {
    /// Open with `mode` (kept to the end of the transaction, as the executor does).
    unsafe fn open(snapshot: pg_sys::Snapshot, mode: pg_sys::LOCKMODE) -> KeyScan {
        let (keys, digest_index) = relations();
        let rel = pg_sys::table_open(keys, mode);
        let idx = pg_sys::index_open(digest_index, mode);
        let cols = attnums(rel);
        #[cfg(not(feature = "pg18"))]
        let scan = pg_sys::index_beginscan(rel, idx, snapshot, 1, 0);
        #[cfg(feature = "pg18")]
        let scan = pg_sys::index_beginscan(rel, idx, snapshot, std::ptr::null_mut(), 1, 0);
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        KeyScan {
            rel,
            idx,
            scan,
            slot,
            cols,
        }
    }

    /// One probe for `digest` under `snapshot`; the columns are copied out (detoasted)
    /// into the current memory context before the next probe can move the slot.
    unsafe fn lookup(&mut self, digest: &[u8; 32], snapshot: pg_sys::Snapshot) -> Option<KeyRead> {
        let arg = Vec::from(digest.as_slice())
            .into_datum()
            .expect("bytea datum");
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut key,
            1,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::Oid::from(pg_sys::F_BYTEAEQ),
            arg,
        );
        (*self.scan).xs_snapshot = snapshot;
        pg_sys::index_rescan(self.scan, &mut key, 1, std::ptr::null_mut(), 0);
        if !pg_sys::index_getnext_slot(
            self.scan,
            pg_sys::ScanDirection::ForwardScanDirection,
            self.slot,
        ) {
            return None;
        }
        let slot = self.slot;
        pg_sys::slot_getallattrs(slot);
        let natts = (*(*self.rel).rd_att).natts as usize;
        let values = std::slice::from_raw_parts((*slot).tts_values, natts);
        let isnull = std::slice::from_raw_parts((*slot).tts_isnull, natts);
        let mut read = KeyRead {
            values: [Datum::from(0); COLUMNS.len()],
            nulls: [true; COLUMNS.len()],
        };
        for (i, col) in self.cols.iter().enumerate() {
            let a = col.index;
            read.nulls[i] = isnull[a];
            if isnull[a] {
                continue;
            }
            read.values[i] = if col.byval {
                values[a]
            } else if col.len == -1 {
                Datum::from(pg_sys::pg_detoast_datum_copy(values[a].cast_mut_ptr()))
            } else {
                // Fixed-length by reference (uuid): copy its bytes.
                let len = col.len as usize;
                let copy = pg_sys::palloc(len);
                std::ptr::copy_nonoverlapping(
                    values[a].cast_mut_ptr::<u8>(),
                    copy.cast::<u8>(),
                    len,
                );
                Datum::from(copy)
            };
        }
        Some(read)
    }

    unsafe fn close(&mut self) {
        pg_sys::ExecDropSingleTupleTableSlot(self.slot);
        pg_sys::index_endscan(self.scan);
        pg_sys::index_close(self.idx, pg_sys::NoLock as i32);
        pg_sys::table_close(self.rel, pg_sys::NoLock as i32);
    }
}

/// A fresh snapshot, as SPI would take for each statement of a volatile function, that
/// also sees this transaction's earlier writes.
unsafe fn fresh_snapshot() -> pg_sys::Snapshot {
    pg_sys::CommandCounterIncrement();
    pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot())
}

/// The lock verify takes on `apikey.keys` and its digest index, before it reads.
///
/// Where it may write (a use, a `last_used_at`), it takes ROW EXCLUSIVE at once, the lock
/// its `UPDATE` needs, so that it never asks for a stronger lock while holding a weaker
/// one: such an upgrade deadlocks with `REINDEX` or `CREATE INDEX`, which hold SHARE on
/// the table and wait for the index. Where it cannot write (a read-only transaction, a
/// hot standby, where ROW EXCLUSIVE cannot be taken at all), ACCESS SHARE.
fn lock_mode() -> pg_sys::LOCKMODE {
    if read_only() {
        pg_sys::AccessShareLock as pg_sys::LOCKMODE
    } else {
        pg_sys::RowExclusiveLock as pg_sys::LOCKMODE
    }
}

/// One probe with its own scan, opened and closed here. (Keeping the scan open across
/// the calls of one query, as the executor does, would save about a microsecond per
/// verify inside one statement, but not across statements, which is how APIs verify.)
fn probe_once(digest: &[u8; 32]) -> Option<KeyRead> {
    // SAFETY: everything opened here is closed here.
    unsafe {
        let snapshot = fresh_snapshot();
        let mut scan = KeyScan::open(snapshot, lock_mode());
        let found = scan.lookup(digest, snapshot);
        scan.close();
        pg_sys::UnregisterSnapshot(snapshot);
        found
    }
}

/// The outcome of one verify.
pub struct Outcome {
    pub code: &'static str,
    pub key: Option<KeyRead>,
    pub remaining: Option<i64>,
    pub retry_after: Option<Interval>,
}

impl Outcome {
    fn not_found() -> Outcome {
        Outcome {
            code: "KEY_NOT_FOUND",
            key: None,
            remaining: None,
            retry_after: None,
        }
    }
}

/// A `required_permissions` argument, checked once.
pub struct Required {
    datum: Datum,
    is_empty: bool,
}

impl Required {
    /// 22023 unless it has the documented shape. The shape is read from the jsonb value
    /// itself; the datum is used as it is.
    pub fn check(value: Jsonb) -> Required {
        let shape = value.value();
        permissions::require_valid("required_permissions", &shape);
        let is_empty = matches!(&shape, Value::Object(o) if o.is_empty());
        Required {
            datum: value.datum(),
            is_empty,
        }
    }

    /// Every listed action granted (AND): jsonb containment, for this shape.
    fn granted_by(&self, permissions: Option<Datum>) -> bool {
        match permissions {
            None => self.is_empty,
            // SAFETY: two jsonb datums.
            Some(granted) => unsafe {
                pgrx::direct_function_call::<bool>(
                    pg_sys::jsonb_contains,
                    &[Some(granted), Some(self.datum)],
                )
            }
            .unwrap_or(false),
        }
    }
}

/// How many times a refused limited key is re-tried when the reason for the refusal has
/// vanished by the time it is looked up (another transaction changed the key).
const CONSUME_ATTEMPTS: usize = 3;

/// The whole verify decision at instant `now` (a parameter so that tests can pin time).
pub fn decide(
    key: Option<&str>,
    required: Option<&Required>,
    now: TimestampWithTimeZone,
    probe: impl FnOnce(&[u8; 32]) -> Option<KeyRead>,
) -> Outcome {
    // Shape and checksum first: a mistyped or made-up key never reaches a table.
    let Some(digest) = key.and_then(keymat::check) else {
        return Outcome::not_found();
    };
    let Some(k) = probe(&digest) else {
        return Outcome::not_found();
    };
    if k.get(REVOKED_AT).is_some() {
        return Outcome::not_found();
    }
    let now_tz = pg_sys::TimestampTz::from(now);
    let timestamp = |col| k.get(col).map(|d| d.value() as pg_sys::TimestampTz);
    // SAFETY: by-value bool and int columns.
    let enabled = k.get(ENABLED).is_some_and(|d| d.value() != 0);
    let expired = timestamp(EXPIRES_AT).is_some_and(|t| t <= now_tz);
    let permitted = required.is_none_or(|r| r.granted_by(k.get(PERMISSIONS)));
    let limited = k.get(REMAINING).is_some() || k.get(RATE_LIMIT_MAX).is_some();
    let remaining = k.get(REMAINING).map(|d| d.value() as i64);

    let code = if !enabled {
        "KEY_DISABLED"
    } else if expired {
        "KEY_EXPIRED"
    } else if !permitted {
        "INSUFFICIENT_PERMISSIONS"
    } else if limited {
        return consume(k, now);
    } else {
        let resolution = settings::last_used_resolution_micros();
        let touch_due = timestamp(LAST_USED_AT).is_none_or(|t| t <= now_tz - resolution);
        if touch_due && !read_only() {
            relax_commit_for_usage();
            with_pinned_search_path(|| {
                as_owner(|| storage::key_touch(k.key_id(), now, Interval::from_micros(resolution)))
            });
        }
        "VALID"
    };
    Outcome {
        code,
        key: Some(k),
        remaining,
        retry_after: None,
    }
}

/// Spend one use of a key with a quota or rate limit, or say why not.
fn consume(k: KeyRead, now: TimestampWithTimeZone) -> Outcome {
    require_writable();
    relax_commit_for_usage();
    let key_id = k.key_id();
    with_pinned_search_path(|| {
        as_owner(|| {
            let mut outcome = Outcome {
                code: "USAGE_EXCEEDED",
                key: None,
                remaining: Some(0),
                retry_after: None,
            };
            for _ in 0..CONSUME_ATTEMPTS {
                if let Some(left) = storage::key_consume(key_id, now) {
                    (outcome.code, outcome.remaining) = ("VALID", left);
                    break;
                }
                match storage::key_refusal(key_id, now) {
                    storage::Refusal::RateLimited {
                        retry_after,
                        remaining,
                    } => {
                        (outcome.code, outcome.retry_after, outcome.remaining) =
                            ("RATE_LIMITED", retry_after, remaining);
                        break;
                    }
                    storage::Refusal::UsageExceeded { retry_after } => {
                        (outcome.code, outcome.retry_after) = ("USAGE_EXCEEDED", retry_after);
                        break;
                    }
                    storage::Refusal::Gone => return Outcome::not_found(),
                    // The key changed between the two statements: decide again. After the last
                    // attempt this reports usage exceeded, the conservative answer.
                    storage::Refusal::Neither => {}
                }
            }
            Outcome {
                key: Some(k),
                ..outcome
            }
        })
    })
}

/// Run `f`, which runs SQL, with `search_path = pg_catalog, pg_temp`, restored after.
///
/// Every other function pins its search_path in its declaration (`SET search_path`),
/// which costs a GUC save and restore on every call. Verify pins it here instead, around
/// the only SQL it ever runs (the usage writes), so that the plain path — one index probe
/// by oid, no name resolution at all — does not pay for it. On an error, the transaction
/// or subtransaction abort restores the setting, as it does for a declared one.
fn with_pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: a new GUC nest level, closed below.
    let level = unsafe { pg_sys::NewGUCNestLevel() };
    set_guc(
        c"search_path",
        c"pg_catalog, pg_temp",
        pg_sys::GucAction::GUC_ACTION_SAVE,
    );
    let result = f();
    // SAFETY: closes the level opened above.
    unsafe { pg_sys::AtEOXact_GUC(true, level) };
    result
}

fn read_only() -> bool {
    // SAFETY: reads backend globals.
    unsafe { pg_sys::XactReadOnly || pg_sys::RecoveryInProgress() }
}

/// Keys with a quota or rate limit are counted exactly, which needs a write.
fn require_writable() {
    if read_only() {
        error::raise(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "verifying a key with a quota or rate limit needs a read-write transaction",
            "Verify on the primary, outside a read-only transaction.",
        );
    }
}

/// With `apikey.usage_synchronous_commit = off`, let the single-statement transaction of
/// a verify that records usage commit without waiting for its WAL flush. Never inside an
/// explicit transaction block, whose other writes are the application's.
fn relax_commit_for_usage() {
    if settings::USAGE_SYNCHRONOUS_COMMIT.get() {
        return;
    }
    // SAFETY: a read of the transaction state.
    if unsafe { pg_sys::IsTransactionBlock() } {
        return;
    }
    // A LOCAL setting lasts to the end of the transaction.
    set_guc(
        c"synchronous_commit",
        c"off",
        pg_sys::GucAction::GUC_ACTION_LOCAL,
    );
}

/// Set a configuration parameter: `SAVE` until the current GUC nest level closes, `LOCAL`
/// until the transaction ends.
fn set_guc(name: &CStr, value: &CStr, action: pg_sys::GucAction::Type) {
    // SAFETY: both strings are valid for the call; an invalid value raises an ERROR.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
}

pub(crate) fn now_tz() -> TimestampWithTimeZone {
    // SAFETY: reads the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    TimestampWithTimeZone::try_from(now).expect("the current time is a valid timestamptz")
}

// ---------------------------------------------------------------- the C entry point

#[no_mangle]
pub extern "C" fn pg_finfo_verify_api_key_fast() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// The result row type, worked out once per call site and kept in `fn_extra` (in the
/// query's memory).
unsafe fn result_type(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::TupleDesc {
    let flinfo = (*fcinfo).flinfo;
    if (*flinfo).fn_extra.is_null() {
        let mut tupdesc: pg_sys::TupleDesc = std::ptr::null_mut();
        if pg_sys::get_call_result_type(fcinfo, std::ptr::null_mut(), &mut tupdesc)
            != pg_sys::TypeFuncClass::TYPEFUNC_COMPOSITE
        {
            error::raise(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                "verify_api_key must be declared to return a table",
                "Reinstall the extension.",
            );
        }
        let old = pg_sys::MemoryContextSwitchTo((*flinfo).fn_mcxt);
        (*flinfo).fn_extra = pg_sys::BlessTupleDesc(pg_sys::CreateTupleDescCopy(tupdesc)).cast();
        pg_sys::MemoryContextSwitchTo(old);
    }
    (*flinfo).fn_extra as pg_sys::TupleDesc
}

/// `apikey.verify_api_key(key text, required_permissions jsonb DEFAULT NULL)
/// RETURNS TABLE (valid, code, key_id, org_id, user_id, name, permissions, metadata,
/// remaining, expires_at, retry_after)`: exactly one row for any input.
///
/// # Safety
/// Called by PostgreSQL's function manager with a valid `fcinfo`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn verify_api_key_fast(fcinfo: pg_sys::FunctionCallInfo) -> Datum {
    let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
    if rsinfo.is_null()
        || (*rsinfo).type_ != pg_sys::NodeTag::T_ReturnSetInfo
        || (*rsinfo).allowedModes & pg_sys::SetFunctionReturnMode::SFRM_Materialize as i32 == 0
    {
        error::raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "verify_api_key returns a set; call it where a set is allowed",
            "SELECT * FROM apikey.verify_api_key($1)",
        );
    }
    let tupdesc = result_type(fcinfo);
    let key: Option<&str> = pgrx::fcinfo::pg_getarg(fcinfo, 0);
    // A malformed requirement is the application's bug: say so even for a bad key.
    let required: Option<Jsonb> = pgrx::fcinfo::pg_getarg(fcinfo, 1);
    let required = required.map(Required::check);
    let outcome = decide(key, required.as_ref(), now_tz(), probe_once);

    let mut values = [Datum::from(0); 11];
    let mut nulls = [true; 11];
    let mut set = |i: usize, d: Option<Datum>| {
        if let Some(d) = d {
            (values[i], nulls[i]) = (d, false);
        }
    };
    set(0, Some(Datum::from(outcome.code == "VALID")));
    set(1, outcome.code.into_datum());
    if let Some(k) = &outcome.key {
        for (out, col) in [
            (2, ID),
            (3, ORG_ID),
            (4, USER_ID),
            (5, NAME),
            (6, PERMISSIONS),
            (7, METADATA),
            (9, EXPIRES_AT),
        ] {
            set(out, k.get(col));
        }
    }
    set(8, outcome.remaining.into_datum());
    set(10, outcome.retry_after.into_datum());

    let old = pg_sys::MemoryContextSwitchTo((*(*rsinfo).econtext).ecxt_per_query_memory);
    let random =
        (*rsinfo).allowedModes & pg_sys::SetFunctionReturnMode::SFRM_Materialize_Random as i32 != 0;
    let store = pg_sys::tuplestore_begin_heap(random, false, pg_sys::work_mem);
    pg_sys::tuplestore_putvalues(store, tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
    (*rsinfo).returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
    (*rsinfo).setResult = store;
    // The executor frees a non-refcounted descriptor it is given: hand it a copy.
    (*rsinfo).setDesc = pg_sys::CreateTupleDescCopy(tupdesc);
    pg_sys::MemoryContextSwitchTo(old);
    Datum::from(0)
}

/// The row verify returns, decoded, for tests.
#[cfg(any(test, feature = "pg_test"))]
pub fn decide_for_test(
    key: &str,
    required: Option<&str>,
    now: TimestampWithTimeZone,
) -> (String, Option<i64>, Option<Interval>) {
    let required = required.map(|r| Required::check(crate::jsonb::parse(r)));
    let o = decide(Some(key), required.as_ref(), now, probe_once);
    (o.code.to_string(), o.remaining, o.retry_after)
}
