//! CLI for the ZooKeeper and etcd sync methods: gateways that follow a ShenYu-layout tree
//! (`gateway --sync zookeeper|etcd`), and admins that publish into one (`--sync-publish`).

use std::time::Duration;

use anyhow::Context;
use tigateway_sync::layout::Layout;
use tigateway_sync::shenyu::Applier;

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

/// `tigateway gateway --sync zookeeper|etcd`: follows the tree, offering each whole config to
/// `applier`; the returned handle keeps it running.
pub fn spawn_source(
    method: &'static str,
    node: &NodeSyncArgs,
    access: &Access<'_>,
    applier: Applier,
) -> anyhow::Result<tigateway_sync::tree::SourceHandle> {
    let layout = node.layout(access);
    let source = match method {
        "zookeeper" => {
            let mut s = tigateway_sync::zookeeper::ZookeeperSource::new(node.zookeeper()?, layout.clone())
                .session_timeout(Duration::from_millis(node.zookeeper_session_timeout_ms));
            if let Some((u, p)) = node.credentials(access)? {
                s = s.credentials(u, p);
            }
            s.spawn(applier)
        }
        "etcd" => {
            let mut s = tigateway_sync::etcd::EtcdSource::new(node.etcd()?, layout.clone());
            if let Some((u, p)) = node.credentials(access)? {
                s = s.credentials(u, p);
            }
            s.spawn(applier)
        }
        other => anyhow::bail!("unknown --sync method {other:?}"),
    };
    tracing::info!(method, root = %layout.root(), "following the config tree");
    Ok(source)
}
