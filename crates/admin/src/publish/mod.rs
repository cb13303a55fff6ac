//! Publishing the committed config into ZooKeeper and etcd, in ShenYu's node layout, for gateways
//! (TiGateway or ShenYu) that follow those instead of the admin itself.
//!
//! One task per target. On start, and again whenever the connection had to be made anew (a lost
//! ZooKeeper session, a failed write), it reads what the target holds and writes the whole current
//! config over it, removing nodes of objects that no longer exist: the target converges whatever
//! happened while the admin was away. In between, each committed revision is diffed against what
//! was last published and only the changed nodes are written.

pub mod etcd;
pub mod layout;
pub mod zookeeper;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use crate::store::Store;
use layout::{diff, Layout, NodeChanges};

/// Where to publish.
#[derive(Debug, Clone)]
pub enum Target {
    /// `host:port[,host:port…]`, with optional digest credentials (`user`, `password`); with
    /// credentials the nodes are created readable and writable by that identity only.
    Zookeeper { servers: String, credentials: Option<(String, String)>, session_timeout: Duration },
    /// `http://host:port` endpoints, with optional etcd user and password.
    Etcd { endpoints: Vec<String>, credentials: Option<(String, String)> },
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Zookeeper { .. } => "zookeeper",
            Target::Etcd { .. } => "etcd",
        }
    }
}

/// A node store the publisher writes to.
pub(crate) trait NodeSink: Send {
    /// Every node below `root` that holds a config object of the layout, with its data.
    fn read_all(&mut self, layout: &Layout) -> impl Future<Output = Result<BTreeMap<String, Vec<u8>>, String>> + Send;
    fn write(&mut self, changes: &NodeChanges) -> impl Future<Output = Result<(), String>> + Send;
    /// Resolves when what was published can no longer be trusted to be there (ZooKeeper session
    /// gone); never for stores without sessions.
    fn lost(&mut self) -> impl Future<Output = ()> + Send;
}

/// Starts one publisher task per target on the current runtime.
pub fn spawn(store: &Store, layout: Layout, targets: Vec<Target>) -> Vec<tokio::task::JoinHandle<()>> {
    targets
        .into_iter()
        .map(|t| {
            let store = store.clone();
            let layout = layout.clone();
            tokio::spawn(async move { run(store, layout, t).await })
        })
        .collect()
}

/// Publishes to one target until the store is closed.
pub async fn run(store: Store, layout: Layout, target: Target) {
    let name = target.name();
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = match &target {
            Target::Zookeeper { servers, credentials, session_timeout } => {
                match zookeeper::ZkSink::connect(servers, credentials.clone(), *session_timeout).await {
                    Ok(sink) => publish(&store, &layout, sink, name).await,
                    Err(e) => Err(e),
                }
            }
            Target::Etcd { endpoints, credentials } => {
                match etcd::EtcdSink::connect(endpoints, credentials.clone()).await {
                    Ok(sink) => publish(&store, &layout, sink, name).await,
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(target = name, error = %e, "publishing interrupted; reconnecting for a full publish")
            }
        }
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn jitter(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    Duration::from_millis(ms / 2 + rand::random::<u64>() % (ms / 2 + 1))
}

/// The revision marker, written after everything of that revision (see `Layout::revision_path`).
fn marker(layout: &Layout, revision: i64, nodes: &BTreeMap<String, Vec<u8>>) -> (String, Vec<u8>) {
    let token = format!("{:016x}", rand::random::<u64>());
    let digest = tigateway_sync::layout::digest(layout, nodes.iter().map(|(p, d)| (p.as_str(), d.as_slice())));
    (layout.revision_path(), tigateway_sync::layout::revision_data(revision, &token, &digest))
}

async fn encode(store: &Store, layout: &Layout, name: &str) -> Result<(BTreeMap<String, Vec<u8>>, i64), String> {
    let revision = store.current_revision().await.map_err(|e| format!("reading the revision: {e}"))?;
    let cfg = store.load_config().await.map_err(|e| format!("loading the config: {e}"))?;
    let (nodes, errors) = layout.encode(&cfg);
    for e in errors {
        tracing::error!(target = name, revision, "not published: {e}");
    }
    Ok((nodes, revision))
}

/// One connection's life: a full publish, then one diff per committed revision. Ok when the store
/// is gone, Err when the connection must be made anew.
async fn publish(store: &Store, layout: &Layout, mut sink: impl NodeSink, name: &str) -> Result<(), String> {
    let mut revisions = store.subscribe();
    revisions.borrow_and_update();
    let existing = sink.read_all(layout).await?;
    let (mut published, revision) = encode(store, layout, name).await?;
    let mut changes = diff(&existing, &published);
    changes.last = Some(marker(layout, revision, &published));
    sink.write(&changes).await?;
    tracing::info!(
        target = name,
        revision,
        nodes = published.len(),
        written = changes.put.len(),
        removed = changes.delete.len(),
        "published the whole config"
    );
    loop {
        tokio::select! {
            r = revisions.changed() => if r.is_err() { return Ok(()) },
            _ = sink.lost() => return Err("session lost".into()),
        }
        revisions.borrow_and_update();
        let (nodes, revision) = encode(store, layout, name).await?;
        let mut changes = diff(&published, &nodes);
        if changes.is_empty() {
            continue;
        }
        changes.last = Some(marker(layout, revision, &nodes));
        sink.write(&changes).await?;
        tracing::info!(
            target = name,
            revision,
            written = changes.put.len(),
            removed = changes.delete.len(),
            "published"
        );
        published = nodes;
    }
}
