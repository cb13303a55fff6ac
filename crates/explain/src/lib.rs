//! `explain`: for a described request, which plugins of a config ran, which selector and rule each
//! chose, which condition of every other candidate failed, which Spring route matched and why the
//! earlier ones did not, and what the gateway answers in the end — "why does this request get 404".
//!
//! Matching is not reimplemented here: the chain comes from `tigateway_model::chain` (as the
//! snapshot builder reads it), paths are normalised by `tigateway_matcher::normalize`, selection
//! runs `PluginTable::explain` and route search `RouteTable::explain`, which are the data plane's
//! `select`/`find` instantiated with a recorder. What is described here per plugin is only what a
//! plugin does once it matched (proxy, redirect, edit).
//!
//! Known gap: the `request` plugin's header/query/cookie edits are not applied to the described
//! request, so a later plugin's condition on an edited field may decide differently; the answer
//! says so when that plugin matched.

mod text;

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use tigateway_matcher::normalize::normalize_path;
use tigateway_matcher::select::{CandidateTrace, PluginTable, RuleChoice, SelectOutcome};
use tigateway_matcher::RequestView;
use tigateway_model::chain::{plugin_chain, plugin_inputs};
use tigateway_model::handle::{parse_divide_upstreams, parse_handle, RedirectHandle};
use tigateway_model::{Config, ValidationError, IMPLEMENTED_PLUGINS};
use tigateway_routes::{RouteExplanation, RouteTarget};

pub use text::render_text;

/// A request to explain (the JSON body of `POST /api/v1/explain`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExplainRequest {
    /// HTTP method; `GET` when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Request target: a path, optionally with `?query`.
    pub path: String,
    /// Query string (without `?`); overrides a query in `path`.
    #[serde(default)]
    pub query: Option<String>,
    /// Header name → value (or list of values, for a repeated header).
    #[serde(default)]
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// Cookie name → value; sent as one `Cookie` header (after any given in `headers`).
    #[serde(default)]
    pub cookies: serde_json::Map<String, serde_json::Value>,
    /// The client address after trusted-proxy resolution (what `ip` conditions and `RemoteAddr`
    /// see); `127.0.0.1` when absent.
    #[serde(default)]
    pub client_ip: Option<String>,
    /// The TCP peer (what `XForwardedRemoteAddr` falls back to); the client IP when absent.
    #[serde(default)]
    pub peer_ip: Option<String>,
    /// Request body, for `post` conditions (form or JSON, by the Content-Type header).
    #[serde(default)]
    pub body: Option<String>,
}

/// Why an explanation could not be made.
#[derive(Debug, Clone, PartialEq)]
pub enum ExplainError {
    /// The described request is malformed; names the field.
    BadRequest { field: &'static str, message: String },
    /// The config does not validate or compile (the data plane would refuse it too).
    InvalidConfig(Vec<ValidationError>),
}

impl std::fmt::Display for ExplainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExplainError::BadRequest { field, message } => write!(f, "{field}: {message}"),
            ExplainError::InvalidConfig(errs) => {
                write!(f, "the config is invalid:")?;
                for e in errs {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ExplainError {}

/// The request as matching saw it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestSummary {
    pub method: String,
    /// After normalisation (what conditions and predicates compare).
    pub path: String,
    pub query: Option<String>,
    /// Host without port, lower-case (from the Host header).
    pub host: String,
    pub client_ip: String,
    /// A websocket upgrade (only the `websocket` plugin takes those; `divide` skips them).
    pub upgrade: bool,
}

/// What happened at one plugin of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepResult {
    /// The plugin does not run for this config.
    Disabled,
    /// No selector matched.
    NoSelector,
    /// A selector matched but none of its rules did.
    NoRule,
    /// No Spring route matched.
    NoRoute,
    /// Matched, but the plugin leaves this kind of request alone (e.g. divide and an upgrade).
    Skipped,
    /// Matched and edited the request; the chain goes on.
    Applied,
    /// Matched and answered or proxied: the chain ends here.
    Terminal,
    /// Matched a plugin whose work is on the response.
    ResponsePhase,
    /// After the terminal plugin; not evaluated.
    NotReached,
}

/// One plugin of the chain, in chain order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginStep {
    pub name: String,
    pub order: i64,
    pub enabled: bool,
    pub result: StepResult,
    /// One sentence for humans.
    pub detail: String,
    /// The chosen selector's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The chosen rule's id, or `default` (a selector with `continued: false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Selectors evaluated (rank order), then the ones the path index excluded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<CandidateTrace>,
    /// Rules of the chosen selector that were evaluated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<CandidateTrace>,
    /// For the `route` plugin: the Spring route search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<RouteExplanation>,
}

/// How the gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OutcomeKind {
    /// Proxied to `upstreams`.
    Proxy,
    /// A `Location` redirect.
    Redirect,
    /// The gateway answers itself (a `no://op` route, a filter's short circuit, no upstream).
    Respond,
    /// Nothing matched.
    NotFound,
    /// Refused before matching (e.g. a path with `%2F`).
    BadRequest,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// The status the gateway itself answers with; absent when the upstream's status is passed on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Upstream URLs the request may go to (the balancer picks one per request).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub message: String,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub request: RequestSummary,
    pub plugins: Vec<PluginStep>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The request, owned, in the form [`RequestView`] borrows from.
struct Described {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    host: String,
    client_ip: IpAddr,
    peer_ip: IpAddr,
    body: Option<Vec<u8>>,
    upgrade: bool,
}

impl Described {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            host: &self.host,
            client_ip: self.client_ip,
            peer_ip: self.peer_ip,
            body: self.body.as_deref(),
            content_type: self.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        }
    }
}

fn bad(field: &'static str, message: impl Into<String>) -> ExplainError {
    ExplainError::BadRequest { field, message: message.into() }
}

fn header_values(name: &str, v: &serde_json::Value) -> Result<Vec<String>, ExplainError> {
    match v {
        serde_json::Value::String(s) => Ok(vec![s.clone()]),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_string).ok_or_else(|| bad("headers", format!("{name}: values must be strings")))
            })
            .collect(),
        _ => Err(bad("headers", format!("{name}: a header value must be a string or a list of strings"))),
    }
}

/// Host without port, lower-case, as the data plane derives it from the Host header.
fn host_of(raw: &str) -> String {
    let h = if raw.starts_with('[') {
        raw.split(']').next().map(|s| format!("{s}]")).unwrap_or_else(|| raw.to_string())
    } else {
        raw.split(':').next().unwrap_or("").to_string()
    };
    h.to_ascii_lowercase()
}

fn describe(req: &ExplainRequest, cfg: &Config) -> Result<Result<Described, String>, ExplainError> {
    let method_text = req.method.as_deref().map(str::trim).filter(|m| !m.is_empty()).unwrap_or("GET");
    let method = Method::from_bytes(method_text.to_ascii_uppercase().as_bytes())
        .map_err(|_| bad("method", format!("not an HTTP method: {method_text:?}")))?;
    let (raw_path, inline_query) = match req.path.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (req.path.as_str(), None),
    };
    if !raw_path.starts_with('/') {
        return Err(bad("path", format!("must start with '/': {:?}", req.path)));
    }
    let query = req.query.clone().or(inline_query);
    let mut headers = HeaderMap::new();
    for (name, v) in &req.headers {
        let hn = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| bad("headers", format!("not a valid header name: {name:?}")))?;
        for value in header_values(name, v)? {
            let hv = HeaderValue::from_str(value.trim())
                .map_err(|_| bad("headers", format!("{name}: not a valid header value: {value:?}")))?;
            headers.append(hn.clone(), hv);
        }
    }
    if !req.cookies.is_empty() {
        let mut pairs = Vec::with_capacity(req.cookies.len());
        for (k, v) in &req.cookies {
            let v = v.as_str().ok_or_else(|| bad("cookies", format!("{k}: the value must be a string")))?;
            pairs.push(format!("{k}={v}"));
        }
        let hv = HeaderValue::from_str(&pairs.join("; "))
            .map_err(|_| bad("cookies", "cookies do not form a valid Cookie header"))?;
        headers.append(http::header::COOKIE, hv);
    }
    let client_ip: IpAddr = match req.client_ip.as_deref().map(str::trim) {
        None | Some("") => IpAddr::from([127, 0, 0, 1]),
        Some(s) => s.parse().map_err(|_| bad("clientIp", format!("not an IP address: {s:?}")))?,
    };
    let peer_ip: IpAddr = match req.peer_ip.as_deref().map(str::trim) {
        None | Some("") => client_ip,
        Some(s) => s.parse().map_err(|_| bad("peerIp", format!("not an IP address: {s:?}")))?,
    };
    let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).map(host_of).unwrap_or_default();
    let upgrade = headers.contains_key(http::header::UPGRADE)
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    let path = match normalize_path(raw_path, cfg.server.limits.allow_encoded_slash) {
        Ok(p) => p.into_owned(),
        Err(e) => return Ok(Err(e.message().to_string())),
    };
    Ok(Ok(Described {
        method,
        path,
        query,
        headers,
        host,
        client_ip,
        peer_ip,
        body: req.body.as_ref().map(|b| b.as_bytes().to_vec()),
        upgrade,
    }))
}

/// Explains `req` against `cfg`, which must be valid (as the data plane requires).
pub fn explain(cfg: &Config, req: &ExplainRequest) -> Result<Explanation, ExplainError> {
    cfg.validate().map_err(|e| ExplainError::InvalidConfig(e.0))?;
    let described = describe(req, cfg)?;
    let d = match described {
        Ok(d) => d,
        Err(message) => {
            return Ok(Explanation {
                request: RequestSummary {
                    method: req.method.clone().unwrap_or_else(|| "GET".into()),
                    path: req.path.clone(),
                    query: req.query.clone(),
                    host: String::new(),
                    client_ip: req.client_ip.clone().unwrap_or_else(|| "127.0.0.1".into()),
                    upgrade: false,
                },
                plugins: Vec::new(),
                outcome: Outcome {
                    kind: OutcomeKind::BadRequest,
                    status: Some(400),
                    message: format!("refused before matching: {message}"),
                    ..outcome_base()
                },
                notes: Vec::new(),
            })
        }
    };
    let view = d.view();
    let mut errs = tigateway_model::chain::unimplemented_in_use(cfg, IMPLEMENTED_PLUGINS);
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let mut outcome: Option<Outcome> = None;

    for slot in plugin_chain(cfg, IMPLEMENTED_PLUGINS) {
        let mut step = PluginStep {
            name: slot.name.to_string(),
            order: slot.order,
            enabled: slot.enabled,
            result: StepResult::Disabled,
            detail: String::new(),
            selector: None,
            rule: None,
            selectors: Vec::new(),
            rules: Vec::new(),
            routes: None,
        };
        if !slot.enabled {
            step.detail = slot.reason.unwrap_or("disabled").to_string();
            steps.push(step);
            continue;
        }
        let after_terminal = outcome.is_some();
        if slot.name == "route" {
            let table = match tigateway_routes::compile(&cfg.routes) {
                Ok(t) => t,
                Err(e) => {
                    errs.extend(e);
                    continue;
                }
            };
            if after_terminal {
                step.result = StepResult::NotReached;
                step.detail = "after the plugin that ended the chain".into();
                steps.push(step);
                continue;
            }
            let (rx, found) = table.explain_match(&view);
            match found {
                None => {
                    step.result = StepResult::NoRoute;
                    step.detail = format!("no route matched ({} evaluated)", rx.routes.len());
                }
                Some(m) => {
                    step.result = StepResult::Terminal;
                    let o = route_outcome(cfg, &d, &m);
                    step.detail = o.message.clone();
                    outcome = Some(o);
                }
            }
            step.routes = Some(rx);
            steps.push(step);
            continue;
        }

        let (selectors, rules) = plugin_inputs(cfg, slot.name);
        let table = match PluginTable::compile(&selectors, &rules) {
            Ok(t) => t,
            Err(e) => {
                errs.extend(e);
                continue;
            }
        };
        // After the terminal plugin only response-phase plugins still select (as the data plane does).
        if after_terminal && slot.name != "modifyResponse" {
            step.result = StepResult::NotReached;
            step.detail = "after the plugin that ended the chain".into();
            steps.push(step);
            continue;
        }
        let ex = table.explain(&view);
        step.selectors = ex.selectors;
        step.rules = ex.rules;
        let (sel_pos, choice) = match ex.outcome {
            SelectOutcome::NoSelector => {
                step.result = StepResult::NoSelector;
                step.detail = "no selector matched".into();
                steps.push(step);
                continue;
            }
            SelectOutcome::NoRule { selector } => {
                step.selector = Some(selectors[selector].id.clone());
                step.result = StepResult::NoRule;
                step.detail = format!("selector {:?} matched but none of its rules did", selectors[selector].id);
                steps.push(step);
                continue;
            }
            SelectOutcome::Matched { selector, rule } => (selector, rule),
        };
        let sel = selectors[sel_pos];
        step.selector = Some(sel.id.clone());
        let rule_handle = match choice {
            RuleChoice::Rule(i) => {
                step.rule = Some(rules[i].id.clone());
                rules[i].handle.as_deref()
            }
            RuleChoice::Default => {
                step.rule = Some("default".into());
                None
            }
        };
        let chosen = format!("selector {:?}, rule {:?}", sel.id, step.rule.as_deref().unwrap_or(""));
        match slot.name {
            "divide" | "websocket" => {
                let websocket = slot.name == "websocket";
                if d.upgrade != websocket {
                    step.result = StepResult::Skipped;
                    step.detail = if websocket {
                        format!("{chosen} matched, but websocket takes only upgrade requests")
                    } else {
                        format!("{chosen} matched, but divide leaves websocket upgrades to the websocket plugin")
                    };
                } else {
                    step.result = StepResult::Terminal;
                    let upstreams = selector_upstreams(cfg, sel, websocket);
                    let o = if upstreams.is_empty() {
                        Outcome {
                            kind: OutcomeKind::Respond,
                            status: Some(503),
                            message: format!("{}: {chosen} has no upstreams, the gateway answers 503", slot.name),
                            ..outcome_base()
                        }
                    } else {
                        Outcome {
                            kind: OutcomeKind::Proxy,
                            message: format!("{}: {chosen} proxies to {}", slot.name, upstreams.join(", ")),
                            upstreams,
                            ..outcome_base()
                        }
                    };
                    step.detail = o.message.clone();
                    outcome = Some(Outcome {
                        plugin: Some(slot.name.to_string()),
                        selector: step.selector.clone(),
                        rule: step.rule.clone(),
                        ..o
                    });
                }
            }
            "redirect" => {
                let h: RedirectHandle = parse_handle(rule_handle).unwrap_or_default();
                match h.redirect_uri.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
                    Some(loc) => {
                        let status = h.http_status_code.unwrap_or(302) as u16;
                        step.result = StepResult::Terminal;
                        step.detail = format!("{chosen} redirects ({status}) to {loc}");
                        outcome = Some(Outcome {
                            kind: OutcomeKind::Redirect,
                            status: Some(status),
                            plugin: Some(slot.name.to_string()),
                            selector: step.selector.clone(),
                            rule: step.rule.clone(),
                            location: Some(loc.to_string()),
                            message: step.detail.clone(),
                            ..outcome_base()
                        });
                    }
                    None => {
                        step.result = StepResult::Applied;
                        step.detail = format!("{chosen} matched, but its handle has no redirectURI; the chain goes on");
                    }
                }
            }
            "modifyResponse" => {
                step.result = StepResult::ResponsePhase;
                step.detail = format!("{chosen} edits the response");
            }
            other => {
                step.result = StepResult::Applied;
                step.detail = format!("{chosen} edits the request; the chain goes on");
                if other == "request" {
                    notes.push(format!(
                        "the request plugin ({chosen}) edits headers/query/cookies; those edits are not applied to \
                         the explained request, so later conditions on them may decide differently"
                    ));
                }
            }
        }
        steps.push(step);
    }
    if !errs.is_empty() {
        return Err(ExplainError::InvalidConfig(errs));
    }
    // Plugin rows this build lacks (a ShenYu admin seeds them all): listed so nothing is hidden.
    for p in cfg.plugins.iter().filter(|p| !IMPLEMENTED_PLUGINS.contains(&p.name.as_str())) {
        steps.push(PluginStep {
            name: p.name.clone(),
            order: p.sort.or_else(|| tigateway_model::builtin_plugin_order(&p.name)).unwrap_or(0),
            enabled: false,
            result: StepResult::Disabled,
            detail: "not implemented in this build (it has no enabled selectors, so nothing is skipped)".into(),
            selector: None,
            rule: None,
            selectors: Vec::new(),
            rules: Vec::new(),
            routes: None,
        });
    }
    steps.sort_by_key(|s| s.order);
    let outcome = outcome.unwrap_or_else(|| {
        let shenyu = cfg.server.shenyu_compatible_errors;
        Outcome {
            kind: OutcomeKind::NotFound,
            status: Some(if shenyu { 200 } else { 404 }),
            message: if shenyu {
                "no plugin handled the request: HTTP 200 with code -107 (shenyuCompatibleErrors)".into()
            } else {
                "no plugin handled the request: 404".into()
            },
            ..outcome_base()
        }
    });
    Ok(Explanation {
        request: RequestSummary {
            method: d.method.to_string(),
            path: d.path.clone(),
            query: d.query.clone(),
            host: d.host.clone(),
            client_ip: d.client_ip.to_string(),
            upgrade: d.upgrade,
        },
        plugins: steps,
        outcome,
        notes,
    })
}

fn outcome_base() -> Outcome {
    Outcome {
        kind: OutcomeKind::NotFound,
        status: None,
        plugin: None,
        selector: None,
        rule: None,
        route: None,
        upstreams: Vec::new(),
        location: None,
        message: String::new(),
    }
}

/// What the winning route does: its request filters run (the data plane's own code) on a copy of
/// the request, so a short circuit (RedirectTo, RequestSize, RequestHeaderSize) and the path the
/// upstream gets are reported as they happen.
fn route_outcome(cfg: &Config, d: &Described, m: &tigateway_routes::RouteMatch<'_>) -> Outcome {
    let route = m.route;
    let id = route.id.as_str();
    let base = Outcome { plugin: Some("route".into()), route: Some(id.to_string()), ..outcome_base() };
    let content_length =
        d.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let mut rr = tigateway_routes::RouteRequest {
        method: d.method.clone(),
        path: d.path.clone(),
        query: d.query.clone(),
        headers: d.headers.clone(),
        host: None,
    };
    if let Err(sc) = route.check_request_size(content_length).and_then(|_| route.apply_request(m, &mut rr)) {
        let location = sc.headers.get(http::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let kind = if location.is_some() { OutcomeKind::Redirect } else { OutcomeKind::Respond };
        return Outcome {
            kind,
            status: Some(sc.status.as_u16()),
            message: match &location {
                Some(l) => format!("route {id:?}: a filter redirects ({}) to {l}", sc.status.as_u16()),
                None => format!("route {id:?}: a filter answers {} without calling the upstream", sc.status.as_u16()),
            },
            location,
            ..base
        };
    }
    let target = match &rr.query {
        Some(q) => format!("{}?{q}", rr.path),
        None => rr.path.clone(),
    };
    match &route.target {
        RouteTarget::NoOp => Outcome {
            kind: OutcomeKind::Respond,
            status: Some(route.set_status.map_or(200, |s| s.as_u16())),
            message: format!("route {id:?} (no://op): the gateway answers itself"),
            ..base
        },
        RouteTarget::Url { scheme, authority } => {
            let url = format!("{}://{authority}", scheme_name(*scheme));
            Outcome {
                kind: OutcomeKind::Proxy,
                message: format!("route {id:?} proxies to {url}, which gets {target}"),
                upstreams: vec![url],
                ..base
            }
        }
        RouteTarget::Lb { service } => {
            let upstreams: Vec<String> =
                cfg.services.get(service).map(|v| v.iter().map(|i| i.url.clone()).collect()).unwrap_or_default();
            if upstreams.is_empty() {
                Outcome {
                    kind: OutcomeKind::Respond,
                    status: Some(503),
                    message: format!("route {id:?} goes to lb://{service}, which has no instances: 503"),
                    ..base
                }
            } else {
                Outcome {
                    kind: OutcomeKind::Proxy,
                    message: format!(
                        "route {id:?} proxies to lb://{service} ({}), which gets {target}",
                        upstreams.join(", ")
                    ),
                    upstreams,
                    ..base
                }
            }
        }
    }
}

fn scheme_name(s: tigateway_model::Scheme) -> &'static str {
    use tigateway_model::Scheme::*;
    match s {
        Http => "http",
        Https => "https",
        H2c => "h2c",
        Ws => "ws",
        Wss => "wss",
    }
}

/// The selector's upstreams as divide/websocket read them: DISCOVER_UPSTREAM data for the selector
/// if any, else the selector handle.
fn selector_upstreams(cfg: &Config, sel: &tigateway_model::Selector, websocket: bool) -> Vec<String> {
    let default_protocol = if websocket { "ws://" } else { "http://" };
    let with_protocol = |protocol: Option<&str>, url: &str| {
        if url.contains("://") {
            url.to_string()
        } else {
            format!("{}{url}", protocol.map(str::trim).filter(|p| !p.is_empty()).unwrap_or(default_protocol))
        }
    };
    if let Some(d) = cfg.discovery_upstreams.iter().find(|d| d.selector_id == sel.id) {
        return d.upstream_data_list.iter().map(|u| with_protocol(u.protocol.as_deref(), &u.url)).collect();
    }
    parse_divide_upstreams(sel.handle.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|u| with_protocol(u.protocol.as_deref(), &u.upstream_url))
        .collect()
}

/// Parses the CLI's request line (`GET /path?q`, or just `/path`) and `Name: value` headers.
pub fn request_from_cli(
    line: &str,
    headers: &[String],
    query: Option<&str>,
    body: Option<&str>,
    client_ip: Option<&str>,
) -> Result<ExplainRequest, ExplainError> {
    let mut parts = line.split_whitespace();
    let (method, path) = match (parts.next(), parts.next(), parts.next()) {
        (Some(p), None, None) if p.starts_with('/') => (None, p),
        (Some(m), Some(p), None) => (Some(m.to_string()), p),
        _ => return Err(bad("request", format!("expected 'METHOD /path' or '/path', got {line:?}"))),
    };
    let mut map = serde_json::Map::new();
    for h in headers {
        let (name, value) =
            h.split_once(':').ok_or_else(|| bad("headers", format!("expected 'Name: value', got {h:?}")))?;
        let value = serde_json::Value::String(value.trim().to_string());
        match map.get_mut(name.trim()) {
            Some(serde_json::Value::Array(a)) => a.push(value),
            Some(prev) => *prev = serde_json::Value::Array(vec![prev.clone(), value]),
            None => {
                map.insert(name.trim().to_string(), value);
            }
        }
    }
    Ok(ExplainRequest {
        method,
        path: path.to_string(),
        query: query.map(str::to_string),
        headers: map,
        cookies: serde_json::Map::new(),
        client_ip: client_ip.map(str::to_string),
        peer_ip: None,
        body: body.map(str::to_string),
    })
}

#[cfg(test)]
mod tests;
