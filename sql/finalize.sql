-- pg_apikey: documentation of every function, so that \df+ apikey.* explains itself.

COMMENT ON FUNCTION apikey.create_organization(text, text) IS
'Create an organization (built-in membership source). Trusted callers only (superuser or member of apikey.service_role). 23505 if the id exists.';

COMMENT ON FUNCTION apikey.add_member(text, text, text) IS
'Add a member to an organization with a role (default member), or change an existing member''s role. Trusted callers or the organization''s owners. 22023 for an unknown role, P0002 for an unknown organization.';

COMMENT ON FUNCTION apikey.remove_member(text, text) IS
'Remove a member from an organization; returns whether there was one. Trusted callers or the organization''s owners.';

COMMENT ON FUNCTION apikey.set_role_action(text, text, boolean) IS
'Set whether a member role allows an action (create, read, update, delete) on its organization''s keys; a new role name defines a role. Trusted callers only.';

COMMENT ON FUNCTION apikey.list_role_actions() IS
'The role-to-action mapping in force: shipped defaults (is_default) and customisations over them.';

COMMENT ON FUNCTION apikey.create_api_key(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, jsonb, timestamptz) IS
'Create an API key and return it in plaintext, once. org_id: an organization key (trusted callers need no user; ordinary callers need a role allowing create). user_id alone: a user key (ordinary callers only for themselves). Policy fields (permissions, remaining, refill_*, rate_limit_*, rate_limits) need a trusted caller. rate_limits: named limits, [{"name": "burst", "limit": 10, "window": "1 second"}, {"name": "daily", "limit": 50000, "window": "1 day", "unit": "cost"}]; the rate_limit_max/rate_limit_window pair is the limit named default. refill_anchor: the refill periods end at refill_anchor + k × refill_interval (default: now), so a monthly refill keeps its day of the month.';

COMMENT ON FUNCTION apikey.verify_api_key(text, jsonb, integer) IS
'Verify a presented key: one row for any input. code: VALID, KEY_NOT_FOUND, KEY_DISABLED, KEY_EXPIRED, INSUFFICIENT_PERMISSIONS, RATE_LIMITED, USAGE_EXCEEDED (checked in that order: rate limits, the key''s then its owner''s, before quotas). required_permissions: an object of resources and actions (every one needed) or a query, {"$all": [...]} / {"$any": [...]}; a granted "*" grants every action on its resource. cost (default 1, 0 or more): what a VALID call spends from every quota that applies, the key''s and its owner''s (apikey.set_owner_limits), all or nothing, exactly under concurrency; cost 0 spends and counts nothing. remaining: the least left among those quotas after this call; rate_limits: each rate limit in force after this call (name, scope, limit, remaining, reset_at), for X-RateLimit-* headers; retry_after: when a refused call may succeed. Keys imported with apikey.import_api_key verify by their original text. Raises 22023 only for malformed required_permissions or cost.';

COMMENT ON FUNCTION apikey.key_info_of(apikey.keys, bigint) IS
'A key''s public fields (apikey.key_info) from its row of apikey.keys and what its budget slots hold of its quota (held), never the secret or its digest; remaining is what is left in total. Used by the extension''s own statements; the tables are closed to other roles.';
COMMENT ON FUNCTION apikey.refill_period_end(timestamptz, interval, timestamptz, integer) IS
'The end of the anchored refill period that t falls in (anchor + k × every, computed from the anchor in UTC, never accumulated), moved by step periods: step 1 is the next refill after a refill at t. Used by the extension''s own statements.';

COMMENT ON FUNCTION apikey.key_held(uuid) IS
'What the budget slots of a key hold of its quota, as committed (NULL: none). Used by the extension''s own statements.';

COMMENT ON FUNCTION apikey.list_api_keys(text, text) IS
'Public fields of keys (never secrets or digests). org_id: that organization''s keys (needs read). No org_id: your own user keys; a trusted caller sees all keys, or one user''s with user_id.';

COMMENT ON FUNCTION apikey.get_api_key(uuid) IS
'Public fields of one key. P0002 when it does not exist or the caller may not read it.';

COMMENT ON FUNCTION apikey.revoke_api_key(uuid) IS
'Revoke a key: verify answers KEY_NOT_FOUND from then on; the row stays with its revocation time. Needs delete on an organization key.';

COMMENT ON FUNCTION apikey.delete_api_key(uuid) IS
'Delete a key for good. Needs delete on an organization key. P0002 when it does not exist or the caller may not read it.';

COMMENT ON FUNCTION apikey.delete_expired_api_keys() IS
'Delete the expired keys the caller may delete (all of them for a trusted caller); returns how many.';

COMMENT ON FUNCTION apikey.update_api_key(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[], jsonb, timestamptz) IS
'Change a key''s settings: only the arguments given change; clear => ''{expires_at,...}'' sets fields back to NULL. rate_limits replaces the whole list of named limits (their windows start over). refill_anchor: where the refill periods count from (NULL: unchanged; a new refill_interval re-anchors at now). Policy fields need a trusted caller; org keys need the update action. Applies to the very next verify.';

COMMENT ON FUNCTION apikey.rotate_api_key(uuid, interval) IS
'Replace a key with a new one (new id and secret, same owner and settings), returned in plaintext once. The old key verifies for grace more (default 0), then answers KEY_EXPIRED; the two are linked by rotated_from/replaced_by.';

COMMENT ON FUNCTION apikey.set_owner_limits(text, text, bigint, bigint, interval, jsonb, timestamptz) IS
'Set the limits shared by every key of an organization (org_id), or by a user''s own keys (user_id): a quota (remaining, refill_amount every refill_interval, periods counted from refill_anchor, default now) and named rate_limits, as for a key. Replaces the owner''s limits and starts their counts over; all NULL removes them. Trusted callers only. Recorded in the audit trail as owner_limits_set.';

COMMENT ON FUNCTION apikey.get_owner_limits(text, text) IS
'The limits shared by an owner''s keys and their state now: what is left of the quota, the next refill (the next anchored period end) and the anchor, and each rate limit''s remaining and reset_at. No row: the owner has none. Trusted callers, members whose role allows read in the organization, and a user for its own; P0002 for anyone else.';

COMMENT ON FUNCTION apikey.import_api_key(bytea, text, text, text, text, text, boolean, timestamptz, jsonb, jsonb, bigint, bigint, interval, timestamptz, integer, interval, timestamptz, timestamptz, timestamptz) IS
'Import a key made by another system by the SHA-256 digest (32 bytes) of its whole text, with its owner, settings and history; returns its id. It then verifies with its original text (while apikey.accept_imported_keys is on). Re-runnable: an already stored digest returns that key''s id and changes nothing. refill_anchor: where its refill periods count from (default: last_refill_at, else created_at, else now). Trusted callers only. Recorded as key_imported.';

COMMENT ON FUNCTION apikey.list_audit_events(text, timestamptz) IS
'Management actions (organizations, members, role mapping, key create/update/rotate/revoke/delete) with the calling role, identity, time and what changed; never a secret. Trusted callers read all; an organization''s owners read its events.';

COMMENT ON FUNCTION apikey.current_identity() IS
'The identity pg_apikey uses for the current caller: the role name for an ordinary role, the claim named by apikey.identity_claim in request.jwt.claims for a gateway role (apikey.gateway_roles), NULL for a trusted caller or a missing claim. For the application''s RLS policies.';

-- 0.3.0: verify's per-backend facts (imported keys in use, owners with limits) are
-- invalidated by the tables themselves, whoever writes them: the API functions, a
-- superuser's DML, a restore, a logical-replication apply worker (ENABLE ALWAYS).
ALTER FUNCTION apikey.invalidate_verify_caches() SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION apikey.invalidate_verify_caches() IS
'Trigger of apikey.keys (imported keys added, revoked or removed) and apikey.owner_limits (owners added or removed): tells every backend, at commit, to read verify''s per-backend facts again. Not for calling directly.';
CREATE TRIGGER imported_key_added AFTER INSERT ON apikey.keys
    FOR EACH ROW WHEN (NEW.imported) EXECUTE FUNCTION apikey.invalidate_verify_caches();
CREATE TRIGGER imported_key_changed AFTER UPDATE OF imported, revoked_at ON apikey.keys
    FOR EACH ROW WHEN (OLD.imported OR NEW.imported) EXECUTE FUNCTION apikey.invalidate_verify_caches();
CREATE TRIGGER imported_key_removed AFTER DELETE ON apikey.keys
    FOR EACH ROW WHEN (OLD.imported) EXECUTE FUNCTION apikey.invalidate_verify_caches();
CREATE TRIGGER keys_truncated AFTER TRUNCATE ON apikey.keys
    FOR EACH STATEMENT EXECUTE FUNCTION apikey.invalidate_verify_caches();
CREATE TRIGGER owners_changed AFTER INSERT OR DELETE OR UPDATE OF owner_kind, owner_id OR TRUNCATE
    ON apikey.owner_limits FOR EACH STATEMENT EXECUTE FUNCTION apikey.invalidate_verify_caches();
ALTER TABLE apikey.keys ENABLE ALWAYS TRIGGER imported_key_added;
ALTER TABLE apikey.keys ENABLE ALWAYS TRIGGER imported_key_changed;
ALTER TABLE apikey.keys ENABLE ALWAYS TRIGGER imported_key_removed;
ALTER TABLE apikey.keys ENABLE ALWAYS TRIGGER keys_truncated;
ALTER TABLE apikey.owner_limits ENABLE ALWAYS TRIGGER owners_changed;

COMMENT ON FUNCTION apikey.key_usage(uuid, timestamptz, timestamptz, text) IS
'Usage analytics of one key: calls and cost (of admitted calls) by bucket (hour, day or month of the session''s time zone) and verify code, for the hours from since''s hour until before until: the written hourly rows plus what is counted in memory and not yet written. Needs pg_apikey in shared_preload_libraries (else 55000). Readable by whoever may read the key (others: P0002).';

COMMENT ON FUNCTION apikey.owner_usage(text, text, timestamptz, timestamptz, text) IS
'Usage analytics of an owner''s keys (exactly one of org_id and user_id): calls and cost by bucket, key and code, written and in memory, as key_usage. Trusted callers, members whose role allows read, and a user for its own keys (others: P0002). Needs pg_apikey in shared_preload_libraries (else 55000).';

COMMENT ON FUNCTION apikey.usage_live() IS
'What this server counted in this database and has not written yet, by key, hour and code (key_id NULL: unknown keys, and the OVERFLOW counter). On a standby: everything it counted, which is never written there. Trusted callers only. Needs pg_apikey in shared_preload_libraries (else 55000).';

COMMENT ON FUNCTION apikey.flush_usage() IS
'Write the usage counts now instead of at the next apikey.usage_flush_interval: asks the background writer for a round and waits for it (at most a minute; 55000 after). Returns the number of counters of this database written. Trusted callers only; 25006 on a standby.';

COMMENT ON FUNCTION apikey.report_exposed_keys(jsonb, text) IS
'Take a secret scanner''s report of leaked keys (the JSON array GitHub''s secret scanning partner program posts: [{"token", "type", "url", "source"}], at most 1000) and answer GitHub''s feedback rows: token_hash (hex SHA-256 of the token), token_type (as reported), label (true_positive for a key of this database: its checksum holds and its digest is found, or an imported key; else false_positive, decided by the checksum alone where it fails). action (revoke, disable or none) applies to true positives not already revoked; each is audited as key_exposed (with url and source) and announced on channel apikey_events. Trusted callers only; 22023 naming the malformed element.';

COMMENT ON FUNCTION apikey.announce_key_event() IS
'Trigger of apikey.audit_log: announces key_exposed, key_revoked, key_disabled, key_updated, key_deleted and key_rotated on channel apikey_events when the transaction commits, as {"event", "key_id", "org_id", "user_id", "audit_id"} (never the key). Not for calling directly.';
