//! The plugin trait, its factories, and the built-in plugins.
//!
//! A plugin compiles its handles once per snapshot (in its factory's `build`) and then only reads
//! them per request. Phases default to no-ops. Request phases are synchronous and return a [`Flow`];
//! the one asynchronous step — calling an upstream — is described by a [`ProxyPlan`] and executed by
//! the shared forwarder, so every terminal plugin gets the same timeouts, retries and health.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, Response, StatusCode};
use tigateway_model::{Config, Plugin as PluginRow, Rule, Selector, ValidationError};
use tigateway_routes::RouteMatch;
use tigateway_upstream::{Registry, UpstreamSet};

use crate::body::ProxyBody;
use crate::context::{Ctx, Matched};

mod context_path;
mod divide;
mod modify_response;
mod redirect;
mod request;
mod rewrite;
mod route;

pub enum Flow<'s> {
    Continue,
    Respond(Response<ProxyBody>),
    Proxy(ProxyPlan<'s>),
}

/// What the `hash` balancer hashes.
#[derive(Debug, Clone)]
pub enum HashKey {
    ClientIp,
    Header(HeaderName),
    Cookie(String),
}

impl HashKey {
    pub fn parse(spec: Option<&str>) -> Result<HashKey, String> {
        match spec.map(str::trim) {
            None | Some("") | Some("ip") => Ok(HashKey::ClientIp),
            Some(s) => {
                if let Some(h) = s.strip_prefix("header:") {
                    HeaderName::from_bytes(h.trim().as_bytes())
                        .map(HashKey::Header)
                        .map_err(|_| format!("bad header name in hashKey {s:?}"))
                } else if let Some(c) = s.strip_prefix("cookie:") {
                    Ok(HashKey::Cookie(c.trim().to_string()))
                } else {
                    Err(format!("hashKey must be ip, header:NAME or cookie:NAME, got {s:?}"))
                }
            }
        }
    }
}

/// How to call the upstream: the forwarder executes it.
pub struct ProxyPlan<'s> {
    pub upstreams: &'s UpstreamSet,
    pub response_timeout: Duration,
    pub connect_timeout: Option<Duration>,
    /// Extra attempts on connect failure (any method) or timeout (idempotent, replayable requests).
    pub retries: u32,
    pub hash_key: &'s HashKey,
    /// Body limit for this request, overriding the server's.
    pub max_body: Option<u64>,
    /// The Spring-style route that chose this upstream (its response filters run on the answer).
    pub route: Option<RouteMatch<'s>>,
}

pub trait Plugin: Send + Sync {
    /// Runs when the plugin's selector table chose a selector and rule (or always, for plugins
    /// without a table).
    fn on_request<'s>(&'s self, _ctx: &mut Ctx, _m: Option<&Matched>) -> Flow<'s> {
        Flow::Continue
    }
    /// Whether `on_response` must run for requests this plugin matched.
    fn has_response_phase(&self) -> bool {
        false
    }
    fn on_response(&self, _m: Option<&Matched>, _status: &mut StatusCode, _headers: &mut HeaderMap) {}
    /// Upstream sets this plugin sends to (for active health checks).
    fn upstream_sets(&self) -> Vec<Arc<UpstreamSet>> {
        Vec::new()
    }
}

/// What a factory gets to build its plugin for one snapshot.
pub struct BuildInput<'a> {
    pub row: Option<&'a PluginRow>,
    pub selectors: &'a [&'a Selector],
    pub rules: &'a [&'a Rule],
    pub config: &'a Config,
    pub registry: &'a Arc<Registry>,
    pub services: &'a HashMap<String, Arc<UpstreamSet>>,
}

pub trait PluginFactory: Send + Sync {
    fn name(&self) -> &'static str;
    /// False for plugins that route by themselves (Spring routes) instead of through selectors.
    fn uses_selectors(&self) -> bool {
        true
    }
    fn build(&self, input: &BuildInput<'_>) -> Result<Box<dyn Plugin>, Vec<ValidationError>>;
}

/// All built-in plugin factories.
pub fn factories() -> Vec<Box<dyn PluginFactory>> {
    vec![
        Box::new(context_path::Factory),
        Box::new(rewrite::Factory),
        Box::new(redirect::Factory),
        Box::new(request::Factory),
        Box::new(route::Factory),
        Box::new(divide::Factory { websocket: false }),
        Box::new(divide::Factory { websocket: true }),
        Box::new(modify_response::Factory),
    ]
}

/// Compiles one typed handle per rule (plus the default for `continued = false` selectors).
pub(crate) fn compile_rules<T>(
    input: &BuildInput<'_>,
    compile: impl Fn(Option<&str>, &str) -> Result<T, String>,
) -> Result<(Vec<T>, T), Vec<ValidationError>> {
    let mut errs = Vec::new();
    let mut out = Vec::with_capacity(input.rules.len());
    for r in input.rules {
        match compile(r.handle.as_deref(), &r.selector_id) {
            Ok(h) => out.push(h),
            Err(e) => errs.push(ValidationError::new(format!("rule {:?}.handle", r.id), e)),
        }
    }
    let default = compile(None, "").map_err(|e| vec![ValidationError::new("default rule", e)])?;
    if errs.is_empty() {
        Ok((out, default))
    } else {
        Err(errs)
    }
}

/// The handle a match chose: the rule's, or the plugin's default rule.
pub(crate) fn chosen<'a, T>(rules: &'a [T], default: &'a T, m: Option<&Matched>) -> &'a T {
    match m.map(|m| m.rule) {
        Some(tigateway_matcher::select::RuleChoice::Rule(i)) => &rules[i],
        _ => default,
    }
}

/// ShenYu's `percentage`: apply with that chance (None → always).
pub(crate) fn roll(percentage: Option<u64>) -> bool {
    match percentage {
        None => true,
        Some(p) if p >= 100 => true,
        Some(0) => false,
        Some(p) => rand::random::<u64>() % 100 < p,
    }
}
