//! Publishing the committed config to gateways: ShenYu 2.7-compatible websocket (`/websocket`) and
//! HTTP long polling (`/platform/login`, `/configs/fetch`, `/configs/listener`).
//!
//! One [`Publisher`] per admin process follows the store: its own commits wake it at once, and a
//! poll of the store's head revision catches commits made by other admins on the same database
//! (admin HA). Each new revision becomes one [`Publication`]: the whole config, per-group MD5 and
//! last-modified time (long polling), and the CREATE/UPDATE/DELETE messages from the previous
//! publication (websocket).
//!
//! Nothing is published to an unauthenticated client: long polling needs an admin session or API
//! token whose roles may read the config; websocket takes that same token or the `--sync-token`.

pub mod http;
pub mod websocket;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tigateway_model::sync_wire::{canonical_hashes, group_md5, group_values, Group, WsMessage, DEFAULT_NAMESPACE};
use tigateway_model::{ChangeKind, Config};
use tokio::sync::{broadcast, watch};

use crate::api::AppState;
use crate::identity::Principal;
use crate::store::Store;

/// Why a sync client was turned away; logged, and never carries the credential itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credential at all.
    Missing,
    /// A token that is not a valid (unexpired, unrevoked) session or API token, nor the sync token.
    Invalid,
    /// A valid token whose roles may not read the config.
    Forbidden,
    /// The identity store could not answer.
    Unavailable,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Missing => "no credential",
            Refusal::Invalid => "invalid, expired or revoked token",
            Refusal::Forbidden => "the token's roles may not read the config",
            Refusal::Unavailable => "the identity store is unavailable",
        })
    }
}

/// The one authorization rule for every sync endpoint that hands out the config (websocket and
/// long polling): a session or API token whose roles, as they are now, may read the whole config.
pub async fn may_read_config(app: &AppState, token: Option<&str>) -> Result<Principal, Refusal> {
    use crate::identity::IdentityError;
    let token = token.map(str::trim).filter(|t| !t.is_empty()).ok_or(Refusal::Missing)?;
    let principal = match app.identity.authenticate(token).await {
        Ok(p) => p,
        Err(IdentityError::Auth(_)) => return Err(Refusal::Invalid),
        Err(_) => return Err(Refusal::Unavailable),
    };
    let rbac = app.identity.rbac().await.map_err(|_| Refusal::Unavailable)?;
    if rbac.allows(&principal.roles, tigateway_auth::Resource::Config, tigateway_auth::Action::Read) {
        Ok(principal)
    } else {
        Err(Refusal::Forbidden)
    }
}

/// What the admin publishes and how.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub websocket: bool,
    pub http: bool,
    /// A shared secret a websocket client may present instead of an admin token
    /// (`x-tigateway-sync-token` header or `?token=`). With or without it, a websocket client is
    /// accepted only with a credential: this token, or an admin session or API token whose roles
    /// may read the config (`X-Access-Token` header or `?token=`), exactly as long polling checks
    /// it ([`may_read_config`]). There is no anonymous mode.
    pub token: Option<String>,
    /// The one namespace this admin serves.
    pub namespace: String,
    /// How often the store's head revision is read to see other admins' commits.
    pub poll_interval: Duration,
    /// How long `/configs/listener` holds a request with nothing changed (ShenYu: 60 s).
    pub hold: Duration,
    /// How often an open websocket's admin token is checked again: a session that logs out,
    /// expires or is revoked, or a user whose roles lose config read, is disconnected within this.
    pub recheck: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            websocket: true,
            http: true,
            token: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            poll_interval: Duration::from_millis(250),
            hold: Duration::from_secs(60),
            recheck: Duration::from_secs(30),
        }
    }
}

/// MD5 and last change time (ms since the epoch) of one group, as long polling reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStamp {
    pub md5: String,
    pub last_modify_time: i64,
}

/// One published revision.
#[derive(Debug)]
pub struct Publication {
    pub revision: i64,
    /// The revision published before this one (0 for the first).
    pub since: i64,
    pub config: Arc<Config>,
    pub stamps: BTreeMap<Group, GroupStamp>,
    /// Order-independent hashes a TiGateway gateway compares after applying.
    pub hashes: BTreeMap<String, String>,
    /// The change from `since`, in apply order (children deleted before parents, parents created
    /// before children). Empty for the first publication.
    pub events: Vec<WsMessage>,
}

impl Publication {
    fn first(revision: i64, config: Config) -> Publication {
        let now = now_ms();
        let stamps = Group::SHENYU
            .iter()
            .chain([Group::Route].iter())
            .map(|&g| (g, GroupStamp { md5: group_md5(&config, g), last_modify_time: now }))
            .collect();
        Publication {
            revision,
            since: 0,
            hashes: canonical_hashes(&config),
            config: Arc::new(config),
            stamps,
            events: Vec::new(),
        }
    }

    fn next(&self, revision: i64, config: Config) -> Publication {
        let now = now_ms();
        let stamps = self
            .stamps
            .iter()
            .map(|(&g, old)| {
                let md5 = group_md5(&config, g);
                let last_modify_time =
                    if md5 == old.md5 { old.last_modify_time } else { now.max(old.last_modify_time + 1) };
                (g, GroupStamp { md5, last_modify_time })
            })
            .collect();
        Publication {
            revision,
            since: self.revision,
            hashes: canonical_hashes(&config),
            events: events(&self.config, &config),
            config: Arc::new(config),
            stamps,
        }
    }

    /// The full-sync messages (ShenYu's answer to `MYSELF`): one per non-empty group, APP_AUTH as
    /// REFRESH, PLUGIN/SELECTOR/RULE as MYSELF, META_DATA as REFRESH, DISCOVER_UPSTREAM as UPDATE.
    /// With `extensions`, ROUTE is included, every message carries the revision, and the last one
    /// the hashes (an empty config still gets one, empty, message so the client knows it is done).
    pub fn full_sync(&self, extensions: bool) -> Vec<WsMessage> {
        let mut out = Vec::new();
        for g in Group::CARRIED {
            if g == Group::Route && !extensions {
                continue;
            }
            let data = group_values(&self.config, g);
            if data.is_empty() {
                continue;
            }
            let event = match g {
                Group::AppAuth | Group::MetaData => "REFRESH",
                Group::DiscoverUpstream => "UPDATE",
                _ => "MYSELF",
            };
            out.push(message(g, event, data));
        }
        if extensions {
            if out.is_empty() {
                out.push(message(Group::Plugin, "MYSELF", Vec::new()));
            }
            for m in &mut out {
                m.revision = Some(self.revision);
            }
            out.last_mut().expect("one message at least").hashes = Some(self.hashes.clone());
        }
        out
    }

    /// This revision's change messages for one client: ShenYu clients get the ShenYu groups only;
    /// extension clients get everything plus revision, predecessor and hashes, and one empty
    /// message when nothing they hold changed, so their revision chain has no holes.
    pub fn event_messages(&self, extensions: bool) -> Vec<WsMessage> {
        if !extensions {
            return self
                .events
                .iter()
                .filter(|m| m.group_type.as_deref().and_then(Group::parse).is_some_and(Group::shenyu))
                .cloned()
                .collect();
        }
        let mut out = self.events.clone();
        if out.is_empty() {
            out.push(message(Group::Route, "UPDATE", Vec::new()));
        }
        for m in &mut out {
            m.revision = Some(self.revision);
            m.since = Some(self.since);
        }
        out.last_mut().expect("one message at least").hashes = Some(self.hashes.clone());
        out
    }
}

fn message(g: Group, event: &str, data: Vec<serde_json::Value>) -> WsMessage {
    WsMessage {
        group_type: Some(g.as_str().to_string()),
        event_type: event.to_string(),
        data,
        revision: None,
        since: None,
        hashes: None,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The websocket messages turning `old` into `new`: deletions first, children before parents
/// (as ShenYu deletes a selector: its upstreams, its rules, then the selector), then creations
/// and updates, parents first.
pub fn events(old: &Config, new: &Config) -> Vec<WsMessage> {
    let changes = tigateway_model::diff(old, new);
    let of = |g: Group, kind: ChangeKind, cfg: &Config| -> Vec<serde_json::Value> {
        let ids: Vec<&str> =
            changes.iter().filter(|c| c.group == g.as_str() && c.kind == kind).map(|c| c.id.as_str()).collect();
        if ids.is_empty() {
            return Vec::new();
        }
        group_values(cfg, g)
            .into_iter()
            .filter(|v| tigateway_model::sync_wire::item_key(g, v).is_some_and(|k| ids.contains(&k.as_str())))
            .collect()
    };
    let mut out = Vec::new();
    for g in [
        Group::Rule,
        Group::DiscoverUpstream,
        Group::Selector,
        Group::Plugin,
        Group::MetaData,
        Group::AppAuth,
        Group::Route,
    ] {
        let data = of(g, ChangeKind::Delete, old);
        if !data.is_empty() {
            out.push(message(g, "DELETE", data));
        }
    }
    for g in [
        Group::Plugin,
        Group::Selector,
        Group::DiscoverUpstream,
        Group::Rule,
        Group::MetaData,
        Group::AppAuth,
        Group::Route,
    ] {
        for (kind, name) in [(ChangeKind::Create, "CREATE"), (ChangeKind::Update, "UPDATE")] {
            let data = of(g, kind, new);
            if !data.is_empty() {
                out.push(message(g, name, data));
            }
        }
    }
    out
}

/// Follows the store and hands each new revision to every connected gateway.
#[derive(Clone)]
pub struct Publisher {
    current: watch::Receiver<Arc<Publication>>,
    events: broadcast::Sender<Arc<Publication>>,
    settings: Arc<SyncSettings>,
}

impl Publisher {
    /// Loads the current config and starts following the store (on the current tokio runtime).
    pub async fn start(store: Store, settings: SyncSettings) -> crate::store::Result<Publisher> {
        let revision = store.current_revision().await?;
        let config = store.load_config().await?;
        let (cur_tx, current) = watch::channel(Arc::new(Publication::first(revision, config)));
        let (events, _) = broadcast::channel(1024);
        let publisher = Publisher { current, events: events.clone(), settings: Arc::new(settings) };
        let poll = publisher.settings.poll_interval;
        tokio::spawn(follow(store, cur_tx, events, poll));
        Ok(publisher)
    }

    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    pub fn current(&self) -> Arc<Publication> {
        self.current.borrow().clone()
    }

    /// A receiver of every later publication; subscribe before reading [`Publisher::current`] so
    /// nothing falls between the two.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Publication>> {
        self.events.subscribe()
    }

    pub fn watch(&self) -> watch::Receiver<Arc<Publication>> {
        self.current.clone()
    }
}

async fn follow(
    store: Store,
    current: watch::Sender<Arc<Publication>>,
    events: broadcast::Sender<Arc<Publication>>,
    poll: Duration,
) {
    let mut local = store.subscribe();
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            r = local.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        if current.is_closed() {
            return;
        }
        let head = match store.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "sync publisher cannot read the store; gateways keep the last publication");
                    failing = true;
                }
                continue;
            }
        };
        let last = current.borrow().clone();
        if head == last.revision {
            continue;
        }
        let config = match store.load_config().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, revision = head, "sync publisher cannot load the config");
                continue;
            }
        };
        failing = false;
        let next = Arc::new(last.next(head, config));
        tracing::info!(revision = head, messages = next.events.len(), "publishing config revision");
        current.send_replace(next.clone());
        let _ = events.send(next);
    }
}

/// The sync routes (`/websocket`, `/platform/login`, `/configs/*`) for what `publisher` is
/// configured to publish, to be merged into the admin router.
pub fn router(publisher: Publisher, app: AppState) -> Router {
    let mut r = Router::new();
    if publisher.settings.websocket {
        r = r.merge(websocket::router(publisher.clone(), app.clone()));
    }
    if publisher.settings.http {
        r = r.merge(http::router(publisher, app));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(y: &str) -> Config {
        Config::from_yaml_str(y).unwrap()
    }

    #[test]
    fn deleting_a_selector_sends_rules_then_selector() {
        let old = cfg(
            "selectors: [{id: s, pluginName: divide, type: 0}]\nrules: [{id: r, selectorId: s, pluginName: divide}]\n",
        );
        let new = Config::default();
        let ev = events(&old, &new);
        let order: Vec<(&str, &str)> =
            ev.iter().map(|m| (m.group_type.as_deref().unwrap(), m.event_type.as_str())).collect();
        assert_eq!(order, [("RULE", "DELETE"), ("SELECTOR", "DELETE")]);
        let back = events(&new, &old);
        let order: Vec<(&str, &str)> =
            back.iter().map(|m| (m.group_type.as_deref().unwrap(), m.event_type.as_str())).collect();
        assert_eq!(order, [("SELECTOR", "CREATE"), ("RULE", "CREATE")]);
    }

    #[test]
    fn full_sync_skips_empty_groups_and_marks_the_end_for_extensions() {
        let p = Publication::first(7, cfg("plugins: [{id: '5', name: divide}]\nmetadata: [{path: /a, appName: x}]"));
        let plain = p.full_sync(false);
        let kinds: Vec<(&str, &str)> =
            plain.iter().map(|m| (m.group_type.as_deref().unwrap(), m.event_type.as_str())).collect();
        assert_eq!(kinds, [("PLUGIN", "MYSELF"), ("META_DATA", "REFRESH")]);
        assert!(plain.iter().all(|m| m.revision.is_none() && m.hashes.is_none()));
        let ext = p.full_sync(true);
        assert!(ext.iter().all(|m| m.revision == Some(7)));
        assert!(ext.last().unwrap().hashes.is_some());
        let empty = Publication::first(1, Config::default()).full_sync(true);
        assert_eq!(empty.len(), 1);
    }

    #[test]
    fn stamps_move_only_for_changed_groups() {
        let a = Publication::first(1, cfg("plugins: [{id: '5', name: divide}]"));
        let b = a.next(2, cfg("plugins: [{id: '5', name: divide, enabled: false}]"));
        assert_ne!(a.stamps[&Group::Plugin], b.stamps[&Group::Plugin]);
        assert!(b.stamps[&Group::Plugin].last_modify_time > a.stamps[&Group::Plugin].last_modify_time);
        assert_eq!(a.stamps[&Group::Selector], b.stamps[&Group::Selector]);
        assert_eq!(b.since, 1);
        // A route-only change still gives extension clients one message, but ShenYu clients none.
        let c = b.next(3, cfg("plugins: [{id: '5', name: divide, enabled: false}]"));
        assert!(c.event_messages(false).is_empty());
        assert_eq!(c.event_messages(true).len(), 1);
    }
}
