-- A new organization; no row when the id is taken.
INSERT INTO apikey.organizations (id, name, created_by_role)
VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING
RETURNING id, name, created_at;
