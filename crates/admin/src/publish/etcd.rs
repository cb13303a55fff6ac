//! Writing the node tree to etcd: one key per node (no directories), changes sent as transactions
//! in batches under etcd's default limits (128 operations, 1.5 MiB per request).

use std::collections::BTreeMap;

use etcd_client as etcd;

use super::layout::{managed, Layout, NodeChanges};
use super::NodeSink;

const BATCH_OPS: usize = 128;
const BATCH_BYTES: usize = 1024 * 1024;

pub(crate) struct EtcdSink {
    client: etcd::Client,
}

impl EtcdSink {
    pub(crate) async fn connect(
        endpoints: &[String],
        credentials: Option<(String, String)>,
    ) -> Result<EtcdSink, String> {
        let mut opts = etcd::ConnectOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(5))
            .with_timeout(std::time::Duration::from_secs(10));
        if let Some((u, p)) = credentials {
            opts = opts.with_user(u, p);
        }
        let client = etcd::Client::connect(endpoints, Some(opts))
            .await
            .map_err(|e| format!("connecting to etcd {endpoints:?}: {e}"))?;
        tracing::info!(?endpoints, "etcd: publisher connected");
        Ok(EtcdSink { client })
    }
}

impl NodeSink for EtcdSink {
    async fn read_all(&mut self, layout: &Layout) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let prefix = format!("{}/", layout.root());
        let (nodes, _) = tigateway_sync::etcd::read_prefix(&mut self.client, &prefix)
            .await
            .map_err(|e| format!("reading {prefix}: {e}"))?;
        Ok(managed(layout, nodes))
    }

    async fn write(&mut self, changes: &NodeChanges) -> Result<(), String> {
        let mut ops: Vec<(etcd::TxnOp, usize)> = Vec::new();
        for (path, data) in &changes.put {
            ops.push((etcd::TxnOp::put(path.as_bytes(), data.as_slice(), None), path.len() + data.len()));
        }
        for path in &changes.delete {
            ops.push((etcd::TxnOp::delete(path.as_bytes(), None), path.len()));
        }
        if let Some((path, data)) = &changes.last {
            ops.push((etcd::TxnOp::put(path.as_bytes(), data.as_slice(), None), path.len() + data.len()));
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut iter = ops.into_iter().peekable();
        while let Some((op, size)) = iter.next() {
            batch.push(op);
            bytes += size;
            let full = batch.len() >= BATCH_OPS || bytes >= BATCH_BYTES;
            if full || iter.peek().is_none() {
                let txn = etcd::Txn::new().and_then(std::mem::take(&mut batch));
                self.client.txn(txn).await.map_err(|e| format!("writing to etcd: {e}"))?;
                bytes = 0;
            }
        }
        Ok(())
    }

    async fn lost(&mut self) {
        std::future::pending::<()>().await
    }
}
