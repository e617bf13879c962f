-- Whether a member role is defined (shipped or customised).
SELECT EXISTS (SELECT 1 FROM apikey.member_role_actions ra WHERE ra.role = $1) AS found;
