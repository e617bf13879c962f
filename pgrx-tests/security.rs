//! Trust and hardening: the caller's user id after errors, comments and search_path on every function, tables closed to PUBLIC, the service role, bad arguments.
use pgrx::prelude::*;

#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::pgrx_tests::support::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn errors_restore_the_callers_user_id() {
        let before = Spi::get_one::<String>("SELECT current_user::text").unwrap();
        // P0002 raised from inside the owner switch.
        assert_eq!(
            sqlstate_of("SELECT apikey.create_api_key(org_id => 'no-such-org')"),
            "P0002"
        );
        let after = Spi::get_one::<String>("SELECT current_user::text").unwrap();
        assert_eq!(before, after);
        Spi::run("CREATE ROLE pgtest_plain").unwrap();
        Spi::run("SET ROLE pgtest_plain").unwrap();
        assert_eq!(
            sqlstate_of("SELECT apikey.get_api_key(gen_random_uuid())"),
            "P0002"
        );
        let still = Spi::get_one::<String>("SELECT current_user::text").unwrap();
        assert_eq!(still.as_deref(), Some("pgtest_plain"));
        Spi::run("RESET ROLE").unwrap();
    }

    #[pg_test]
    fn every_function_is_commented_invoker_and_pins_search_path() {
        // verify_api_key pins search_path itself around the only SQL it runs
        // (src/settings.rs, with_pinned_search_path), so that its plain path does not pay a
        // GUC save and restore per call; key_info_of resolves no name but a qualified type
        // and is inlined (a SET clause would prevent that); every other function declares it.
        let bad = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'apikey'::regnamespace \
             AND (obj_description(p.oid, 'pg_proc') IS NULL OR p.prosecdef \
                  OR (p.proname NOT IN ('verify_api_key', 'key_info_of') \
                      AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)))",
        )
        .unwrap();
        assert_eq!(bad, Some(0));
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'apikey'::regnamespace",
        )
        .unwrap();
        assert!(n.unwrap() >= 16);
    }

    #[pg_test]
    fn tables_are_closed_to_public() {
        let open = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a \
             WHERE c.relnamespace = 'apikey'::regnamespace AND c.relkind IN ('r', 'S') AND a.grantee = 0",
        )
        .unwrap();
        assert_eq!(open, Some(0));
        let config = Spi::get_one::<String>(
            "SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text)          FROM pg_extension, unnest(extconfig) c WHERE extname = 'pg_apikey'",
        )
        .unwrap();
        assert_eq!(
            config.as_deref(),
            Some("apikey.audit_log,apikey.audit_log_id_seq,apikey.key_slots,apikey.keys,apikey.member_role_actions,apikey.members,apikey.organizations,apikey.owner_limits,apikey.owner_slots,apikey.usage_hours")
        );
    }

    #[pg_test]
    fn service_role_exists_and_cannot_log_in() {
        let can_login = Spi::get_one::<bool>(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'apikey_service'",
        )
        .unwrap();
        assert_eq!(can_login, Some(false));
    }

    #[pg_test]
    fn trusted_caller_naming_no_owner_is_22023_and_bad_arguments_are_22023() {
        org("acme");
        for sql in [
            "SELECT apikey.create_api_key()",
            "SELECT apikey.create_api_key(org_id => 'acme', prefix => '')",
            "SELECT apikey.create_api_key(org_id => 'acme', prefix => 'has space')",
            "SELECT apikey.create_api_key(org_id => 'acme', prefix => repeat('a', 33))",
            "SELECT apikey.create_api_key(org_id => 'acme', remaining => -1)",
            "SELECT apikey.create_api_key(org_id => 'acme', refill_amount => 10)",
            "SELECT apikey.create_api_key(org_id => 'acme', refill_interval => '1 day')",
            "SELECT apikey.create_api_key(org_id => 'acme', expires_at => now() - interval '1 minute')",
            "SELECT apikey.create_api_key(org_id => 'acme', permissions => '[\"admin\"]')",
            "SELECT apikey.create_api_key(org_id => 'acme', rate_limit_max => 5)",
            "SELECT apikey.create_api_key(org_id => 'acme', rate_limit_max => 0, rate_limit_window => '1 minute')",
        ] {
            assert_eq!(sqlstate_of(sql), "22023", "{sql}");
        }
        assert_eq!(
            sqlstate_of(
                "SELECT apikey.create_api_key(org_id => 'acme', prefix => repeat('a', 32))"
            ),
            "00000"
        );
        // Nothing was written by the refused calls.
        let n = Spi::get_one::<i64>("SELECT count(*) FROM apikey.keys").unwrap();
        assert_eq!(n, Some(1));
    }

    #[pg_test]
    fn default_prefix_setting_applies_to_the_next_call() {
        org("acme");
        Spi::run("SET apikey.default_prefix = 'sk_test_'").unwrap();
        let key = Spi::get_one::<String>("SELECT key FROM apikey.create_api_key(org_id => 'acme')")
            .unwrap()
            .unwrap();
        assert!(key.starts_with("sk_test_"), "{key}");
        assert_eq!(code_of(&key), "VALID");
        Spi::run("RESET apikey.default_prefix").unwrap();
        let key = Spi::get_one::<String>("SELECT key FROM apikey.create_api_key(org_id => 'acme')")
            .unwrap()
            .unwrap();
        assert!(key.starts_with("ak_"), "{key}");
    }
}
