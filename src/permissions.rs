//! `permissions` and `required_permissions`: a JSON object mapping a resource name to an
//! array of action strings, e.g. `{"mesa": ["admin"], "files": ["read", "write"]}`.
//!
//! A requirement is met when every listed action of every listed resource is granted
//! (AND). For this shape that is exactly jsonb containment (`granted @> required`), which
//! is how verify evaluates it inside its one index probe.
use serde_json::Value;

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

/// Whether `granted` (NULL = nothing) satisfies every action in `required`.
/// The same rule verify applies in SQL with `@>`; used by the tests to pin them together.
pub fn satisfies(granted: Option<&Value>, required: &Value) -> bool {
    let Some(required) = required.as_object() else {
        return false;
    };
    required.iter().all(|(resource, actions)| {
        let have = granted
            .and_then(|g| g.get(resource))
            .and_then(Value::as_array);
        actions
            .as_array()
            .is_some_and(|need| need.iter().all(|a| have.is_some_and(|h| h.contains(a))))
    })
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

    #[test]
    fn every_required_action_must_be_granted() {
        let granted = json!({"mesa": ["admin"], "files": ["read", "write"]});
        assert!(satisfies(Some(&granted), &json!({})));
        assert!(satisfies(Some(&granted), &json!({"files": ["read"]})));
        assert!(satisfies(
            Some(&granted),
            &json!({"files": ["write", "read"], "mesa": ["admin"]})
        ));
        assert!(!satisfies(Some(&granted), &json!({"files": ["delete"]})));
        assert!(!satisfies(
            Some(&granted),
            &json!({"files": ["read"], "mesa": ["read"]})
        ));
        assert!(!satisfies(Some(&granted), &json!({"other": ["read"]})));
        assert!(!satisfies(None, &json!({"files": ["read"]})));
        assert!(satisfies(None, &json!({})));
    }
}
