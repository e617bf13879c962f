-- A member's role in the built-in tables (no row: not a member).
SELECT m.role
  FROM apikey.members m
 WHERE m.org_id = $1 AND m.user_id = $2;
