//! The audit trail.
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::Uuid;

use super::optional_id;
use crate::authz;
use crate::caller::{as_owner, Caller};
use crate::jsonb::Jsonb;
use crate::storage;

sql_function!(
    /// Management actions recorded by pg_apikey. Trusted callers read all of them (or one
    /// organization's); an organization's owners read that organization's.
    fn list_audit_events(
        org_id: default!(Option<&str>, "NULL"),
        since: default!(Option<TimestampWithTimeZone>, "NULL"),
    ) -> table![id: i64, at: TimestampWithTimeZone, action: String, org_id: Option<String>,
                key_id: Option<Uuid>, subject: Option<String>, actor_role: String,
                actor_identity: Option<String>, details: Jsonb] {
        let caller = Caller::current();
        let org_id = optional_id("org_id", org_id);
        let rows = as_owner(|| {
            authz::authorize_audit_read(&caller, org_id);
            storage::audit_list(org_id, since)
        });
        TableIterator::new(rows)
    }
);
