-- Customise whether a role allows an action (a row with is_default = false, which
-- overrides the shipped default for the same role and action).
INSERT INTO apikey.member_role_actions (role, action, allowed, is_default)
VALUES ($1, $2, $3, false)
ON CONFLICT (role, action, is_default) DO UPDATE SET allowed = EXCLUDED.allowed;
