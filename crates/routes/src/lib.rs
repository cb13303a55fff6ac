//! Spring Cloud Gateway routes, compiled once per snapshot into a [`RouteTable`].
//!
//! SCG semantics are kept: the first route by (`order`, position in the list) whose predicates all
//! match wins, and only that route's filters apply. A prefix index over each route's `Path=`
//! literal prefix keeps a lookup to the plausible candidates; routes without a `Path=` predicate
//! are candidates for every request. Everything that can be parsed or compiled is, in [`compile`];
//! a request only evaluates and edits.

mod filter;
mod host;
mod predicate;
mod template;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, StatusCode};
use smallvec::SmallVec;
use tigateway_matcher::index::PrefixIndex;
use tigateway_matcher::RequestView;
use tigateway_model::spring::{self, Predicate, RouteUri};
use tigateway_model::{RouteDefinition, ValidationError};

pub use tigateway_model::spring::RetryConfig as RetryPolicy;
pub use tigateway_model::Scheme;

use filter::{Compiled, RequestFilter, ResponseFilter};
use predicate::{CompiledPredicate, EvalCtx};

/// Where the winning route sends the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// A fixed upstream; `authority` always carries a port.
    Url { scheme: Scheme, authority: String },
    /// `lb://service`: an instance picked from discovery.
    Lb { service: String },
    /// `no://op`: the gateway answers itself.
    NoOp,
}

/// One route, ready to evaluate. Public fields are what the proxy acts on; the predicates and
/// filters stay private and are applied through [`CompiledRoute::apply_request`] and
/// [`CompiledRoute::apply_response`].
#[derive(Debug, Clone)]
pub struct CompiledRoute {
    pub id: String,
    pub order: i64,
    /// Index in the route list the table was compiled from.
    pub position: usize,
    pub target: RouteTarget,
    /// `metadata.response-timeout`; `None` when absent or negative.
    pub response_timeout: Option<Duration>,
    /// A negative `metadata.response-timeout`: SCG's way to switch the global timeout off.
    pub disable_response_timeout: bool,
    pub connect_timeout: Option<Duration>,
    /// `RequestSize` limit in bytes (checked against Content-Length, see
    /// [`CompiledRoute::check_request_size`]).
    pub max_body: Option<u64>,
    pub retry: Option<RetryPolicy>,
    /// `PreserveHostHeader` or `SetRequestHostHeader` is present: send [`RouteRequest::host`]
    /// (or the client's Host) upstream instead of the upstream's authority.
    pub preserve_host: bool,
    /// The status `SetStatus` leaves on responses (the first declared one, which acts last).
    pub set_status: Option<StatusCode>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    predicates: Vec<CompiledPredicate>,
    /// `Name=arg,arg` per predicate, for explanations.
    predicate_text: Vec<Box<str>>,
    request_filters: Vec<RequestFilter>,
    /// In application order, i.e. reverse declared order.
    response_filters: Vec<ResponseFilter>,
}

/// The winning route and the URI template variables its `Path=`/`Host=` predicates captured.
#[derive(Debug, Clone)]
pub struct RouteMatch<'a> {
    pub route: &'a CompiledRoute,
    pub vars: Vec<(String, String)>,
}

/// The request as it will be sent upstream; request filters edit it in place.
#[derive(Debug, Clone)]
pub struct RouteRequest {
    pub method: http::Method,
    /// Raw (still percent-encoded) path.
    pub path: String,
    /// Raw query string without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// Host to send upstream when `SetRequestHostHeader`/`PreserveHostHeader` decide it; left
    /// as given otherwise.
    pub host: Option<String>,
}

/// A response the gateway gives itself, without calling the upstream (`RedirectTo`,
/// `RequestHeaderSize`, `RequestSize`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShortCircuit {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What response filters need to know about the client's request.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInfo<'a> {
    /// The client's Host header (with port, as sent).
    pub request_host: Option<&'a str>,
    /// The client's request path, before any filter rewrote it.
    pub request_path: &'a str,
}

#[derive(Debug, Clone)]
struct WeightGroup {
    /// Routes (table index) in definition order with the upper end of their range in [0, 1).
    members: Vec<(u32, f64)>,
}

impl WeightGroup {
    /// SCG's `WeightCalculatorWebFilter`: the route whose range holds `r`.
    fn pick(&self, r: f64) -> Option<u32> {
        let mut lo = 0.0;
        for &(route, hi) in &self.members {
            if r >= lo && r < hi {
                return Some(route);
            }
            lo = hi;
        }
        None
    }
}

/// All routes of a snapshot, sorted by (`order`, position), with their prefix index.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
    index: PrefixIndex,
    groups: Vec<WeightGroup>,
    uses_clock: bool,
}

/// Compiles routes into a table, reporting every problem with its path (`routes[2].filters[0]`).
pub fn compile(routes: &[RouteDefinition]) -> Result<RouteTable, Vec<ValidationError>> {
    let mut errs = Vec::new();
    let mut compiled = Vec::with_capacity(routes.len());
    let mut group_ids: HashMap<String, usize> = HashMap::new();
    // (route position, group, weight)
    let mut weights: Vec<(usize, usize, u32)> = Vec::new();
    for (i, def) in routes.iter().enumerate() {
        let path = format!("routes[{i}]");
        if let Some(route) = compile_route(def, i, &path, &mut group_ids, &mut weights, &mut errs) {
            compiled.push(route);
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    compiled.sort_by_key(|r| (r.order, r.position));
    let mut table_index = vec![0u32; routes.len()];
    for (t, r) in compiled.iter().enumerate() {
        table_index[r.position] = t as u32;
    }

    let mut groups = vec![WeightGroup { members: Vec::new() }; group_ids.len()];
    let mut raw: Vec<Vec<(u32, u32)>> = vec![Vec::new(); group_ids.len()];
    for &(pos, g, w) in &weights {
        raw[g].push((table_index[pos], w));
    }
    for (g, members) in raw.into_iter().enumerate() {
        let total: u64 = members.iter().map(|(_, w)| *w as u64).sum();
        let mut upper = 0.0;
        for (route, w) in members {
            upper += w as f64 / total as f64;
            groups[g].members.push((route, upper));
        }
    }

    let mut builder = PrefixIndex::builder();
    for (t, r) in compiled.iter().enumerate() {
        match r.predicates.iter().find_map(|p| p.path_prefixes()) {
            Some(prefixes) => prefixes.for_each(|p| builder.insert(p, t as u32)),
            None => builder.insert_fallback(t as u32),
        }
    }
    let uses_clock = compiled.iter().any(|r| r.predicates.iter().any(CompiledPredicate::uses_clock));
    Ok(RouteTable { routes: compiled, index: builder.build(), groups, uses_clock })
}

fn compile_route(
    def: &RouteDefinition,
    position: usize,
    path: &str,
    group_ids: &mut HashMap<String, usize>,
    weights: &mut Vec<(usize, usize, u32)>,
    errs: &mut Vec<ValidationError>,
) -> Option<CompiledRoute> {
    let before = errs.len();
    let target = match spring::parse_route_uri(&def.uri) {
        Ok(RouteUri::Lb(service)) => Some(RouteTarget::Lb { service }),
        Ok(RouteUri::Url { scheme, authority }) => Some(RouteTarget::Url { scheme, authority }),
        Ok(RouteUri::NoOp) => Some(RouteTarget::NoOp),
        Err(e) => {
            errs.push(ValidationError::new(format!("{path}.uri"), e));
            None
        }
    };

    let mut predicates = Vec::new();
    let mut predicate_text = Vec::new();
    let mut captured: BTreeSet<String> = BTreeSet::new();
    for (j, d) in def.predicates.iter().enumerate() {
        let at = format!("{path}.predicates[{j}]");
        let parsed = match spring::parse_predicate(d) {
            Ok(p) => p,
            Err(e) => {
                errs.push(ValidationError::new(at, e));
                continue;
            }
        };
        match &parsed {
            Predicate::Path { patterns, .. } | Predicate::Host { patterns } => {
                captured.extend(patterns.iter().flat_map(|p| template::pattern_vars(p)));
            }
            Predicate::Weight { group, weight } => {
                let next = group_ids.len();
                let g = *group_ids.entry(group.clone()).or_insert(next);
                weights.push((position, g, *weight));
            }
            _ => {}
        }
        let mut group_of = |name: &str| group_ids.get(name).copied().unwrap_or(usize::MAX);
        match CompiledPredicate::compile(&parsed, &mut group_of) {
            Ok(c) => {
                predicates.push(c);
                predicate_text.push(format!("{}={}", d.name, d.positional().join(",")).into_boxed_str());
            }
            Err(e) => errs.push(ValidationError::new(at, format!("predicate {:?}: {e}", d.name))),
        }
    }

    let mut route = CompiledRoute {
        id: def.id.clone(),
        order: def.order,
        position,
        target: target.unwrap_or(RouteTarget::Lb { service: String::new() }),
        response_timeout: None,
        disable_response_timeout: false,
        connect_timeout: None,
        max_body: None,
        retry: None,
        preserve_host: false,
        set_status: None,
        metadata: def.metadata.clone(),
        predicates,
        predicate_text,
        request_filters: Vec::new(),
        response_filters: Vec::new(),
    };

    for (j, d) in def.filters.iter().enumerate() {
        let at = format!("{path}.filters[{j}]");
        let parsed = match spring::parse_filter(d) {
            Ok(f) => f,
            Err(e) => {
                errs.push(ValidationError::new(at, e));
                continue;
            }
        };
        let c = match Compiled::compile(&parsed) {
            Ok(c) => c,
            Err(e) => {
                errs.push(ValidationError::new(at, format!("filter {:?}: {e}", d.name)));
                continue;
            }
        };
        if let Some(missing) = c.template_vars().into_iter().find(|v| !captured.contains(*v)) {
            errs.push(ValidationError::new(
                at,
                format!(
                    "filter {:?} uses {{{missing}}}, which no Path or Host predicate of this route captures",
                    d.name
                ),
            ));
            continue;
        }
        match c {
            Compiled::Request(f) => {
                if matches!(f, RequestFilter::PreserveHost | RequestFilter::SetHost(_)) {
                    route.preserve_host = true;
                }
                route.request_filters.push(f);
            }
            Compiled::Response(f) => {
                if let ResponseFilter::SetStatus(s) = &f {
                    route.set_status.get_or_insert(*s);
                }
                route.response_filters.push(f);
            }
            Compiled::MaxBody(n) => route.max_body = Some(n),
            Compiled::Retry(r) => route.retry = Some(r),
        }
    }
    route.response_filters.reverse();

    match spring::metadata_millis(&def.metadata, "response-timeout") {
        Ok(Some(ms)) if ms < 0 => route.disable_response_timeout = true,
        Ok(Some(ms)) => route.response_timeout = Some(Duration::from_millis(ms as u64)),
        Ok(None) => {}
        Err(e) => errs.push(ValidationError::new(format!("{path}.metadata.response-timeout"), e)),
    }
    match spring::metadata_millis(&def.metadata, "connect-timeout") {
        Ok(Some(ms)) if ms < 0 => errs.push(ValidationError::new(
            format!("{path}.metadata.connect-timeout"),
            format!("must not be negative, got {ms}"),
        )),
        Ok(Some(ms)) => route.connect_timeout = Some(Duration::from_millis(ms as u64)),
        Ok(None) => {}
        Err(e) => errs.push(ValidationError::new(format!("{path}.metadata.connect-timeout"), e)),
    }
    (errs.len() == before).then_some(route)
}

impl RouteTable {
    /// The winning route for `req`, if any (SCG: first by `order`, then position, whose
    /// predicates all match).
    pub fn find(&self, req: &RequestView<'_>) -> Option<RouteMatch<'_>> {
        let now = if self.uses_clock { Utc::now() } else { DateTime::<Utc>::UNIX_EPOCH };
        self.find_at(req, now, &mut || rand::random::<f64>())
    }

    /// [`RouteTable::find`] with the clock and the weight-group random source supplied; `random`
    /// is called at most once per weight group per request and must return values in [0, 1).
    pub fn find_at(
        &self,
        req: &RequestView<'_>,
        now: DateTime<Utc>,
        random: &mut dyn FnMut() -> f64,
    ) -> Option<RouteMatch<'_>> {
        self.run(req, now, random, &mut ())
    }

    /// The same search as [`RouteTable::find`], recording every route it evaluated and why each
    /// one before the winner failed.
    pub fn explain(&self, req: &RequestView<'_>) -> RouteExplanation {
        self.explain_match(req).0
    }

    /// [`RouteTable::explain`] with the clock and random source supplied (see [`RouteTable::find_at`]).
    pub fn explain_at(
        &self,
        req: &RequestView<'_>,
        now: DateTime<Utc>,
        random: &mut dyn FnMut() -> f64,
    ) -> RouteExplanation {
        self.explain_match_at(req, now, random).0
    }

    /// [`RouteTable::explain`] plus the match itself, so a caller can run the winner's filters.
    pub fn explain_match(&self, req: &RequestView<'_>) -> (RouteExplanation, Option<RouteMatch<'_>>) {
        let now = if self.uses_clock { Utc::now() } else { DateTime::<Utc>::UNIX_EPOCH };
        self.explain_match_at(req, now, &mut || rand::random::<f64>())
    }

    fn explain_match_at(
        &self,
        req: &RequestView<'_>,
        now: DateTime<Utc>,
        random: &mut dyn FnMut() -> f64,
    ) -> (RouteExplanation, Option<RouteMatch<'_>>) {
        let mut rec = RouteRecorder::default();
        let found = self.run(req, now, random, &mut rec);
        let matched = found.as_ref().map(|m| RouteHit {
            id: m.route.id.clone(),
            position: m.route.position,
            vars: m.vars.iter().cloned().collect(),
        });
        (RouteExplanation { matched, routes: rec.routes }, found)
    }

    /// One implementation for the data plane (`S = ()`, compiled down to the plain loop) and
    /// for explanations.
    fn run<S: RouteSink>(
        &self,
        req: &RequestView<'_>,
        now: DateTime<Utc>,
        random: &mut dyn FnMut() -> f64,
        sink: &mut S,
    ) -> Option<RouteMatch<'_>> {
        let mut candidates: SmallVec<[u32; 16]> = SmallVec::new();
        self.index.candidates(req.path, &mut candidates);
        let mut chosen: SmallVec<[Option<Option<u32>>; 4]> = SmallVec::from_elem(None, self.groups.len());
        let mut vars = Vec::new();
        let mut choose = |g: usize| -> Option<u32> {
            let group = self.groups.get(g)?;
            *chosen[g].get_or_insert_with(|| group.pick(random()))
        };
        let mut winner = None;
        for &t in &candidates {
            let route = &self.routes[t as usize];
            vars.clear();
            let mut ctx = EvalCtx { now, chosen: &mut choose, route: t };
            let failed = route.predicates.iter().position(|p| !p.test(req, &mut ctx, &mut vars));
            if S::ON {
                sink.record(route, true, failed, req, &mut ctx);
            }
            if failed.is_none() {
                winner = Some(t);
                break;
            }
        }
        if S::ON {
            // Routes the index ruled out cannot match this path; evaluate the ones ordered before
            // the winner anyway, to name their failing predicate.
            let end = winner.map_or(self.routes.len(), |w| w as usize);
            for t in 0..end as u32 {
                if candidates.contains(&t) {
                    continue;
                }
                let route = &self.routes[t as usize];
                let mut scratch = Vec::new();
                let mut ctx = EvalCtx { now, chosen: &mut choose, route: t };
                let failed = route.predicates.iter().position(|p| !p.test(req, &mut ctx, &mut scratch));
                sink.record(route, false, failed, req, &mut ctx);
            }
        }
        winner.map(|t| RouteMatch { route: &self.routes[t as usize], vars })
    }

    /// Routes in evaluation order.
    pub fn routes(&self) -> &[CompiledRoute] {
        &self.routes
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Receives each evaluated route; `()` is the data plane's no-op.
trait RouteSink {
    const ON: bool;
    fn record(
        &mut self,
        route: &CompiledRoute,
        candidate: bool,
        failed: Option<usize>,
        req: &RequestView<'_>,
        ctx: &mut EvalCtx<'_>,
    );
}

impl RouteSink for () {
    const ON: bool = false;
    #[inline(always)]
    fn record(&mut self, _: &CompiledRoute, _: bool, _: Option<usize>, _: &RequestView<'_>, _: &mut EvalCtx<'_>) {}
}

#[derive(Default)]
struct RouteRecorder {
    routes: Vec<RouteTrace>,
}

impl RouteSink for RouteRecorder {
    const ON: bool = true;
    fn record(
        &mut self,
        route: &CompiledRoute,
        candidate: bool,
        failed: Option<usize>,
        req: &RequestView<'_>,
        ctx: &mut EvalCtx<'_>,
    ) {
        let failed = failed.map(|i| FailedPredicate {
            index: i,
            text: route.predicate_text[i].to_string(),
            actual: route.predicates[i].actual(req, ctx),
        });
        self.routes.push(RouteTrace {
            id: route.id.clone(),
            order: route.order,
            position: route.position,
            uri: route_uri_text(&route.target),
            candidate,
            matched: failed.is_none(),
            failed,
        });
    }
}

fn route_uri_text(t: &RouteTarget) -> String {
    match t {
        RouteTarget::Url { scheme, authority } => {
            let name = match scheme {
                Scheme::Http => "http",
                Scheme::Https => "https",
                Scheme::H2c => "h2c",
                Scheme::Ws => "ws",
                Scheme::Wss => "wss",
            };
            format!("{name}://{authority}")
        }
        RouteTarget::Lb { service } => format!("lb://{service}"),
        RouteTarget::NoOp => "no://op".to_string(),
    }
}

/// A predicate that failed, with what the request offered it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedPredicate {
    /// Position in the route's `predicates`.
    pub index: usize,
    /// `Name=arg,arg` as configured.
    pub text: String,
    pub actual: Option<String>,
}

/// One route the search evaluated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTrace {
    pub id: String,
    pub order: i64,
    /// Position in the configured route list.
    pub position: usize,
    pub uri: String,
    /// False when the prefix index ruled the route out for this path (it could not match); it
    /// is evaluated for the explanation only.
    pub candidate: bool,
    pub matched: bool,
    pub failed: Option<FailedPredicate>,
}

/// The winning route of an explanation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteHit {
    pub id: String,
    pub position: usize,
    /// URI template variables its Path/Host predicates captured.
    pub vars: std::collections::BTreeMap<String, String>,
}

/// What [`RouteTable::explain`] saw: routes in evaluation order (by `order`, then position) up to
/// the winner, then the ones the index excluded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteExplanation {
    pub matched: Option<RouteHit>,
    pub routes: Vec<RouteTrace>,
}

// `ShortCircuit` is returned by value on purpose: it is the rare path, and the proxy turns it
// straight into a response.
#[allow(clippy::result_large_err)]
impl CompiledRoute {
    /// Applies the request filters in declared order; `Err` is a response to send instead of
    /// calling the upstream.
    pub fn apply_request(&self, m: &RouteMatch<'_>, req: &mut RouteRequest) -> Result<(), ShortCircuit> {
        for f in &self.request_filters {
            f.apply(&m.vars, req)?;
        }
        Ok(())
    }

    /// Applies the response filters (in SCG's order: last declared first).
    pub fn apply_response(
        &self,
        m: &RouteMatch<'_>,
        status: &mut StatusCode,
        headers: &mut HeaderMap,
        info: &ResponseInfo<'_>,
    ) {
        for f in &self.response_filters {
            f.apply(&m.vars, status, headers, info);
        }
    }

    /// SCG's `RequestSize`: a declared Content-Length above the limit is refused with 413 and an
    /// `errorMessage` header; a body without Content-Length is the proxy's to cap while streaming.
    pub fn check_request_size(&self, content_length: Option<u64>) -> Result<(), ShortCircuit> {
        match (self.max_body, content_length) {
            (Some(limit), Some(len)) if len > limit => {
                let mut headers = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&filter::request_size_message(len, limit)) {
                    headers.insert("errormessage", v);
                }
                Err(ShortCircuit { status: StatusCode::PAYLOAD_TOO_LARGE, headers, body: Bytes::new() })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
