//! The `apikey.*` configuration parameters.
//!
//! Every one is PGC_SUSET: only a superuser (or a role a superuser granted `SET` on the
//! parameter) can change it, by `postgresql.conf`, `ALTER SYSTEM`, `ALTER DATABASE/ROLE
//! … SET` or `SET`. PostgreSQL itself refuses an ordinary role's `SET`, refuses its
//! `ALTER ROLE … SET` of an unknown placeholder, and discards a placeholder value an
//! ordinary role set before this library was loaded. Each value is read where it is used,
//! so a change applies to the next call.
use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static SERVICE_ROLE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"apikey_service"));
pub static DEFAULT_PREFIX: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"ak_"));

pub static LAST_USED_RESOLUTION: GucSetting<i32> = GucSetting::<i32>::new(60);
pub static USAGE_SYNCHRONOUS_COMMIT: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static ACCEPT_IMPORTED_KEYS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static GATEWAY_ROLES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static IDENTITY_CLAIM: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"sub"));
pub static ORG_EXISTS_FUNCTION: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static MEMBER_ROLES_FUNCTION: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);

/// Usage analytics (`src/usage`): counting on or off (SUSET), and the background writer's
/// interval and retention (SIGHUP: the writer reads them; set in postgresql.conf or by
/// `ALTER SYSTEM` and a reload), and the size of the shared table (needs a restart).
pub static USAGE_ANALYTICS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static USAGE_FLUSH_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(10);
pub static USAGE_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(400 * 24 * 60);
pub static USAGE_MAX_ENTRIES: GucSetting<i32> = GucSetting::<i32>::new(10_000);

pub fn init() {
    GucRegistry::define_bool_guc(
        c"apikey.usage_analytics",
        c"Whether verify counts calls and cost per key, hour and code in shared memory.",
        c"Needs shared_preload_libraries = 'pg_apikey'. on: a background worker writes the counts to apikey.usage_hours, and also writes last_used_at, so a verify of a key without limits writes nothing. off: nothing is counted, and verify writes last_used_at itself.",
        &USAGE_ANALYTICS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"apikey.usage_flush_interval",
        c"How often the background worker writes the usage counts.",
        c"Seconds between writes of the counts in shared memory into apikey.usage_hours (and of last_used_at). A crash loses at most the counts of one interval.",
        &USAGE_FLUSH_INTERVAL,
        1,
        3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"apikey.usage_retention",
        c"How long written usage counts are kept.",
        c"Hourly rows of apikey.usage_hours older than this are deleted by the background worker when it next writes that database's counts.",
        &USAGE_RETENTION,
        60,
        100 * 365 * 24 * 60,
        GucContext::Sighup,
        GucFlags::UNIT_MIN,
    );
    // A PGC_POSTMASTER parameter can only be defined while shared_preload_libraries load
    // (PostgreSQL ends a session that defines one later): without preload it does not
    // exist, as the table it sizes does not.
    // SAFETY: a backend global, true only while shared_preload_libraries are loaded.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        GucRegistry::define_int_guc(
            c"apikey.usage_max_entries",
            c"How many (key, hour, code) counters shared memory holds.",
            c"Each takes 64 bytes (the table has twice as many slots). When they are all in use the worker is woken to write early, and new counters go to an OVERFLOW entry until it has. Needs a restart.",
            &USAGE_MAX_ENTRIES,
            100,
            1_000_000,
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
    GucRegistry::define_string_guc(
        c"apikey.service_role",
        c"Members of this role are trusted pg_apikey callers.",
        c"A superuser or a member of this role may create organization keys with no user, act for any user and organization, and set policy fields. Empty: only superusers are trusted.",
        &SERVICE_ROLE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"apikey.default_prefix",
        c"Prefix of API keys created without one.",
        c"1 to 32 characters of [A-Za-z0-9_-].",
        &DEFAULT_PREFIX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"apikey.last_used_resolution",
        c"Seconds between writes of a key's last_used_at.",
        c"A verify of a key without quota or rate limit writes last_used_at only when the stored value is at least this old, so most verifies write nothing. 0: every verify writes.",
        &LAST_USED_RESOLUTION,
        0,
        86_400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"apikey.usage_synchronous_commit",
        c"Whether a verify that records usage waits for its WAL flush (default on: exact and durable).",
        c"off: a verify that writes usage (quota, rate window, last_used_at) in a single-statement transaction commits asynchronously. A crash can then lose up to 3 x wal_writer_delay of recorded usage, so a key may be over-admitted by the verifies of that window. Never applies inside an explicit transaction block.",
        &USAGE_SYNCHRONOUS_COMMIT,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"apikey.accept_imported_keys",
        c"Whether verify accepts keys imported from another system by their original text.",
        c"While keys made by apikey.import_api_key are in use (not revoked or deleted), a key without a valid pg_apikey checksum is looked up by its SHA-256 digest. off: such keys are refused without a lookup, as when no imported keys exist.",
        &ACCEPT_IMPORTED_KEYS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"apikey.gateway_roles",
        c"Comma-separated roles whose callers are end users behind a gateway (PostgREST, Supabase).",
        c"For a caller whose current_user is (a member of) one of these roles, the identity is a claim in request.jwt.claims, not the role name. For any other role the claims are never read.",
        &GATEWAY_ROLES,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"apikey.identity_claim",
        c"The claim in request.jwt.claims that holds the user id, for gateway roles.",
        c"",
        &IDENTITY_CLAIM,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"apikey.org_exists_function",
        c"Schema-qualified function (org_id text) RETURNS boolean of the application's; empty: built-in tables.",
        c"Set together with apikey.member_roles_function. The function must be owned by a trusted role and pin its own search_path; it runs with the caller's rights (make it SECURITY DEFINER to read protected tables).",
        &ORG_EXISTS_FUNCTION,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"apikey.member_roles_function",
        c"Schema-qualified function (org_id text, user_id text) RETURNS text[] of the application's; empty: built-in tables.",
        c"Returns the member's roles; NULL or empty means not a member. Same rules as apikey.org_exists_function.",
        &MEMBER_ROLES_FUNCTION,
        GucContext::Suset,
        GucFlags::default(),
    );
}

fn read(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting
        .get()
        .map(|c| c.to_string_lossy().trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The service role's name, or `None` when the setting is empty.
pub fn service_role() -> Option<String> {
    read(&SERVICE_ROLE)
}

pub fn default_prefix() -> Option<String> {
    read(&DEFAULT_PREFIX)
}

/// The gateway roles' names, as listed (trimmed, empty entries dropped).
pub fn gateway_roles() -> Vec<String> {
    read(&GATEWAY_ROLES)
        .map(|s| {
            s.split(',')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

pub fn identity_claim() -> String {
    read(&IDENTITY_CLAIM).unwrap_or_else(|| "sub".into())
}

/// Where organizations and memberships come from.
pub enum MembershipSource {
    BuiltIn,
    Functions {
        org_exists: String,
        member_roles: String,
    },
    /// Only one of the two functions is set.
    HalfSet,
}

pub fn membership_source() -> MembershipSource {
    match (read(&ORG_EXISTS_FUNCTION), read(&MEMBER_ROLES_FUNCTION)) {
        (None, None) => MembershipSource::BuiltIn,
        (Some(org_exists), Some(member_roles)) => MembershipSource::Functions {
            org_exists,
            member_roles,
        },
        _ => MembershipSource::HalfSet,
    }
}

/// How stale `last_used_at` may get before a verify writes it again, in microseconds.
pub fn last_used_resolution_micros() -> i64 {
    i64::from(LAST_USED_RESOLUTION.get()) * 1_000_000
}

// ---------------------------------------------------------------- setting PostgreSQL's own

/// Run `f`, which runs SQL, with `search_path = pg_catalog, pg_temp`, restored after.
///
/// Every SQL function of pg_apikey pins its search_path in its declaration
/// (`SET search_path`), which costs a GUC save and restore on every call — except verify:
/// its plain path is one index probe by oid that resolves no names at all, so it pins
/// search_path here, once, around the only SQL it ever runs (the usage writes), instead
/// of paying for it on every call. On an error, the transaction or subtransaction abort
/// restores the setting, as it does for a declared one.
pub fn with_pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
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

/// Set a PostgreSQL parameter for the rest of the current transaction (`SET LOCAL`).
pub fn set_local(name: &CStr, value: &CStr) {
    set_guc(name, value, pg_sys::GucAction::GUC_ACTION_LOCAL);
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
