//! `route`: Spring Cloud Gateway style routes. The first matching route by `order` wins and only
//! its filters apply; then the request goes to the route's `uri` (a URL or `lb://service`).

use tigateway_routes::{RouteRequest, RouteTable, RouteTarget};
use tigateway_upstream::UpstreamSpec;

use super::*;

pub struct Factory;

struct RoutePlugin {
    table: RouteTable,
    /// Upstream set per route, indexed by the route's position in the config list.
    sets: Vec<Arc<UpstreamSet>>,
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
        let table = tigateway_routes::compile(&input.config.routes)?;
        let mut by_position: Vec<Option<Arc<UpstreamSet>>> = vec![None; input.config.routes.len()];
        let mut errs = Vec::new();
        for r in table.routes() {
            let i = r.position;
            let set = match &r.target {
                // An unknown service is not an error: instances come and go with discovery, and
                // until some exist the route answers 503.
                RouteTarget::Lb { service } => match input.services.get(service) {
                    Some(s) => Ok(s.clone()),
                    None => UpstreamSet::new(input.registry, Vec::new(), "roundRobin").map(Arc::new),
                },
                RouteTarget::NoOp => UpstreamSet::new(input.registry, Vec::new(), "roundRobin").map(Arc::new),
                RouteTarget::Url { scheme, authority } => {
                    let spec = UpstreamSpec::from_url(&format!("{}://{}", scheme_name(*scheme), authority), 1);
                    spec.and_then(|s| UpstreamSet::new(input.registry, vec![s], "roundRobin")).map(Arc::new)
                }
            };
            match set {
                Ok(s) => by_position[i] = Some(s),
                Err(e) => errs.push(ValidationError::new(format!("routes[{i}].uri"), e)),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let sets = by_position.into_iter().map(|s| s.expect("every route compiled")).collect();
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
        self.sets.clone()
    }

    fn on_request<'s>(&'s self, ctx: &mut Ctx, _m: Option<&Matched>) -> Flow<'s> {
        let Some(found) = self.table.find(&ctx.view()) else {
            return Flow::Continue;
        };
        let route = found.route;
        let content_length =
            ctx.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let mut req = RouteRequest {
            method: ctx.method.clone(),
            path: ctx.current_path().to_string(),
            query: ctx.query.take(),
            headers: std::mem::take(&mut ctx.headers),
            host: None,
        };
        let applied = route.check_request_size(content_length).and_then(|_| route.apply_request(&found, &mut req));
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
        if route.target == RouteTarget::NoOp {
            // The route's response filters (SetStatus, AddResponseHeader...) still run on this answer.
            let mut resp = Response::new(ProxyBody::Empty);
            let info = ctx.response_info();
            let (mut status, mut headers) = (resp.status(), std::mem::take(resp.headers_mut()));
            route.apply_response(&found, &mut status, &mut headers, &info);
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            return Flow::Respond(resp);
        }
        let set = &self.sets[route.position];
        Flow::Proxy(ProxyPlan {
            upstreams: set,
            response_timeout: if route.disable_response_timeout {
                Duration::from_secs(24 * 3600)
            } else {
                route.response_timeout.unwrap_or(self.default_timeout)
            },
            connect_timeout: route.connect_timeout,
            retries: self.retries,
            hash_key: &self.hash_key,
            max_body: route.max_body,
            route: Some(found),
        })
    }
}
