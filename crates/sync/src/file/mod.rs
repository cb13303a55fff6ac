//! The file config source: one file or one directory (a mounted Kubernetes ConfigMap) becomes one
//! [`Config`], in any of three forms, told apart by content:
//!
//! * the native form — [`Config`] itself in YAML or JSON, unknown keys refused;
//! * a Spring Cloud Gateway `application.yml`, unchanged (a top-level `spring` key, or a file named
//!   `application*.yml`): routes, default filters, simple-discovery instances, `server.port`;
//! * a TiGateway `routes.json`: a top-level list of routes.
//!
//! Every result is validated before it is returned, and every error names its file, its path in
//! that file and, where the parser knows it, its line and column.

mod error;
mod merge;
mod native;
mod props;
mod spring;
mod watch;

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tigateway_model::{Config, RouteDefinition};

pub use error::{ConfigError, LoadError};
pub use watch::{watch, FileWatcher, WatchEvent, WatchHandle, WatchReport};

use merge::{Origin, Part, Rest};
use native::{clean_message, typed, Syntax};

/// One file's text with the name errors are reported under.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub name: Arc<str>,
    pub text: String,
}

/// Parses one file's text; `origin` is the name used in errors, and a name like `application.yml`
/// selects the Spring form even when the file has no `spring` key (only `server.port`, say).
/// `${...}` placeholders in Spring files are resolved from the process environment.
pub fn parse_config(text: &str, origin: &str) -> Result<Config, LoadError> {
    parse_config_with_env(text, origin, &process_env)
}

/// [`parse_config`] with placeholders resolved by `env` instead of the process environment, so
/// tests and tools need not change the environment of a whole process.
pub fn parse_config_with_env(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, LoadError> {
    let source = Source { name: Arc::from(origin), text: text.to_string() };
    build(std::slice::from_ref(&source), origin, env)
}

/// Loads one file in any of the three forms.
pub fn load_file(path: &Path) -> Result<Config, LoadError> {
    let source = read_file(path)?;
    build(&[source], &path.display().to_string(), &process_env)
}

/// Loads the config files of a directory as one config, the way a ConfigMap with `application.yml`
/// and `routes.json` keys is mounted: `application.yml`, `application.yaml`, `routes.json`, then
/// every other `*.yaml`/`*.yml` by name. Routes are concatenated in that order (it matters only
/// between routes of equal `order`), services and the other lists merged; a route id or a service
/// defined in two files is an error. Profile files (`application-dev.yml`) and hidden entries (the
/// ConfigMap's `..data` machinery, editor swap files) are skipped.
pub fn load_dir(dir: &Path) -> Result<Config, LoadError> {
    let sources = read_dir_sources(dir)?;
    build(&sources, &dir.display().to_string(), &process_env)
}

/// [`load_dir`] for a directory, else [`load_file`].
pub fn load_path(path: &Path) -> Result<Config, LoadError> {
    if path.is_dir() {
        load_dir(path)
    } else {
        load_file(path)
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads what [`load_path`] would read, so a watcher can hash exactly the text it then parses.
pub(crate) fn read_sources(path: &Path) -> Result<Vec<Source>, LoadError> {
    if path.is_dir() {
        read_dir_sources(path)
    } else {
        Ok(vec![read_file(path)?])
    }
}

fn read_file(path: &Path) -> Result<Source, LoadError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Source { name: Arc::from(name), text }),
        Err(e) => Err(LoadError::one(ConfigError::new(name, "", format!("cannot read: {e}")))),
    }
}

fn read_dir_sources(dir: &Path) -> Result<Vec<Source>, LoadError> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| LoadError::one(ConfigError::new(shown.clone(), "", format!("cannot read directory: {e}"))))?;
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rank = match name.as_str() {
            _ if name.starts_with('.') => continue,
            "application.yml" => 0,
            "application.yaml" => 1,
            "routes.json" => 2,
            _ if name.starts_with("application-") => continue,
            _ if name.ends_with(".yaml") || name.ends_with(".yml") => 3,
            _ => continue,
        };
        // `metadata` follows symlinks: ConfigMap keys are symlinks into `..data`.
        if std::fs::metadata(dir.join(&name)).is_ok_and(|m| m.is_file()) {
            names.push((rank, name));
        }
    }
    if names.is_empty() {
        return Err(LoadError::one(ConfigError::new(
            shown,
            "",
            "no config files here (application.yml, application.yaml, routes.json, *.yaml)",
        )));
    }
    names.sort();
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for (_, name) in names {
        match read_file(&dir.join(name)) {
            Ok(s) => sources.push(s),
            Err(e) => errors.extend(e.errors),
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(LoadError { errors })
    }
}

/// Parses every source, then merges and validates; parse errors of all files are reported together.
pub(crate) fn build(
    sources: &[Source],
    whole: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, LoadError> {
    let mut parts = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        match parse_part(source, env) {
            Ok(p) => parts.push(p),
            Err(e) => errors.extend(e.errors),
        }
    }
    if !errors.is_empty() {
        return Err(LoadError { errors });
    }
    merge::assemble(parts, whole)
}

fn parse_part(source: &Source, env: &dyn Fn(&str) -> Option<String>) -> Result<Part, LoadError> {
    let file = &source.name;
    let text = source.text.strip_prefix('\u{feff}').unwrap_or(&source.text);
    let base_name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let spring_name =
        base_name.starts_with("application") && (base_name.ends_with(".yml") || base_name.ends_with(".yaml"));
    let starts_like_json = matches!(text.trim_start().chars().next(), Some('{' | '['));
    let json_name = base_name.ends_with(".json");

    // JSON is parsed as JSON when it is JSON, for exact positions; `{a: 1}` is YAML's flow style.
    if json_name || (starts_like_json && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()) {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            let location = Some((e.line(), e.column()));
            LoadError::one(ConfigError::new(&**file, "", clean_message(&e.to_string(), location)).at(location))
        })?;
        return match value {
            serde_json::Value::Array(_) => routes_part(file, typed::<Vec<RouteDefinition>>(text, file, Syntax::Json)),
            serde_json::Value::Object(ref m) if m.keys().any(|k| is_spring_key(k)) => {
                let doc = serde_yaml::to_value(&value)
                    .map_err(|e| LoadError::one(ConfigError::new(&**file, "", e.to_string())))?;
                spring::convert(vec![doc], file, env)
            }
            serde_json::Value::Object(_) => {
                Ok(Part::native(file, typed::<Config>(text, file, Syntax::Json).map_err(LoadError::one)?, ""))
            }
            _ => Err(LoadError::one(ConfigError::new(&**file, "", "expected an object (config) or an array (routes)"))),
        };
    }

    // Large native files (thousands of selectors) are read straight into their types: building a
    // YAML value tree first, only to look at the top-level keys, costs tens of times the file's
    // size in memory. The tree is built only when the text could be Spring or multi-document.
    if !spring_name && !could_be_spring_or_multidoc(text) {
        return match first_top_level_char(text) {
            Some('-' | '[') => routes_part(file, typed::<Vec<RouteDefinition>>(text, file, Syntax::Yaml)),
            None => Ok(Part::native(file, Config::default(), "")),
            Some(_) => Ok(Part::native(file, typed::<Config>(text, file, Syntax::Yaml).map_err(LoadError::one)?, "")),
        };
    }

    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        match serde_yaml::Value::deserialize(de) {
            Ok(v) => docs.push(v),
            Err(e) => {
                let location = e.location().map(|l| (l.line(), l.column()));
                return Err(LoadError::one(
                    ConfigError::new(&**file, "", clean_message(&e.to_string(), location)).at(location),
                ));
            }
        }
    }
    let has_key = |pred: &dyn Fn(&serde_yaml::Value, &serde_yaml::Value) -> bool| {
        docs.iter().any(|d| d.as_mapping().is_some_and(|m| m.iter().any(|(k, v)| pred(k, v))))
    };
    // The file name only decides when the content does not: a native config someone named
    // `application.yml` must not be read as Spring and silently come out empty.
    let is_spring = has_key(&|k, _| k.as_str().is_some_and(is_spring_key))
        || (spring_name && !has_key(&|k, v| k.as_str().is_some_and(|k| is_native_key(k, v))));
    if is_spring {
        return spring::convert(docs, file, env);
    }
    docs.retain(|d| !d.is_null());
    match docs.as_slice() {
        [] => Ok(Part::native(file, Config::default(), "")),
        [serde_yaml::Value::Sequence(_)] => routes_part(file, typed::<Vec<RouteDefinition>>(text, file, Syntax::Yaml)),
        [serde_yaml::Value::Mapping(_)] => Ok(Part::native(file, typed::<Config>(text, file, Syntax::Yaml).map_err(LoadError::one)?, "")),
        [_] => Err(LoadError::one(ConfigError::new(&**file, "", "expected a mapping (config) or a list (routes)"))),
        _ => Err(LoadError::one(ConfigError::new(
            &**file,
            "",
            "several YAML documents (---) are only read from a Spring application.yml; put the native config in one document",
        ))),
    }
}

/// Top-level keys only the native form has (`server` only with native `listeners`).
fn is_native_key(key: &str, value: &serde_yaml::Value) -> bool {
    const NATIVE: [&str; 10] = [
        "services",
        "plugins",
        "selectors",
        "rules",
        "metadata",
        "metaData",
        "appAuth",
        "discoveryUpstreams",
        "routes",
        "demoUpstreams",
    ];
    NATIVE.contains(&key) || (key == "server" && value.get("listeners").is_some())
}

/// A line at column 0 that starts with `spring` (any case or quoting) or a document separator.
fn could_be_spring_or_multidoc(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start_matches(['"', '\'']);
        l.starts_with("---") || l.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("spring"))
    })
}

/// The first character of the first line at column 0 that is not blank or a comment.
fn first_top_level_char(text: &str) -> Option<char> {
    text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).find_map(|l| l.chars().next())
}

fn is_spring_key(key: &str) -> bool {
    props::canonical(key.split('.').next().unwrap_or(key)) == "spring"
}

/// A `routes.json`-style list: routes at `[i]`; a route without an id gets one when merged.
fn routes_part(file: &Arc<str>, routes: Result<Vec<RouteDefinition>, ConfigError>) -> Result<Part, LoadError> {
    let routes = routes.map_err(LoadError::one)?;
    let mut part = Part::empty(file);
    part.lists.insert("routes", (0..routes.len()).map(|i| Origin::new(file, format!("[{i}]"), Rest::Keep)).collect());
    part.auto_ids = routes.iter().map(|r| r.id.is_empty()).collect();
    part.config.routes = routes;
    Ok(part)
}
