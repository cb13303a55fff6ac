//! `route`: Spring Cloud Gateway style routes. The first matching route by `order` wins and only
//! its filters apply; then the request goes to the route's `uri` (a URL or `lb://service`).

use tigateway_routes::{RouteRequest, RouteTable, RouteTarget};
use tigateway_upstream::UpstreamSpec;

use super::*;

pub struct Factory;

struct RoutePlugin {
    table: RouteTable,
    /// Upstream set per route id.
    sets: HashMap<String, Arc<UpstreamSet>>,
    default_timeout: Duration,
    hash_key: HashKey,
    retries: u32,
}

impl PluginFactory for Factory {
    fn name(&self) -> &'static str {
        "route"
    }
    fn uses_selectors(&self) -> bool {
        false
    }
    fn build(&self, input: &BuildInput<'_>) -> Result<Box<dyn Plugin>, Vec<ValidationError>> {
        let table = RouteTable::compile(&input.config.routes)?;
        let mut sets = HashMap::new();
        let mut errs = Vec::new();
        for (i, r) in table.routes().iter().enumerate() {
            let set = match &r.target {
                RouteTarget::Lb { service } => match input.services.get(service) {
                    Some(s) => Ok(s.clone()),
                    None => Err(format!("lb://{service}: no such service")),
                },
                RouteTarget::Url { scheme, authority } => {
                    let spec = UpstreamSpec::from_url(&format!("{}://{}", scheme_name(*scheme), authority), 1);
                    spec.and_then(|s| UpstreamSet::new(input.registry, vec![s], "roundRobin")).map(Arc::new)
                }
            };
            match set {
                Ok(s) => {
                    sets.insert(r.id.clone(), s);
                }
                Err(e) => errs.push(ValidationError::new(format!("routes[{i}].uri"), e)),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let up = &input.config.server.upstream;
        Ok(Box::new(RoutePlugin {
            table,
            sets,
            default_timeout: Duration::from_millis(up.response_timeout_ms),
            hash_key: HashKey::ClientIp,
            retries: up.retries,
        }))
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

impl Plugin for RoutePlugin {
    fn upstream_sets(&self) -> Vec<Arc<UpstreamSet>> {
        self.sets.values().cloned().collect()
    }

    fn on_request<'s>(&'s self, ctx: &mut Ctx, _m: Option<&Matched>) -> Flow<'s> {
        let Some(found) = self.table.find(&ctx.view()) else { return Flow::Continue };
        let route = found.route;
        let mut req = RouteRequest {
            method: ctx.method.clone(),
            path: ctx.current_path().to_string(),
            query: ctx.query.take(),
            headers: std::mem::take(&mut ctx.headers),
            host: None,
        };
        let applied = route.apply_request(&found, &mut req);
        ctx.headers = req.headers;
        ctx.query = req.query;
        ctx.upstream_path = Some(req.path);
        if let Some(h) = req.host {
            ctx.upstream_host = Some(h);
        }
        if route.preserve_host {
            ctx.preserve_host = true;
        }
        if let Err(sc) = applied {
            let mut resp = Response::new(ProxyBody::full(sc.body));
            *resp.status_mut() = sc.status;
            *resp.headers_mut() = sc.headers;
            return Flow::Respond(resp);
        }
        let Some(set) = self.sets.get(&route.id) else { return Flow::Continue };
        Flow::Proxy(ProxyPlan {
            upstreams: set,
            response_timeout: route.response_timeout.unwrap_or(self.default_timeout),
            connect_timeout: route.connect_timeout,
            retries: self.retries,
            hash_key: &self.hash_key,
            max_body: route.max_body,
            route: Some(found),
        })
    }
}
