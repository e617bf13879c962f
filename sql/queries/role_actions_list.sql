-- The role-to-action mapping in force: a customised row wins over its default.
SELECT DISTINCT ON (ra.role, ra.action) ra.role, ra.action, ra.allowed, ra.is_default
  FROM apikey.member_role_actions ra
 ORDER BY ra.role, ra.action, ra.is_default;
