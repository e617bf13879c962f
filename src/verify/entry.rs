//! The C entry point of `apikey.verify_api_key` (declared in `sql/verify.sql`): the
//! arguments in, the result row out, as a one-row materialized set.
use pgrx::pg_sys::{self, Datum};
use pgrx::prelude::*;
use pgrx::{IntoDatum, PgMemoryContexts};

use super::decide::{check_cost, decide, Required};
use super::probe::{self, probe};
use crate::backend::now_tz;
use crate::error;
use crate::jsonb::Jsonb;

/// The columns of verify's row in 0.2.0 (0.1.0 had the first 11).
const RESULT_COLUMNS: usize = 12;

#[no_mangle]
pub extern "C" fn pg_finfo_verify_api_key() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// The result row type, worked out once per call site and kept in `fn_extra` (in the
/// query's memory).
///
/// # Safety
/// `fcinfo` is the valid call info PostgreSQL passed to [`verify_api_key`].
unsafe fn result_type(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::TupleDesc {
    // SAFETY: fcinfo and its flinfo are valid for the call (the caller's contract).
    let flinfo = unsafe { &mut *(*fcinfo).flinfo };
    if flinfo.fn_extra.is_null() {
        let mut tupdesc: pg_sys::TupleDesc = std::ptr::null_mut();
        // SAFETY: get_call_result_type reads fcinfo and sets tupdesc to a descriptor that
        // lives at least as long as the call (checked for null by the class it returns).
        let class =
            unsafe { pg_sys::get_call_result_type(fcinfo, std::ptr::null_mut(), &mut tupdesc) };
        if class != pg_sys::TypeFuncClass::TYPEFUNC_COMPOSITE
            // SAFETY: a composite result type comes with a valid descriptor.
            || !(RESULT_COLUMNS - 1..=RESULT_COLUMNS).contains(&(unsafe { (*tupdesc).natts } as usize))
        {
            error::raise(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                "verify_api_key must be declared to return its table of 11 (0.1.0) or 12 columns",
                "Reinstall the extension.",
            );
        }
        // The copy lives in fn_mcxt, as long as the call site's FmgrInfo.
        // SAFETY: fn_mcxt is the valid memory context of this FmgrInfo; tupdesc is valid.
        flinfo.fn_extra = unsafe {
            PgMemoryContexts::For(flinfo.fn_mcxt)
                .switch_to(|_| pg_sys::BlessTupleDesc(pg_sys::CreateTupleDescCopy(tupdesc)).cast())
        };
    }
    flinfo.fn_extra as pg_sys::TupleDesc
}

/// `apikey.verify_api_key(key text, required_permissions jsonb DEFAULT NULL,
/// cost integer DEFAULT 1) RETURNS TABLE (valid, code, key_id, org_id, user_id, name,
/// permissions, metadata, remaining, expires_at, retry_after, rate_limits)`: exactly one
/// row for any input.
///
/// It also serves the 0.1.0 declaration (two arguments, no `rate_limits` column) until
/// `ALTER EXTENSION pg_apikey UPDATE` runs: a missing `cost` is 1, and the row has the
/// columns the declaration has.
///
/// # Safety
/// Called by PostgreSQL's function manager with a valid `fcinfo`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn verify_api_key(fcinfo: pg_sys::FunctionCallInfo) -> Datum {
    // SAFETY: PostgreSQL passes a valid fcinfo (this function's contract).
    unsafe { verify(fcinfo) }
}

/// The body of [`verify_api_key`] and [`verify_api_key_fast`]: not itself `#[pg_guard]`,
/// so that each entry point has exactly one guard between PostgreSQL and Rust.
///
/// # Safety
/// `fcinfo` is the valid call info PostgreSQL passed to the entry point.
unsafe fn verify(fcinfo: pg_sys::FunctionCallInfo) -> Datum {
    // SAFETY: fcinfo is valid (the caller's contract); resultinfo is null or a node.
    let rsinfo = unsafe { (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo };
    // SAFETY: a non-null resultinfo is a node; its tag says whether it is a ReturnSetInfo
    // before any other field is read.
    let materialize = !rsinfo.is_null()
        && unsafe {
            (*rsinfo).type_ == pg_sys::NodeTag::T_ReturnSetInfo
                && (*rsinfo).allowedModes & pg_sys::SetFunctionReturnMode::SFRM_Materialize as i32
                    != 0
        };
    if !materialize {
        error::raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "verify_api_key returns a set; call it where a set is allowed",
            "SELECT * FROM apikey.verify_api_key($1)",
        );
    }
    // SAFETY: checked above: rsinfo is a ReturnSetInfo for this call.
    let rsinfo = unsafe { &mut *rsinfo };
    // SAFETY: fcinfo is valid.
    let tupdesc = unsafe { result_type(fcinfo) };
    // SAFETY: the arguments are declared text, jsonb and integer, in this order; nargs
    // says whether the third exists (0.1.0's declaration has two).
    let (key, required, cost): (Option<&str>, Option<Jsonb>, Option<Option<i32>>) = unsafe {
        (
            pgrx::fcinfo::pg_getarg(fcinfo, 0),
            pgrx::fcinfo::pg_getarg(fcinfo, 1),
            ((*fcinfo).nargs >= 3).then(|| pgrx::fcinfo::pg_getarg(fcinfo, 2)),
        )
    };
    // A malformed requirement is the application's bug: say so even for a bad key.
    let required = required.map(Required::check);
    let cost = cost.map_or(1, check_cost);
    let now = now_tz();
    let outcome = decide(key, required.as_ref(), cost, now, probe);
    // Usage analytics: counted in shared memory (nothing when not preloaded or off).
    crate::usage::count(
        outcome.key.as_ref().map(|k| k.id()),
        outcome.code.index(),
        if outcome.code.is_valid() { cost } else { 0 },
        crate::backend::micros(now),
    );

    // SAFETY: a blessed descriptor kept in fn_extra.
    let natts = (unsafe { (*tupdesc).natts } as usize).min(RESULT_COLUMNS);
    let mut values = [Datum::from(0); RESULT_COLUMNS];
    let mut nulls = [true; RESULT_COLUMNS];
    let mut set = |i: usize, d: Option<Datum>| {
        if let (Some(d), true) = (d, i < natts) {
            (values[i], nulls[i]) = (d, false);
        }
    };
    set(0, Some(Datum::from(outcome.code.is_valid())));
    set(1, outcome.code.as_str().into_datum());
    if let Some(k) = &outcome.key {
        for (out, col) in [
            (2, probe::ID),
            (3, probe::ORG_ID),
            (4, probe::USER_ID),
            (5, probe::NAME),
            (6, probe::PERMISSIONS),
            (7, probe::METADATA),
            (9, probe::EXPIRES_AT),
        ] {
            set(out, k.datum(col));
        }
    }
    set(8, outcome.remaining.into_datum());
    set(10, outcome.retry_after.into_datum());
    set(11, outcome.rate_limits.map(pgrx::JsonB).into_datum());

    let random =
        rsinfo.allowedModes & pg_sys::SetFunctionReturnMode::SFRM_Materialize_Random as i32 != 0;
    // The tuplestore and the descriptor it is read with live in the query's memory.
    // SAFETY: econtext of a ReturnSetInfo is valid for the call; the values and nulls
    // arrays have one entry per column of tupdesc (natts ≤ RESULT_COLUMNS); the executor
    // frees a non-refcounted descriptor it is given, so it gets a copy.
    let (store, desc) = unsafe {
        PgMemoryContexts::For((*rsinfo.econtext).ecxt_per_query_memory).switch_to(|_| {
            let store = pg_sys::tuplestore_begin_heap(random, false, pg_sys::work_mem);
            pg_sys::tuplestore_putvalues(store, tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
            (store, pg_sys::CreateTupleDescCopy(tupdesc))
        })
    };
    rsinfo.returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
    rsinfo.setResult = store;
    rsinfo.setDesc = desc;
    Datum::from(0)
}

/// The symbol the 0.1.0 declaration of `verify_api_key` names. A database still at 0.1.0
/// keeps verifying with this library until `ALTER EXTENSION pg_apikey UPDATE` points the
/// function at [`verify_api_key`] (tests/upgrade checks both). Remove it with the last
/// release that updates from 0.1.0.
#[no_mangle]
pub extern "C" fn pg_finfo_verify_api_key_fast() -> &'static pg_sys::Pg_finfo_record {
    pg_finfo_verify_api_key()
}

/// See [`pg_finfo_verify_api_key_fast`].
///
/// # Safety
/// As [`verify_api_key`].
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn verify_api_key_fast(fcinfo: pg_sys::FunctionCallInfo) -> Datum {
    // SAFETY: PostgreSQL passes a valid fcinfo (this function's contract).
    unsafe { verify(fcinfo) }
}
