//! Named rate limits: the `rate_limits` list of a key or an owner,
//! `[{"name": "burst", "limit": 10, "window": "1 second"}, …]`, checked element by
//! element. The list is stored as the jsonb value given; the parsed form is what
//! verify meters by.
use pgrx::datum::Interval;

use crate::error;
use crate::jsonb::{Jsonb, Value};
use crate::meter::Unit;

/// At most this many limits in one list.
pub const MAX_LIMITS: usize = 16;
/// The name the `rate_limit_max`/`rate_limit_window` pair goes by.
pub const DEFAULT_NAME: &str = "default";

/// One named limit.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    pub name: String,
    pub limit: i64,
    pub window: Interval,
    pub unit: Unit,
}

/// The limits of a `rate_limits` value; 22023 naming the element at fault.
pub fn parse(what: &str, value: Jsonb) -> Vec<RateLimit> {
    read(&value.value()).unwrap_or_else(|why| {
        error::bad_arg(
            format!("{what} is malformed: {why}"),
            "Pass an array of limits such as '[{\"name\": \"burst\", \"limit\": 10, \"window\": \"1 second\"}, \
             {\"name\": \"daily\", \"limit\": 50000, \"window\": \"1 day\", \"unit\": \"cost\"}]'.",
        )
    })
}

/// The limits of a list as stored (checked when it was set, by [`parse`]). A stored list
/// that is malformed was written around the extension's functions: 55000.
pub fn stored(value: Jsonb) -> Vec<RateLimit> {
    read(&value.value()).unwrap_or_else(|why| {
        error::not_ready(
            format!("a stored rate_limits list is malformed: {why}"),
            "Set it again with update_api_key or set_owner_limits; write apikey's tables only through its functions.",
        )
    })
}

fn read(value: &Value) -> Result<Vec<RateLimit>, String> {
    let Value::Array(items) = value else {
        return Err(format!("it must be an array, not {}", value.kind()));
    };
    if items.len() > MAX_LIMITS {
        return Err(format!(
            "it has {} limits; at most {MAX_LIMITS} are allowed",
            items.len()
        ));
    }
    let mut limits: Vec<RateLimit> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let limit = read_one(item).map_err(|why| format!("element {i}: {why}"))?;
        if limits.iter().any(|l| l.name == limit.name) {
            return Err(format!(
                "element {i}: the name \"{}\" is used twice",
                limit.name
            ));
        }
        limits.push(limit);
    }
    Ok(limits)
}

fn read_one(item: &Value) -> Result<RateLimit, String> {
    let Value::Object(fields) = item else {
        return Err(format!("a limit must be an object, not {}", item.kind()));
    };
    let (mut name, mut limit, mut window, mut unit) = (None, None, None, Unit::Requests);
    for (field, v) in fields {
        match (field.as_str(), v) {
            ("name", Value::String(s)) => name = Some(s.clone()),
            ("limit", Value::Number(n)) => limit = Some(n.clone()),
            ("window", Value::String(s)) => window = Some(s.clone()),
            ("unit", Value::String(s)) if s == "requests" => unit = Unit::Requests,
            ("unit", Value::String(s)) if s == "cost" => unit = Unit::Cost,
            ("unit", _) => return Err("\"unit\" must be \"requests\" or \"cost\"".into()),
            ("name" | "limit" | "window", v) => {
                return Err(format!("\"{field}\" must not be {}", v.kind()))
            }
            _ => {
                return Err(format!(
                    "unknown field \"{field}\" (a limit has name, limit, window and unit)"
                ))
            }
        }
    }
    let name = name.ok_or("\"name\" is missing")?;
    if !valid_name(&name) {
        return Err(format!(
            "the name \"{name}\" must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -"
        ));
    }
    let limit = limit.ok_or("\"limit\" is missing")?;
    let limit = match limit.parse::<i64>() {
        Ok(n) if n > 0 => n,
        _ => {
            return Err(format!(
                "\"limit\" must be a whole number greater than 0, not {limit}"
            ))
        }
    };
    let window_text = window.ok_or("\"window\" is missing")?;
    let window = match crate::backend::parse_interval(&window_text) {
        Some(iv) if positive(iv) && crate::backend::within_max_period(iv) => iv,
        _ => {
            return Err(format!(
                "\"window\" must be a positive interval of at most 100 years such as \"1 minute\", not \"{window_text}\""
            ))
        }
    };
    Ok(RateLimit {
        name,
        limit,
        window,
        unit,
    })
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether an interval is longer than zero in each of its parts' sum (months, days and
/// time all count; a mixed-sign interval such as '1 month -40 days' is refused).
fn positive(iv: Interval) -> bool {
    let parts = [i64::from(iv.months()), i64::from(iv.days()), iv.micros()];
    parts.iter().all(|&p| p >= 0) && parts.iter().any(|&p| p > 0)
}

/// Whether the list names a limit `default` (which the rate_limit_max/rate_limit_window
/// pair also is).
pub fn names_default(limits: &[RateLimit]) -> bool {
    limits.iter().any(|l| l.name == DEFAULT_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("burst"));
        assert!(valid_name("a-b_C9"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"x".repeat(65)));
        assert!(!valid_name("per second"));
        assert!(!valid_name("día"));
    }
}
