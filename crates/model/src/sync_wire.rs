//! ShenYu 2.7 sync vocabulary shared by the admin's publishers and the gateway's subscribers:
//! group names, event types, one config's group lists, their per-group MD5 and an order-independent
//! hash for checking a resync.
//!
//! TiGateway extensions ride on the same messages as extra JSON fields (ShenYu's Gson decoding
//! ignores unknown fields) and are only sent to clients that ask for them, so a ShenYu gateway sees
//! the plain protocol.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::hash::md5_json;

/// ShenYu's `Constants.SYS_DEFAULT_NAMESPACE_ID`.
pub const DEFAULT_NAMESPACE: &str = "649330b6-c2d7-4edc-be8e-8a54df9eb385";

/// Websocket handshake header a TiGateway gateway sends to opt into the extensions (revision
/// numbers, batch boundaries, hashes, the ROUTE group).
pub const EXTENSIONS_HEADER: &str = "x-tigateway-sync";
/// Websocket handshake header carrying the admin's `--sync-token` (also accepted as `?token=`).
pub const TOKEN_HEADER: &str = "x-tigateway-sync-token";

/// ShenYu's `ConfigGroupEnum` plus TiGateway's `ROUTE` (Spring routes; extension clients only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Group {
    AppAuth,
    Plugin,
    Rule,
    Selector,
    MetaData,
    ProxySelector,
    DiscoverUpstream,
    AiProxyApiKey,
    Route,
}

impl Group {
    /// Every group a ShenYu 2.7 admin knows, in `ConfigGroupEnum` order.
    pub const SHENYU: [Group; 8] = [
        Group::AppAuth,
        Group::Plugin,
        Group::Rule,
        Group::Selector,
        Group::MetaData,
        Group::ProxySelector,
        Group::DiscoverUpstream,
        Group::AiProxyApiKey,
    ];
    /// The groups a TiGateway config carries, in the order ShenYu's full sync sends them.
    pub const CARRIED: [Group; 7] = [
        Group::AppAuth,
        Group::Plugin,
        Group::Selector,
        Group::Rule,
        Group::MetaData,
        Group::DiscoverUpstream,
        Group::Route,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::AppAuth => "APP_AUTH",
            Group::Plugin => "PLUGIN",
            Group::Rule => "RULE",
            Group::Selector => "SELECTOR",
            Group::MetaData => "META_DATA",
            Group::ProxySelector => "PROXY_SELECTOR",
            Group::DiscoverUpstream => "DISCOVER_UPSTREAM",
            Group::AiProxyApiKey => "AI_PROXY_API_KEY",
            Group::Route => "ROUTE",
        }
    }

    pub fn parse(s: &str) -> Option<Group> {
        Group::SHENYU.iter().chain([Group::Route].iter()).copied().find(|g| g.as_str() == s)
    }

    /// Whether a TiGateway config holds this group (the others are accepted and ignored).
    pub fn carried(self) -> bool {
        Group::CARRIED.contains(&self)
    }

    /// Whether a plain ShenYu admin or gateway knows this group.
    pub fn shenyu(self) -> bool {
        self != Group::Route
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ShenYu's `DataEventTypeEnum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    Delete,
    Create,
    Update,
    Refresh,
    RunningMode,
    Myself,
}

/// One websocket message, `{"groupType","eventType","data":[…]}`, with TiGateway's optional
/// extension fields. Absent fields are omitted (as Gson does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    pub event_type: String,
    #[serde(default)]
    pub data: Vec<serde_json::Value>,
    /// Extension: the admin revision this message belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Extension: the revision published before this one; a client holding another one has
    /// missed something and resyncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Extension: set on the last message of a revision's batch (or of a full sync): the client
    /// applies the batch as one snapshot, then compares these hashes with its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
}

/// The key ShenYu's gateway caches each group's items by (and deletes by).
pub fn item_key(group: Group, item: &serde_json::Value) -> Option<String> {
    let field = match group {
        Group::Plugin => "name",
        Group::Selector | Group::Rule | Group::Route | Group::ProxySelector | Group::AiProxyApiKey => "id",
        Group::MetaData => "path",
        Group::AppAuth => "appKey",
        Group::DiscoverUpstream => "selectorId",
    };
    match item.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One group of `cfg` as the JSON list the wire carries (config order). Groups a TiGateway
/// config does not hold are empty.
pub fn group_values(cfg: &Config, group: Group) -> Vec<serde_json::Value> {
    fn list<T: Serialize>(items: &[T]) -> Vec<serde_json::Value> {
        items.iter().map(|v| serde_json::to_value(v).expect("model values always serialize")).collect()
    }
    match group {
        Group::AppAuth => list(&cfg.app_auth),
        Group::Plugin => list(&cfg.plugins),
        Group::Rule => list(&cfg.rules),
        Group::Selector => list(&cfg.selectors),
        Group::MetaData => list(&cfg.metadata),
        Group::DiscoverUpstream => list(&cfg.discovery_upstreams),
        Group::Route => list(&cfg.routes),
        Group::ProxySelector | Group::AiProxyApiKey => Vec::new(),
    }
}

/// MD5 hex of one group's JSON list, what long polling compares (an empty group is md5("[]"),
/// as in ShenYu).
pub fn group_md5(cfg: &Config, group: Group) -> String {
    md5_json(&group_values(cfg, group))
}

/// A hash per carried group that does not depend on item order: both sides sort by the item key
/// before hashing, so a gateway that applied events in another order still compares equal.
pub fn canonical_hashes(cfg: &Config) -> BTreeMap<String, String> {
    Group::CARRIED
        .iter()
        .map(|&g| {
            let mut items: Vec<(String, serde_json::Value)> =
                group_values(cfg, g).into_iter().map(|v| (item_key(g, &v).unwrap_or_default(), v)).collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            let values: Vec<serde_json::Value> = items.into_iter().map(|(_, v)| v).collect();
            (g.as_str().to_string(), md5_json(&values))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_round_trip_their_wire_names() {
        for g in Group::SHENYU.iter().chain([Group::Route].iter()) {
            assert_eq!(Group::parse(g.as_str()), Some(*g));
            assert_eq!(serde_json::to_value(g).unwrap(), g.as_str());
        }
        assert_eq!(Group::parse("NOPE"), None);
    }

    #[test]
    fn canonical_hashes_ignore_order() {
        let a = Config::from_yaml_str(
            "selectors: [{id: s1, pluginName: divide, type: 0}, {id: s2, pluginName: divide, type: 0}]",
        )
        .unwrap();
        let mut b = a.clone();
        b.selectors.reverse();
        assert_ne!(group_md5(&a, Group::Selector), group_md5(&b, Group::Selector));
        assert_eq!(canonical_hashes(&a), canonical_hashes(&b));
        b.selectors[0].name = "x".into();
        assert_ne!(canonical_hashes(&a)["SELECTOR"], canonical_hashes(&b)["SELECTOR"]);
    }

    #[test]
    fn message_omits_absent_fields() {
        let m = WsMessage {
            group_type: Some("PLUGIN".into()),
            event_type: "MYSELF".into(),
            data: vec![],
            revision: None,
            since: None,
            hashes: None,
        };
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"groupType":"PLUGIN","eventType":"MYSELF","data":[]}"#);
    }
}
