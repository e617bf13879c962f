//! Organizations and members from the application's own tables: the organization schema
//! of a widely used TypeScript auth library, with comma-separated roles.
use pg_apikey_integration::*;

/// The worked example of docs/trust-model.md, as shipped in examples/.
const SCHEMA: &str = include_str!("../../../examples/better_auth_membership.sql");

#[test]
fn better_auth_schema_as_the_membership_source() {
    let mut su = superuser();
    let t = "byo";
    let owner = login_role(&mut su, t, "owner");
    let member = login_role(&mut su, t, "member");
    let auditor = login_role(&mut su, t, "auditor");
    let svc = login_role(&mut su, t, "svc");
    su.batch_execute(&format!("GRANT apikey_service TO \"{svc}\""))
        .unwrap();
    let db = format!("{t}_db");
    fresh_db(&mut su, &db);
    let mut d = connect_db("postgres", &db);
    d.batch_execute("CREATE EXTENSION pg_apikey").unwrap();
    d.batch_execute(SCHEMA).unwrap();
    d.execute(
        r#"INSERT INTO public."organization" VALUES ('org_1', 'Globex', 'globex')"#,
        &[],
    )
    .unwrap();
    d.execute(
        r#"INSERT INTO public."member" VALUES ('m1', 'org_1', $1, 'admin,owner'), ('m2', 'org_1', $2, 'member'), ('m3', 'org_1', $3, 'auditor')"#,
        &[&owner, &member, &auditor],
    )
    .unwrap();
    d.batch_execute(&format!(
        "ALTER DATABASE \"{db}\" SET apikey.org_exists_function = 'app.org_exists';
         ALTER DATABASE \"{db}\" SET apikey.member_roles_function = 'app.member_roles';
         SELECT apikey.set_role_action('auditor', 'read', true);
         SELECT apikey.set_role_action('auditor', 'export', true);"
    ))
    .unwrap();

    // The service role creates an org key for the application's organization, no user.
    let mut s = connect_db(&svc, &db);
    let key: String = s
        .query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'org_1')",
            &[],
        )
        .unwrap()
        .get(0);
    let v = s
        .query_one(
            "SELECT code, org_id, user_id FROM apikey.verify_api_key($1)",
            &[&key],
        )
        .unwrap();
    assert_eq!(v.get::<_, String>(0), "VALID");
    assert_eq!(v.get::<_, Option<String>>(1).as_deref(), Some("org_1"));
    assert_eq!(v.get::<_, Option<String>>(2), None);
    assert_eq!(
        sqlstate(s.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'org_2')",
            &[]
        )),
        "P0002"
    );
    // Built-in tables are neither read nor written.
    assert_eq!(
        sqlstate(s.batch_execute("SELECT apikey.create_organization('org_1')")),
        "55000"
    );
    assert_eq!(
        sqlstate(s.batch_execute("SELECT apikey.add_member('org_1', 'x')")),
        "55000"
    );
    assert_eq!(
        sqlstate(s.batch_execute("SELECT apikey.remove_member('org_1', 'x')")),
        "55000"
    );

    // 'admin,owner' counts as both; 'member' allows nothing; the custom 'auditor' reads.
    let mut o = connect_db(&owner, &db);
    assert_eq!(
        sqlstate(o.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'org_1')",
            &[]
        )),
        "00000"
    );
    assert_eq!(
        sqlstate(o.query_one(
            "SELECT count(*) FROM apikey.list_audit_events(org_id => 'org_1')",
            &[]
        )),
        "00000"
    );
    let mut m = connect_db(&member, &db);
    assert_eq!(
        sqlstate(m.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'org_1')",
            &[]
        )),
        "42501"
    );
    let mut a = connect_db(&auditor, &db);
    let n: i64 = a
        .query_one(
            "SELECT count(*) FROM apikey.list_api_keys(org_id => 'org_1')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    assert_eq!(
        sqlstate(a.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'org_1')",
            &[]
        )),
        "42501"
    );
    let export: bool = a
        .query_one("SELECT allowed FROM apikey.list_role_actions() WHERE role = 'auditor' AND action = 'export'", &[])
        .unwrap()
        .get(0);
    assert!(export);

    // A change in the application's tables applies to the next call.
    d.execute(
        r#"UPDATE public."member" SET role = 'admin' WHERE "userId" = $1"#,
        &[&member],
    )
    .unwrap();
    assert_eq!(
        sqlstate(m.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'org_1')",
            &[]
        )),
        "00000"
    );
    d.execute(
        r#"DELETE FROM public."member" WHERE "userId" = $1"#,
        &[&owner],
    )
    .unwrap();
    assert_eq!(
        sqlstate(o.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'org_1')",
            &[]
        )),
        "42501"
    );

    // The members cannot repoint the setting at a function of their own.
    assert_eq!(
        sqlstate(m.batch_execute("SET apikey.member_roles_function = 'public.mine'")),
        "42501"
    );

    // Switching back to the built-in tables: new sessions read them again.
    d.batch_execute(&format!(
        "ALTER DATABASE \"{db}\" RESET apikey.org_exists_function;
         ALTER DATABASE \"{db}\" RESET apikey.member_roles_function;"
    ))
    .unwrap();
    let mut m = connect_db(&member, &db);
    assert_eq!(
        sqlstate(m.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'org_1')",
            &[]
        )),
        "42501"
    );
    let mut s = connect_db(&svc, &db);
    assert_eq!(
        sqlstate(s.batch_execute("SELECT apikey.create_organization('org_1')")),
        "00000"
    );
    s.execute("SELECT apikey.add_member('org_1', $1, 'admin')", &[&member])
        .unwrap();
    assert_eq!(
        sqlstate(m.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'org_1')",
            &[]
        )),
        "00000"
    );
}

#[test]
fn membership_functions_run_with_the_callers_rights_never_the_owners() {
    let mut su = superuser();
    let t = "byorights";
    let member = login_role(&mut su, t, "member");
    let db = format!("{t}_db");
    fresh_db(&mut su, &db);
    let mut d = connect_db("postgres", &db);
    // A SECURITY INVOKER function that reports who runs it, as the application might
    // write it by mistake: it must see the caller, not the extension's owner.
    d.batch_execute(
        "CREATE EXTENSION pg_apikey;
         CREATE SCHEMA app; GRANT USAGE ON SCHEMA app TO PUBLIC;
         CREATE TABLE app.seen (who text, is_superuser boolean);
         GRANT INSERT ON app.seen TO PUBLIC;
         CREATE FUNCTION app.org_exists(org_id text) RETURNS boolean LANGUAGE sql SET search_path = '' AS $$ SELECT true $$;
         CREATE FUNCTION app.member_roles(org_id text, user_id text) RETURNS text[] LANGUAGE plpgsql SET search_path = '' AS $$
         BEGIN
             INSERT INTO app.seen VALUES (current_user, (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user));
             RETURN ARRAY['admin'];
         END $$;",
    )
    .unwrap();
    d.batch_execute(&format!(
        "ALTER DATABASE \"{db}\" SET apikey.org_exists_function = 'app.org_exists';
         ALTER DATABASE \"{db}\" SET apikey.member_roles_function = 'app.member_roles';"
    ))
    .unwrap();
    let mut m = connect_db(&member, &db);
    // The function ran as the member, inside a security-restricted operation.
    assert_eq!(
        sqlstate(m.query_one("SELECT key FROM apikey.create_api_key(org_id => 'o')", &[])),
        "00000"
    );
    let row = d
        .query_one("SELECT who, is_superuser FROM app.seen", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), member);
    assert!(!row.get::<_, bool>(1));
}
