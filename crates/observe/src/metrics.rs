//! Data-plane metrics. Per-route counters are plain atomics owned by [`RouteStats`], resolved once per
//! snapshot build and held by the compiled selector/route, so a request only increments atomics: no
//! label formatting, no map lookup. A [`Collector`] turns them into OpenMetrics families at scrape
//! time. Stats are kept in a process-wide table keyed by (kind, id), so counters survive config
//! swaps; entries no snapshot refers to any more are dropped on [`GatewayMetrics::prune`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const BUCKET_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// A lock-free histogram over [`LATENCY_BUCKETS`] (+Inf last). Buckets are stored per slot and made
/// cumulative when encoded.
#[derive(Debug, Default)]
pub struct Histo {
    slots: [AtomicU64; 15],
    sum_us: AtomicU64,
}

impl Histo {
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = BUCKET_US.iter().position(|&b| us <= b).unwrap_or(BUCKET_US.len());
        self.slots[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.slots.iter().map(|s| s.load(Relaxed)).sum()
    }

    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(self.slots.len());
        for (i, s) in self.slots.iter().enumerate() {
            acc += s.load(Relaxed);
            buckets.push((LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), acc));
        }
        (self.sum_us.load(Relaxed) as f64 / 1e6, acc, buckets)
    }
}

/// Method classes: the common methods by name, everything else as `OTHER` (bounded labels).
pub const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"];
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

pub fn method_class(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::PATCH => 5,
        http::Method::OPTIONS => 6,
        _ => 7,
    }
}

pub fn status_class(status: u16) -> usize {
    ((status / 100).clamp(1, 5) - 1) as usize
}

/// What decided a request's route: a Spring route, a ShenYu selector, or nothing matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Route,
    Selector,
    None,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Route => "route",
            RouteKind::Selector => "selector",
            RouteKind::None => "none",
        }
    }
}

/// Counters of one route or selector.
#[derive(Debug)]
pub struct RouteStats {
    pub kind: RouteKind,
    pub id: Arc<str>,
    requests: [[AtomicU64; 5]; 8],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    retries: AtomicU64,
    latency: Histo,
    upstream_latency: Histo,
}

impl RouteStats {
    fn new(kind: RouteKind, id: Arc<str>) -> RouteStats {
        RouteStats {
            kind,
            id,
            requests: Default::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            latency: Histo::default(),
            upstream_latency: Histo::default(),
        }
    }

    /// Bytes of a streamed response body, counted when it ends (its length was unknown at the head).
    pub fn add_bytes_out(&self, n: u64) {
        if n > 0 {
            self.bytes_out.fetch_add(n, Relaxed);
        }
    }

    /// Records one finished request.
    pub fn record(
        &self,
        method: usize,
        status: u16,
        total: Duration,
        upstream: Option<Duration>,
        bytes_in: u64,
        bytes_out: u64,
        retries: u32,
    ) {
        self.requests[method][status_class(status)].fetch_add(1, Relaxed);
        self.latency.observe(total);
        if let Some(u) = upstream {
            self.upstream_latency.observe(u);
        }
        if bytes_in > 0 {
            self.bytes_in.fetch_add(bytes_in, Relaxed);
        }
        if bytes_out > 0 {
            self.bytes_out.fetch_add(bytes_out, Relaxed);
        }
        if retries > 0 {
            self.retries.fetch_add(u64::from(retries), Relaxed);
        }
    }

    pub fn requests(&self, method: &str, status_class: &str) -> u64 {
        let m = METHODS.iter().position(|x| *x == method).unwrap_or(7);
        let s = STATUS_CLASSES.iter().position(|x| *x == status_class).unwrap_or(0);
        self.requests[m][s].load(Relaxed)
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.iter().flatten().map(|c| c.load(Relaxed)).sum()
    }
}

/// One upstream peer's state, read at scrape time.
#[derive(Debug, Clone)]
pub struct UpstreamSample {
    pub address: String,
    pub healthy: bool,
    pub in_flight: u64,
    pub ejections: u64,
    pub failures: u64,
}

type UpstreamSource = Box<dyn Fn() -> Vec<UpstreamSample> + Send + Sync>;

/// The data plane's metrics state, shared by every snapshot.
pub struct GatewayMetrics {
    routes: Mutex<HashMap<(RouteKind, Arc<str>), Arc<RouteStats>>>,
    no_route: Arc<RouteStats>,
    active_connections: AtomicI64,
    connections_total: AtomicU64,
    upstreams: Mutex<Option<UpstreamSource>>,
}

impl std::fmt::Debug for GatewayMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayMetrics").finish_non_exhaustive()
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics {
            routes: Mutex::new(HashMap::new()),
            no_route: Arc::new(RouteStats::new(RouteKind::None, Arc::from(""))),
            active_connections: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            upstreams: Mutex::new(None),
        }
    }
}

impl GatewayMetrics {
    pub fn new() -> Arc<GatewayMetrics> {
        Arc::new(GatewayMetrics::default())
    }

    /// The stats handle for a route or selector id; called at snapshot build, never per request.
    pub fn route(&self, kind: RouteKind, id: &str) -> Arc<RouteStats> {
        let mut map = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let key: Arc<str> = Arc::from(id);
        map.entry((kind, key.clone())).or_insert_with(|| Arc::new(RouteStats::new(kind, key))).clone()
    }

    /// Requests no plugin or route took.
    pub fn no_route(&self) -> &Arc<RouteStats> {
        &self.no_route
    }

    /// Forgets stats no snapshot holds any more (a removed route), keeping label sets bounded by the
    /// config. Call after a swap, once the old snapshot is gone or about to be.
    pub fn prune(&self) {
        let mut map = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, v| Arc::strong_count(v) > 1);
    }

    pub fn connection_opened(&self) {
        self.active_connections.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.active_connections.fetch_sub(1, Relaxed);
    }

    pub fn active_connections(&self) -> i64 {
        self.active_connections.load(Relaxed)
    }

    /// Where upstream health comes from (the upstream registry), read at each scrape.
    pub fn set_upstream_source(&self, f: impl Fn() -> Vec<UpstreamSample> + Send + Sync + 'static) {
        *self.upstreams.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }

    fn all_routes(&self) -> Vec<Arc<RouteStats>> {
        let map = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map.values().cloned().collect();
        v.push(self.no_route.clone());
        v.sort_by(|a, b| (a.kind.as_str(), &*a.id).cmp(&(b.kind.as_str(), &*b.id)));
        v
    }
}

/// A label value escaped as the exposition format requires (ids come from config and may hold
/// quotes or backslashes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Esc<'a>(pub &'a str);

impl EncodeLabelValue for Esc<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

pub(crate) fn counter<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Vec<(&'static str, Esc<'a>)>, u64)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    let mut rows: Vec<_> = rows.into_iter().collect();
    if rows.len() == 1 && rows[0].0.is_empty() {
        // A metric without labels: `name_total 3`, not `name_total{} 3`.
        return ConstCounter::new(rows.remove(0).1).encode(m);
    }
    for (labels, v) in rows {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

pub(crate) fn gauge<'a, V: prometheus_client::encoding::EncodeGaugeValue + Clone + std::fmt::Debug>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Vec<(&'static str, Esc<'a>)>, V)>,
) -> std::fmt::Result
where
    ConstGauge<V>: EncodeMetric,
{
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    let mut rows: Vec<_> = rows.into_iter().collect();
    if rows.len() == 1 && rows[0].0.is_empty() {
        return ConstGauge::new(rows.remove(0).1).encode(m);
    }
    for (labels, v) in rows {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

pub(crate) fn histograms<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Vec<(&'static str, Esc<'a>)>, &'a Histo)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        let (sum, count, buckets) = h.snapshot();
        m.encode_family(&labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

/// Encodes [`GatewayMetrics`] at scrape time.
#[derive(Debug)]
pub(crate) struct GatewayCollector(pub Arc<GatewayMetrics>);

impl Collector for GatewayCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let routes = self.0.all_routes();
        fn labels(r: &RouteStats) -> Vec<(&'static str, Esc<'_>)> {
            vec![("kind", Esc(r.kind.as_str())), ("route", Esc(&r.id))]
        }
        let mut rows = Vec::new();
        for r in &routes {
            for (mi, m) in METHODS.iter().enumerate() {
                for (si, s) in STATUS_CLASSES.iter().enumerate() {
                    let v = r.requests[mi][si].load(Relaxed);
                    if v > 0 {
                        let mut l = labels(r);
                        l.push(("method", Esc(m)));
                        l.push(("status", Esc(s)));
                        rows.push((l, v));
                    }
                }
            }
        }
        counter(
            &mut enc,
            "tigateway_requests",
            "Requests by route or selector (kind/route), method class and status class.",
            rows,
        )?;
        let used = || routes.iter().filter(|r| r.total_requests() > 0);
        histograms(
            &mut enc,
            "tigateway_request_duration_seconds",
            "Time from the request head to the response head, per route.",
            used().map(|r| (labels(r), &r.latency)),
        )?;
        histograms(
            &mut enc,
            "tigateway_upstream_duration_seconds",
            "Time the upstream took to answer with its response head, per route.",
            used().filter(|r| r.upstream_latency.count() > 0).map(|r| (labels(r), &r.upstream_latency)),
        )?;
        counter(
            &mut enc,
            "tigateway_request_bytes",
            "Request body bytes received, per route (declared Content-Length or buffered body).",
            used().map(|r| (labels(r), r.bytes_in.load(Relaxed))),
        )?;
        counter(
            &mut enc,
            "tigateway_response_bytes",
            "Response body bytes sent, per route, as far as known at the response head (Content-Length).",
            used().map(|r| (labels(r), r.bytes_out.load(Relaxed))),
        )?;
        counter(
            &mut enc,
            "tigateway_upstream_retries",
            "Extra upstream attempts (retries), per route.",
            used().map(|r| (labels(r), r.retries.load(Relaxed))),
        )?;
        gauge(
            &mut enc,
            "tigateway_active_connections",
            "Client connections open now.",
            [(vec![], self.0.active_connections.load(Relaxed))],
        )?;
        counter(
            &mut enc,
            "tigateway_connections",
            "Client connections accepted.",
            [(vec![], self.0.connections_total.load(Relaxed))],
        )?;
        let ups = match &*self.0.upstreams.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(f) => f(),
            None => Vec::new(),
        };
        fn ul(u: &UpstreamSample) -> Vec<(&'static str, Esc<'_>)> {
            vec![("upstream", Esc(&u.address))]
        }
        gauge(
            &mut enc,
            "tigateway_upstream_healthy",
            "1 when the upstream is in rotation (not ejected, not marked down by active checks), else 0.",
            ups.iter().map(|u| (ul(u), i64::from(u.healthy))),
        )?;
        gauge(
            &mut enc,
            "tigateway_upstream_in_flight",
            "Requests in flight to the upstream.",
            ups.iter().map(|u| (ul(u), u.in_flight as i64)),
        )?;
        counter(
            &mut enc,
            "tigateway_upstream_ejections",
            "Times the passive health check ejected the upstream.",
            ups.iter().map(|u| (ul(u), u.ejections)),
        )?;
        counter(
            &mut enc,
            "tigateway_upstream_failures",
            "Failed attempts (connect errors, resets, timeouts) against the upstream.",
            ups.iter().map(|u| (ul(u), u.failures)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histo::default();
        h.observe(Duration::from_micros(400));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 3);
        assert_eq!(buckets[0], (0.0005, 1));
        assert_eq!(buckets[3], (0.005, 2));
        assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, 3));
        assert!((sum - 20.0034).abs() < 1e-9);
    }

    #[test]
    fn route_handles_are_shared_and_pruned() {
        let m = GatewayMetrics::new();
        let a = m.route(RouteKind::Selector, "s1");
        let b = m.route(RouteKind::Selector, "s1");
        assert!(Arc::ptr_eq(&a, &b));
        a.record(method_class(&http::Method::GET), 204, Duration::from_millis(1), None, 0, 0, 0);
        assert_eq!(b.requests("GET", "2xx"), 1);
        drop((a, b));
        m.prune();
        assert_eq!(m.route(RouteKind::Selector, "s1").total_requests(), 0);
    }

    #[test]
    fn classes() {
        assert_eq!(STATUS_CLASSES[status_class(101)], "1xx");
        assert_eq!(STATUS_CLASSES[status_class(599)], "5xx");
        assert_eq!(STATUS_CLASSES[status_class(0)], "1xx");
        assert_eq!(METHODS[method_class(&http::Method::from_bytes(b"PROPFIND").unwrap())], "OTHER");
    }
}
