//! Reads a Spring Cloud Gateway `application.yml` as it is, so a Kubernetes ConfigMap written for
//! the Java TiGateway/SCG works unchanged. What TiGateway does not use (management, logging, eureka,
//! ...) is ignored, like Spring ignores properties nobody binds; inside a route, where a typo would
//! silently change routing, unknown keys are errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_yaml::{Mapping, Value};
use tigateway_model::{Definition, ListenerConfig, RouteDefinition, ServiceInstance};

use super::error::{ConfigError, Errors, LoadError};
use super::merge::{Origin, Part, Rest};
use super::native::from_value;
use super::props::{canonical, entries, expand, get, is_profile_specific, key_string, merge, scalar_string, Resolver};

/// Where routes and default filters live: the classic prefix and SCG 4.3's
/// `spring.cloud.gateway.server.webflux`. Routes of both are taken, classic first.
const GATEWAY_PREFIXES: [(&[&str], &str, &[&str]); 2] = [
    (&["spring", "cloud", "gateway"], "spring.cloud.gateway", &["routes", "defaultfilters", "server", "httpclient"]),
    (
        &["spring", "cloud", "gateway", "server", "webflux"],
        "spring.cloud.gateway.server.webflux",
        &["routes", "defaultfilters", "httpclient"],
    ),
];

/// Route keys in canonical form, with the model's name for each.
const ROUTE_KEYS: [(&str, &str); 6] = [
    ("id", "id"),
    ("uri", "uri"),
    ("order", "order"),
    ("predicates", "predicates"),
    ("filters", "filters"),
    ("metadata", "metadata"),
];

/// Keys of Spring's `DefaultServiceInstance`, canonical.
const INSTANCE_KEYS: [&str; 7] = ["uri", "host", "port", "secure", "metadata", "instanceid", "serviceid"];

/// Converts the YAML documents of one `application.yml`.
pub(crate) fn convert(
    docs: Vec<Value>,
    file: &Arc<str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Part, LoadError> {
    let mut errs: Errors = Vec::new();
    let mut tree = Value::Mapping(Mapping::new());
    for (n, mut doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        if let Err(e) = doc.apply_merge() {
            errs.push(ConfigError::new(&**file, format!("document {}", n + 1), format!("bad YAML merge key: {e}")));
            continue;
        }
        let doc = expand(doc);
        if !doc.is_mapping() {
            errs.push(ConfigError::new(&**file, format!("document {}", n + 1), "expected a mapping of properties"));
            continue;
        }
        if is_profile_specific(&doc) {
            tracing::debug!(file = &**file, document = n + 1, "skipping a profile-specific document");
            continue;
        }
        merge(&mut tree, doc);
    }

    let resolver = Resolver { env, tree: &tree, file };
    let mut part = Part::empty(file);
    server(&tree, &resolver, &mut part, &mut errs);
    for (segments, label, _) in GATEWAY_PREFIXES {
        if let Some(client) = get(&tree, segments).and_then(|g| get(g, &["httpclient"])) {
            httpclient(client, label, &resolver, &mut part, &mut errs);
        }
    }

    let mut defaults = Vec::new();
    let mut default_paths = Vec::new();
    for (segments, label, known) in GATEWAY_PREFIXES {
        let Some(gateway) = get(&tree, segments) else { continue };
        for (key, _) in entries(gateway) {
            if !known.contains(&canonical(&key).as_str()) {
                tracing::warn!(file = &**file, "{label}.{key} is not used by TiGateway and is ignored");
            }
        }
        let Some(list) = get(gateway, &["defaultfilters"]) else {
            continue;
        };
        let base = format!("{label}.default-filters");
        for (i, item) in items(list, &base, file, &mut errs).into_iter().enumerate() {
            let path = format!("{base}[{i}]");
            let mut item = item.clone();
            resolver.resolve_tree(&mut item, &path, &mut errs);
            match from_value::<Definition>(item, file, &path) {
                Ok(d) => {
                    defaults.push(d);
                    default_paths.push(path);
                }
                Err(e) => errs.push(e),
            }
        }
    }
    let default_paths = Arc::new(default_paths);

    for (segments, label, _) in GATEWAY_PREFIXES {
        let Some(list) = get(&tree, segments).and_then(|g| get(g, &["routes"])) else {
            continue;
        };
        let base = format!("{label}.routes");
        for (i, item) in items(list, &base, file, &mut errs).into_iter().enumerate() {
            let path = format!("{base}[{i}]");
            let mut item = item.clone();
            resolver.resolve_tree(&mut item, &path, &mut errs);
            match route(item, file, &path) {
                Ok(mut r) => {
                    // SCG applies default filters to every route, ahead of the route's own.
                    let own = std::mem::take(&mut r.filters);
                    r.filters = defaults.iter().cloned().chain(own).collect();
                    part.auto_ids.push(r.id.is_empty());
                    part.config.routes.push(r);
                    part.lists.entry("routes").or_default().push(Origin::new(
                        file,
                        path,
                        Rest::SpringRoute(default_paths.clone()),
                    ));
                }
                Err(e) => errs.extend(e),
            }
        }
    }

    if let Some(services) = get(&tree, &["spring", "cloud", "discovery", "client", "simple", "instances"]) {
        for (name, list) in entries(services) {
            let key = if name.contains('.') { format!("[{name}]") } else { name.clone() };
            let base = format!("spring.cloud.discovery.client.simple.instances.{key}");
            let mut instances = Vec::new();
            for (i, item) in items(list, &base, file, &mut errs).into_iter().enumerate() {
                let path = format!("{base}[{i}]");
                let mut item = item.clone();
                resolver.resolve_tree(&mut item, &path, &mut errs);
                match instance(&item, file, &path) {
                    Ok(inst) => instances.push(inst),
                    Err(e) => errs.extend(e),
                }
            }
            part.config.services.insert(name.clone(), instances);
            part.services.insert(name, Origin::new(file, base, Rest::UrlToUri));
        }
    }

    if errs.is_empty() {
        Ok(part)
    } else {
        Err(LoadError { errors: errs })
    }
}

/// `server.port` (and `server.address`) become the one listener, as they are the one Spring server.
fn server(tree: &Value, resolver: &Resolver<'_>, part: &mut Part, errs: &mut Errors) {
    let Some(port) = get(tree, &["server", "port"]) else {
        return;
    };
    let mut port = port.clone();
    resolver.resolve_tree(&mut port, "server.port", errs);
    let Some(port) = scalar_string(&port).and_then(|s| s.trim().parse::<u16>().ok()).filter(|p| *p != 0) else {
        errs.push(ConfigError::new(
            resolver.file,
            "server.port",
            format!("expected a port number 1-65535, got {}", show(&port)),
        ));
        return;
    };
    let (host, origin) = match get(tree, &["server", "address"]) {
        Some(a) => {
            let mut a = a.clone();
            resolver.resolve_tree(&mut a, "server.address", errs);
            (scalar_string(&a).unwrap_or_default(), "server.address")
        }
        None => ("0.0.0.0".to_string(), "server.port"),
    };
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    part.config.server.listeners.push(ListenerConfig { address, tls: None, http2: true });
    let file: Arc<str> = part.file.clone();
    part.lists.entry("server.listeners").or_default().push(Origin::new(&file, origin, Rest::Drop));
}

/// SCG's global upstream timeouts: `httpclient.connect-timeout` (milliseconds) and
/// `httpclient.response-timeout` (a duration: `5s`, `PT5S`, `500ms`; a bare number is milliseconds).
fn httpclient(client: &Value, label: &str, resolver: &Resolver<'_>, part: &mut Part, errs: &mut Errors) {
    let mut read = |key: &str, name: &str| -> Option<u64> {
        let mut v = get(client, &[key])?.clone();
        let path = format!("{label}.httpclient.{name}");
        resolver.resolve_tree(&mut v, &path, errs);
        let text = scalar_string(&v).unwrap_or_default();
        let t = text.trim();
        let parsed = match t.parse::<u64>() {
            Ok(ms) => Ok(ms),
            Err(_) => tigateway_model::spring::parse_duration(t).map(|d| d.as_millis() as u64),
        };
        match parsed {
            Ok(ms) if ms > 0 => Some(ms),
            Ok(_) => None,
            Err(e) => {
                errs.push(ConfigError::new(resolver.file, path, e));
                None
            }
        }
    };
    if let Some(ms) = read("connecttimeout", "connect-timeout") {
        part.config.server.upstream.connect_timeout_ms = ms;
    }
    if let Some(ms) = read("responsetimeout", "response-timeout") {
        part.config.server.upstream.response_timeout_ms = ms;
    }
}

fn items<'a>(list: &'a Value, path: &str, file: &str, errs: &mut Errors) -> Vec<&'a Value> {
    match list {
        Value::Sequence(s) => s.iter().collect(),
        Value::Null => Vec::new(),
        other => {
            errs.push(ConfigError::new(file, path, format!("expected a list, got {}", show(other))));
            Vec::new()
        }
    }
}

fn route(item: Value, file: &str, path: &str) -> Result<RouteDefinition, Errors> {
    let Value::Mapping(m) = item else {
        return Err(vec![ConfigError::new(
            file,
            path,
            "a route must be a mapping (id, uri, predicates, filters, ...)",
        )]);
    };
    let mut errs = Vec::new();
    let mut out = Mapping::new();
    for (k, v) in m {
        let key = key_string(&k).unwrap_or_default();
        let Some((_, name)) = ROUTE_KEYS.iter().find(|(c, _)| canonical(&key) == *c) else {
            errs.push(ConfigError::new(
                file,
                format!("{path}.{key}"),
                format!("unknown route key {key:?} (one of id, uri, order, predicates, filters, metadata)"),
            ));
            continue;
        };
        // Spring converts scalars to the bound type; a placeholder always yields a string.
        let v = match (*name, &v) {
            ("order", Value::String(s)) => match s.trim().parse::<i64>() {
                Ok(n) => Value::Number(n.into()),
                Err(_) => {
                    errs.push(ConfigError::new(
                        file,
                        format!("{path}.order"),
                        format!("expected an integer, got {s:?}"),
                    ));
                    continue;
                }
            },
            ("id" | "uri", Value::Number(_) | Value::Bool(_)) => Value::String(scalar_string(&v).unwrap_or_default()),
            _ => v,
        };
        out.insert(Value::String((*name).to_string()), v);
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    from_value::<RouteDefinition>(Value::Mapping(out), file, path).map_err(|e| vec![e])
}

fn instance(item: &Value, file: &str, path: &str) -> Result<ServiceInstance, Errors> {
    if !item.is_mapping() {
        return Err(vec![ConfigError::new(
            file,
            path,
            "an instance must be a mapping with uri (or host and port) and metadata",
        )]);
    }
    let mut errs = Vec::new();
    for (key, _) in entries(item) {
        if !INSTANCE_KEYS.contains(&canonical(&key).as_str()) {
            errs.push(ConfigError::new(
                file,
                format!("{path}.{key}"),
                format!(
                    "unknown instance key {key:?} (one of uri, host, port, secure, metadata, instanceId, serviceId)"
                ),
            ));
        }
    }
    let mut metadata = BTreeMap::new();
    if let Some(m) = get(item, &["metadata"]) {
        if !m.is_mapping() && !m.is_null() {
            errs.push(ConfigError::new(
                file,
                format!("{path}.metadata"),
                format!("expected a mapping, got {}", show(m)),
            ));
        }
        for (k, v) in entries(m) {
            match scalar_string(v) {
                Some(s) => {
                    metadata.insert(k, s);
                }
                None => errs.push(ConfigError::new(
                    file,
                    format!("{path}.metadata.{k}"),
                    format!("expected a text value, got {}", show(v)),
                )),
            }
        }
    }
    let weight = match metadata.get("weight") {
        None => 1,
        Some(w) => w.trim().parse::<u32>().unwrap_or_else(|_| {
            errs.push(ConfigError::new(
                file,
                format!("{path}.metadata.weight"),
                format!("expected a whole number, got {w:?}"),
            ));
            1
        }),
    };
    let text = |k: &str| get(item, &[k]).and_then(scalar_string);
    let url = match (text("uri"), text("host"), text("port")) {
        (Some(uri), _, _) => uri,
        (None, Some(host), Some(port)) => {
            let secure = text("secure").is_some_and(|s| s.eq_ignore_ascii_case("true"));
            format!("{}://{host}:{port}", if secure { "https" } else { "http" })
        }
        _ => {
            errs.push(ConfigError::new(file, path, "an instance needs uri, or host and port"));
            String::new()
        }
    };
    if errs.is_empty() {
        Ok(ServiceInstance { url, weight, warmup_ms: None, metadata })
    } else {
        Err(errs)
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "nothing".to_string(),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        other => format!("{:?}", scalar_string(other).unwrap_or_default()),
    }
}

#[cfg(test)]
mod httpclient_tests {
    #[test]
    fn httpclient_timeouts_become_upstream_defaults() {
        let cfg = crate::file::parse_config(
            "spring:\n  cloud:\n    gateway:\n      httpclient:\n        connect-timeout: 1500\n        response-timeout: 5s\n      routes:\n        - id: r\n          uri: http://127.0.0.1:1\n          predicates: [Path=/a]\n",
            "application.yml",
        )
        .unwrap();
        assert_eq!(cfg.server.upstream.connect_timeout_ms, 1500);
        assert_eq!(cfg.server.upstream.response_timeout_ms, 5000);
        let err = crate::file::parse_config(
            "spring:\n  cloud:\n    gateway:\n      httpclient:\n        response-timeout: soon\n",
            "application.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("spring.cloud.gateway.httpclient.response-timeout"), "{err}");
    }
}
