//! The audit trail.
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::Uuid;

use super::optional_id;
use crate::authz;
use crate::caller::{as_owner, Caller};
use crate::jsonb::Jsonb;
use crate::storage;

/// Management actions recorded by pg_apikey. Trusted callers read all of them (or one
/// organization's); an organization's owners read that organization's.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // the contract's result columns
fn list_audit_events(
    org_id: default!(Option<&str>, "NULL"),
    since: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(id, i64),
        name!(at, TimestampWithTimeZone),
        name!(action, String),
        name!(org_id, Option<String>),
        name!(key_id, Option<Uuid>),
        name!(subject, Option<String>),
        name!(actor_role, String),
        name!(actor_identity, Option<String>),
        name!(details, Jsonb),
    ),
> {
    let caller = Caller::current();
    let org_id = optional_id("org_id", org_id);
    let rows = as_owner(|| {
        authz::authorize_audit_read(&caller, org_id);
        storage::audit_list(org_id, since)
    });
    TableIterator::new(rows)
}
