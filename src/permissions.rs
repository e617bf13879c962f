//! `permissions` and `required_permissions`: a JSON object mapping a resource name to an
//! array of action strings, e.g. `{"mesa": ["admin"], "files": ["read", "write"]}`.
//!
//! A requirement is met when every listed action of every listed resource is granted
//! (AND). For this shape that is exactly jsonb containment (`granted @> required`), which
//! is how verify evaluates it (`jsonb_contains` on the stored datum).
use serde_json::Value;

use crate::error;

/// 22023 unless `value` (the argument named `what`) has the documented shape.
pub fn require_valid(what: &str, value: &Value) {
    if let Err(why) = validate(value) {
        error::bad_arg(
            format!("{what} is malformed: {why}"),
            "Pass a JSON object mapping each resource to an array of action strings, e.g. '{\"files\": [\"read\", \"write\"]}'.",
        );
    }
}

/// Why a permissions value is malformed, or `Ok` when it has the documented shape.
pub fn validate(value: &Value) -> Result<(), String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("must be a JSON object, got {}", kind(value)))?;
    for (resource, actions) in object {
        if resource.is_empty() {
            return Err("resource names must not be empty".into());
        }
        let actions = actions.as_array().ok_or_else(|| {
            format!(
                "the actions of \"{resource}\" must be an array, got {}",
                kind(actions)
            )
        })?;
        for action in actions {
            match action.as_str() {
                Some(a) if !a.is_empty() => {}
                Some(_) => return Err(format!("an action of \"{resource}\" is an empty string")),
                None => {
                    return Err(format!(
                        "the actions of \"{resource}\" must be strings, got {}",
                        kind(action)
                    ))
                }
            }
        }
    }
    Ok(())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    #[test]
    fn documented_shape_is_accepted() {
        assert!(validate(&json!({})).is_ok());
        assert!(validate(&json!({"mesa": ["admin"], "files": ["read", "write"]})).is_ok());
        assert!(validate(&json!({"files": []})).is_ok());
    }

    #[test]
    fn malformed_shapes_are_refused() {
        for bad in [
            json!([]),
            json!("admin"),
            json!(null),
            json!(1),
            json!({"mesa": "admin"}),
            json!({"mesa": [1]}),
            json!({"mesa": [""]}),
            json!({"mesa": {"admin": true}}),
            json!({"": ["read"]}),
            json!({"mesa": [["admin"]]}),
        ] {
            assert!(validate(&bad).is_err(), "{bad} should be refused");
        }
    }
}
