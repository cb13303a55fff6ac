//! Gateway-side state shared by the websocket and long-polling subscribers: a working copy of the
//! config that ShenYu's group events edit, the status counters a readiness probe reads, and the
//! [`Applier`] that turns the newest working copy into a served snapshot — validated and compiled
//! through `prepare`, swapped whole, at most once per coalescing window, then written to the disk
//! cache.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;
use tigateway_model::sync_wire::{item_key, Group};
use tigateway_model::Config;
use tokio::sync::watch;

use crate::cache::DiskCache;

/// Counters and flags of one admin-fed source; cheap to read from anywhere.
#[derive(Debug, Default)]
pub struct SyncStatus {
    /// The served config came from a cache because no admin answered yet.
    pub serving_from_cache: AtomicBool,
    /// A config from an admin has been applied since start.
    pub synced: AtomicBool,
    /// Connected to an admin right now.
    pub connected: AtomicBool,
    /// Every admin URL failed at least once before any config arrived (start-up falls back to the
    /// cache when this is set).
    pub unreachable: AtomicBool,
    pub applied: AtomicU64,
    /// Configs from the admin that did not validate or compile (the previous one kept serving).
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
}

impl SyncStatus {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
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
    Admin(String),
    Cache(String),
}

type PrepareApply = Box<dyn Fn(Config) -> Result<Box<dyn FnOnce() + Send>, String> + Send + Sync>;

/// Applies the newest offered config, at most once per `window`: a storm of events costs one
/// snapshot per window, and the snapshot is always the latest state.
#[derive(Clone)]
pub struct Applier {
    tx: watch::Sender<Option<(Arc<Config>, Origin)>>,
    status: Arc<SyncStatus>,
}

impl Applier {
    /// `prepare` validates and compiles (off the request path); `apply` swaps the result in. Runs
    /// on the current tokio runtime.
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
        let (tx, mut rx) = watch::channel::<Option<(Arc<Config>, Origin)>>(None);
        let st = status.clone();
        tokio::spawn(async move {
            let mut last: Option<Instant> = None;
            while rx.changed().await.is_ok() {
                if let Some(at) = last {
                    let wait = window.saturating_sub(at.elapsed());
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
                let Some((cfg, origin)) = rx.borrow_and_update().clone() else { continue };
                if matches!(origin, Origin::Cache(_)) && st.synced.load(Ordering::Acquire) {
                    continue;
                }
                last = Some(Instant::now());
                let both = both.clone();
                let mut input = (*cfg).clone();
                if matches!(origin, Origin::Admin(_)) {
                    drop_idle_unknown_plugins(&mut input);
                }
                let result = tokio::task::spawn_blocking(move || both(input).map(|swap| swap())).await;
                match result {
                    Ok(Ok(())) => {
                        SyncStatus::count(&st.applied);
                        match &origin {
                            Origin::Admin(url) => {
                                st.synced.store(true, Ordering::Release);
                                st.serving_from_cache.store(false, Ordering::Release);
                                tracing::debug!(admin = %url, "config from the admin applied");
                                if let Some(cache) = &cache {
                                    let (cache, url) = (cache.clone(), url.clone());
                                    let saved = tokio::task::spawn_blocking(move || cache.save(&cfg, &url)).await;
                                    if let Ok(Err(e)) = saved {
                                        tracing::warn!(error = %e, "writing the config cache failed");
                                    }
                                }
                            }
                            Origin::Cache(from) => {
                                st.serving_from_cache.store(true, Ordering::Release);
                                tracing::warn!(cache = %from, "no admin reachable: serving the cached config");
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        SyncStatus::count(&st.rejected);
                        tracing::error!(?origin, "config from sync refused, the previous one keeps serving:\n{e}");
                    }
                    Err(e) => tracing::error!(error = %e, "applying a config panicked"),
                }
            }
        });
        Applier { tx, status }
    }

    pub fn offer(&self, cfg: Config, origin: Origin) {
        self.tx.send_replace(Some((Arc::new(cfg), origin)));
    }

    pub fn status(&self) -> &Arc<SyncStatus> {
        &self.status
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
