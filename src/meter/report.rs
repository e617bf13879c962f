//! What the rules of [`crate::meter`] work on, as a party stores it (its windows with
//! their names), and how the state of its limits is shown: one JSON object per window,
//! for verify's `rate_limits` column and `get_owner_limits`' `rate_limit_state`.
use super::{Limits, Micros, Window};
use crate::backend::timestamp;

/// Whose limits: a key's own, or its owner's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Key,
    Owner,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Owner => "owner",
        }
    }
}

/// One party's limits as stored, with each window's name.
#[derive(Clone, Debug, Default)]
pub struct Metered {
    pub limits: Limits,
    /// The name of each of `limits.windows`, in order.
    pub names: Vec<String>,
    /// Whether the first window is the key's `rate_limit_max`/`rate_limit_window` pair.
    pub has_default: bool,
}

/// One object per window: `{"name", "scope", "limit", "remaining", "reset_at"}` as of
/// `now` (`reset_at` null: no window runs, the whole limit is left).
pub fn describe(
    now: Micros,
    scope: Scope,
    m: &Metered,
    windows: &[Window],
) -> Vec<serde_json::Value> {
    m.names
        .iter()
        .zip(windows)
        .map(|(name, w)| {
            let (remaining, reset_at) = w.state(now);
            serde_json::json!({
                "name": name,
                "scope": scope.name(),
                "limit": w.limit,
                "remaining": remaining,
                "reset_at": reset_at.map(timestamp),
            })
        })
        .collect()
}
