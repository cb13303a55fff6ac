//! The data plane's side of observability: metric handles resolved per snapshot, what a request
//! records while it runs ([`Observed`]), and the one place that turns it into metrics, an access-log
//! line and debug headers ([`finish`]). Per request this costs a clock read at each end and a few
//! relaxed atomic adds; strings are only copied when the access log is on.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::Response;
use opentelemetry::trace::Span as _;
use opentelemetry_sdk::trace::Span;
use tigateway_matcher::select::RuleChoice;
use tigateway_model::{AccessLogScope, RouteDefinition, Rule, Selector};
use tigateway_observe::metrics::method_class;
use tigateway_observe::{AccessLog, GatewayMetrics, LineDraft, LogTarget, RouteKind, RouteStats};
use tigateway_upstream::{Peer, Registry};

use crate::body::ProxyBody;
use crate::context::Matched;
use crate::snapshot::Snapshot;

/// A selector's or route's metric handle, its `logged` flag, its access-log members and its
/// `X-TiGateway-Route` debug value (`None` when an id cannot be a header value).
pub struct TargetObs {
    pub stats: Arc<RouteStats>,
    pub logged: bool,
    pub log: LogTarget,
    pub route_header: Option<HeaderValue>,
}

fn route_header(text: String) -> Option<HeaderValue> {
    HeaderValue::try_from(text).ok()
}

impl TargetObs {
    pub fn for_routes(m: &GatewayMetrics, routes: &[RouteDefinition]) -> Vec<TargetObs> {
        routes
            .iter()
            .map(|r| TargetObs {
                stats: m.route(RouteKind::Route, &r.id),
                logged: r.metadata.get("logged").and_then(|v| v.as_bool()).unwrap_or(false),
                log: LogTarget::new("route", Some("route"), Some(&r.id), None, None),
                route_header: route_header(format!("route={}", r.id)),
            })
            .collect()
    }
}

/// A rule's `logged` flag, access-log members and debug value (both name its selector too).
pub struct RuleObs {
    pub logged: bool,
    pub log: LogTarget,
    pub route_header: Option<HeaderValue>,
}

/// Per chain entry: handles by selector position, rule ids and flags by rule position, and the
/// log members for the plugin answering on its own.
pub struct EntryObs {
    pub selectors: Vec<TargetObs>,
    pub rules: Vec<RuleObs>,
    pub plugin_log: LogTarget,
    pub plugin_header: Option<HeaderValue>,
}

impl EntryObs {
    pub fn resolve(m: &GatewayMetrics, plugin: &str, selectors: &[&Selector], rules: &[&Rule]) -> EntryObs {
        EntryObs {
            selectors: selectors
                .iter()
                .map(|s| TargetObs {
                    stats: m.route(RouteKind::Selector, &s.id),
                    logged: s.logged,
                    log: LogTarget::new("selector", Some(plugin), None, Some(&s.id), None),
                    route_header: route_header(format!("selector={}", s.id)),
                })
                .collect(),
            rules: rules
                .iter()
                .map(|r| RuleObs {
                    logged: r.logged,
                    log: LogTarget::new("selector", Some(plugin), None, Some(&r.selector_id), Some(&r.id)),
                    route_header: route_header(format!("selector={}; rule={}", r.selector_id, r.id)),
                })
                .collect(),
            plugin_log: LogTarget::new("none", Some(plugin), None, None, None),
            plugin_header: route_header(format!("plugin={plugin}")),
        }
    }
}

/// The log members of a request nothing answered.
static NO_TARGET: std::sync::LazyLock<LogTarget> =
    std::sync::LazyLock::new(|| LogTarget::new("none", None, None, None, None));

static NO_TARGET_HEADER: HeaderValue = HeaderValue::from_static("none");

/// What [`finish`] needs to know about the target that answered, all of it resolved when the
/// snapshot was built.
struct Answered<'a> {
    stats: &'a Arc<RouteStats>,
    logged: bool,
    log: &'a LogTarget,
    route_header: Option<&'a HeaderValue>,
}

/// Which compiled target answered the request.
#[derive(Debug, Clone, Copy, Default)]
pub enum Terminal {
    #[default]
    None,
    Selector {
        entry: u16,
        m: Matched,
    },
    Route {
        position: u32,
    },
    /// A plugin without a selector table answered on its own.
    Plugin {
        entry: u16,
    },
}

/// What a request recorded on its way, read by [`finish`].
#[derive(Default)]
pub struct Observed {
    pub terminal: Terminal,
    pub upstream: Option<Arc<Peer>>,
    pub upstream_time: Option<Duration>,
    pub retries: u32,
    pub bytes_in: u64,
    pub client_ip: Option<IpAddr>,
    /// The access-log record, packed as the request goes; only when the log is on.
    pub log: Option<LineDraft>,
}

fn answered(snap: &Snapshot, t: Terminal) -> Answered<'_> {
    match t {
        Terminal::Selector { entry, m } => {
            let sel = &snap.chain[entry as usize].obs.selectors[m.selector];
            match m.rule {
                RuleChoice::Rule(i) => {
                    let r = &snap.chain[entry as usize].obs.rules[i];
                    Answered {
                        stats: &sel.stats,
                        logged: sel.logged || r.logged,
                        log: &r.log,
                        route_header: r.route_header.as_ref(),
                    }
                }
                RuleChoice::Default => Answered {
                    stats: &sel.stats,
                    logged: sel.logged,
                    log: &sel.log,
                    route_header: sel.route_header.as_ref(),
                },
            }
        }
        Terminal::Route { position } => {
            let r = &snap.route_obs[position as usize];
            Answered { stats: &r.stats, logged: r.logged, log: &r.log, route_header: r.route_header.as_ref() }
        }
        Terminal::Plugin { entry } => {
            let e = &snap.chain[entry as usize].obs;
            Answered {
                stats: snap.observe.gateway.no_route(),
                logged: false,
                log: &e.plugin_log,
                route_header: e.plugin_header.as_ref(),
            }
        }
        Terminal::None => Answered {
            stats: snap.observe.gateway.no_route(),
            logged: false,
            log: &NO_TARGET,
            route_header: Some(&NO_TARGET_HEADER),
        },
    }
}

static H_ROUTE: HeaderName = HeaderName::from_static("x-tigateway-route");
static H_UPSTREAM: HeaderName = HeaderName::from_static("x-tigateway-upstream");
static H_TIME: HeaderName = HeaderName::from_static("x-tigateway-time-ms");
static H_UPSTREAM_TIME: HeaderName = HeaderName::from_static("x-tigateway-upstream-time-ms");

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The end of a response body that streams on after its head: counts the bytes it carried
/// (metrics when the length was unknown at the head, the access log always), queues the access-log
/// line and ends the span when the body ends — or is dropped because the client went away.
pub struct Tail {
    pub(crate) inner: ProxyBody,
    pub(crate) sent: u64,
    /// Set when the metrics still need the body's bytes.
    count_bytes: Option<Arc<RouteStats>>,
    log: Option<TailLog>,
    /// Boxed: a span is large (~400 bytes) and only there when tracing samples the request, and
    /// every logged request allocates and fills a `Tail`.
    span: Option<Box<Span>>,
}

struct TailLog {
    log: AccessLog,
    draft: LineDraft,
    started: Instant,
}

impl Drop for Tail {
    fn drop(&mut self) {
        if let Some(stats) = self.count_bytes.take() {
            stats.add_bytes_out(self.sent);
        }
        if let Some(t) = &mut self.log {
            t.draft.end(t.started.elapsed(), self.sent);
            t.log.log_draft(&t.draft);
        }
        if let Some(mut span) = self.span.take() {
            if span.is_recording() {
                span.set_attribute(opentelemetry::KeyValue::new("http.response.body.size", self.sent as i64));
            }
            span.end();
        }
    }
}

/// Records the request in the metrics, queues its access-log line and adds debug headers. The
/// request counters and latency histograms are taken at the response head; what depends on the
/// body (its bytes when their number is unknown, the access-log line, the span) waits for its end.
pub fn finish(
    snap: &Snapshot,
    resp: &mut Response<ProxyBody>,
    obs: Observed,
    method: &http::Method,
    started: Instant,
    span: Option<Box<Span>>,
) {
    let total = started.elapsed();
    let status = resp.status().as_u16();
    let streaming = !hyper::body::Body::is_end_stream(resp.body());
    let exact = hyper::body::Body::size_hint(resp.body()).exact();
    let bytes_out = exact.unwrap_or(0);
    let a = answered(snap, obs.terminal);
    let stats = a.stats;
    stats.record(method_class(method), status, total, obs.upstream_time, obs.bytes_in, bytes_out, obs.retries);
    let count_bytes = (streaming && exact.is_none()).then(|| stats.clone());

    if snap.debug_headers {
        let h = resp.headers_mut();
        if let Some(v) = a.route_header {
            h.insert(H_ROUTE.clone(), v.clone());
        }
        if let Some(p) = &obs.upstream {
            if let Ok(v) = HeaderValue::from_str(p.authority()) {
                h.insert(H_UPSTREAM.clone(), v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", ms(total))) {
            h.insert(H_TIME.clone(), v);
        }
        if let Some(u) = obs.upstream_time {
            if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", ms(u))) {
                h.insert(H_UPSTREAM_TIME.clone(), v);
            }
        }
    }

    let log = snap
        .observe
        .access_log()
        .and_then(|l| access_draft(snap, obs, &a, status).map(|draft| TailLog { log: l.clone(), draft, started }));
    if streaming && (count_bytes.is_some() || log.is_some() || span.is_some()) {
        let inner = std::mem::replace(resp.body_mut(), ProxyBody::Empty);
        *resp.body_mut() = ProxyBody::Tail(Box::new(Tail { inner, sent: 0, count_bytes, log, span }));
        return;
    }
    if let Some(mut t) = log {
        t.draft.end(total, bytes_out);
        t.log.log_draft(&t.draft);
    }
    if let Some(mut span) = span {
        span.end();
    }
}

/// The access-log record of this request with the response head's part filled in, when the log
/// is on and takes it.
fn access_draft(snap: &Snapshot, obs: Observed, a: &Answered<'_>, status: u16) -> Option<LineDraft> {
    let (Some(scope), Some(mut draft)) = (snap.access_log, obs.log) else {
        return None;
    };
    if scope == AccessLogScope::Logged && !a.logged {
        return None;
    }
    draft.answer(
        a.log,
        status,
        obs.upstream.as_ref().map(|p| p.authority()),
        obs.upstream_time,
        obs.bytes_in,
        obs.client_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
    );
    Some(draft)
}

/// Upstream health for the metrics, read from the registry at scrape time.
pub fn upstream_samples(registry: &Registry) -> Vec<tigateway_observe::UpstreamSample> {
    let now = tigateway_upstream::mono_ms();
    let mut v: Vec<_> = registry
        .peers()
        .iter()
        .map(|p| tigateway_observe::UpstreamSample {
            address: p.key().to_string(),
            healthy: p.is_available(now),
            in_flight: p.in_flight(),
            ejections: p.ejections(),
            failures: p.failures(),
        })
        .collect();
    v.sort_by(|a, b| a.address.cmp(&b.address));
    v
}
