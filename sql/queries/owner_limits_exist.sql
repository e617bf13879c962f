-- Whether any owner has limits (verify then looks its key's owner up).
SELECT EXISTS (SELECT 1 FROM apikey.owner_limits o) AS found;
