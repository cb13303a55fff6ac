//! Gateway-side state shared by the sync sources: a working copy of the config that ShenYu's group
//! events edit (websocket, long polling), the status a readiness probe reads, and the [`Applier`]
//! that every sync method — websocket, long polling, ZooKeeper, etcd — hands whole configs to: it
//! validates and compiles them through `prepare`, swaps them whole at most once per coalescing
//! window, writes the disk cache, and runs the one start-up fallback to the cache levels.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;
use tigateway_model::sync_wire::{item_key, Group};
use tigateway_model::Config;
use tokio::sync::watch;

use crate::cache::{CacheLevels, Cached, DiskCache};

/// Receives a sync source's state changes as they happen. The binary forwards them to readiness
/// and the sync metrics, which live in a crate this one does not depend on.
pub trait Report: Send + Sync {
    /// `connected`: the source reaches what it reads from; `from_cache`: the running config is not
    /// the source's current one (a cache level at start-up, or the last config applied before the
    /// connection was lost, which keeps serving).
    fn state(&self, connected: bool, from_cache: bool);
    /// The source fetched everything again (reconnect, missed revision, lost session, compaction).
    fn resync(&self);
    /// A cache level was asked for a config at start-up.
    fn cache(&self, level: &str, hit: bool);
    /// A config from the source did not validate or compile; the running one stays.
    fn rejected(&self, error: &str);
}

/// Counters and flags of one sync source (websocket, long polling, ZooKeeper, etcd); cheap to read
/// from anywhere. Changes go through the methods, which also tell the [`Report`] at once.
#[derive(Default)]
pub struct SyncStatus {
    /// The served config came from a cache because the source did not answer yet.
    pub serving_from_cache: AtomicBool,
    /// A config from the source has been applied since start.
    pub synced: AtomicBool,
    /// Connected to the source right now.
    pub connected: AtomicBool,
    /// The source failed before any config arrived (every admin URL once, or the tree's servers):
    /// start-up need not wait any longer before falling back to the cache.
    pub unreachable: AtomicBool,
    pub applied: AtomicU64,
    /// Configs from the source that did not validate or compile (the previous one kept serving).
    pub rejected: AtomicU64,
    /// Messages that could not be read and were skipped.
    pub malformed: AtomicU64,
    pub resyncs: AtomicU64,
    /// Full syncs after which the gateway's hashes differed from the admin's.
    pub hash_mismatches: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// The admin URL currently (or last) followed.
    pub admin: Mutex<String>,
    name: &'static str,
    report: Option<Box<dyn Report>>,
    /// Serialises reading the flags and reporting them, so reports arrive in the order of changes.
    state: Mutex<()>,
}

impl std::fmt::Debug for SyncStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncStatus")
            .field("name", &self.name)
            .field("synced", &self.synced)
            .field("connected", &self.connected)
            .field("serving_from_cache", &self.serving_from_cache)
            .finish_non_exhaustive()
    }
}

impl SyncStatus {
    /// The status of the source called `name` (in logs: "config from {name} applied"), telling
    /// `report` of every change.
    pub fn new(name: &'static str, report: Option<Box<dyn Report>>) -> SyncStatus {
        SyncStatus { name, report, ..SyncStatus::default() }
    }

    /// The source's name, for logs.
    pub fn name(&self) -> &'static str {
        if self.name.is_empty() {
            "sync"
        } else {
            self.name
        }
    }

    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_connected(&self, connected: bool) {
        self.set(&self.connected, connected);
    }

    pub fn set_serving_from_cache(&self, from_cache: bool) {
        self.set(&self.serving_from_cache, from_cache);
    }

    /// A config from the source itself is serving.
    fn set_synced(&self) {
        let _g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.synced.store(true, Ordering::Release);
        self.serving_from_cache.store(false, Ordering::Release);
        self.report_state();
    }

    fn set(&self, flag: &AtomicBool, value: bool) {
        let _g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if flag.swap(value, Ordering::AcqRel) != value {
            self.report_state();
        }
    }

    /// A source that lost its connection after applying a config keeps serving that config: it is
    /// reported as serving from cache (as a file source whose file went away), so a gateway stays
    /// ready while its admin or ZooKeeper restarts.
    fn report_state(&self) {
        if let Some(r) = &self.report {
            let connected = self.connected.load(Ordering::Acquire);
            let from_cache =
                self.serving_from_cache.load(Ordering::Acquire) || (!connected && self.synced.load(Ordering::Acquire));
            r.state(connected, from_cache);
        }
    }

    pub fn resynced(&self) {
        SyncStatus::count(&self.resyncs);
        if let Some(r) = &self.report {
            r.resync();
        }
    }

    pub fn cache_looked_up(&self, level: &str, hit: bool) {
        SyncStatus::count(if hit { &self.cache_hits } else { &self.cache_misses });
        if let Some(r) = &self.report {
            r.cache(level, hit);
        }
    }

    fn refused(&self, error: &str) {
        SyncStatus::count(&self.rejected);
        if let Some(r) = &self.report {
            r.rejected(error);
        }
    }
}

/// The first `n` characters of a message, for logs about messages that are skipped.
pub fn summary(text: &str) -> String {
    const MAX: usize = 200;
    let mut s: String = text.chars().take(MAX).collect();
    if text.chars().count() > MAX {
        s.push('…');
    }
    s
}

/// A working copy of the config, edited group by group as ShenYu's events say.
#[derive(Debug, Clone, Default)]
pub struct GroupState {
    pub config: Config,
}

fn parse_items<T: DeserializeOwned>(group: Group, data: &[Value]) -> Result<Vec<T>, String> {
    data.iter()
        .enumerate()
        .map(|(i, v)| serde_json::from_value(v.clone()).map_err(|e| format!("{group} item {i}: {e}")))
        .collect()
}

fn keys(group: Group, data: &[Value]) -> Result<Vec<String>, String> {
    data.iter()
        .enumerate()
        .map(|(i, v)| item_key(group, v).ok_or_else(|| format!("{group} item {i} has no key")))
        .collect()
}

/// Replaces items with the same key in place and appends new ones. Keys are looked up through a
/// map built once per message: a full sync of 10,000 rules into a list of 10,000 must not cost
/// 10,000 × 10,000 string comparisons.
fn upsert<T>(list: &mut Vec<T>, items: Vec<T>, key: impl Fn(&T) -> &str) {
    let mut at: std::collections::HashMap<String, usize> =
        list.iter().enumerate().map(|(i, x)| (key(x).to_string(), i)).collect();
    for item in items {
        match at.get(key(&item)) {
            Some(&i) => list[i] = item,
            None => {
                at.insert(key(&item).to_string(), list.len());
                list.push(item);
            }
        }
    }
}

fn remove<T>(list: &mut Vec<T>, gone: &[String], key: impl Fn(&T) -> &str) {
    let gone: std::collections::HashSet<&str> = gone.iter().map(String::as_str).collect();
    list.retain(|x| !gone.contains(key(x)));
}

/// What a message asked the state to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// A group or event this gateway does not hold (PROXY_SELECTOR, AI_PROXY_API_KEY, …).
    Ignored,
}

impl GroupState {
    /// Applies one event to the copy. REFRESH, MYSELF, CREATE and UPDATE upsert by key (ShenYu's
    /// REFRESH/MYSELF also only re-add what is listed); DELETE removes by key, and deleting a
    /// selector takes its upstream list along (ShenYu drops upstreams with the selector). A bad
    /// item fails the whole message and leaves the copy as it was.
    pub fn apply(&mut self, group: &str, event: &str, data: &[Value]) -> Result<Applied, String> {
        let Some(g) = Group::parse(group) else { return Ok(Applied::Ignored) };
        if !g.carried() {
            return Ok(Applied::Ignored);
        }
        let c = &mut self.config;
        match event {
            "REFRESH" | "MYSELF" | "CREATE" | "UPDATE" => match g {
                Group::Plugin => upsert(&mut c.plugins, parse_items(g, data)?, |p| &p.name),
                Group::Selector => upsert(&mut c.selectors, parse_items(g, data)?, |s| &s.id),
                Group::Rule => upsert(&mut c.rules, parse_items(g, data)?, |r| &r.id),
                Group::MetaData => upsert(&mut c.metadata, parse_items(g, data)?, |m| &m.path),
                Group::AppAuth => upsert(&mut c.app_auth, parse_items(g, data)?, |a| &a.app_key),
                Group::DiscoverUpstream => {
                    upsert(&mut c.discovery_upstreams, parse_items(g, data)?, |d| &d.selector_id)
                }
                Group::Route => upsert(&mut c.routes, parse_items(g, data)?, |r| &r.id),
                _ => return Ok(Applied::Ignored),
            },
            "DELETE" => {
                let gone = keys(g, data)?;
                match g {
                    Group::Plugin => remove(&mut c.plugins, &gone, |p| &p.name),
                    Group::Selector => {
                        remove(&mut c.selectors, &gone, |s| &s.id);
                        remove(&mut c.discovery_upstreams, &gone, |d| &d.selector_id);
                    }
                    Group::Rule => remove(&mut c.rules, &gone, |r| &r.id),
                    Group::MetaData => remove(&mut c.metadata, &gone, |m| &m.path),
                    Group::AppAuth => remove(&mut c.app_auth, &gone, |a| &a.app_key),
                    Group::DiscoverUpstream => remove(&mut c.discovery_upstreams, &gone, |d| &d.selector_id),
                    Group::Route => remove(&mut c.routes, &gone, |r| &r.id),
                    _ => return Ok(Applied::Ignored),
                }
            }
            _ => return Ok(Applied::Ignored),
        }
        Ok(Applied::Changed)
    }

    /// Replaces a whole group (what a long-polling fetch delivers).
    pub fn replace(&mut self, group: Group, data: &[Value]) -> Result<Applied, String> {
        let c = &mut self.config;
        match group {
            Group::Plugin => c.plugins = parse_items(group, data)?,
            Group::Selector => c.selectors = parse_items(group, data)?,
            Group::Rule => c.rules = parse_items(group, data)?,
            Group::MetaData => c.metadata = parse_items(group, data)?,
            Group::AppAuth => c.app_auth = parse_items(group, data)?,
            Group::DiscoverUpstream => c.discovery_upstreams = parse_items(group, data)?,
            Group::Route => c.routes = parse_items(group, data)?,
            Group::ProxySelector | Group::AiProxyApiKey => return Ok(Applied::Ignored),
        }
        Ok(Applied::Changed)
    }
}

/// A ShenYu admin lists every plugin it knows (dozens this build has never heard of). Those with
/// no selector are removed before validation, so they cannot make the whole config invalid; one
/// that has selectors stays and is refused by validation, since skipping a plugin that was meant
/// to act on traffic (an auth plugin, say) would be worse than keeping the previous config.
pub fn drop_idle_unknown_plugins(cfg: &mut Config) -> Vec<String> {
    let mut dropped = Vec::new();
    let selectors = &cfg.selectors;
    cfg.plugins.retain(|p| {
        let keep = tigateway_model::builtin_plugin_order(&p.name).is_some()
            || selectors.iter().any(|s| s.plugin_name == p.name);
        if !keep {
            dropped.push(p.name.clone());
        }
        keep
    });
    if !dropped.is_empty() {
        tracing::debug!(plugins = ?dropped, "plugins unknown to this build and without selectors are ignored");
    }
    dropped
}

/// Where a config handed to the [`Applier`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Delivered by the source itself; says from where (admin URL, ZooKeeper servers, etcd
    /// endpoints).
    Live(String),
    /// Read from a cache level at start-up (the Redis key or the file).
    Cache(String),
}

struct Offer {
    config: Arc<Config>,
    from: String,
    revision: Option<i64>,
}

/// Offers not applied yet. Live and cached configs have a slot each, so a cached config offered at
/// start-up can never push out a config the source delivered a moment before.
#[derive(Default)]
struct Inbox {
    live: Option<Offer>,
    cache: Option<Offer>,
}

#[derive(Default)]
struct Shared {
    inbox: Mutex<Inbox>,
    /// Cached configs that did not validate or compile (start-up then asks the next level).
    cache_refused: AtomicU64,
}

type PrepareApply = Box<dyn Fn(Config) -> Result<Box<dyn FnOnce() + Send>, String> + Send + Sync>;

/// Applies the newest offered config, at most once per `window`: a storm of events costs one
/// snapshot per window, and the snapshot is always the latest state. Every sync source (websocket,
/// long polling, ZooKeeper, etcd) and the start-up cache fallback go through it.
#[derive(Clone)]
pub struct Applier {
    shared: Arc<Shared>,
    wake: watch::Sender<()>,
    status: Arc<SyncStatus>,
}

/// What a gateway serves once start-up is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstConfig {
    /// A config from the source itself.
    Source,
    /// A config from this cache level (`redis`, `disk`), until the source answers.
    Cache(&'static str),
    /// Nothing yet: the source did not answer and no cache level held a usable config.
    Nothing,
}

impl Applier {
    /// `prepare` validates and compiles (off the request path); `apply` swaps the result in; each
    /// config from the source is then written to `cache`. Runs on the current tokio runtime.
    pub fn start<T, P, A>(
        prepare: P,
        apply: A,
        cache: Option<DiskCache>,
        status: Arc<SyncStatus>,
        window: Duration,
    ) -> Applier
    where
        T: Send + 'static,
        P: Fn(Config) -> Result<T, String> + Send + Sync + 'static,
        A: Fn(T) + Send + Sync + 'static,
    {
        let apply = Arc::new(apply);
        let both: PrepareApply = Box::new(move |cfg| {
            let t = prepare(cfg)?;
            let apply = apply.clone();
            Ok(Box::new(move || apply(t)))
        });
        let both = Arc::new(both);
        let shared = Arc::new(Shared::default());
        let (wake, mut rx) = watch::channel(());
        let (st, sh) = (status.clone(), shared.clone());
        tokio::spawn(async move {
            let mut last: Option<Instant> = None;
            while rx.changed().await.is_ok() {
                if let Some(at) = last {
                    let wait = window.saturating_sub(at.elapsed());
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
                rx.borrow_and_update();
                let (live, cached) = {
                    let mut inbox = sh.inbox.lock().unwrap_or_else(|p| p.into_inner());
                    (inbox.live.take(), inbox.cache.take())
                };
                // The live config first: when it is applied, the cached one is not needed.
                for (offer, live) in [(live, true), (cached, false)] {
                    let Some(offer) = offer else { continue };
                    if !live && st.synced.load(Ordering::Acquire) {
                        continue;
                    }
                    last = Some(Instant::now());
                    apply_one(&both, &st, &sh, cache.as_ref(), offer, live).await;
                }
            }
        });
        Applier { shared, wake, status }
    }

    pub fn offer(&self, cfg: Config, origin: Origin) {
        self.offer_revision(cfg, origin, None);
    }

    /// As [`Applier::offer`]; `revision` is the admin revision the config is, when the source
    /// knows it (logged once applied).
    pub fn offer_revision(&self, cfg: Config, origin: Origin, revision: Option<i64>) {
        {
            let mut inbox = self.shared.inbox.lock().unwrap_or_else(|p| p.into_inner());
            let (slot, from) = match origin {
                Origin::Live(from) => (&mut inbox.live, from),
                Origin::Cache(from) => (&mut inbox.cache, from),
            };
            *slot = Some(Offer { config: Arc::new(cfg), from, revision });
        }
        self.wake.send_replace(());
    }

    pub fn status(&self) -> &Arc<SyncStatus> {
        &self.status
    }

    /// Start-up, the same for every sync method: waits up to `wait` for the source's first config
    /// (less when the source reports it unreachable), then asks the cache levels in order — Redis,
    /// then disk — and serves the first config that compiles until the source answers. Each level
    /// asked counts a hit or a miss under its name.
    pub async fn first_config(&self, levels: &CacheLevels, wait: Duration) -> FirstConfig {
        let st = &self.status;
        let name = st.name();
        let deadline = Instant::now() + wait;
        while !st.synced.load(Ordering::Acquire) && !st.unreachable.load(Ordering::Acquire) && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if st.synced.load(Ordering::Acquire) {
            return FirstConfig::Source;
        }
        if let Some(redis) = &levels.redis {
            if let Some(done) = self.try_level("redis", redis.load().await).await {
                return done;
            }
        }
        if let Some(disk) = levels.disk.clone() {
            let path = disk.path();
            let loaded = tokio::task::spawn_blocking(move || disk.load()).await.unwrap_or_else(|e| Err(e.to_string()));
            if let Some(done) = self.try_level("disk", loaded).await {
                return done;
            }
            tracing::error!(
                source = name,
                cache = %path.display(),
                "no config from {name} and no cached config: nothing is routed until {name} answers"
            );
        }
        FirstConfig::Nothing
    }

    /// Offers what a cache level held and waits for the verdict; None: try the next level.
    async fn try_level(&self, level: &'static str, loaded: Result<Option<Cached>, String>) -> Option<FirstConfig> {
        let st = &self.status;
        let name = st.name();
        let cached = match loaded {
            Ok(Some(c)) => c,
            Ok(None) => {
                st.cache_looked_up(level, false);
                tracing::warn!(source = name, level, "no config from {name} yet and the {level} cache holds none");
                return None;
            }
            Err(e) => {
                st.cache_looked_up(level, false);
                tracing::warn!(source = name, level, error = %e, "no config from {name} yet and the {level} cache cannot be read");
                return None;
            }
        };
        let refused = self.shared.cache_refused.load(Ordering::Acquire);
        let at = cached.path.display().to_string();
        self.offer(cached.config, Origin::Cache(at.clone()));
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            if st.synced.load(Ordering::Acquire) {
                return Some(FirstConfig::Source);
            }
            if st.serving_from_cache.load(Ordering::Acquire) {
                st.cache_looked_up(level, true);
                tracing::warn!(
                    source = name,
                    level,
                    cache = %at,
                    saved_at = cached.saved_at,
                    from = %cached.source,
                    "no config from {name} yet: serving from the cache until it answers"
                );
                return Some(FirstConfig::Cache(level));
            }
            if self.shared.cache_refused.load(Ordering::Acquire) != refused {
                st.cache_looked_up(level, false);
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

async fn apply_one(
    both: &Arc<PrepareApply>,
    st: &SyncStatus,
    shared: &Shared,
    cache: Option<&DiskCache>,
    offer: Offer,
    live: bool,
) {
    let name = st.name();
    let both = both.clone();
    let mut input = (*offer.config).clone();
    if live {
        drop_idle_unknown_plugins(&mut input);
    }
    let started = Instant::now();
    match tokio::task::spawn_blocking(move || both(input).map(|swap| swap())).await {
        Ok(Ok(())) if live => {
            SyncStatus::count(&st.applied);
            st.set_synced();
            tracing::info!(
                source = name,
                from = %offer.from,
                revision = offer.revision,
                took_ms = started.elapsed().as_millis() as u64,
                "config from {name} applied"
            );
            if let Some(cache) = cache {
                let (cache, cfg, from) = (cache.clone(), offer.config, offer.from);
                let saved = tokio::task::spawn_blocking(move || cache.save(&cfg, &from)).await;
                if let Ok(Err(e)) = saved {
                    tracing::warn!(error = %e, "writing the config cache failed");
                }
            }
        }
        Ok(Ok(())) => {
            SyncStatus::count(&st.applied);
            st.set_serving_from_cache(true);
            tracing::info!(source = name, cache = %offer.from, "cached config applied");
        }
        Ok(Err(e)) => {
            if live {
                st.refused(&e);
            } else {
                shared.cache_refused.fetch_add(1, Ordering::AcqRel);
            }
            tracing::error!(source = name, from = %offer.from, "config from {name} refused; the previous config keeps serving:\n{e}");
        }
        Err(e) => tracing::error!(source = name, error = %e, "applying a config panicked"),
    }
}

/// Exponential backoff with ±50 % jitter, so a fleet of gateways does not reconnect in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    cur: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, cur: min }
    }

    pub fn next_delay(&mut self) -> Duration {
        let base = self.cur;
        self.cur = (self.cur * 2).min(self.max);
        base.mul_f64(rand::random::<f64>() + 0.5)
    }

    pub fn reset(&mut self) {
        self.cur = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What a source told its reporter, in order.
    #[derive(Clone, Default)]
    struct Events(Arc<Mutex<Vec<String>>>);

    impl Events {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    impl Report for Events {
        fn state(&self, connected: bool, from_cache: bool) {
            self.0.lock().unwrap().push(format!("state connected={connected} from_cache={from_cache}"));
        }
        fn resync(&self) {
            self.0.lock().unwrap().push("resync".into());
        }
        fn cache(&self, level: &str, hit: bool) {
            self.0.lock().unwrap().push(format!("cache {level} {}", if hit { "hit" } else { "miss" }));
        }
        fn rejected(&self, _error: &str) {
            self.0.lock().unwrap().push("rejected".into());
        }
    }

    type Served = Arc<Mutex<Vec<Config>>>;

    /// An applier whose `prepare` is the model's whole-config validation and whose `apply` records.
    fn applier(cache: Option<DiskCache>) -> (Applier, Served, Events) {
        let events = Events::default();
        let served: Served = Arc::default();
        let rec = served.clone();
        let status = Arc::new(SyncStatus::new("test", Some(Box::new(events.clone()))));
        let a = Applier::start(
            |c: Config| c.validate().map(|()| c).map_err(|e| e.to_string()),
            move |c| rec.lock().unwrap().push(c),
            cache,
            status,
            Duration::from_millis(20),
        );
        (a, served, events)
    }

    fn cfg(id: &str) -> Config {
        Config::from_yaml_str(&format!("selectors: [{{id: {id}, pluginName: divide, type: 0}}]")).unwrap()
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_cached_config_offered_after_a_live_one_is_never_applied() {
        let (a, served, events) = applier(None);
        a.offer(cfg("live"), Origin::Live("ws://a".into()));
        a.offer(cfg("cached"), Origin::Cache("disk".into()));
        until("the live config", || a.status().synced.load(Ordering::Acquire)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ids: Vec<String> = served.lock().unwrap().iter().map(|c| c.selectors[0].id.clone()).collect();
        assert_eq!(ids, ["live"]);
        assert_eq!(
            events.take(),
            ["state connected=false from_cache=true"],
            "synced, not connected: serving what it has"
        );
    }

    #[tokio::test]
    async fn start_up_serves_the_disk_level_and_state_changes_are_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskCache::new(dir.path());
        disk.save(&cfg("cached"), "an earlier run").unwrap();
        let (a, served, events) = applier(Some(disk.clone()));
        a.status().unreachable.store(true, Ordering::Release);
        let levels = CacheLevels { redis: None, disk: Some(disk.clone()) };
        assert_eq!(a.first_config(&levels, Duration::from_secs(5)).await, FirstConfig::Cache("disk"));
        assert_eq!(served.lock().unwrap()[0].selectors[0].id, "cached");
        assert_eq!(events.take(), ["state connected=false from_cache=true", "cache disk hit"]);

        a.status().set_connected(true);
        assert_eq!(events.take(), ["state connected=true from_cache=true"]);
        a.offer(cfg("live"), Origin::Live("zookeeper 127.0.0.1:2181".into()));
        until("the live config", || a.status().synced.load(Ordering::Acquire)).await;
        assert_eq!(events.take(), ["state connected=true from_cache=false"]);
        // The source goes away: its last config keeps serving, so the gateway stays ready.
        a.status().set_connected(false);
        a.status().resynced();
        assert_eq!(events.take(), ["state connected=false from_cache=true", "resync"]);
        // A refused config is reported, and the cache now holds what the source delivered.
        let mut bad = cfg("bad");
        bad.selectors[0].plugin_name = "madeUp".into();
        bad.plugins = Config::from_yaml_str("plugins: [{name: madeUp}]").unwrap().plugins;
        a.offer(bad, Origin::Live("zookeeper 127.0.0.1:2181".into()));
        until("the refusal", || a.status().rejected.load(Ordering::Acquire) == 1).await;
        assert_eq!(events.take(), ["rejected"]);
        assert_eq!(disk.load().unwrap().unwrap().config, cfg("live"));
    }

    #[tokio::test]
    async fn start_up_asks_redis_then_disk_and_skips_a_level_that_does_not_compile() {
        let url = match std::env::var("TIGATEWAY_TEST_REDIS_URL") {
            Ok(u) if !u.is_empty() => Some(u),
            _ if std::env::var_os("CI").is_some() => panic!("TIGATEWAY_TEST_REDIS_URL is not set but CI is"),
            _ => None,
        };
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskCache::new(dir.path());
        let mut bad = cfg("bad");
        bad.selectors[0].plugin_name = "madeUp".into();
        bad.plugins = Config::from_yaml_str("plugins: [{name: madeUp}]").unwrap().plugins;
        disk.save(&bad, "an earlier run").unwrap();
        let (a, served, events) = applier(None);
        a.status().unreachable.store(true, Ordering::Release);
        // A namespace of its own: nothing is stored under it.
        let redis =
            url.map(|u| crate::cache::RedisCache::new(&u, &format!("empty-{}", rand::random::<u64>())).unwrap());
        let asked_redis = redis.is_some();
        let levels = CacheLevels { redis, disk: Some(disk) };
        assert_eq!(a.first_config(&levels, Duration::from_secs(5)).await, FirstConfig::Nothing);
        assert!(served.lock().unwrap().is_empty());
        let mut want = vec!["cache disk miss"];
        if asked_redis {
            want.insert(0, "cache redis miss");
        }
        assert_eq!(events.take(), want);
        assert_eq!(a.status().cache_misses.load(Ordering::Relaxed), want.len() as u64);
    }

    #[test]
    fn events_upsert_and_delete_by_key() {
        let mut s = GroupState::default();
        s.apply("SELECTOR", "MYSELF", &[json!({"id": "a", "pluginName": "divide", "type": 0})]).unwrap();
        s.apply("DISCOVER_UPSTREAM", "UPDATE", &[json!({"selectorId": "a", "upstreamDataList": []})]).unwrap();
        s.apply("SELECTOR", "UPDATE", &[json!({"id": "a", "pluginName": "divide", "type": 0, "name": "n"})]).unwrap();
        assert_eq!(s.config.selectors.len(), 1);
        assert_eq!(s.config.selectors[0].name, "n");
        s.apply("SELECTOR", "DELETE", &[json!({"id": "a", "pluginName": "divide"})]).unwrap();
        assert!(s.config.selectors.is_empty());
        assert!(s.config.discovery_upstreams.is_empty(), "upstreams go with their selector");
    }

    #[test]
    fn a_bad_item_fails_the_message_and_changes_nothing() {
        let mut s = GroupState::default();
        let err = s
            .apply(
                "SELECTOR",
                "CREATE",
                &[json!({"id": "ok", "pluginName": "divide"}), json!({"id": "bad", "matchMode": "sometimes"})],
            )
            .unwrap_err();
        assert!(err.contains("SELECTOR item 1"), "{err}");
        assert!(s.config.selectors.is_empty());
    }

    #[test]
    fn unknown_groups_and_events_are_ignored() {
        let mut s = GroupState::default();
        assert_eq!(s.apply("PROXY_SELECTOR", "CREATE", &[json!({"id": "x"})]).unwrap(), Applied::Ignored);
        assert_eq!(s.apply("SOMETHING_NEW", "CREATE", &[json!(1)]).unwrap(), Applied::Ignored);
        assert_eq!(s.apply("PLUGIN", "WHATEVER", &[json!(1)]).unwrap(), Applied::Ignored);
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (d, base) in delays.iter().zip([100u64, 200, 400, 800, 800, 800]) {
            assert!(
                *d >= Duration::from_millis(base / 2) && *d <= Duration::from_millis(base * 3 / 2),
                "{d:?} for {base}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(150));
    }

    #[test]
    fn unknown_plugins_are_dropped_only_when_idle() {
        let mut cfg = Config::from_yaml_str(
            "plugins: [{name: divide}, {name: aiProxy}, {name: madeUp}]\nselectors: [{id: s, pluginName: madeUp, type: 0}]",
        )
        .unwrap();
        assert_eq!(drop_idle_unknown_plugins(&mut cfg), ["aiProxy"]);
        let names: Vec<&str> = cfg.plugins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["divide", "madeUp"]);
    }

    #[test]
    fn replace_drops_what_is_not_listed() {
        let mut s = GroupState::default();
        s.apply("RULE", "CREATE", &[json!({"id": "r1", "selectorId": "s"}), json!({"id": "r2", "selectorId": "s"})])
            .unwrap();
        s.replace(Group::Rule, &[json!({"id": "r2", "selectorId": "s"})]).unwrap();
        assert_eq!(s.config.rules.len(), 1);
        assert_eq!(s.config.rules[0].id, "r2");
    }
}
