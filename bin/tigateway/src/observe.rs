//! Wiring of metrics, readiness and the access log into the commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tigateway_observe::{AccessLog, Destination, Observe};
use tigateway_proxy::SnapshotStore;
use tigateway_sync::file::WatchEvent;

use crate::ObserveArgs;

/// The source name standalone mode reports for its embedded store.
pub const STORE_SOURCE: &str = "admin-store";
/// The source name of `gateway -c FILE`.
pub const FILE_SOURCE: &str = "file";

/// Creates the process's metrics and starts the metrics listener (unless `off`) on `rt`.
pub fn start(rt: &tokio::runtime::Runtime, args: &ObserveArgs) -> anyhow::Result<Arc<Observe>> {
    let forced = args.access_log.as_deref().map(|v| v != "off");
    let obs = Observe::with_access_log_override(forced);
    if args.metrics != "off" {
        let addr: SocketAddr = args
            .metrics
            .parse()
            .with_context(|| format!("--metrics must be an address (host:port) or `off`, got {:?}", args.metrics))?;
        let bound = rt
            .block_on(tigateway_observe::server::start(addr, obs.clone()))
            .with_context(|| format!("binding the metrics listener on {addr}"))?;
        tracing::info!(address = %bound, "metrics listening (/metrics, /health, /ready)");
    }
    Ok(obs)
}

/// Starts the access log writer when the command line or the config asks for one.
pub fn start_access_log(
    obs: &Observe,
    args: &ObserveArgs,
    cfg: &tigateway_model::AccessLogConfig,
) -> anyhow::Result<()> {
    if !obs.access_log_wanted(cfg.enabled) {
        return Ok(());
    }
    let output = args.access_log.as_deref().unwrap_or(&cfg.output);
    let dest = if output == "stdout" || output == "-" {
        Destination::Stdout
    } else {
        Destination::File { path: PathBuf::from(output), max_bytes: cfg.max_bytes, keep: cfg.max_files }
    };
    let log = AccessLog::start(dest, cfg.buffer_size).with_context(|| format!("opening the access log {output:?}"))?;
    obs.set_access_log(log);
    tracing::info!(output, "access log on");
    Ok(())
}

/// Watches the config file; every applied or rejected config is reported to the metrics and
/// readiness (source `file`, version = the count of configs applied from it).
pub fn watch_file(
    store: &Arc<SnapshotStore>,
    path: PathBuf,
) -> Result<tigateway_sync::file::WatchHandle, tigateway_sync::file::LoadError> {
    let sources = store.observe().sources.clone();
    sources.register(FILE_SOURCE);
    let prepare_store = store.clone();
    let swap_store = store.clone();
    let generation = Arc::new(AtomicU64::new(0));
    let events = sources.clone();
    let handle = tigateway_sync::file::FileWatcher::new(path).report(move |ev| match ev {
        WatchEvent::Changed => events.change_seen(FILE_SOURCE),
        WatchEvent::Rejected(e) => events.rejected(FILE_SOURCE, e),
        // The running config keeps serving: it is the "cache" a file source falls back to.
        WatchEvent::Unreadable(e) => {
            events.set_connected(FILE_SOURCE, false, true);
            events.set_detail(FILE_SOURCE, Some(format!("cannot read the config: {e}")));
        }
        WatchEvent::Readable => {
            events.set_connected(FILE_SOURCE, true, false);
            events.set_detail(FILE_SOURCE, None);
        }
    });
    let handle = handle.start_with(
        move |c| prepare_store.prepare(c).map_err(|e| e.to_string()),
        move |snap| {
            let gen = generation.fetch_add(1, Ordering::Relaxed) + 1;
            swap_store.swap_from(FILE_SOURCE, gen, snap);
        },
    )?;
    // The file was read: it is the connected source from here on (a file has no cache to fall to).
    sources.set_connected(FILE_SOURCE, true, false);
    Ok(handle)
}

/// Tells readiness and the sync metrics about a sync source's state changes as they happen.
pub struct SourceReport {
    sources: Arc<tigateway_observe::Sources>,
    name: &'static str,
}

impl SourceReport {
    pub fn new(sources: Arc<tigateway_observe::Sources>, name: &'static str) -> SourceReport {
        SourceReport { sources, name }
    }
}

impl tigateway_sync::shenyu::Report for SourceReport {
    fn state(&self, connected: bool, from_cache: bool) {
        self.sources.set_connected(self.name, connected, from_cache);
    }

    fn resync(&self) {
        self.sources.resync(self.name);
    }

    fn cache(&self, level: &str, hit: bool) {
        if hit {
            self.sources.cache_hit(level);
        } else {
            self.sources.cache_miss(level);
        }
    }

    fn rejected(&self, error: &str) {
        self.sources.rejected(self.name, error);
    }
}

/// Counts admin API requests by endpoint template (never the raw path) and status, and times writes.
pub fn count_admin_requests(router: axum::Router, metrics: Arc<tigateway_observe::AdminMetrics>) -> axum::Router {
    router.route_layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
        let metrics = metrics.clone();
        async move {
            let endpoint = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "unmatched".to_string());
            let method = req.method().clone();
            let started = Instant::now();
            let resp = next.run(req).await;
            metrics.record(&endpoint, &method, resp.status().as_u16(), started.elapsed());
            resp
        }
    }))
}
