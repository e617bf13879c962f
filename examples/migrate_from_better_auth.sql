-- Move API keys from better-auth's api-key plugin (@better-auth/api-key 1.7) to pg_apikey,
-- without reissuing them: every key keeps working with the text its holder already has.
--
--   psql -d app -v org_config_ids=org -f examples/migrate_from_better_auth.sql
--
-- Run it as a superuser (it reads pg_apikey's tables to leave alone what is already
-- there) in the application's database, where better-auth's tables are (schema public)
-- and pg_apikey (0.2.0 or later) is installed. Variables, both optional, comma-separated
-- lists of better-auth configIds:
--
--   org_config_ids            configurations with `references: "organization"`: their
--                             keys' "referenceId" is an organization id. Every other key's
--                             "referenceId" is a user id (better-auth's default).
--   no_rate_limit_config_ids  configurations with `rateLimit: { enabled: false }`, which
--                             switches rate limiting off for all their keys whatever the
--                             rows say.
--
-- What it does, in one transaction (all or nothing):
--   1. Organizations and members from better-auth's organization plugin (tables
--      "organization" and "member"), when they exist, into pg_apikey's built-in tables with
--      apikey.create_organization and apikey.add_member. Ones already there are left as
--      they are. Skipped entirely when the application manages membership itself
--      (apikey.org_exists_function / apikey.member_roles_function set, as in
--      examples/better_auth_membership.sql): pg_apikey then reads better-auth's tables.
--      better-auth may give a member several roles ('admin,owner'); pg_apikey keeps one:
--      the strongest of owner > admin > member, else the first listed (a role pg_apikey
--      does not know stops the script: define it first with apikey.set_role_action).
--   2. Every row of better-auth's "apikey" table through apikey.import_api_key: the SHA-256
--      digest better-auth stored, owner, name, prefix, start, enabled, expiry, permissions,
--      metadata, quota and refill, rate limit, creation and last-use times.
--   3. A one-line summary.
-- Running it again changes nothing: keys, organizations and members already imported are
-- left alone (and keys keep the usage they have had in pg_apikey since).
--
-- What does not carry over exactly:
--   * Rate limits. better-auth's window runs from the key's last request ("lastRequest",
--     "requestCount"); pg_apikey's is a fixed window that starts at the first call it
--     admits. The request count is not carried: each imported key starts a fresh window.
--     better-auth gives every key a rate limit unless told otherwise (10 requests a day by
--     default, "rateLimitEnabled" true); those limits are imported as they are. A window
--     of 0 or less, which better-auth never enforces, is imported as no limit.
--   * Keys better-auth would delete. better-auth deletes a key when it answers
--     KEY_EXPIRED, or USAGE_EXCEEDED with no refill, and sweeps expired keys now and then.
--     Such rows still in the table are imported and keep being refused (KEY_EXPIRED,
--     USAGE_EXCEEDED); delete them with apikey.delete_expired_api_keys() or
--     apikey.delete_api_key().
--   * Answers. better-auth's INVALID_API_KEY is pg_apikey's KEY_NOT_FOUND; a key lacking
--     the required permissions is KEY_NOT_FOUND in better-auth, INSUFFICIENT_PERMISSIONS in
--     pg_apikey. Permissions are compared the same way (every requested action of every
--     requested resource), except that in pg_apikey a granted action "*" grants every
--     action of its resource, where better-auth takes it literally.
--   * Owners of organization keys. better-auth does not record which member made an
--     organization's key: pg_apikey's user_id stays NULL for them. An organization key
--     whose organization no longer exists is skipped, with a warning (better-auth would
--     still accept it).
--   * Metadata. better-auth turns ISO-8601 date strings in metadata into Date objects when
--     it reads them; pg_apikey keeps the JSON as stored. Metadata written by older
--     better-auth versions (a JSON string holding JSON text) is imported as the value it
--     encodes, as better-auth reads it. pg_apikey wants an object: metadata that is other
--     JSON (better-auth accepts an array) stops the script.
--   * Configuration that is not in the table: keys kept only in secondary storage
--     (`storage: "secondary-storage"` without `fallbackToDatabase`) are not in the table
--     and cannot be moved; keys stored unhashed (`disableKeyHashing: true`) stop the
--     script; a customAPIKeyValidator is the application's to keep calling. Prefixes
--     longer than 32 characters (a raised `maximumPrefixLength`) or other than
--     [A-Za-z0-9_-] (a `defaultPrefix` is not checked by better-auth) stop the script.
--   * Organizations' slug, logo, metadata and creation time, members' creation time.
-- A key that cannot be imported stops the script with the better-auth key's id; fix or
-- delete that row in better-auth (or leave it out) and run the script again.
--
-- After the migration, verify keys with apikey.verify_api_key (imported keys keep their
-- text; rotating one with apikey.rotate_api_key gives a key in pg_apikey's own format,
-- with the same prefix, or ak_ for a key that had none). Keep
-- better-auth from issuing or using keys once the application has switched over; until
-- then, a key's usage is counted by whichever side the request went to.
--
-- Every name below is schema-qualified; nothing depends on the caller's search_path.

\set ON_ERROR_STOP on
\set QUIET on
\if :{?org_config_ids}
\else
    \set org_config_ids ''
\endif
\if :{?no_rate_limit_config_ids}
\else
    \set no_rate_limit_config_ids ''
\endif

BEGIN;

-- The parameters, for the DO blocks below (psql does not substitute variables inside
-- them), and what was done, for the summary. Dropped at COMMIT.
CREATE TEMPORARY TABLE pg_temp.better_auth_migration ON COMMIT DROP AS
SELECT ARRAY(SELECT pg_catalog.btrim(c) FROM pg_catalog.unnest(pg_catalog.string_to_array(:'org_config_ids', ',')) AS c
              WHERE pg_catalog.btrim(c) <> '') AS org_config_ids,
       ARRAY(SELECT pg_catalog.btrim(c) FROM pg_catalog.unnest(pg_catalog.string_to_array(:'no_rate_limit_config_ids', ',')) AS c
              WHERE pg_catalog.btrim(c) <> '') AS no_rate_limit_config_ids,
       0 AS orgs_created, 0 AS orgs_present, 0 AS members_added, 0 AS members_present,
       0 AS keys_imported, 0 AS keys_present, 0 AS keys_skipped,
       false AS app_membership;

-- ---------------------------------------------------------------- preconditions
DO $check$
BEGIN
    IF pg_catalog.to_regclass('public.apikey') IS NULL THEN
        RAISE EXCEPTION 'better-auth''s table public.apikey does not exist in database %', pg_catalog.current_database()
            USING HINT = 'Run this in the application''s database.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                    WHERE attrelid = 'public.apikey'::pg_catalog.regclass AND attname = 'referenceId' AND NOT attisdropped) THEN
        RAISE EXCEPTION 'public.apikey has no column "referenceId": an older better-auth schema'
            USING HINT = 'Upgrade better-auth to 1.7 and run its database migrations first.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = 'apikey' AND p.proname = 'import_api_key') THEN
        RAISE EXCEPTION 'apikey.import_api_key does not exist'
            USING HINT = 'CREATE EXTENSION pg_apikey (0.2.0 or later), or ALTER EXTENSION pg_apikey UPDATE.';
    END IF;
END
$check$;

-- ---------------------------------------------------------------- 1. organizations, members
DO $organizations$
DECLARE
    -- Whether the application's own functions answer membership questions (then
    -- pg_apikey's built-in tables are not used and must not be written).
    app_managed boolean :=
        pg_catalog.btrim(COALESCE(pg_catalog.current_setting('apikey.org_exists_function', true), '')) <> ''
        OR pg_catalog.btrim(COALESCE(pg_catalog.current_setting('apikey.member_roles_function', true), '')) <> '';
    o record;
    m record;
    roles text[];
    kept text;
BEGIN
    UPDATE pg_temp.better_auth_migration SET app_membership = app_managed;
    IF app_managed THEN
        RAISE NOTICE 'membership comes from the application''s functions: organizations and members are not copied';
        RETURN;
    END IF;
    IF pg_catalog.to_regclass('public.organization') IS NULL THEN
        RETURN; -- better-auth's organization plugin is not in use
    END IF;

    FOR o IN SELECT org.id, org.name FROM public.organization org ORDER BY org."createdAt", org.id LOOP
        IF EXISTS (SELECT 1 FROM apikey.organizations x WHERE x.id = o.id) THEN
            UPDATE pg_temp.better_auth_migration SET orgs_present = orgs_present + 1;
        ELSE
            PERFORM apikey.create_organization(o.id, o.name);
            UPDATE pg_temp.better_auth_migration SET orgs_created = orgs_created + 1;
        END IF;
    END LOOP;

    IF pg_catalog.to_regclass('public.member') IS NULL THEN
        RETURN;
    END IF;
    FOR m IN SELECT mb."organizationId" AS org_id, mb."userId" AS user_id, mb.role
               FROM public.member mb ORDER BY mb."createdAt", mb.id LOOP
        IF EXISTS (SELECT 1 FROM apikey.members x WHERE x.org_id = m.org_id AND x.user_id = m.user_id) THEN
            UPDATE pg_temp.better_auth_migration SET members_present = members_present + 1;
            CONTINUE;
        END IF;
        -- "admin,owner" -> {admin,owner} -> owner
        roles := ARRAY(SELECT pg_catalog.btrim(r) FROM pg_catalog.unnest(pg_catalog.string_to_array(m.role, ',')) AS r
                        WHERE pg_catalog.btrim(r) <> '');
        kept := COALESCE((SELECT k.role FROM pg_catalog.unnest(ARRAY['owner', 'admin', 'member']) WITH ORDINALITY AS k (role, rank)
                           WHERE k.role = ANY (roles) ORDER BY k.rank LIMIT 1),
                         roles[1]);
        BEGIN
            PERFORM apikey.add_member(m.org_id, m.user_id, kept);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION USING ERRCODE = SQLSTATE,
                MESSAGE = pg_catalog.format('better-auth member %s of organization %s (role %L) cannot be added: %s',
                                            m.user_id, m.org_id, m.role, SQLERRM),
                HINT = 'A role pg_apikey does not know must be defined first: SELECT apikey.set_role_action(''role'', ''read'', false);';
        END;
        UPDATE pg_temp.better_auth_migration SET members_added = members_added + 1;
    END LOOP;
END
$organizations$;

-- ---------------------------------------------------------------- 2. keys
DO $keys$
DECLARE
    params record;
    a record;
    key_digest bytea;
    is_org boolean;
    meta jsonb;
    perms jsonb;
    has_refill boolean;
    has_rate_limit boolean;
BEGIN
    SELECT * INTO params FROM pg_temp.better_auth_migration;

    -- A user key whose "referenceId" is an organization's id and no user's: most likely
    -- org_config_ids is missing a configuration.
    IF pg_catalog.to_regclass('public.organization') IS NOT NULL AND pg_catalog.to_regclass('public."user"') IS NOT NULL THEN
        SELECT k.id, k."configId" INTO a FROM public.apikey k
         WHERE NOT (k."configId" = ANY (params.org_config_ids))
           AND EXISTS (SELECT 1 FROM public.organization o WHERE o.id = k."referenceId")
           AND NOT EXISTS (SELECT 1 FROM public."user" u WHERE u.id = k."referenceId")
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'better-auth key % (configId %) belongs to an organization, but its configId is not in org_config_ids',
                a.id, a."configId"
                USING HINT = pg_catalog.format('Run again with -v org_config_ids=%s (every configuration with references: "organization").',
                                               a."configId");
        END IF;
    END IF;

    FOR a IN SELECT * FROM public.apikey k ORDER BY k."createdAt", k.id LOOP
        -- "key" is the SHA-256 of the key's text in unpadded base64url (43 characters);
        -- pg_apikey wants the 32 bytes.
        IF a.key !~ '^[A-Za-z0-9_-]{43}$' THEN
            RAISE EXCEPTION 'better-auth key % (configId %): "key" is not a base64url SHA-256 digest', a.id, a."configId"
                USING HINT = 'Keys stored with disableKeyHashing: true cannot be imported by this script.';
        END IF;
        key_digest := pg_catalog.decode(pg_catalog.translate(a.key, '-_', '+/') || '=', 'base64');

        IF EXISTS (SELECT 1 FROM apikey.keys x WHERE x.digest = key_digest) THEN
            -- Imported before (import_api_key would return its id and change nothing).
            UPDATE pg_temp.better_auth_migration SET keys_present = keys_present + 1;
            CONTINUE;
        END IF;

        is_org := a."configId" = ANY (params.org_config_ids);

        -- From here on, whatever goes wrong names the better-auth key.
        BEGIN
            -- "permissions" and "metadata" are JSON text; 'null' (what better-auth writes for
            -- "none") is none. Metadata written as a JSON string holding JSON text is decoded
            -- once more, as better-auth does when it reads it.
            perms := NULLIF(a.permissions::jsonb, 'null'::jsonb);
            meta := a.metadata::jsonb;
            IF pg_catalog.jsonb_typeof(meta) = 'string' THEN
                BEGIN
                    meta := (meta #>> '{}')::jsonb;
                EXCEPTION WHEN invalid_text_representation THEN
                    RAISE WARNING 'better-auth key %: metadata is a string that is not JSON; better-auth reads it as null', a.id;
                    meta := NULL;
                END;
            END IF;
            meta := NULLIF(meta, 'null'::jsonb);

            -- better-auth refills only when both are set and non-zero.
            has_refill := a."refillAmount" > 0 AND a."refillInterval" > 0;
            -- better-auth enforces a rate limit unless the key ("rateLimitEnabled" false) or its
            -- configuration turned it off, or max or window is missing.
            has_rate_limit := COALESCE(a."rateLimitEnabled", true)
                              AND NOT (a."configId" = ANY (params.no_rate_limit_config_ids))
                              AND a."rateLimitMax" IS NOT NULL
                              AND a."rateLimitTimeWindow" > 0;

            PERFORM apikey.import_api_key(
                digest            => key_digest,
                org_id            => CASE WHEN is_org THEN a."referenceId" END,
                user_id           => CASE WHEN is_org THEN NULL ELSE a."referenceId" END,
                name              => a.name,
                prefix            => NULLIF(a.prefix, ''),
                start             => a.start,
                -- better-auth refuses a key only when "enabled" is false.
                enabled           => COALESCE(a.enabled, true),
                expires_at        => a."expiresAt",
                permissions       => perms,
                metadata          => meta,
                remaining         => a.remaining,
                refill_amount     => CASE WHEN has_refill THEN a."refillAmount" END,
                -- Milliseconds, in integer columns.
                refill_interval   => CASE WHEN has_refill THEN a."refillInterval" * interval '1 millisecond' END,
                last_refill_at    => CASE WHEN has_refill THEN a."lastRefillAt" END,
                rate_limit_max    => CASE WHEN has_rate_limit THEN a."rateLimitMax" END,
                rate_limit_window => CASE WHEN has_rate_limit THEN a."rateLimitTimeWindow" * interval '1 millisecond' END,
                created_at        => a."createdAt",
                last_used_at      => a."lastRequest");
        EXCEPTION
            WHEN no_data_found THEN
                -- P0002: the organization does not exist (any more).
                RAISE WARNING 'better-auth key % (configId %) skipped: organization % does not exist', a.id, a."configId", a."referenceId";
                UPDATE pg_temp.better_auth_migration SET keys_skipped = keys_skipped + 1;
                CONTINUE;
            WHEN OTHERS THEN
                RAISE EXCEPTION USING ERRCODE = SQLSTATE,
                    MESSAGE = pg_catalog.format('better-auth key %s (configId %s) cannot be imported: %s', a.id, a."configId", SQLERRM),
                    HINT = 'Fix or delete that row of public.apikey, then run the script again.';
        END;
        UPDATE pg_temp.better_auth_migration SET keys_imported = keys_imported + 1;
    END LOOP;
END
$keys$;

-- ---------------------------------------------------------------- 3. summary
SELECT keys_imported, keys_present, keys_skipped, orgs_created, orgs_present, members_added, members_present,
       CASE WHEN app_membership THEN ' (membership: the application''s functions)' ELSE '' END AS membership_note
  FROM pg_temp.better_auth_migration \gset
\echo better-auth migration: :keys_imported keys imported, :keys_present already present, :keys_skipped skipped; :orgs_created organizations created, :orgs_present already present; :members_added members added, :members_present already present:membership_note

COMMIT;
