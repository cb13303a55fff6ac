//! Writing the node tree to ZooKeeper: persistent nodes, parents created as empty directories (as
//! ShenYu's Curator client does), changes sent as `multi` transactions in batches.

use std::collections::{BTreeMap, BTreeSet};

use zookeeper_client as zk;

use super::layout::{managed, Layout, NodeChanges};
use super::NodeSink;

/// ZooKeeper refuses requests over `jute.maxbuffer` (1 MiB by default); stay well below.
const BATCH_BYTES: usize = 512 * 1024;
const BATCH_OPS: usize = 500;

pub(crate) struct ZkSink {
    client: zk::Client,
    state: zk::StateWatcher,
    secured: bool,
    /// Every node known to exist (directories included), to choose create or set and to create
    /// parents once.
    known: BTreeSet<String>,
}

impl ZkSink {
    pub(crate) async fn connect(
        servers: &str,
        credentials: Option<(String, String)>,
        session_timeout: std::time::Duration,
    ) -> Result<ZkSink, String> {
        let mut c = zk::Client::connector()
            .with_session_timeout(session_timeout)
            .with_connection_timeout(std::time::Duration::from_secs(5));
        if let Some((u, p)) = &credentials {
            c = c.with_auth("digest", format!("{u}:{p}").as_bytes());
        }
        let client = c.connect(servers).await.map_err(|e| format!("connecting to zookeeper {servers}: {e}"))?;
        let state = client.state_watcher();
        tracing::info!(servers, session = %client.session_id(), "zookeeper: publisher connected");
        Ok(ZkSink { client, state, secured: credentials.is_some(), known: BTreeSet::new() })
    }

    fn options(&self) -> zk::CreateOptions<'static> {
        // With credentials: only the identity that created a node may read or change it (a gateway
        // presents the same digest); without: open, as ShenYu's default.
        let acls = if self.secured { zk::Acls::creator_all() } else { zk::Acls::anyone_all() };
        zk::CreateMode::Persistent.with_acls(acls)
    }

    async fn ensure_parents(&mut self, path: &str) -> Result<(), String> {
        let options = self.options();
        for parent in Layout::parents(path) {
            if self.known.contains(parent) {
                continue;
            }
            match self.client.create(parent, &[], &options).await {
                Ok(_) | Err(zk::Error::NodeExists) => {
                    self.known.insert(parent.to_string());
                }
                Err(e) => return Err(format!("creating {parent}: {e}")),
            }
        }
        Ok(())
    }

    fn has_children(&self, path: &str) -> bool {
        let prefix = format!("{path}/");
        self.known.range(prefix.clone()..).next().is_some_and(|p| p.starts_with(&prefix))
    }
}

impl NodeSink for ZkSink {
    async fn read_all(&mut self, layout: &Layout) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let root = layout.root();
        let tree = tigateway_sync::zookeeper::read_tree(&self.client, &root)
            .await
            .map_err(|e| format!("reading {root}: {e}"))?;
        self.known = tree.iter().map(|(p, _)| p.clone()).collect();
        Ok(managed(layout, tree))
    }

    async fn write(&mut self, changes: &NodeChanges) -> Result<(), String> {
        for (path, _) in changes.put.iter().chain(&changes.last) {
            if !self.known.contains(path) {
                self.ensure_parents(path).await?;
            }
        }
        let options = self.options();
        let mut ops: Vec<(String, Op<'_>)> = Vec::new();
        for (path, data) in &changes.put {
            let op = if self.known.contains(path) { Op::Set(data) } else { Op::Create(data) };
            ops.push((path.clone(), op));
        }
        for path in &changes.delete {
            // A metadata node can have others below it (2.7 nests raw paths): empty it instead.
            let op = if self.has_children(path) { Op::Set(&[]) } else { Op::Delete };
            ops.push((path.clone(), op));
        }
        if let Some((path, data)) = &changes.last {
            let op = if self.known.contains(path) { Op::Set(data) } else { Op::Create(data) };
            ops.push((path.clone(), op));
        }
        let mut start = 0;
        while start < ops.len() {
            let mut end = start;
            let mut bytes = 0;
            let mut writer = self.client.new_multi_writer();
            while end < ops.len() && end - start < BATCH_OPS && (bytes < BATCH_BYTES || end == start) {
                let (path, op) = &ops[end];
                let r = match op {
                    Op::Create(d) => {
                        bytes += d.len() + path.len();
                        writer.add_create(path, d, &options)
                    }
                    Op::Set(d) => {
                        bytes += d.len() + path.len();
                        writer.add_set_data(path, d, None)
                    }
                    Op::Delete => {
                        bytes += path.len();
                        writer.add_delete(path, None)
                    }
                };
                r.map_err(|e| format!("{path}: {e}"))?;
                end += 1;
            }
            writer.commit().await.map_err(|e| match e {
                zk::MultiWriteError::OperationFailed { index, source } => {
                    format!("writing {}: {source}", ops[start + index].0)
                }
                other => format!("writing to zookeeper: {other}"),
            })?;
            for (path, op) in &ops[start..end] {
                match op {
                    Op::Create(_) => {
                        self.known.insert(path.clone());
                    }
                    Op::Delete => {
                        self.known.remove(path);
                    }
                    Op::Set(_) => {}
                }
            }
            start = end;
        }
        Ok(())
    }

    async fn lost(&mut self) {
        loop {
            match self.state.changed().await {
                zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed => return,
                _ => {}
            }
        }
    }
}

enum Op<'a> {
    Create(&'a [u8]),
    Set(&'a [u8]),
    Delete,
}
