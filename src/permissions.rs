//! `permissions` (what a key is granted) and `required_permissions` (what a call needs).
//!
//! Granted permissions are a JSON object mapping a resource name to an array of action
//! strings, e.g. `{"mesa": ["admin"], "files": ["read", "write"]}`; the action `"*"`
//! grants every action on its resource. Resource names are not empty and do not start
//! with `$`, which marks a query.
//!
//! A requirement is either an object of the same shape — met when the key has each
//! listed resource and every listed action on it (AND) — or a query, `{"$all": [Q, …]}`
//! (every `Q` is met) or `{"$any": [Q, …]}` (at least one is), where each `Q` is again a
//! requirement, nested up to [`MAX_QUERY_DEPTH`] levels. Verify first tries jsonb
//! containment (`granted @> required`), which decides a plain object without `"*"` grants
//! in C; everything else is decided by [`Requirement::is_met_by`].
use crate::error;
use crate::jsonb::Value;

/// The deepest nesting of `$all`/`$any` a requirement may have.
pub const MAX_QUERY_DEPTH: usize = 32;

/// The action that grants every action on its resource.
pub const ANY_ACTION: &str = "*";

const SHAPE_HINT: &str = "Pass a JSON object mapping each resource to an array of action strings, e.g. '{\"files\": [\"read\", \"write\"]}'.";

/// 22023 unless `value` (the argument named `what`) has the shape of granted permissions.
pub fn require_valid(what: &str, value: &Value) {
    if let Err(why) = validate(value) {
        error::bad_arg(format!("{what} is malformed: {why}"), SHAPE_HINT);
    }
}

/// Why granted permissions are malformed, or `Ok` when they have the documented shape.
pub fn validate(value: &Value) -> Result<(), String> {
    actions_of(value, false).map(|_| ())
}

/// The resource → actions pairs of an object of the documented shape.
/// `in_requirement`: a `$` key there is a query operator misplaced beside resources.
fn actions_of(value: &Value, in_requirement: bool) -> Result<Vec<(String, Vec<String>)>, String> {
    let Value::Object(object) = value else {
        return Err(format!("must be a JSON object, got {}", value.kind()));
    };
    let mut pairs = Vec::with_capacity(object.len());
    for (resource, actions) in object {
        if resource.is_empty() {
            return Err("resource names must not be empty".into());
        }
        if resource.starts_with('$') {
            return Err(if in_requirement {
                format!("\"{resource}\" beside other resources: a query object has one key, $all or $any")
            } else {
                format!("resource \"{resource}\" starts with $, which marks a query")
            });
        }
        let Value::Array(actions) = actions else {
            return Err(format!(
                "the actions of \"{resource}\" must be an array, got {}",
                actions.kind()
            ));
        };
        let mut names = Vec::with_capacity(actions.len());
        for action in actions {
            match action {
                Value::String(a) if !a.is_empty() => names.push(a.clone()),
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
        pairs.push((resource.clone(), names));
    }
    Ok(pairs)
}

/// A `required_permissions` value, checked.
#[derive(Debug, PartialEq)]
pub enum Requirement {
    /// Each resource, with every listed action on it.
    Actions(Vec<(String, Vec<String>)>),
    /// Every one of these.
    All(Vec<Requirement>),
    /// At least one of these.
    Any(Vec<Requirement>),
}

impl Requirement {
    /// The requirement `value` states, or why it is malformed.
    pub fn parse(value: &Value) -> Result<Requirement, String> {
        Self::parse_at(value, 0)
    }

    fn parse_at(value: &Value, depth: usize) -> Result<Requirement, String> {
        let Value::Object(object) = value else {
            return Err(format!("must be a JSON object, got {}", value.kind()));
        };
        let Some((op, _)) = object.iter().find(|(k, _)| k.starts_with('$')) else {
            return actions_of(value, true).map(Requirement::Actions);
        };
        if object.len() != 1 {
            return Err(format!(
                "\"{op}\" beside other keys: a query object has one key, $all or $any"
            ));
        }
        let (op, operands) = &object[0];
        if op != "$all" && op != "$any" {
            return Err(format!("unknown query operator \"{op}\": use $all or $any"));
        }
        if depth + 1 > MAX_QUERY_DEPTH {
            return Err(format!("queries nest deeper than {MAX_QUERY_DEPTH} levels"));
        }
        let Value::Array(operands) = operands else {
            return Err(format!("{op} must be an array, got {}", operands.kind()));
        };
        if operands.is_empty() {
            return Err(format!("{op} must not be empty"));
        }
        let parts = operands
            .iter()
            .enumerate()
            .map(|(i, q)| Self::parse_at(q, depth + 1).map_err(|why| format!("{op}[{i}]: {why}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if op == "$all" {
            Requirement::All(parts)
        } else {
            Requirement::Any(parts)
        })
    }

    /// An object of resources and actions (no query): jsonb containment decides it when
    /// no `"*"` is granted.
    pub fn is_plain(&self) -> bool {
        matches!(self, Requirement::Actions(_))
    }

    /// Whether `granted` (checked permissions, or `None` for a key with none) meets it.
    pub fn is_met_by(&self, granted: Option<&Value>) -> bool {
        match self {
            Requirement::Actions(pairs) => pairs.iter().all(|(resource, actions)| {
                granted_actions(granted, resource).is_some_and(|have| {
                    actions.iter().all(|a| {
                        have.iter()
                            .any(|h| matches!(h, Value::String(h) if h == a || h == ANY_ACTION))
                    })
                })
            }),
            Requirement::All(parts) => parts.iter().all(|p| p.is_met_by(granted)),
            Requirement::Any(parts) => parts.iter().any(|p| p.is_met_by(granted)),
        }
    }
}

/// The actions granted on `resource` (the last entry wins, as in jsonb).
fn granted_actions<'a>(granted: Option<&'a Value>, resource: &str) -> Option<&'a [Value]> {
    let Some(Value::Object(pairs)) = granted else {
        return None;
    };
    match pairs.iter().rev().find(|(r, _)| r == resource) {
        Some((_, Value::Array(actions))) => Some(actions),
        _ => None,
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    fn check(v: serde_json::Value) -> Result<(), String> {
        validate(&Value::from(v))
    }

    fn req(v: serde_json::Value) -> Requirement {
        Requirement::parse(&Value::from(v)).unwrap()
    }

    fn met(required: serde_json::Value, granted: serde_json::Value) -> bool {
        req(required).is_met_by(Some(&Value::from(granted)))
    }

    #[test]
    fn documented_shape_is_accepted() {
        assert!(check(json!({})).is_ok());
        assert!(check(json!({"mesa": ["admin"], "files": ["read", "write"]})).is_ok());
        assert!(check(json!({"files": []})).is_ok());
        assert!(check(json!({"files": ["*"]})).is_ok());
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
            json!({"$all": ["read"]}),
            json!({"$files": ["read"]}),
        ] {
            assert!(check(bad.clone()).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn plain_requirements_need_every_listed_action() {
        let granted = json!({"files": ["read", "write"], "mesa": ["admin"]});
        assert!(met(json!({}), granted.clone()));
        assert!(met(json!({"files": ["read"]}), granted.clone()));
        assert!(met(
            json!({"files": ["write", "read"], "mesa": ["admin"]}),
            granted.clone()
        ));
        assert!(met(json!({"files": []}), granted.clone()));
        assert!(!met(json!({"files": ["delete"]}), granted.clone()));
        assert!(!met(json!({"billing": []}), granted.clone()));
        assert!(!met(
            json!({"files": ["read"], "billing": ["read"]}),
            granted
        ));
        assert!(req(json!({})).is_met_by(None));
        assert!(!req(json!({"files": []})).is_met_by(None));
    }

    #[test]
    fn a_star_grants_every_action_on_its_resource() {
        let granted = json!({"files": ["*"], "mesa": ["read"]});
        assert!(met(
            json!({"files": ["read", "delete", "anything"]}),
            granted.clone()
        ));
        assert!(!met(json!({"mesa": ["write"]}), granted.clone()));
        assert!(!met(json!({"billing": ["read"]}), granted));
    }

    #[test]
    fn queries_combine_with_all_and_any() {
        let granted = json!({"files": ["read"], "mesa": ["admin"]});
        let q = json!({"$any": [{"files": ["write"]}, {"$all": [{"files": ["read"]}, {"mesa": ["admin"]}]}]});
        assert!(met(q, granted.clone()));
        assert!(!met(
            json!({"$all": [{"files": ["read"]}, {"files": ["write"]}]}),
            granted.clone()
        ));
        assert!(met(
            json!({"$any": [{"billing": ["read"]}, {"files": ["read"]}]}),
            granted.clone()
        ));
        assert!(!met(
            json!({"$any": [{"billing": ["read"]}, {"files": ["write"]}]}),
            granted
        ));
        assert!(!req(json!({"$any": [{"files": ["read"]}]})).is_met_by(None));
        assert!(req(json!({"$all": [{}]})).is_met_by(None));
    }

    #[test]
    fn malformed_queries_name_the_fault() {
        let why = |v: serde_json::Value| Requirement::parse(&Value::from(v)).unwrap_err();
        assert!(why(json!({"$all": []})).contains("$all must not be empty"));
        assert!(why(json!({"$any": {}})).contains("$any must be an array"));
        assert!(why(json!({"$none": [{}]})).contains("unknown query operator \"$none\""));
        assert!(why(json!({"$all": [{}], "files": ["read"]})).contains("one key"));
        assert!(
            why(json!({"$any": [{"files": "read"}]})).contains("$any[0]: the actions of \"files\"")
        );
        assert!(why(json!({"$all": [{}, {"$any": [1]}]}))
            .contains("$all[1]: $any[0]: must be a JSON object"));
        let mut deep = json!({});
        for _ in 0..MAX_QUERY_DEPTH {
            deep = json!({"$all": [deep]});
        }
        assert!(Requirement::parse(&Value::from(deep.clone())).is_ok());
        assert!(why(json!({"$any": [deep]})).contains("deeper than 32"));
    }
}
