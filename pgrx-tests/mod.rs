//! `#[pg_test]`s: the inside of the extension, run in a real PostgreSQL as a superuser.
//! Multi-role behaviour over real connections lives in `tests/integration`, and the
//! documented SQL behaviour in `tests/pg_regress`.
//!
//! A module of the crate (`#[path]` in src/lib.rs), built only for `cargo pgrx test`; the
//! functions live in the SQL schema `tests`, where pgrx's test runner calls them.
use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// The SQLSTATE a statement raises ('00000' when it succeeds), caught in a
    /// subtransaction so the test's transaction goes on.
    fn sqlstate_of(sql: &str) -> String {
        let defined =
            Spi::get_one::<bool>("SELECT to_regprocedure('pg_temp.sqlstate_of(text)') IS NOT NULL")
                .unwrap();
        if defined != Some(true) {
            Spi::run(
                "CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$ \
             BEGIN EXECUTE q; RETURN '00000'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$",
            )
            .unwrap();
        }
        Spi::get_one_with_args::<String>("SELECT pg_temp.sqlstate_of($1)", &[sql.into()])
            .unwrap()
            .unwrap()
    }

    fn org(id: &str) {
        Spi::run_with_args("SELECT apikey.create_organization($1)", &[id.into()]).unwrap();
    }

    /// Create a key as the test's superuser; returns (key_id, key).
    fn org_key(org_id: &str, permissions: &str) -> (pgrx::Uuid, String) {
        let (id, key) = Spi::get_two_with_args::<pgrx::Uuid, String>(
            "SELECT key_id, key FROM apikey.create_api_key(org_id => $1, permissions => $2::jsonb)",
            &[org_id.into(), permissions.into()],
        )
        .unwrap();
        (id.unwrap(), key.unwrap())
    }

    fn code_of(key: &str) -> String {
        Spi::get_one_with_args::<String>(
            "SELECT code FROM apikey.verify_api_key($1)",
            &[key.into()],
        )
        .unwrap()
        .unwrap()
    }

    #[pg_test]
    fn org_key_without_user_for_superuser_verifies_as_org_owned() {
        org("acme");
        let (id, key) = org_key("acme", r#"{"mesa": ["admin"]}"#);
        let (valid, code) = Spi::get_two_with_args::<bool, String>(
            "SELECT valid, code FROM apikey.verify_api_key($1)",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!((valid, code.as_deref()), (Some(true), Some("VALID")));
        let row = Spi::get_three_with_args::<String, String, pgrx::JsonB>(
            "SELECT org_id, user_id, permissions FROM apikey.verify_api_key($1)",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!(row.0.as_deref(), Some("acme"));
        assert_eq!(row.1, None);
        assert_eq!(row.2.unwrap().0, serde_json::json!({"mesa": ["admin"]}));
        let got = Spi::get_one_with_args::<pgrx::Uuid>(
            "SELECT key_id FROM apikey.verify_api_key($1)",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!(got, Some(id));
    }

    #[pg_test]
    fn stored_row_holds_digest_prefix_start_but_never_the_key() {
        org("acme");
        let (id, key) = org_key("acme", "{}");
        let digest_ok = Spi::get_one_with_args::<bool>(
            "SELECT digest = sha256(convert_to($2, 'UTF8')) FROM apikey.keys WHERE id = $1",
            &[id.into(), key.as_str().into()],
        )
        .unwrap();
        assert_eq!(digest_ok, Some(true));
        let secret = &key[3..key.len() - 6];
        let leaks = Spi::get_one_with_args::<i64>(
            "SELECT count(*) FROM apikey.keys k WHERE strpos(k::text, $1) > 0",
            &[secret.into()],
        )
        .unwrap();
        assert_eq!(leaks, Some(0));
        let (prefix, start) = Spi::get_two_with_args::<String, String>(
            "SELECT prefix, start FROM apikey.keys WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(prefix.as_deref(), Some("ak_"));
        assert_eq!(start.as_deref(), Some(&key[..7]));
    }

    #[pg_test]
    fn verify_codes_follow_the_contract_order() {
        org("acme");
        let (id, key) = org_key("acme", r#"{"files": ["read"]}"#);
        assert_eq!(code_of(&key), "VALID");
        let insufficient = Spi::get_one_with_args::<String>(
            "SELECT code FROM apikey.verify_api_key($1, '{\"files\": [\"write\"]}')",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!(insufficient.as_deref(), Some("INSUFFICIENT_PERMISSIONS"));
        // Expired outranks insufficient permissions; disabled outranks expired.
        Spi::run_with_args(
            "UPDATE apikey.keys SET expires_at = now() - interval '1 second' WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        let expired = Spi::get_one_with_args::<String>(
            "SELECT code FROM apikey.verify_api_key($1, '{\"files\": [\"write\"]}')",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!(expired.as_deref(), Some("KEY_EXPIRED"));
        Spi::run_with_args(
            "UPDATE apikey.keys SET enabled = false WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(code_of(&key), "KEY_DISABLED");
        Spi::run_with_args("SELECT apikey.revoke_api_key($1)", &[id.into()]).unwrap();
        assert_eq!(code_of(&key), "KEY_NOT_FOUND");
    }

    #[pg_test]
    fn garbage_keys_get_one_not_found_row() {
        org("acme");
        let (_, key) = org_key("acme", "{}");
        let mut changed = key.clone().into_bytes();
        changed[10] = if changed[10] == b'a' { b'b' } else { b'a' };
        let changed = String::from_utf8(changed).unwrap();
        for bad in ["", "ak_", "ключ-🔑", changed.as_str(), &"x".repeat(100_000)] {
            let rows = Spi::get_two_with_args::<i64, String>(
                "SELECT count(*), min(code) FROM apikey.verify_api_key($1)",
                &[bad.into()],
            )
            .unwrap();
            assert_eq!(
                (rows.0, rows.1.as_deref()),
                (Some(1), Some("KEY_NOT_FOUND")),
                "input {bad:.20}"
            );
        }
        let null = Spi::get_one::<String>("SELECT code FROM apikey.verify_api_key(NULL)").unwrap();
        assert_eq!(null.as_deref(), Some("KEY_NOT_FOUND"));
    }

    #[pg_test]
    fn well_formed_unknown_key_is_not_found() {
        // A key with a valid checksum that was never stored.
        let made = crate::keymat::generate("ak_").unwrap();
        assert_eq!(code_of(&made.key), "KEY_NOT_FOUND");
    }

    #[pg_test]
    fn malformed_required_permissions_raise_22023_even_for_a_bad_key() {
        assert_eq!(
            sqlstate_of("SELECT * FROM apikey.verify_api_key('nope', '[\"read\"]')"),
            "22023"
        );
        assert_eq!(
            sqlstate_of("SELECT * FROM apikey.verify_api_key('nope', '{\"a\": \"read\"}')"),
            "22023"
        );
        assert_eq!(
            sqlstate_of("SELECT * FROM apikey.verify_api_key('nope', '{\"a\": [\"read\"]}')"),
            "00000"
        );
    }

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
            Some("apikey.audit_log,apikey.audit_log_id_seq,apikey.keys,apikey.member_role_actions,apikey.members,apikey.organizations,apikey.owner_limits")
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

    // ------------------------------------------------------------ quotas, refill, rate limits
    // These call the verify decision with a pinned clock, so the timing rules are checked
    // exactly, without sleeping.

    fn at(base: i64, offset_ms: i64) -> pgrx::datum::TimestampWithTimeZone {
        pgrx::datum::TimestampWithTimeZone::try_from(base + offset_ms * 1000).unwrap()
    }

    fn clock() -> i64 {
        unsafe { pgrx::pg_sys::GetCurrentTimestamp() }
    }

    fn limited_key(args: &str) -> (pgrx::Uuid, String) {
        let sql =
            format!("SELECT key_id, key FROM apikey.create_api_key(org_id => 'acme', {args})");
        let (id, key) = Spi::get_two::<pgrx::Uuid, String>(&sql).unwrap();
        (id.unwrap(), key.unwrap())
    }

    fn verify_at(
        key: &str,
        required: Option<&str>,
        t: pgrx::datum::TimestampWithTimeZone,
    ) -> (String, Option<i64>, Option<pgrx::datum::Interval>) {
        let (code, remaining, retry_after, _) = crate::verify::decide_for_test(key, required, 1, t);
        (code, remaining, retry_after)
    }

    // ------------------------------------------------------------ metered APIs (0.2.0)

    /// verify's answer: code, remaining, retry_after in µs, and each rate limit's
    /// (name, scope, remaining).
    type Metered = (
        String,
        Option<i64>,
        Option<i128>,
        Vec<(String, String, i64)>,
    );

    /// verify at instant `t` with `cost`.
    fn meter_at(key: &str, cost: i64, t: pgrx::datum::TimestampWithTimeZone) -> Metered {
        let (code, remaining, retry_after, limits) =
            crate::verify::decide_for_test(key, None, cost, t);
        let limits = limits
            .map(|v| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|l| {
                        (
                            l["name"].as_str().unwrap().to_string(),
                            l["scope"].as_str().unwrap().to_string(),
                            l["remaining"].as_i64().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        (
            code,
            remaining,
            retry_after.map(|iv| iv.as_micros()),
            limits,
        )
    }

    /// `calls` calls `every_ms` apart from `t0 + start_ms`, each must be VALID.
    fn steady(key: &str, t0: i64, start_ms: i64, every_ms: i64, calls: i64, cost: i64) {
        for i in 0..calls {
            let t = start_ms + i * every_ms;
            let (code, ..) = meter_at(key, cost, at(t0, t));
            assert_eq!(code, "VALID", "call {i} at {t} ms");
        }
    }

    #[pg_test]
    fn steady_traffic_is_never_locked_out_by_a_named_limit() {
        org("acme");
        let (_, key) = limited_key(
            r#"rate_limits => '[{"name": "burst", "limit": 2, "window": "1 second"},
                               {"name": "tokens", "limit": 60, "window": "10 seconds", "unit": "cost"}]'"#,
        );
        let t0 = clock();
        // Exactly the rate of both: 2 calls a second, 3 tokens each (60 per 10 s).
        steady(&key, t0, 0, 500, 40, 3);
        // One call too many inside a window: refused by burst, until its window ends.
        let (code, _, retry, limits) = meter_at(&key, 3, at(t0, 19_750));
        assert_eq!((code.as_str(), retry), ("RATE_LIMITED", Some(250_000)));
        assert_eq!(limits[0], ("burst".into(), "key".into(), 0));
        // ... and the refusal counted in neither limit: traffic goes on at the same rate.
        steady(&key, t0, 20_000, 500, 20, 3);
        // A cost that would pass the tokens limit is refused by tokens alone.
        let (code, _, retry, limits) = meter_at(&key, 4, at(t0, 30_000));
        assert_eq!(
            code, "VALID",
            "a new 10 s window starts at 30 s: {limits:?}"
        );
        let (code, _, retry2, _) = meter_at(&key, 57, at(t0, 30_500));
        assert_eq!(code, "RATE_LIMITED");
        assert_eq!(retry, None);
        assert_eq!(
            retry2,
            Some(9_500_000),
            "tokens' window ends 10 s after 30 s"
        );
    }

    #[pg_test]
    fn steady_traffic_is_never_locked_out_by_an_owner_limit() {
        org("acme");
        Spi::run(
            r#"SELECT apikey.set_owner_limits(org_id => 'acme',
                   rate_limits => '[{"name": "org", "limit": 4, "window": "2 seconds"}]')"#,
        )
        .unwrap();
        let (_, a) = limited_key("name => 'a'");
        let (_, b) = limited_key("name => 'b'");
        let t0 = clock();
        // Two keys share 4 calls per 2 s: alternating, one call every 500 ms in all.
        for i in 0..40 {
            let key = if i % 2 == 0 { &a } else { &b };
            let (code, _, _, limits) = meter_at(key, 1, at(t0, i * 500));
            assert_eq!(code, "VALID", "call {i}");
            assert_eq!(limits[0].1, "owner");
        }
        let (code, _, retry, _) = meter_at(&a, 1, at(t0, 19_900));
        assert_eq!((code.as_str(), retry), ("RATE_LIMITED", Some(100_000)));
        steady(&b, t0, 20_000, 500, 8, 1);
    }

    #[pg_test]
    fn key_and_owner_quotas_are_spent_together_or_not_at_all() {
        org("acme");
        Spi::run(
            "SELECT apikey.set_owner_limits(org_id => 'acme', remaining => 10,
                 refill_amount => 10, refill_interval => '1 hour')",
        )
        .unwrap();
        let (id, key) = limited_key("remaining => 100");
        let t0 = clock();
        assert_eq!(meter_at(&key, 3, at(t0, 0)).1, Some(7), "the least left");
        assert_eq!(meter_at(&key, 7, at(t0, 1)).1, Some(0));
        let refused = meter_at(&key, 1, at(t0, 2));
        assert_eq!((refused.0.as_str(), refused.1), ("USAGE_EXCEEDED", Some(0)));
        assert!(
            refused.2.unwrap() > 3_590_000_000,
            "retry at the owner's refill"
        );
        assert_eq!(
            stored_counts(id).0,
            Some(90),
            "the refusal spent none of the key's"
        );
        // The owner's refill comes an hour after the limits were set.
        let (code, remaining, ..) = meter_at(&key, 4, at(t0, 3_600_001));
        assert_eq!((code.as_str(), remaining), ("VALID", Some(6)));
        assert_eq!(stored_counts(id).0, Some(86));
        // The key's own quota refuses: the owner's is not spent.
        Spi::run_with_args(
            "SELECT apikey.update_api_key($1, remaining => 2)",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(meter_at(&key, 3, at(t0, 3_600_002)).0, "USAGE_EXCEEDED");
        let owner_left = Spi::get_one::<i64>(
            "SELECT remaining FROM apikey.owner_limits WHERE owner_kind = 'org' AND owner_id = 'acme'",
        )
        .unwrap();
        assert_eq!(owner_left, Some(6));
        // cost 0 spends nothing and is admitted with nothing left.
        assert_eq!(meter_at(&key, 0, at(t0, 3_600_003)).0, "VALID");
    }

    #[pg_test]
    fn imported_keys_are_looked_up_only_while_some_are_in_use() {
        org("acme");
        assert!(!crate::verify::imported_keys_in_use());
        assert_eq!(code_of("legacy-key-text"), "KEY_NOT_FOUND");
        let id = Spi::get_one::<pgrx::Uuid>(
            "SELECT apikey.import_api_key(sha256('legacy-key-text'), org_id => 'acme')",
        )
        .unwrap()
        .unwrap();
        // The next statement (here: the verify) sees the import, and the flag with it.
        assert_eq!(code_of("legacy-key-text"), "VALID");
        assert!(crate::verify::imported_keys_in_use());
        Spi::run_with_args("SELECT apikey.revoke_api_key($1)", &[id.into()]).unwrap();
        assert_eq!(code_of("legacy-key-text"), "KEY_NOT_FOUND");
        assert!(!crate::verify::imported_keys_in_use());
    }

    #[pg_test]
    fn with_more_owners_than_a_backend_keeps_every_owner_is_looked_up() {
        org("acme");
        org("plain");
        // 10,001 owners with limits: more than verify keeps in memory.
        Spi::run(
            "INSERT INTO apikey.owner_limits (owner_kind, owner_id, remaining, set_by_role)
             SELECT 'user', 'u' || g, 5, 'test' FROM generate_series(1, 10001) g",
        )
        .unwrap();
        Spi::run("SELECT apikey.set_owner_limits(org_id => 'acme', remaining => 2)").unwrap();
        let (_, limited) = limited_key("name => 'in acme'");
        let plain = Spi::get_one::<String>(
            "SELECT key FROM apikey.create_api_key(org_id => 'plain', name => 'no limits')",
        )
        .unwrap()
        .unwrap();
        let t0 = clock();
        assert_eq!(meter_at(&limited, 1, at(t0, 0)).1, Some(1));
        assert_eq!(
            meter_at(&plain, 1, at(t0, 1)),
            ("VALID".into(), None, None, vec![])
        );
        assert!(
            crate::verify::owner_may_have_limits("org", "plain"),
            "looked up, not known"
        );
        let user_key = Spi::get_one::<String>(
            "SELECT key FROM apikey.create_api_key(user_id => 'u77', name => 'a user with limits')",
        )
        .unwrap()
        .unwrap();
        assert_eq!(meter_at(&user_key, 5, at(t0, 2)).1, Some(0));
        assert_eq!(meter_at(&user_key, 1, at(t0, 3)).0, "USAGE_EXCEEDED");
    }

    #[pg_test]
    fn owner_limits_apply_from_the_call_after_they_are_set() {
        org("acme");
        let (_, key) = limited_key("name => 'plain'");
        let t0 = clock();
        assert_eq!(meter_at(&key, 1, at(t0, 0)).1, None);
        Spi::run("SELECT apikey.set_owner_limits(org_id => 'acme', remaining => 1)").unwrap();
        assert_eq!(meter_at(&key, 1, at(t0, 1)).1, Some(0));
        assert_eq!(meter_at(&key, 1, at(t0, 2)).0, "USAGE_EXCEEDED");
        Spi::run("SELECT apikey.set_owner_limits(org_id => 'acme')").unwrap();
        assert_eq!(
            meter_at(&key, 1, at(t0, 3)),
            ("VALID".into(), None, None, vec![])
        );
    }

    fn stored_counts(id: pgrx::Uuid) -> (Option<i64>, Option<i32>) {
        Spi::get_two_with_args::<i64, i32>(
            "SELECT remaining, rate_window_count FROM apikey.keys WHERE id = $1",
            &[id.into()],
        )
        .unwrap()
    }

    #[pg_test]
    fn steady_traffic_is_never_locked_out_by_the_fixed_window() {
        org("acme");
        let (_, key) = limited_key("rate_limit_max => 2, rate_limit_window => '1 second'");
        let t0 = clock();
        assert_eq!(verify_at(&key, None, at(t0, 0)).0, "VALID");
        assert_eq!(verify_at(&key, None, at(t0, 500)).0, "VALID");
        let refused = verify_at(&key, None, at(t0, 900));
        assert_eq!(refused.0, "RATE_LIMITED");
        assert_eq!(
            refused.2.map(|iv| iv.as_micros()),
            Some(100_000),
            "retry after the window's end"
        );
        assert_eq!(verify_at(&key, None, at(t0, 1250)).0, "VALID");
        // The new window started at 1.25 s: one more fits, the next is refused until 2.25 s.
        assert_eq!(verify_at(&key, None, at(t0, 1300)).0, "VALID");
        let refused = verify_at(&key, None, at(t0, 2000));
        assert_eq!(
            (refused.0.as_str(), refused.2.map(|iv| iv.as_micros())),
            ("RATE_LIMITED", Some(250_000))
        );
        assert_eq!(verify_at(&key, None, at(t0, 2250)).0, "VALID");
    }

    #[pg_test]
    fn quota_counts_down_and_refills_once_per_interval() {
        org("acme");
        let (id, key) =
            limited_key("remaining => 2, refill_amount => 3, refill_interval => '1 hour'");
        let t0 = clock();
        assert_eq!(
            verify_at(&key, None, at(t0, 0)),
            ("VALID".into(), Some(1), None)
        );
        assert_eq!(
            verify_at(&key, None, at(t0, 1)),
            ("VALID".into(), Some(0), None)
        );
        let exhausted = verify_at(&key, None, at(t0, 2));
        assert_eq!(
            (exhausted.0.as_str(), exhausted.1),
            ("USAGE_EXCEEDED", Some(0))
        );
        let wait = exhausted
            .2
            .expect("retry_after names the next refill")
            .as_micros();
        assert!(wait > 3_590_000_000 && wait <= 3_600_000_000, "{wait}");
        assert_eq!(stored_counts(id).0, Some(0), "never below zero");
        // One hour after creation: refilled to 3, and this use spends one.
        let later = 3_600_000 + 1_000;
        assert_eq!(
            verify_at(&key, None, at(t0, later)),
            ("VALID".into(), Some(2), None)
        );
        assert_eq!(
            verify_at(&key, None, at(t0, later + 1)),
            ("VALID".into(), Some(1), None)
        );
        assert_eq!(
            verify_at(&key, None, at(t0, later + 2)),
            ("VALID".into(), Some(0), None)
        );
        // Still in the same interval: no second refill.
        assert_eq!(verify_at(&key, None, at(t0, later + 3)).0, "USAGE_EXCEEDED");
        assert_eq!(
            verify_at(&key, None, at(t0, 2 * 3_600_000)).0,
            "USAGE_EXCEEDED"
        );
        // The next interval is counted from the refill.
        assert_eq!(verify_at(&key, None, at(t0, later + 3_600_000)).0, "VALID");
    }

    #[pg_test]
    fn refusals_spend_nothing_they_should_not() {
        org("acme");
        let (id, key) = limited_key(
            "permissions => '{\"files\": [\"read\"]}', remaining => 5, rate_limit_max => 1, rate_limit_window => '1 hour'",
        );
        let t0 = clock();
        // Refused for permissions: no usage, no rate count.
        assert_eq!(
            verify_at(&key, Some(r#"{"files": ["write"]}"#), at(t0, 0)).0,
            "INSUFFICIENT_PERMISSIONS"
        );
        assert_eq!(stored_counts(id), (Some(5), Some(0)));
        assert_eq!(
            verify_at(&key, Some(r#"{"files": ["read"]}"#), at(t0, 1)),
            ("VALID".into(), Some(4), None)
        );
        assert_eq!(stored_counts(id), (Some(4), Some(1)));
        // Refused for the rate limit: no usage spent; the row reports what is left.
        let limited = verify_at(&key, None, at(t0, 2));
        assert_eq!((limited.0.as_str(), limited.1), ("RATE_LIMITED", Some(4)));
        assert_eq!(stored_counts(id), (Some(4), Some(1)));

        // Refused for usage: no rate limit spent.
        let (id, key) =
            limited_key("remaining => 0, rate_limit_max => 5, rate_limit_window => '1 hour'");
        assert_eq!(verify_at(&key, None, at(t0, 0)).0, "USAGE_EXCEEDED");
        assert_eq!(verify_at(&key, None, at(t0, 1)).0, "USAGE_EXCEEDED");
        assert_eq!(stored_counts(id), (Some(0), Some(0)));
        // Rate limited outranks usage exceeded.
        let (_, key) =
            limited_key("remaining => 1, rate_limit_max => 1, rate_limit_window => '1 hour'");
        assert_eq!(verify_at(&key, None, at(t0, 0)).0, "VALID");
        assert_eq!(verify_at(&key, None, at(t0, 1)).0, "RATE_LIMITED");
        // Disabled and expired keys spend nothing either.
        let (id, key) = limited_key("remaining => 3");
        Spi::run_with_args(
            "UPDATE apikey.keys SET enabled = false WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(verify_at(&key, None, at(t0, 0)).0, "KEY_DISABLED");
        assert_eq!(stored_counts(id).0, Some(3));
    }

    #[pg_test]
    fn last_used_at_is_written_at_most_once_per_resolution() {
        org("acme");
        let (id, key) = limited_key("name => 'plain'");
        let t0 = clock();
        let last_used = || {
            Spi::get_one_with_args::<pgrx::datum::TimestampWithTimeZone>(
                "SELECT last_used_at FROM apikey.keys WHERE id = $1",
                &[id.into()],
            )
            .unwrap()
            .map(pgrx::pg_sys::TimestampTz::from)
        };
        assert_eq!(last_used(), None);
        assert_eq!(verify_at(&key, None, at(t0, 0)).0, "VALID");
        assert_eq!(last_used(), Some(t0));
        assert_eq!(verify_at(&key, None, at(t0, 30_000)).0, "VALID");
        assert_eq!(last_used(), Some(t0), "no write within the minute");
        assert_eq!(verify_at(&key, None, at(t0, 61_000)).0, "VALID");
        assert_eq!(last_used(), Some(t0 + 61_000_000));
        // Refused verifies do not count as use.
        assert_eq!(
            verify_at(&key, Some(r#"{"x": ["y"]}"#), at(t0, 200_000)).0,
            "INSUFFICIENT_PERMISSIONS"
        );
        assert_eq!(last_used(), Some(t0 + 61_000_000));
        // A superuser can make every verify write.
        Spi::run("SET apikey.last_used_resolution = 0").unwrap();
        assert_eq!(verify_at(&key, None, at(t0, 62_000)).0, "VALID");
        assert_eq!(last_used(), Some(t0 + 62_000_000));
    }

    #[pg_test]
    fn read_only_transactions_verify_plain_keys_and_refuse_limited_ones() {
        org("acme");
        let (_, plain) = limited_key("name => 'plain'");
        let (_, limited) = limited_key("remaining => 10");
        assert_eq!(sqlstate_of("SELECT 1"), "00000"); // defines the helper while writes are allowed
        Spi::run("SET transaction_read_only = on").unwrap();
        assert_eq!(code_of(&plain), "VALID");
        assert_eq!(
            sqlstate_of(&format!("SELECT * FROM apikey.verify_api_key('{limited}')")),
            "25006"
        );
    }

    /// The shape of a jsonb value is read from the value itself: numbers of any size, any
    /// depth jsonb accepts, raw scalars, with no text or JSON parser on the way.
    #[pg_test]
    fn jsonb_shapes_are_read_from_the_value() {
        use crate::jsonb::{parse, Value};
        let v = parse(
            r#"{"a": 1e400, "b": [123456789012345678901234567890, "x", true, null], "c": {}}"#,
        )
        .value();
        assert_eq!(
            v,
            Value::Object(vec![
                ("a".into(), Value::Number(format!("1{}", "0".repeat(400)))),
                (
                    "b".into(),
                    Value::Array(vec![
                        Value::Number("123456789012345678901234567890".into()),
                        Value::String("x".into()),
                        Value::Bool(true),
                        Value::Null
                    ])
                ),
                ("c".into(), Value::Object(vec![])),
            ])
        );
        assert_eq!(parse("-0.50").value(), Value::Number("-0.50".into()));
        assert_eq!(parse(r#""s""#).value(), Value::String("s".into()));
        assert_eq!(parse("[]").value(), Value::Array(vec![]));
        assert!(parse("{}").is_object());
        assert!(!parse("[{}]").is_object());
        assert!(!parse("1").is_object());
        // 2,000 levels: walked without recursion.
        let deep = format!("{}1{}", "[".repeat(2000), "]".repeat(2000));
        let mut v = parse(&deep).value();
        let mut depth = 0;
        while let Value::Array(mut items) = v {
            depth += 1;
            v = items.pop().expect("one element per level");
        }
        assert_eq!((depth, v), (2000, Value::Number("1".into())));
    }

    /// What goes in comes out: create, read back and verify keep the caller's datum.
    #[pg_test]
    fn stored_jsonb_equals_what_was_given() {
        org("exact");
        let given =
            r#"{"a": 123456789012345678901234567890, "b": 0.1000000000000000000001, "c": 1e400}"#;
        let same = Spi::get_one_with_args::<bool>(
            "WITH k AS (SELECT key_id, key, metadata FROM apikey.create_api_key(org_id => 'exact', metadata => $1::jsonb)) \
             SELECT k.metadata = $1::jsonb \
                AND (SELECT g.metadata FROM apikey.get_api_key(k.key_id) g) = $1::jsonb \
                AND (SELECT v.metadata FROM apikey.verify_api_key(k.key) v) = $1::jsonb \
               FROM k",
            &[given.into()],
        )
        .unwrap();
        assert_eq!(same, Some(true));
    }

    /// `apikey.key_info` is built in one place, `apikey.key_info_of`: each field is the
    /// column of `apikey.keys` of the same name and type (`key_id` is `id`) with its value,
    /// the digest is not one of them, and every statement that returns or records a key
    /// calls the function instead of listing columns.
    #[pg_test]
    fn key_info_is_built_in_one_place_from_the_keys_columns() {
        let unmatched = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_attribute t
               LEFT JOIN pg_attribute c ON c.attrelid = 'apikey.keys'::regclass
                     AND c.attname = CASE t.attname WHEN 'key_id' THEN 'id' ELSE t.attname END
                     AND c.atttypid = t.atttypid AND NOT c.attisdropped
              WHERE t.attrelid = 'apikey.key_info'::regclass AND t.attnum > 0
                AND NOT t.attisdropped AND (c.attname IS NULL OR t.attname = 'digest')",
        )
        .unwrap();
        assert_eq!(unmatched, Some(0));
        org("acme");
        Spi::run(
            r#"SELECT apikey.create_api_key(org_id => 'acme', name => 'n', remaining => 3,
                   permissions => '{"a": ["b"]}', metadata => '{"m": 1.50}',
                   rate_limits => '[{"name": "x", "limit": 1, "window": "1 minute"}]')"#,
        )
        .unwrap();
        let differing = Spi::get_one::<i64>(
            "SELECT count(*) FROM apikey.keys k, jsonb_each(to_jsonb(apikey.key_info_of(k))) f
              WHERE f.value IS DISTINCT FROM
                    to_jsonb(k) -> CASE f.key WHEN 'key_id' THEN 'id' ELSE f.key END",
        )
        .unwrap();
        assert_eq!(differing, Some(0));
        // Inlined into the statements that call it: no function call per row.
        let plan: Vec<String> = Spi::connect(|c| {
            c.select(
                "EXPLAIN (VERBOSE, COSTS OFF) SELECT apikey.key_info_of(k) FROM apikey.keys k",
                None,
                &[],
            )
            .unwrap()
            .map(|r| r.get::<String>(1).unwrap().unwrap())
            .collect()
        });
        assert!(
            !plan.join("\n").contains("key_info_of"),
            "not inlined: {plan:?}"
        );
        let files = [
            ("key_get.sql", include_str!("../sql/queries/key_get.sql")),
            (
                "key_list_all.sql",
                include_str!("../sql/queries/key_list_all.sql"),
            ),
            (
                "key_list_org.sql",
                include_str!("../sql/queries/key_list_org.sql"),
            ),
            (
                "key_list_user.sql",
                include_str!("../sql/queries/key_list_user.sql"),
            ),
            (
                "key_revoke.sql",
                include_str!("../sql/queries/key_revoke.sql"),
            ),
            (
                "key_update.sql",
                include_str!("../sql/queries/key_update.sql"),
            ),
            (
                "key_insert.sql",
                include_str!("../sql/queries/key_insert.sql"),
            ),
            (
                "key_delete.sql",
                include_str!("../sql/queries/key_delete.sql"),
            ),
            (
                "delete_expired.sql",
                include_str!("../sql/queries/delete_expired.sql"),
            ),
            (
                "audit_key.sql",
                include_str!("../sql/queries/audit_key.sql"),
            ),
            (
                "key_import.sql",
                include_str!("../sql/queries/key_import.sql"),
            ),
        ];
        for (name, sql) in files {
            assert!(sql.contains("apikey.key_info_of("), "{name}");
            assert!(
                !sql.contains("::apikey.key_info"),
                "{name} lists key_info's columns"
            );
        }
    }
}
