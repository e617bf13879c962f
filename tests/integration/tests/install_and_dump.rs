//! Installing into a hostile schema, and pg_dump / restore of keys and memberships.
use pg_apikey_integration::*;

#[test]
fn create_extension_refuses_a_schema_another_role_controls() {
    let mut su = superuser();
    let t = "hostile";
    let squatter = login_role(&mut su, t, "squatter");

    let db = format!("{t}_owned");
    fresh_db(&mut su, &db);
    let mut c = connect_db("postgres", &db);
    c.batch_execute(&format!(
        "CREATE SCHEMA apikey AUTHORIZATION \"{squatter}\""
    ))
    .unwrap();
    assert_eq!(
        sqlstate(c.batch_execute("CREATE EXTENSION pg_apikey")),
        "55000"
    );

    let db = format!("{t}_open");
    fresh_db(&mut su, &db);
    let mut c = connect_db("postgres", &db);
    c.batch_execute("CREATE SCHEMA apikey; GRANT CREATE ON SCHEMA apikey TO PUBLIC")
        .unwrap();
    assert_eq!(
        sqlstate(c.batch_execute("CREATE EXTENSION pg_apikey")),
        "55000"
    );

    // A schema the installing superuser made and closed is fine.
    let db = format!("{t}_mine");
    fresh_db(&mut su, &db);
    let mut c = connect_db("postgres", &db);
    c.batch_execute("CREATE SCHEMA apikey").unwrap();
    assert_eq!(
        sqlstate(c.batch_execute("CREATE EXTENSION pg_apikey")),
        "00000"
    );
}

#[test]
fn pg_dump_and_restore_keep_keys_members_and_custom_roles() {
    let mut su = superuser();
    let t = "dump";
    let alice = login_role(&mut su, t, "alice");
    let src = format!("{t}_src");
    let dst = format!("{t}_dst");
    fresh_db(&mut su, &src);
    let mut s = connect_db("postgres", &src);
    s.batch_execute(
        "CREATE EXTENSION pg_apikey; SELECT apikey.create_organization('dump-org', 'Dump');",
    )
    .unwrap();
    // An undefined role is refused until a trusted caller defines it.
    assert_eq!(
        sqlstate(s.execute(
            "SELECT apikey.add_member('dump-org', $1, 'auditor_x')",
            &[&alice]
        )),
        "22023"
    );
    s.batch_execute("SELECT apikey.set_role_action('auditor_x', 'read', true); SELECT apikey.set_role_action('admin', 'delete', false);").unwrap();
    s.execute(
        "SELECT apikey.add_member('dump-org', $1, 'auditor_x')",
        &[&alice],
    )
    .unwrap();
    let key: String = s
        .query_one("SELECT key FROM apikey.create_api_key(org_id => 'dump-org', permissions => '{\"a\": [\"b\"]}')", &[])
        .unwrap()
        .get(0);
    drop(s);

    let dump = std::env::temp_dir().join(format!("pg_apikey_{t}.sql"));
    let dump = dump.to_str().unwrap();
    client_program("pg_dump", &["-d", &src, "-f", dump]);
    fresh_db(&mut su, &dst);
    client_program(
        "psql",
        &["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &dst, "-f", dump],
    );

    let mut d = connect_db("postgres", &dst);
    assert_eq!(verify_code(&mut d, &key), "VALID");
    let perms: String = d
        .query_one(
            "SELECT permissions::text FROM apikey.verify_api_key($1)",
            &[&key],
        )
        .unwrap()
        .get(0);
    assert_eq!(perms, r#"{"a": ["b"]}"#);
    let role: String = d
        .query_one(
            "SELECT role FROM apikey.members WHERE org_id = 'dump-org' AND user_id = $1",
            &[&alice],
        )
        .unwrap()
        .get(0);
    assert_eq!(role, "auditor_x");
    // The customised mapping came back, and overrides the default again.
    let rows: Vec<(String, String, bool)> = d
        .query("SELECT role, action, allowed FROM apikey.list_role_actions() WHERE (role, action) IN (('auditor_x', 'read'), ('admin', 'delete')) ORDER BY role", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("admin".into(), "delete".into(), false),
            ("auditor_x".into(), "read".into(), true)
        ]
    );
    // And alice, through the restored membership, can read the org's keys.
    let mut a = connect_db(&alice, &dst);
    let n: i64 = a
        .query_one(
            "SELECT count(*) FROM apikey.list_api_keys(org_id => 'dump-org')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

/// Statements are prepared once per backend and kept; dropping and re-creating the
/// extension in the same session must neither break them nor reach the old tables.
#[test]
fn kept_plans_survive_drop_and_create_extension_in_one_session() {
    let mut su = superuser();
    let db = "replan_db";
    fresh_db(&mut su, db);
    let mut c = connect_db("postgres", db);
    c.batch_execute("CREATE EXTENSION pg_apikey; SELECT apikey.create_organization('o')")
        .unwrap();
    let key: String = c
        .query_one("SELECT key FROM apikey.create_api_key(org_id => 'o')", &[])
        .unwrap()
        .get(0);
    assert_eq!(verify_code(&mut c, &key), "VALID");
    c.batch_execute("DROP EXTENSION pg_apikey").unwrap();
    c.batch_execute("CREATE EXTENSION pg_apikey").unwrap();
    // Same backend, same kept plans: the new, empty tables answer.
    assert_eq!(verify_code(&mut c, &key), "KEY_NOT_FOUND");
    c.batch_execute("SELECT apikey.create_organization('o')")
        .unwrap();
    let again: String = c
        .query_one("SELECT key FROM apikey.create_api_key(org_id => 'o')", &[])
        .unwrap()
        .get(0);
    assert_eq!(verify_code(&mut c, &again), "VALID");
}
