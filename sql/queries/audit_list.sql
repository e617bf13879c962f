-- The audit trail, optionally of one organization ($1) and from a time on ($2).
SELECT a.id, a.at, a.action, a.org_id, a.key_id, a.subject, a.actor_role, a.actor_identity, a.details
  FROM apikey.audit_log a
 WHERE ($1::text IS NULL OR a.org_id = $1)
   AND ($2::timestamptz IS NULL OR a.at >= $2)
 ORDER BY a.id;
