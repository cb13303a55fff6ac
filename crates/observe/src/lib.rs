//! Observability for TiGateway: Prometheus metrics (OpenMetrics text, `prometheus-client`), the
//! access log, and the metrics listener with `/metrics`, `/health` and `/ready`.
//!
//! One [`Observe`] per process. The data plane resolves per-route handles from
//! [`Observe::gateway`] when it builds a snapshot; config sources report to [`Observe::sources`];
//! the admin records into [`Observe::admin`]. Everything is encoded at scrape time.

pub mod access_log;
pub mod admin;
pub mod metrics;
pub mod server;
pub mod sources;

use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

pub use access_log::{wall_clock, AccessLog, AccessRecord, Destination, LineDraft, LogTarget};
pub use admin::AdminMetrics;
pub use metrics::{GatewayMetrics, RouteKind, RouteStats, UpstreamSample};
pub use sources::{Readiness, SourceState, Sources};

/// The process's observability state.
pub struct Observe {
    pub gateway: Arc<GatewayMetrics>,
    pub sources: Arc<Sources>,
    pub admin: Arc<AdminMetrics>,
    access_log: Arc<OnceLock<AccessLog>>,
    /// `--access-log` given on the command line: wins over `server.accessLog.enabled`.
    access_log_forced: Option<bool>,
    registry: Mutex<Registry>,
}

impl std::fmt::Debug for Observe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observe").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct AccessLogCollector(Arc<OnceLock<AccessLog>>);

impl Collector for AccessLogCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (dropped, written) = self.0.get().map(|l| (l.dropped(), l.written())).unwrap_or_default();
        metrics::counter(
            &mut enc,
            "tigateway_access_log_dropped",
            "Access log lines dropped because the writer fell behind (the request was never delayed).",
            [(vec![], dropped)],
        )?;
        metrics::counter(&mut enc, "tigateway_access_log_written", "Access log lines written.", [(vec![], written)])
    }
}

impl Observe {
    pub fn new() -> Arc<Observe> {
        Self::with_access_log_override(None)
    }

    /// `forced`: Some(on/off) when the command line decided about the access log.
    pub fn with_access_log_override(forced: Option<bool>) -> Arc<Observe> {
        let gateway = GatewayMetrics::new();
        let sources = Sources::new();
        let admin = AdminMetrics::new();
        let access_log = Arc::new(OnceLock::new());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(metrics::GatewayCollector(gateway.clone())));
        registry.register_collector(Box::new(sources::SourcesCollector(sources.clone())));
        registry.register_collector(Box::new(AccessLogCollector(access_log.clone())));
        registry.register_collector(Box::new(admin::AdminCollector(admin.clone())));
        Arc::new(Observe {
            gateway,
            sources,
            admin,
            access_log,
            access_log_forced: forced,
            registry: Mutex::new(registry),
        })
    }

    /// Installs the access log writer (once per process; later calls are ignored and return false).
    pub fn set_access_log(&self, log: AccessLog) -> bool {
        self.access_log.set(log).is_ok()
    }

    /// The writer, when one is installed.
    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.get()
    }

    /// Whether requests are logged, given the config's switch.
    pub fn access_log_wanted(&self, config_enabled: bool) -> bool {
        self.access_log_forced.unwrap_or(config_enabled)
    }

    pub fn access_log_forced(&self) -> Option<bool> {
        self.access_log_forced
    }

    /// Everything in OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}
