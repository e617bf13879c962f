//! Identity behind a gateway, the way PostgREST runs: a LOGIN NOINHERIT authenticator,
//! and per request, in one transaction, SET LOCAL ROLE + request.jwt.claims.
use pg_apikey_integration::*;

struct Gateway {
    db: String,
    authenticated: String,
    authenticator: String,
}

fn gateway(su: &mut postgres::Client, t: &str) -> Gateway {
    let authenticated = format!("{t}_authenticated");
    su.batch_execute(&format!(
        "DO $$ BEGIN CREATE ROLE \"{authenticated}\" NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    ))
    .unwrap();
    let authenticator = login_role(su, t, "authenticator");
    su.batch_execute(&format!(
        "ALTER ROLE \"{authenticator}\" NOINHERIT; GRANT \"{authenticated}\" TO \"{authenticator}\""
    ))
    .unwrap();
    let db = format!("{t}_db");
    fresh_db(su, &db);
    let mut c = connect_db("postgres", &db);
    c.batch_execute(&format!(
        "CREATE EXTENSION pg_apikey;
         ALTER DATABASE \"{db}\" SET apikey.gateway_roles = '{authenticated}';
         SELECT apikey.create_organization('gw-org');
         SELECT apikey.add_member('gw-org', 'user-alice', 'admin');"
    ))
    .unwrap();
    Gateway {
        db,
        authenticated,
        authenticator,
    }
}

/// One PostgREST request: a transaction that switches role and sets the claims, then
/// runs `sql`. Returns the SQLSTATE and the first column of the first row, if any.
fn request(
    c: &mut postgres::Client,
    gw: &Gateway,
    claims: Option<&str>,
    sql: &str,
) -> (String, Option<String>) {
    let mut tx = c.transaction().unwrap();
    tx.batch_execute(&format!("SET LOCAL ROLE \"{}\"", gw.authenticated))
        .unwrap();
    if let Some(claims) = claims {
        tx.execute(
            "SELECT set_config('request.jwt.claims', $1, true)",
            &[&claims],
        )
        .unwrap();
    }
    match tx.query(sql, &[]) {
        Ok(rows) => {
            let first = rows.first().and_then(|r| r.get::<_, Option<String>>(0));
            tx.commit().unwrap();
            ("00000".into(), first)
        }
        Err(e) => (sqlstate::<()>(Err(e)), None),
    }
}

#[test]
fn requests_on_one_connection_act_as_their_own_users() {
    let mut su = superuser();
    let gw = gateway(&mut su, "gwreq");
    let mut c = connect_db(&gw.authenticator, &gw.db);
    let alice = Some(r#"{"sub": "user-alice", "role": "authenticated"}"#);
    let bob = Some(r#"{"sub": "user-bob", "role": "authenticated"}"#);

    assert_eq!(
        request(&mut c, &gw, alice, "SELECT apikey.current_identity()")
            .1
            .as_deref(),
        Some("user-alice")
    );
    assert_eq!(
        request(&mut c, &gw, bob, "SELECT apikey.current_identity()")
            .1
            .as_deref(),
        Some("user-bob")
    );

    // alice is an admin of gw-org: her org key is allowed; bob's is not.
    let org_key =
        "SELECT key FROM apikey.create_api_key(org_id => 'gw-org', name => 'via-gateway')";
    let (state, key) = request(&mut c, &gw, alice, org_key);
    assert_eq!(state, "00000");
    assert_eq!(request(&mut c, &gw, bob, org_key).0, "42501");
    let key = key.unwrap();
    let v = su_query(
        &gw,
        "SELECT org_id || '/' || coalesce(user_id, '-') FROM apikey.verify_api_key($1)",
        &key,
    );
    assert_eq!(v, "gw-org/-");
    let made_by = su_query(
        &gw,
        "SELECT k.created_by_role || '/' || k.created_by_identity FROM apikey.keys k WHERE k.digest = sha256(convert_to($1, 'UTF8'))",
        &key,
    );
    assert_eq!(made_by, format!("{}/user-alice", gw.authenticated));

    // User keys belong to the claim's user, and each user lists only its own.
    let (_, alice_key) = request(
        &mut c,
        &gw,
        alice,
        "SELECT user_id FROM apikey.create_api_key(name => 'mine')",
    );
    assert_eq!(alice_key.as_deref(), Some("user-alice"));
    let count = "SELECT count(*)::text FROM apikey.list_api_keys()";
    assert_eq!(request(&mut c, &gw, alice, count).1.as_deref(), Some("1"));
    assert_eq!(request(&mut c, &gw, bob, count).1.as_deref(), Some("0"));

    // No claims, no "sub", an empty "sub", or claims that are not JSON: no identity.
    for claims in [
        None,
        Some(r#"{"role": "authenticated"}"#),
        Some(r#"{"sub": ""}"#),
        Some("not json"),
    ] {
        assert_eq!(
            request(&mut c, &gw, claims, "SELECT apikey.current_identity()").1,
            None,
            "{claims:?}"
        );
        assert_eq!(
            request(
                &mut c,
                &gw,
                claims,
                "SELECT key FROM apikey.create_api_key()"
            )
            .0,
            "42501",
            "{claims:?}"
        );
    }

    // Nothing leaks from one transaction to the next.
    let row = c
        .query_one(
            "SELECT current_user::text, coalesce(current_setting('request.jwt.claims', true), '')",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), gw.authenticator);
    assert_eq!(row.get::<_, String>(1), "");
    // The authenticator itself is a member of the gateway role: it is a gateway caller,
    // and without claims it has no identity.
    let id: Option<String> = c
        .query_one("SELECT apikey.current_identity()", &[])
        .unwrap()
        .get(0);
    assert_eq!(id, None);
}

fn su_query(gw: &Gateway, sql: &str, arg: &str) -> String {
    let mut c = connect_db("postgres", &gw.db);
    c.query_one(sql, &[&arg]).unwrap().get(0)
}

#[test]
fn a_plain_role_setting_claims_impersonates_nobody() {
    let mut su = superuser();
    let gw = gateway(&mut su, "gwplain");
    let plain = login_role(&mut su, "gwplain", "plain");
    let mut c = connect_db(&plain, &gw.db);
    c.batch_execute(r#"SET request.jwt.claims = '{"sub": "user-alice"}'"#)
        .unwrap();
    let id: Option<String> = c
        .query_one("SELECT apikey.current_identity()", &[])
        .unwrap()
        .get(0);
    assert_eq!(id.as_deref(), Some(plain.as_str()));
    assert_eq!(
        sqlstate(c.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'gw-org')",
            &[]
        )),
        "42501"
    );
    // Nor can it make itself a gateway role's member, or change the gateway setting.
    assert_eq!(
        sqlstate(c.batch_execute(&format!("GRANT \"{}\" TO \"{plain}\"", gw.authenticated))),
        "42501"
    );
    assert_eq!(
        sqlstate(c.batch_execute(&format!("SET apikey.gateway_roles = '{plain}'"))),
        "42501"
    );
    let own: Option<String> = c
        .query_one("SELECT user_id FROM apikey.create_api_key()", &[])
        .unwrap()
        .get(0);
    assert_eq!(own.as_deref(), Some(plain.as_str()));
}
