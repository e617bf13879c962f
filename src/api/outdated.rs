//! The C symbols of 0.2.0's `create_api_key`, `update_api_key`, `import_api_key` and
//! `set_owner_limits`. 0.3.0 gave each a new argument (`refill_anchor`), so the new
//! functions have new symbols (`…_030_wrapper`); a database whose `ALTER EXTENSION pg_apikey
//! UPDATE` has not run yet still declares the old arguments for these. Calling one there
//! raises 55000 with the statement to run, as every management function does before the
//! update — never an error about an argument the old declaration does not pass.
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::caller::Caller;
use crate::error;

const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };

/// 55000: the database's pg_apikey is older than the library (or, should its schema be
/// current, the function's declaration is).
fn outdated() -> pg_sys::Datum {
    Caller::current(); // raises 55000 while the schema is older than the library
    error::not_ready(
        "this function's declaration is older than the pg_apikey library",
        "Run ALTER EXTENSION pg_apikey UPDATE.",
    )
}

#[no_mangle]
pub extern "C" fn pg_finfo_create_api_key_wrapper() -> &'static pg_sys::Pg_finfo_record {
    &V1
}

/// 0.2.0's `create_api_key`: see the module.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn create_api_key_wrapper(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    outdated()
}

#[no_mangle]
pub extern "C" fn pg_finfo_update_api_key_wrapper() -> &'static pg_sys::Pg_finfo_record {
    &V1
}

/// 0.2.0's `update_api_key`: see the module.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn update_api_key_wrapper(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    outdated()
}

#[no_mangle]
pub extern "C" fn pg_finfo_import_api_key_wrapper() -> &'static pg_sys::Pg_finfo_record {
    &V1
}

/// 0.2.0's `import_api_key`: see the module.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn import_api_key_wrapper(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    outdated()
}

#[no_mangle]
pub extern "C" fn pg_finfo_set_owner_limits_wrapper() -> &'static pg_sys::Pg_finfo_record {
    &V1
}

/// 0.2.0's `set_owner_limits`: see the module.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn set_owner_limits_wrapper(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    outdated()
}
