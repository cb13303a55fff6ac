//! The process-wide table of peers. Snapshots come and go; the registry hands every new upstream set the
//! same [`Peer`] for the same address, so health and load survive a config swap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use tigateway_model::UpstreamConfig;

use crate::peer::{PassiveParams, Peer};
use crate::spec::{scheme_str, UpstreamSpec};

/// Holds peers weakly: a peer lives as long as some upstream set (or an in-flight request, or a health
/// probe) holds it, and its entry is swept once it is gone. Sweeping happens on insert once the table
/// has doubled since the last sweep, so churn in discovery cannot grow it without bound.
#[derive(Debug)]
pub struct Registry {
    params: Arc<PassiveParams>,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    peers: HashMap<String, Weak<Peer>>,
    sweep_at: usize,
}

const MIN_SWEEP_AT: usize = 64;

impl Registry {
    pub fn new(cfg: &UpstreamConfig) -> Registry {
        Registry {
            params: Arc::new(PassiveParams {
                max_fails: AtomicU32::new(cfg.max_fails),
                fail_timeout_ms: AtomicU64::new(cfg.fail_timeout_ms),
            }),
            table: Mutex::new(Table { peers: HashMap::new(), sweep_at: MIN_SWEEP_AT }),
        }
    }

    /// Takes the passive health parameters of a new config; they apply to every peer at once.
    pub fn set_config(&self, cfg: &UpstreamConfig) {
        self.set_passive(cfg.max_fails, cfg.fail_timeout_ms);
    }

    pub fn set_passive(&self, max_fails: u32, fail_timeout_ms: u64) {
        self.params.max_fails.store(max_fails, Relaxed);
        self.params.fail_timeout_ms.store(fail_timeout_ms, Relaxed);
    }

    pub fn max_fails(&self) -> u32 {
        self.params.max_fails.load(Relaxed)
    }

    pub fn fail_timeout_ms(&self) -> u64 {
        self.params.fail_timeout_ms.load(Relaxed)
    }

    /// The peer for `spec`'s `scheme://authority`, created if no live one exists.
    pub fn get_or_insert(&self, spec: &UpstreamSpec) -> Arc<Peer> {
        let key = spec.key();
        let mut table = self.lock();
        if let Some(peer) = table.peers.get(&key).and_then(Weak::upgrade) {
            return peer;
        }
        let authority_at = scheme_str(spec.scheme).len() + 3;
        let peer = Arc::new(Peer::new(spec.scheme, key.clone(), authority_at, Arc::clone(&self.params)));
        table.peers.insert(key, Arc::downgrade(&peer));
        if table.peers.len() >= table.sweep_at {
            table.peers.retain(|_, w| w.strong_count() > 0);
            table.sweep_at = (table.peers.len() * 2).max(MIN_SWEEP_AT);
        }
        peer
    }

    /// The live peer with this `scheme://authority` key.
    pub fn get(&self, key: &str) -> Option<Arc<Peer>> {
        self.lock().peers.get(key).and_then(Weak::upgrade)
    }

    /// Every live peer, e.g. as the targets of active health checks.
    pub fn peers(&self) -> Vec<Arc<Peer>> {
        self.lock().peers.values().filter_map(Weak::upgrade).collect()
    }

    /// Drops entries of peers nothing uses any more; returns how many.
    pub fn prune(&self) -> usize {
        let mut table = self.lock();
        let before = table.peers.len();
        table.peers.retain(|_, w| w.strong_count() > 0);
        table.sweep_at = (table.peers.len() * 2).max(MIN_SWEEP_AT);
        before - table.peers.len()
    }

    /// Entries in the table, dead ones not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table is consistent after every statement, so a panic elsewhere cannot leave it broken.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(&UpstreamConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> UpstreamSpec {
        UpstreamSpec::from_url(url, 1).unwrap()
    }

    #[test]
    fn same_key_same_peer_until_dropped() {
        let r = Registry::default();
        let a = r.get_or_insert(&spec("http://h:1"));
        let b = r.get_or_insert(&spec("h:1"));
        assert!(Arc::ptr_eq(&a, &b));
        let c = r.get_or_insert(&spec("h2c://h:1"));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.key(), "h2c://h:1");
        assert_eq!(c.authority(), "h:1");
        assert_eq!(r.len(), 2);
        a.record_failure_at(1);
        drop(b);
        // Still held by `a`: state survives.
        assert_eq!(r.get("http://h:1").unwrap().failures(), 1);
        drop(a);
        assert!(r.get("http://h:1").is_none());
        assert_eq!(r.peers().len(), 1);
        assert_eq!(r.prune(), 1);
        assert_eq!(r.len(), 1);
        // A new peer for an old address starts fresh.
        assert_eq!(r.get_or_insert(&spec("http://h:1")).failures(), 0);
    }

    #[test]
    fn sweeps_dead_entries_on_growth() {
        let r = Registry::default();
        for i in 0..1000 {
            drop(r.get_or_insert(&spec(&format!("h:{}", i + 1))));
        }
        assert!(r.len() <= MIN_SWEEP_AT, "{}", r.len());
    }

    #[test]
    fn passive_params_apply_to_existing_peers() {
        let r = Registry::default();
        let p = r.get_or_insert(&spec("h:1"));
        r.set_config(&UpstreamConfig { max_fails: 1, fail_timeout_ms: 50, ..Default::default() });
        assert_eq!((r.max_fails(), r.fail_timeout_ms()), (1, 50));
        p.record_failure_at(10);
        assert!(!p.is_available(59));
        assert!(p.is_available(60));
    }
}
