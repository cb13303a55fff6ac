//! The whole stored config in memory, as loaded inside a write transaction.
//!
//! Every write is "load everything under the lock, change it here, validate the result, write the
//! rows that differ". One path for single edits, batches, imports and rollbacks means they share
//! the same validation, versioning and audit rules.

use std::collections::{HashMap, HashSet};

use tigateway_model::{
    AppAuth, Config, MetaData, Plugin, RouteDefinition, Rule, Selector, ValidationError, ValidationErrors,
};

use super::entity::{Change, Entity, EntityKind, Item};
use super::StoreError;

/// What the store keeps about a row besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMeta {
    pub version: i64,
    pub seq: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default)]
pub struct State {
    pub cfg: Config,
    pub meta: HashMap<(EntityKind, String), RowMeta>,
    pub next_seq: i64,
}

/// Longest id, name or plugin name the schema holds (`VARCHAR(255)`).
pub const MAX_KEY_CHARS: usize = 255;

impl State {
    pub fn meta_of(&self, kind: EntityKind, id: &str) -> Option<&RowMeta> {
        self.meta.get(&(kind, id.to_string()))
    }

    fn fresh_id(&self, kind: EntityKind) -> String {
        loop {
            let id = format!("{:016x}", rand::random::<u64>());
            if !self.meta.contains_key(&(kind, id.clone())) {
                return id;
            }
        }
    }

    fn take_seq(&mut self) -> i64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn create<E: Entity>(&mut self, mut value: E, now: &str) -> Result<String, StoreError> {
        value.strip_store_fields();
        if value.id().is_empty() {
            value.set_id(self.fresh_id(E::KIND));
        }
        let id = value.id().to_string();
        if self.meta.contains_key(&(E::KIND, id.clone())) {
            return Err(StoreError::AlreadyExists { kind: E::KIND, id });
        }
        let seq = self.take_seq();
        self.meta.insert(
            (E::KIND, id.clone()),
            RowMeta { version: 1, seq, created_at: now.to_string(), updated_at: now.to_string() },
        );
        E::items_mut(&mut self.cfg).push(value);
        Ok(id)
    }

    fn check_version(&self, kind: EntityKind, id: &str, expected: i64) -> Result<(), StoreError> {
        match self.meta_of(kind, id) {
            None => Err(StoreError::NotFound { kind, id: id.to_string() }),
            Some(m) if m.version != expected => Err(StoreError::Conflict { current_version: m.version }),
            Some(_) => Ok(()),
        }
    }

    pub fn update<E: Entity>(&mut self, id: &str, expected: i64, mut value: E, now: &str) -> Result<(), StoreError> {
        self.check_version(E::KIND, id, expected)?;
        value.strip_store_fields();
        // The path names the object; an id in the body cannot move it.
        value.set_id(id.to_string());
        let slot = E::items_mut(&mut self.cfg)
            .iter_mut()
            .find(|v| v.id() == id)
            .ok_or_else(|| StoreError::NotFound { kind: E::KIND, id: id.to_string() })?;
        *slot = value;
        let m = self.meta.get_mut(&(E::KIND, id.to_string())).expect("checked above");
        m.version += 1;
        m.updated_at = now.to_string();
        Ok(())
    }

    pub fn delete<E: Entity>(&mut self, id: &str, expected: i64) -> Result<(), StoreError> {
        self.check_version(E::KIND, id, expected)?;
        E::items_mut(&mut self.cfg).retain(|v| v.id() != id);
        self.meta.remove(&(E::KIND, id.to_string()));
        Ok(())
    }

    pub fn apply(&mut self, change: Change, now: &str) -> Result<(), StoreError> {
        match change {
            Change::Create { item } => match item {
                Item::Plugin(v) => self.create(v, now).map(drop),
                Item::Selector(v) => self.create(v, now).map(drop),
                Item::Rule(v) => self.create(v, now).map(drop),
                Item::MetaData(v) => self.create(v, now).map(drop),
                Item::AppAuth(v) => self.create(v, now).map(drop),
                Item::Route(v) => self.create(v, now).map(drop),
            },
            Change::Update { id, expected_version, item } => match item {
                Item::Plugin(v) => self.update(&id, expected_version, v, now),
                Item::Selector(v) => self.update(&id, expected_version, v, now),
                Item::Rule(v) => self.update(&id, expected_version, v, now),
                Item::MetaData(v) => self.update(&id, expected_version, v, now),
                Item::AppAuth(v) => self.update(&id, expected_version, v, now),
                Item::Route(v) => self.update(&id, expected_version, v, now),
            },
            Change::Delete { kind, id, expected_version } => match kind {
                EntityKind::Plugin => self.delete::<Plugin>(&id, expected_version),
                EntityKind::Selector => self.delete::<Selector>(&id, expected_version),
                EntityKind::Rule => self.delete::<Rule>(&id, expected_version),
                EntityKind::MetaData => self.delete::<MetaData>(&id, expected_version),
                EntityKind::AppAuth => self.delete::<AppAuth>(&id, expected_version),
                EntityKind::Route => self.delete::<RouteDefinition>(&id, expected_version),
            },
        }
    }

    /// Makes the state equal `target`: objects keep their id; an object whose content changed gets
    /// a new version, an unchanged one keeps its version; order follows the document.
    pub fn replace_all(&mut self, target: Config, now: &str) {
        let mut next = State { cfg: target, meta: HashMap::new(), next_seq: 0 };
        next.adopt::<Plugin>(self, now);
        next.adopt::<Selector>(self, now);
        next.adopt::<Rule>(self, now);
        next.adopt::<MetaData>(self, now);
        next.adopt::<AppAuth>(self, now);
        next.adopt::<RouteDefinition>(self, now);
        *self = next;
    }

    fn adopt<E: Entity>(&mut self, old: &State, now: &str) {
        let mut items = std::mem::take(E::items_mut(&mut self.cfg));
        for (i, v) in items.iter_mut().enumerate() {
            v.strip_store_fields();
            if v.id().is_empty() {
                v.set_id(self.fresh_id(E::KIND));
            }
            let seq = i as i64 + 1;
            let prev = old.meta_of(E::KIND, v.id());
            let prev_value = E::items(&old.cfg).iter().find(|o| o.id() == v.id());
            let meta = match (prev, prev_value) {
                (Some(m), Some(pv)) if pv == v => RowMeta { seq, ..m.clone() },
                (Some(m), Some(_)) => RowMeta {
                    version: m.version + 1,
                    seq,
                    created_at: m.created_at.clone(),
                    updated_at: now.to_string(),
                },
                _ => RowMeta { version: 1, seq, created_at: now.to_string(), updated_at: now.to_string() },
            };
            // A duplicated id keeps its first row; validation reports the duplicate.
            self.meta.entry((E::KIND, v.id().to_string())).or_insert(meta);
        }
        self.next_seq = self.next_seq.max(items.len() as i64);
        *E::items_mut(&mut self.cfg) = items;
    }

    /// `Config::validate()` plus what the store itself needs: unique keys the model does not
    /// check, keys that fit the schema, and no config sections the store does not keep.
    pub fn validate(&self) -> Result<(), StoreError> {
        let mut errs = match self.cfg.validate() {
            Ok(()) => Vec::new(),
            Err(e) => e.0,
        };
        store_checks(&self.cfg, &mut errs);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Invalid(ValidationErrors(errs)))
        }
    }
}

fn store_checks(cfg: &Config, errs: &mut Vec<ValidationError>) {
    fn unique<E: Entity>(
        cfg: &Config,
        section: &str,
        key: impl Fn(&E) -> &str,
        what: &str,
        errs: &mut Vec<ValidationError>,
    ) {
        let mut ids = HashSet::new();
        let mut keys = HashSet::new();
        for (i, v) in E::items(cfg).iter().enumerate() {
            if v.id().chars().count() > MAX_KEY_CHARS {
                errs.push(ValidationError::new(
                    format!("{section}[{i}].id"),
                    format!("longer than {MAX_KEY_CHARS} characters"),
                ));
            }
            if !v.id().is_empty() && !ids.insert(v.id()) {
                errs.push(ValidationError::new(format!("{section}[{i}].id"), format!("duplicate id {:?}", v.id())));
            }
            let k = key(v);
            if !what.is_empty() && !k.is_empty() && !keys.insert(k) {
                errs.push(ValidationError::new(format!("{section}[{i}].{what}"), format!("duplicate {what} {k:?}")));
            }
        }
    }
    unique::<Plugin>(cfg, "plugins", |p| &p.name, "", errs);
    unique::<Selector>(cfg, "selectors", |s| &s.id, "", errs);
    unique::<Rule>(cfg, "rules", |r| &r.id, "", errs);
    // The diff (and so revisions and sync) keys metadata by path and credentials by app key.
    unique::<MetaData>(cfg, "metadata", |m| &m.path, "path", errs);
    unique::<AppAuth>(cfg, "appAuth", |a| &a.app_key, "appKey", errs);
    unique::<RouteDefinition>(cfg, "routes", |r| &r.id, "", errs);

    let default = Config::default();
    let unmanaged = [
        ("server", cfg.server != default.server),
        ("services", !cfg.services.is_empty()),
        ("discoveryUpstreams", !cfg.discovery_upstreams.is_empty()),
        ("demoUpstreams", !cfg.demo_upstreams.is_empty()),
    ];
    for (section, set) in unmanaged {
        if set {
            errs.push(ValidationError::new(
                section,
                "not kept by the admin store (it holds plugins, selectors, rules, metadata, appAuth and routes)",
            ));
        }
    }
}
