-- Add a member, or change an existing member's role.
INSERT INTO apikey.members (org_id, user_id, role)
VALUES ($1, $2, $3)
ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role
RETURNING org_id, user_id, role, created_at;
