//! Metered APIs (0.2.0) with a pinned clock: named limits, owner limits, quotas spent together, the per-backend facts (imported keys in use, owners with limits).
use pgrx::prelude::*;

#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::pgrx_tests::support::*;
    use pgrx::prelude::*;

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

    /// Budget slots on a pinned clock: a window's end and a refill are decided on the
    /// totals (the row and every slot), and take every slot's share back.
    #[pg_test]
    fn window_reset_and_refill_across_budget_slots() {
        org("acme");
        let (id, key) = limited_key(
            r#"remaining => 100, refill_amount => 100, refill_interval => '1 hour',
               rate_limits => '[{"name": "minute", "limit": 50, "window": "1 minute"}]'"#,
        );
        let t0 = clock();
        let first = meter_at(&key, 1, at(t0, 0));
        assert_eq!((first.0.as_str(), first.1), ("VALID", Some(99)));
        // As contention would have left it: 60 of the quota and 40 of the minute handed to
        // two slots (the row's window count includes what it handed out).
        let slots = |quota: i64, window: i64, due_ms: i64| {
            Spi::run_with_args(
                "UPDATE apikey.keys SET remaining = remaining - 2 * $2,
                        rate_counts = ARRAY[rate_counts[1] + 2 * $3] WHERE id = $1;
                 INSERT INTO apikey.key_slots (key_id, slot, quota, windows, by_cost, due_at, used_at)
                 SELECT $1, s, $2, ARRAY[$3], '{f}', $4, $5 FROM generate_series(0, 1) s",
                &[
                    id.into(),
                    quota.into(),
                    window.into(),
                    at(t0, due_ms).into(),
                    at(t0, 0).into(),
                ],
            )
            .unwrap();
        };
        slots(30, 20, 60_000);
        let held = |id: pgrx::Uuid| {
            Spi::get_one_with_args::<i64>(
                "SELECT count(*) FROM apikey.key_slots WHERE key_id = $1",
                &[id.into()],
            )
            .unwrap()
        };
        // In the minute: paid from the row; the answer counts the slots.
        let (code, remaining, _, limits) = meter_at(&key, 1, at(t0, 1));
        assert_eq!((code.as_str(), remaining), ("VALID", Some(98)));
        assert_eq!(limits, vec![("minute".into(), "key".into(), 48)]);
        assert_eq!(stored_counts(id).0, Some(38), "the row paid");
        assert_eq!(held(id), Some(2));
        // The minute has ended: a new one starts on the totals, and the idle slots fold
        // back into the row.
        let (code, remaining, _, limits) = meter_at(&key, 1, at(t0, 61_000));
        assert_eq!((code.as_str(), remaining), ("VALID", Some(97)));
        assert_eq!(limits, vec![("minute".into(), "key".into(), 49)]);
        assert_eq!(held(id), Some(0));
        assert_eq!(stored_counts(id).0, Some(97));
        // Slots again, then the hour's refill: remaining := 100, every share taken back.
        slots(30, 0, 3_600_000);
        let (code, remaining, ..) = meter_at(&key, 1, at(t0, 3_601_000));
        assert_eq!((code.as_str(), remaining), ("VALID", Some(99)));
        assert_eq!(held(id), Some(0));
        assert_eq!(stored_counts(id).0, Some(99));
        // Refusals are decided on the totals: 99 left, 60 of them in slots. A call of 80
        // is admitted (the row alone has 39), then one of 20 is refused with 19 left.
        slots(30, 0, 7_200_000);
        let (code, remaining, ..) = meter_at(&key, 80, at(t0, 3_602_000));
        assert_eq!((code.as_str(), remaining), ("VALID", Some(19)));
        let (code, remaining, ..) = meter_at(&key, 20, at(t0, 3_603_000));
        assert_eq!((code.as_str(), remaining), ("USAGE_EXCEEDED", Some(19)));
        assert_eq!(stored_counts(id).0, Some(19));
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
            crate::verify::owner_may_have_limits(crate::owner::Owner::org("plain")),
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
}
