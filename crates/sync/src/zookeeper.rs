//! Following a ShenYu-layout tree in ZooKeeper (written by a TiGateway or a ShenYu admin).
//!
//! One persistent recursive watch on the layout's root (ZooKeeper 3.6+, what ShenYu's Curator
//! cache uses too) reports every node created, changed or deleted below it; the watch is set before
//! the first full read, so nothing written meanwhile is missed. Events do not carry data, so each
//! changed path is read again (many at once, pipelined on the one connection). While the client is
//! disconnected the server does not queue events for persistent watches, so a reconnect within the
//! session re-reads the whole tree; an expired session gets a new client and a whole re-read too.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::FutureExt;
use tokio::sync::mpsc;
use zookeeper_client as zk;

use crate::layout::Layout;
use crate::shenyu::{Applier, SyncStatus};
use crate::tree::{spawn_tree, Backoff, SourceHandle, Update};

/// Settings of a ZooKeeper source.
#[derive(Debug, Clone)]
pub struct ZookeeperSource {
    servers: String,
    layout: Layout,
    credentials: Option<(String, String)>,
    session_timeout: Duration,
    window: Duration,
}

impl ZookeeperSource {
    /// `servers`: `host:port[,host:port…]`, as ZooKeeper's connect string.
    pub fn new(servers: impl Into<String>, layout: Layout) -> Self {
        ZookeeperSource {
            servers: servers.into(),
            layout,
            credentials: None,
            session_timeout: Duration::from_secs(10),
            window: Duration::from_millis(20),
        }
    }

    /// Digest credentials (`user`, `password`), needed when the admin protects the tree with ACLs.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    pub fn session_timeout(mut self, t: Duration) -> Self {
        self.session_timeout = t;
        self
    }

    /// How long a burst of changes is gathered into one snapshot.
    pub fn coalesce(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Starts following the tree on the current tokio runtime; each whole config is offered to
    /// `applier`, which also receives the connection state.
    pub fn spawn(self, applier: Applier) -> SourceHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = applier.status().clone();
        let from = format!("zookeeper {}", self.servers);
        let tree = spawn_tree(self.layout.clone(), "zookeeper", from, self.window, applier, rx);
        let reader = tokio::spawn(self.run(tx, status));
        SourceHandle { tasks: vec![tree, reader] }
    }

    async fn connect(&self) -> Result<zk::Client, zk::Error> {
        let mut c = zk::Client::connector()
            .with_session_timeout(self.session_timeout)
            .with_connection_timeout(Duration::from_secs(5));
        if let Some((u, p)) = &self.credentials {
            c = c.with_auth("digest", format!("{u}:{p}").as_bytes());
        }
        c.connect(&self.servers).await
    }

    async fn run(self, tx: mpsc::UnboundedSender<Update>, status: Arc<SyncStatus>) {
        let root = self.layout.root();
        let mut backoff = Backoff::new();
        let mut reads = 0u64;
        loop {
            let client = match self.connect().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(servers = %self.servers, error = %e, "zookeeper: cannot connect; retrying");
                    if !status.synced.load(Ordering::Acquire) {
                        status.unreachable.store(true, Ordering::Release);
                    }
                    backoff.wait().await;
                    continue;
                }
            };
            tracing::info!(servers = %self.servers, session = %client.session_id(), root = %root, "zookeeper: connected");
            let result = self.follow(&client, &root, &tx, &mut backoff, &status, &mut reads).await;
            status.set_connected(false);
            match result {
                Ok(()) => return, // the applier is gone: the source was dropped
                Err(e) => tracing::warn!(error = %e, "zookeeper: session lost; reconnecting with a full re-read"),
            }
            backoff.wait().await;
        }
    }

    /// Follows the tree on one session; returns when the session is gone (Err) or nobody listens.
    async fn follow(
        &self,
        client: &zk::Client,
        root: &str,
        tx: &mpsc::UnboundedSender<Update>,
        backoff: &mut Backoff,
        status: &SyncStatus,
        reads: &mut u64,
    ) -> Result<(), String> {
        let mut watcher = client
            .watch(root, zk::AddWatchMode::PersistentRecursive)
            .await
            .map_err(|e| format!("watch {root}: {e}"))?;
        let full = read_tree(client, root).await.map_err(|e| format!("reading {root}: {e}"))?;
        tracing::info!(nodes = full.len(), "zookeeper: tree read");
        if !whole_read(tx, full, status, reads) {
            return Ok(());
        }
        backoff.reset();
        let mut stale = false;
        loop {
            let first = watcher.changed().await;
            let mut events = vec![first];
            // Take what else is queued, but never poll past a terminal session event: the client
            // drops the watcher's channel after it, and polling a closed one panics in the crate.
            while !events.last().is_some_and(terminal) {
                match watcher.changed().now_or_never() {
                    Some(ev) => events.push(ev),
                    None => break,
                }
            }
            let mut paths = BTreeSet::new();
            let mut reread = false;
            for ev in events {
                match ev.event_type {
                    zk::EventType::Session => match ev.session_state {
                        zk::SessionState::Disconnected => {
                            tracing::warn!("zookeeper: disconnected; serving the current config");
                            status.set_connected(false);
                            stale = true;
                        }
                        zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                            if stale {
                                reread = true;
                                stale = false;
                            }
                        }
                        state => return Err(format!("session {state:?}")),
                    },
                    zk::EventType::NodeCreated | zk::EventType::NodeDataChanged | zk::EventType::NodeDeleted => {
                        paths.insert(ev.path);
                    }
                    zk::EventType::NodeChildrenChanged => {}
                }
            }
            if reread {
                tracing::info!("zookeeper: reconnected; re-reading the tree");
                let full = read_tree(client, root).await.map_err(|e| format!("re-reading {root}: {e}"))?;
                if !whole_read(tx, full, status, reads) {
                    return Ok(());
                }
                continue;
            }
            let paths: Vec<String> = paths.into_iter().collect();
            let reads = join_all(paths.iter().map(|p| client.get_data(p))).await;
            for (path, r) in paths.into_iter().zip(reads) {
                let update = match r {
                    Ok((data, _)) => Update::Put(path, data),
                    Err(zk::Error::NoNode) => Update::Delete(path),
                    Err(zk::Error::ConnectionLoss) => {
                        // The reconnect's full re-read covers this path.
                        stale = true;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(path = %path, error = %e, "zookeeper: cannot read a changed node");
                        if matches!(e, zk::Error::SessionExpired | zk::Error::ClientClosed) {
                            return Err(e.to_string());
                        }
                        continue;
                    }
                };
                if tx.send(update).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Hands a whole read to the tree; the source is connected from here, and every read after the
/// first is a resync. False when nobody listens any more.
fn whole_read(
    tx: &mpsc::UnboundedSender<Update>,
    nodes: Vec<(String, Vec<u8>)>,
    status: &SyncStatus,
    reads: &mut u64,
) -> bool {
    if tx.send(Update::Full(nodes)).is_err() {
        return false;
    }
    if *reads > 0 {
        status.resynced();
    }
    *reads += 1;
    status.set_connected(true);
    true
}

fn terminal(ev: &zk::WatchedEvent) -> bool {
    ev.event_type == zk::EventType::Session
        && matches!(
            ev.session_state,
            zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed
        )
}

/// Every node under `root` (root included) with its data, level by level, each level's reads
/// pipelined. A missing root is an empty tree.
pub async fn read_tree(client: &zk::Client, root: &str) -> Result<Vec<(String, Vec<u8>)>, zk::Error> {
    let mut out = Vec::new();
    let mut level = vec![root.to_string()];
    while !level.is_empty() {
        let datas = join_all(level.iter().map(|p| client.get_data(p))).await;
        let kids = join_all(level.iter().map(|p| client.list_children(p))).await;
        let mut next = Vec::new();
        for ((path, data), children) in level.into_iter().zip(datas).zip(kids) {
            let data = match data {
                Ok((d, _)) => d,
                Err(zk::Error::NoNode) => continue,
                Err(e) => return Err(e),
            };
            match children {
                Ok(c) => {
                    for child in c {
                        next.push(if path == "/" { format!("/{child}") } else { format!("{path}/{child}") });
                    }
                }
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(e),
            }
            out.push((path, data));
        }
        level = next;
    }
    Ok(out)
}
