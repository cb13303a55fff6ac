//! Config sources' state: what `/ready` answers and the sync metrics. Every source (file, admin
//! store, websocket, long polling, ZooKeeper, etcd, …) reports through [`Sources`]; nothing here
//! knows how a source works.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::histogram::Histogram;
use serde::Serialize;

use crate::metrics::{counter, gauge, Esc};

/// One config source as `/ready` reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceState {
    pub name: String,
    /// The source reaches whatever it reads from (file readable, admin/ZooKeeper/etcd connected).
    pub connected: bool,
    /// The running config came from a local cache because the source could not be reached.
    pub serving_from_cache: bool,
    /// Version (revision, file generation, …) of the last config applied from this source.
    pub last_applied_version: Option<u64>,
    /// When it was applied (RFC 3339).
    pub last_applied_at: Option<String>,
    pub applied_total: u64,
    pub rejected_total: u64,
    pub resyncs_total: u64,
    /// Free text for operators: the last error, the server connected to, …
    pub detail: Option<String>,
    #[serde(skip)]
    pending_since: Option<Instant>,
}

impl SourceState {
    fn new(name: &str) -> SourceState {
        SourceState {
            name: name.to_string(),
            connected: false,
            serving_from_cache: false,
            last_applied_version: None,
            last_applied_at: None,
            applied_total: 0,
            rejected_total: 0,
            resyncs_total: 0,
            detail: None,
            pending_since: None,
        }
    }

    /// Seconds a change the source announced has waited to be applied (0 when up to date).
    pub fn lag(&self) -> Duration {
        self.pending_since.map(|t| t.elapsed()).unwrap_or_default()
    }
}

/// Body of `/ready`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    pub ready: bool,
    pub snapshot_loaded: bool,
    pub snapshot_version: Option<u64>,
    pub sources: Vec<SourceState>,
    /// Why not ready, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Readiness and sync state of every config source, plus the config-update and cache metrics.
pub struct Sources {
    states: Mutex<BTreeMap<String, SourceState>>,
    snapshot_loaded: AtomicBool,
    snapshot_version: AtomicU64,
    update_time: Histogram,
    cache: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            states: Mutex::new(BTreeMap::new()),
            snapshot_loaded: AtomicBool::new(false),
            snapshot_version: AtomicU64::new(0),
            update_time: Histogram::new([0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            cache: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Sources {
    pub fn new() -> Arc<Sources> {
        Arc::new(Sources::default())
    }

    fn with<R>(&self, name: &str, f: impl FnOnce(&mut SourceState) -> R) -> R {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        f(states.entry(name.to_string()).or_insert_with(|| SourceState::new(name)))
    }

    /// Declares a source; until it reports, it counts as not connected (so `/ready` says 503).
    pub fn register(&self, name: &str) {
        self.with(name, |_| ());
    }

    /// The source reached (or lost) what it reads from; `from_cache` when a cached config serves.
    pub fn set_connected(&self, name: &str, connected: bool, from_cache: bool) {
        self.with(name, |s| {
            s.connected = connected;
            s.serving_from_cache = from_cache;
        });
    }

    pub fn set_detail(&self, name: &str, detail: Option<String>) {
        self.with(name, |s| s.detail = detail);
    }

    /// The source saw a change it has not applied yet (starts the lag clock).
    pub fn change_seen(&self, name: &str) {
        self.with(name, |s| {
            s.pending_since.get_or_insert_with(Instant::now);
        });
    }

    /// A config from `name` was compiled and swapped in as snapshot `snapshot_version`; `version` is
    /// the source's own version; `build_and_swap` the time from start of compile to end of swap.
    pub fn applied(&self, name: &str, version: u64, snapshot_version: u64, build_and_swap: Duration) {
        self.update_time.observe(build_and_swap.as_secs_f64());
        self.with(name, |s| {
            s.applied_total += 1;
            s.last_applied_version = Some(version);
            s.last_applied_at = Some(chrono::DateTime::<chrono::Utc>::from(SystemTime::now()).to_rfc3339());
            s.pending_since = None;
        });
        self.snapshot_version.store(snapshot_version, Relaxed);
        self.snapshot_loaded.store(true, Relaxed);
    }

    /// A config from `name` failed validation or compilation; the running snapshot stays.
    pub fn rejected(&self, name: &str, error: &str) {
        self.with(name, |s| {
            s.rejected_total += 1;
            s.pending_since = None;
            s.detail = Some(format!("last config rejected: {}", first_line(error)));
        });
    }

    /// The source had to fetch everything again (reconnect, lost events, checksum mismatch).
    pub fn resync(&self, name: &str) {
        self.with(name, |s| s.resyncs_total += 1);
    }

    pub fn cache_hit(&self, level: &str) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).entry(level.to_string()).or_default().0 += 1;
    }

    pub fn cache_miss(&self, level: &str) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).entry(level.to_string()).or_default().1 += 1;
    }

    pub fn state(&self, name: &str) -> Option<SourceState> {
        self.states.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Ready when a snapshot is loaded and every source is connected or serving from its cache.
    pub fn readiness(&self) -> Readiness {
        let sources: Vec<SourceState> =
            self.states.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let loaded = self.snapshot_loaded.load(Relaxed);
        let down: Vec<&str> =
            sources.iter().filter(|s| !s.connected && !s.serving_from_cache).map(|s| s.name.as_str()).collect();
        let reason = if !loaded {
            Some("no config snapshot loaded yet".to_string())
        } else if !down.is_empty() {
            Some(format!("config source(s) not connected and no cache: {}", down.join(", ")))
        } else {
            None
        };
        Readiness {
            ready: reason.is_none(),
            snapshot_loaded: loaded,
            snapshot_version: loaded.then(|| self.snapshot_version.load(Relaxed)),
            sources,
            reason,
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[derive(Debug)]
pub(crate) struct SourcesCollector(pub Arc<Sources>);

impl Collector for SourcesCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let states: Vec<SourceState> =
            self.0.states.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        fn l(s: &SourceState) -> Vec<(&'static str, Esc<'_>)> {
            vec![("source", Esc(&s.name))]
        }
        counter(
            &mut enc,
            "tigateway_config_updates",
            "Configs applied (validated, compiled and swapped in), per source.",
            states.iter().map(|s| (l(s), s.applied_total)),
        )?;
        counter(
            &mut enc,
            "tigateway_config_rejected",
            "Configs a source delivered that failed validation or compilation (the running one stayed).",
            states.iter().map(|s| (l(s), s.rejected_total)),
        )?;
        counter(
            &mut enc,
            "tigateway_sync_resyncs",
            "Full re-fetches of the config by a source.",
            states.iter().map(|s| (l(s), s.resyncs_total)),
        )?;
        gauge(
            &mut enc,
            "tigateway_sync_connected",
            "1 when the source reaches what it reads from.",
            states.iter().map(|s| (l(s), i64::from(s.connected))),
        )?;
        gauge(
            &mut enc,
            "tigateway_sync_serving_from_cache",
            "1 when the running config comes from a local cache because the source is unreachable.",
            states.iter().map(|s| (l(s), i64::from(s.serving_from_cache))),
        )?;
        gauge(
            &mut enc,
            "tigateway_sync_last_applied_version",
            "The source's version of the last config applied from it.",
            states.iter().filter_map(|s| s.last_applied_version.map(|v| (l(s), v as i64))),
        )?;
        gauge(
            &mut enc,
            "tigateway_sync_lag_seconds",
            "How long a change the source announced has been waiting to be applied (0 when up to date).",
            states.iter().map(|s| (l(s), s.lag().as_secs_f64())),
        )?;
        let m = enc.encode_descriptor(
            "tigateway_routes_update_time_seconds",
            "Time to build a config snapshot and swap it in.",
            None,
            self.0.update_time.metric_type(),
        )?;
        self.0.update_time.encode(m)?;

        let cache: Vec<(String, (u64, u64))> =
            self.0.cache.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect();
        fn cl(k: &str) -> Vec<(&'static str, Esc<'_>)> {
            vec![("level", Esc(k))]
        }
        counter(&mut enc, "tigateway_cache_hits", "Config cache hits, per cache level.", {
            cache.iter().map(|(k, v)| (cl(k), v.0))
        })?;
        counter(&mut enc, "tigateway_cache_misses", "Config cache misses, per cache level.", {
            cache.iter().map(|(k, v)| (cl(k), v.1))
        })?;
        gauge(
            &mut enc,
            "tigateway_cache_hit_ratio",
            "hits / (hits + misses) per cache level, from tigateway_cache_hits_total and _misses_total.",
            cache.iter().filter(|(_, v)| v.0 + v.1 > 0).map(|(k, v)| (cl(k), v.0 as f64 / (v.0 + v.1) as f64)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_a_snapshot_and_a_live_or_cached_source() {
        let s = Sources::new();
        s.register("file");
        let r = s.readiness();
        assert!(!r.ready);
        assert_eq!(r.reason.as_deref(), Some("no config snapshot loaded yet"));
        s.set_connected("file", true, false);
        s.applied("file", 7, 2, Duration::from_millis(3));
        assert!(s.readiness().ready);
        s.set_connected("file", false, false);
        let r = s.readiness();
        assert!(!r.ready);
        assert!(r.reason.unwrap().contains("file"));
        s.set_connected("file", false, true);
        let r = s.readiness();
        assert!(r.ready);
        assert!(r.sources[0].serving_from_cache);
        assert_eq!(r.sources[0].last_applied_version, Some(7));
        assert_eq!(r.snapshot_version, Some(2));
    }

    #[test]
    fn lag_runs_from_the_first_unapplied_change() {
        let s = Sources::new();
        s.change_seen("zk");
        std::thread::sleep(Duration::from_millis(20));
        s.change_seen("zk");
        assert!(s.state("zk").unwrap().lag() >= Duration::from_millis(20));
        s.rejected("zk", "bad\nmore");
        let st = s.state("zk").unwrap();
        assert_eq!(st.lag(), Duration::ZERO);
        assert_eq!(st.rejected_total, 1);
        assert_eq!(st.detail.as_deref(), Some("last config rejected: bad"));
    }
}
