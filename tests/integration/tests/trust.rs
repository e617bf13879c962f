//! Trust and ownership over real connections, each role logged in as itself.
use pg_apikey_integration::*;

#[test]
fn org_key_without_user_for_service_role_member_and_superuser() {
    let mut su = superuser();
    let t = "seed";
    su.batch_execute("SELECT apikey.create_organization('seed-org')")
        .unwrap();
    let deployer = login_role(&mut su, t, "deployer");
    su.batch_execute(&format!("GRANT apikey_service TO \"{deployer}\""))
        .unwrap();
    let reader = login_role(&mut su, t, "api");

    // The service-role member is not a superuser, and needs no user.
    let mut svc = connect(&deployer);
    let is_su: bool = svc
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!is_su);
    let row = svc
        .query_one(
            "SELECT key, org_id, user_id FROM apikey.create_api_key(org_id => 'seed-org', name => 'ci-deploy', \
             prefix => 'dp_live_', permissions => '{\"mesa\": [\"admin\"]}')",
            &[],
        )
        .unwrap();
    let svc_key: String = row.get(0);
    assert!(svc_key.starts_with("dp_live_"));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("seed-org"));
    assert_eq!(row.get::<_, Option<String>>(2), None);

    let su_key: String = su
        .query_one("SELECT key FROM apikey.create_api_key(org_id => 'seed-org', permissions => '{\"files\": [\"read\"]}')", &[])
        .unwrap()
        .get(0);

    // Verified from another connection, by an unrelated role, the way an API server would.
    let mut api = connect(&reader);
    for (key, perms) in [
        (&svc_key, r#"{"mesa": ["admin"]}"#),
        (&su_key, r#"{"files": ["read"]}"#),
    ] {
        let v = api
            .query_one(
                "SELECT valid, code, org_id, user_id, permissions::text FROM apikey.verify_api_key($1)",
                &[key],
            )
            .unwrap();
        assert!(v.get::<_, bool>(0));
        assert_eq!(v.get::<_, String>(1), "VALID");
        assert_eq!(v.get::<_, Option<String>>(2).as_deref(), Some("seed-org"));
        assert_eq!(v.get::<_, Option<String>>(3), None);
        let got: serde_like::Json = v.get::<_, String>(4).into();
        assert_eq!(got, serde_like::Json::from(perms.to_string()));
    }
}

/// Compare JSON texts ignoring whitespace (jsonb normalises spacing).
mod serde_like {
    #[derive(Debug, PartialEq)]
    pub struct Json(String);
    impl From<String> for Json {
        fn from(s: String) -> Self {
            Json(s.chars().filter(|c| !c.is_whitespace()).collect())
        }
    }
}

#[test]
fn ownership_rules_from_both_sides() {
    let mut su = superuser();
    let t = "own";
    su.batch_execute("SELECT apikey.create_organization('own-org')")
        .unwrap();
    let owner = login_role(&mut su, t, "owner");
    let admin = login_role(&mut su, t, "admin");
    let member = login_role(&mut su, t, "member");
    let stranger = login_role(&mut su, t, "stranger");
    su.execute(
        "SELECT apikey.add_member('own-org', $1, 'owner')",
        &[&owner],
    )
    .unwrap();
    su.execute(
        "SELECT apikey.add_member('own-org', $1, 'admin')",
        &[&admin],
    )
    .unwrap();
    su.execute(
        "SELECT apikey.add_member('own-org', $1, 'member')",
        &[&member],
    )
    .unwrap();

    let create_org_key = "SELECT key FROM apikey.create_api_key(org_id => 'own-org')";
    for (role, expect) in [
        (&owner, "00000"),
        (&admin, "00000"),
        (&member, "42501"),
        (&stranger, "42501"),
    ] {
        let mut c = connect(role);
        assert_eq!(
            sqlstate(c.query_one(create_org_key, &[])),
            expect,
            "{role} creating an org key"
        );
    }

    let mut a = connect(&admin);
    // Naming itself is fine; naming another user is not.
    assert_eq!(
        sqlstate(a.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'own-org', user_id => $1)",
            &[&admin]
        )),
        "00000"
    );
    assert_eq!(
        sqlstate(a.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'own-org', user_id => $1)",
            &[&owner]
        )),
        "42501"
    );
    assert_eq!(
        sqlstate(a.query_one(
            "SELECT key FROM apikey.create_api_key(user_id => $1)",
            &[&owner]
        )),
        "42501"
    );
    // Policy fields are the trusted callers' alone.
    for policy in [
        "permissions => '{\"x\": [\"y\"]}'",
        "remaining => 5",
        "refill_amount => 5, refill_interval => '1 day'",
        "rate_limit_max => 5, rate_limit_window => '1 minute'",
    ] {
        let sql = format!("SELECT key FROM apikey.create_api_key(org_id => 'own-org', {policy})");
        assert_eq!(
            sqlstate(a.query_one(sql.as_str(), &[])),
            "42501",
            "{policy}"
        );
    }
    // An unknown organization: a stranger gets 42501 (cannot probe), a trusted caller P0002.
    let mut s = connect(&stranger);
    assert_eq!(
        sqlstate(s.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'no-such-org')",
            &[]
        )),
        "42501"
    );
    assert_eq!(
        sqlstate(su.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'no-such-org')",
            &[]
        )),
        "P0002"
    );
    // A trusted caller naming no owner.
    assert_eq!(
        sqlstate(su.query_one("SELECT key FROM apikey.create_api_key()", &[])),
        "22023"
    );
    // The stranger's own key is owned by its role name.
    let row = s
        .query_one(
            "SELECT key, user_id, org_id FROM apikey.create_api_key()",
            &[],
        )
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some(stranger.as_str())
    );
    assert_eq!(row.get::<_, Option<String>>(2), None);
    let key: String = row.get(0);
    assert_eq!(verify_code(&mut s, &key), "VALID");
    // Nothing the refused calls did was written.
    let n: i64 = su
        .query_one(
            "SELECT count(*) FROM apikey.keys WHERE org_id = 'own-org' OR user_id = ANY($1)",
            &[&vec![&owner, &admin, &member, &stranger]],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 4); // owner's, admin's two, stranger's own
}

#[test]
fn trust_follows_current_user_not_session_user() {
    let mut su = superuser();
    let t = "curuser";
    su.batch_execute("SELECT apikey.create_organization('cu-org')")
        .unwrap();
    let svc = login_role(&mut su, t, "svc");
    let plain = login_role(&mut su, t, "plain");
    su.batch_execute(&format!(
        "GRANT apikey_service TO \"{svc}\"; GRANT \"{plain}\" TO \"{svc}\""
    ))
    .unwrap();
    let mut c = connect(&svc);
    assert_eq!(
        sqlstate(c.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'cu-org')",
            &[]
        )),
        "00000"
    );
    c.batch_execute(&format!("SET ROLE \"{plain}\"")).unwrap();
    // session_user is still the service member; current_user is not trusted.
    assert_eq!(
        sqlstate(c.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'cu-org')",
            &[]
        )),
        "42501"
    );
    c.batch_execute("RESET ROLE").unwrap();
    assert_eq!(
        sqlstate(c.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'cu-org')",
            &[]
        )),
        "00000"
    );
}

#[test]
fn noinherit_membership_of_the_service_role_still_trusts() {
    let mut su = superuser();
    let t = "noinh";
    su.batch_execute("SELECT apikey.create_organization('noinh-org')")
        .unwrap();
    let role = login_role(&mut su, t, "svc");
    su.batch_execute(&format!(
        "ALTER ROLE \"{role}\" NOINHERIT; GRANT apikey_service TO \"{role}\""
    ))
    .unwrap();
    let mut c = connect(&role);
    assert_eq!(
        sqlstate(c.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'noinh-org')",
            &[]
        )),
        "00000"
    );
}

#[test]
fn service_role_setting_is_read_on_each_call() {
    let mut su = superuser();
    let t = "svcset";
    su.batch_execute("SELECT apikey.create_organization('svcset-org'); DROP ROLE IF EXISTS svcset_other_service; CREATE ROLE svcset_other_service NOLOGIN").unwrap();
    let a = login_role(&mut su, t, "a");
    su.batch_execute(&format!("GRANT svcset_other_service TO \"{a}\""))
        .unwrap();
    let mut c = connect(&a);
    assert_eq!(
        sqlstate(c.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'svcset-org')",
            &[]
        )),
        "42501"
    );
    // A superuser points the setting at another role for this role's sessions.
    su.batch_execute(&format!(
        "ALTER ROLE \"{a}\" SET apikey.service_role = 'svcset_other_service'"
    ))
    .unwrap();
    let mut c = connect(&a);
    assert_eq!(
        sqlstate(c.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'svcset-org')",
            &[]
        )),
        "00000"
    );
    // Empty setting: only superusers are trusted.
    su.batch_execute(&format!("ALTER ROLE \"{a}\" SET apikey.service_role = ''"))
        .unwrap();
    let mut c = connect(&a);
    assert_eq!(
        sqlstate(c.query_one(
            "SELECT key FROM apikey.create_api_key(org_id => 'svcset-org')",
            &[]
        )),
        "42501"
    );
}
