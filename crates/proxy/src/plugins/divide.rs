//! `divide` (HTTP proxy) and `websocket`: the selector's upstream list, the rule's balancer, timeout,
//! retries and size limits. Upstreams come from DISCOVER_UPSTREAM data for the selector (ShenYu 2.6+)
//! or, failing that, from the selector handle (older admins and hand-written files).

use std::time::Duration;

use tigateway_model::handle::{parse_divide_upstreams, parse_handle, DivideRuleHandle, WebSocketRuleHandle};
use tigateway_upstream::UpstreamSpec;

use super::*;
use crate::error::{ErrorKind, GatewayError};

pub struct Factory {
    pub websocket: bool,
}

struct Compiled {
    upstreams: Arc<UpstreamSet>,
    timeout: Duration,
    retries: u32,
    header_max: u64,
    request_max: u64,
    hash_key: HashKey,
}

struct Divide {
    websocket: bool,
    rules: Vec<Compiled>,
    /// Per selector: the default rule used for `continued = false`.
    defaults: Vec<Compiled>,
}

fn selector_specs(input: &BuildInput<'_>, s: &Selector, websocket: bool) -> Result<Vec<UpstreamSpec>, String> {
    let default_protocol = if websocket { "ws://" } else { "http://" };
    if let Some(d) = input.config.discovery_upstreams.iter().find(|d| d.selector_id == s.id) {
        return d
            .upstream_data_list
            .iter()
            .map(|u| {
                let mut u = u.clone();
                if u.protocol.as_deref().is_none_or(|p| p.trim().is_empty()) {
                    u.protocol = Some(default_protocol.to_string());
                }
                UpstreamSpec::from_discovery(&u)
            })
            .collect();
    }
    parse_divide_upstreams(s.handle.as_deref())?
        .into_iter()
        .map(|mut u| {
            if u.protocol.as_deref().is_none_or(|p| p.trim().is_empty()) && !u.upstream_url.contains("://") {
                u.protocol = Some(default_protocol.to_string());
            }
            UpstreamSpec::from_divide(&u)
        })
        .collect()
}

impl PluginFactory for Factory {
    fn name(&self) -> &'static str {
        if self.websocket {
            "websocket"
        } else {
            "divide"
        }
    }

    fn build(&self, input: &BuildInput<'_>) -> Result<Box<dyn Plugin>, Vec<ValidationError>> {
        let mut errs = Vec::new();
        let mut specs: HashMap<&str, Vec<UpstreamSpec>> = HashMap::new();
        for s in input.selectors {
            match selector_specs(input, s, self.websocket) {
                Ok(v) => {
                    specs.insert(s.id.as_str(), v);
                }
                Err(e) => errs.push(ValidationError::new(format!("selector {:?}.handle", s.id), e)),
            }
        }
        // One upstream set per (selector, balancer): rules of a selector share health and state.
        let mut sets: HashMap<(String, String), Arc<UpstreamSet>> = HashMap::new();
        let mut set_for = |selector: &str, lb: &str| -> Result<Arc<UpstreamSet>, String> {
            let key = (selector.to_string(), lb.to_string());
            if let Some(s) = sets.get(&key) {
                return Ok(s.clone());
            }
            let list = specs.get(selector).cloned().unwrap_or_default();
            let set = Arc::new(UpstreamSet::new(input.registry, list, lb)?);
            sets.insert(key, set.clone());
            Ok(set)
        };
        let websocket = self.websocket;
        let mut compile = |handle: Option<&str>, selector: &str| -> Result<Compiled, String> {
            let (lb, timeout, retries, header_max, request_max, hash) = if websocket {
                let h: WebSocketRuleHandle = parse_handle(handle)?;
                (h.load_balance, h.timeout, h.retry, 0, 0, None)
            } else {
                let h: DivideRuleHandle = parse_handle(handle)?;
                (h.load_balance, h.timeout, h.retry, h.header_max_size, h.request_max_size, h.hash_key)
            };
            Ok(Compiled {
                upstreams: set_for(selector, &lb)?,
                timeout: Duration::from_millis(timeout.max(1)),
                retries: retries.min(16) as u32,
                header_max,
                request_max,
                hash_key: HashKey::parse(hash.as_deref())?,
            })
        };
        let mut rules = Vec::with_capacity(input.rules.len());
        for r in input.rules {
            match compile(r.handle.as_deref(), &r.selector_id) {
                Ok(c) => rules.push(c),
                Err(e) => errs.push(ValidationError::new(format!("rule {:?}.handle", r.id), e)),
            }
        }
        let mut defaults = Vec::with_capacity(input.selectors.len());
        for s in input.selectors {
            match compile(None, &s.id) {
                Ok(c) => defaults.push(c),
                Err(e) => errs.push(ValidationError::new(format!("selector {:?}", s.id), e)),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Box::new(Divide { websocket, rules, defaults }))
    }
}

impl Plugin for Divide {
    fn upstream_sets(&self) -> Vec<Arc<UpstreamSet>> {
        self.rules.iter().chain(&self.defaults).map(|c| c.upstreams.clone()).collect()
    }

    fn on_request<'s>(&'s self, ctx: &mut Ctx, m: Option<&Matched>) -> Flow<'s> {
        // ShenYu: divide skips websocket upgrades, the websocket plugin takes only them.
        if ctx.is_upgrade != self.websocket {
            return Flow::Continue;
        }
        let Some(m) = m else { return Flow::Continue };
        let c = match m.rule {
            tigateway_matcher::select::RuleChoice::Rule(i) => &self.rules[i],
            tigateway_matcher::select::RuleChoice::Default => &self.defaults[m.selector],
        };
        if c.header_max > 0 {
            let total: u64 = ctx.headers.values().map(|v| v.len() as u64).sum();
            if total > c.header_max {
                return Flow::Respond(
                    GatewayError::new(ErrorKind::HeaderTooLarge, "request header fields too large").into_response(),
                );
            }
        }
        Flow::Proxy(ProxyPlan {
            upstreams: &c.upstreams,
            response_timeout: c.timeout,
            connect_timeout: None,
            retries: c.retries,
            hash_key: &c.hash_key,
            max_body: (c.request_max > 0).then_some(c.request_max),
            route: None,
        })
    }
}
