-- The usage writer: hourly rows older than apikey.usage_retention ($1, in minutes).
DELETE FROM apikey.usage_hours
 WHERE hour OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(mins => $1))
