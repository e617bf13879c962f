//! Metering: what one verify of cost `cost` does to the rate limits and quotas that apply
//! to a key — the key's own and its owner's — decided all at once, so that a call is
//! admitted everywhere or nowhere.
//!
//! Pure arithmetic on microsecond timestamps (PostgreSQL's `TimestampTz`). The calendar
//! arithmetic (`now + '1 month'`) is done by the caller, in SQL, before the decision: each
//! [`Window`] and [`Quota`] arrives with the instants it needs. So the rules live here
//! once, and are unit-tested here.
//!
//! The rules:
//! - A rate limit is a fixed window that starts at the first admitted call after the
//!   previous window ended. A call adds 1 to a `requests` limit (0 when `cost` is 0) and
//!   `cost` to a `cost` limit; the limit admits it when what the running window has
//!   counted plus that stays within `limit`.
//! - A quota admits a call when what is left (after a refill that is due) is at least
//!   `cost`. A due refill sets what is left to the refill amount, as in 0.1.0.
//! - Checks run in the contract's order: rate limits (the key's, then the owner's), then
//!   quotas (the key's, then the owner's). The first kind that refuses names the answer;
//!   a refused call changes nothing anywhere.
pub use crate::backend::Micros;

/// What a call adds to a rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Each admitted call counts 1 (a call of cost 0 counts nothing).
    Requests,
    /// Each admitted call counts its cost.
    Cost,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Requests => "requests",
            Unit::Cost => "cost",
        }
    }

    fn increment(self, cost: i64) -> i64 {
        match self {
            Unit::Requests => i64::from(cost > 0),
            Unit::Cost => cost,
        }
    }
}

/// One rate limit's settings and stored state, at the instant of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub limit: i64,
    pub unit: Unit,
    /// What the window that ends at `reset_at` has counted.
    pub count: i64,
    /// When the current window ends; `None`: no window has started.
    pub reset_at: Option<Micros>,
    /// `now + window`: when a window that starts with this call ends.
    pub next_reset: Micros,
}

impl Window {
    fn running(&self, now: Micros) -> bool {
        self.reset_at.is_some_and(|r| r > now)
    }

    /// What the running window has counted (0 when none runs).
    fn used(&self, now: Micros) -> i64 {
        if self.running(now) {
            self.count
        } else {
            0
        }
    }

    fn admits(&self, now: Micros, cost: i64) -> bool {
        self.used(now)
            .checked_add(self.unit.increment(cost))
            .is_some_and(|n| n <= self.limit)
    }

    /// Whether a fresh window would admit the call (a `cost` window whose limit is below
    /// the cost never does).
    fn can_ever_admit(&self, cost: i64) -> bool {
        self.unit.increment(cost) <= self.limit
    }

    /// The state after admitting a call (a call that counts nothing starts no window).
    fn spend(&self, now: Micros, cost: i64) -> Window {
        let inc = self.unit.increment(cost);
        if inc == 0 {
            return *self;
        }
        let (count, reset_at) = if self.running(now) {
            (self.count + inc, self.reset_at)
        } else {
            (inc, Some(self.next_reset))
        };
        Window {
            count,
            reset_at,
            ..*self
        }
    }

    /// What is left of the window as of `now`, and when it ends (`None`: no window runs).
    pub fn state(&self, now: Micros) -> (i64, Option<Micros>) {
        if self.running(now) {
            ((self.limit - self.count).max(0), self.reset_at)
        } else {
            (self.limit, None)
        }
    }
}

/// A quota's settings and stored state, at the instant of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub remaining: i64,
    pub refill: Option<Refill>,
}

/// A quota's refill: `amount` at `at` (the last refill, or the start, plus the interval).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refill {
    pub amount: i64,
    pub at: Micros,
}

impl Quota {
    fn refill_due(&self, now: Micros) -> bool {
        self.refill.is_some_and(|r| r.at <= now)
    }

    /// What is left as of `now`, a due refill applied.
    pub fn left(&self, now: Micros) -> i64 {
        match self.refill {
            Some(r) if r.at <= now => r.amount,
            _ => self.remaining,
        }
    }

    fn admits(&self, now: Micros, cost: i64) -> bool {
        self.left(now) >= cost
    }

    /// Whether the call is admitted now or after some refill (a refill smaller than the
    /// cost never admits it).
    fn can_ever_admit(&self, now: Micros, cost: i64) -> bool {
        self.admits(now, cost) || self.refill.is_some_and(|r| r.amount >= cost)
    }

    /// How long until the next refill, for a refused call.
    fn retry_after(&self, now: Micros) -> Option<Micros> {
        self.refill.filter(|r| r.at > now).map(|r| r.at - now)
    }
}

/// A quota after a call: what is left, and whether this call applied a due refill (the
/// caller then records `now` as the last refill).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spent {
    pub remaining: i64,
    pub refilled: bool,
}

/// Everything that meters one owner's (or one key's) calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub windows: Vec<Window>,
    pub quota: Option<Quota>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.quota.is_none()
    }

    /// The totals: these counts (a party's row) with what its budget slots hold added
    /// back — their quota shares to what is left, their window allowances off the counts.
    pub fn with_held(&self, held: &Held) -> Limits {
        let mut total = self.clone();
        if let Some(q) = &mut total.quota {
            q.remaining += held.quota;
        }
        for (w, h) in total.windows.iter_mut().zip(&held.windows) {
            w.count -= h;
        }
        total
    }

    /// Whether nothing is due at `now`: every window runs and no refill is due. Only
    /// then may a call be admitted from a part of the budget (the row alone, or one
    /// slot); a window that starts or a refill sets the total, which needs every slot.
    pub fn current(&self, now: Micros) -> bool {
        self.windows.iter().all(|w| w.running(now))
            && !self.quota.is_some_and(|q| q.refill_due(now))
    }
}

/// What a party's budget slots hold, summed: the quota shares, and each window's
/// allowance (by position, as in [`Limits::windows`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub quota: i64,
    pub windows: Vec<i64>,
}

impl Held {
    /// Add one slot's share.
    pub fn add(&mut self, quota: Option<i64>, windows: &[i64]) {
        self.quota += quota.unwrap_or(0);
        if self.windows.len() < windows.len() {
            self.windows.resize(windows.len(), 0);
        }
        for (sum, w) in self.windows.iter_mut().zip(windows) {
            *sum += w;
        }
    }
}

/// The share of a budget that each of `slots` slots is handed by [`hand_out`]: a part of
/// what is left of the quota and of each window, each window's unit, and the instant from
/// which the share no longer counts (the first window end or refill).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    pub slots: usize,
    pub quota: Option<i64>,
    pub windows: Vec<i64>,
    pub by_cost: Vec<bool>,
    pub due_at: Option<Micros>,
}

/// How many budget slots one party may have.
pub const MAX_SLOTS: usize = 16;

/// Hand `slots` equal shares of what `after` has left (a party's totals after an admitted
/// call, every window running) to budget slots, each share enough for at least one call
/// of `cost`; fewer slots when what is left would not give each that much, none when a
/// refill or window end has come (`now` or before). The row keeps the rest: returns the
/// row's counts and the share. The row's window counts include what the slots were
/// handed, so that the row alone never admits more than is left unhanded.
pub fn hand_out(after: &Limits, now: Micros, cost: i64, slots: usize) -> (Limits, Share) {
    // Every window must run (an admitted call of cost > 0 starts those that did not), and
    // a refill this call applied leaves the quota's next one unknown here.
    if cost <= 0 || after.windows.iter().any(|w| !w.running(now)) {
        return (after.clone(), Share::none());
    }
    let refill_at = after.quota.and_then(|q| q.refill).map(|r| r.at);
    if refill_at.is_some_and(|at| at <= now) {
        return (after.clone(), Share::none());
    }
    let due_at = after
        .windows
        .iter()
        .filter_map(|w| w.reset_at)
        .chain(refill_at)
        .min();
    // Each part (the row's and every slot's) must pay for one call at least.
    let calls = after
        .quota
        .map(|q| q.remaining / cost)
        .into_iter()
        .chain(
            after
                .windows
                .iter()
                .map(|w| (w.limit - w.count) / w.unit.increment(cost)),
        )
        .min()
        .unwrap_or(0);
    let slots = slots.min(usize::try_from(calls - 1).unwrap_or(0));
    if slots == 0 {
        return (after.clone(), Share::none());
    }
    let parts = slots as i64 + 1;
    let mut row = after.clone();
    let quota = row.quota.as_mut().map(|q| {
        let share = q.remaining / parts;
        q.remaining -= share * slots as i64;
        share
    });
    let windows = row
        .windows
        .iter_mut()
        .map(|w| {
            let share = (w.limit - w.count) / parts;
            w.count += share * slots as i64;
            share
        })
        .collect();
    let by_cost = after.windows.iter().map(|w| w.unit == Unit::Cost).collect();
    (
        row,
        Share {
            slots,
            quota,
            windows,
            by_cost,
            due_at,
        },
    )
}

impl Share {
    /// No slots.
    pub fn none() -> Share {
        Share {
            slots: 0,
            quota: None,
            windows: Vec::new(),
            by_cost: Vec::new(),
            due_at: None,
        }
    }
}

/// The answer for one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted: the new state of each window and quota, key's and owner's, in the order
    /// they came in.
    Admitted {
        key: (Vec<Window>, Option<Spent>),
        owner: (Vec<Window>, Option<Spent>),
    },
    /// Refused by a rate limit: the longest wait among the refusing limits.
    RateLimited { retry_after: Option<Micros> },
    /// Refused by a quota: when the refusing quota refills (the longest wait if both do).
    UsageExceeded { retry_after: Option<Micros> },
}

/// Decide one call of `cost` (≥ 0) at `now` against the key's and its owner's limits.
/// A refused call that no wait would admit (its cost above a `cost` window's limit, or
/// above what a quota refills to) has no `retry_after`: a client must not retry it.
pub fn decide(now: Micros, cost: i64, key: &Limits, owner: &Limits) -> Verdict {
    let quotas = [key.quota, owner.quota];
    // Asked of refused calls only.
    let never = || {
        key.windows
            .iter()
            .chain(&owner.windows)
            .any(|w| !w.can_ever_admit(cost))
            || quotas
                .iter()
                .flatten()
                .any(|q| !q.can_ever_admit(now, cost))
    };
    let windows = key.windows.iter().chain(&owner.windows);
    let refusing: Vec<&Window> = windows.filter(|w| !w.admits(now, cost)).collect();
    if !refusing.is_empty() {
        let retry_after = refusing
            .iter()
            .filter_map(|w| w.reset_at.map(|r| r - now))
            .max()
            .filter(|_| !never());
        return Verdict::RateLimited { retry_after };
    }
    let short: Vec<&Quota> = quotas
        .iter()
        .flatten()
        .filter(|q| !q.admits(now, cost))
        .collect();
    if !short.is_empty() {
        // A quota that never refills makes the wait unbounded: no retry time then.
        let waits: Option<Vec<Micros>> = short.iter().map(|q| q.retry_after(now)).collect();
        return Verdict::UsageExceeded {
            retry_after: waits.and_then(|w| w.into_iter().max()).filter(|_| !never()),
        };
    }
    let spend = |l: &Limits| {
        (
            l.windows.iter().map(|w| w.spend(now, cost)).collect(),
            l.quota.map(|q| Spent {
                remaining: q.left(now) - cost,
                refilled: q.refill_due(now) && cost > 0,
            }),
        )
    };
    Verdict::Admitted {
        key: spend(key),
        owner: spend(owner),
    }
}

pub mod report;

#[cfg(test)]
mod tests;
