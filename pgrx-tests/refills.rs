//! Refills on a schedule (0.3.0), with a pinned clock: periods end at anchor + k × interval,
//! computed from the anchor (calendar months, leap years), one refill however many periods
//! passed, and the anchor set, kept and shown by the functions that take it.
use pgrx::prelude::*;

#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::pgrx_tests::support::*;
    use pgrx::datum::TimestampWithTimeZone;
    use pgrx::prelude::*;

    /// A time given as text (UTC).
    fn ts(text: &str) -> TimestampWithTimeZone {
        Spi::get_one_with_args::<TimestampWithTimeZone>("SELECT $1::timestamptz", &[text.into()])
            .unwrap()
            .unwrap()
    }

    /// Whether two times are the same instant.
    fn same(a: TimestampWithTimeZone, b: &str) -> bool {
        a == ts(b)
    }

    fn period_end(anchor: &str, every: &str, t: &str, step: i32) -> TimestampWithTimeZone {
        Spi::get_one_with_args::<TimestampWithTimeZone>(
            "SELECT apikey.refill_period_end($1::timestamptz, $2::interval, $3::timestamptz, $4)",
            &[anchor.into(), every.into(), t.into(), step.into()],
        )
        .unwrap()
        .unwrap()
    }

    fn last_refill(id: pgrx::Uuid) -> TimestampWithTimeZone {
        Spi::get_one_with_args::<TimestampWithTimeZone>(
            "SELECT last_refill_at FROM apikey.keys WHERE id = $1",
            &[id.into()],
        )
        .unwrap()
        .unwrap()
    }

    /// What a verify at `t` answers: code and remaining.
    fn use_at(key: &str, t: &str) -> (String, Option<i64>) {
        let (code, remaining, _) = verify_at(key, None, ts(t));
        (code, remaining)
    }

    #[pg_test]
    fn monthly_periods_follow_the_calendar_from_the_anchor() {
        // Each end is anchor + k months: 31 Jan, 28 Feb, 31 Mar, 30 Apr (not 28 Mar).
        let a = "2027-01-31 12:00+00";
        for (t, step, end) in [
            ("2027-02-01", 1, "2027-02-28 12:00+00"),
            ("2027-02-28 12:00+00", 1, "2027-03-31 12:00+00"),
            ("2027-03-31 11:59+00", 0, "2027-02-28 12:00+00"),
            ("2027-04-15", 1, "2027-04-30 12:00+00"),
            ("2027-04-15", 0, "2027-03-31 12:00+00"),
            // Before the anchor: periods count back from it.
            ("2026-12-15", 1, "2026-12-31 12:00+00"),
            ("2026-12-15", 2, "2027-01-31 12:00+00"),
            // Leap years: 29 Feb 2028, 28 Feb 2029; a yearly anchor on 29 Feb.
            ("2028-02-10", 1, "2028-02-29 12:00+00"),
            ("2029-02-10", 1, "2029-02-28 12:00+00"),
        ] {
            assert!(
                same(period_end(a, "1 month", t, step), end),
                "{t} step {step}: {:?}",
                period_end(a, "1 month", t, step)
            );
        }
        assert!(same(
            period_end("2024-02-29 00:00+00", "1 year", "2025-03-01", 0),
            "2025-02-28 00:00+00"
        ));
        assert!(same(
            period_end("2024-02-29 00:00+00", "1 year", "2028-03-01", 0),
            "2028-02-29 00:00+00"
        ));
        // Far from the anchor, and a period of hours: still exact.
        assert!(same(
            period_end("2000-01-01 00:00+00", "7 hours", "2027-06-01 00:00+00", 1),
            "2027-06-01 05:00+00"
        ));
        // UTC, whatever the session's time zone.
        Spi::run("SET LOCAL TimeZone = 'America/New_York'").unwrap();
        assert!(same(
            period_end(a, "1 month", "2027-02-01", 1),
            "2027-02-28 12:00+00"
        ));
    }

    #[pg_test]
    fn an_idle_key_refills_once_on_its_anchored_day() {
        org("acme");
        let (id, key) = limited_key(
            "remaining => 10, refill_amount => 10, refill_interval => '1 month',
             refill_anchor => '2020-01-31 12:00+00'",
        );
        // Created now (after 2026-12-07): the first refill is the first period end after.
        let anchor = Spi::get_one_with_args::<TimestampWithTimeZone>(
            "SELECT g.refill_anchor FROM apikey.get_api_key($1) g",
            &[id.into()],
        )
        .unwrap();
        assert!(
            same(anchor.unwrap(), "2020-01-31 12:00+00"),
            "key_info shows the anchor"
        );
        assert_eq!(use_at(&key, "2031-01-01"), ("VALID".into(), Some(9)));
        assert!(
            same(last_refill(id), "2030-12-31 12:00+00"),
            "the period end, not the call"
        );
        assert_eq!(
            use_at(&key, "2031-01-31 11:00+00"),
            ("VALID".into(), Some(8))
        );
        assert_eq!(
            use_at(&key, "2031-01-31 12:00+00"),
            ("VALID".into(), Some(9))
        );
        // 28 Feb (from 31 Jan + 1 month), then 31 Mar (from the anchor, not 28 Mar).
        assert_eq!(
            use_at(&key, "2031-02-28 11:59+00"),
            ("VALID".into(), Some(8))
        );
        assert_eq!(
            use_at(&key, "2031-02-28 12:00+00"),
            ("VALID".into(), Some(9))
        );
        assert_eq!(
            use_at(&key, "2031-03-28 12:00+00"),
            ("VALID".into(), Some(8))
        );
        assert_eq!(
            use_at(&key, "2031-03-31 12:00+00"),
            ("VALID".into(), Some(9))
        );
        // Idle for three periods (30 Apr, 31 May, 30 Jun): one refill, not three, and the
        // next stays on the anchor's day.
        assert_eq!(
            use_at(&key, "2031-06-30 13:00+00"),
            ("VALID".into(), Some(9))
        );
        assert!(same(last_refill(id), "2031-06-30 12:00+00"));
        assert_eq!(
            use_at(&key, "2031-07-31 11:00+00"),
            ("VALID".into(), Some(8))
        );
        assert_eq!(
            use_at(&key, "2031-07-31 12:00+00"),
            ("VALID".into(), Some(9))
        );
        // Used up: USAGE_EXCEEDED until the next anchored end, which retry_after names.
        Spi::run_with_args(
            "UPDATE apikey.keys SET remaining = 0 WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        let (code, _, retry) = verify_at(&key, None, ts("2031-08-30 12:00+00"));
        assert_eq!(code, "USAGE_EXCEEDED");
        assert_eq!(
            retry.map(|r| r.as_micros()),
            Some(24 * 3_600_000_000),
            "until 31 Aug 12:00"
        );
        assert_eq!(
            use_at(&key, "2031-08-31 12:00+00"),
            ("VALID".into(), Some(9))
        );
    }

    #[pg_test]
    fn the_anchor_is_set_kept_and_validated() {
        org("acme");
        // Default: the moment of the call.
        let (id, _) = limited_key("remaining => 5, refill_amount => 5, refill_interval => '1 day'");
        let fresh = Spi::get_one_with_args::<bool>(
            "SELECT g.refill_anchor BETWEEN now() AND clock_timestamp() FROM apikey.get_api_key($1) g",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(fresh, Some(true));
        // A rename keeps it; a new anchor sets it; a new interval without one re-anchors now.
        let anchor_after = |sql: &str| {
            Spi::get_one_with_args::<TimestampWithTimeZone>(
                &format!("SELECT refill_anchor FROM apikey.update_api_key($1, {sql})"),
                &[id.into()],
            )
            .unwrap()
            .unwrap()
        };
        let before = anchor_after("name => 'renamed'");
        assert_eq!(anchor_after("name => 'again'"), before);
        assert!(same(
            anchor_after("refill_anchor => '2027-03-01 00:00+00'"),
            "2027-03-01 00:00+00"
        ));
        let reanchored = anchor_after("refill_interval => '1 week'");
        let at_the_call = Spi::get_one_with_args::<bool>(
            "SELECT $1 BETWEEN now() AND clock_timestamp()",
            &[reanchored.into()],
        )
        .unwrap();
        assert_eq!(at_the_call, Some(true), "{reanchored:?}");
        // No refill, no anchor: clearing the refill clears it.
        let cleared = Spi::get_one_with_args::<bool>(
            "SELECT refill_anchor IS NULL FROM apikey.update_api_key($1,
                 clear => '{refill_amount, refill_interval}')",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(cleared, Some(true));
        // Bad anchors: 22023 with no refill, and for infinity; a policy field (42501 for an
        // ordinary caller is in tests/pg_regress).
        assert_eq!(
            sqlstate_of("SELECT apikey.create_api_key(org_id => 'acme', refill_anchor => now())"),
            "22023"
        );
        assert_eq!(
            sqlstate_of(
                "SELECT apikey.create_api_key(org_id => 'acme', remaining => 1, refill_amount => 1,
                     refill_interval => '1 day', refill_anchor => 'infinity')"
            ),
            "22023"
        );
        assert_eq!(
            sqlstate_of("SELECT apikey.set_owner_limits(org_id => 'acme', refill_anchor => now())"),
            "22023"
        );
        // An owner's: set, shown, and the next refill is the next anchored end.
        Spi::run(
            "SELECT apikey.set_owner_limits(org_id => 'acme', remaining => 100, refill_amount => 100,
                 refill_interval => '1 month', refill_anchor => '2020-01-31 00:00+00')",
        )
        .unwrap();
        let (anchor, next) = Spi::get_two::<TimestampWithTimeZone, TimestampWithTimeZone>(
            "SELECT refill_anchor, next_refill_at FROM apikey.get_owner_limits(org_id => 'acme')",
        )
        .unwrap();
        assert!(same(anchor.unwrap(), "2020-01-31 00:00+00"));
        let expected = period_end("2020-01-31 00:00+00", "1 month", "now", 1);
        assert_eq!(next, Some(expected));
        // An imported key keeps the period it brings along: anchored at its last refill.
        let imported = Spi::get_one::<pgrx::Uuid>(
            "SELECT apikey.import_api_key(sha256('refill-import'::bytea), org_id => 'acme',
                 remaining => 3, refill_amount => 3, refill_interval => '30 days',
                 last_refill_at => '2026-11-20 00:00+00')",
        )
        .unwrap();
        let anchor = Spi::get_one_with_args::<TimestampWithTimeZone>(
            "SELECT g.refill_anchor FROM apikey.get_api_key($1) g",
            &[imported.unwrap().into()],
        )
        .unwrap();
        assert!(same(anchor.unwrap(), "2026-11-20 00:00+00"));
    }
}
