//! `#[pg_test]`s: the inside of the extension, run in a real PostgreSQL as a superuser.
//! Multi-role behaviour over real connections lives in `tests/integration`, and the
//! documented SQL behaviour in `tests/pg_regress`.
//!
//! A module of the crate (`#[path]` in src/lib.rs), built only for `cargo pgrx test`. One
//! file per topic, each with its own `#[pg_schema] mod tests`: the functions live in the
//! SQL schema `tests`, where pgrx's test runner calls them. Shared helpers: [`support`].
mod jsonb;
mod limits;
mod metered;
mod refills;
mod security;
mod support;
mod usage;
mod verify;
