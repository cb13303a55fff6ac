//! The six kinds of object the store keeps, and what the generic store code needs to know of each.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tigateway_model::{AppAuth, Config, MetaData, Plugin, RouteDefinition, Rule, Selector};

/// One kind of stored object; names its table and its audit `entity_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntityKind {
    Plugin,
    Selector,
    Rule,
    MetaData,
    AppAuth,
    Route,
}

impl EntityKind {
    /// In dependency order, so a reader sees plugins before the selectors that name them.
    pub const ALL: [EntityKind; 6] = [
        EntityKind::Plugin,
        EntityKind::Selector,
        EntityKind::Rule,
        EntityKind::MetaData,
        EntityKind::AppAuth,
        EntityKind::Route,
    ];

    pub fn table(self) -> &'static str {
        match self {
            EntityKind::Plugin => "plugin",
            EntityKind::Selector => "selector",
            EntityKind::Rule => "rule",
            EntityKind::MetaData => "meta_data",
            EntityKind::AppAuth => "app_auth",
            EntityKind::Route => "route",
        }
    }

    /// The value written to `audit.entity_type` (the table name, so the two never drift apart).
    pub fn as_str(self) -> &'static str {
        self.table()
    }
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model type the store persists. Rows keep the whole object as JSON in `body`; the columns
/// derived from it here exist only for listing and filtering, so they cannot disagree with the body
/// in a way that matters to the gateway.
pub trait Entity: Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static {
    const KIND: EntityKind;
    fn id(&self) -> &str;
    fn set_id(&mut self, id: String);
    /// What the `name` filter matches: the name, or the natural key where the type has no name
    /// (metadata path, app key, route id).
    fn name(&self) -> &str;
    /// What the `pluginName` filter matches; empty for kinds that belong to no plugin.
    fn plugin_name(&self) -> &str {
        ""
    }
    /// The owning selector of a rule; empty otherwise.
    fn parent_id(&self) -> &str {
        ""
    }
    fn sort(&self) -> i64 {
        0
    }
    fn enabled(&self) -> bool {
        true
    }
    fn items(cfg: &Config) -> &Vec<Self>;
    fn items_mut(cfg: &mut Config) -> &mut Vec<Self>;
    /// Removes what the store keeps in its own columns so the body holds only configuration.
    fn strip_store_fields(&mut self) {}
}

impl Entity for Plugin {
    const KIND: EntityKind = EntityKind::Plugin;
    fn id(&self) -> &str {
        &self.id
    }
    fn set_id(&mut self, id: String) {
        self.id = id;
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn plugin_name(&self) -> &str {
        &self.name
    }
    fn sort(&self) -> i64 {
        self.sort.unwrap_or(0)
    }
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn items(cfg: &Config) -> &Vec<Self> {
        &cfg.plugins
    }
    fn items_mut(cfg: &mut Config) -> &mut Vec<Self> {
        &mut cfg.plugins
    }
}

impl Entity for Selector {
    const KIND: EntityKind = EntityKind::Selector;
    fn id(&self) -> &str {
        &self.id
    }
    fn set_id(&mut self, id: String) {
        self.id = id;
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn plugin_name(&self) -> &str {
        &self.plugin_name
    }
    fn sort(&self) -> i64 {
        self.sort.unwrap_or(0)
    }
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn items(cfg: &Config) -> &Vec<Self> {
        &cfg.selectors
    }
    fn items_mut(cfg: &mut Config) -> &mut Vec<Self> {
        &mut cfg.selectors
    }
}

impl Entity for Rule {
    const KIND: EntityKind = EntityKind::Rule;
    fn id(&self) -> &str {
        &self.id
    }
    fn set_id(&mut self, id: String) {
        self.id = id;
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn plugin_name(&self) -> &str {
        &self.plugin_name
    }
    fn parent_id(&self) -> &str {
        &self.selector_id
    }
    fn sort(&self) -> i64 {
        self.sort.unwrap_or(0)
    }
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn items(cfg: &Config) -> &Vec<Self> {
        &cfg.rules
    }
    fn items_mut(cfg: &mut Config) -> &mut Vec<Self> {
        &mut cfg.rules
    }
}

impl Entity for MetaData {
    const KIND: EntityKind = EntityKind::MetaData;
    fn id(&self) -> &str {
        &self.id
    }
    fn set_id(&mut self, id: String) {
        self.id = id;
    }
    fn name(&self) -> &str {
        &self.path
    }
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn items(cfg: &Config) -> &Vec<Self> {
        &cfg.metadata
    }
    fn items_mut(cfg: &mut Config) -> &mut Vec<Self> {
        &mut cfg.metadata
    }
}

impl Entity for AppAuth {
    const KIND: EntityKind = EntityKind::AppAuth;
    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("")
    }
    fn set_id(&mut self, id: String) {
        self.id = Some(id);
    }
    fn name(&self) -> &str {
        &self.app_key
    }
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn items(cfg: &Config) -> &Vec<Self> {
        &cfg.app_auth
    }
    fn items_mut(cfg: &mut Config) -> &mut Vec<Self> {
        &mut cfg.app_auth
    }
}

impl Entity for RouteDefinition {
    const KIND: EntityKind = EntityKind::Route;
    fn id(&self) -> &str {
        &self.id
    }
    fn set_id(&mut self, id: String) {
        self.id = id;
    }
    fn name(&self) -> &str {
        &self.id
    }
    fn sort(&self) -> i64 {
        self.order
    }
    fn items(cfg: &Config) -> &Vec<Self> {
        &cfg.routes
    }
    fn items_mut(cfg: &mut Config) -> &mut Vec<Self> {
        &mut cfg.routes
    }
    fn strip_store_fields(&mut self) {
        // The row's `version` column is the truth; a copy in the body would go stale.
        self.version = None;
    }
}

/// Any one stored object, for batches that mix kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
pub enum Item {
    Plugin(Plugin),
    Selector(Selector),
    Rule(Rule),
    MetaData(MetaData),
    AppAuth(AppAuth),
    Route(RouteDefinition),
}

impl Item {
    pub fn kind(&self) -> EntityKind {
        match self {
            Item::Plugin(_) => EntityKind::Plugin,
            Item::Selector(_) => EntityKind::Selector,
            Item::Rule(_) => EntityKind::Rule,
            Item::MetaData(_) => EntityKind::MetaData,
            Item::AppAuth(_) => EntityKind::AppAuth,
            Item::Route(_) => EntityKind::Route,
        }
    }
}

/// One step of [`crate::store::Store::apply_batch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Change {
    Create { item: Item },
    Update { id: String, expected_version: i64, item: Item },
    Delete { kind: EntityKind, id: String, expected_version: i64 },
}
