-- Remove a member.
DELETE FROM apikey.members m
 WHERE m.org_id = $1 AND m.user_id = $2
RETURNING m.user_id;
