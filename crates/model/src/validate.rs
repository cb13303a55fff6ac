//! Whole-config validation that reports every problem with its path, e.g.
//! `selectors[3].conditionList[0].operator: unknown operator "regx"`.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::config::Config;
use crate::handle::*;
use crate::types::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub path: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl ValidationErrors {
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl Config {
    /// Checks the whole config; returns every problem, not just the first.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = Vec::new();
        validate_server(self, &mut errs);
        validate_services(self, &mut errs);

        let mut plugin_names = HashSet::new();
        for (i, p) in self.plugins.iter().enumerate() {
            let path = format!("plugins[{i}]");
            if builtin_plugin_order(&p.name).is_none() {
                errs.push(ValidationError::new(format!("{path}.name"), format!("unknown plugin {:?}", p.name)));
            }
            if !plugin_names.insert(p.name.as_str()) {
                errs.push(ValidationError::new(format!("{path}.name"), format!("duplicate plugin {:?}", p.name)));
            }
            if let Some(cfg) = p.config.as_deref().filter(|c| !c.trim().is_empty()) {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(cfg) {
                    errs.push(ValidationError::new(format!("{path}.config"), format!("not valid JSON: {e}")));
                }
            }
        }

        let mut selector_plugin: HashMap<&str, &str> = HashMap::new();
        for (i, s) in self.selectors.iter().enumerate() {
            let path = format!("selectors[{i}]");
            if s.id.trim().is_empty() {
                errs.push(ValidationError::new(format!("{path}.id"), "must not be empty"));
            } else if selector_plugin.contains_key(s.id.as_str()) {
                errs.push(ValidationError::new(format!("{path}.id"), format!("duplicate selector id {:?}", s.id)));
            } else {
                selector_plugin.insert(s.id.as_str(), s.plugin_name.as_str());
            }
            check_plugin_ref(&s.plugin_name, &format!("{path}.pluginName"), self, &mut errs);
            if !matches!(s.match_mode, MATCH_AND | MATCH_OR) {
                errs.push(ValidationError::new(
                    format!("{path}.matchMode"),
                    format!("must be 0 (and) or 1 (or), got {}", s.match_mode),
                ));
            }
            match s.selector_type {
                SELECTOR_FULL => {}
                SELECTOR_CUSTOM => {
                    if s.condition_list.is_empty() {
                        errs.push(ValidationError::new(
                            format!("{path}.conditionList"),
                            "a custom selector (type 1) needs conditions; use type 0 (full) to match all traffic",
                        ));
                    }
                }
                t => errs.push(ValidationError::new(
                    format!("{path}.type"),
                    format!("must be 0 (full) or 1 (custom), got {t}"),
                )),
            }
            for (j, c) in s.condition_list.iter().enumerate() {
                validate_condition(c, &format!("{path}.conditionList[{j}]"), &mut errs);
            }
            validate_selector_handle(s, &format!("{path}.handle"), &mut errs);
        }

        let mut rule_ids = HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let path = format!("rules[{i}]");
            if r.id.trim().is_empty() {
                errs.push(ValidationError::new(format!("{path}.id"), "must not be empty"));
            } else if !rule_ids.insert(r.id.as_str()) {
                errs.push(ValidationError::new(format!("{path}.id"), format!("duplicate rule id {:?}", r.id)));
            }
            let plugin = match selector_plugin.get(r.selector_id.as_str()) {
                None => {
                    errs.push(ValidationError::new(
                        format!("{path}.selectorId"),
                        format!("no selector with id {:?}", r.selector_id),
                    ));
                    r.plugin_name.as_str()
                }
                Some(sp) => {
                    if !r.plugin_name.is_empty() && r.plugin_name != *sp {
                        errs.push(ValidationError::new(
                            format!("{path}.pluginName"),
                            format!(
                                "rule is for plugin {:?} but its selector {:?} is for plugin {:?}",
                                r.plugin_name, r.selector_id, sp
                            ),
                        ));
                    }
                    sp
                }
            };
            if !matches!(r.match_mode, MATCH_AND | MATCH_OR) {
                errs.push(ValidationError::new(
                    format!("{path}.matchMode"),
                    format!("must be 0 (and) or 1 (or), got {}", r.match_mode),
                ));
            }
            for (j, c) in r.condition_data_list.iter().enumerate() {
                validate_condition(c, &format!("{path}.conditionDataList[{j}]"), &mut errs);
            }
            validate_rule_handle(plugin, r.handle.as_deref(), &format!("{path}.handle"), &mut errs);
        }

        for (i, d) in self.discovery_upstreams.iter().enumerate() {
            let path = format!("discoveryUpstreams[{i}]");
            if !selector_plugin.contains_key(d.selector_id.as_str()) {
                errs.push(ValidationError::new(
                    format!("{path}.selectorId"),
                    format!("no selector with id {:?}", d.selector_id),
                ));
            }
            for (j, u) in d.upstream_data_list.iter().enumerate() {
                if u.url.trim().is_empty() {
                    errs.push(ValidationError::new(format!("{path}.upstreamDataList[{j}].url"), "must not be empty"));
                }
            }
        }

        for (i, m) in self.metadata.iter().enumerate() {
            if m.path.trim().is_empty() {
                errs.push(ValidationError::new(format!("metadata[{i}].path"), "must not be empty"));
            }
        }
        for (i, a) in self.app_auth.iter().enumerate() {
            if a.app_key.trim().is_empty() {
                errs.push(ValidationError::new(format!("appAuth[{i}].appKey"), "must not be empty"));
            }
        }

        let mut route_ids = HashSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            if !r.id.is_empty() && !route_ids.insert(r.id.as_str()) {
                errs.push(ValidationError::new(format!("{path}.id"), format!("duplicate route id {:?}", r.id)));
            }
            crate::spring::validate_route(r, &path, &mut errs);
        }
        ValidationErrors(errs).into_result()
    }
}

fn check_plugin_ref(name: &str, path: &str, cfg: &Config, errs: &mut Vec<ValidationError>) {
    if builtin_plugin_order(name).is_none() {
        errs.push(ValidationError::new(path, format!("unknown plugin {name:?}")));
    } else if !cfg.plugins.is_empty() && !cfg.plugins.iter().any(|p| p.name == name) {
        errs.push(ValidationError::new(path, format!("plugin {name:?} is not in `plugins`")));
    }
}

fn validate_server(cfg: &Config, errs: &mut Vec<ValidationError>) {
    let t = &cfg.server.tracing;
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        errs.push(ValidationError::new(
            "server.tracing.sampleRatio",
            format!("must be within 0..1, got {}", t.sample_ratio),
        ));
    }
    if let Some(e) = &t.otlp_endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) || e.parse::<http::Uri>().is_err() {
            errs.push(ValidationError::new(
                "server.tracing.otlpEndpoint",
                format!("expected an http(s) URL, got {e:?}"),
            ));
        }
    }
    for (i, l) in cfg.server.listeners.iter().enumerate() {
        if l.address.parse::<std::net::SocketAddr>().is_err() {
            errs.push(ValidationError::new(
                format!("server.listeners[{i}].address"),
                format!("not a socket address (ip:port): {:?}", l.address),
            ));
        }
    }
    for (i, p) in cfg.server.trusted_proxies.iter().enumerate() {
        if parse_cidr(p).is_none() {
            errs.push(ValidationError::new(
                format!("server.trustedProxies[{i}]"),
                format!("not an IP address or CIDR: {p:?}"),
            ));
        }
    }
    for (i, a) in cfg.demo_upstreams.iter().enumerate() {
        if a.parse::<std::net::SocketAddr>().is_err() {
            errs.push(ValidationError::new(
                format!("demoUpstreams[{i}]"),
                format!("not a socket address (ip:port): {a:?}"),
            ));
        }
    }
}

fn validate_services(cfg: &Config, errs: &mut Vec<ValidationError>) {
    for (name, instances) in &cfg.services {
        for (i, inst) in instances.iter().enumerate() {
            if let Err(e) = crate::config::parse_upstream_url(&inst.url) {
                errs.push(ValidationError::new(format!("services.{name}[{i}].url"), e));
            }
        }
    }
}

/// Parses `1.2.3.4`, `1.2.3.0/24`, `::1` or `fe80::/10`.
pub fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    if let Ok(n) = s.parse::<ipnet::IpNet>() {
        return Some(n);
    }
    s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from)
}

fn validate_condition(c: &Condition, path: &str, errs: &mut Vec<ValidationError>) {
    let pt = ParamType::parse(&c.param_type);
    if pt.is_none() {
        errs.push(ValidationError::new(format!("{path}.paramType"), format!("unknown paramType {:?}", c.param_type)));
    }
    let op = Operator::parse(&c.operator);
    if op.is_none() {
        errs.push(ValidationError::new(format!("{path}.operator"), format!("unknown operator {:?}", c.operator)));
    }
    let value = c.param_value.as_deref().map(str::trim).unwrap_or("");
    if let Some(pt) = pt {
        if pt.needs_name() && c.param_name.as_deref().map(str::trim).unwrap_or("").is_empty() {
            errs.push(ValidationError::new(
                format!("{path}.paramName"),
                format!("paramType {:?} needs a paramName", c.param_type),
            ));
        }
    }
    let Some(op) = op else { return };
    if op != Operator::IsBlank && value.is_empty() {
        errs.push(ValidationError::new(format!("{path}.paramValue"), "must not be empty"));
        return;
    }
    if op == Operator::Regex {
        if let Err(e) = regex::Regex::new(&format!("^(?:{value})$")) {
            errs.push(ValidationError::new(format!("{path}.paramValue"), format!("bad regex: {e}")));
        }
    }
    let is_time = matches!(op, Operator::TimeBefore | Operator::TimeAfter);
    if is_time && chrono::NaiveDateTime::parse_from_str(value, CONDITION_TIME_FORMAT).is_err() {
        errs.push(ValidationError::new(
            format!("{path}.paramValue"),
            format!("expected a time as yyyy-MM-dd HH:mm:ss, got {value:?}"),
        ));
    }
    if pt == Some(ParamType::Ip) && value.contains('/') && parse_cidr(value).is_none() {
        errs.push(ValidationError::new(format!("{path}.paramValue"), format!("not a CIDR: {value:?}")));
    }
}

fn validate_selector_handle(s: &Selector, path: &str, errs: &mut Vec<ValidationError>) {
    if matches!(s.plugin_name.as_str(), "divide" | "websocket") {
        match parse_divide_upstreams(s.handle.as_deref()) {
            Err(e) => errs.push(ValidationError::new(path, format!("expected a list of upstreams: {e}"))),
            Ok(list) => {
                for (i, u) in list.iter().enumerate() {
                    if u.upstream_url.trim().is_empty() {
                        errs.push(ValidationError::new(format!("{path}[{i}].upstreamUrl"), "must not be empty"));
                    }
                }
            }
        }
    }
}

fn push_parse<T: for<'de> serde::Deserialize<'de> + Default>(
    handle: Option<&str>,
    path: &str,
    errs: &mut Vec<ValidationError>,
) -> Option<T> {
    match parse_handle::<T>(handle) {
        Ok(h) => Some(h),
        Err(e) => {
            errs.push(ValidationError::new(path, format!("invalid handle: {e}")));
            None
        }
    }
}

fn validate_rule_handle(plugin: &str, handle: Option<&str>, path: &str, errs: &mut Vec<ValidationError>) {
    match plugin {
        "divide" => {
            if let Some(h) = push_parse::<DivideRuleHandle>(handle, path, errs) {
                if !LOAD_BALANCERS.contains(&h.load_balance.as_str()) {
                    errs.push(ValidationError::new(
                        format!("{path}.loadBalance"),
                        format!("unknown load balancer {:?} (one of {})", h.load_balance, LOAD_BALANCERS.join(", ")),
                    ));
                }
                if !matches!(h.retry_strategy.as_str(), "current" | "failover" | "") {
                    errs.push(ValidationError::new(
                        format!("{path}.retryStrategy"),
                        format!("must be current or failover, got {:?}", h.retry_strategy),
                    ));
                }
            }
        }
        "websocket" => {
            if let Some(h) = push_parse::<WebSocketRuleHandle>(handle, path, errs) {
                if !LOAD_BALANCERS.contains(&h.load_balance.as_str()) {
                    errs.push(ValidationError::new(
                        format!("{path}.loadBalance"),
                        format!("unknown load balancer {:?}", h.load_balance),
                    ));
                }
            }
        }
        "contextPath" => {
            if let Some(h) = push_parse::<ContextPathHandle>(handle, path, errs) {
                if h.percentage.is_some_and(|p| p > 100) {
                    errs.push(ValidationError::new(format!("{path}.percentage"), "must be 0..=100"));
                }
            }
        }
        "rewrite" => {
            if let Some(h) = push_parse::<RewriteHandle>(handle, path, errs) {
                match h.regex.as_deref() {
                    None | Some("") => errs.push(ValidationError::new(format!("{path}.regex"), "must not be empty")),
                    Some(re) => {
                        if let Err(e) = regex::Regex::new(re) {
                            errs.push(ValidationError::new(format!("{path}.regex"), format!("bad regex: {e}")));
                        }
                    }
                }
                if h.percentage.is_some_and(|p| p > 100) {
                    errs.push(ValidationError::new(format!("{path}.percentage"), "must be 0..=100"));
                }
            }
        }
        "redirect" => {
            if let Some(h) = push_parse::<RedirectHandle>(handle, path, errs) {
                if h.redirect_uri.as_deref().unwrap_or("").trim().is_empty() {
                    errs.push(ValidationError::new(format!("{path}.redirectURI"), "must not be empty"));
                }
                if let Some(c) = h.http_status_code {
                    if !(300..400).contains(&c) {
                        errs.push(ValidationError::new(
                            format!("{path}.httpStatusCode"),
                            format!("must be a 3xx status, got {c}"),
                        ));
                    }
                }
            }
        }
        "request" => {
            push_parse::<RequestHandle>(handle, path, errs);
        }
        "modifyResponse" => {
            push_parse::<ModifyResponseHandle>(handle, path, errs);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem_with_its_path() {
        let cfg = Config::from_yaml_str(
            r#"
selectors:
  - id: s1
    pluginName: divide
    conditionList:
      - {paramType: uri, operator: regx, paramValue: "/a"}
      - {paramType: header, operator: "=", paramValue: "x"}
  - id: s1
    pluginName: nosuch
    type: 0
rules:
  - id: r1
    selectorId: missing
  - id: r2
    selectorId: s1
    handle: '{"loadBalance":"fastest"}'
"#,
        )
        .unwrap();
        let errs = cfg.validate().unwrap_err().to_string();
        assert!(errs.contains(r#"selectors[0].conditionList[0].operator: unknown operator "regx""#), "{errs}");
        assert!(errs.contains("selectors[0].conditionList[1].paramName"), "{errs}");
        assert!(errs.contains(r#"selectors[1].id: duplicate selector id "s1""#), "{errs}");
        assert!(errs.contains(r#"selectors[1].pluginName: unknown plugin "nosuch""#), "{errs}");
        assert!(errs.contains(r#"rules[0].selectorId: no selector with id "missing""#), "{errs}");
        assert!(errs.contains(r#"rules[1].handle.loadBalance: unknown load balancer "fastest""#), "{errs}");
    }

    #[test]
    fn rule_under_selector_of_other_plugin_is_refused() {
        let cfg = Config::from_yaml_str(
            r#"
selectors: [{id: s, pluginName: divide, type: 0}]
rules: [{id: r, selectorId: s, pluginName: rewrite, handle: {regex: "a", replace: "b"}}]
"#,
        )
        .unwrap();
        let errs = cfg.validate().unwrap_err().to_string();
        assert!(errs.contains("rules[0].pluginName"), "{errs}");
    }

    #[test]
    fn bad_regex_and_time_and_cidr() {
        let cfg = Config::from_yaml_str(
            r#"
selectors:
  - id: s
    pluginName: divide
    conditionList:
      - {paramType: uri, operator: regex, paramValue: "(/a"}
      - {paramType: ip, operator: match, paramValue: "10.0.0.0/99"}
      - {paramType: uri, operator: TimeAfter, paramValue: "tomorrow"}
"#,
        )
        .unwrap();
        let errs = cfg.validate().unwrap_err();
        assert_eq!(errs.0.len(), 3, "{errs}");
    }
}
