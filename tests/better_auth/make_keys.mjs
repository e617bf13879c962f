// Make the "before" state of a migration from better-auth's api-key plugin to pg_apikey:
// better-auth's own tables, users, organizations with members, and API keys of every kind,
// all made and used through better-auth 1.7.5 itself (server-side auth.api calls). Then
// read every key back through better-auth's own verify and write, for each key, its
// plaintext, better-auth's answer, and what pg_apikey must answer once the key has been
// imported by examples/migrate_from_better_auth.sql. tests/better_auth/check.py compares.
//
//   node make_keys.mjs OUT.json
//
// The database comes from the libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE), read by
// node-postgres itself. The database must be fresh: better-auth's tables are created here.
// Nothing here knows about pg_apikey; this is what an application's data looks like.
import { writeFileSync } from "node:fs";
import pg from "pg";
import { betterAuth } from "better-auth";
import { organization } from "better-auth/plugins/organization";
import { getMigrations } from "better-auth/db/migration";
import { apiKey } from "@better-auth/api-key";

const OUT = process.argv[2];
if (!OUT) {
    console.error("usage: node make_keys.mjs OUT.json");
    process.exit(2);
}

// The configId of the api-key configuration whose keys belong to organizations. run.sh
// passes the same name to the migration (psql -v org_config_ids=org).
const ORG_CONFIG = "org";
const HOUR_MS = 3600 * 1000;

const pool = new pg.Pool({ max: 4 });
const options = {
    database: pool,
    baseURL: "http://127.0.0.1:3000",
    secret: "pg-apikey-better-auth-migration-test-secret-0123456789",
    telemetry: { enabled: false },
    logger: { level: "error", disabled: true },
    emailAndPassword: { enabled: true },
    plugins: [
        organization(),
        // Two configurations: keys of the first belong to users (better-auth's default),
        // keys of the second to organizations. Each row records its configuration in
        // "configId"; "referenceId" is a user id or an organization id accordingly.
        apiKey([
            { configId: "default", enableMetadata: true },
            { configId: ORG_CONFIG, references: "organization", enableMetadata: true },
        ]),
    ],
};

async function main() {
    const { runMigrations } = await getMigrations(options);
    await runMigrations();
    const auth = betterAuth(options);
    const api = auth.api;
    const q = (text, params) => pool.query(text, params);

    // --- users, organizations, members ----------------------------------------------------
    const user = async (name) =>
        (await api.signUpEmail({ body: { name, email: `${name}@example.com`, password: `${name}-password-123` } })).user;
    const alice = await user("alice");
    const bob = await user("bob");
    const carol = await user("carol");
    const dave = await user("dave");
    const erin = await user("erin");

    const acme = await api.createOrganization({ body: { name: "Acme Corp", slug: "acme", userId: alice.id } });
    const globex = await api.createOrganization({ body: { name: "Globex", slug: "globex", userId: bob.id } });
    const addMember = (organizationId, userId, role) => api.addMember({ body: { organizationId, userId, role } });
    await addMember(acme.id, bob.id, "member");
    // Several roles at once: better-auth stores them comma-separated ("admin,owner").
    await addMember(acme.id, carol.id, ["admin", "owner"]);
    await addMember(acme.id, dave.id, "admin");
    await addMember(globex.id, alice.id, ["member", "admin"]);
    await addMember(globex.id, erin.id, "member");

    // --- keys ----------------------------------------------------------------------------
    // Every key is created through auth.api.createApiKey, as an application's server does.
    const keys = [];
    const create = async (label, body, expect) => {
        const made = await api.createApiKey({ body });
        const k = { label, id: made.id, key: made.key, configId: made.configId, expect };
        keys.push(k);
        return k;
    };
    const verify = (key) => api.verifyApiKey({ body: { key } });
    const use = async (k, n) => {
        for (let i = 0; i < n; i++) {
            const r = await verify(k.key);
            if (!r.valid) throw new Error(`${k.label}: use ${i + 1} of ${n} refused: ${JSON.stringify(r.error)}`);
        }
    };
    const userKey = (extra) => ({ userId: alice.id, ...extra });
    const noRate = { rateLimitEnabled: false };

    // pg_apikey's answers, verify after verify, once imported ({code, remaining}; remaining
    // only where it is checked).
    const valid = [{ code: "VALID", remaining: null }, { code: "VALID", remaining: null }];

    await create("plain", userKey({ ...noRate }), { steps: valid });
    // better-auth's defaults: every key gets rateLimitEnabled, 10 requests per day.
    await create("defaults", userKey({ name: "with better-auth's defaults" }), { steps: valid });
    await create("prefixed", userKey({ ...noRate, name: "prefixed", prefix: "ba_live_" }), { steps: valid });
    await create(
        "permissions-metadata",
        userKey({
            ...noRate,
            name: "permissions and metadata",
            permissions: { files: ["read", "write"], projects: ["read"] },
            metadata: { plan: "pro", seats: 5, ratio: 0.25, tags: ["a", "b"], nested: { x: null, ok: true }, text: "naïve 😀" },
        }),
        {
            steps: valid,
            // Containment: met by the key's permissions, and not.
            requires: [
                { permissions: { files: ["read"] }, code: "VALID" },
                { permissions: { files: ["delete"] }, code: "INSUFFICIENT_PERMISSIONS" },
            ],
        },
    );
    const remaining = await create("remaining", userKey({ ...noRate, name: "quota", remaining: 5 }), {
        // 5, used twice here and once by the read-back: 2 left.
        steps: [
            { code: "VALID", remaining: 1 },
            { code: "VALID", remaining: 0 },
            { code: "USAGE_EXCEEDED", remaining: 0 },
        ],
    });
    await use(remaining, 2);
    const exhausted = await create("exhausted", userKey({ ...noRate, name: "used up", remaining: 1 }), {
        steps: [{ code: "USAGE_EXCEEDED", remaining: 0 }],
    });
    await use(exhausted, 1);
    // A quota refilled every hour, used up; the next refill is an hour away.
    const refillOut = await create(
        "refill-used-up",
        userKey({ ...noRate, name: "refill, used up", remaining: 2, refillAmount: 10, refillInterval: HOUR_MS }),
        { steps: [{ code: "USAGE_EXCEEDED", remaining: 0 }] },
    );
    await use(refillOut, 2);
    // A quota whose refill is due (made two hours ago, per SQL below): better-auth's read-back
    // refills it (10, one spent: 9) and records lastRefillAt; pg_apikey must not refill again.
    await create(
        "refill-due",
        userKey({ ...noRate, name: "refill, due", remaining: 0, refillAmount: 10, refillInterval: HOUR_MS }),
        { steps: [{ code: "VALID", remaining: 8 }, { code: "VALID", remaining: 7 }] },
    );
    // Rate limited: 3 per hour, used up in better-auth. pg_apikey does not carry the
    // request count: imported keys start a fresh window.
    const rated = await create(
        "rate-limited",
        userKey({ name: "3 per hour", rateLimitEnabled: true, rateLimitMax: 3, rateLimitTimeWindow: HOUR_MS }),
        {
            steps: [
                { code: "VALID", remaining: null },
                { code: "VALID", remaining: null },
                { code: "VALID", remaining: null },
                { code: "RATE_LIMITED", remaining: null },
            ],
            differs: "better-auth's request count in the current window is not carried: the imported key starts a fresh window",
        },
    );
    await use(rated, 3);
    await create("expiring", userKey({ ...noRate, name: "expires in 7 days", expiresIn: 7 * 24 * 3600 }), { steps: valid });
    // better-auth refuses an expiry under a day; this one is moved into the past by SQL below.
    await create("expired", userKey({ ...noRate, name: "expired", expiresIn: 24 * 3600 }), {
        steps: [{ code: "KEY_EXPIRED" }],
    });
    const disabled = await create("disabled", userKey({ ...noRate, name: "disabled" }), { steps: [{ code: "KEY_DISABLED" }] });
    await api.updateApiKey({ body: { keyId: disabled.id, userId: alice.id, enabled: false } });
    // Metadata as better-auth versions before 1.4 wrote it: a JSON string holding JSON text.
    // better-auth reads it as the object (and rewrites the row on its next read); so must
    // the migration. Encoded that way by SQL below, after the read-back.
    await create("legacy-metadata", userKey({ ...noRate, name: "legacy metadata", metadata: { legacy: true, n: 1 } }), {
        steps: valid,
    });
    await create("other-user", { ...noRate, userId: bob.id, name: "bob's" }, { steps: valid });
    // Organization keys: the second configuration. Made by a member allowed to (the owner).
    await create(
        "org",
        { ...noRate, configId: ORG_CONFIG, organizationId: acme.id, userId: alice.id, name: "acme ci" },
        { steps: valid },
    );
    await create(
        "org-permissions-metadata",
        {
            ...noRate,
            configId: ORG_CONFIG,
            organizationId: globex.id,
            userId: bob.id,
            name: "globex deploy",
            prefix: "gx_",
            permissions: { deployments: ["create", "read"] },
            metadata: { team: "platform" },
        },
        { steps: valid },
    );
    // An organization deleted in better-auth: its members go, its keys stay (and better-auth
    // still accepts them). pg_apikey has no such organization: the migration skips them.
    const initech = await api.createOrganization({ body: { name: "Initech", slug: "initech", userId: dave.id } });
    await create(
        "org-deleted",
        { ...noRate, configId: ORG_CONFIG, organizationId: initech.id, userId: dave.id, name: "initech" },
        {
            steps: [{ code: "KEY_NOT_FOUND" }],
            differs: "its organization was deleted in better-auth, which still accepts the key; the migration skips it",
            imported: false,
        },
    );
    const signedIn = await api.signInEmail({
        body: { email: "dave@example.com", password: "dave-password-123" },
        returnHeaders: true,
    });
    const cookie = signedIn.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
    await api.deleteOrganization({ body: { organizationId: initech.id }, headers: new Headers({ cookie }) });
    const orgQuota = await create(
        "org-quota",
        { configId: ORG_CONFIG, organizationId: acme.id, userId: alice.id, name: "acme quota", remaining: 100, rateLimitMax: 50, rateLimitTimeWindow: 60 * 1000 },
        { steps: [{ code: "VALID", remaining: 96 }, { code: "VALID", remaining: 95 }] },
    );
    await use(orgQuota, 2);

    // Changes better-auth's API does not allow, made as they would be found in old data.
    const byLabel = Object.fromEntries(keys.map((k) => [k.label, k]));
    // A moment for the expired-key sweeps that createApiKey/updateApiKey start without
    // waiting, before a key is made to look expired (better-auth deletes expired keys).
    await new Promise((r) => setTimeout(r, 300));
    // (Milliseconds, as better-auth writes times: JavaScript's Date has no finer.)
    await q(`UPDATE public.apikey SET "expiresAt" = date_trunc('milliseconds', now() - interval '1 hour') WHERE id = $1`, [
        byLabel.expired.id,
    ]);
    await q(`UPDATE public.apikey SET "createdAt" = date_trunc('milliseconds', now() - interval '2 hours') WHERE id = $1`, [
        byLabel["refill-due"].id,
    ]);

    // --- better-auth's answers, read back --------------------------------------------------
    // Through better-auth's verify (which spends a use of a limited key, like any request).
    // better-auth deletes a key when it answers KEY_EXPIRED, or USAGE_EXCEEDED without a
    // refill; such rows are put back as they were, to be migrated (an application may
    // still hold such rows: better-auth deletes them only when they are next used).
    for (const k of keys) {
        const before = (await q(`SELECT * FROM public.apikey WHERE id = $1`, [k.id])).rows[0];
        const r = await verify(k.key);
        const after = (await q(`SELECT 1 FROM public.apikey WHERE id = $1`, [k.id])).rowCount;
        k.deletedByBetterAuth = after === 0;
        if (k.deletedByBetterAuth) {
            const cols = Object.keys(before);
            await q(
                `INSERT INTO public.apikey (${cols.map((c) => `"${c}"`).join(", ")})
                 VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")})`,
                cols.map((c) => before[c]),
            );
        }
        k.betterAuth = {
            valid: r.valid,
            code: r.valid ? "VALID" : r.error?.code ?? null,
            remaining: r.key ? r.key.remaining : null,
            permissions: r.key ? r.key.permissions : null,
            metadata: r.key ? r.key.metadata : null,
            referenceId: r.key ? r.key.referenceId : null,
        };
    }
    await q(
        `UPDATE public.apikey SET metadata = to_jsonb(metadata)::text WHERE id = $1`,
        [byLabel["legacy-metadata"].id],
    );

    // --- what pg_apikey must answer --------------------------------------------------------
    const orgOf = new Set([acme.id, globex.id, initech.id]);
    const rows = Object.fromEntries(
        (await q(`SELECT * FROM public.apikey`)).rows.map((r) => [r.id, r]),
    );
    if (Object.keys(rows).length !== keys.length) throw new Error(`expected ${keys.length} apikey rows, found ${Object.keys(rows).length}`);
    const out = keys.map((k) => {
        const row = rows[k.id];
        const isOrg = row.configId === ORG_CONFIG;
        if (isOrg && !orgOf.has(row.referenceId)) throw new Error(`${k.label}: referenceId is not an organization`);
        // better-auth's answer as pg_apikey words it. Where they differ by design, say so.
        const ba = k.betterAuth.code;
        const first = k.expect.steps[0].code;
        if (ba !== first && !k.expect.differs) throw new Error(`${k.label}: better-auth says ${ba}, the expectation ${first}`);
        return {
            label: k.label,
            key: k.key,
            better_auth: {
                id: k.id,
                config_id: row.configId,
                answer: k.betterAuth,
                deleted_on_verify: k.deletedByBetterAuth,
                remaining: row.remaining,
                row_metadata_text: row.metadata,
            },
            pg_apikey: {
                org_id: isOrg ? row.referenceId : null,
                user_id: isOrg ? null : row.referenceId,
                name: row.name,
                prefix: row.prefix,
                start: row.start,
                enabled: row.enabled,
                expires_at: row.expiresAt ? row.expiresAt.toISOString() : null,
                created_at: row.createdAt.toISOString(),
                last_used_at: row.lastRequest ? row.lastRequest.toISOString() : null,
                // What better-auth hands the application for this key (verify's answer, or,
                // for refused keys, the stored JSON as better-auth parses it).
                permissions: row.permissions ? JSON.parse(row.permissions) : null,
                metadata: k.betterAuth.metadata ?? parseMetadata(row.metadata),
                remaining: row.remaining,
                refill_amount: row.refillAmount,
                refill_interval_ms: row.refillInterval,
                rate_limit_max: row.rateLimitEnabled !== false && row.rateLimitMax != null && row.rateLimitTimeWindow != null ? row.rateLimitMax : null,
                rate_limit_window_ms: row.rateLimitEnabled !== false && row.rateLimitMax != null && row.rateLimitTimeWindow != null ? row.rateLimitTimeWindow : null,
                imported: k.expect.imported ?? true,
                steps: k.expect.steps,
                requires: k.expect.requires ?? [],
                differs: k.expect.differs ?? null,
            },
        };
    });
    // Members as better-auth stores them, and what the migration must make of them.
    const members = (await q(`SELECT "organizationId" AS org, "userId" AS "user", role FROM public.member ORDER BY 1, 2`)).rows.map(
        (m) => ({ ...m, expect: strongestRole(m.role) }),
    );
    const orgs = (await q(`SELECT id, name FROM public.organization ORDER BY id`)).rows;
    writeFileSync(OUT, JSON.stringify({ org_config_id: ORG_CONFIG, keys: out, organizations: orgs, members }, null, 2));
    for (const k of out) {
        console.log(
            `better-auth key ${k.label}: ${k.better_auth.answer.code}` +
                (k.better_auth.remaining != null ? `, remaining ${k.better_auth.remaining}` : "") +
                (k.better_auth.deleted_on_verify ? " (better-auth deleted it on that verify; row put back)" : ""),
        );
    }
    console.log(`better-auth: ${out.length} keys, ${orgs.length} organizations, ${members.length} members written to ${OUT}`);
}

// JSON text as better-auth reads "metadata": parsed, and parsed again when that gives a
// string (legacy double encoding).
function parseMetadata(text) {
    if (text == null) return null;
    const v = JSON.parse(text);
    return typeof v === "string" ? JSON.parse(v) : v;
}

function strongestRole(roles) {
    const list = roles.split(",").map((r) => r.trim()).filter(Boolean);
    for (const r of ["owner", "admin", "member"]) if (list.includes(r)) return r;
    return list[0];
}

main()
    .catch((e) => {
        console.error("make_keys failed:", e);
        process.exitCode = 1;
    })
    .finally(() => pool.end());
