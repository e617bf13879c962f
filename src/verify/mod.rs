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
//! - Only calls that a quota or rate limit counts write — the key's limits and its owner's,
//!   locked key first, decided together by [`crate::meter::decide`], written back when
//!   admitted ([`metered`]); other keys write `last_used_at` at most once per
//!   `apikey.last_used_resolution`, and never wait for it.
//! - A key without pg_apikey's checksum is looked up by digest only while imported keys
//!   are in use (a flag per backend, see [`facts`]).
//!
//! The files: [`entry`], the C entry point and its result row; [`probe`], the index probe
//! (every unsafe call that reads a key, released on drop); [`facts`], what each backend
//! keeps (owners with limits, imported keys in use) and its invalidation; [`decide`], the
//! decision, safe Rust on typed values; [`metered`], a call that limits count (read →
//! decide → record). The SQL declaration is in `sql/verify.sql`.
mod decide;
mod entry;
mod facts;
mod metered;
mod probe;

#[cfg(any(test, feature = "pg_test"))]
pub use decide::decide_for_test;
#[cfg(any(test, feature = "pg_test"))]
pub use facts::{imported_keys_exist as imported_keys_in_use, owner_may_have_limits};
#[cfg(any(test, feature = "pg_test"))]
pub use probe::layout_is_known;

/// Called once from `_PG_init`: forget what each backend keeps when PostgreSQL
/// invalidates the relations it depends on.
pub fn register_invalidation() {
    probe::register_invalidation();
    facts::register_invalidation();
}
