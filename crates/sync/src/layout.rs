//! Where a ShenYu admin keeps the config in ZooKeeper and etcd, and the mapping between that node
//! tree and a [`Config`], both ways.
//!
//! ShenYu 2.7 prefixes every path with the namespace id (`/{ns}/shenyu/plugin/{name}`) and stores a
//! metadata object under its raw path (`/{ns}/shenyu/metaData/http/order/save`); 2.6 and older use
//! `/shenyu/...` and one URL-encoded node per metadata path. Both write each object as one node of
//! Gson JSON in the sync wire shape, which is what the model types (de)serialize.
//!
//! Spring routes and static services have no place in ShenYu's tree; TiGateway keeps them under
//! `{root}/tigateway/...`, a sibling no ShenYu gateway watches, so a mixed fleet still works.

use std::collections::BTreeMap;

use tigateway_model::{AppAuth, Config, DiscoverySyncData, MetaData, Plugin, RouteDefinition, Rule, Selector};

/// `discoveryHandlerId` of the upstream lists the admin derives from selector handles (see
/// [`Layout::encode`]); a TiGateway gateway skips them and keeps reading the handle.
pub const DERIVED_HANDLER_ID: &str = "tigateway-selector-handle";

/// ShenYu's default namespace (`Constants.SYS_DEFAULT_NAMESPACE_ID`).
pub const DEFAULT_NAMESPACE: &str = "649330b6-c2d7-4edc-be8e-8a54df9eb385";

/// Which ShenYu tree layout to read or write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// ShenYu 2.7: `/{namespace}/shenyu/...`.
    Namespaced(String),
    /// ShenYu 2.6 and older: `/shenyu/...`, metadata paths URL-encoded into one node name.
    Legacy,
}

/// What one leaf node of the tree holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Plugin,
    Selector,
    Rule,
    MetaData,
    AppAuth,
    DiscoveryUpstream,
    /// ShenYu 2.6+ proxy selectors (TCP/UDP forwarding); no data plane here, read and ignored.
    ProxySelector,
    Route,
    Service,
    /// The admin revision the tree holds, written after all of a revision's nodes.
    Revision,
}

impl Layout {
    /// `Namespaced(DEFAULT_NAMESPACE)` unless `legacy`.
    pub fn new(namespace: Option<&str>, legacy: bool) -> Layout {
        if legacy {
            Layout::Legacy
        } else {
            Layout::Namespaced(namespace.filter(|n| !n.is_empty()).unwrap_or(DEFAULT_NAMESPACE).to_string())
        }
    }

    /// The node every ShenYu path starts with: `/{ns}/shenyu` or `/shenyu`.
    pub fn root(&self) -> String {
        match self {
            Layout::Namespaced(ns) => handle_path(&format!("/{ns}/shenyu")),
            Layout::Legacy => "/shenyu".to_string(),
        }
    }

    fn namespace(&self) -> Option<&str> {
        match self {
            Layout::Namespaced(ns) => Some(ns),
            Layout::Legacy => None,
        }
    }

    pub fn plugin_path(&self, name: &str) -> String {
        handle_path(&format!("{}/plugin/{name}", self.root()))
    }

    pub fn selector_path(&self, plugin: &str, id: &str) -> String {
        handle_path(&format!("{}/selector/{plugin}/{id}", self.root()))
    }

    pub fn rule_path(&self, plugin: &str, selector_id: &str, rule_id: &str) -> String {
        handle_path(&format!("{}/rule/{plugin}/{selector_id}-{rule_id}", self.root()))
    }

    pub fn app_auth_path(&self, app_key: &str) -> String {
        handle_path(&format!("{}/auth/{app_key}", self.root()))
    }

    pub fn meta_data_path(&self, path: &str) -> String {
        match self {
            Layout::Namespaced(_) => handle_path(&format!("{}/metaData/{path}", self.root())),
            Layout::Legacy => format!("{}/metaData/{}", self.root(), java_url_encode(path)),
        }
    }

    pub fn discovery_upstream_path(&self, plugin: &str, selector_id: &str) -> String {
        handle_path(&format!("{}/discoveryUpstream/{plugin}/{selector_id}", self.root()))
    }

    pub fn route_path(&self, id: &str) -> String {
        format!("{}/tigateway/route/{}", self.root(), component_encode(id))
    }

    /// A TiGateway admin writes `{"revision":N}` here after every node of revision N, so a
    /// gateway can apply a change whole instead of whatever part of it has arrived.
    pub fn revision_path(&self) -> String {
        format!("{}/tigateway/revision", self.root())
    }

    pub fn service_path(&self, name: &str) -> String {
        format!("{}/tigateway/service/{}", self.root(), component_encode(name))
    }

    /// Which object a path holds, by position under the root; `None` for directories and for paths
    /// outside the layout. A metadata node can be nested at any depth (2.7 writes the raw path), so
    /// under `metaData` every node with data counts and empty ones are directories.
    pub fn classify(&self, path: &str) -> Option<NodeKind> {
        let root = self.root();
        let rest = path.strip_prefix(&root)?.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        let kind = match (parts.as_slice(), parts.len()) {
            (["plugin", ..], 2) => NodeKind::Plugin,
            (["selector", ..], 3) => NodeKind::Selector,
            (["rule", ..], 3) => NodeKind::Rule,
            (["auth", ..], 2) => NodeKind::AppAuth,
            (["metaData", ..], n) if n >= 2 => NodeKind::MetaData,
            (["discoveryUpstream", ..], 3) => NodeKind::DiscoveryUpstream,
            (["proxySelectorData", ..], 3) => NodeKind::ProxySelector,
            (["tigateway", "route", _], 3) => NodeKind::Route,
            (["tigateway", "service", _], 3) => NodeKind::Service,
            (["tigateway", "revision"], 2) => NodeKind::Revision,
            _ => return None,
        };
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(kind)
    }

    /// Every node the config needs, path → JSON. Objects without a namespace get the layout's (a
    /// ShenYu 2.7 admin always sets it). An object whose key cannot be a node name (empty, or a
    /// `/` inside an id that ShenYu uses raw) is reported and left out.
    pub fn encode(&self, cfg: &Config) -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
        let mut out = BTreeMap::new();
        let mut errors = Vec::new();
        let ns = self.namespace().map(str::to_string);
        let bad = |s: &str| s.is_empty() || s.contains('/') || s == "." || s == "..";
        for p in &cfg.plugins {
            if bad(&p.name) {
                errors.push(format!("plugin {:?}: the name cannot be a node name", p.name));
                continue;
            }
            let mut p = p.clone();
            p.namespace_id = p.namespace_id.or_else(|| ns.clone());
            out.insert(self.plugin_path(&p.name), json(&p));
        }
        for s in &cfg.selectors {
            if bad(&s.plugin_name) || bad(&s.id) {
                errors.push(format!("selector {:?} of plugin {:?}: the id cannot be a node name", s.id, s.plugin_name));
                continue;
            }
            let mut s = s.clone();
            s.namespace_id = s.namespace_id.or_else(|| ns.clone());
            out.insert(self.selector_path(&s.plugin_name, &s.id), json(&s));
        }
        let selector_plugin: BTreeMap<&str, &str> =
            cfg.selectors.iter().map(|s| (s.id.as_str(), s.plugin_name.as_str())).collect();
        for r in &cfg.rules {
            let plugin = if r.plugin_name.is_empty() {
                selector_plugin.get(r.selector_id.as_str()).copied().unwrap_or("")
            } else {
                r.plugin_name.as_str()
            };
            if bad(plugin) || bad(&r.selector_id) || bad(&r.id) {
                errors.push(format!("rule {:?}: the ids cannot be a node name", r.id));
                continue;
            }
            let mut r = r.clone();
            r.plugin_name = plugin.to_string();
            r.namespace_id = r.namespace_id.or_else(|| ns.clone());
            out.insert(self.rule_path(plugin, &r.selector_id, &r.id), json(&r));
        }
        for m in &cfg.metadata {
            let trimmed = m.path.trim_matches('/');
            // 2.7 nests the raw path, so each of its segments must be a node name; 2.6 encodes it.
            let nested_bad = trimmed.is_empty() || trimmed.split('/').any(|p| p.is_empty() || p == "." || p == "..");
            if m.path.is_empty() || (self.namespace().is_some() && nested_bad) {
                errors.push(format!("metadata {:?}: the path cannot be a node path", m.path));
                continue;
            }
            let mut m = m.clone();
            m.namespace_id = m.namespace_id.or_else(|| ns.clone());
            out.insert(self.meta_data_path(&m.path), json(&m));
        }
        for a in &cfg.app_auth {
            if bad(&a.app_key) {
                errors.push(format!("app auth {:?}: the app key cannot be a node name", a.app_key));
                continue;
            }
            let mut a = a.clone();
            a.namespace_id = a.namespace_id.or_else(|| ns.clone());
            out.insert(self.app_auth_path(&a.app_key), json(&a));
        }
        for d in &cfg.discovery_upstreams {
            let plugin = if d.plugin_name.is_empty() {
                selector_plugin.get(d.selector_id.as_str()).copied().unwrap_or("")
            } else {
                d.plugin_name.as_str()
            };
            if bad(plugin) || bad(&d.selector_id) {
                errors.push(format!(
                    "discovery upstreams of selector {:?}: the ids cannot be a node name",
                    d.selector_id
                ));
                continue;
            }
            let mut d = d.clone();
            d.plugin_name = plugin.to_string();
            d.namespace_id = d.namespace_id.or_else(|| ns.clone());
            out.insert(self.discovery_upstream_path(plugin, &d.selector_id), json(&d));
        }
        // ShenYu 2.6+ gateways take divide / websocket upstreams only from discoveryUpstream nodes;
        // a selector that lists them in its handle gets one derived from it, so a ShenYu gateway
        // following this tree has the same upstreams.
        for s in &cfg.selectors {
            if !matches!(s.plugin_name.as_str(), "divide" | "websocket")
                || bad(&s.id)
                || cfg.discovery_upstreams.iter().any(|d| d.selector_id == s.id)
            {
                continue;
            }
            let Ok(list) = tigateway_model::handle::parse_divide_upstreams(s.handle.as_deref()) else { continue };
            if list.is_empty() {
                continue;
            }
            let derived = DiscoverySyncData {
                selector_id: s.id.clone(),
                plugin_name: s.plugin_name.clone(),
                selector_name: Some(s.name.clone()),
                upstream_data_list: list.iter().map(derive_upstream).collect(),
                namespace_id: s.namespace_id.clone().or_else(|| ns.clone()),
                discovery_handler_id: Some(DERIVED_HANDLER_ID.to_string()),
            };
            out.insert(self.discovery_upstream_path(&s.plugin_name, &s.id), json(&derived));
        }
        for r in &cfg.routes {
            out.insert(self.route_path(&r.id), json(r));
        }
        for (name, instances) in &cfg.services {
            out.insert(self.service_path(name), json(instances));
        }
        (out, errors)
    }

    /// Every directory a ZooKeeper tree needs above `path` (etcd has none), root first, down to the
    /// node's parent.
    pub fn parents(path: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(j) = path[i + 1..].find('/') {
            i += 1 + j;
            out.push(&path[..i]);
        }
        out
    }
}

/// A ShenYu 2.6+ upstream entry for one upstream of a selector handle.
fn derive_upstream(u: &tigateway_model::handle::DivideUpstream) -> tigateway_model::DiscoveryUpstream {
    let (protocol, url) = match u.upstream_url.split_once("://") {
        Some((scheme, rest)) => (Some(format!("{scheme}://")), rest.to_string()),
        None => (u.protocol.clone(), u.upstream_url.clone()),
    };
    let mut props = serde_json::Map::new();
    if let Some(w) = u.warmup {
        // ShenYu's admin writes warmupTime, its gateway reads warmup: give both.
        props.insert("warmup".into(), w.into());
        props.insert("warmupTime".into(), w.to_string().into());
    }
    if u.gray {
        props.insert("gray".into(), true.into());
    }
    tigateway_model::DiscoveryUpstream {
        protocol,
        url,
        status: Some(if u.status { 0 } else { 1 }),
        weight: u.weight,
        props: Some(serde_json::Value::Object(props).to_string()),
        namespace_id: u.namespace_id.clone(),
        ..Default::default()
    }
}

/// The revision marker's data.
pub fn revision_data(revision: i64, publish: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({"revision": revision, "publish": publish, "digest": digest}).to_string().into_bytes()
}

/// MD5 hex over the config nodes of a tree (path and data of each, in path order; directories,
/// foreign nodes and the marker left out). The admin puts it in the marker; a gateway compares it
/// with what a whole re-read found.
pub fn digest<'a>(layout: &Layout, nodes: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    use md5::{Digest, Md5};
    let mut nodes: Vec<(&str, &[u8])> = nodes
        .into_iter()
        .filter(|(p, d)| !d.is_empty() && !matches!(layout.classify(p), None | Some(NodeKind::Revision)))
        .collect();
    nodes.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut h = Md5::new();
    for (path, data) in nodes {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(Md5::digest(data));
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The marker's `digest`, if the data is a marker that has one.
pub fn marker_digest(data: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(data).ok()?.get("digest")?.as_str().map(str::to_string)
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("model values always serialize")
}

/// ShenYu's `handlePathData`: one left-to-right pass replacing `//` with `/` (what Java's
/// `replaceAll("//", "/")` does).
pub fn handle_path(path: &str) -> String {
    path.replace("//", "/")
}

/// `java.net.URLEncoder.encode(s, UTF_8)`, as ShenYu 2.6 names metadata nodes.
pub fn java_url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Our own node names (routes, services): `%` and `/` escaped so any id is one node name.
fn component_encode(s: &str) -> String {
    let s = s.replace('%', "%25").replace('/', "%2F");
    if s.is_empty() || s == "." || s == ".." {
        format!("%{s}")
    } else {
        s
    }
}

/// One parsed node.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Plugin(Plugin),
    Selector(Selector),
    Rule(Rule),
    MetaData(MetaData),
    AppAuth(AppAuth),
    DiscoveryUpstream(DiscoverySyncData),
    Route(RouteDefinition),
    Service(String, Vec<tigateway_model::ServiceInstance>),
    /// The admin revision marker.
    /// (admin revision, publish token): the token differs on every write of the marker, so a
    /// gateway sees each publish even when two carry the same revision number.
    Revision(i64, String),
    /// Read and understood, nothing to run (proxy selectors).
    Ignored,
}

/// Parses a node's data as the object its path says it holds. Path components fill what the data
/// leaves out (a rule without `pluginName`), as ShenYu's subscribers do.
pub fn decode(layout: &Layout, path: &str, data: &[u8]) -> Result<Entry, String> {
    let kind = layout.classify(path).ok_or_else(|| "not a config node of this layout".to_string())?;
    let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    let last = path.rsplit('/').next().unwrap_or("");
    let parts: Vec<&str> = path.split('/').collect();
    let err = |e: serde_json::Error| e.to_string();
    Ok(match kind {
        NodeKind::Plugin => {
            let mut p: Plugin = serde_json::from_str(text).map_err(err)?;
            if p.name.is_empty() {
                p.name = last.to_string();
            }
            Entry::Plugin(p)
        }
        NodeKind::Selector => {
            let mut s: Selector = serde_json::from_str(text).map_err(err)?;
            if s.plugin_name.is_empty() {
                s.plugin_name = parts[parts.len() - 2].to_string();
            }
            if s.id.is_empty() {
                s.id = last.to_string();
            }
            Entry::Selector(s)
        }
        NodeKind::Rule => {
            let mut r: Rule = serde_json::from_str(text).map_err(err)?;
            if r.plugin_name.is_empty() {
                r.plugin_name = parts[parts.len() - 2].to_string();
            }
            Entry::Rule(r)
        }
        NodeKind::MetaData => Entry::MetaData(serde_json::from_str(text).map_err(err)?),
        NodeKind::AppAuth => Entry::AppAuth(serde_json::from_str(text).map_err(err)?),
        NodeKind::DiscoveryUpstream => {
            let mut d: DiscoverySyncData = serde_json::from_str(text).map_err(err)?;
            if d.discovery_handler_id.as_deref() == Some(DERIVED_HANDLER_ID) {
                // A copy of the selector's handle for ShenYu gateways; the handle itself counts.
                return Ok(Entry::Ignored);
            }
            if d.plugin_name.is_empty() {
                d.plugin_name = parts[parts.len() - 2].to_string();
            }
            Entry::DiscoveryUpstream(d)
        }
        NodeKind::ProxySelector => {
            serde_json::from_str::<serde_json::Value>(text).map_err(err)?;
            Entry::Ignored
        }
        NodeKind::Route => Entry::Route(serde_json::from_str(text).map_err(err)?),
        NodeKind::Revision => {
            #[derive(serde::Deserialize)]
            struct Marker {
                revision: i64,
                #[serde(default)]
                publish: String,
            }
            let m = serde_json::from_str::<Marker>(text).map_err(err)?;
            Entry::Revision(m.revision, m.publish)
        }
        NodeKind::Service => {
            let name = percent_decode(last);
            Entry::Service(name, serde_json::from_str(text).map_err(err)?)
        }
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A short, printable account of a node's data for a log line: its length and first bytes.
pub fn summary(data: &[u8]) -> String {
    const MAX: usize = 160;
    let text = String::from_utf8_lossy(&data[..data.len().min(MAX)]);
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if data.len() > MAX {
        format!("{} bytes: {text}…", data.len())
    } else {
        format!("{} bytes: {text}", data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_shenyu_2_7() {
        let l = Layout::new(None, false);
        let ns = DEFAULT_NAMESPACE;
        assert_eq!(l.plugin_path("divide"), format!("/{ns}/shenyu/plugin/divide"));
        assert_eq!(l.selector_path("divide", "1"), format!("/{ns}/shenyu/selector/divide/1"));
        assert_eq!(l.rule_path("divide", "1", "2"), format!("/{ns}/shenyu/rule/divide/1-2"));
        assert_eq!(l.app_auth_path("k"), format!("/{ns}/shenyu/auth/k"));
        assert_eq!(l.meta_data_path("/http/order/save"), format!("/{ns}/shenyu/metaData/http/order/save"));
        assert_eq!(l.discovery_upstream_path("divide", "1"), format!("/{ns}/shenyu/discoveryUpstream/divide/1"));
        assert_eq!(l.classify(&l.meta_data_path("/http/order/save")), Some(NodeKind::MetaData));
        assert_eq!(l.classify(&format!("/{ns}/shenyu/selector/divide")), None);
        assert_eq!(l.classify(&format!("/{ns}/shenyu/rule/divide/1-2")), Some(NodeKind::Rule));
        assert_eq!(l.classify("/other/shenyu/plugin/divide"), None);
    }

    #[test]
    fn legacy_layout_url_encodes_metadata() {
        let l = Layout::Legacy;
        assert_eq!(l.plugin_path("divide"), "/shenyu/plugin/divide");
        assert_eq!(l.meta_data_path("/http/a b*"), "/shenyu/metaData/%2Fhttp%2Fa+b*");
        assert_eq!(l.classify("/shenyu/metaData/%2Fhttp%2Fa+b*"), Some(NodeKind::MetaData));
    }

    #[test]
    fn encode_then_decode_gives_the_config_back() {
        let cfg = Config::from_yaml_str(
            r#"
plugins: [{id: "5", name: divide, enabled: true, sort: 200}]
selectors: [{id: s1, pluginName: divide, type: 1, conditionList: [{paramType: uri, operator: match, paramValue: /a/**}], handle: '[{"upstreamUrl":"127.0.0.1:1"}]'}]
rules: [{id: r1, selectorId: s1, pluginName: divide, handle: '{"timeout":3000}'}]
metadata: [{id: m1, path: /http/order/save, appName: app, rpcType: http}]
appAuth: [{appKey: k, appSecret: s}]
routes: [{id: "a/b", uri: "http://127.0.0.1:1", predicates: ["Path=/x/**"]}]
services: {"svc/1": [{url: "http://127.0.0.1:2"}]}
"#,
        )
        .unwrap();
        for l in [Layout::new(Some("ns1"), false), Layout::Legacy] {
            let (nodes, errors) = l.encode(&cfg);
            assert!(errors.is_empty(), "{errors:?}");
            let mut back = Config::default();
            for (path, data) in &nodes {
                match decode(&l, path, data).unwrap_or_else(|e| panic!("{path}: {e}")) {
                    Entry::Plugin(p) => back.plugins.push(p),
                    Entry::Selector(s) => back.selectors.push(s),
                    Entry::Rule(r) => back.rules.push(r),
                    Entry::MetaData(m) => back.metadata.push(m),
                    Entry::AppAuth(a) => back.app_auth.push(a),
                    Entry::Route(r) => back.routes.push(r),
                    Entry::Service(n, i) => {
                        back.services.insert(n, i);
                    }
                    Entry::Ignored => {}
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(back.selectors[0].id, "s1");
            assert_eq!(back.rules[0].selector_id, "s1");
            assert_eq!(back.metadata[0].path, "/http/order/save");
            assert_eq!(back.routes, cfg.routes);
            assert_eq!(back.services, cfg.services);
            let expect_ns = match &l {
                Layout::Namespaced(ns) => Some(ns.clone()),
                Layout::Legacy => None,
            };
            assert_eq!(back.selectors[0].namespace_id, expect_ns);
        }
    }

    #[test]
    fn handle_upstreams_are_also_published_for_shenyu_gateways() {
        let cfg = Config::from_yaml_str(
            r#"selectors: [{id: s1, pluginName: divide, name: n, type: 0, handle: '[{"upstreamUrl":"127.0.0.1:1","weight":50,"warmup":1000,"status":false}]'}]"#,
        )
        .unwrap();
        let l = Layout::new(Some("ns"), false);
        let (nodes, _) = l.encode(&cfg);
        let path = l.discovery_upstream_path("divide", "s1");
        let d: serde_json::Value = serde_json::from_slice(&nodes[&path]).unwrap();
        let u = &d["upstreamDataList"][0];
        assert_eq!(u["url"], "127.0.0.1:1");
        assert_eq!(u["status"], 1, "a disabled upstream is not healthy (0)");
        assert_eq!(u["weight"], 50);
        assert_eq!(d["selectorId"], "s1");
        // TiGateway keeps reading the handle.
        assert_eq!(decode(&l, &path, &nodes[&path]).unwrap(), Entry::Ignored);
    }

    #[test]
    fn bad_ids_are_reported_not_written() {
        let cfg = Config::from_yaml_str("selectors: [{id: 'a/b', pluginName: divide, type: 0}]").unwrap();
        let (nodes, errors) = Layout::new(None, false).encode(&cfg);
        assert!(nodes.is_empty());
        assert!(errors[0].contains("a/b"), "{errors:?}");
    }

    #[test]
    fn parents_of_a_path() {
        assert_eq!(Layout::parents("/a/b/c"), vec!["/a", "/a/b"]);
        assert_eq!(Layout::parents("/a"), Vec::<&str>::new());
    }
}
