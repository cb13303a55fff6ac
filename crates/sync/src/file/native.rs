//! Typed parsing of the native form and of `routes.json`, straight from the text so that errors keep
//! their line and column.

use serde::de::DeserializeOwned;

use super::error::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    Json,
    Yaml,
}

/// Deserializes `text` as `T`; the error names the path of the offending key (including an unknown
/// key itself, which serde alone would leave out) and its line and column.
pub(crate) fn typed<T: DeserializeOwned>(text: &str, file: &str, syntax: Syntax) -> Result<T, ConfigError> {
    match syntax {
        Syntax::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = path_string(e.path());
                let inner = e.into_inner();
                let location = (inner.line() > 0).then(|| (inner.line(), inner.column()));
                ConfigError::new(file, path, clean_message(&inner.to_string(), location)).at(location)
            })
        }
        Syntax::Yaml => serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)).map_err(|e| {
            let path = path_string(e.path());
            let inner = e.into_inner();
            let location = inner.location().map(|l| (l.line(), l.column()));
            ConfigError::new(file, path, clean_message(&inner.to_string(), location)).at(location)
        }),
    }
}

/// Same as [`typed`] for an already parsed YAML value (Spring files, after merging documents); the
/// value has no positions left, so errors carry a path only.
pub(crate) fn from_value<T: DeserializeOwned>(
    value: serde_yaml::Value,
    file: &str,
    base: &str,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let sub = path_string(e.path());
        let path = match (base.is_empty(), sub.is_empty()) {
            (_, true) => base.to_string(),
            (true, false) => sub,
            (false, false) if sub.starts_with('[') => format!("{base}{sub}"),
            (false, false) => format!("{base}.{sub}"),
        };
        ConfigError::new(file, path, clean_message(&e.into_inner().to_string(), None))
    })
}

fn path_string(p: &serde_path_to_error::Path) -> String {
    let s = p.to_string();
    if s == "." {
        String::new()
    } else {
        s
    }
}

/// Parser messages repeat the position (` at line 4 column 7`) and serde_yaml prefixes its own,
/// less precise path (`routes[0]: `); both are reported separately, so they are cut here.
pub(crate) fn clean_message(msg: &str, location: Option<(usize, usize)>) -> String {
    let mut m = msg;
    if let Some((line, column)) = location {
        m = m.strip_suffix(&format!(" at line {line} column {column}")).unwrap_or(m);
    }
    if let Some((prefix, rest)) = m.split_once(": ") {
        let looks_like_path = !prefix.is_empty()
            && !prefix.contains(char::is_whitespace)
            && !prefix.contains('`')
            && !prefix.contains('"');
        if looks_like_path {
            m = rest;
        }
    }
    m.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tigateway_model::Config;

    #[test]
    fn unknown_key_has_path_and_position() {
        let e =
            typed::<Config>("server:\n  listeners:\n    - address: 1.2.3.4:80\n      tlz: 1\n", "f.yaml", Syntax::Yaml)
                .unwrap_err();
        assert_eq!(e.path, "server.listeners[0].tlz");
        assert_eq!(e.location, Some((4, 7)));
        assert!(e.message.starts_with("unknown field `tlz`"), "{}", e.message);

        let e = typed::<Config>("{\"routes\": [{\"uri\": \"x\",\n \"predicatez\": 1}]}", "f.json", Syntax::Json)
            .unwrap_err();
        assert_eq!(e.path, "routes[0].predicatez");
        assert_eq!(e.location.map(|l| l.0), Some(2));
        assert!(e.message.starts_with("unknown field `predicatez`"), "{}", e.message);
    }

    #[test]
    fn messages_that_merely_contain_colons_are_kept() {
        assert_eq!(
            clean_message("invalid type: string \"x\", expected u64", None),
            "invalid type: string \"x\", expected u64"
        );
        assert_eq!(
            clean_message("a.b[0]: missing field `uri` at line 2 column 3", Some((2, 3))),
            "missing field `uri`"
        );
    }
}
