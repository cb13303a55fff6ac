//! CLI for the ZooKeeper and etcd sync methods: gateways that follow a ShenYu-layout tree
//! (`gateway --sync zookeeper|etcd`), and admins that publish into one (`--sync-publish`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tigateway_proxy::{listener_specs, SnapshotStore};
use tigateway_sync::layout::Layout;
use tigateway_upstream::Registry;

/// Where the tree lives and how to reach it; shared by gateways and admins.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NodeSyncArgs {
    /// ZooKeeper connect string (`host:port[,host:port…]`).
    #[arg(long, env = "TIGATEWAY_ZOOKEEPER")]
    pub zookeeper: Option<String>,
    /// etcd endpoints (`http://host:port`, comma-separated).
    #[arg(long, env = "TIGATEWAY_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// ShenYu namespace id (default: ShenYu's default namespace).
    #[arg(long, env = "TIGATEWAY_NAMESPACE")]
    pub namespace: Option<String>,
    /// Node layout: `2.7` (`/{namespace}/shenyu/…`) or `2.6` (`/shenyu/…`, no namespace).
    #[arg(long, default_value = "2.7", value_parser = ["2.7", "2.6"])]
    pub sync_layout: String,
    /// ZooKeeper digest user / etcd user.
    #[arg(long, env = "TIGATEWAY_SYNC_USERNAME")]
    pub sync_username: Option<String>,
    /// ZooKeeper digest / etcd password.
    #[arg(long, env = "TIGATEWAY_SYNC_PASSWORD", hide_env_values = true)]
    pub sync_password: Option<String>,
    /// ZooKeeper session timeout.
    #[arg(long, default_value_t = 10_000)]
    pub zookeeper_session_timeout_ms: u64,
}

impl NodeSyncArgs {
    fn layout(&self) -> Layout {
        Layout::new(self.namespace.as_deref(), self.sync_layout == "2.6")
    }

    fn credentials(&self) -> anyhow::Result<Option<(String, String)>> {
        match (&self.sync_username, &self.sync_password) {
            (Some(u), Some(p)) => Ok(Some((u.clone(), p.clone()))),
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

/// The admin's publishing targets.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PublishArgs {
    /// Sync methods to publish through (comma-separated). This build's node methods: `zookeeper`,
    /// `etcd`.
    #[arg(long, value_delimiter = ',')]
    pub sync_publish: Vec<String>,
    #[command(flatten)]
    pub node: NodeSyncArgs,
}

/// Starts a publisher per node method named in `--sync-publish` (on the current runtime).
pub fn start_publishers(store: &tigateway_admin::store::Store, args: &PublishArgs) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for method in &args.sync_publish {
        match method.trim() {
            "zookeeper" => targets.push(tigateway_admin::publish::Target::Zookeeper {
                servers: args.node.zookeeper()?,
                credentials: args.node.credentials()?,
                session_timeout: Duration::from_millis(args.node.zookeeper_session_timeout_ms),
            }),
            "etcd" => targets.push(tigateway_admin::publish::Target::Etcd {
                endpoints: args.node.etcd()?,
                credentials: args.node.credentials()?,
            }),
            // Published by the admin's own server; nothing to start here.
            "websocket" | "http" | "" => {}
            other => anyhow::bail!("unknown --sync-publish method {other:?} (websocket, http, zookeeper, etcd)"),
        }
    }
    let layout = args.node.layout();
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

/// `tigateway gateway --sync zookeeper|etcd`: the config comes from the tree, nothing from files.
pub fn run_gateway(
    method: &str,
    args: NodeSyncArgs,
    listen: Option<SocketAddr>,
    workers: Option<usize>,
) -> anyhow::Result<()> {
    let registry = Arc::new(Registry::new(&tigateway_model::UpstreamConfig::default()));
    let store = SnapshotStore::new(tigateway_model::Config::default(), registry)
        .map_err(|e| anyhow::anyhow!("empty config did not compile: {e}"))?;
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tigw-control")
        .enable_all()
        .build()?;
    let _guard = control.enter();
    let (prepare_store, swap_store) = (store.clone(), store.clone());
    let prepare = move |c| prepare_store.prepare(c).map_err(|e| e.to_string());
    let apply = move |snap| {
        swap_store.swap(snap);
    };
    let layout = args.layout();
    let mut source = match method {
        "zookeeper" => {
            let mut s = tigateway_sync::zookeeper::ZookeeperSource::new(args.zookeeper()?, layout.clone())
                .session_timeout(Duration::from_millis(args.zookeeper_session_timeout_ms));
            if let Some((u, p)) = args.credentials()? {
                s = s.credentials(u, p);
            }
            s.start_with(prepare, apply)
        }
        "etcd" => {
            let mut s = tigateway_sync::etcd::EtcdSource::new(args.etcd()?, layout.clone());
            if let Some((u, p)) = args.credentials()? {
                s = s.credentials(u, p);
            }
            s.start_with(prepare, apply)
        }
        other => anyhow::bail!("unknown --sync method {other:?}"),
    };
    tracing::info!(method, root = %layout.root(), "following the config tree");
    if !control.block_on(source.wait_first(Duration::from_secs(10))) {
        tracing::warn!(method, "no config from {method} yet: serving an empty config until it arrives");
    }
    let listeners = listener_specs(&store.load().config, listen).map_err(anyhow::Error::msg)?;
    let health_store = store.clone();
    control.spawn(async move { tigateway_proxy::spawn_health_checks(health_store).await.ok() });
    let result = crate::serve_until_signal(&control, store, listeners, workers);
    drop(source);
    result
}
