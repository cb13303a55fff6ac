//! Following a ShenYu-layout tree in etcd (written by a TiGateway or a ShenYu admin).
//!
//! A range read of the layout's prefix gives the whole tree at one revision; a prefix watch from the
//! next revision gives every later put and delete, in order, with their data. When the watch
//! breaks, it resumes from the last revision seen, so nothing is lost; if etcd has compacted that
//! revision away ("required revision has been compacted") the tree is read whole again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use etcd_client as etcd;
use tokio::sync::mpsc;

use crate::layout::Layout;
use crate::shenyu::{Applier, SyncStatus};
use crate::tree::{spawn_tree, Backoff, SourceHandle, Update};

/// Settings of an etcd source.
#[derive(Debug, Clone)]
pub struct EtcdSource {
    endpoints: Vec<String>,
    layout: Layout,
    credentials: Option<(String, String)>,
    window: Duration,
}

impl EtcdSource {
    /// `endpoints`: `http://host:port`, one or more.
    pub fn new(endpoints: Vec<String>, layout: Layout) -> Self {
        EtcdSource { endpoints, layout, credentials: None, window: Duration::from_millis(20) }
    }

    /// etcd user and password (etcd's own auth).
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// How long a burst of changes is gathered into one snapshot.
    pub fn coalesce(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Starts following the tree on the current tokio runtime; see `ZookeeperSource::spawn`.
    pub fn spawn(self, applier: Applier) -> SourceHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = applier.status().clone();
        let from = format!("etcd {}", self.endpoints.join(","));
        let tree = spawn_tree(self.layout.clone(), "etcd", from, self.window, applier, rx);
        let reader = tokio::spawn(self.run(tx, status));
        SourceHandle { tasks: vec![tree, reader] }
    }

    async fn run(self, tx: mpsc::UnboundedSender<Update>, status: Arc<SyncStatus>) {
        let prefix = format!("{}/", self.layout.root());
        let mut backoff = Backoff::new();
        // The revision whose changes have all been seen; 0 = read everything.
        let mut seen: i64 = 0;
        let unreachable = || {
            if !status.synced.load(Ordering::Acquire) {
                status.unreachable.store(true, Ordering::Release);
            }
        };
        loop {
            let mut client = match connect(&self.endpoints, self.credentials.as_ref()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(endpoints = ?self.endpoints, error = %e, "etcd: cannot connect; retrying");
                    unreachable();
                    backoff.wait().await;
                    continue;
                }
            };
            let result = follow(&mut client, &prefix, &mut seen, &tx, &mut backoff, &status).await;
            status.set_connected(false);
            match result {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, revision = seen, "etcd: watch lost; resuming");
                    if seen == 0 {
                        unreachable();
                    }
                }
            }
            backoff.wait().await;
        }
    }
}

pub(crate) async fn connect(
    endpoints: &[String],
    credentials: Option<&(String, String)>,
) -> Result<etcd::Client, etcd::Error> {
    let mut opts = etcd::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10))
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
    if let Some((u, p)) = credentials {
        opts = opts.with_user(u.clone(), p.clone());
    }
    etcd::Client::connect(endpoints, Some(opts)).await
}

/// Every key under `prefix` with its value, and the revision it was read at.
pub async fn read_prefix(
    client: &mut etcd::Client,
    prefix: &str,
) -> Result<(Vec<(String, Vec<u8>)>, i64), etcd::Error> {
    let resp = client.get(prefix, Some(etcd::GetOptions::new().with_prefix())).await?;
    let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
    let nodes =
        resp.kvs().iter().map(|kv| (String::from_utf8_lossy(kv.key()).into_owned(), kv.value().to_vec())).collect();
    Ok((nodes, revision))
}

/// Reads the whole tree and hands it over; every read after the first is a resync. False when
/// nobody listens any more.
async fn full_read(
    client: &mut etcd::Client,
    prefix: &str,
    seen: &mut i64,
    tx: &mpsc::UnboundedSender<Update>,
    status: &SyncStatus,
) -> Result<bool, String> {
    let first = *seen == 0;
    let (nodes, revision) = read_prefix(client, prefix).await.map_err(|e| format!("reading {prefix}: {e}"))?;
    tracing::info!(nodes = nodes.len(), revision, "etcd: tree read");
    *seen = revision;
    if tx.send(Update::Full(nodes)).is_err() {
        return Ok(false);
    }
    if !first {
        status.resynced();
    }
    status.set_connected(true);
    Ok(true)
}

async fn follow(
    client: &mut etcd::Client,
    prefix: &str,
    seen: &mut i64,
    tx: &mpsc::UnboundedSender<Update>,
    backoff: &mut Backoff,
    status: &SyncStatus,
) -> Result<(), String> {
    if *seen == 0 && !full_read(client, prefix, seen, tx, status).await? {
        return Ok(());
    }
    loop {
        let opts = etcd::WatchOptions::new().with_prefix().with_start_revision(*seen + 1);
        let mut stream = client.watch(prefix, Some(opts)).await.map_err(|e| format!("watch {prefix}: {e}"))?;
        let mut compacted = false;
        while let Some(resp) = stream.message().await.map_err(|e| format!("watch {prefix}: {e}"))? {
            if resp.compact_revision() > 0 || (resp.canceled() && resp.cancel_reason().contains("compacted")) {
                tracing::warn!(
                    wanted = *seen + 1,
                    compacted = resp.compact_revision(),
                    "etcd: the watched revision was compacted; re-reading the tree"
                );
                compacted = true;
                break;
            }
            if resp.canceled() {
                return Err(format!("watch canceled: {}", resp.cancel_reason()));
            }
            if resp.created() {
                backoff.reset();
                status.set_connected(true);
            }
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let update = match ev.event_type() {
                    etcd::EventType::Put => Update::Put(key, kv.value().to_vec()),
                    etcd::EventType::Delete => Update::Delete(key),
                };
                *seen = (*seen).max(kv.mod_revision());
                if tx.send(update).is_err() {
                    return Ok(());
                }
            }
            if let Some(h) = resp.header() {
                // Progress: events up to the header's revision have been delivered.
                if resp.events().is_empty() && !resp.created() {
                    *seen = (*seen).max(h.revision());
                }
            }
        }
        if !compacted {
            return Err("watch stream ended".into());
        }
        if !full_read(client, prefix, seen, tx, status).await? {
            return Ok(());
        }
    }
}
