//! CLI for the ZooKeeper and etcd sync methods: gateways that follow a ShenYu-layout tree
//! (`gateway --sync zookeeper|etcd`), and admins that publish into one (`--sync-publish`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tigateway_proxy::SnapshotStore;
use tigateway_sync::layout::Layout;

/// Where the tree lives and how to reach it; shared by gateways and admins (the namespace and
/// the credentials are the common `--namespace` / `--sync-username` / `--sync-password`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NodeSyncArgs {
    /// ZooKeeper connect string (`host:port[,host:port…]`).
    #[arg(long, env = "TIGATEWAY_ZOOKEEPER")]
    pub zookeeper: Option<String>,
    /// etcd endpoints (`http://host:port`, comma-separated).
    #[arg(long, env = "TIGATEWAY_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Node layout: `2.7` (`/{namespace}/shenyu/…`) or `2.6` (`/shenyu/…`, no namespace).
    #[arg(long, default_value = "2.7", value_parser = ["2.7", "2.6"])]
    pub sync_layout: String,
    /// ZooKeeper session timeout.
    #[arg(long, default_value_t = 10_000)]
    pub zookeeper_session_timeout_ms: u64,
}

/// What names the tree and who may read it, from the command's common sync flags.
pub struct Access<'a> {
    pub namespace: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
}

impl NodeSyncArgs {
    fn layout(&self, access: &Access<'_>) -> Layout {
        Layout::new(Some(access.namespace), self.sync_layout == "2.6")
    }

    fn credentials(&self, access: &Access<'_>) -> anyhow::Result<Option<(String, String)>> {
        match (access.username, access.password) {
            (Some(u), Some(p)) => Ok(Some((u.to_string(), p.to_string()))),
            (None, None) => Ok(None),
            _ => anyhow::bail!("--sync-username and --sync-password go together"),
        }
    }

    fn zookeeper(&self) -> anyhow::Result<String> {
        self.zookeeper.clone().filter(|z| !z.is_empty()).context("ZooKeeper sync needs --zookeeper HOST:PORT")
    }

    fn etcd(&self) -> anyhow::Result<Vec<String>> {
        if self.etcd.is_empty() {
            anyhow::bail!("etcd sync needs --etcd http://HOST:PORT");
        }
        Ok(self.etcd.clone())
    }
}

/// Starts a publisher per node method named in `methods` (on the current runtime).
pub fn start_publishers(
    store: &tigateway_admin::store::Store,
    methods: &[String],
    node: &NodeSyncArgs,
    access: &Access<'_>,
) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for method in methods {
        match method.trim() {
            "zookeeper" => targets.push(tigateway_admin::publish::Target::Zookeeper {
                servers: node.zookeeper()?,
                credentials: node.credentials(access)?,
                session_timeout: Duration::from_millis(node.zookeeper_session_timeout_ms),
            }),
            "etcd" => targets.push(tigateway_admin::publish::Target::Etcd {
                endpoints: node.etcd()?,
                credentials: node.credentials(access)?,
            }),
            // Published by the admin's own server; nothing to start here.
            _ => {}
        }
    }
    if targets.is_empty() {
        return Ok(());
    }
    let layout = node.layout(access);
    for t in &targets {
        tracing::info!(target = ?t_name(t), root = %layout.root(), "publishing the config");
    }
    tigateway_admin::publish::spawn(store, layout, targets);
    Ok(())
}

fn t_name(t: &tigateway_admin::publish::Target) -> &'static str {
    match t {
        tigateway_admin::publish::Target::Zookeeper { .. } => "zookeeper",
        tigateway_admin::publish::Target::Etcd { .. } => "etcd",
    }
}

/// `tigateway gateway --sync zookeeper|etcd`: follows the tree into `store` (reported to the
/// metrics and readiness as source `zookeeper` / `etcd`); the returned value keeps it running.
pub fn start_source(
    method: &'static str,
    node: &NodeSyncArgs,
    access: &Access<'_>,
    store: &Arc<SnapshotStore>,
    control: &tokio::runtime::Runtime,
    cache: tigateway_sync::cache::DiskCache,
) -> anyhow::Result<Box<dyn std::any::Any>> {
    let sources = store.observe().sources.clone();
    sources.register(method);
    let (prepare_store, swap_store) = (store.clone(), store.clone());
    // Held while a config from the tree or from the cache is swapped in, so a cached config can
    // never replace one the tree delivered meanwhile.
    let generation = Arc::new(std::sync::Mutex::new(0u64));
    let gen_apply = generation.clone();
    let apply_cache = cache.clone();
    let prepare = move |c| prepare_store.prepare(c).map_err(|e| e.to_string());
    let apply = move |snap: tigateway_proxy::Snapshot| {
        let mut gen = gen_apply.lock().unwrap_or_else(|p| p.into_inner());
        *gen += 1;
        let config = snap.config.clone();
        swap_store.swap_from(method, *gen, snap);
        drop(gen);
        swap_store.observe().sources.set_connected(method, true, false);
        // The last good config, for a start while the tree cannot be reached.
        if let Err(e) = apply_cache.save(&config, method) {
            tracing::warn!(error = %e, cache = %apply_cache.path().display(), "cannot write the config cache");
        }
    };
    let layout = node.layout(access);
    let mut source = match method {
        "zookeeper" => {
            let mut s = tigateway_sync::zookeeper::ZookeeperSource::new(node.zookeeper()?, layout.clone())
                .session_timeout(Duration::from_millis(node.zookeeper_session_timeout_ms));
            if let Some((u, p)) = node.credentials(access)? {
                s = s.credentials(u, p);
            }
            s.start_with(prepare, apply)
        }
        "etcd" => {
            let mut s = tigateway_sync::etcd::EtcdSource::new(node.etcd()?, layout.clone());
            if let Some((u, p)) = node.credentials(access)? {
                s = s.credentials(u, p);
            }
            s.start_with(prepare, apply)
        }
        other => anyhow::bail!("unknown --sync method {other:?}"),
    };
    tracing::info!(method, root = %layout.root(), "following the config tree");
    if control.block_on(source.wait_first(Duration::from_secs(10))) {
        sources.set_connected(method, true, false);
    } else {
        sources.set_detail(method, Some(format!("no config from {method} yet")));
        serve_cached(method, store, &cache, &generation);
    }
    Ok(Box::new(source))
}

/// No config from the tree at start: serve the disk cache until the tree answers (the source
/// keeps trying and replaces it).
fn serve_cached(
    method: &'static str,
    store: &Arc<SnapshotStore>,
    cache: &tigateway_sync::cache::DiskCache,
    generation: &std::sync::Mutex<u64>,
) {
    let sources = &store.observe().sources;
    let cached = match cache.load() {
        Ok(Some(c)) => c,
        Ok(None) => {
            sources.cache_miss("disk");
            tracing::warn!(method, cache = %cache.path().display(), "no config from {method} and no cached config: serving an empty config until it arrives");
            return;
        }
        Err(e) => {
            sources.cache_miss("disk");
            tracing::error!(method, error = %e, "no config from {method} and the cached config cannot be read");
            return;
        }
    };
    let snap = match store.prepare(cached.config) {
        Ok(s) => s,
        Err(e) => {
            sources.cache_miss("disk");
            tracing::error!(method, "the cached config does not compile; serving an empty config:\n{e}");
            return;
        }
    };
    let gen = generation.lock().unwrap_or_else(|p| p.into_inner());
    if *gen > 0 {
        return; // the tree answered while the cache was read
    }
    store.swap(snap);
    drop(gen);
    sources.cache_hit("disk");
    sources.set_connected(method, false, true);
    tracing::warn!(
        method,
        cache = %cached.path.display(),
        saved_at = cached.saved_at,
        "no config from {method}: serving from the cache until it answers"
    );
}
