-- Whether any of the roles $1 allows action $2; a customised row (is_default = false)
-- overrides the shipped default for the same role and action.
SELECT coalesce(bool_or(e.allowed), false) AS allowed
  FROM (SELECT DISTINCT ON (ra.role) ra.allowed
          FROM apikey.member_role_actions ra
         WHERE ra.role = ANY ($1) AND ra.action = $2
         ORDER BY ra.role, ra.is_default) e;
