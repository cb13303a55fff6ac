//! Spring's view of a YAML file as a property tree: relaxed key binding, dotted keys, document
//! merging and `${...}` placeholders. Only what `application.yml` conversion needs.

use serde_yaml::{Mapping, Value};

use super::error::{ConfigError, Errors};

/// Spring's relaxed binding treats `default-filters`, `defaultFilters` and `default_filters` as one
/// property; comparing lower-cased keys without separators gives the same equivalence.
pub(crate) fn canonical(key: &str) -> String {
    key.chars().filter(|c| *c != '-' && *c != '_').flat_map(char::to_lowercase).collect()
}

/// A YAML scalar as Spring would see it when binding to a string.
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar_string(&t.value),
        _ => None,
    }
}

pub(crate) fn key_string(k: &Value) -> Option<String> {
    match k {
        Value::Null => Some(String::new()),
        other => scalar_string(other),
    }
}

/// Splits `spring.cloud.gateway` into segments; `[a.b]` is Spring's escape for a key that contains
/// dots (a service called `user.svc`), so brackets keep their content whole.
fn key_segments(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_brackets = false;
    for c in key.chars() {
        match c {
            '[' if cur.is_empty() && !in_brackets => in_brackets = true,
            ']' if in_brackets => in_brackets = false,
            '.' if !in_brackets => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Turns `spring.cloud.gateway: {...}` into nested mappings so that both spellings meet in one tree.
/// Sequences are left alone: inside a route, keys are data (metadata names), not property paths.
pub(crate) fn expand(value: Value) -> Value {
    match value {
        Value::Mapping(m) => {
            let mut out = Value::Mapping(Mapping::new());
            for (k, v) in m {
                let v = expand(v);
                let nested = match key_string(&k) {
                    Some(s) => key_segments(&s).into_iter().rev().fold(v, |acc, seg| {
                        let mut m = Mapping::new();
                        m.insert(Value::String(seg), acc);
                        Value::Mapping(m)
                    }),
                    None => {
                        let mut m = Mapping::new();
                        m.insert(k, v);
                        Value::Mapping(m)
                    }
                };
                merge(&mut out, nested);
            }
            out
        }
        other => other,
    }
}

fn same_key(a: &Value, b: &Value) -> bool {
    match (a.as_str(), b.as_str()) {
        (Some(a), Some(b)) => canonical(a) == canonical(b),
        _ => a == b,
    }
}

/// Later documents win key by key, as Spring's property sources do; lists are replaced whole.
pub(crate) fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Mapping(into), Value::Mapping(from)) => {
            for (k, v) in from {
                let existing = into.iter_mut().find(|(ek, _)| same_key(ek, &k)).map(|(_, ev)| ev);
                match existing {
                    Some(ev) => merge(ev, v),
                    None => {
                        into.insert(k, v);
                    }
                }
            }
        }
        (into, from) => *into = from,
    }
}

/// Looks a property up by canonical segments (`["spring", "cloud", "gateway", "defaultfilters"]`).
pub(crate) fn get<'a>(tree: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = tree;
    for seg in path {
        let m = cur.as_mapping()?;
        cur = m.iter().find(|(k, _)| k.as_str().is_some_and(|k| canonical(k) == *seg)).map(|(_, v)| v)?;
    }
    Some(cur)
}

/// The keys of a mapping with their values; non-scalar keys are dropped (Spring cannot bind them).
pub(crate) fn entries(v: &Value) -> Vec<(String, &Value)> {
    match v.as_mapping() {
        Some(m) => m.iter().filter_map(|(k, v)| key_string(k).map(|k| (k, v))).collect(),
        None => Vec::new(),
    }
}

/// Whether a document only applies under a profile. `spring.profiles: dev` (Boot < 2.4) marks a
/// profile document, but `spring.profiles.active: dev` is an ordinary setting, hence the shape check.
pub(crate) fn is_profile_specific(doc: &Value) -> bool {
    if get(doc, &["spring", "config", "activate", "onprofile"]).is_some() {
        return true;
    }
    matches!(get(doc, &["spring", "profiles"]), Some(Value::String(_) | Value::Sequence(_)))
}

/// Depth at which nested or self-referring placeholders are given up on.
const MAX_PLACEHOLDER_DEPTH: usize = 16;

/// Resolves `${NAME}` and `${NAME:default}` like Spring: the process environment first (also under
/// Spring's environment spelling `A_B` for `a.b`), then the file's own properties.
pub(crate) struct Resolver<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub tree: &'a Value,
    pub file: &'a str,
}

impl Resolver<'_> {
    /// Replaces placeholders in every string below `v`, reporting each unresolvable one at its path.
    pub(crate) fn resolve_tree(&self, v: &mut Value, path: &str, errs: &mut Errors) {
        match v {
            Value::String(s) if s.contains("${") => match self.resolve_str(s, 0) {
                Ok(r) => *s = r,
                Err(e) => errs.push(ConfigError::new(self.file, path, e)),
            },
            Value::Sequence(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.resolve_tree(item, &format!("{path}[{i}]"), errs);
                }
            }
            Value::Mapping(m) => {
                for (k, item) in m.iter_mut() {
                    let key = key_string(k).unwrap_or_default();
                    let child = if path.is_empty() { key } else { format!("{path}.{key}") };
                    self.resolve_tree(item, &child, errs);
                }
            }
            Value::Tagged(t) => self.resolve_tree(&mut t.value, path, errs),
            _ => {}
        }
    }

    fn resolve_str(&self, s: &str, depth: usize) -> Result<String, String> {
        if depth > MAX_PLACEHOLDER_DEPTH {
            return Err(format!("placeholders in {s:?} nest too deeply (a placeholder that refers to itself?)"));
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(pos) = rest.find("${") {
            // Spring 6.2 escape: `\${x}` stays literally `${x}`.
            if rest[..pos].ends_with('\\') {
                out.push_str(&rest[..pos - 1]);
                out.push_str("${");
                rest = &rest[pos + 2..];
                continue;
            }
            out.push_str(&rest[..pos]);
            let body_start = pos + 2;
            let Some(len) = closing_brace(&rest[body_start..]) else {
                // Spring leaves an unterminated `${` as text.
                out.push_str(&rest[pos..]);
                return Ok(out);
            };
            let body = &rest[body_start..body_start + len];
            let (name, default) = match separator(body) {
                Some(i) => (&body[..i], Some(&body[i + 1..])),
                None => (body, None),
            };
            let name = self.resolve_str(name, depth + 1)?;
            let value = match self.lookup(&name, depth)? {
                Some(v) => v,
                None => match default {
                    Some(d) => self.resolve_str(d, depth + 1)?,
                    None => {
                        return Err(format!(
                        "could not resolve placeholder ${{{name}}} in {s:?} (no such environment variable or property)"
                    ))
                    }
                },
            };
            out.push_str(&value);
            rest = &rest[body_start + len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn lookup(&self, name: &str, depth: usize) -> Result<Option<String>, String> {
        if let Some(v) = (self.env)(name) {
            return Ok(Some(v));
        }
        let env_name = name.replace(['.', '-'], "_");
        if let Some(v) = (self.env)(&env_name).or_else(|| (self.env)(&env_name.to_ascii_uppercase())) {
            return Ok(Some(v));
        }
        let segments: Vec<String> = key_segments(name).iter().map(|s| canonical(s)).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match get(self.tree, &segments).and_then(scalar_string) {
            Some(v) => self.resolve_str(&v, depth + 1).map(Some),
            None => Ok(None),
        }
    }
}

/// Length of a placeholder body up to its matching `}`, allowing nested `${...}`.
fn closing_brace(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            depth += 1;
            i += 2;
            continue;
        }
        if bytes[i] == b'}' {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        }
        i += 1;
    }
    None
}

/// Position of the first `:` that is not inside a nested placeholder.
fn separator(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' => depth = depth.saturating_sub(1),
            b':' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        expand(serde_yaml::from_str(text).unwrap())
    }

    fn resolve(text: &str, tree: &Value, env: &[(&str, &str)]) -> Result<String, String> {
        let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        Resolver { env: &lookup, tree, file: "f" }.resolve_str(text, 0)
    }

    #[test]
    fn dotted_and_nested_keys_meet_in_one_tree() {
        let t =
            yaml("spring.cloud:\n  gateway.default-filters: [A]\nspring:\n  cloud:\n    gateway:\n      routes: []\n");
        assert!(get(&t, &["spring", "cloud", "gateway", "defaultfilters"]).is_some());
        assert!(get(&t, &["spring", "cloud", "gateway", "routes"]).is_some());
    }

    #[test]
    fn relaxed_names_are_one_property() {
        let mut a = yaml("x:\n  default-filters: [A]\n  keep: 1\n");
        merge(&mut a, yaml("x:\n  defaultFilters: [B]\n"));
        let m = get(&a, &["x"]).unwrap().as_mapping().unwrap();
        assert_eq!(m.len(), 2, "{a:?}");
        assert_eq!(get(&a, &["x", "defaultfilters"]).unwrap(), &yaml("[B]"));
    }

    #[test]
    fn bracketed_key_keeps_its_dots() {
        let t = yaml("instances:\n  '[user.svc]': []\n");
        let names: Vec<String> = entries(get(&t, &["instances"]).unwrap()).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, vec!["user.svc"]);
    }

    #[test]
    fn sequences_are_not_expanded() {
        let t = yaml("routes:\n  - metadata: {a.b: 1}\n");
        let route = &get(&t, &["routes"]).unwrap().as_sequence().unwrap()[0];
        assert!(get(route, &["metadata", "a.b"]).is_some(), "{route:?}");
    }

    #[test]
    fn profile_documents_are_recognised() {
        assert!(is_profile_specific(&yaml("spring.config.activate.on-profile: dev")));
        assert!(is_profile_specific(&yaml("spring:\n  profiles: dev")));
        assert!(!is_profile_specific(&yaml("spring:\n  profiles:\n    active: dev")));
        assert!(!is_profile_specific(&yaml("server.port: 1")));
    }

    #[test]
    fn placeholders_resolve_from_env_then_file() {
        let tree = yaml("app:\n  host: from-file\n  port: 81\n  loop: ${app.loop}\n");
        let env = [("SVC_HOST", "env-host"), ("APP_PORT", "9000")];
        assert_eq!(resolve("http://${SVC_HOST}:${PORT:8080}/x", &tree, &env).unwrap(), "http://env-host:8080/x");
        // Spring's environment spelling wins over the file, like an env var overriding application.yml.
        assert_eq!(resolve("${app.port}", &tree, &env).unwrap(), "9000");
        assert_eq!(resolve("${app.host}", &tree, &env).unwrap(), "from-file");
        assert_eq!(resolve("${A:${SVC_HOST}}", &tree, &env).unwrap(), "env-host");
        assert_eq!(resolve("${A:}", &tree, &env).unwrap(), "");
        assert_eq!(resolve("${URL:http://x:1}", &tree, &env).unwrap(), "http://x:1");
        assert_eq!(resolve(r"keep \${x} and $\{y}", &tree, &env).unwrap(), "keep ${x} and $\\{y}");
        assert_eq!(resolve("open ${x", &tree, &env).unwrap(), "open ${x");
        let err = resolve("${MISSING_VAR}", &tree, &env).unwrap_err();
        assert!(err.contains("MISSING_VAR"), "{err}");
        let err = resolve("${app.loop}", &tree, &env).unwrap_err();
        assert!(err.contains("nest too deeply"), "{err}");
    }
}
