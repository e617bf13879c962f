//! An ordinary role trying to change what decides trust, or to read what it must not.
use pg_apikey_integration::*;

fn trusted_probe(c: &mut postgres::Client, org: &str) -> String {
    sqlstate(c.query_one(
        "SELECT key FROM apikey.create_api_key(org_id => $1)",
        &[&org],
    ))
}

#[test]
fn settings_cannot_be_changed_by_an_ordinary_role() {
    let mut su = superuser();
    let t = "guc";
    su.batch_execute("SELECT apikey.create_organization('guc-org')")
        .unwrap();
    let me = login_role(&mut su, t, "me");
    let dbname: String = su
        .query_one("SELECT current_database()::text", &[])
        .unwrap()
        .get(0);
    su.batch_execute(&format!(
        "GRANT CREATE ON DATABASE \"{dbname}\" TO \"{me}\""
    ))
    .unwrap();

    // Before the library is loaded in this session, a SET makes only a placeholder;
    // PostgreSQL discards it when the library defines the SUSET parameter.
    let mut c = connect(&me);
    let loaded: bool = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_settings WHERE name = 'apikey.service_role')",
            &[],
        )
        .unwrap()
        .get(0);
    if !loaded {
        c.batch_execute(&format!("SET apikey.service_role = '{me}'"))
            .unwrap();
    }
    assert_eq!(trusted_probe(&mut c, "guc-org"), "42501");
    let shown: String = c.query_one("SHOW apikey.service_role", &[]).unwrap().get(0);
    assert_eq!(shown, "apikey_service");

    // Once loaded: SET, set_config and SET LOCAL are refused.
    assert_eq!(
        sqlstate(c.batch_execute(&format!("SET apikey.service_role = '{me}'"))),
        "42501"
    );
    assert_eq!(
        sqlstate(c.query_one(
            "SELECT set_config('apikey.service_role', $1, false)",
            &[&me]
        )),
        "42501"
    );
    assert_eq!(
        sqlstate(c.batch_execute(&format!(
            "BEGIN; SET LOCAL apikey.service_role = '{me}'; COMMIT"
        ))),
        "42501"
    );
    c.batch_execute("ROLLBACK").ok();
    // ALTER ROLE ... SET on itself, and ALTER DATABASE ... SET.
    assert_eq!(
        sqlstate(c.batch_execute(&format!(
            "ALTER ROLE \"{me}\" SET apikey.service_role = '{me}'"
        ))),
        "42501"
    );
    assert_eq!(
        sqlstate(c.batch_execute(&format!(
            "ALTER ROLE \"{me}\" SET apikey.default_prefix = 'x_'"
        ))),
        "42501"
    );
    assert_eq!(
        sqlstate(c.batch_execute(&format!(
            "ALTER DATABASE \"{dbname}\" SET apikey.service_role = '{me}'"
        ))),
        "42501"
    );
    // A database it owns does not help either.
    let own_db = format!("{t}_owned_db");
    su.batch_execute(&format!("DROP DATABASE IF EXISTS \"{own_db}\""))
        .unwrap();
    su.batch_execute(&format!("CREATE DATABASE \"{own_db}\" OWNER \"{me}\""))
        .unwrap();
    assert_eq!(
        sqlstate(c.batch_execute(&format!(
            "ALTER DATABASE \"{own_db}\" SET apikey.service_role = '{me}'"
        ))),
        "42501"
    );

    // Still untrusted in a brand-new session.
    let mut c = connect(&me);
    assert_eq!(trusted_probe(&mut c, "guc-org"), "42501");
    // Nor can it grant itself the service role.
    assert_eq!(
        sqlstate(c.batch_execute(&format!("GRANT apikey_service TO \"{me}\""))),
        "42501"
    );
    assert_eq!(trusted_probe(&mut c, "guc-org"), "42501");
}

#[test]
fn tables_are_closed_to_an_ordinary_role() {
    let mut su = superuser();
    let t = "tables";
    su.batch_execute("SELECT apikey.create_organization('tables-org')")
        .unwrap();
    let me = login_role(&mut su, t, "me");
    let mut c = connect(&me);
    for sql in [
        "SELECT * FROM apikey.keys",
        "SELECT * FROM apikey.members",
        "SELECT * FROM apikey.organizations",
        "SELECT * FROM apikey.member_role_actions",
        "UPDATE apikey.member_role_actions SET allowed = true WHERE role = 'member'",
        "INSERT INTO apikey.members (org_id, user_id, role) VALUES ('tables-org', current_user, 'owner')",
        "DELETE FROM apikey.keys",
        "CREATE TABLE apikey.mine (x int)",
        "CREATE FUNCTION apikey.verify_api_key(text) RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ] {
        assert_eq!(sqlstate(c.batch_execute(sql)), "42501", "{sql}");
    }
    assert_eq!(trusted_probe(&mut c, "tables-org"), "42501");
}

#[test]
fn shadowing_functions_and_operators_on_search_path_changes_nothing() {
    let mut su = superuser();
    let t = "shadow";
    su.batch_execute("SELECT apikey.create_organization('shadow-org')")
        .unwrap();
    let me = login_role(&mut su, t, "me");
    let dbname: String = su
        .query_one("SELECT current_database()::text", &[])
        .unwrap()
        .get(0);
    su.batch_execute(&format!(
        "GRANT CREATE ON DATABASE \"{dbname}\" TO \"{me}\""
    ))
    .unwrap();
    let key: String = su
        .query_one("SELECT key FROM apikey.create_api_key(org_id => 'shadow-org', permissions => '{\"files\": [\"read\"]}')", &[])
        .unwrap()
        .get(0);

    let quota_key: String = su
        .query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'shadow-org', remaining => 5)",
            &[],
        )
        .unwrap()
        .get(0);

    let mut c = connect(&me);
    let schema = format!("{t}_evil");
    // Every shadow, if the extension ever called it, would fail loudly.
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE;
         CREATE SCHEMA \"{schema}\";
         CREATE FUNCTION \"{schema}\".always(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'shadow text = called'; END $$;
         CREATE OPERATOR \"{schema}\".= (LEFTARG = text, RIGHTARG = text, FUNCTION = \"{schema}\".always);
         CREATE FUNCTION \"{schema}\".contains(a jsonb, b jsonb) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'shadow @> called'; END $$;
         CREATE OPERATOR \"{schema}\".@> (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = \"{schema}\".contains);
         CREATE FUNCTION \"{schema}\".sha256(bytea) RETURNS bytea LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'shadow sha256 called'; END $$;
         CREATE FUNCTION \"{schema}\".clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'shadow clock called'; END $$;
         CREATE FUNCTION \"{schema}\".coalesce(jsonb, jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'shadow coalesce called'; END $$;
         CREATE FUNCTION \"{schema}\".uuid_eq(a uuid, b uuid) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'shadow uuid = called'; END $$;
         CREATE OPERATOR \"{schema}\".= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = \"{schema}\".uuid_eq);
         CREATE FUNCTION \"{schema}\".ts_le(a timestamptz, b timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'shadow timestamptz <= called'; END $$;
         CREATE OPERATOR \"{schema}\".<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = \"{schema}\".ts_le);
         CREATE TABLE \"{schema}\".members (org_id text, user_id text, role text);
         INSERT INTO \"{schema}\".members VALUES ('shadow-org', current_user, 'owner');
         CREATE TEMP TABLE members (org_id text, user_id text, role text);
         INSERT INTO pg_temp.members VALUES ('shadow-org', current_user, 'owner');
         SET search_path = pg_temp, \"{schema}\", pg_catalog, public;"
    ))
    .unwrap();
    // The shadows are really in front for the caller's own queries ...
    assert_eq!(
        sqlstate(c.query_one("SELECT 'a'::text = 'b'::text", &[])),
        "P0001"
    );
    // ... but not for the extension's.
    let v = c
        .query_one(
            "SELECT code FROM apikey.verify_api_key($1, '{\"files\": [\"write\"]}')",
            &[&key],
        )
        .unwrap();
    assert_eq!(v.get::<_, String>(0), "INSUFFICIENT_PERMISSIONS");
    assert_eq!(verify_code(&mut c, &key), "VALID");
    // A key with a quota makes verify run SQL (its usage update), prepared for the first
    // time in this session under the attacker's search_path: still the real operators.
    let quota = quota_key.as_str();
    let row = c
        .query_one(
            "SELECT code, remaining FROM apikey.verify_api_key($1)",
            &[&quota],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, Option<i64>>(1)),
        ("VALID".to_string(), Some(4))
    );
    // Its fake membership tables are never read.
    assert_eq!(trusted_probe(&mut c, "shadow-org"), "42501");
    assert_eq!(
        sqlstate(c.query_one(
            "SELECT apikey.add_member('shadow-org', current_user, 'owner')",
            &[]
        )),
        "42501"
    );
    let own = c
        .query_one("SELECT user_id FROM apikey.create_api_key()", &[])
        .unwrap();
    assert_eq!(
        own.get::<_, Option<String>>(0).as_deref(),
        Some(me.as_str())
    );
}

#[test]
fn invisible_keys_answer_p0002_like_missing_ones() {
    let mut su = superuser();
    let t = "probe";
    su.batch_execute("SELECT apikey.create_organization('probe-org')")
        .unwrap();
    let me = login_role(&mut su, t, "me");
    let other = login_role(&mut su, t, "other");
    let org_key: uuid_text::Id = su
        .query_one(
            "SELECT key_id::text FROM apikey.create_api_key(org_id => 'probe-org')",
            &[],
        )
        .unwrap()
        .get::<_, String>(0)
        .into();
    let mut o = connect(&other);
    let their_key: uuid_text::Id = o
        .query_one("SELECT key_id::text FROM apikey.create_api_key()", &[])
        .unwrap()
        .get::<_, String>(0)
        .into();
    let mut c = connect(&me);
    for id in [
        &org_key.0,
        &their_key.0,
        &"00000000-0000-0000-0000-000000000001".to_string(),
    ] {
        for f in ["get_api_key", "revoke_api_key", "delete_api_key"] {
            let sql = format!("SELECT apikey.{f}($1::text::uuid)");
            assert_eq!(
                sqlstate(c.query_one(sql.as_str(), &[id])),
                "P0002",
                "{f}({id})"
            );
        }
    }
    // Their key is untouched.
    let n: i64 = su
        .query_one(
            "SELECT count(*) FROM apikey.keys WHERE id::text = ANY($1) AND revoked_at IS NULL",
            &[&vec![&org_key.0, &their_key.0]],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

mod uuid_text {
    pub struct Id(pub String);
    impl From<String> for Id {
        fn from(s: String) -> Self {
            Id(s)
        }
    }
}
