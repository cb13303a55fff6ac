//! Joins the configs of several files into one and validates the result, reporting every error in
//! the terms of the file it came from: after a merge `routes[3]` may be `routes.json`'s `[1]` or
//! `application.yml`'s `spring.cloud.gateway.routes[0]`, and the operator edits the file, not the merge.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tigateway_model::{Config, ServerConfig};

use super::error::{ConfigError, Errors, LoadError};

/// Where an element of the merged config was written.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub file: Arc<str>,
    pub path: String,
    pub rest: Rest,
}

/// How the part of a validation path below an element translates into the source's spelling.
#[derive(Debug, Clone)]
pub(crate) enum Rest {
    Keep,
    /// The element was made from one scalar (a listener from `server.port`).
    Drop,
    /// Spring simple discovery calls the instance address `uri`; the model calls it `url`.
    UrlToUri,
    /// A Spring route whose first filters are the shared `default-filters`, at these paths.
    SpringRoute(Arc<Vec<String>>),
}

impl Origin {
    pub(crate) fn new(file: &Arc<str>, path: impl Into<String>, rest: Rest) -> Self {
        Origin { file: file.clone(), path: path.into(), rest }
    }

    fn translate(&self, rest: &str) -> String {
        match &self.rest {
            Rest::Keep => format!("{}{rest}", self.path),
            Rest::Drop => self.path.clone(),
            Rest::UrlToUri => match rest.strip_prefix(".url") {
                Some(after) => format!("{}.uri{after}", self.path),
                None => format!("{}{rest}", self.path),
            },
            Rest::SpringRoute(defaults) => match rest.strip_prefix(".filters").and_then(split_index) {
                Some((j, after)) if j < defaults.len() => format!("{}{after}", defaults[j]),
                Some((j, after)) => format!("{}.filters[{}]{after}", self.path, j - defaults.len()),
                None => format!("{}{rest}", self.path),
            },
        }
    }
}

/// The list sections of [`Config`], by their validation path names.
const SECTIONS: [&str; 9] = [
    "server.listeners",
    "plugins",
    "selectors",
    "rules",
    "metadata",
    "appAuth",
    "discoveryUpstreams",
    "routes",
    "demoUpstreams",
];

fn section_len(cfg: &Config, section: &str) -> usize {
    match section {
        "server.listeners" => cfg.server.listeners.len(),
        "plugins" => cfg.plugins.len(),
        "selectors" => cfg.selectors.len(),
        "rules" => cfg.rules.len(),
        "metadata" => cfg.metadata.len(),
        "appAuth" => cfg.app_auth.len(),
        "discoveryUpstreams" => cfg.discovery_upstreams.len(),
        "routes" => cfg.routes.len(),
        "demoUpstreams" => cfg.demo_upstreams.len(),
        _ => 0,
    }
}

/// One file's contribution, with the origin of each element.
#[derive(Debug)]
pub(crate) struct Part {
    pub file: Arc<str>,
    pub config: Config,
    pub lists: BTreeMap<&'static str, Vec<Origin>>,
    /// Per service name: where the list of instances is (instance `i` is at `path[i]`).
    pub services: BTreeMap<String, Origin>,
    /// Per route: its id was not given and is to be made up once its final position is known.
    pub auto_ids: Vec<bool>,
}

impl Part {
    /// A part whose elements sit at `{prefix}{section}[i]` in the file.
    pub(crate) fn native(file: &Arc<str>, config: Config, prefix: &str) -> Part {
        let lists = SECTIONS
            .iter()
            .map(|s| {
                (
                    *s,
                    (0..section_len(&config, s))
                        .map(|i| Origin::new(file, format!("{prefix}{s}[{i}]"), Rest::Keep))
                        .collect(),
                )
            })
            .collect();
        let services = config
            .services
            .keys()
            .map(|name| (name.clone(), Origin::new(file, format!("{prefix}services.{name}"), Rest::Keep)))
            .collect();
        let auto_ids = vec![false; config.routes.len()];
        Part { file: file.clone(), config, lists, services, auto_ids }
    }

    /// An empty part to which a converter adds elements with their origins.
    pub(crate) fn empty(file: &Arc<str>) -> Part {
        Part {
            file: file.clone(),
            config: Config::default(),
            lists: BTreeMap::new(),
            services: BTreeMap::new(),
            auto_ids: Vec::new(),
        }
    }
}

/// Server settings that mean "not given". The model's derived `ServerConfig::default()` has
/// `shutdownTimeoutMs` 0 while `server: {}` gets serde's 30 s, so a file that only lists listeners
/// must not count as giving settings under either spelling.
fn unset_server_settings() -> [ServerConfig; 2] {
    let explicit: Config = serde_json::from_str(r#"{"server": {}}"#).expect("an empty server section is valid");
    [ServerConfig::default(), explicit.server]
}

/// Merges the parts in order and validates. `whole` names the source as a whole (the directory).
pub(crate) fn assemble(parts: Vec<Part>, whole: &str) -> Result<Config, LoadError> {
    let default_file: Arc<str> = parts.first().map(|p| p.file.clone()).unwrap_or_else(|| Arc::from(whole));
    let mut cfg = Config::default();
    let unset_server = unset_server_settings();
    let mut lists: BTreeMap<&'static str, Vec<Origin>> = BTreeMap::new();
    let mut services: BTreeMap<String, Origin> = BTreeMap::new();
    let mut auto_ids = Vec::new();
    let mut server_file: Option<Arc<str>> = None;
    let mut errs: Errors = Vec::new();

    for part in parts {
        let Part { file, config, lists: part_lists, services: part_services, auto_ids: part_auto } = part;
        let Config {
            server,
            services: svc,
            plugins,
            selectors,
            rules,
            metadata,
            app_auth,
            discovery_upstreams,
            routes,
            demo_upstreams,
        } = config;
        let mut settings = server;
        let listeners = std::mem::take(&mut settings.listeners);
        if !unset_server.contains(&settings) {
            match &server_file {
                Some(first) => errs.push(ConfigError::new(
                    &*file,
                    "server",
                    format!(
                        "server settings are also given in {first}; give them in one file (listeners may be split)"
                    ),
                )),
                None => {
                    cfg.server = ServerConfig { listeners: std::mem::take(&mut cfg.server.listeners), ..settings };
                    server_file = Some(file.clone());
                }
            }
        }
        cfg.server.listeners.extend(listeners);
        cfg.plugins.extend(plugins);
        cfg.selectors.extend(selectors);
        cfg.rules.extend(rules);
        cfg.metadata.extend(metadata);
        cfg.app_auth.extend(app_auth);
        cfg.discovery_upstreams.extend(discovery_upstreams);
        cfg.routes.extend(routes);
        cfg.demo_upstreams.extend(demo_upstreams);
        for (section, origins) in part_lists {
            lists.entry(section).or_default().extend(origins);
        }
        auto_ids.extend(part_auto);
        for (name, instances) in svc {
            let origin = part_services
                .get(&name)
                .cloned()
                .unwrap_or_else(|| Origin::new(&file, format!("services.{name}"), Rest::Keep));
            if let Some(first) = services.get(&name) {
                errs.push(ConfigError::new(
                    &*file,
                    origin.path.clone(),
                    format!(
                        "service {name:?} is also defined in {}: {}; define each service in one file",
                        first.file, first.path
                    ),
                ));
                continue;
            }
            cfg.services.insert(name.clone(), instances);
            services.insert(name, origin);
        }
    }

    let map = PathMap {
        lists: &lists,
        services: &services,
        server_file: server_file.as_ref().unwrap_or(&default_file),
        default_file: &default_file,
    };

    // Made-up ids use the final position, so a directory's files cannot make up the same id twice.
    let taken: HashSet<String> = cfg.routes.iter().map(|r| r.id.clone()).filter(|id| !id.is_empty()).collect();
    for (i, route) in cfg.routes.iter_mut().enumerate() {
        if route.id.is_empty() && auto_ids.get(i).copied().unwrap_or(false) {
            let mut id = format!("route-{i}");
            let mut n = 1;
            while taken.contains(&id) {
                id = format!("route-{i}-{n}");
                n += 1;
            }
            route.id = id;
        }
    }

    let mut reported = HashSet::new();
    let mut first_by_id: HashMap<&str, usize> = HashMap::new();
    for (i, route) in cfg.routes.iter().enumerate() {
        if route.id.is_empty() {
            continue;
        }
        if let Some(&first) = first_by_id.get(route.id.as_str()) {
            let (file, path) = map.locate(&format!("routes[{i}].id"));
            let (first_file, first_path) = map.locate(&format!("routes[{first}]"));
            errs.push(ConfigError::new(
                &*file,
                path.clone(),
                format!("duplicate route id {:?} (first defined at {first_file}: {first_path})", route.id),
            ));
            reported.insert((file, path));
        } else {
            first_by_id.insert(route.id.as_str(), i);
        }
    }

    if let Err(v) = cfg.validate() {
        for e in v.0 {
            let (file, path) = map.locate(&e.path);
            // Our own duplicate-id message names both places; the model's would repeat it.
            if !reported.contains(&(file.clone(), path.clone())) {
                errs.push(ConfigError::new(&*file, path, e.message));
            }
        }
    }

    // A bad default filter is found once per route that carries it, and reported once.
    let mut seen = HashSet::new();
    errs.retain(|e| seen.insert((e.file.clone(), e.path.clone(), e.message.clone())));
    if errs.is_empty() {
        Ok(cfg)
    } else {
        Err(LoadError { errors: errs })
    }
}

struct PathMap<'a> {
    lists: &'a BTreeMap<&'static str, Vec<Origin>>,
    services: &'a BTreeMap<String, Origin>,
    server_file: &'a Arc<str>,
    default_file: &'a Arc<str>,
}

impl PathMap<'_> {
    /// Translates a path in the merged config into the file and path where the user wrote it.
    fn locate(&self, path: &str) -> (Arc<str>, String) {
        for section in SECTIONS {
            if let Some((i, rest)) = path.strip_prefix(section).and_then(split_index) {
                if let Some(o) = self.lists.get(section).and_then(|v| v.get(i)) {
                    return (o.file.clone(), o.translate(rest));
                }
            }
        }
        if let Some(after) = path.strip_prefix("services.") {
            // Longest name first: `a` must not claim the errors of `a[b]`-like neighbours.
            let mut names: Vec<&String> = self.services.keys().collect();
            names.sort_by_key(|n| std::cmp::Reverse(n.len()));
            for name in names {
                if let Some(tail) = after.strip_prefix(name.as_str()) {
                    let o = &self.services[name];
                    if let Some((i, rest)) = split_index(tail) {
                        let inst = Origin { path: format!("{}[{i}]", o.path), ..o.clone() };
                        return (o.file.clone(), inst.translate(rest));
                    }
                    if tail.is_empty() {
                        return (o.file.clone(), o.path.clone());
                    }
                }
            }
        }
        if path.starts_with("server") {
            return (self.server_file.clone(), path.to_string());
        }
        (self.default_file.clone(), path.to_string())
    }
}

/// `[12].rest` → `(12, ".rest")`.
pub(crate) fn split_index(s: &str) -> Option<(usize, &str)> {
    let inner = s.strip_prefix('[')?;
    let end = inner.find(']')?;
    let i = inner[..end].parse().ok()?;
    Some((i, &inner[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_index_parses_only_indices() {
        assert_eq!(split_index("[3].uri"), Some((3, ".uri")));
        assert_eq!(split_index("[x]"), None);
        assert_eq!(split_index(".a"), None);
    }

    #[test]
    fn spring_route_paths_separate_default_filters() {
        let f: Arc<str> = Arc::from("application.yml");
        let o = Origin::new(
            &f,
            "spring.cloud.gateway.routes[1]",
            Rest::SpringRoute(Arc::new(vec!["spring.cloud.gateway.default-filters[0]".into()])),
        );
        assert_eq!(o.translate(".filters[0].args"), "spring.cloud.gateway.default-filters[0].args");
        assert_eq!(o.translate(".filters[2]"), "spring.cloud.gateway.routes[1].filters[1]");
        assert_eq!(o.translate(".uri"), "spring.cloud.gateway.routes[1].uri");
    }
}
