//! Errors with the contract's SQLSTATEs. Every message begins with `pg_apikey:` and every
//! error carries a hint that says what to do instead.
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// Raise an ERROR; never returns.
#[track_caller]
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, hint: impl Into<String>) -> ! {
    ErrorReport::new(code, format!("pg_apikey: {}", message.into()), "pg_apikey")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// 42501: the caller is not allowed.
#[track_caller]
pub fn denied(message: impl Into<String>, hint: impl Into<String>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        message,
        hint,
    )
}

/// 22023: a bad argument.
#[track_caller]
pub fn bad_arg(message: impl Into<String>, hint: impl Into<String>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        message,
        hint,
    )
}

/// 55000: the call is ruled out by the state of things — the configuration (the
/// application's membership source), the extension's install, or the key (revoked,
/// rotated, expired).
#[track_caller]
pub fn not_ready(message: impl Into<String>, hint: impl Into<String>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        message,
        hint,
    )
}

/// P0002: an unknown organization or key (or one the caller may not see).
#[track_caller]
pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> ! {
    raise(PgSqlErrorCode::ERRCODE_NO_DATA_FOUND, message, hint)
}

/// The answer for a key id the caller may not see: the same as for one that does not exist.
#[track_caller]
pub fn key_not_found() -> ! {
    not_found(
        "API key not found",
        "Check the key id; a key you may not read is reported as not found.",
    )
}
