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

/// 55P03: a verify's wait for the counts of `key` (its row, or its owner's) that another
/// transaction holds was ended by `lock_timeout`; `detail` is PostgreSQL's own message.
#[track_caller]
pub fn lock_wait_ended(key: impl std::fmt::Display, detail: &str) -> ! {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
        format!(
            "pg_apikey: verify of key {key} waited lock_timeout for its usage counts, which another transaction holds"
        ),
        "pg_apikey",
    )
    .set_detail(format!(
        "{detail}. A verify that counts (a quota, a rate limit, an owner's limits) holds the \
         counts of its key and owner until its transaction ends."
    ))
    .set_hint(
        "Verify in autocommit (its own transaction), or end the transaction right after the \
         verify: a session \"idle in transaction\" in pg_stat_activity that verified this key, \
         or another key of its owner, is what this verify waited for.",
    )
    .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}
