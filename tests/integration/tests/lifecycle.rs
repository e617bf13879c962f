//! update, rotate, revoke and delete from each kind of caller, each on its own connection,
//! and the audit rows they leave.
use pg_apikey_integration::*;

#[test]
fn lifecycle_calls_from_each_kind_of_caller() {
    let mut su = superuser();
    let t = "life";
    su.batch_execute("SELECT apikey.create_organization('life-org')")
        .unwrap();
    let svc = login_role(&mut su, t, "svc");
    su.batch_execute(&format!("GRANT apikey_service TO \"{svc}\""))
        .unwrap();
    let admin = login_role(&mut su, t, "admin");
    let member = login_role(&mut su, t, "member");
    let stranger = login_role(&mut su, t, "stranger");
    su.execute(
        "SELECT apikey.add_member('life-org', $1, 'admin')",
        &[&admin],
    )
    .unwrap();
    su.execute(
        "SELECT apikey.add_member('life-org', $1, 'member')",
        &[&member],
    )
    .unwrap();

    let new_org_key = |su: &mut postgres::Client| -> String {
        su.query_one(
            "SELECT key_id::text FROM apikey.create_api_key(org_id => 'life-org', name => 'k')",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let calls = [
        (
            "rename",
            "SELECT apikey.update_api_key($1::text::uuid, name => 'renamed')",
        ),
        (
            "policy",
            "SELECT apikey.update_api_key($1::text::uuid, remaining => 5)",
        ),
        ("rotate", "SELECT apikey.rotate_api_key($1::text::uuid)"),
        ("revoke", "SELECT apikey.revoke_api_key($1::text::uuid)"),
        ("delete", "SELECT apikey.delete_api_key($1::text::uuid)"),
    ];
    // (role, expected SQLSTATE per call, in the order above)
    let expectations = [
        (&svc, ["00000", "00000", "00000", "00000", "00000"]),
        (&admin, ["00000", "42501", "00000", "00000", "00000"]),
        // A policy field is refused (42501) before the key is even looked up, whatever
        // the key; that reveals nothing about which keys exist.
        (&member, ["P0002", "42501", "P0002", "P0002", "P0002"]),
        (&stranger, ["P0002", "42501", "P0002", "P0002", "P0002"]),
    ];
    for (role, expected) in expectations {
        let mut c = connect(role);
        for ((what, sql), want) in calls.iter().zip(expected) {
            let id = new_org_key(&mut su);
            assert_eq!(sqlstate(c.execute(*sql, &[&id])), want, "{role} {what}");
        }
    }

    // A user key: its owner manages it, except policy fields; nobody else sees it.
    let mut own = connect(&stranger);
    for ((what, sql), want) in calls
        .iter()
        .zip(["00000", "42501", "00000", "00000", "00000"])
    {
        let id: String = own
            .query_one("SELECT key_id::text FROM apikey.create_api_key()", &[])
            .unwrap()
            .get(0);
        assert_eq!(sqlstate(own.execute(*sql, &[&id])), want, "owner {what}");
        let mut other = connect(&admin);
        if want == "00000" && *what != "delete" {
            assert_eq!(
                sqlstate(other.execute("SELECT apikey.get_api_key($1::text::uuid)", &[&id])),
                "P0002"
            );
        }
    }

    // Each successful call left its audit row, with the role that made it.
    let rows: Vec<(String, String)> = su
        .query(
            "SELECT action, actor_role FROM apikey.audit_log WHERE actor_role = ANY($1) \
             AND action LIKE 'key_%' ORDER BY id",
            &[&vec![&svc, &admin, &stranger]],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (role, actions) in [
        (
            &svc,
            vec![
                "key_updated",
                "key_updated",
                "key_created",
                "key_rotated",
                "key_revoked",
                "key_deleted",
            ],
        ),
        (
            &admin,
            vec![
                "key_updated",
                "key_created",
                "key_rotated",
                "key_revoked",
                "key_deleted",
            ],
        ),
    ] {
        let got: Vec<&str> = rows
            .iter()
            .filter(|(_, r)| r == role)
            .map(|(a, _)| a.as_str())
            .collect();
        assert_eq!(got, actions, "{role}");
    }
}
