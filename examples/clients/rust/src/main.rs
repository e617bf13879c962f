//! pg_apikey from Rust with tokio-postgres.
//!
//! The story every example in examples/clients tells:
//!   1. a service role (a LOGIN role that is a member of apikey_service) provisions an
//!      organization and organization keys with no user;
//!   2. an API server verifies the key of every request: one prepared statement, the key a
//!      bound parameter, the route's required permissions a `serde_json::Value` sent as jsonb
//!      (this example's API server connects as an untrusted role, which only verifies);
//!   3. the verify row alone becomes an HTTP status (200/401/403/429) and rate-limit headers
//!      (`Api::handle`, framework-agnostic: wire it into axum, hyper or actix as you like);
//!   4. errors are told apart by SQLSTATE (42501 not allowed, 22023 bad argument);
//!   5. a figure: verifies per second on one connection, beside SELECT 1.
//!
//! Connection settings come from PGHOST, PGPORT and PGDATABASE (read here: tokio-postgres
//! does not read them itself); APIKEY_VIA=pgbouncer when PGPORT is a PgBouncer in transaction
//! pool mode. Every "client check ok" line is asserted against what the database returned.

use std::env;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, Error, GenericClient, NoTls, Row, Statement};
use uuid::Uuid;

// tokio-postgres has no type for `interval`: the SQL turns retry_after into whole
// milliseconds (rounded up), read as i64 into a std::time::Duration.
const VERIFY: &str =
    "SELECT valid, code, key_id, org_id, user_id, permissions, metadata, remaining, \
     expires_at, ceil(extract(epoch FROM retry_after) * 1000)::bigint AS retry_after_ms, \
     rate_limits FROM apikey.verify_api_key($1, $2)";

fn check(condition: bool, what: impl AsRef<str>) {
    if !condition {
        eprintln!("client check FAILED: {}", what.as_ref());
        std::process::exit(1);
    }
    println!("client check ok: {}", what.as_ref());
}

fn via_pgbouncer() -> bool {
    env::var("APIKEY_VIA").as_deref() == Ok("pgbouncer")
}

async fn connect(user: &str) -> Result<Client, Error> {
    let mut config = Config::new();
    config
        .host(env::var("PGHOST").as_deref().unwrap_or("127.0.0.1"))
        .port(
            env::var("PGPORT")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(5432),
        )
        .dbname(env::var("PGDATABASE").as_deref().unwrap_or("postgres"))
        .user(user);
    // A Client is in autocommit: each statement is its own transaction unless
    // client.transaction() opens one.
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    Ok(client)
}

/// How a statement is sent on a connection, chosen once.
///
/// Directly: `prepare` once (a named statement, "s0", "s1", … on this connection) and
/// execute it on every request: Bind/Execute only. Through PgBouncer 1.18 in transaction
/// mode a named statement lives on one server connection that the next transaction may not
/// get (42P05 / 26000), and `client.query(&str)` is no way out: it prepares a *named*
/// statement on every call (prepare, execute, close: three round trips). `query_typed`
/// sends Parse/Bind/Execute of the *unnamed* statement in one round trip, with the
/// parameter types given by the caller: that is the pooler-safe way.
enum Sent {
    Prepared(Statement),
    Unnamed(&'static str, Vec<Type>),
}

impl Sent {
    async fn new(client: &Client, sql: &'static str, types: &[Type]) -> Result<Sent, Error> {
        Ok(if via_pgbouncer() {
            Sent::Unnamed(sql, types.to_vec())
        } else {
            Sent::Prepared(client.prepare_typed(sql, types).await?)
        })
    }

    async fn query_one<C: GenericClient>(
        &self,
        c: &C,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        match self {
            Sent::Prepared(stmt) => c.query_one(stmt, params).await,
            Sent::Unnamed(sql, types) => {
                let typed: Vec<_> = params.iter().copied().zip(types.iter().cloned()).collect();
                c.query_typed_one(sql, &typed).await
            }
        }
    }
}

/// One-off statements (provisioning, lookups): the unnamed statement in one round trip,
/// directly and through PgBouncer alike. Preparing them would gain nothing.
async fn once(c: &Client, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Row, Error> {
    c.query_typed_one(sql, params).await
}

/// verify_api_key's row in native types.
#[allow(dead_code)] // every column is read, to show its type; not every one is used here
struct Verdict {
    valid: bool,
    code: String,
    key_id: Option<Uuid>,
    org_id: Option<String>,
    user_id: Option<String>,
    permissions: Option<Value>,
    metadata: Option<Value>,
    remaining: Option<i64>,
    expires_at: Option<SystemTime>,
    retry_after: Option<Duration>,
    /// `[{"name", "scope", "limit", "remaining", "reset_at"}, …]`, NULL when no rate
    /// limit applies; `reset_at` an RFC 3339 string (or null: no window running).
    rate_limits: Option<Value>,
}

impl Verdict {
    fn from_row(row: &Row) -> Verdict {
        Verdict {
            valid: row.get("valid"),
            code: row.get("code"),
            key_id: row.get("key_id"),
            org_id: row.get("org_id"),
            user_id: row.get("user_id"),
            permissions: row.get("permissions"),
            metadata: row.get("metadata"),
            remaining: row.get("remaining"),
            expires_at: row.get("expires_at"),
            retry_after: row
                .get::<_, Option<i64>>("retry_after_ms")
                .map(|ms| Duration::from_millis(ms as u64)),
            rate_limits: row.get("rate_limits"),
        }
    }
}

async fn verify<C: GenericClient>(
    c: &C,
    how: &Sent,
    key: Option<&str>,
    required: Option<&Value>,
) -> Result<Verdict, Error> {
    Ok(Verdict::from_row(
        &how.query_one(c, &[&key, &required]).await?,
    ))
}

fn secs_up(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

/// The X-RateLimit-* headers from the entry of `rate_limits` with the least `remaining`:
/// Limit, Remaining, and Reset in whole seconds from now (rounded up; 0 when no window runs).
fn rate_limit_headers(limits: &Value) -> Option<[(&'static str, String); 3]> {
    let tight = limits
        .as_array()?
        .iter()
        .min_by_key(|l| l["remaining"].as_i64().unwrap_or(i64::MAX))?;
    let reset = match tight["reset_at"].as_str() {
        Some(at) => {
            let at = chrono::DateTime::parse_from_rfc3339(at).ok()?;
            let ms = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
            (ms.max(0) as u64).div_ceil(1000)
        }
        None => 0,
    };
    Some([
        ("X-RateLimit-Limit", tight["limit"].to_string()),
        ("X-RateLimit-Remaining", tight["remaining"].to_string()),
        ("X-RateLimit-Reset", reset.to_string()),
    ])
}

/// (status, headers) for a verify row, from the row alone (docs/application-developers.md,
/// "Status codes and headers").
fn to_http(v: &Verdict) -> (u16, Vec<(&'static str, String)>) {
    let status = match v.code.as_str() {
        "VALID" => 200,
        "INSUFFICIENT_PERMISSIONS" => 403,
        "RATE_LIMITED" | "USAGE_EXCEEDED" => 429,
        _ => 401, // KEY_NOT_FOUND, KEY_DISABLED, KEY_EXPIRED
    };
    let mut headers = Vec::new();
    if status == 401 {
        headers.push(("WWW-Authenticate", r#"Bearer realm="api""#.to_string()));
    }
    if let Some(limits) = v.rate_limits.as_ref().and_then(rate_limit_headers) {
        headers.extend(limits);
    }
    if let Some(left) = v.remaining {
        headers.push(("X-Quota-Remaining", left.to_string()));
    }
    if let Some(wait) = v.retry_after {
        headers.push(("Retry-After", secs_up(wait).to_string()));
    }
    (status, headers)
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    code: String,
    org_id: Option<String>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The API server's side: its connection (an untrusted role) and its statement.
struct Api {
    client: Client,
    verify: Sent,
}

impl Api {
    /// The permissions each route requires.
    fn required(path: &str) -> Option<Value> {
        match path {
            "/things" => Some(json!({"mesa": ["read"]})),
            "/admin" => Some(json!({"mesa": ["admin"]})),
            _ => None,
        }
    }

    async fn handle(&self, path: &str, authorization: Option<&str>) -> Result<Response, Error> {
        let Some(required) = Api::required(path) else {
            return Ok(Response {
                status: 404,
                headers: vec![],
                code: String::new(),
                org_id: None,
            });
        };
        let key = authorization.and_then(|a| a.strip_prefix("Bearer "));
        let v = verify(&self.client, &self.verify, key, Some(&required)).await?; // no key: KEY_NOT_FOUND
        let (status, headers) = to_http(&v);
        Ok(Response {
            status,
            headers,
            code: v.code,
            org_id: v.org_id,
        })
    }
}

/// One measured statement: how it is sent, its parameters, what each row must satisfy.
type Run<'a> = (
    &'a Sent,
    &'a [&'a (dyn ToSql + Sync)],
    &'a dyn Fn(&Row) -> bool,
);

/// Statements per second for each run on one connection. Interleaved chunks, so that each
/// sees the same machine (a shared one is noisy); bounded in time and count.
async fn measure(c: &Client, runs: &[Run<'_>]) -> Result<Vec<f64>, Error> {
    let start = Instant::now();
    let mut spent = vec![Duration::ZERO; runs.len()];
    let mut done = vec![0u32; runs.len()];
    while start.elapsed() < Duration::from_secs(4)
        && done.iter().min().copied().unwrap_or(0) < 20_000
    {
        for (i, (how, params, ok)) in runs.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..200 {
                let row = how.query_one(c, params).await?;
                check_quiet(ok(&row), "every measured call answers as expected");
            }
            spent[i] += t.elapsed();
            done[i] += 200;
        }
    }
    Ok(done
        .iter()
        .zip(&spent)
        .map(|(n, t)| *n as f64 / t.as_secs_f64())
        .collect())
}

fn check_quiet(condition: bool, what: &str) {
    if !condition {
        check(false, what);
    }
}

fn sqlstate(e: &Error) -> &str {
    e.code().map(SqlState::code).unwrap_or("none")
}

fn message(e: &Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let via = if via_pgbouncer() {
        "pgbouncer"
    } else {
        "direct"
    };
    let service = env::var("APIKEY_SERVICE_USER").unwrap_or_else(|_| "clients_service".into());
    let app_user = env::var("APIKEY_APP_USER").unwrap_or_else(|_| "clients_app".into());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos();
    let org_id = format!(
        "acme-rust-{via}-{:06x}",
        (nanos ^ std::process::id()) & 0xff_ffff
    );
    let admin = connect(&service).await?;
    // The API server verifies as an untrusted role (no key of its own, no membership): it
    // needs nothing else, since every header comes from verify's row.
    let api_client = connect(&app_user).await?;

    // 1. Provisioning, as the service role.
    let who = once(
        &admin,
        "SELECT current_user::text AS role, pg_has_role('apikey_service', 'MEMBER') AS trusted",
        &[],
    )
    .await?;
    check(
        who.get::<_, String>("role") == service && who.get::<_, bool>("trusted"),
        format!("{service} is a trusted caller (member of apikey_service)"),
    );

    let org = once(
        &admin,
        "SELECT id, created_at FROM apikey.create_organization($1, $2)",
        &[(&org_id, Type::TEXT), (&"Acme (Rust)", Type::TEXT)],
    )
    .await?;
    let created_at: SystemTime = org.get("created_at");
    let age = SystemTime::now()
        .duration_since(created_at)
        .unwrap_or_else(|e| e.duration());
    check(
        org.get::<_, String>("id") == org_id && age < Duration::from_secs(300),
        format!("organization {org_id} created; created_at is a SystemTime"),
    );

    // timestamptz <-> SystemTime, to the microsecond (PostgreSQL keeps microseconds).
    let in_30_days =
        SystemTime::now().duration_since(UNIX_EPOCH)? + Duration::from_secs(30 * 86400);
    let expires = UNIX_EPOCH + Duration::from_micros(in_30_days.as_micros() as u64);
    let permissions = json!({"mesa": ["read", "write"]});
    let metadata = json!({"plan": "pro", "seats": 5});
    let created = once(
        &admin,
        "SELECT key_id, key, start, org_id, user_id, expires_at, permissions, metadata
           FROM apikey.create_api_key(org_id => $1, name => $2, prefix => $3, expires_at => $4,
                                      permissions => $5, metadata => $6)",
        &[
            (&org_id, Type::TEXT),
            (&"reader", Type::TEXT),
            (&"rs_test_", Type::TEXT),
            (&expires, Type::TIMESTAMPTZ),
            (&permissions, Type::JSONB),
            (&metadata, Type::JSONB),
        ],
    )
    .await?;
    let plain_key: String = created.get("key");
    let key_id: Uuid = created.get("key_id");
    check(
        created.get::<_, Option<String>>("org_id").as_deref() == Some(org_id.as_str())
            && created.get::<_, Option<String>>("user_id").is_none()
            && plain_key.starts_with("rs_test_")
            && created.get::<_, SystemTime>("expires_at") == expires
            && created.get::<_, Value>("permissions") == permissions
            && created.get::<_, Value>("metadata") == metadata,
        format!(
            "org key with no user: key_id {key_id} (uuid::Uuid), start {}, expires_at round-trips to the microsecond, \
             permissions/metadata come back as serde_json::Value",
            created.get::<_, String>("start")
        ),
    );

    // Parameters are typed by the statement: rate_limit_max is integer (i32), remaining
    // bigint (i64). An interval parameter is sent as text and cast in SQL.
    // Two limits: 5 a minute (the rate_limit_max/_window pair, named "default") and 2 an
    // hour (named "hour"). verify's rate_limits lists the pair first; the headers must come
    // from the tightest (the hour), not the first.
    let limited = once(
        &admin,
        "SELECT key, rate_limit_max, extract(epoch FROM rate_limit_window)::float8 AS window_s
           FROM apikey.create_api_key(org_id => $1, name => 'limited', permissions => $2,
                                      rate_limit_max => $3, rate_limit_window => $4::interval,
                                      rate_limits => $5)",
        &[
            (&org_id, Type::TEXT),
            (&json!({"mesa": ["read"]}), Type::JSONB),
            (&5i32, Type::INT4),
            (&"1 minute", Type::TEXT),
            (
                &json!([{"name": "hour", "limit": 2, "window": "1 hour"}]),
                Type::JSONB,
            ),
        ],
    )
    .await?;
    let limited_key: String = limited.get("key");
    check(
        limited.get::<_, Option<i32>>("rate_limit_max") == Some(5)
            && limited.get::<_, f64>("window_s") == 60.0,
        "rate-limited key: 5 a minute (the window read back as float8 seconds) and 2 an hour",
    );
    let quota = once(
        &admin,
        "SELECT key, remaining FROM apikey.create_api_key(org_id => $1, name => 'metered', permissions => $2,
               remaining => $3, refill_amount => $4, refill_interval => $5::interval)",
        &[(&org_id, Type::TEXT), (&json!({"mesa": ["read"]}), Type::JSONB), (&3i64, Type::INT8), (&3i64, Type::INT8), (&"1 day", Type::TEXT)],
    )
    .await?;
    let quota_key: String = quota.get("key");
    check(
        quota.get::<_, Option<i64>>("remaining") == Some(3),
        "metered key: 3 uses, refilled daily",
    );

    // 2./3. The API server's handler: verify on every request, status and headers from the row.
    let verify_stmt = Sent::new(&api_client, VERIFY, &[Type::TEXT, Type::JSONB]).await?;
    let mut api = Api {
        client: api_client,
        verify: verify_stmt,
    };
    let bearer = |k: &str| format!("Bearer {k}");

    let r = api.handle("/things", Some(&bearer(&plain_key))).await?;
    check(
        r.status == 200
            && r.code == "VALID"
            && r.org_id.as_deref() == Some(org_id.as_str())
            && r.header("X-RateLimit-Limit").is_none(),
        format!("GET /things with the key: 200, org {org_id}, no rate-limit headers"),
    );
    let r = api.handle("/admin", Some(&bearer(&plain_key))).await?;
    check(
        r.status == 403 && r.code == "INSUFFICIENT_PERMISSIONS",
        "GET /admin (needs mesa:admin): 403 INSUFFICIENT_PERMISSIONS",
    );
    let r = api.handle("/things", None).await?;
    check(
        r.status == 401
            && r.code == "KEY_NOT_FOUND"
            && r.header("WWW-Authenticate")
                .is_some_and(|h| h.starts_with("Bearer")),
        "no key: 401 KEY_NOT_FOUND with WWW-Authenticate",
    );
    let mistyped = format!(
        "{}{}",
        &plain_key[..plain_key.len() - 1],
        if plain_key.ends_with('A') { 'B' } else { 'A' }
    );
    let r = api.handle("/things", Some(&bearer(&mistyped))).await?;
    check(
        r.status == 401 && r.code == "KEY_NOT_FOUND",
        "a mistyped key: 401 KEY_NOT_FOUND",
    );

    for i in 1..=2 {
        let r = api.handle("/things", Some(&bearer(&limited_key))).await?;
        let reset: u64 = r.header("X-RateLimit-Reset").unwrap_or("0").parse()?;
        check(
            r.status == 200
                && r.header("X-RateLimit-Limit") == Some("2")
                && r.header("X-RateLimit-Remaining") == Some((2 - i).to_string().as_str())
                && reset > 3500
                && reset <= 3600,
            format!(
                "rate-limited key, request {i}: 200, X-RateLimit-Limit 2, Remaining {}, Reset {reset} s \
                 (all from verify's row)",
                2 - i
            ),
        );
    }
    let r = api.handle("/things", Some(&bearer(&limited_key))).await?;
    let reset: u64 = r.header("X-RateLimit-Reset").unwrap_or("0").parse()?;
    check(
        r.status == 429
            && r.code == "RATE_LIMITED"
            && r.header("X-RateLimit-Remaining") == Some("0")
            && reset > 3500
            && reset <= 3600
            && r.header("Retry-After")
                .and_then(|h| h.parse::<u64>().ok())
                .is_some_and(|retry| retry.abs_diff(reset) <= 1),
        format!("rate-limited key, request 3: 429 RATE_LIMITED, X-RateLimit-Remaining 0, Reset/Retry-After {reset} s"),
    );

    // A verify inside a transaction that rolls back spends nothing: the use comes back.
    let tx = api.client.transaction().await?;
    let v = verify(
        &tx,
        &api.verify,
        Some(&quota_key),
        Some(&json!({"mesa": ["read"]})),
    )
    .await?;
    tx.rollback().await?;
    check(
        v.code == "VALID" && v.remaining == Some(2),
        "metered key verified in a transaction: remaining 2 (an i64)",
    );
    for left in [2, 1, 0] {
        let r = api.handle("/things", Some(&bearer(&quota_key))).await?;
        check(
            r.status == 200 && r.header("X-Quota-Remaining") == Some(left.to_string().as_str()),
            format!(
                "metered key: 200, X-Quota-Remaining {left}{}",
                if left == 2 {
                    " (the rolled-back use was given back)"
                } else {
                    ""
                }
            ),
        );
    }
    let r = api.handle("/things", Some(&bearer(&quota_key))).await?;
    let retry: u64 = r.header("Retry-After").unwrap_or("0").parse()?;
    check(
        r.status == 429 && r.code == "USAGE_EXCEEDED" && retry > 86000 && retry <= 86400,
        format!("metered key exhausted: 429 USAGE_EXCEEDED, Retry-After {retry} s (next refill)"),
    );
    let v = verify(
        &api.client,
        &api.verify,
        Some(&quota_key),
        Some(&json!({"mesa": ["read"]})),
    )
    .await?;
    let wait = v.retry_after.unwrap_or_default();
    check(
        v.code == "USAGE_EXCEEDED"
            && wait > Duration::from_secs(23 * 3600)
            && wait <= Duration::from_secs(86400),
        format!("retry_after read (cast to milliseconds) as a Duration: {wait:?}"),
    );
    // Why the cast: interval has no Rust type here, not even String.
    let raw = once(
        &api.client,
        "SELECT retry_after FROM apikey.verify_api_key(NULL)",
        &[],
    )
    .await?;
    let err = match raw.try_get::<_, Option<String>>("retry_after") {
        Err(e) => std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| e.to_string()),
        Ok(_) => String::new(),
    };
    check(
        err.contains("interval"),
        format!("an uncast interval column cannot be read: \"{err}\""),
    );

    // 4. Errors by SQLSTATE.
    let app = connect(&app_user).await?;
    let refused = once(
        &app,
        "SELECT key FROM apikey.create_api_key(org_id => $1, name => 'sneaky')",
        &[(&org_id, Type::TEXT)],
    )
    .await;
    match refused {
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => check(
            true,
            format!(
                "{app_user} (not a member) creating an org key: 42501 ({})",
                message(&e)
            ),
        ),
        Err(e) => check(
            false,
            format!("42501 expected, got {}: {}", sqlstate(&e), message(&e)),
        ),
        Ok(_) => check(false, "an ordinary role cannot create an org key"),
    }
    let malformed = json!(["mesa", "read"]); // an array, not {"resource": [actions]}
    match verify(&api.client, &api.verify, Some(&plain_key), Some(&malformed)).await {
        Err(e) if e.code() == Some(&SqlState::INVALID_PARAMETER_VALUE) => check(
            true,
            format!("malformed required_permissions: 22023 ({})", message(&e)),
        ),
        Err(e) => check(
            false,
            format!("22023 expected, got {}: {}", sqlstate(&e), message(&e)),
        ),
        Ok(_) => check(false, "malformed required_permissions raises"),
    }

    // Prepared or not, as chosen in Sent::new.
    let named: i64 = once(
        &api.client,
        "SELECT count(*) FROM pg_prepared_statements WHERE strpos(statement, $1) > 0",
        &[(&"apikey.verify_api_key(", Type::TEXT)],
    )
    .await?
    .get(0);
    if via_pgbouncer() {
        check(named == 0, "through PgBouncer: verify ran as unnamed statements (query_typed; none in pg_prepared_statements)");
    } else {
        check(
            named == 1,
            "directly: verify is a server-side prepared statement on this connection",
        );
    }

    // 5. The figure: verifies per second on one connection, beside SELECT 1.
    let required = json!({"mesa": ["read"]});
    let key = Some(plain_key.as_str());
    let required = Some(&required);
    let one = Sent::new(&api.client, "SELECT 1 AS one", &[]).await?;
    let rates = measure(
        &api.client,
        &[
            (&api.verify, &[&key, &required], &|r: &Row| {
                r.get::<_, bool>("valid")
            }),
            (&one, &[], &|r: &Row| r.get::<_, i32>("one") == 1),
        ],
    )
    .await?;
    let (vps, sps) = (rates[0], rates[1]);
    let mode = if via_pgbouncer() {
        "unnamed statements via PgBouncer"
    } else {
        "prepared"
    };
    println!(
        "client figure: rust tokio-postgres 0.7 ({mode}): {vps:.0} verifies/s, SELECT 1 {sps:.0}/s"
    );
    Ok(())
}
