//! The changes between two configs, by group and id (what a sync push or an audit entry carries).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// ShenYu group name: PLUGIN, SELECTOR, RULE, META_DATA, APP_AUTH, DISCOVER_UPSTREAM, ROUTE, SERVER, SERVICE.
    pub group: &'static str,
    pub kind: ChangeKind,
    pub id: String,
}

fn diff_group<T: PartialEq>(
    group: &'static str,
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
    out: &mut Vec<Change>,
) {
    let old_by: BTreeMap<String, &T> = old.iter().map(|v| (key(v), v)).collect();
    let new_by: BTreeMap<String, &T> = new.iter().map(|v| (key(v), v)).collect();
    for (id, v) in &new_by {
        match old_by.get(id) {
            None => out.push(Change { group, kind: ChangeKind::Create, id: id.clone() }),
            Some(o) if *o != *v => out.push(Change { group, kind: ChangeKind::Update, id: id.clone() }),
            _ => {}
        }
    }
    for id in old_by.keys() {
        if !new_by.contains_key(id) {
            out.push(Change { group, kind: ChangeKind::Delete, id: id.clone() });
        }
    }
}

/// Every object created, updated or deleted from `old` to `new`.
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let mut out = Vec::new();
    diff_group("PLUGIN", &old.plugins, &new.plugins, |p| p.name.clone(), &mut out);
    diff_group("SELECTOR", &old.selectors, &new.selectors, |s| s.id.clone(), &mut out);
    diff_group("RULE", &old.rules, &new.rules, |r| r.id.clone(), &mut out);
    diff_group("META_DATA", &old.metadata, &new.metadata, |m| m.path.clone(), &mut out);
    diff_group("APP_AUTH", &old.app_auth, &new.app_auth, |a| a.app_key.clone(), &mut out);
    diff_group(
        "DISCOVER_UPSTREAM",
        &old.discovery_upstreams,
        &new.discovery_upstreams,
        |d| d.selector_id.clone(),
        &mut out,
    );
    diff_group("ROUTE", &old.routes, &new.routes, |r| r.id.clone(), &mut out);
    let old_services: Vec<_> = old.services.iter().collect();
    let new_services: Vec<_> = new.services.iter().collect();
    diff_group("SERVICE", &old_services, &new_services, |(n, _)| (*n).clone(), &mut out);
    if old.server != new.server {
        out.push(Change { group: "SERVER", kind: ChangeKind::Update, id: "server".into() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_finds_create_update_delete() {
        let a = Config::from_yaml_str(
            "selectors: [{id: s1, pluginName: divide, type: 0}, {id: s2, pluginName: divide, type: 0}]",
        )
        .unwrap();
        let b = Config::from_yaml_str(
            "selectors: [{id: s1, pluginName: divide, type: 0, name: x}, {id: s3, pluginName: divide, type: 0}]",
        )
        .unwrap();
        let d = diff(&a, &b);
        assert!(d.contains(&Change { group: "SELECTOR", kind: ChangeKind::Update, id: "s1".into() }));
        assert!(d.contains(&Change { group: "SELECTOR", kind: ChangeKind::Create, id: "s3".into() }));
        assert!(d.contains(&Change { group: "SELECTOR", kind: ChangeKind::Delete, id: "s2".into() }));
        assert_eq!(d.len(), 3);
        assert!(diff(&a, &a).is_empty());
    }
}
