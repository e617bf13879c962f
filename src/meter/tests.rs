//! Unit tests of the rules in `meter` (pure: no PostgreSQL needed).
use super::*;

const SEC: Micros = 1_000_000;

fn window(limit: i64, unit: Unit, count: i64, reset_at: Option<Micros>) -> Window {
    Window {
        limit,
        unit,
        count,
        reset_at,
        next_reset: 100 * SEC + 60 * SEC,
    }
}

fn quota(remaining: i64) -> Quota {
    Quota {
        remaining,
        refill: None,
    }
}

fn limits(windows: Vec<Window>, quota: Option<Quota>) -> Limits {
    Limits { windows, quota }
}

const NOW: Micros = 100 * SEC;

#[test]
fn cost_is_spent_from_every_quota_and_refused_when_any_has_less() {
    let key = limits(vec![], Some(quota(10)));
    let owner = limits(vec![], Some(quota(5)));
    match decide(NOW, 3, &key, &owner) {
        Verdict::Admitted { key, owner } => {
            assert_eq!(key.1.unwrap().remaining, 7);
            assert_eq!(owner.1.unwrap().remaining, 2);
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(
        decide(NOW, 6, &key, &owner),
        Verdict::UsageExceeded { retry_after: None }
    );
    // Exactly what is left is enough.
    assert!(matches!(
        decide(NOW, 5, &key, &owner),
        Verdict::Admitted { .. }
    ));
}

#[test]
fn a_due_refill_sets_what_is_left_and_is_recorded() {
    let q = Quota {
        remaining: 0,
        refill: Some(Refill {
            amount: 4,
            at: NOW - 1,
        }),
    };
    match decide(NOW, 3, &limits(vec![], Some(q)), &Limits::default()) {
        Verdict::Admitted { key, .. } => assert_eq!(
            key.1,
            Some(Spent {
                remaining: 1,
                refilled: true
            })
        ),
        v => panic!("{v:?}"),
    }
    let later = Quota {
        refill: Some(Refill {
            amount: 4,
            at: NOW + 5 * SEC,
        }),
        ..q
    };
    assert_eq!(
        decide(NOW, 1, &limits(vec![], Some(later)), &Limits::default()),
        Verdict::UsageExceeded {
            retry_after: Some(5 * SEC)
        }
    );
}

#[test]
fn requests_limits_count_calls_and_cost_limits_count_cost() {
    let key = limits(
        vec![
            window(5, Unit::Requests, 4, Some(NOW + SEC)),
            window(10, Unit::Cost, 4, Some(NOW + 2 * SEC)),
        ],
        None,
    );
    match decide(NOW, 6, &key, &Limits::default()) {
        Verdict::Admitted { key, .. } => {
            assert_eq!(key.0[0].count, 5);
            assert_eq!(key.0[1].count, 10);
        }
        v => panic!("{v:?}"),
    }
    // 7 would take the cost limit past 10: refused, the wait is that window's.
    assert_eq!(
        decide(NOW, 7, &key, &Limits::default()),
        Verdict::RateLimited {
            retry_after: Some(2 * SEC)
        }
    );
}

#[test]
fn retry_after_is_the_longest_wait_among_the_refusing_limits() {
    let key = limits(vec![window(1, Unit::Requests, 1, Some(NOW + SEC))], None);
    let owner = limits(
        vec![
            window(1, Unit::Requests, 1, Some(NOW + 30 * SEC)),
            window(100, Unit::Requests, 1, Some(NOW + 90 * SEC)),
        ],
        None,
    );
    assert_eq!(
        decide(NOW, 1, &key, &owner),
        Verdict::RateLimited {
            retry_after: Some(30 * SEC)
        }
    );
}

#[test]
fn a_window_that_ended_starts_again_with_this_call() {
    let w = window(2, Unit::Requests, 2, Some(NOW));
    match decide(NOW, 1, &limits(vec![w], None), &Limits::default()) {
        Verdict::Admitted { key, .. } => {
            assert_eq!(key.0[0].count, 1);
            assert_eq!(key.0[0].reset_at, Some(w.next_reset));
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn a_rate_limit_refusal_comes_before_an_empty_quota() {
    let key = limits(
        vec![window(1, Unit::Requests, 1, Some(NOW + SEC))],
        Some(quota(0)),
    );
    assert!(matches!(
        decide(NOW, 1, &key, &Limits::default()),
        Verdict::RateLimited { .. }
    ));
}

#[test]
fn cost_zero_counts_and_spends_nothing_and_is_never_refused_by_a_limit() {
    let full = window(3, Unit::Requests, 3, Some(NOW + SEC));
    let key = limits(vec![full], Some(quota(0)));
    match decide(NOW, 0, &key, &Limits::default()) {
        Verdict::Admitted { key, .. } => {
            assert_eq!(key.0[0], full);
            assert_eq!(
                key.1,
                Some(Spent {
                    remaining: 0,
                    refilled: false
                })
            );
        }
        v => panic!("{v:?}"),
    }
    // A window that is not running is not started by a call that counts nothing.
    let idle = window(3, Unit::Requests, 0, None);
    match decide(NOW, 0, &limits(vec![idle], None), &Limits::default()) {
        Verdict::Admitted { key, .. } => assert_eq!(key.0[0].reset_at, None),
        v => panic!("{v:?}"),
    }
}

#[test]
fn state_reports_what_is_left_and_when_the_window_ends() {
    let w = window(10, Unit::Requests, 4, Some(NOW + SEC));
    assert_eq!(w.state(NOW), (6, Some(NOW + SEC)));
    assert_eq!(w.state(NOW + SEC), (10, None));
}

#[test]
fn counts_do_not_overflow() {
    let w = window(i64::MAX, Unit::Cost, i64::MAX - 1, Some(NOW + SEC));
    assert!(matches!(
        decide(
            NOW,
            i64::from(i32::MAX),
            &limits(vec![w], None),
            &Limits::default()
        ),
        Verdict::RateLimited { .. }
    ));
}

#[test]
fn a_call_no_wait_admits_has_no_retry_after() {
    // A cost window of 5 with 4 counted: cost 2 waits for the window's end; cost 6 never fits.
    let w = window(5, Unit::Cost, 4, Some(NOW + SEC));
    assert_eq!(
        decide(NOW, 2, &limits(vec![w], None), &Limits::default()),
        Verdict::RateLimited {
            retry_after: Some(SEC)
        }
    );
    assert_eq!(
        decide(NOW, 6, &limits(vec![w], None), &Limits::default()),
        Verdict::RateLimited { retry_after: None }
    );
    // A quota refilled to 10 every hour, 1 left: cost 5 waits for the refill, cost 11 never fits.
    let q = Quota {
        remaining: 1,
        refill: Some(Refill {
            amount: 10,
            at: NOW + 3600 * SEC,
        }),
    };
    assert_eq!(
        decide(NOW, 5, &limits(vec![], Some(q)), &Limits::default()),
        Verdict::UsageExceeded {
            retry_after: Some(3600 * SEC)
        }
    );
    assert_eq!(
        decide(NOW, 11, &limits(vec![], Some(q)), &Limits::default()),
        Verdict::UsageExceeded { retry_after: None }
    );
    // Rate limited now, but the owner's quota could never pay for it: no retry either.
    let roomy = window(5, Unit::Requests, 5, Some(NOW + SEC));
    assert_eq!(
        decide(
            NOW,
            11,
            &limits(vec![roomy], None),
            &limits(vec![], Some(q))
        ),
        Verdict::RateLimited { retry_after: None }
    );
}
