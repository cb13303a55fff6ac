//! Spring Cloud Gateway style route definitions (`application.yml`, `routes.json`, CRDs).
//!
//! Only the generic shape lives here; `crate::spring` gives predicates and filters their types.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// A route: the first route (by `order`, then position) whose predicates all match wins, and only
/// its filters apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDefinition {
    #[serde(default)]
    pub id: String,
    pub uri: String,
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub predicates: Vec<Definition>,
    #[serde(default)]
    pub filters: Vec<Definition>,
    /// Route metadata (`response-timeout`, `connect-timeout` in ms, anything else is carried along).
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Optimistic-locking version (admin); carried, not interpreted by the data plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// A predicate or filter: `name` plus arguments. The shortcut string `Name=a,b` gives the arguments
/// `_genkey_0 = a`, `_genkey_1 = b`, as Spring does.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Definition {
    pub name: String,
    pub args: serde_json::Map<String, serde_json::Value>,
}

/// Spring's key prefix for shortcut arguments.
pub const GENKEY_PREFIX: &str = "_genkey_";

impl Definition {
    /// Parses `Name=a,b,c` (or just `Name`).
    pub fn parse_shortcut(text: &str) -> Result<Definition, String> {
        let text = text.trim();
        let (name, rest) = match text.split_once('=') {
            Some((n, r)) => (n.trim(), Some(r)),
            None => (text, None),
        };
        if name.is_empty() {
            return Err(format!("missing name in {text:?} (expected Name=args)"));
        }
        let mut args = serde_json::Map::new();
        if let Some(rest) = rest {
            for (i, part) in rest.split(',').enumerate() {
                args.insert(format!("{GENKEY_PREFIX}{i}"), serde_json::Value::String(part.trim().to_string()));
            }
        }
        Ok(Definition { name: name.to_string(), args })
    }

    /// Arguments in their given order, as strings (lists flattened), for shortcut-style consumers.
    pub fn positional(&self) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.args.values() {
            flatten_into(v, &mut out);
        }
        out
    }

    /// A named argument (any of `names`), else the positional one at `index`.
    pub fn arg(&self, names: &[&str], index: usize) -> Option<&serde_json::Value> {
        for n in names {
            if let Some(v) = self.args.get(*n) {
                return Some(v);
            }
        }
        self.args.get(&format!("{GENKEY_PREFIX}{index}"))
    }
}

fn flatten_into(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Array(items) => items.iter().for_each(|i| flatten_into(i, out)),
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Null => {}
        other => out.push(other.to_string()),
    }
}

impl<'de> Deserialize<'de> for Definition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Decoded by hand rather than as an untagged enum, so a mistake gets a message that names it.
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Definition::parse_shortcut(&s).map_err(de::Error::custom),
            serde_json::Value::Object(mut map) => {
                let name = match map.remove("name") {
                    Some(serde_json::Value::String(n)) if !n.trim().is_empty() => n.trim().to_string(),
                    Some(_) => return Err(de::Error::custom("`name` must be a non-empty string")),
                    None => {
                        return Err(de::Error::custom(
                            "missing `name` (expected {name: ..., args: {...}} or \"Name=args\")",
                        ))
                    }
                };
                let args = match map.remove("args") {
                    None | Some(serde_json::Value::Null) => serde_json::Map::new(),
                    Some(serde_json::Value::Object(a)) => a,
                    Some(_) => return Err(de::Error::custom(format!("`args` of {name:?} must be a map"))),
                };
                if let Some(k) = map.keys().next() {
                    return Err(de::Error::custom(format!(
                        "unknown field `{k}` in {name:?} (expected `name` and `args`)"
                    )));
                }
                Ok(Definition { name, args })
            }
            other => Err(de::Error::custom(format!("expected \"Name=args\" or {{name, args}}, got {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcut_splits_args() {
        let d = Definition::parse_shortcut("Path=/a/**, /b/**").unwrap();
        assert_eq!(d.name, "Path");
        assert_eq!(d.positional(), vec!["/a/**", "/b/**"]);
        assert_eq!(d.arg(&["patterns"], 1).unwrap(), "/b/**");
    }

    #[test]
    fn both_forms_deserialize() {
        let y = "- StripPrefix=2\n- name: AddRequestHeader\n  args:\n    name: X-A\n    value: b\n";
        let defs: Vec<Definition> = serde_yaml::from_str(y).unwrap();
        assert_eq!(defs[0].positional(), vec!["2"]);
        assert_eq!(defs[1].arg(&["name"], 0).unwrap(), "X-A");
    }
}
