//! The C entry point of `apikey.verify_api_key` (declared in `sql/verify.sql`): the
//! arguments in, the result row out, as a one-row materialized set.
use pgrx::pg_sys::{self, Datum};
use pgrx::prelude::*;
use pgrx::IntoDatum;

use super::decide::{check_cost, decide, Required};
use super::scan::{self, now_tz};
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
unsafe fn result_type(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::TupleDesc {
    let flinfo = (*fcinfo).flinfo;
    if (*flinfo).fn_extra.is_null() {
        let mut tupdesc: pg_sys::TupleDesc = std::ptr::null_mut();
        if pg_sys::get_call_result_type(fcinfo, std::ptr::null_mut(), &mut tupdesc)
            != pg_sys::TypeFuncClass::TYPEFUNC_COMPOSITE
            || !(RESULT_COLUMNS - 1..=RESULT_COLUMNS).contains(&((*tupdesc).natts as usize))
        {
            error::raise(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                "verify_api_key must be declared to return its table of 11 (0.1.0) or 12 columns",
                "Reinstall the extension.",
            );
        }
        let old = pg_sys::MemoryContextSwitchTo((*flinfo).fn_mcxt);
        (*flinfo).fn_extra = pg_sys::BlessTupleDesc(pg_sys::CreateTupleDescCopy(tupdesc)).cast();
        pg_sys::MemoryContextSwitchTo(old);
    }
    (*flinfo).fn_extra as pg_sys::TupleDesc
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
    let cost = if (*fcinfo).nargs >= 3 {
        check_cost(pgrx::fcinfo::pg_getarg(fcinfo, 2))
    } else {
        1
    };
    let outcome = decide(key, required.as_ref(), cost, now_tz(), scan::probe);

    let natts = ((*tupdesc).natts as usize).min(RESULT_COLUMNS);
    let mut values = [Datum::from(0); RESULT_COLUMNS];
    let mut nulls = [true; RESULT_COLUMNS];
    let mut set = |i: usize, d: Option<Datum>| {
        if let (Some(d), true) = (d, i < natts) {
            (values[i], nulls[i]) = (d, false);
        }
    };
    set(0, Some(Datum::from(outcome.code == "VALID")));
    set(1, outcome.code.into_datum());
    if let Some(k) = &outcome.key {
        for (out, col) in [
            (2, scan::ID),
            (3, scan::ORG_ID),
            (4, scan::USER_ID),
            (5, scan::NAME),
            (6, scan::PERMISSIONS),
            (7, scan::METADATA),
            (9, scan::EXPIRES_AT),
        ] {
            set(out, k.datum(col));
        }
    }
    set(8, outcome.remaining.into_datum());
    set(10, outcome.retry_after.into_datum());
    set(11, outcome.rate_limits.map(pgrx::JsonB).into_datum());

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
    verify_api_key(fcinfo)
}
