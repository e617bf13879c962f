//! Usage analytics without `shared_preload_libraries` (the pgrx test server does not
//! preload): verify works as before and counts nothing; the functions raise 55000 with a
//! hint. The counters' file format round-trips. With the library preloaded, the behaviour
//! is tested by `tests/pg_regress/sql/usage.sql` and the `usage` fault groups.
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::pgrx_tests::support::{org, org_key, sqlstate_of};
    use crate::usage::{self, Counter};

    #[pg_test]
    fn without_preload_nothing_is_counted_and_the_functions_say_how_to_turn_it_on() {
        org("usage-np");
        let (id, key) = org_key("usage-np", "{}");
        assert!(!usage::counting(), "no shared table without preload");
        let code = Spi::get_one_with_args::<String>(
            "SELECT code FROM apikey.verify_api_key($1)",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!(code.as_deref(), Some("VALID"));
        for sql in [
            format!("SELECT * FROM apikey.key_usage('{id}')"),
            "SELECT * FROM apikey.owner_usage(org_id => 'usage-np')".to_string(),
            "SELECT * FROM apikey.usage_live()".to_string(),
            "SELECT apikey.flush_usage()".to_string(),
        ] {
            assert_eq!(sqlstate_of(&sql), "55000", "{sql}");
        }
        // The message, as a user sees it.
        Spi::run(
            "CREATE FUNCTION pg_temp.usage_message() RETURNS text LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM apikey.usage_live(); RETURN ''; \
             EXCEPTION WHEN OTHERS THEN RETURN SQLERRM; END $$",
        )
        .unwrap();
        let message = Spi::get_one::<String>("SELECT pg_temp.usage_message()")
            .unwrap()
            .unwrap_or_default();
        assert!(message.contains("shared_preload_libraries"), "{message}");
        // Verify still writes last_used_at itself (the writer would, with analytics).
        let used = Spi::get_one_with_args::<bool>(
            "SELECT last_used_at IS NOT NULL FROM apikey.keys WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(used, Some(true));
    }

    #[pg_test]
    fn counters_round_trip_through_the_shutdown_file_format() {
        let c = Counter {
            db: 16_384,
            key: Some([7; 16]),
            hour: 123 * 3_600_000_000,
            code: 4,
            calls: u64::MAX - 1,
            cost: 99,
            last_at: 123 * 3_600_000_000 + 5,
        };
        assert_eq!(Counter::from_bytes(&c.to_bytes()), c);
        let unknown = Counter {
            key: None,
            code: usage::OVERFLOW,
            ..c
        };
        assert_eq!(Counter::from_bytes(&unknown.to_bytes()), unknown);
        assert_eq!(unknown.code_name(), "OVERFLOW");
        assert_eq!(c.code_name(), "INSUFFICIENT_PERMISSIONS");
        // Every verify code has its number, and back.
        assert_eq!(usage::CODES.len(), 8);
    }
}
