//! pg_apikey: API keys as a native part of PostgreSQL.
//!
//! The modules follow one concern each:
//! - [`backend`]: the backend's clock and transaction state, timestamp arithmetic, and safe
//!   wrappers of the catalog lookups and relcache invalidations: the one low-level module
//!   every other may import.
//! - [`key_settings`]: a key's settings, defined once (names, types, policy fields, merge).
//! - [`keymat`]: key material — format, CSPRNG secret, CRC32 checksum, SHA-256 digest.
//! - [`jsonb`]: jsonb values kept exactly (datums, never text), and their shapes.
//! - [`permissions`]: the shape of `permissions` JSON and the AND check.
//! - [`owner`]: the owner of keys and of shared limits ([`owner::OwnerKind`]: org or user).
//! - [`meter`]: what one call does to the quotas and rate limits that apply (pure rules),
//!   and how their state is shown ([`meter::report`]).
//! - [`rate_limits`]: the `rate_limits` list of named limits, checked.
//! - [`settings`]: the `apikey.*` configuration parameters (all SUSET).
//! - [`error`]: errors with the contract's SQLSTATEs, a `pg_apikey:` message and a hint.
//! - [`caller`]: who is calling (trusted or ordinary), and running as the extension's owner.
//! - [`authz`]: every "may this caller do this to that".
//! - [`storage`]: every SQL statement the extension runs, as cached prepared plans.
//! - [`membership`]: organizations, members and the role-to-action mapping.
//! - [`verify`]: `verify_api_key`, the hot path: one index probe, no SQL on the way.
//! - [`usage`]: usage analytics — counters in shared memory, written by a background worker.
//! - [`api`]: the other SQL-facing functions of the contract, each a plain `#[pg_extern]`.
//!
//! Unsafe code: every `unsafe` block says why it is sound in a `// SAFETY:` comment, and
//! every `unsafe fn` has a `# Safety` section (clippy's `undocumented_unsafe_blocks` and
//! `missing_safety_doc` are errors in the lint step); an unsafe operation inside an
//! `unsafe fn` needs its own block (`unsafe_op_in_unsafe_fn`, denied below).
#![deny(unsafe_op_in_unsafe_fn)]
use pgrx::prelude::*;

pub mod api;
pub mod authz;
pub mod backend;
pub mod caller;
pub mod error;
pub mod jsonb;
pub mod key_settings;
pub mod keymat;
pub mod membership;
pub mod meter;
pub mod owner;
pub mod permissions;
pub mod rate_limits;
pub mod settings;
pub mod storage;
pub mod usage;
pub mod verify;

::pgrx::pg_module_magic!(name, version);

// Tables, grants, the service role and the default role-to-action mapping: plain SQL
// that runs before any function is created.
extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
// verify_api_key: a hand-written C entry point (src/verify/entry.rs), declared in SQL.
extension_sql_file!(
    "../sql/verify.sql",
    name = "verify",
    requires = ["bootstrap"]
);
// COMMENT ON FUNCTION for every function, once they all exist.
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::init();
    usage::init();
    verify::register_invalidation();
}

#[cfg(any(test, feature = "pg_test"))]
#[path = "../pgrx-tests/mod.rs"]
mod pgrx_tests;

/// This module is required by `cargo pgrx test` invocations.
/// It must be visible at the root of your extension crate.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
