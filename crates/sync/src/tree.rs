//! The gateway's copy of a ZooKeeper / etcd node tree, and the task that turns it into snapshots.
//!
//! The readers (`zookeeper`, `etcd`) only report what they saw — a node's new data, a deletion, or a
//! whole re-read — as [`Update`]s. One applier task owns the [`Tree`], folds updates in, waits a
//! short window so a burst (an admin writing a hundred nodes, a full re-publish) becomes one
//! snapshot, then builds a whole [`Config`] and offers it to the same [`Applier`] the websocket and
//! long-polling sources use. A config is never applied node by node, so a gateway never serves half
//! of a change it has seen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tigateway_model::{builtin_plugin_order, Config};
use tokio::sync::mpsc;

use crate::layout::{decode, digest, marker_digest, summary, Entry, Layout};
use crate::shenyu::{Applier, Origin};

static MALFORMED_NODES: AtomicU64 = AtomicU64::new(0);
static DIGEST_MISMATCHES: AtomicU64 = AtomicU64::new(0);

/// How many whole re-reads found a tree that differs from what the admin's marker says it published.
pub fn digest_mismatches() -> u64 {
    DIGEST_MISMATCHES.load(Ordering::Relaxed)
}

/// How many malformed nodes the node sources have skipped in this process (for metrics).
pub fn malformed_nodes() -> u64 {
    MALFORMED_NODES.load(Ordering::Relaxed)
}

/// What a reader saw.
#[derive(Debug)]
pub enum Update {
    Put(String, Vec<u8>),
    Delete(String),
    /// The whole tree as just read (after connecting, a lost session, a compaction).
    Full(Vec<(String, Vec<u8>)>),
}

/// Parsed nodes by path.
#[derive(Debug)]
pub struct Tree {
    layout: Layout,
    source: &'static str,
    entries: BTreeMap<String, Entry>,
    /// Whether the last whole read held what the admin's marker says it published (true when
    /// there is no marker to check against).
    full_matched: bool,
}

impl Tree {
    pub fn new(layout: Layout, source: &'static str) -> Tree {
        Tree { layout, source, entries: BTreeMap::new(), full_matched: true }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The admin revision marker (revision, publish token), when a TiGateway admin wrote the tree.
    pub fn marker(&self) -> Option<(i64, &str)> {
        match self.entries.get(&self.layout.revision_path()) {
            Some(Entry::Revision(n, token)) => Some((*n, token.as_str())),
            _ => None,
        }
    }

    /// The admin revision the tree holds, when a TiGateway admin wrote it.
    pub fn revision(&self) -> Option<i64> {
        self.marker().map(|(n, _)| n)
    }

    /// Folds one update in; says whether anything changed. A node whose data does not parse is
    /// logged with a summary of its content and skipped: the object keeps its last good value.
    pub fn update(&mut self, update: Update) -> bool {
        match update {
            Update::Put(path, data) => self.put(&path, &data),
            Update::Delete(path) => self.entries.remove(&path).is_some(),
            Update::Full(nodes) => {
                self.full_matched = self.check_digest(&nodes);
                let old = std::mem::take(&mut self.entries);
                for (path, data) in nodes {
                    if self.layout.classify(&path).is_none() || data.is_empty() {
                        continue;
                    }
                    let entry = self.parse(&path, &data).or_else(|| old.get(&path).cloned());
                    if let Some(e) = entry {
                        self.entries.insert(path, e);
                    }
                }
                old != self.entries
            }
        }
    }

    /// After a whole re-read: does the tree hold exactly what the admin published last? A mismatch
    /// is logged and counted (another writer, a publish cut short, or a write racing the read).
    fn check_digest(&self, nodes: &[(String, Vec<u8>)]) -> bool {
        let marker = self.layout.revision_path();
        let Some(expected) = nodes.iter().find(|(p, _)| *p == marker).and_then(|(_, d)| marker_digest(d)) else {
            return true;
        };
        let found = digest(&self.layout, nodes.iter().map(|(p, d)| (p.as_str(), d.as_slice())));
        if found != expected {
            DIGEST_MISMATCHES.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                source = self.source,
                expected = %expected,
                found = %found,
                "the tree read differs from what the admin published (another writer, an interrupted publish, or \
                 a write during the read); waiting up to 1 s for the admin's next revision marker before following it"
            );
            return false;
        }
        true
    }

    fn put(&mut self, path: &str, data: &[u8]) -> bool {
        if self.layout.classify(path).is_none() {
            return false;
        }
        if data.is_empty() {
            // A directory (ZooKeeper creates parents with no data) or an emptied node.
            return self.entries.remove(path).is_some();
        }
        match self.parse(path, data) {
            Some(e) if self.entries.get(path) != Some(&e) => {
                self.entries.insert(path.to_string(), e);
                true
            }
            _ => false,
        }
    }

    fn parse(&self, path: &str, data: &[u8]) -> Option<Entry> {
        match decode(&self.layout, path, data) {
            Ok(e) => Some(e),
            Err(e) => {
                MALFORMED_NODES.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    source = self.source,
                    path,
                    error = %e,
                    content = %summary(data),
                    "malformed config node skipped; its object keeps its last good value"
                );
                None
            }
        }
    }

    /// The whole config the tree describes. Objects come in path order, a stable tie-break for
    /// selectors and rules of equal `sort` on every gateway.
    pub fn config(&self) -> Config {
        let mut cfg = Config::default();
        for e in self.entries.values() {
            match e {
                Entry::Plugin(p) => cfg.plugins.push(p.clone()),
                Entry::Selector(s) => cfg.selectors.push(s.clone()),
                Entry::Rule(r) => cfg.rules.push(r.clone()),
                Entry::MetaData(m) => cfg.metadata.push(m.clone()),
                Entry::AppAuth(a) => cfg.app_auth.push(a.clone()),
                Entry::DiscoveryUpstream(d) => cfg.discovery_upstreams.push(d.clone()),
                Entry::Route(r) => cfg.routes.push(r.clone()),
                Entry::Service(name, instances) => {
                    cfg.services.insert(name.clone(), instances.clone());
                }
                Entry::Ignored | Entry::Revision(..) => {}
            }
        }
        for name in prune_unknown_plugins(&mut cfg) {
            tracing::info!(source = self.source, plugin = %name, "plugin unknown to this build has no enabled selectors; left out");
        }
        cfg
    }
}

/// Removes plugins this build does not know (a ShenYu admin publishes every plugin it has) when
/// nothing of theirs could run — disabled, or without enabled selectors — together with their
/// selectors and rules. One that has enabled selectors stays, so validation refuses the config with
/// a clear error instead of silently skipping, say, an auth plugin. Returns the names removed.
pub fn prune_unknown_plugins(cfg: &mut Config) -> Vec<String> {
    let drop: Vec<String> = cfg
        .plugins
        .iter()
        .filter(|p| builtin_plugin_order(&p.name).is_none())
        .filter(|p| !p.enabled || !cfg.selectors.iter().any(|s| s.plugin_name == p.name && s.enabled))
        .map(|p| p.name.clone())
        .collect();
    if drop.is_empty() {
        return drop;
    }
    let gone = |name: &str| drop.iter().any(|d| d == name);
    let dropped_selectors: std::collections::HashSet<String> =
        cfg.selectors.iter().filter(|s| gone(&s.plugin_name)).map(|s| s.id.clone()).collect();
    cfg.plugins.retain(|p| !gone(&p.name));
    cfg.selectors.retain(|s| !gone(&s.plugin_name));
    cfg.rules.retain(|r| !gone(&r.plugin_name) && !dropped_selectors.contains(&r.selector_id));
    cfg.discovery_upstreams.retain(|d| !dropped_selectors.contains(&d.selector_id));
    drop
}

/// A running node source. Dropping it stops the source.
#[derive(Debug)]
pub struct SourceHandle {
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// How long a quiet tree whose changes have no new revision marker waits before they are applied
/// anyway (an admin that died mid-write). Counted from the last update, so a revision that takes
/// longer to write is still applied whole.
const MARKER_WAIT: Duration = Duration::from_secs(1);

/// Runs the tree's owner: folds updates into the tree and hands at most one whole config per
/// `window` to the [`Applier`] (as `Origin::Live(from)`). Nothing is handed over before the first
/// whole read, so a gateway never serves a partial tree. When the tree carries a revision marker (a
/// TiGateway admin), changes are handed over when the marker moves, so a revision written in
/// several batches is applied whole.
pub(crate) fn spawn_tree(
    layout: Layout,
    source: &'static str,
    from: String,
    window: Duration,
    applier: Applier,
    mut rx: mpsc::UnboundedReceiver<Update>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tree = Tree::new(layout, source);
        let mut have_full = false;
        let mut pending = false;
        let mut last: Option<Config> = None;
        let mut last_marker: Option<(i64, String)> = None;
        let mut overdue: Option<tokio::time::Instant> = None;
        loop {
            let first = match overdue {
                Some(at) => tokio::select! {
                    u = rx.recv() => u,
                    _ = tokio::time::sleep_until(at) => None,
                },
                None => rx.recv().await,
            };
            let mut forced = false;
            let mut full_now = false;
            match first {
                Some(u) => {
                    full_now |= matches!(u, Update::Full(_));
                    have_full |= full_now;
                    pending |= tree.update(u);
                    // The window starts at the first update of a burst and takes everything that
                    // arrives within it; a moved revision marker ends it early, since the admin
                    // writes it after everything of its revision.
                    let deadline = tokio::time::Instant::now() + window;
                    let marker_moved = |tree: &Tree, last: &Option<(i64, String)>| {
                        tree.marker().is_some_and(|(n, t)| last.as_ref().is_none_or(|(ln, lt)| *ln != n || lt != t))
                    };
                    while !(have_full && marker_moved(&tree, &last_marker)) {
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(u)) => {
                                full_now |= matches!(u, Update::Full(_));
                                have_full |= full_now;
                                pending |= tree.update(u);
                            }
                            Ok(None) => return,
                            Err(_) => break,
                        }
                    }
                }
                None if overdue.is_some() => forced = true,
                None => return,
            }
            have_full |= full_now;
            if !have_full || (!pending && last.is_some()) {
                continue;
            }
            let marker = tree.marker().map(|(n, t)| (n, t.to_string()));
            let revision = marker.as_ref().map(|(n, _)| *n);
            // A whole read normally goes straight through; one that does not hold what the marker
            // says (it raced an admin still writing the next revision) waits like a partial one.
            let whole = full_now && tree.full_matched;
            if marker.is_some() && marker == last_marker && !whole && !forced && last.is_some() {
                // Part of a revision still being written: wait for its marker, or give up once
                // MARKER_WAIT passes without a further update (a large revision can take longer
                // than that to write; an admin that died mid-write goes quiet).
                overdue = Some(tokio::time::Instant::now() + MARKER_WAIT);
                continue;
            }
            overdue = None;
            pending = false;
            last_marker = marker;
            let cfg = tree.config();
            if last.as_ref() == Some(&cfg) {
                if revision.is_some() {
                    tracing::info!(source, revision, "config from {source} unchanged");
                }
                continue;
            }
            tracing::debug!(source, nodes = tree.len(), revision, "config from {source} handed over");
            applier.offer_revision(cfg.clone(), Origin::Live(from.clone()), revision);
            last = Some(cfg);
        }
    })
}

/// Exponential backoff with full jitter, for reconnect loops.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { next: Duration::from_millis(100) }
    }

    pub(crate) fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }

    pub(crate) async fn wait(&mut self) {
        let max = self.next.as_millis() as u64;
        let pick = rand_below(max.max(1));
        tokio::time::sleep(Duration::from_millis(max / 2 + pick / 2)).await;
        self.next = (self.next * 2).min(Duration::from_secs(5));
    }
}

fn rand_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0),
    );
    h.finish() % n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(Some("ns"), false)
    }

    #[test]
    fn malformed_node_keeps_the_last_good_value() {
        let l = layout();
        let mut t = Tree::new(l.clone(), "test");
        let p = l.selector_path("divide", "s1");
        assert!(t.update(Update::Put(p.clone(), br#"{"id":"s1","pluginName":"divide","type":0}"#.to_vec())));
        assert!(!t.update(Update::Put(p.clone(), b"{not json".to_vec())));
        assert_eq!(t.config().selectors.len(), 1);
        assert!(malformed_nodes() >= 1);
        assert!(t.update(Update::Delete(p)));
        assert!(t.config().selectors.is_empty());
    }

    #[test]
    fn a_whole_read_is_checked_against_the_published_digest() {
        let l = layout();
        let sel = (l.selector_path("divide", "s1"), br#"{"id":"s1","pluginName":"divide","type":0}"#.to_vec());
        let published = digest(&l, [(sel.0.as_str(), sel.1.as_slice())]);
        let marker = (l.revision_path(), crate::layout::revision_data(3, "t", &published));
        let t = Tree::new(l.clone(), "test");
        assert!(t.check_digest(&[sel.clone(), marker.clone(), ("/ns/shenyu/selector/divide".into(), Vec::new())]));
        let before = digest_mismatches();
        let other = (l.selector_path("divide", "s2"), br#"{"id":"s2","pluginName":"divide","type":0}"#.to_vec());
        assert!(!t.check_digest(&[sel, other, marker]));
        assert_eq!(digest_mismatches(), before + 1);
    }

    #[test]
    fn directories_and_foreign_paths_are_not_objects() {
        let l = layout();
        let mut t = Tree::new(l.clone(), "test");
        assert!(!t.update(Update::Put("/ns/shenyu/selector/divide".into(), Vec::new())));
        assert!(!t.update(Update::Put("/elsewhere/x".into(), b"{}".to_vec())));
        assert!(t.is_empty());
    }

    #[test]
    fn unknown_plugins_without_enabled_selectors_are_left_out() {
        let mut cfg = Config::from_yaml_str(
            "plugins: [{name: divide}, {name: mcpServer, enabled: false}, {name: keyAuth}]\n\
             selectors: [{id: a, pluginName: mcpServer, type: 0}, {id: b, pluginName: keyAuth, type: 0}]",
        )
        .unwrap();
        let gone = prune_unknown_plugins(&mut cfg);
        assert_eq!(gone, vec!["mcpServer".to_string()]);
        assert_eq!(cfg.plugins.len(), 2);
        assert_eq!(cfg.selectors.len(), 1, "keyAuth has an enabled selector: kept, so validation refuses it");
    }
}
