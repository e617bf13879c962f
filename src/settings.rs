//! The `apikey.*` configuration parameters.
//!
//! Every one is PGC_SUSET: only a superuser (or a role a superuser granted `SET` on the
//! parameter) can change it, by `postgresql.conf`, `ALTER SYSTEM`, `ALTER DATABASE/ROLE
//! … SET` or `SET`. PostgreSQL itself refuses an ordinary role's `SET`, refuses its
//! `ALTER ROLE … SET` of an unknown placeholder, and discards a placeholder value an
//! ordinary role set before this library was loaded. Each value is read where it is used,
//! so a change applies to the next call.
use std::ffi::CString;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static SERVICE_ROLE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"apikey_service"));
pub static DEFAULT_PREFIX: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"ak_"));

pub static LAST_USED_RESOLUTION: GucSetting<i32> = GucSetting::<i32>::new(60);

pub fn init() {
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

/// How stale `last_used_at` may get before a verify writes it again.
pub fn last_used_resolution() -> pgrx::datum::Interval {
    pgrx::datum::Interval::from_micros(i64::from(LAST_USED_RESOLUTION.get()) * 1_000_000)
}
