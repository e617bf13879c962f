-- Permission queries: required_permissions may be {"$all": [Q, ...]} or {"$any": [Q, ...]},
-- nested freely, each Q a query or an object of resources and actions; a granted "*"
-- grants every action on its resource.
SELECT id FROM apikey.create_organization('perm_org');
SELECT key AS k FROM apikey.create_api_key(org_id => 'perm_org', name => 'reader',
    permissions => '{"files": ["read"], "mesa": ["admin"], "billing": ["*"]}') \gset
SELECT key AS bare FROM apikey.create_api_key(org_id => 'perm_org', name => 'no permissions') \gset

SELECT q AS required, (SELECT code FROM apikey.verify_api_key(:'k', q::jsonb)) AS code
  FROM (VALUES
    ('{"files": ["read"]}'),
    ('{"files": ["read", "write"]}'),
    ('{"billing": ["refund", "read"]}'),
    ('{"billing": ["*"]}'),
    ('{"files": ["*"]}'),
    ('{"$all": [{"files": ["read"]}, {"mesa": ["admin"]}]}'),
    ('{"$all": [{"files": ["read"]}, {"files": ["write"]}]}'),
    ('{"$any": [{"files": ["write"]}, {"mesa": ["admin"]}]}'),
    ('{"$any": [{"files": ["write"]}, {"shop": ["read"]}]}'),
    ('{"$any": [{"files": ["write"]}, {"$all": [{"files": ["read"]}, {"billing": ["anything"]}]}]}'),
    ('{"$all": [{}]}')
  ) AS t (q);
-- A key with no permissions meets only requirements that list nothing.
SELECT q AS required, (SELECT code FROM apikey.verify_api_key(:'bare', q::jsonb)) AS code
  FROM (VALUES ('{}'), ('{"$all": [{}]}'), ('{"$any": [{"files": ["read"]}, {}]}'), ('{"$any": [{"files": ["read"]}]}')) AS t (q);

-- 32 levels of nesting are accepted, 33 are not.
SELECT repeat('{"$all": [', 32) || '{"files": ["read"]}' || repeat(']}', 32) AS deep32 \gset
SELECT code FROM apikey.verify_api_key(:'k', :'deep32');
SELECT code FROM apikey.verify_api_key(:'k', ('{"$any": [' || :'deep32' || ']}')::jsonb);
\echo :LAST_ERROR_SQLSTATE

-- Malformed queries: 22023, the message names the element at fault; even for a bad key.
SELECT code FROM apikey.verify_api_key(:'k', '{"$all": []}');
\echo :LAST_ERROR_SQLSTATE
SELECT code FROM apikey.verify_api_key('garbage', '{"$any": {"files": ["read"]}}');
\echo :LAST_ERROR_SQLSTATE
SELECT code FROM apikey.verify_api_key(:'k', '{"$none": [{"files": ["read"]}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT code FROM apikey.verify_api_key(:'k', '{"$all": [{"files": ["read"]}], "mesa": ["admin"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT code FROM apikey.verify_api_key(:'k', '{"$any": [{"files": ["read"]}, {"$all": [{"mesa": "admin"}]}]}');
\echo :LAST_ERROR_SQLSTATE

-- Resource names starting with $ mark queries: refused in granted permissions.
SELECT key FROM apikey.create_api_key(org_id => 'perm_org', permissions => '{"$files": ["read"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT key FROM apikey.create_api_key(org_id => 'perm_org', permissions => '{"$all": [{"files": ["read"]}]}');
\echo :LAST_ERROR_SQLSTATE
