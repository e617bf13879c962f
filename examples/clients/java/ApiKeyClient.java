// pg_apikey from Java with plain JDBC (PgJDBC) and the JDK's com.sun.net.httpserver.
//
// The story every example in examples/clients tells:
//   1. a service role (a LOGIN role that is a member of apikey_service) provisions an
//      organization and organization keys with no user;
//   2. an API server verifies the key of every request: one prepared statement, the key a
//      bound parameter, the route's required permissions a Map sent as jsonb (this
//      example's API server connects as an untrusted role, which only verifies);
//   3. the verify row alone becomes an HTTP status (200/401/403/429) and rate-limit headers;
//   4. errors are told apart by SQLSTATE (42501 not allowed, 22023 bad argument);
//   5. a figure: verifies per second on one connection, beside SELECT 1.
//
// Build and run with the JDK alone (no Maven: Debian's libpostgresql-jdbc-java jar):
//   javac -cp /usr/share/java/postgresql.jar -d classes ApiKeyClient.java
//   java -cp classes:/usr/share/java/postgresql.jar ApiKeyClient
// Connection settings come from PGHOST, PGPORT and PGDATABASE (read here: JDBC does not);
// APIKEY_VIA=pgbouncer when PGPORT is a PgBouncer in transaction pool mode. Every
// "client check ok" line is asserted against what the database returned.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import org.postgresql.util.PGInterval;
import org.postgresql.util.PGobject;
import org.postgresql.util.PSQLException;

public final class ApiKeyClient {
    static final boolean VIA_PGBOUNCER = "pgbouncer".equals(System.getenv("APIKEY_VIA"));
    static final String SERVICE_USER = env("APIKEY_SERVICE_USER", "clients_service");
    static final String APP_USER = env("APIKEY_APP_USER", "clients_app");
    static final int HTTP_PORT = Integer.parseInt(env("APIKEY_HTTP_PORT", "28984"));

    static String env(String name, String fallback) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? fallback : v;
    }

    static Connection connect(String user) throws SQLException {
        String url = "jdbc:postgresql://" + env("PGHOST", "127.0.0.1") + ":" + env("PGPORT", "5432") + "/"
                + env("PGDATABASE", "postgres");
        Properties props = new Properties();
        props.setProperty("user", user);
        // Directly: PgJDBC's default prepareThreshold (5) turns a PreparedStatement into a
        // named server-side prepared statement from its 5th execution on (Bind/Execute only).
        // Through PgBouncer 1.18 in transaction mode a named statement lives on one server
        // connection that the next transaction may not get (42P05 / 26000): prepareThreshold=0
        // keeps every execution on the unnamed statement, parameters still bound.
        if (VIA_PGBOUNCER) props.setProperty("prepareThreshold", "0");
        // JDBC's default autoCommit=true: every verify is its own short transaction.
        return DriverManager.getConnection(url, props);
    }

    static void check(boolean condition, String what) {
        if (!condition) {
            System.err.println("client check FAILED: " + what);
            System.exit(1);
        }
        System.out.println("client check ok: " + what);
    }

    // --- jsonb: Java has no JSON in its standard library; a Map/List/String/Number writer
    // is enough for permissions. Keys are written in jsonb's own order (shorter first, then
    // bytewise), so that the text equals what PostgreSQL returns for the same value.
    static String toJson(Object v) {
        if (v == null) return "null";
        if (v instanceof String s) {
            StringBuilder b = new StringBuilder("\"");
            for (char c : s.toCharArray()) {
                if (c == '"' || c == '\\') b.append('\\').append(c);
                else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                else b.append(c);
            }
            return b.append('"').toString();
        }
        if (v instanceof Number || v instanceof Boolean) return v.toString();
        List<String> parts = new ArrayList<>();
        if (v instanceof Map<?, ?> m) {
            List<String> keys = new ArrayList<>();
            for (Object k : m.keySet()) keys.add((String) k);
            keys.sort(Comparator.comparingInt(String::length).thenComparing(Comparator.naturalOrder()));
            for (String k : keys) parts.add(toJson(k) + ": " + toJson(m.get(k)));
            return "{" + String.join(", ", parts) + "}";
        }
        for (Object e : (List<?>) v) parts.add(toJson(e));
        return "[" + String.join(", ", parts) + "]";
    }

    /** A jsonb parameter: a typed PGobject, so no cast is needed in the SQL. */
    static PGobject jsonb(Object value) throws SQLException {
        PGobject o = new PGobject();
        o.setType("jsonb");
        o.setValue(value == null ? null : toJson(value));
        return o;
    }

    /** interval arrives as a PGInterval; a month counts 30 days, a year 365.25 (as PostgreSQL's extract(epoch ...)). */
    static Duration toDuration(PGInterval iv) {
        if (iv == null) return null;
        long days = Math.round(iv.getYears() * 365.25) + iv.getMonths() * 30L + iv.getDays();
        return Duration.ofDays(days).plusHours(iv.getHours()).plusMinutes(iv.getMinutes())
                .plusSeconds(iv.getWholeSeconds()).plusNanos(iv.getMicroSeconds() * 1000L);
    }

    /** The server's message without PgJDBC's decoration (hint, position). */
    static String message(SQLException e) {
        return e instanceof PSQLException p && p.getServerErrorMessage() != null
                ? p.getServerErrorMessage().getMessage() : e.getMessage();
    }

    static long secondsUp(Duration d) {
        return (d.toMillis() + 999) / 1000;
    }

    // --- verify ---------------------------------------------------------------------------

    /**
     * verify_api_key's row, with the entry of its rate_limits (jsonb) that has the least
     * remaining taken apart in the same statement: Java's standard library has no JSON
     * parser, and SQL has one. The function runs once (a function in FROM); the LATERAL
     * subquery only reads its rate_limits column (NULL when no rate limit applies).
     */
    static final String VERIFY = "SELECT v.valid, v.code, v.key_id, v.org_id, v.user_id, v.permissions, v.metadata,"
            + " v.remaining, v.expires_at, v.retry_after, t.rl_limit, t.rl_remaining, t.rl_reset_at"
            + " FROM apikey.verify_api_key(?, ?) AS v"
            + " LEFT JOIN LATERAL (SELECT (e->>'limit')::bigint AS rl_limit, (e->>'remaining')::bigint AS rl_remaining,"
            + "                           (e->>'reset_at')::timestamptz AS rl_reset_at"
            + "                      FROM jsonb_array_elements(v.rate_limits) AS e"
            + "                     ORDER BY (e->>'remaining')::bigint LIMIT 1) AS t ON true";

    /** The tightest rate limit of a verify: its limit, what is left, when its window ends (or null). */
    record Tightest(long limit, long remaining, OffsetDateTime resetAt) {}

    record Verdict(boolean valid, String code, UUID keyId, String orgId, String userId, String permissions,
            String metadata, Long remaining, OffsetDateTime expiresAt, Duration retryAfter, Tightest rateLimit) {}

    /** One verify on a PreparedStatement of VERIFY, kept for the connection's lifetime. */
    static Verdict verify(PreparedStatement ps, String key, Object required) throws SQLException {
        ps.setString(1, key);
        ps.setObject(2, jsonb(required));
        try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            return new Verdict(rs.getBoolean("valid"), rs.getString("code"), rs.getObject("key_id", UUID.class),
                    rs.getString("org_id"), rs.getString("user_id"), rs.getString("permissions"),
                    rs.getString("metadata"), rs.getObject("remaining", Long.class),
                    rs.getObject("expires_at", OffsetDateTime.class),
                    toDuration((PGInterval) rs.getObject("retry_after")),
                    rs.getObject("rl_limit") == null ? null
                            : new Tightest(rs.getLong("rl_limit"), rs.getLong("rl_remaining"),
                                    rs.getObject("rl_reset_at", OffsetDateTime.class)));
        }
    }

    /**
     * Status and headers for a verify row, from the row alone (docs/application-developers.md,
     * "Status codes and headers"): X-RateLimit-Reset in whole seconds from now.
     */
    static Map<String, String> toHttp(Verdict v, int[] status) {
        status[0] = switch (v.code()) {
            case "VALID" -> 200;
            case "INSUFFICIENT_PERMISSIONS" -> 403;
            case "RATE_LIMITED", "USAGE_EXCEEDED" -> 429;
            default -> 401; // KEY_NOT_FOUND, KEY_DISABLED, KEY_EXPIRED
        };
        Map<String, String> h = new LinkedHashMap<>();
        if (status[0] == 401) h.put("WWW-Authenticate", "Bearer realm=\"api\"");
        Tightest t = v.rateLimit();
        if (t != null) {
            long reset = t.resetAt() == null ? 0
                    : Math.max(0, secondsUp(Duration.between(OffsetDateTime.now(), t.resetAt())));
            h.put("X-RateLimit-Limit", Long.toString(t.limit()));
            h.put("X-RateLimit-Remaining", Long.toString(t.remaining()));
            h.put("X-RateLimit-Reset", Long.toString(reset));
        }
        if (v.remaining() != null) h.put("X-Quota-Remaining", v.remaining().toString());
        if (v.retryAfter() != null) h.put("Retry-After", Long.toString(secondsUp(v.retryAfter())));
        return h;
    }

    static String body(String code, String orgId) {
        Map<String, Object> m = new HashMap<>();
        m.put("code", code);
        m.put("org_id", orgId);
        return toJson(m);
    }

    /** The API's routes and the permissions each requires. */
    static final Map<String, Map<String, List<String>>> ROUTES = Map.of(
            "/things", Map.of("mesa", List.of("read")),
            "/admin", Map.of("mesa", List.of("admin")));

    /** The API server: one connection (an untrusted role) and its verify statement. */
    static final class Api {
        final Connection conn;
        final PreparedStatement verify;

        Api(Connection conn) throws SQLException {
            this.conn = conn;
            this.verify = conn.prepareStatement(VERIFY);
        }

        void handle(HttpExchange ex) throws IOException {
            int[] status = {500};
            Map<String, String> headers = Map.of();
            String out = "{}";
            Map<String, List<String>> required = ROUTES.get(ex.getRequestURI().getPath());
            if (required == null) {
                status[0] = 404;
            } else {
                String auth = ex.getRequestHeaders().getFirst("Authorization");
                String key = auth != null && auth.startsWith("Bearer ") ? auth.substring(7) : null;
                try {
                    Verdict v = verify(verify, key, required); // a NULL key answers KEY_NOT_FOUND
                    headers = toHttp(v, status);
                    out = body(v.code(), v.orgId());
                } catch (SQLException e) {
                    out = body("ERROR " + e.getSQLState(), null);
                }
            }
            byte[] bytes = out.getBytes(StandardCharsets.UTF_8);
            headers.forEach((k, val) -> ex.getResponseHeaders().set(k, val));
            ex.getResponseHeaders().set("Content-Type", "application/json");
            ex.sendResponseHeaders(status[0], bytes.length);
            ex.getResponseBody().write(bytes);
            ex.close();
        }
    }

    record Reply(int status, java.net.http.HttpHeaders headers, String body) {
        String header(String name) {
            return headers.firstValue(name).orElse(null);
        }
    }

    static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    static Reply get(String path, String key) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + HTTP_PORT + path))
                .timeout(Duration.ofSeconds(10));
        if (key != null) b.header("Authorization", "Bearer " + key);
        HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
        return new Reply(r.statusCode(), r.headers(), r.body());
    }

    interface RowCheck {
        boolean ok(ResultSet rs) throws SQLException;
    }

    /**
     * Statements per second for each statement (its parameters set) on one connection.
     * Interleaved chunks, so that each sees the same machine (a shared one is noisy);
     * bounded in time and count.
     */
    static double[] measure(PreparedStatement[] statements, RowCheck[] checks) throws SQLException {
        long start = System.nanoTime();
        long[] spent = new long[statements.length];
        int[] done = new int[statements.length];
        while (System.nanoTime() - start < 4_000_000_000L && Arrays.stream(done).min().orElse(0) < 20_000) {
            for (int i = 0; i < statements.length; i++) {
                long t = System.nanoTime();
                for (int n = 0; n < 200; n++) {
                    try (ResultSet rs = statements[i].executeQuery()) {
                        if (!rs.next() || !checks[i].ok(rs)) check(false, "every measured call answers as expected");
                    }
                }
                spent[i] += System.nanoTime() - t;
                done[i] += 200;
            }
        }
        double[] rates = new double[statements.length];
        for (int i = 0; i < rates.length; i++) rates[i] = done[i] / (spent[i] / 1e9);
        return rates;
    }

    public static void main(String[] args) throws Exception {
        String orgId = "acme-java-" + (VIA_PGBOUNCER ? "pgbouncer" : "direct") + "-"
                + Integer.toHexString(new SecureRandom().nextInt(0x1000000));
        // The API server verifies as an untrusted role (no key of its own, no membership): it
        // needs nothing else, since every header comes from verify's row.
        try (Connection admin = connect(SERVICE_USER); Connection apiConn = connect(APP_USER)) {
            run(orgId, admin, new Api(apiConn));
        }
    }

    static void run(String orgId, Connection admin, Api api) throws Exception {
        // 1. Provisioning, as the service role.
        try (PreparedStatement ps = admin.prepareStatement(
                "SELECT current_user AS role, pg_has_role('apikey_service', 'MEMBER') AS trusted");
                ResultSet rs = ps.executeQuery()) {
            rs.next();
            check(SERVICE_USER.equals(rs.getString("role")) && rs.getBoolean("trusted"),
                    SERVICE_USER + " is a trusted caller (member of apikey_service)");
        }
        try (PreparedStatement ps = admin.prepareStatement("SELECT id, created_at FROM apikey.create_organization(?, ?)")) {
            ps.setString(1, orgId);
            ps.setString(2, "Acme (Java)");
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                OffsetDateTime created = rs.getObject("created_at", OffsetDateTime.class);
                check(orgId.equals(rs.getString("id"))
                        && Duration.between(created, OffsetDateTime.now()).abs().compareTo(Duration.ofMinutes(5)) < 0,
                        "organization " + orgId + " created; created_at is an OffsetDateTime");
            }
        }

        OffsetDateTime expires = OffsetDateTime.now(ZoneOffset.UTC).plusDays(30).truncatedTo(ChronoUnit.MICROS);
        Map<String, Object> permissions = Map.of("mesa", List.of("read", "write"));
        Map<String, Object> metadata = Map.of("plan", "pro", "seats", 5);
        String plainKey;
        try (PreparedStatement ps = admin.prepareStatement(
                "SELECT key_id, key, start, org_id, user_id, expires_at, permissions, metadata"
                        + " FROM apikey.create_api_key(org_id => ?, name => ?, prefix => ?, expires_at => ?,"
                        + " permissions => ?, metadata => ?)")) {
            ps.setString(1, orgId);
            ps.setString(2, "reader");
            ps.setString(3, "jv_test_");
            ps.setObject(4, expires);
            ps.setObject(5, jsonb(permissions));
            ps.setObject(6, jsonb(metadata));
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                plainKey = rs.getString("key");
                UUID keyId = rs.getObject("key_id", UUID.class);
                check(orgId.equals(rs.getString("org_id")) && rs.getString("user_id") == null
                        && plainKey.startsWith("jv_test_")
                        && rs.getObject("expires_at", OffsetDateTime.class).isEqual(expires)
                        && toJson(permissions).equals(rs.getString("permissions"))
                        && toJson(metadata).equals(rs.getString("metadata")),
                        "org key with no user: key_id " + keyId + " (java.util.UUID), start " + rs.getString("start")
                                + ", expires_at round-trips to the microsecond, permissions/metadata come back as "
                                + rs.getString("permissions") + " / " + rs.getString("metadata"));
            }
        }
        // Two limits: 5 a minute (the rate_limit_max/_window pair, named "default") and 2 an
        // hour (named "hour"). verify's rate_limits lists the pair first; the headers must
        // come from the tightest (the hour), not the first.
        String limitedKey;
        try (PreparedStatement ps = admin.prepareStatement(
                "SELECT key, rate_limit_max, rate_limit_window FROM apikey.create_api_key(org_id => ?, name => 'limited',"
                        + " permissions => ?, rate_limit_max => ?, rate_limit_window => ?, rate_limits => ?)")) {
            ps.setString(1, orgId);
            ps.setObject(2, jsonb(Map.of("mesa", List.of("read"))));
            ps.setInt(3, 5);
            ps.setObject(4, new PGInterval("1 minute"));
            ps.setObject(5, jsonb(List.of(Map.of("name", "hour", "limit", 2, "window", "1 hour"))));
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                limitedKey = rs.getString("key");
                check(rs.getInt("rate_limit_max") == 5
                        && Duration.ofMinutes(1).equals(toDuration((PGInterval) rs.getObject("rate_limit_window"))),
                        "rate-limited key: 5 a minute (the window passed and read back as a PGInterval) and 2 an hour");
            }
        }
        String quotaKey;
        try (PreparedStatement ps = admin.prepareStatement(
                "SELECT key, remaining FROM apikey.create_api_key(org_id => ?, name => 'metered', permissions => ?,"
                        + " remaining => ?, refill_amount => ?, refill_interval => ?)")) {
            ps.setString(1, orgId);
            ps.setObject(2, jsonb(Map.of("mesa", List.of("read"))));
            ps.setLong(3, 3);
            ps.setLong(4, 3);
            ps.setObject(5, new PGInterval("1 day"));
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                quotaKey = rs.getString("key");
                check(Long.valueOf(3).equals(rs.getObject("remaining", Long.class)), "metered key: 3 uses, refilled daily");
            }
        }

        // 2./3. The API server: verify on every request, status and headers from the row.
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), HTTP_PORT), 0);
        server.createContext("/", api::handle);
        server.start();
        try {
            Reply r = get("/things", plainKey);
            check(r.status() == 200 && r.body().equals(body("VALID", orgId)) && r.header("X-RateLimit-Limit") == null,
                    "GET /things with the key: 200, org " + orgId + ", no rate-limit headers");
            r = get("/admin", plainKey);
            check(r.status() == 403 && r.body().equals(body("INSUFFICIENT_PERMISSIONS", orgId)),
                    "GET /admin (needs mesa:admin): 403 INSUFFICIENT_PERMISSIONS");
            r = get("/things", null);
            check(r.status() == 401 && r.body().equals(body("KEY_NOT_FOUND", null))
                    && r.header("WWW-Authenticate").startsWith("Bearer"), "no key: 401 KEY_NOT_FOUND with WWW-Authenticate");
            String mistyped = plainKey.substring(0, plainKey.length() - 1) + (plainKey.endsWith("A") ? "B" : "A");
            r = get("/things", mistyped);
            check(r.status() == 401 && r.body().equals(body("KEY_NOT_FOUND", null)), "a mistyped key: 401 KEY_NOT_FOUND");

            for (int i = 1; i <= 2; i++) {
                r = get("/things", limitedKey);
                long reset = Long.parseLong(r.header("X-RateLimit-Reset"));
                check(r.status() == 200 && "2".equals(r.header("X-RateLimit-Limit"))
                        && Integer.toString(2 - i).equals(r.header("X-RateLimit-Remaining")) && reset > 3500 && reset <= 3600,
                        "rate-limited key, request " + i + ": 200, X-RateLimit-Limit 2, Remaining " + (2 - i) + ", Reset "
                                + reset + " s (all from verify's row)");
            }
            r = get("/things", limitedKey);
            long reset = Long.parseLong(r.header("X-RateLimit-Reset"));
            check(r.status() == 429 && r.body().equals(body("RATE_LIMITED", orgId))
                    && "0".equals(r.header("X-RateLimit-Remaining")) && reset > 3500 && reset <= 3600
                    && Math.abs(Long.parseLong(r.header("Retry-After")) - reset) <= 1,
                    "rate-limited key, request 3: 429 RATE_LIMITED, X-RateLimit-Remaining 0, Reset/Retry-After " + reset + " s");

            // A verify inside a transaction that rolls back spends nothing: the use comes back.
            // (The handler thread is idle: requests are sent one at a time.)
            api.conn.setAutoCommit(false);
            Verdict v = verify(api.verify, quotaKey, Map.of("mesa", List.of("read")));
            api.conn.rollback();
            api.conn.setAutoCommit(true);
            check(v.code().equals("VALID") && Long.valueOf(2).equals(v.remaining()),
                    "metered key verified in a transaction: remaining 2 (a Long)");
            for (long left = 2; left >= 0; left--) {
                r = get("/things", quotaKey);
                check(r.status() == 200 && Long.toString(left).equals(r.header("X-Quota-Remaining")),
                        "metered key: 200, X-Quota-Remaining " + left
                                + (left == 2 ? " (the rolled-back use was given back)" : ""));
            }
            r = get("/things", quotaKey);
            long retry = Long.parseLong(r.header("Retry-After"));
            check(r.status() == 429 && r.body().equals(body("USAGE_EXCEEDED", orgId)) && retry > 86000 && retry <= 86400,
                    "metered key exhausted: 429 USAGE_EXCEEDED, Retry-After " + retry + " s (next refill)");
        } finally {
            server.stop(0);
        }
        Verdict exhausted = verify(api.verify, quotaKey, Map.of("mesa", List.of("read")));
        check(exhausted.code().equals("USAGE_EXCEEDED") && exhausted.retryAfter().compareTo(Duration.ofHours(23)) > 0
                && exhausted.retryAfter().compareTo(Duration.ofDays(1)) <= 0,
                "retry_after read as a PGInterval, converted to a Duration: " + exhausted.retryAfter());

        // 4. Errors by SQLSTATE.
        try (Connection app = connect(APP_USER);
                PreparedStatement ps = app.prepareStatement(
                        "SELECT key FROM apikey.create_api_key(org_id => ?, name => 'sneaky')")) {
            ps.setString(1, orgId);
            ps.executeQuery().close();
            check(false, "an ordinary role cannot create an org key");
        } catch (SQLException e) {
            check("42501".equals(e.getSQLState()),
                    APP_USER + " (not a member) creating an org key: " + e.getSQLState() + " (" + message(e) + ")");
        }
        try {
            verify(api.verify, plainKey, List.of("mesa", "read")); // a list, not {"resource": [actions]}
            check(false, "malformed required_permissions raises");
        } catch (SQLException e) {
            check("22023".equals(e.getSQLState()),
                    "malformed required_permissions: " + e.getSQLState() + " (" + message(e) + ")");
        }

        // Prepared or not, as chosen in connect().
        long named;
        try (PreparedStatement ps = api.conn.prepareStatement(
                "SELECT count(*) FROM pg_prepared_statements WHERE strpos(statement, ?) > 0")) {
            ps.setString(1, "apikey.verify_api_key(");
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                named = rs.getLong(1);
            }
        }
        if (VIA_PGBOUNCER) {
            check(named == 0, "through PgBouncer: verify ran as unnamed statements (prepareThreshold=0; none in pg_prepared_statements)");
        } else {
            check(named == 1, "directly: verify is a server-side prepared statement on this connection");
        }

        // 5. The figure: verifies per second on one connection, beside SELECT 1.
        api.verify.setString(1, plainKey);
        api.verify.setObject(2, jsonb(Map.of("mesa", List.of("read"))));
        double[] rates;
        try (PreparedStatement one = api.conn.prepareStatement("SELECT 1 AS one")) {
            rates = measure(new PreparedStatement[] {api.verify, one},
                    new RowCheck[] {rs -> rs.getBoolean("valid"), rs -> rs.getInt("one") == 1});
        }
        double vps = rates[0], sps = rates[1];
        System.out.printf("client figure: java pgjdbc %s (%s): %.0f verifies/s, SELECT 1 %.0f/s%n",
                api.conn.getMetaData().getDriverVersion(),
                VIA_PGBOUNCER ? "unnamed statements via PgBouncer" : "prepared", vps, sps);
    }
}
