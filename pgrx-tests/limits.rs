//! Quotas, refills, the fixed window, refusals and last_used_at, with a pinned clock; read-only transactions.
use pgrx::prelude::*;

#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::pgrx_tests::support::*;
    use pgrx::prelude::*;

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
            verify_at(&key, None, at(t0, 2 * 3_600_000 - 1_000)).0,
            "USAGE_EXCEEDED"
        );
        // The next period ends two hours after the anchor (the key's creation, just before
        // t0), not one hour after the late refill (0.3.0: refills on a schedule).
        assert_eq!(verify_at(&key, None, at(t0, 2 * 3_600_000)).0, "VALID");
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

    /// Metered verifies in one statement do not grow the backend's memory with their
    /// number (what they read through SPI is freed with each call, not kept until the
    /// transaction ends): 20,000 of them leave less than 1 MiB behind.
    #[pg_test]
    fn many_metered_verifies_in_one_statement_keep_memory_flat() {
        org("acme");
        let (_, key) = limited_key(
            "remaining => 100000000, rate_limits => '[{\"name\": \"a\", \"limit\": 1000000000, \"window\": \"1 hour\"}, \
             {\"name\": \"b\", \"limit\": 1000000000, \"window\": \"1 day\"}]'",
        );
        let total = || {
            Spi::get_one::<i64>("SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts")
                .unwrap()
                .unwrap()
        };
        let before = total();
        let valid = Spi::get_one_with_args::<i64>(
            "SELECT count(*) FROM generate_series(1, 20000) g, LATERAL apikey.verify_api_key($1) v WHERE v.valid",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!(valid, Some(20000));
        let grown = total() - before;
        assert!(
            grown < 1 << 20,
            "20,000 metered verifies grew memory by {grown} bytes"
        );
    }

    /// Interval texts (windows of stored `rate_limits`) are read as PostgreSQL reads them,
    /// in the session's IntervalStyle, and kept per backend: a bad one is `None` each
    /// time, never an error.
    #[pg_test]
    fn interval_texts_are_read_as_postgresql_reads_them() {
        use crate::backend::parse_interval;
        let micros = |text: &str| parse_interval(text).map(|iv| iv.as_micros());
        assert_eq!(micros("1 minute"), Some(60_000_000));
        assert_eq!(micros("1 minute"), Some(60_000_000));
        assert!(parse_interval("soon").is_none());
        assert!(parse_interval("soon").is_none());
        // The one setting interval_in depends on: '-1 2:03:04' is -(1 day 2:03:04) in
        // sql_standard style, and -1 day +2:03:04 in postgres style.
        Spi::run("SET LOCAL IntervalStyle = 'sql_standard'").unwrap();
        let standard = micros("-1 2:03:04");
        Spi::run("SET LOCAL IntervalStyle = 'postgres'").unwrap();
        let postgres = micros("-1 2:03:04");
        assert!(standard.is_some() && postgres.is_some());
        assert_ne!(standard, postgres);
    }
}
