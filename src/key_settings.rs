//! A key's settings, defined once.
//!
//! [`key_settings!`] lists each setting a single time — its name (the argument of
//! `create_api_key`/`update_api_key`, the column of `apikey.keys`, the field of
//! `apikey.key_info`), its type, and whether it is a policy field (it grants power or
//! spends money, so only trusted callers set it). From that one list come the
//! [`Settings`] struct that create, update, rotate and the audit trail share, the list
//! of field names ([`FIELDS`]), what `update_api_key` was given, the merge of given,
//! cleared and stored values, and the reading of a stored row by column name
//! ([`Columns`]). Adding a setting is one line there, its checks in
//! [`Settings::validate_values`] or [`Settings::validate_pairs`], its column in the SQL,
//! and its argument (`name: default!(Option<T>, "NULL")`) in each `#[pg_extern]` of
//! `src/api/` where the contract places it, with the field in that function's
//! `Settings { … }` literal: a missing field or a wrong type is a compile error.
//!
//! This module depends on nothing of pg_apikey's but [`crate::backend`], [`crate::error`]
//! and the value types ([`crate::jsonb`], [`crate::permissions`], [`crate::rate_limits`]).
use pgrx::datum::{DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::{pg_sys, FromDatum, IntoDatum};

use crate::backend::now_tz;
use crate::error;
use crate::jsonb::Jsonb;

/// A stored row, read by column name: how a key's settings are read from storage
/// (implemented there, for a row of a statement's result).
pub trait Columns {
    /// The value of column `name`; `None` when it is NULL.
    fn column<T: FromDatum + IntoDatum>(&self, name: &str) -> Option<T>;
}

/// `N` parameter types: `head`, then the settings' ([`ARG_TYPES`]), then `tail`.
pub const fn with_settings<const N: usize>(
    head: &[pg_sys::Oid],
    tail: &[pg_sys::Oid],
) -> [pg_sys::Oid; N] {
    assert!(head.len() + ARG_TYPES.len() + tail.len() == N);
    let mut out = [pg_sys::InvalidOid; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < head.len() {
            head[i]
        } else if i < head.len() + ARG_TYPES.len() {
            ARG_TYPES[i - head.len()]
        } else {
            tail[i - head.len() - ARG_TYPES.len()]
        };
        i += 1;
    }
    out
}

/// One setting: its name, and whether it is a policy field.
pub struct Field {
    pub name: &'static str,
    pub policy: bool,
}

/// How a setting's value goes into the audit trail: as JSON built here (numbers, text,
/// times, intervals: nothing is lost), or as the jsonb value itself (never through text).
pub enum Audited {
    Json(serde_json::Value),
    Jsonb(Jsonb),
}

pub trait AuditValue {
    fn audited(&self) -> Audited;
}

macro_rules! audited_as_json {
    ($($ty:ty),*) => {
        $(impl AuditValue for $ty {
            fn audited(&self) -> Audited {
                Audited::Json(serde_json::to_value(self).expect("a setting serializes to JSON"))
            }
        })*
    };
}
audited_as_json!(String, TimestampWithTimeZone, Interval, i64, i32);

impl AuditValue for Jsonb {
    fn audited(&self) -> Audited {
        Audited::Jsonb(*self)
    }
}

macro_rules! key_settings {
    ($($name:ident: $ty:ty = $oid:ident, policy = $policy:expr;)*) => {
        /// A key's settings (each `None` when not set). For `update_api_key`, the values
        /// given; for a stored key, its values.
        #[derive(Clone, Default)]
        pub struct Settings {
            $(pub $name: Option<$ty>,)*
        }

        /// Every setting, in the order of the SQL interface.
        pub const FIELDS: &[Field] = &[$(Field { name: stringify!($name), policy: $policy }),*];

        /// The settings' SQL types, in [`FIELDS`] order (the statements' parameters).
        pub const ARG_TYPES: [pg_sys::Oid; FIELDS.len()] = [$(pg_sys::$oid),*];

        impl Settings {
            /// The names of the settings that have a value.
            pub fn given(&self) -> Vec<&'static str> {
                let mut names = Vec::new();
                $(if self.$name.is_some() {
                    names.push(stringify!($name));
                })*
                names
            }

            /// Given values win, then clears, then what is stored.
            pub fn merge(self, cleared: &[String], stored: Settings) -> Settings {
                let is_cleared = |f: &str| cleared.iter().any(|c| c == f);
                Settings {
                    $($name: if is_cleared(stringify!($name)) { None } else { self.$name.or(stored.$name) },)*
                }
            }

            /// The settings of a row that has a column of each setting's name.
            pub fn from_columns(row: &impl Columns) -> Settings {
                Settings {
                    $($name: row.column(stringify!($name)),)*
                }
            }

            /// The values as statement arguments, in [`FIELDS`] order.
            pub fn args(&self) -> Vec<DatumWithOid<'static>> {
                vec![$(self.$name.clone().into()),*]
            }

            /// The values given, for the audit trail: JSON built here, and jsonb values
            /// as they are.
            pub fn audited(&self) -> (serde_json::Map<String, serde_json::Value>, Vec<(&'static str, Jsonb)>) {
                let (mut json, mut raw) = (serde_json::Map::new(), Vec::new());
                $(if let Some(v) = &self.$name {
                    match v.audited() {
                        Audited::Json(j) => { json.insert(stringify!($name).to_string(), j); }
                        Audited::Jsonb(j) => raw.push((stringify!($name), j)),
                    }
                })*
                (json, raw)
            }
        }
    };
}

key_settings! {
    name: String = TEXTOID, policy = false;
    expires_at: TimestampWithTimeZone = TIMESTAMPTZOID, policy = false;
    permissions: Jsonb = JSONBOID, policy = true;
    metadata: Jsonb = JSONBOID, policy = false;
    remaining: i64 = INT8OID, policy = true;
    refill_amount: i64 = INT8OID, policy = true;
    refill_interval: Interval = INTERVALOID, policy = true;
    rate_limit_max: i32 = INT4OID, policy = true;
    rate_limit_window: Interval = INTERVALOID, policy = true;
    rate_limits: Jsonb = JSONBOID, policy = true;
    refill_anchor: TimestampWithTimeZone = TIMESTAMPTZOID, policy = true;
}

/// The policy fields' names, for messages.
pub fn policy_field_names() -> String {
    FIELDS
        .iter()
        .filter(|f| f.policy)
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn is_policy_field(name: &str) -> bool {
    FIELDS.iter().any(|f| f.policy && f.name == name)
}

/// 22023 unless every name in `clear` is a setting.
pub fn require_clearable(clear: &[String]) {
    for field in clear {
        if !FIELDS.iter().any(|f| f.name == field) {
            error::bad_arg(
                format!("clear names unknown field \"{field}\""),
                format!(
                    "Fields that can be cleared: {}.",
                    FIELDS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
}

/// 22023 for an interval setting that is given and not positive, or longer than 100
/// years (`now` plus it must stay a timestamp).
fn require_positive(name: &str, value: Option<Interval>, example: &str) {
    if value.is_some_and(|iv| iv.as_micros() <= 0) {
        error::bad_arg(
            format!("{name} must be positive"),
            format!("Pass an interval such as {example}."),
        );
    }
    if value.is_some_and(|iv| !crate::backend::within_max_period(iv)) {
        error::bad_arg(
            format!("{name} must be at most 100 years"),
            format!("Pass an interval such as {example}."),
        );
    }
}

impl Settings {
    /// The refill anchor a key or owner ends up with: none without a refill; the one
    /// given; else, when the refill is new or its interval changes (`restart`), `now`;
    /// else the one it had.
    pub fn anchored(
        mut self,
        given: Option<TimestampWithTimeZone>,
        restart: bool,
        now: TimestampWithTimeZone,
    ) -> Settings {
        self.refill_anchor = match (self.refill_interval, given) {
            (None, _) => None,
            (Some(_), Some(a)) => Some(a),
            (Some(_), None) if restart || self.refill_anchor.is_none() => Some(now),
            (Some(_), None) => self.refill_anchor,
        };
        self
    }

    /// Whether any field that grants power or spends money is given.
    pub fn sets_policy_field(&self) -> bool {
        self.given().into_iter().any(is_policy_field)
    }

    /// Checks of each given value on its own.
    pub fn validate_values(&self) {
        if let Some(exp) = self.expires_at {
            if exp <= now_tz() {
                error::bad_arg(
                    "expires_at is in the past",
                    "Pass a future time, or NULL for a key that does not expire.",
                );
            }
        }
        if let Some(p) = self.permissions {
            crate::permissions::require_valid("permissions", &p.value());
        }
        if let Some(m) = self.metadata {
            if !m.is_object() {
                error::bad_arg(
                    "metadata must be a JSON object",
                    "Pass an object such as '{\"env\": \"prod\"}', or NULL.",
                );
            }
        }
        if self.remaining.is_some_and(|r| r < 0) {
            error::bad_arg(
                "remaining must not be negative",
                "Pass 0 or more, or NULL for unlimited use.",
            );
        }
        if self.refill_amount.is_some_and(|r| r < 0) {
            error::bad_arg("refill_amount must not be negative", "Pass 0 or more.");
        }
        require_positive("refill_interval", self.refill_interval, "'1 day'");
        if self.rate_limit_max.is_some_and(|m| m <= 0) {
            error::bad_arg("rate_limit_max must be positive", "Pass 1 or more.");
        }
        require_positive("rate_limit_window", self.rate_limit_window, "'1 minute'");
        if let Some(list) = self.rate_limits {
            crate::rate_limits::parse("rate_limits", list);
        }
        if self
            .refill_anchor
            .is_some_and(|a| a.is_infinity() || a.is_neg_infinity())
        {
            error::bad_arg(
                "refill_anchor must be a finite time",
                "Pass the moment the refill periods count from, e.g. '2027-01-01 00:00+00'.",
            );
        }
    }

    /// Checks of the settings a key ends up with: the pairs that go together.
    pub fn validate_pairs(&self) {
        if self.refill_amount.is_some() != self.refill_interval.is_some() {
            error::bad_arg(
                "refill_amount and refill_interval go together",
                "Pass both (e.g. refill_amount => 1000, refill_interval => '1 day') or neither.",
            );
        }
        if self.refill_anchor.is_some() && self.refill_interval.is_none() {
            error::bad_arg(
                "refill_anchor needs refill_interval",
                "Pass refill_amount and refill_interval too, or leave refill_anchor out.",
            );
        }
        if self.rate_limit_max.is_some() != self.rate_limit_window.is_some() {
            error::bad_arg(
                "rate_limit_max and rate_limit_window go together",
                "Pass both (e.g. rate_limit_max => 100, rate_limit_window => '1 minute') or neither.",
            );
        }
        if let (Some(_), Some(list)) = (self.rate_limit_max, self.rate_limits) {
            if crate::rate_limits::names_default(&crate::rate_limits::parse("rate_limits", list)) {
                error::bad_arg(
                    "rate_limits names a limit \"default\", and rate_limit_max/rate_limit_window is that limit too",
                    "Give the limit named default one way: either the rate_limit_max/rate_limit_window pair or an element of rate_limits.",
                );
            }
        }
    }
}
