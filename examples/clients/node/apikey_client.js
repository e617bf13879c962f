// pg_apikey from Node.js with node-postgres (pg) and the standard library's http.
//
// The story every example in examples/clients tells:
//   1. a service role (a LOGIN role that is a member of apikey_service) provisions an
//      organization and organization keys with no user;
//   2. an API server verifies the key of every request: one prepared statement, the key a
//      bound parameter, the route's required permissions an object passed as jsonb (this
//      example's server connects as an untrusted role, which only verifies);
//   3. the verify row alone becomes an HTTP status (200/401/403/429) and rate-limit headers;
//   4. errors are told apart by SQLSTATE (42501 not allowed, 22023 bad argument);
//   5. a figure: verifies per second on one connection, beside SELECT 1.
//
// Connection settings come from the libpq variables (PGHOST, PGPORT, PGDATABASE), which pg
// reads itself; APIKEY_VIA=pgbouncer when PGPORT is a PgBouncer in transaction pool mode.
// Every "client check ok" line is asserted against what the database returned.
'use strict'

const http = require('node:http')
const crypto = require('node:crypto')
const pg = require('pg')

const VIA = process.env.APIKEY_VIA || 'direct'
const SERVICE_USER = process.env.APIKEY_SERVICE_USER || 'clients_service'
const APP_USER = process.env.APIKEY_APP_USER || 'clients_app'
const HTTP_PORT = Number(process.env.APIKEY_HTTP_PORT || 28983)

// bigint (int8, oid 20) arrives as a string by default, since a JS number cannot hold every
// int8: parse it to a BigInt, for this client only (pg.types.setTypeParser would change
// every client of the process).
const types = {
  getTypeParser: (oid, format) => (oid === 20 ? BigInt : pg.types.getTypeParser(oid, format)),
}

async function connect(user) {
  // pg's Client runs in autocommit: each query is its own transaction unless BEGIN is sent.
  const client = new pg.Client({ user, types })
  await client.connect()
  return client
}

function check(condition, what) {
  if (!condition) {
    console.error(`client check FAILED: ${what}`)
    process.exit(1)
  }
  console.log(`client check ok: ${what}`)
}

const VERIFY =
  'SELECT valid, code, key_id, org_id, user_id, permissions, metadata, remaining,' +
  ' expires_at, retry_after, rate_limits FROM apikey.verify_api_key($1, $2::jsonb)'

// Directly: a named query is prepared once per connection (Parse on first use, then only
// Bind/Execute). Through PgBouncer 1.18 in transaction mode a named statement lives on one
// server connection that the next transaction may not get (42P05 / 26000): there, an
// unnamed query — still the extended protocol with bound parameters — is the way.
function verifyQuery(key, required) {
  // JSON.stringify + $2::jsonb: pg turns a JS array parameter into a PostgreSQL array
  // literal ('{"a","b"}' → 22P02 as jsonb), and an object into JSON only implicitly.
  const values = [key, required === null ? null : JSON.stringify(required)]
  return VIA === 'pgbouncer' ? { text: VERIFY, values } : { name: 'apikey_verify', text: VERIFY, values }
}

async function verify(client, key, required) {
  return (await client.query(verifyQuery(key, required))).rows[0]
}

// interval arrives as a postgres-interval object holding only its non-zero fields
// ({ hours: 23, minutes: 59, seconds: 59, milliseconds: 451.6 }): milliseconds.
// (A month counts 30 days, a year 365.25, as PostgreSQL's extract(epoch ...) does.)
function intervalMs(iv) {
  const days = (iv.years || 0) * 365.25 + (iv.months || 0) * 30 + (iv.days || 0)
  return (((days * 24 + (iv.hours || 0)) * 60 + (iv.minutes || 0)) * 60 + (iv.seconds || 0)) * 1000 +
    (iv.milliseconds || 0)
}
const secondsUp = (iv) => Math.ceil(intervalMs(iv) / 1000)

// [status, headers] for a verify row, from the row alone (docs/application-developers.md,
// "Status codes and headers"): the rate-limit headers from the entry of rate_limits (jsonb:
// an array of objects, reset_at an ISO 8601 string) with the least remaining;
// X-RateLimit-Reset in seconds from now.
function toHttp(row) {
  const status = { VALID: 200, INSUFFICIENT_PERMISSIONS: 403, RATE_LIMITED: 429, USAGE_EXCEEDED: 429 }[row.code] || 401
  const headers = {}
  if (status === 401) headers['WWW-Authenticate'] = 'Bearer realm="api"'
  if (row.rate_limits) {
    const tight = row.rate_limits.reduce((a, b) => (b.remaining < a.remaining ? b : a))
    const reset = tight.reset_at === null ? 0 : Math.max(0, Math.ceil((Date.parse(tight.reset_at) - Date.now()) / 1000))
    headers['X-RateLimit-Limit'] = String(tight.limit)
    headers['X-RateLimit-Remaining'] = String(tight.remaining)
    headers['X-RateLimit-Reset'] = String(reset)
  }
  if (row.remaining !== null) headers['X-Quota-Remaining'] = String(row.remaining) // a BigInt
  if (row.retry_after !== null) headers['Retry-After'] = String(secondsUp(row.retry_after))
  return [status, headers]
}

// The API's routes and the permissions each requires, as plain objects.
const ROUTES = { '/things': { mesa: ['read'] }, '/admin': { mesa: ['admin'] } }

function apiServer(client) {
  return http.createServer(async (req, res) => {
    try {
      const required = ROUTES[req.url]
      if (!required) {
        res.writeHead(404).end()
        return
      }
      const auth = req.headers.authorization || ''
      const key = auth.startsWith('Bearer ') ? auth.slice(7) : null
      const row = await verify(client, key, required) // a NULL key answers KEY_NOT_FOUND
      const [status, headers] = toHttp(row)
      res.writeHead(status, { ...headers, 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ code: row.code, org_id: row.org_id }))
    } catch (err) {
      res.writeHead(500).end(JSON.stringify({ error: err.code || String(err) }))
    }
  })
}

async function get(path, key) {
  const headers = key === undefined ? {} : { Authorization: `Bearer ${key}` }
  const res = await fetch(`http://127.0.0.1:${HTTP_PORT}${path}`, { headers, signal: AbortSignal.timeout(10000) })
  return [res.status, res.headers, await res.json()]
}

// Statements per second for each [query, ok] of runs on one connection. Interleaved
// chunks, so that each sees the same machine (a shared one is noisy); bounded in time and count.
async function measure(client, runs, seconds = 4, chunk = 200, maxEach = 20000) {
  const now = () => Number(process.hrtime.bigint()) / 1e9
  const spent = runs.map(() => 0)
  const done = runs.map(() => 0)
  const start = now()
  while (now() - start < seconds && Math.min(...done) < maxEach) {
    for (const [i, [query, ok]] of runs.entries()) {
      const t = now()
      for (let n = 0; n < chunk; n++) {
        if (!ok((await client.query(query)).rows[0])) check(false, `every measured call answers as expected (${query.text})`)
      }
      spent[i] += now() - t
      done[i] += chunk
    }
  }
  return done.map((n, i) => n / spent[i])
}

async function expectError(promise) {
  try {
    await promise
  } catch (err) {
    return err
  }
  return null
}

async function main() {
  const orgId = `acme-node-${VIA}-${crypto.randomBytes(3).toString('hex')}`
  const admin = await connect(SERVICE_USER)
  // The API server verifies as an untrusted role (no key of its own, no membership): it
  // needs nothing else, since every header comes from verify's row.
  const api = await connect(APP_USER)

  // 1. Provisioning, as the service role.
  const who = (await admin.query("SELECT current_user AS role, pg_has_role('apikey_service', 'MEMBER') AS trusted")).rows[0]
  check(who.role === SERVICE_USER && who.trusted === true, `${SERVICE_USER} is a trusted caller (member of apikey_service)`)

  const org = (await admin.query('SELECT id, created_at FROM apikey.create_organization($1, $2)', [orgId, 'Acme (Node)'])).rows[0]
  check(org.id === orgId && org.created_at instanceof Date && Math.abs(Date.now() - org.created_at) < 300000,
    `organization ${orgId} created; created_at is a Date (milliseconds: its microseconds are dropped)`)

  const expires = new Date(Date.now() + 30 * 86400000)
  const permissions = { mesa: ['read', 'write'] }
  const metadata = { plan: 'pro', seats: 5 }
  const created = (await admin.query(
    `SELECT key_id, key, start, org_id, user_id, expires_at, permissions, metadata
       FROM apikey.create_api_key(org_id => $1, name => $2, prefix => $3, expires_at => $4,
                                  permissions => $5::jsonb, metadata => $6::jsonb)`,
    [orgId, 'reader', 'js_test_', expires, JSON.stringify(permissions), JSON.stringify(metadata)])).rows[0]
  const plainKey = created.key
  check(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(created.key_id) &&
    created.org_id === orgId && created.user_id === null && plainKey.startsWith('js_test_') &&
    created.expires_at.getTime() === expires.getTime() &&
    JSON.stringify(created.permissions) === JSON.stringify(permissions) &&
    JSON.stringify(created.metadata) === JSON.stringify(metadata),
  `org key with no user: key_id ${created.key_id} (uuid as a string), start ${created.start}, ` +
    'expires_at round-trips as a Date, permissions/metadata come back as objects')

  // Two limits: 5 a minute (the rate_limit_max/_window pair, named "default") and 2 an hour
  // (named "hour"). verify's rate_limits lists the pair first; the headers must come from
  // the tightest (the hour), not the first.
  const limited = (await admin.query(
    `SELECT key, rate_limit_max, rate_limit_window FROM apikey.create_api_key(
         org_id => $1, name => 'limited', permissions => $2::jsonb,
         rate_limit_max => $3::integer, rate_limit_window => $4::interval, rate_limits => $5::jsonb)`,
    [orgId, JSON.stringify({ mesa: ['read'] }), 5, '1 minute',
      JSON.stringify([{ name: 'hour', limit: 2, window: '1 hour' }])])).rows[0]
  check(limited.rate_limit_max === 5 && intervalMs(limited.rate_limit_window) === 60000,
    `rate-limited key: 5 a minute (the window read back as ${JSON.stringify(limited.rate_limit_window)}) and 2 an hour`)
  const quota = (await admin.query(
    `SELECT key, remaining FROM apikey.create_api_key(
         org_id => $1, name => 'metered', permissions => $2::jsonb,
         remaining => $3, refill_amount => $4, refill_interval => $5::interval)`,
    [orgId, JSON.stringify({ mesa: ['read'] }), 3, 3, '1 day'])).rows[0]
  check(quota.remaining === 3n, 'metered key: 3 uses, refilled daily (remaining read as the BigInt 3n)')

  // 2./3. The API server: verify on every request, status and headers from the row.
  const server = apiServer(api)
  await new Promise((resolve) => server.listen(HTTP_PORT, '127.0.0.1', resolve))
  try {
    let [status, headers, body] = await get('/things', plainKey)
    check(status === 200 && body.code === 'VALID' && body.org_id === orgId && !headers.has('X-RateLimit-Limit'),
      `GET /things with the key: 200, org ${orgId}, no rate-limit headers`)
    ;[status, headers, body] = await get('/admin', plainKey)
    check(status === 403 && body.code === 'INSUFFICIENT_PERMISSIONS', 'GET /admin (needs mesa:admin): 403 INSUFFICIENT_PERMISSIONS')
    ;[status, headers, body] = await get('/things')
    check(status === 401 && body.code === 'KEY_NOT_FOUND' && headers.get('WWW-Authenticate').startsWith('Bearer'),
      'no key: 401 KEY_NOT_FOUND with WWW-Authenticate')
    ;[status, headers, body] = await get('/things', plainKey.slice(0, -1) + (plainKey.endsWith('A') ? 'B' : 'A'))
    check(status === 401 && body.code === 'KEY_NOT_FOUND', 'a mistyped key: 401 KEY_NOT_FOUND')

    for (const i of [1, 2]) {
      ;[status, headers, body] = await get('/things', limited.key)
      const reset = Number(headers.get('X-RateLimit-Reset'))
      check(status === 200 && headers.get('X-RateLimit-Limit') === '2' &&
        headers.get('X-RateLimit-Remaining') === String(2 - i) && reset > 3500 && reset <= 3600,
      `rate-limited key, request ${i}: 200, X-RateLimit-Limit 2, Remaining ${2 - i}, Reset ${reset} s (all from verify's row)`)
    }
    ;[status, headers, body] = await get('/things', limited.key)
    const reset = Number(headers.get('X-RateLimit-Reset'))
    check(status === 429 && body.code === 'RATE_LIMITED' && headers.get('X-RateLimit-Remaining') === '0' &&
      reset > 3500 && reset <= 3600 && Math.abs(Number(headers.get('Retry-After')) - reset) <= 1,
    `rate-limited key, request 3: 429 RATE_LIMITED, X-RateLimit-Remaining 0, Reset/Retry-After ${reset} s`)

    // A verify inside a transaction that rolls back spends nothing: the use comes back.
    // (One client, one transaction at a time: a pg.Pool would hand out a client per transaction.)
    await api.query('BEGIN')
    const row = await verify(api, quota.key, { mesa: ['read'] })
    await api.query('ROLLBACK')
    check(row.code === 'VALID' && row.remaining === 2n, 'metered key verified in a transaction: remaining 2n (a BigInt)')
    for (const left of [2, 1, 0]) {
      ;[status, headers] = await get('/things', quota.key)
      check(status === 200 && headers.get('X-Quota-Remaining') === String(left),
        `metered key: 200, X-Quota-Remaining ${left}` + (left === 2 ? ' (the rolled-back use was given back)' : ''))
    }
    ;[status, headers, body] = await get('/things', quota.key)
    const retry = Number(headers.get('Retry-After'))
    check(status === 429 && body.code === 'USAGE_EXCEEDED' && retry > 86000 && retry <= 86400,
      `metered key exhausted: 429 USAGE_EXCEEDED, Retry-After ${retry} s (next refill)`)
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  const exhausted = await verify(api, quota.key, { mesa: ['read'] })
  const retryMs = intervalMs(exhausted.retry_after)
  check(exhausted.code === 'USAGE_EXCEEDED' && retryMs > 23 * 3600000 && retryMs <= 86400000,
    `retry_after read as ${JSON.stringify(exhausted.retry_after)} = ${retryMs} ms`)

  // 4. Errors by SQLSTATE (err.code).
  const app = await connect(APP_USER)
  let err = await expectError(app.query("SELECT key FROM apikey.create_api_key(org_id => $1, name => 'sneaky')", [orgId]))
  check(err !== null && err.code === '42501', `${APP_USER} (not a member) creating an org key: 42501 (${err && err.message})`)
  await app.end()
  err = await expectError(verify(api, plainKey, ['mesa', 'read'])) // an array, not {"resource": [actions]}
  check(err !== null && err.code === '22023', `malformed required_permissions: 22023 (${err && err.message})`)
  err = await expectError(api.query(VERIFY, [plainKey, ['mesa', 'read']])) // the array not stringified
  check(err !== null && err.code === '22P02', `a JS array passed as is becomes a PostgreSQL array literal: 22P02 (${err && err.message})`)

  // Prepared or not, as chosen in verifyQuery().
  const named = (await api.query('SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = $1', ['apikey_verify'])).rows[0].n
  if (VIA === 'pgbouncer') {
    check(named === 0, 'through PgBouncer: verify ran as unnamed queries (none in pg_prepared_statements)')
  } else {
    check(named === 1, 'directly: verify is the named prepared statement "apikey_verify" on this connection')
  }

  // 5. The figure: verifies per second on one connection, beside SELECT 1.
  const one = VIA === 'pgbouncer' ? { text: 'SELECT 1 AS one', values: [] } : { name: 'one', text: 'SELECT 1 AS one', values: [] }
  const [vps, sps] = await measure(api, [
    [verifyQuery(plainKey, { mesa: ['read'] }), (r) => r.valid === true],
    [one, (r) => r.one === 1],
  ])
  const mode = VIA === 'pgbouncer' ? 'unnamed statements via PgBouncer' : 'prepared'
  console.log(`client figure: node pg ${require('pg/package.json').version} (${mode}): ` +
    `${vps.toFixed(0)} verifies/s, SELECT 1 ${sps.toFixed(0)}/s`)
  await admin.end()
  await api.end()
}

main().catch((err) => {
  console.error(`client check FAILED: ${err.stack || err} (SQLSTATE ${err.code})`)
  process.exit(1)
})
