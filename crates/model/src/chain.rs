//! Which plugins run for a config, in which order, and what each one's selector table holds.
//!
//! The data plane's snapshot builder and `explain` both read the chain from here, so an
//! explanation lists exactly the plugins a request goes through.

use std::collections::HashSet;

use crate::{builtin_plugin_order, Config, Plugin, Rule, Selector, ValidationError};

/// One plugin the build implements, as this config sets it up.
#[derive(Debug, Clone)]
pub struct ChainSlot<'a> {
    pub name: &'a str,
    /// Position in the chain: the plugin row's `sort`, else the built-in order.
    pub order: i64,
    pub row: Option<&'a Plugin>,
    /// Whether the plugin runs; when not, `reason` says why.
    pub enabled: bool,
    pub reason: Option<&'static str>,
}

/// Every plugin of `implemented` (names in the build's factory order), sorted by chain order
/// (stable, so equal orders keep that order), enabled or not.
///
/// Rules: with a `plugins` list, a plugin runs when its row is enabled; without one, a plugin
/// runs when it has selectors. `route` runs whenever there are routes unless a row disables it.
pub fn plugin_chain<'a>(cfg: &'a Config, implemented: &[&'a str]) -> Vec<ChainSlot<'a>> {
    let mut out: Vec<ChainSlot<'a>> = implemented
        .iter()
        .map(|&name| {
            let row = cfg.plugins.iter().find(|p| p.name == name);
            let has_selectors = cfg.selectors.iter().any(|s| s.plugin_name == name);
            let (enabled, reason) = match row {
                Some(r) if r.enabled => (true, None),
                Some(_) => (false, Some("disabled in `plugins`")),
                None if name == "route" && !cfg.routes.is_empty() => (true, None),
                None if name == "route" => (false, Some("no routes configured")),
                None if !cfg.plugins.is_empty() => (false, Some("not listed in `plugins`")),
                None if has_selectors => (true, None),
                None => (false, Some("no selectors for this plugin")),
            };
            let order = row.and_then(|r| r.sort).or_else(|| builtin_plugin_order(name)).unwrap_or(0);
            ChainSlot { name, order, row, enabled, reason }
        })
        .collect();
    out.sort_by_key(|s| s.order);
    out
}

/// A plugin this build lacks (waf, sign, ...) is accepted while it has no enabled selectors (a
/// ShenYu admin seeds every plugin) and refused when it has: silently skipping a security plugin
/// would be worse than refusing the config.
pub fn unimplemented_in_use(cfg: &Config, implemented: &[&str]) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    let known = |name: &str| implemented.contains(&name);
    for (i, p) in cfg.plugins.iter().enumerate() {
        if p.enabled && !known(&p.name) && cfg.selectors.iter().any(|s| s.plugin_name == p.name && s.enabled) {
            errs.push(ValidationError::new(
                format!("plugins[{i}].name"),
                format!("plugin {:?} is not implemented in this build yet", p.name),
            ));
        }
    }
    if cfg.plugins.is_empty() {
        for s in &cfg.selectors {
            if s.enabled && !known(&s.plugin_name) {
                errs.push(ValidationError::new(
                    format!("selector {:?}.pluginName", s.id),
                    format!("plugin {:?} is not implemented in this build yet", s.plugin_name),
                ));
            }
        }
    }
    errs
}

/// The selectors of plugin `name` (in config order, disabled ones included) and the rules that
/// belong to them: the input of the plugin's selector table.
pub fn plugin_inputs<'a>(cfg: &'a Config, name: &str) -> (Vec<&'a Selector>, Vec<&'a Rule>) {
    let selectors: Vec<&Selector> = cfg.selectors.iter().filter(|s| s.plugin_name == name).collect();
    let ids: HashSet<&str> = selectors.iter().map(|s| s.id.as_str()).collect();
    let rules = cfg.rules.iter().filter(|r| ids.contains(r.selector_id.as_str())).collect();
    (selectors, rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(id: &str, plugin: &str) -> Selector {
        Selector { id: id.into(), plugin_name: plugin.into(), ..Default::default() }
    }

    #[test]
    fn without_plugin_rows_plugins_with_selectors_run_in_builtin_order() {
        let cfg = Config { selectors: vec![sel("d", "divide"), sel("c", "contextPath")], ..Default::default() };
        let chain = plugin_chain(&cfg, &["divide", "contextPath", "route"]);
        let on: Vec<&str> = chain.iter().filter(|s| s.enabled).map(|s| s.name).collect();
        assert_eq!(on, ["contextPath", "divide"]);
        assert_eq!(chain.iter().find(|s| s.name == "route").unwrap().reason, Some("no routes configured"));
    }

    #[test]
    fn plugin_rows_decide_and_sort_overrides_order() {
        let cfg = Config {
            plugins: vec![
                Plugin { name: "divide".into(), enabled: true, sort: Some(10), ..Default::default() },
                Plugin { name: "contextPath".into(), enabled: false, ..Default::default() },
            ],
            selectors: vec![sel("c", "contextPath"), sel("r", "redirect")],
            ..Default::default()
        };
        let chain = plugin_chain(&cfg, &["contextPath", "redirect", "divide"]);
        let names: Vec<(&str, bool)> = chain.iter().map(|s| (s.name, s.enabled)).collect();
        assert_eq!(names, [("divide", true), ("contextPath", false), ("redirect", false)]);
        let (s, r) = plugin_inputs(&cfg, "contextPath");
        assert_eq!((s.len(), r.len()), (1, 0));
    }

    #[test]
    fn unimplemented_plugins_are_refused_only_when_in_use() {
        let waf = |enabled| Selector { enabled, ..sel("w", "waf") };
        let row = Plugin { name: "waf".into(), enabled: true, ..Default::default() };
        let cfg = Config { plugins: vec![row.clone()], selectors: vec![waf(false)], ..Default::default() };
        assert!(unimplemented_in_use(&cfg, &["divide"]).is_empty());
        let cfg = Config { plugins: vec![row], selectors: vec![waf(true)], ..Default::default() };
        assert_eq!(unimplemented_in_use(&cfg, &["divide"])[0].path, "plugins[0].name");
        let cfg = Config { selectors: vec![waf(true)], ..Default::default() };
        assert_eq!(unimplemented_in_use(&cfg, &["divide"])[0].path, r#"selector "w".pluginName"#);
    }
}
