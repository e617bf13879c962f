//! `permissions` and `required_permissions`: a JSON object mapping a resource name to an
//! array of action strings, e.g. `{"mesa": ["admin"], "files": ["read", "write"]}`.
//!
//! A requirement is met when every listed action of every listed resource is granted
//! (AND). For this shape that is exactly jsonb containment (`granted @> required`), which
//! is how verify evaluates it (`jsonb_contains` on the stored datum).
use crate::error;
use crate::jsonb::Value;

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
    let Value::Object(object) = value else {
        return Err(format!("must be a JSON object, got {}", value.kind()));
    };
    for (resource, actions) in object {
        if resource.is_empty() {
            return Err("resource names must not be empty".into());
        }
        let Value::Array(actions) = actions else {
            return Err(format!(
                "the actions of \"{resource}\" must be an array, got {}",
                actions.kind()
            ));
        };
        for action in actions {
            match action {
                Value::String(a) if !a.is_empty() => {}
                Value::String(_) => {
                    return Err(format!("an action of \"{resource}\" is an empty string"))
                }
                other => {
                    return Err(format!(
                        "the actions of \"{resource}\" must be strings, got {}",
                        other.kind()
                    ))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    fn check(v: serde_json::Value) -> Result<(), String> {
        validate(&Value::from(v))
    }

    #[test]
    fn documented_shape_is_accepted() {
        assert!(check(json!({})).is_ok());
        assert!(check(json!({"mesa": ["admin"], "files": ["read", "write"]})).is_ok());
        assert!(check(json!({"files": []})).is_ok());
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
            assert!(check(bad.clone()).is_err(), "{bad} should be refused");
        }
    }
}
