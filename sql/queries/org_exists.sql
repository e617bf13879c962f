-- Whether an organization exists in the built-in tables.
SELECT EXISTS (SELECT 1 FROM apikey.organizations o WHERE o.id = $1) AS found;
