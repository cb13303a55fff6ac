//! The `Snapshot`: one validated config plus everything compiled from it (plugin chain with selector
//! tables and handles, route table, upstream sets). Built off the request path, swapped atomically.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tigateway_matcher::select::PluginTable;
use tigateway_model::{Config, LimitsConfig, UpstreamConfig, ValidationError, ValidationErrors};
use tigateway_upstream::{Registry, UpstreamSet, UpstreamSpec};

use crate::plugins::{factories, BuildInput, Plugin};

pub struct ChainEntry {
    pub name: &'static str,
    pub order: i64,
    /// ShenYu selector/rule table; None for plugins that route by themselves.
    pub table: Option<PluginTable>,
    pub plugin: Box<dyn Plugin>,
    /// Metric handles and log ids per selector/rule, by position in the table (resolved at build).
    pub obs: crate::observe::EntryObs,
}

pub struct Snapshot {
    pub version: u64,
    pub config: Arc<Config>,
    pub chain: Vec<ChainEntry>,
    pub trusted_proxies: Vec<IpNet>,
    pub limits: LimitsConfig,
    pub upstream: UpstreamConfig,
    /// Some `post` condition reads the body: buffer it (bounded) before matching.
    pub needs_body: bool,
    pub shenyu_errors: bool,
    pub services: HashMap<String, Arc<UpstreamSet>>,
    /// Every upstream set the plugins hold (for active health checks).
    pub upstream_sets: Vec<Arc<UpstreamSet>>,
    /// TLS client settings for https/wss upstreams.
    pub upstream_tls: Arc<rustls::ClientConfig>,
    /// Metric handles of Spring routes, by position in `config.routes`.
    pub route_obs: Vec<crate::observe::TargetObs>,
    pub observe: Arc<tigateway_observe::Observe>,
    /// Access logging for this config: None when off.
    pub access_log: Option<tigateway_model::AccessLogScope>,
    pub debug_headers: bool,
    /// Time compile took (for `tigateway_routes_update_time_seconds`).
    pub build_time: std::time::Duration,
}

/// Validates and compiles a config. Every problem is reported, with its path.
pub fn build_snapshot(
    config: Arc<Config>,
    registry: &Arc<Registry>,
    version: u64,
) -> Result<Snapshot, ValidationErrors> {
    build_snapshot_observed(config, registry, version, &tigateway_observe::Observe::new())
}

/// [`build_snapshot`], resolving metric handles in `observe` (the process's metrics).
pub fn build_snapshot_observed(
    config: Arc<Config>,
    registry: &Arc<Registry>,
    version: u64,
    observe: &Arc<tigateway_observe::Observe>,
) -> Result<Snapshot, ValidationErrors> {
    let started = std::time::Instant::now();
    config.validate()?;
    let cfg = &*config;
    let mut errs: Vec<ValidationError> = Vec::new();

    let mut services = HashMap::new();
    for (name, instances) in &cfg.services {
        let specs: Result<Vec<UpstreamSpec>, String> = instances
            .iter()
            .map(|i| {
                UpstreamSpec::from_url(&i.url, i.weight).map(|mut s| {
                    if let Some(w) = i.warmup_ms {
                        s.warmup_ms = w;
                    }
                    s
                })
            })
            .collect();
        match specs.and_then(|s| UpstreamSet::new(registry, s, "roundRobin")) {
            Ok(set) => {
                services.insert(name.clone(), Arc::new(set));
            }
            Err(e) => errs.push(ValidationError::new(format!("services.{name}"), e)),
        }
    }

    // Which plugins run, in which order (shared with `explain`).
    let factories = factories();
    let names: Vec<&str> = factories.iter().map(|f| f.name()).collect();
    let wanted: Vec<(&str, i64, Option<&tigateway_model::Plugin>)> = tigateway_model::chain::plugin_chain(cfg, &names)
        .into_iter()
        .filter(|s| s.enabled)
        .map(|s| (s.name, s.order, s.row))
        .collect();
    errs.extend(tigateway_model::chain::unimplemented_in_use(cfg, &names));

    let mut chain = Vec::new();
    let mut needs_body = false;
    for (name, order, row) in wanted {
        let factory = factories.iter().find(|f| f.name() == name).expect("wanted comes from factories");
        let name = factory.name();
        let (selectors, rules) = tigateway_model::chain::plugin_inputs(cfg, name);
        let table = if factory.uses_selectors() {
            match PluginTable::compile(&selectors, &rules) {
                Ok(t) => {
                    needs_body |= t.needs_body();
                    Some(t)
                }
                Err(e) => {
                    errs.extend(e);
                    continue;
                }
            }
        } else {
            None
        };
        let input =
            BuildInput { row, selectors: &selectors, rules: &rules, config: cfg, registry, services: &services };
        match factory.build(&input) {
            Ok(plugin) => {
                let obs = crate::observe::EntryObs::resolve(&observe.gateway, name, &selectors, &rules);
                chain.push(ChainEntry { name, order, table, plugin, obs })
            }
            Err(e) => errs.extend(e),
        }
    }

    let upstream_sets = chain.iter().flat_map(|e| e.plugin.upstream_sets()).collect();
    let upstream_tls = match crate::pool::client_tls_config(cfg.server.upstream.ca_file.as_deref()) {
        Ok(t) => Some(t),
        Err(e) => {
            errs.push(ValidationError::new("server.upstream.caFile", e));
            None
        }
    };
    let trusted_proxies =
        cfg.server.trusted_proxies.iter().filter_map(|p| tigateway_model::validate::parse_cidr(p)).collect();
    if !errs.is_empty() {
        return Err(ValidationErrors(errs));
    }
    let route_obs = crate::observe::TargetObs::for_routes(&observe.gateway, &cfg.routes);
    // In `logged` scope a config where nothing is marked logged logs nothing: decided here, once,
    // so its requests do not start access-log records that would all be thrown away.
    let scope = cfg.server.access_log.scope;
    let anything_logged = route_obs.iter().any(|r| r.logged)
        || chain.iter().any(|e| e.obs.selectors.iter().any(|s| s.logged) || e.obs.rules.iter().any(|r| r.logged));
    let access_log = (observe.access_log_wanted(cfg.server.access_log.enabled)
        && (scope == tigateway_model::AccessLogScope::All || anything_logged))
        .then_some(scope);
    Ok(Snapshot {
        route_obs,
        observe: observe.clone(),
        access_log,
        debug_headers: cfg.server.debug_headers,
        build_time: started.elapsed(),
        version,
        chain,
        trusted_proxies,
        limits: cfg.server.limits.clone(),
        upstream: cfg.server.upstream.clone(),
        needs_body,
        shenyu_errors: cfg.server.shenyu_compatible_errors,
        services,
        upstream_sets,
        upstream_tls: upstream_tls.expect("errors returned above"),
        config,
    })
}

/// The current snapshot, swapped atomically; requests load it once and keep it to the end.
pub struct SnapshotStore {
    current: ArcSwap<Snapshot>,
    registry: Arc<Registry>,
    version: std::sync::atomic::AtomicU64,
    observe: Arc<tigateway_observe::Observe>,
}

impl SnapshotStore {
    pub fn new(config: Config, registry: Arc<Registry>) -> Result<Arc<SnapshotStore>, ValidationErrors> {
        Self::new_observed(config, registry, tigateway_observe::Observe::new())
    }

    /// A store whose snapshots count into `observe` (the process's metrics, access log, readiness).
    pub fn new_observed(
        config: Config,
        registry: Arc<Registry>,
        observe: Arc<tigateway_observe::Observe>,
    ) -> Result<Arc<SnapshotStore>, ValidationErrors> {
        let snap = build_snapshot_observed(Arc::new(config), &registry, 1, &observe)?;
        let peers = registry.clone();
        observe.gateway.set_upstream_source(move || crate::observe::upstream_samples(&peers));
        Ok(Arc::new(SnapshotStore { current: ArcSwap::from_pointee(snap), registry, version: 1.into(), observe }))
    }

    pub fn observe(&self) -> &Arc<tigateway_observe::Observe> {
        &self.observe
    }

    /// Swaps in a prepared snapshot that came from config source `source` (its own version
    /// `source_version`) and reports it: config update counters, build + swap time, readiness.
    pub fn swap_from(&self, source: &str, source_version: u64, snap: Snapshot) -> u64 {
        let started = std::time::Instant::now();
        let build = snap.build_time;
        let version = self.swap(snap);
        self.observe.sources.applied(source, source_version, version, build + started.elapsed());
        version
    }

    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Builds a snapshot from `config` and swaps it in; on error the running snapshot stays.
    pub fn apply(&self, config: Config) -> Result<u64, ValidationErrors> {
        let snap = self.prepare(config)?;
        Ok(self.swap(snap))
    }

    /// Validates and compiles `config` into a snapshot without making it current.
    pub fn prepare(&self, config: Config) -> Result<Snapshot, ValidationErrors> {
        let version = self.version.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let started = std::time::Instant::now();
        let snap = build_snapshot_observed(Arc::new(config), &self.registry, version, &self.observe)?;
        tracing::debug!(version, build_ms = started.elapsed().as_secs_f64() * 1e3, "snapshot built");
        Ok(snap)
    }

    /// Makes a prepared snapshot current; requests already running keep the one they loaded.
    pub fn swap(&self, snap: Snapshot) -> u64 {
        let version = snap.version;
        let old = self.current.load();
        if old.config.server.listeners != snap.config.server.listeners {
            tracing::warn!("listener changes take effect on restart; the running listeners stay");
        }
        if old.config.server.limits.header_read_timeout_ms != snap.config.server.limits.header_read_timeout_ms
            || old.config.server.limits.max_headers != snap.config.server.limits.max_headers
        {
            tracing::warn!("headerReadTimeoutMs and maxHeaders apply to new connections only");
        }
        if old.config.server.upstream.pool_max_idle_per_host != snap.config.server.upstream.pool_max_idle_per_host
            || old.config.server.upstream.pool_idle_timeout_ms != snap.config.server.upstream.pool_idle_timeout_ms
        {
            tracing::warn!("connection pool settings take effect on restart");
        }
        drop(old);
        self.registry.set_config(&snap.upstream);
        self.current.store(Arc::new(snap));
        self.registry.prune();
        self.observe.gateway.prune();
        tracing::info!(version, "config applied");
        version
    }
}

/// Every upstream peer a snapshot can send to (for active health checks).
pub fn all_peers(snap: &Snapshot) -> Vec<Arc<tigateway_upstream::Peer>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for set in snap.services.values().chain(snap.upstream_sets.iter()) {
        for i in 0..set.len() {
            let p = set.peer(i);
            if seen.insert(p.key().to_string()) {
                out.push(p.clone());
            }
        }
    }
    out
}

/// Runs active health checks for whatever the current snapshot sends to, following config changes
/// (a new health-check config restarts the checker). Must be called inside a tokio runtime.
pub fn spawn_health_checks(store: Arc<SnapshotStore>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: Option<(tigateway_model::HealthCheckConfig, tokio::task::JoinHandle<()>)> = None;
        loop {
            let wanted = store.load().upstream.health_check.clone();
            let same = match (&running, &wanted) {
                (Some((cur, _)), Some(w)) => cur == w,
                (None, None) => true,
                _ => false,
            };
            if !same {
                if let Some((_, h)) = running.take() {
                    h.abort();
                }
                if let Some(cfg) = wanted {
                    let s = store.clone();
                    let h = tigateway_upstream::spawn_health_checks(store.registry().clone(), cfg.clone(), move || {
                        all_peers(&s.load_full())
                    });
                    running = Some((cfg, h));
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    })
}

#[cfg(test)]
mod chain_tests {
    /// `explain` (which cannot see the factories) reads the chain from `IMPLEMENTED_PLUGINS`; it
    /// must name the same plugins in the same order.
    #[test]
    fn implemented_plugins_list_is_the_factory_list() {
        let names: Vec<&str> = crate::plugins::factories().iter().map(|f| f.name()).collect();
        assert_eq!(names, tigateway_model::IMPLEMENTED_PLUGINS);
    }
}

#[cfg(test)]
mod access_log_tests {
    use std::sync::Arc;

    use tigateway_model::{AccessLogScope, Config};
    use tigateway_upstream::Registry;

    fn scope_of(yaml: &str) -> Option<AccessLogScope> {
        let config = Config::from_yaml_str(yaml).unwrap();
        let registry = Arc::new(Registry::new(&config.server.upstream));
        let observe = tigateway_observe::Observe::with_access_log_override(Some(true));
        super::build_snapshot_observed(Arc::new(config), &registry, 1, &observe).unwrap().access_log
    }

    #[test]
    fn logged_scope_with_nothing_marked_logged_starts_no_records() {
        let config = |logged: bool| {
            format!(
                "server:\n  accessLog:\n    enabled: true\n    scope: SCOPE\nroutes:\n  - id: a\n    uri: http://127.0.0.1:1\n    predicates: [Path=/a/**]\n    metadata: {{logged: {logged}}}\n  - id: b\n    uri: http://127.0.0.1:1\n    predicates: [Path=/b/**]\n"
            )
        };
        assert_eq!(scope_of(&config(false).replace("SCOPE", "logged")), None);
        assert_eq!(scope_of(&config(true).replace("SCOPE", "logged")), Some(AccessLogScope::Logged));
        assert_eq!(scope_of(&config(false).replace("SCOPE", "all")), Some(AccessLogScope::All));
    }
}
