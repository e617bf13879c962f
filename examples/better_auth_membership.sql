-- Organizations and members from the application's own tables: the organization schema
-- of the most widely used TypeScript auth library, where "member".role may hold several
-- comma-separated roles ('admin,owner'). Run as a superuser, then point pg_apikey at the
-- two functions:
--   ALTER DATABASE app SET apikey.org_exists_function = 'app.org_exists';
--   ALTER DATABASE app SET apikey.member_roles_function = 'app.member_roles';
CREATE TABLE public."organization" (id text PRIMARY KEY, name text NOT NULL, slug text UNIQUE,
                                    "createdAt" timestamptz NOT NULL DEFAULT now());
CREATE TABLE public."member" (id text PRIMARY KEY,
                              "organizationId" text NOT NULL REFERENCES public."organization" (id),
                              "userId" text NOT NULL, role text NOT NULL,
                              "createdAt" timestamptz NOT NULL DEFAULT now());
CREATE SCHEMA app;
-- The functions run with the caller's rights: callers need USAGE on their schema (and
-- EXECUTE, which functions grant to PUBLIC by default).
GRANT USAGE ON SCHEMA app TO PUBLIC;
-- Owned by a superuser, SECURITY DEFINER to read the tables, search_path pinned.
CREATE FUNCTION app.org_exists(org_id text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    AS $$ SELECT EXISTS (SELECT 1 FROM public."organization" o WHERE o.id = org_id) $$;
CREATE FUNCTION app.member_roles(org_id text, user_id text) RETURNS text[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    AS $$ SELECT array_agg(pg_catalog.btrim(r))
            FROM public."member" m, pg_catalog.unnest(pg_catalog.string_to_array(m.role, ',')) r
           WHERE m."organizationId" = org_id AND m."userId" = user_id $$;
