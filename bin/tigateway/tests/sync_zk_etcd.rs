//! ZooKeeper and etcd sync through the real binary: an admin publishing into a real ZooKeeper /
//! etcd, three gateway processes following it, real upstreams, requests through each gateway.
//!
//! `TIGATEWAY_TEST_ZK_URL` (`host:port`) and `TIGATEWAY_TEST_ETCD_URL` (`http://host:port`) name
//! the servers (`.ci/run` starts both). Every test uses its own namespace, so tests share them.

#[path = "e2e/common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tigateway_testkit::admin_login;

const BIN: &str = env!("CARGO_BIN_EXE_tigateway");
const PASSWORD: &str = "correct horse battery";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    Zk,
    Etcd,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Zk => "zookeeper",
            Method::Etcd => "etcd",
        }
    }

    /// The server's address from the environment; None (test skipped) when unset outside CI.
    fn url(self) -> Option<String> {
        let var = match self {
            Method::Zk => "TIGATEWAY_TEST_ZK_URL",
            Method::Etcd => "TIGATEWAY_TEST_ETCD_URL",
        };
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Some(v),
            _ if std::env::var_os("CI").is_some() => panic!("{var} is not set but CI is: the {self:?} tests must run"),
            _ => {
                eprintln!("note: {var} is not set; skipping this {self:?} test");
                None
            }
        }
    }

    /// CLI flags naming `url` for this method.
    fn flags(self, url: &str) -> Vec<String> {
        match self {
            Method::Zk => vec!["--zookeeper".into(), url.into()],
            Method::Etcd => vec!["--etcd".into(), url.into()],
        }
    }
}

fn namespace() -> String {
    format!("tigw-test-{:016x}", rand::random::<u64>())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when dropped; its stderr goes to a file for log assertions.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(args: &[String], log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", std::env::var("TIGW_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .env("TIGATEWAY_ADMIN_PASSWORD", PASSWORD)
            // Several processes at once: none of them may take the default metrics ports.
            .env("TIGATEWAY_METRICS", "off")
            .env("TIGATEWAY_ADMIN_METRICS", "off")
            .env_remove("TIGATEWAY_ZOOKEEPER")
            .env_remove("TIGATEWAY_ETCD")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn tigateway");
        Proc { child, log }
    }

    /// The log so far, colour codes removed.
    fn log(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Admin {
    proc: Proc,
    api: String,
    token: String,
}

/// `tigateway admin` on a SQLite file; `publish` = with `--sync-publish` to the method.
async fn start_admin(dir: &Path, method: Method, url: &str, ns: &str, publish: bool) -> Admin {
    start_admin_with(dir, method, url, ns, publish, &[]).await
}

/// As `start_admin`, with more flags.
async fn start_admin_with(dir: &Path, method: Method, url: &str, ns: &str, publish: bool, extra: &[&str]) -> Admin {
    let port = free_port();
    let mut args: Vec<String> = vec![
        "admin".into(),
        "--database-url".into(),
        format!("sqlite://{}?mode=rwc", dir.join("admin.db").display()),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ];
    if publish {
        args.extend(["--sync-publish".into(), method.name().into(), "--namespace".into(), ns.into()]);
        args.extend(method.flags(url));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let proc = Proc::spawn(&args, dir.join(format!("admin-{port}.log")));
    wait_port(port, "admin");
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let token = admin_login(&api, "admin", PASSWORD).await;
    Admin { proc, api, token }
}

impl Admin {
    async fn send(&self, method: reqwest::Method, path: &str, version: Option<i64>, body: Option<Value>) -> Value {
        let mut rq = client().request(method.clone(), format!("{}{path}", self.api)).bearer_auth(&self.token);
        if let Some(v) = version {
            rq = rq.header("if-match", v.to_string());
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn create(&self, kind: &str, body: Value) -> Value {
        self.send(reqwest::Method::POST, &format!("/{kind}"), None, Some(body)).await
    }

    async fn get(&self, kind: &str, id: &str) -> Value {
        self.send(reqwest::Method::GET, &format!("/{kind}/{id}"), None, None).await
    }

    /// Reads the object, lets `edit` change it, writes it back under its version.
    async fn edit(&self, kind: &str, id: &str, edit: impl FnOnce(&mut Value)) -> Value {
        let mut v = self.get(kind, id).await;
        let version = v["version"].as_i64().unwrap();
        edit(&mut v);
        self.send(reqwest::Method::PUT, &format!("/{kind}/{id}"), Some(version), Some(v)).await
    }

    async fn delete(&self, kind: &str, id: &str) {
        let version = self.get(kind, id).await["version"].as_i64().unwrap();
        self.send(reqwest::Method::DELETE, &format!("/{kind}/{id}"), Some(version), None).await;
    }
}

struct Gateway {
    proc: Proc,
    port: u16,
}

fn start_gateway(dir: &Path, method: Method, url: &str, ns: &str, extra: &[&str]) -> Gateway {
    let port = free_port();
    let mut args: Vec<String> = vec![
        "gateway".into(),
        "--sync".into(),
        method.name().into(),
        "--namespace".into(),
        ns.into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--workers".into(),
        "1".into(),
    ];
    args.extend(method.flags(url));
    if !extra.contains(&"--cache-dir") {
        args.extend(["--cache-dir".to_string(), dir.join(format!("cache-{port}")).display().to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let proc = Proc::spawn(&args, dir.join(format!("gateway-{port}.log")));
    wait_port(port, "gateway");
    Gateway { proc, port }
}

/// What a gateway answers for `path`: status and the upstream's name (empty when none).
async fn probe(port: u16, path: &str) -> (u16, String) {
    match client().get(format!("http://127.0.0.1:{port}{path}")).timeout(Duration::from_secs(2)).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v["server"].as_str().unwrap_or("").to_string())
        }
        Err(_) => (0, String::new()),
    }
}

/// Waits until every gateway answers `path` with `status` from `server`; panics with what each one
/// answered after `within`.
async fn converge(gws: &[&Gateway], path: &str, status: u16, server: &str, within: Duration, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let mut answers = Vec::new();
        for g in gws {
            answers.push(probe(g.port, path).await);
        }
        if answers.iter().all(|(s, n)| *s == status && n == server) {
            return start.elapsed();
        }
        if start.elapsed() > within {
            let logs: Vec<String> = gws.iter().map(|g| g.proc.log()).collect();
            panic!(
                "{what}: gateways answered {answers:?}, wanted ({status}, {server:?})\nlogs:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn selector(id: &str, prefix: &str, upstream: &str) -> Value {
    json!({
        "id": id, "pluginName": "divide", "name": id, "type": 1, "matchMode": 0, "sort": 1,
        "conditionList": [{"paramType": "uri", "operator": "match", "paramValue": format!("{prefix}/**")}],
        "handle": format!("[{{\"upstreamUrl\":\"{upstream}\"}}]"),
    })
}

fn rule(id: &str, selector_id: &str, prefix: &str) -> Value {
    json!({
        "id": id, "selectorId": selector_id, "pluginName": "divide", "name": id,
        "conditionDataList": [{"paramType": "uri", "operator": "match", "paramValue": format!("{prefix}/**")}],
        "handle": "{\"loadBalance\":\"roundRobin\",\"timeout\":3000}",
    })
}

/// Every node under the namespace's root, path → data, read with the same clients a gateway uses.
async fn read_nodes(method: Method, url: &str, ns: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let root = format!("/{ns}/shenyu");
    match method {
        Method::Zk => {
            let c = zookeeper_client::Client::connect(url).await.unwrap();
            tigateway_sync::zookeeper::read_tree(&c, &root).await.unwrap().into_iter().collect()
        }
        Method::Etcd => {
            let mut c = etcd_client::Client::connect([url], None).await.unwrap();
            tigateway_sync::etcd::read_prefix(&mut c, &format!("{root}/")).await.unwrap().0.into_iter().collect()
        }
    }
}

/// Writes nodes as a ShenYu admin does: ZooKeeper parents created empty, etcd keys flat.
async fn write_nodes(method: Method, url: &str, nodes: &[(String, String)]) {
    match method {
        Method::Zk => {
            let c = zookeeper_client::Client::connect(url).await.unwrap();
            let opts = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
            for (path, data) in nodes {
                for parent in tigateway_sync::layout::Layout::parents(path) {
                    match c.create(parent, &[], &opts).await {
                        Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
                        Err(e) => panic!("{parent}: {e}"),
                    }
                }
                match c.create(path, data.as_bytes(), &opts).await {
                    Ok(_) => {}
                    Err(zookeeper_client::Error::NodeExists) => {
                        c.set_data(path, data.as_bytes(), None).await.unwrap();
                    }
                    Err(e) => panic!("{path}: {e}"),
                }
            }
        }
        Method::Etcd => {
            let mut c = etcd_client::Client::connect([url], None).await.unwrap();
            for (path, data) in nodes {
                c.put(path.as_str(), data.as_str(), None).await.unwrap();
            }
        }
    }
}

async fn changes_reach_three_gateways(method: Method) {
    let Some(url) = method.url() else { return };
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    let mut admin = start_admin(dir.path(), method, &url, &ns, true).await;
    let gws: Vec<Gateway> = (0..3).map(|_| start_gateway(dir.path(), method, &url, &ns, &[])).collect();
    let all: Vec<&Gateway> = gws.iter().collect();
    let within = Duration::from_secs(5);
    converge(&all, "/orders/1", 404, "", within, "nothing configured yet").await;

    // Create.
    admin.create("selectors", selector("orders", "/orders", &a.addr.to_string())).await;
    admin.create("rules", rule("orders-all", "orders", "/orders")).await;
    converge(&all, "/orders/1", 200, "a", within, "selector and rule created").await;

    // Update.
    let up_b = b.addr.to_string();
    admin.edit("selectors", "orders", |v| v["handle"] = json!(format!("[{{\"upstreamUrl\":\"{up_b}\"}}]"))).await;
    converge(&all, "/orders/1", 200, "b", within, "selector updated").await;

    // A rule that stops matching takes the route away; changing it back restores it.
    admin.edit("rules", "orders-all", |v| v["conditionDataList"][0]["paramValue"] = json!("/elsewhere/**")).await;
    converge(&all, "/orders/1", 404, "", within, "rule updated").await;
    admin.edit("rules", "orders-all", |v| v["conditionDataList"][0]["paramValue"] = json!("/orders/**")).await;
    converge(&all, "/orders/1", 200, "b", within, "rule restored").await;

    // Plugin disabled and enabled again.
    admin.edit("plugins", "divide", |v| v["enabled"] = json!(false)).await;
    converge(&all, "/orders/1", 404, "", within, "divide disabled").await;
    admin.edit("plugins", "divide", |v| v["enabled"] = json!(true)).await;
    converge(&all, "/orders/1", 200, "b", within, "divide enabled").await;

    // Metadata and app auth: written where ShenYu 2.7 keeps them, in its wire shape, and applied
    // by every gateway.
    admin
        .create(
            "metadata",
            json!({"id": "m1", "appName": "orders", "path": "/orders/save", "rpcType": "http", "enabled": true}),
        )
        .await;
    admin.create("app-auth", json!({"id": "k1", "appKey": "key-1", "appSecret": "secret-1", "enabled": true})).await;
    // Publishing follows the commit asynchronously: wait for the last object to be there.
    let root = format!("/{ns}/shenyu");
    let deadline = Instant::now() + within;
    let nodes = loop {
        let nodes = read_nodes(method, &url, &ns).await;
        if nodes.contains_key(&format!("{root}/auth/key-1")) {
            break nodes;
        }
        assert!(Instant::now() < deadline, "the app auth node was not published: {:?}", nodes.keys());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let node = |p: &str| -> Value {
        serde_json::from_slice(nodes.get(&format!("{root}{p}")).unwrap_or_else(|| panic!("no node {p}: {nodes:?}")))
            .unwrap()
    };
    assert_eq!(node("/plugin/divide")["name"], "divide");
    assert_eq!(node("/plugin/divide")["namespaceId"], ns.as_str());
    let sel = node("/selector/divide/orders");
    assert_eq!(sel["pluginName"], "divide");
    assert_eq!(sel["logged"], false, "selectors spell it logged");
    assert!(sel["handle"].is_string(), "the handle is a JSON string: {sel}");
    // ShenYu 2.6+ gateways read divide upstreams from discoveryUpstream only: derived from the handle.
    let du = node("/discoveryUpstream/divide/orders");
    assert_eq!(du["upstreamDataList"][0]["url"], b.addr.to_string(), "{du}");
    assert_eq!(du["upstreamDataList"][0]["status"], 0);
    let rl = node("/rule/divide/orders-orders-all");
    assert_eq!(rl["loged"], false, "rules spell it loged");
    assert_eq!(rl["selectorId"], "orders");
    assert_eq!(node("/metaData/orders/save")["path"], "/orders/save");
    assert_eq!(node("/auth/key-1")["appSecret"], "secret-1");
    // Every gateway applies the revision that added them (or a later one).
    let page = admin.send(reqwest::Method::GET, "/revisions?page=1&pageSize=1", None, None).await;
    let latest = page["items"][0]["revision"].as_i64().unwrap();
    let deadline = Instant::now() + within;
    while !gws.iter().all(|g| applied_revision(&g.proc.log()) >= latest) {
        assert!(
            Instant::now() < deadline,
            "not every gateway applied revision {latest}:\n{}",
            gws.iter().map(|g| g.proc.log()).collect::<Vec<_>>().join("\n----\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.delete("metadata", "m1").await;
    admin.delete("app-auth", "k1").await;
    let deadline = Instant::now() + within;
    loop {
        let nodes = read_nodes(method, &url, &ns).await;
        if !nodes.contains_key(&format!("{root}/metaData/orders/save"))
            && !nodes.contains_key(&format!("{root}/auth/key-1"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "metadata and app auth nodes not removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The admin goes away: gateways keep serving. A change made meanwhile (through another admin
    // on the same database that does not publish) arrives when the publishing admin is back, and
    // the node of an object deleted meanwhile is removed by its full publish.
    admin.create("app-auth", json!({"id": "stale", "appKey": "stale", "appSecret": "x", "enabled": true})).await;
    let stale = format!("{root}/auth/stale");
    let deadline = Instant::now() + within;
    while !read_nodes(method, &url, &ns).await.contains_key(&stale) {
        assert!(Instant::now() < deadline, "app auth node not published");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.proc.kill();
    converge(&all, "/orders/1", 200, "b", within, "admin down").await;
    let other = start_admin(dir.path(), method, &url, &ns, false).await;
    let up_a = a.addr.to_string();
    other.edit("selectors", "orders", |v| v["handle"] = json!(format!("[{{\"upstreamUrl\":\"{up_a}\"}}]"))).await;
    other.delete("app-auth", "stale").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    converge(&all, "/orders/1", 200, "b", within, "nothing published while the publishing admin is down").await;
    drop(other);
    admin = start_admin(dir.path(), method, &url, &ns, true).await;
    converge(&all, "/orders/1", 200, "a", Duration::from_secs(10), "admin back: the change made meanwhile").await;
    assert!(!read_nodes(method, &url, &ns).await.contains_key(&stale), "the full publish left a stale node");

    // Delete.
    admin.delete("rules", "orders-all").await;
    admin.delete("selectors", "orders").await;
    converge(&all, "/orders/1", 404, "", within, "selector and rule deleted").await;
    // The gateways answer 404 once the rule is gone; the selector's deletion is the next revision.
    let (sel, rl) = (format!("{root}/selector/divide/orders"), format!("{root}/rule/divide/orders-orders-all"));
    let deadline = Instant::now() + within;
    loop {
        let nodes = read_nodes(method, &url, &ns).await;
        if !nodes.contains_key(&sel) && !nodes.contains_key(&rl) {
            break;
        }
        assert!(Instant::now() < deadline, "selector or rule node left behind: {:?}", nodes.keys());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for g in &gws {
        assert!(g.proc.log().contains(&format!("config from {} applied", method.name())), "{}", g.proc.log());
    }
}

/// The highest admin revision a gateway's log says it runs.
fn applied_revision(log: &str) -> i64 {
    log.lines()
        .filter(|l| l.contains("applied") || l.contains("unchanged"))
        .filter_map(|l| l.split("revision=").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse::<i64>().ok())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_changes_reach_three_gateways() {
    changes_reach_three_gateways(Method::Zk).await
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_changes_reach_three_gateways() {
    changes_reach_three_gateways(Method::Etcd).await
}

/// A TCP relay on loopback that can cut every connection and refuse new ones: a network partition
/// between a gateway and ZooKeeper / etcd.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start(target: &str) -> Relay {
        let target = target.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let target = target.clone();
                let mut cut_rx = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Relay { port, up, cut }
    }

    fn addr(&self, method: Method) -> String {
        match method {
            Method::Zk => format!("127.0.0.1:{}", self.port),
            Method::Etcd => format!("http://127.0.0.1:{}", self.port),
        }
    }

    fn partition(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn heal(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_session_expiry_converges() {
    let Some(url) = Method::Zk.url() else { return };
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    let admin = start_admin(dir.path(), Method::Zk, &url, &ns, true).await;
    let relay = Relay::start(&url).await;
    let gw = start_gateway(
        dir.path(),
        Method::Zk,
        &relay.addr(Method::Zk),
        &ns,
        &["--zookeeper-session-timeout-ms", "2000"],
    );
    admin.create("selectors", selector("s", "/s", &a.addr.to_string())).await;
    admin.create("rules", rule("r", "s", "/s")).await;
    let within = Duration::from_secs(5);
    converge(&[&gw], "/s/1", 200, "a", within, "before the partition").await;

    // Partitioned longer than the session timeout: ZooKeeper expires the session; the change made
    // meanwhile is only seen through the new session's full re-read.
    relay.partition();
    let up_b = b.addr.to_string();
    admin.edit("selectors", "s", |v| v["handle"] = json!(format!("[{{\"upstreamUrl\":\"{up_b}\"}}]"))).await;
    tokio::time::sleep(Duration::from_millis(4000)).await;
    converge(&[&gw], "/s/1", 200, "a", within, "partitioned: the gateway keeps serving what it has").await;
    relay.heal();
    converge(&[&gw], "/s/1", 200, "b", Duration::from_secs(15), "after the session expired").await;
    let log = gw.proc.log();
    assert!(log.contains("Expired"), "the session did not expire:\n{log}");
    assert!(!log.contains("differs from what the admin published"), "the re-read tree failed its digest:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_compaction_converges() {
    let Some(url) = Method::Etcd.url() else { return };
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    let admin = start_admin(dir.path(), Method::Etcd, &url, &ns, true).await;
    let relay = Relay::start(&url).await;
    let gw = start_gateway(dir.path(), Method::Etcd, &relay.addr(Method::Etcd), &ns, &[]);
    admin.create("selectors", selector("s", "/s", &a.addr.to_string())).await;
    admin.create("rules", rule("r", "s", "/s")).await;
    let within = Duration::from_secs(5);
    converge(&[&gw], "/s/1", 200, "a", within, "before the partition").await;

    // While the gateway cannot reach etcd, a change is written and the history compacted past the
    // revision the gateway's watch would resume from.
    relay.partition();
    let up_b = b.addr.to_string();
    admin.edit("selectors", "s", |v| v["handle"] = json!(format!("[{{\"upstreamUrl\":\"{up_b}\"}}]"))).await;
    // A second revision, so the compaction point lies past the first change the watch would resume at.
    admin.create("app-auth", json!({"id": "k", "appKey": "k", "appSecret": "x", "enabled": true})).await;
    let mut c = etcd_client::Client::connect([url.as_str()], None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rev = c.get("/", None).await.unwrap().header().unwrap().revision();
    c.compact(rev, Some(etcd_client::CompactionOptions::new().with_physical())).await.unwrap();
    converge(&[&gw], "/s/1", 200, "a", within, "partitioned: the gateway keeps serving what it has").await;
    relay.heal();
    converge(&[&gw], "/s/1", 200, "b", Duration::from_secs(15), "after the compaction").await;
    let log = gw.proc.log();
    assert!(log.contains("compacted"), "the watch did not hit the compaction:\n{log}");
    assert!(!log.contains("differs from what the admin published"), "the re-read tree failed its digest:\n{log}");
}

async fn malformed_nodes_are_skipped(method: Method) {
    let Some(url) = method.url() else { return };
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    let admin = start_admin(dir.path(), method, &url, &ns, true).await;
    let gw = start_gateway(dir.path(), method, &url, &ns, &[]);
    admin.create("selectors", selector("s", "/s", &a.addr.to_string())).await;
    admin.create("rules", rule("r", "s", "/s")).await;
    let within = Duration::from_secs(5);
    converge(&[&gw], "/s/1", 200, "a", within, "configured").await;

    // Garbage over the selector node, and an object of an unknown kind of plugin that has nothing
    // enabled: the gateway logs the first, leaves the second out, and keeps serving.
    let root = format!("/{ns}/shenyu");
    write_nodes(
        method,
        &url,
        &[
            (format!("{root}/selector/divide/s"), "{\"id\": \"s\", \"pluginName\": [oops".to_string()),
            (format!("{root}/plugin/mcpServer"), r#"{"id":"60","name":"mcpServer","enabled":false,"sort":900}"#.into()),
        ],
    )
    .await;
    let deadline = Instant::now() + within;
    while !gw.proc.log().contains("malformed config node skipped") {
        assert!(Instant::now() < deadline, "the malformed node was not logged:\n{}", gw.proc.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.proc.log().contains("[oops"), "the log shows the node's content");
    converge(&[&gw], "/s/1", 200, "a", within, "after the malformed node").await;

    // The admin's next change to that selector repairs it.
    let up_b = b.addr.to_string();
    admin.edit("selectors", "s", |v| v["handle"] = json!(format!("[{{\"upstreamUrl\":\"{up_b}\"}}]"))).await;
    converge(&[&gw], "/s/1", 200, "b", within, "a valid change after the malformed node").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_malformed_nodes_are_skipped() {
    malformed_nodes_are_skipped(Method::Zk).await
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_malformed_nodes_are_skipped() {
    malformed_nodes_are_skipped(Method::Etcd).await
}

/// The tree exactly as a ShenYu 2.7 admin writes it (Gson JSON, `=` escaped as `\u003d`, the
/// selector handle still listing upstreams while 2.6+ gateways take them from discoveryUpstream,
/// metadata nested under its raw path, every plugin seeded): a TiGateway gateway follows it.
async fn follows_a_shenyu_tree(method: Method) {
    let Some(url) = method.url() else { return };
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let live = upstream(UpstreamBehavior::named("live")).await;
    let dead = free_port();
    let r = format!("/{ns}/shenyu");
    let nodes: Vec<(String, String)> = vec![
        (
            format!("{r}/plugin/divide"),
            format!(
                r#"{{"config":"{{\"multiSelectorHandle\":\"1\",\"multiRuleHandle\":\"0\"}}","role":"Proxy","pluginJar":"","id":"5","name":"divide","enabled":true,"sort":200,"namespaceId":"{ns}"}}"#
            ),
        ),
        (
            format!("{r}/plugin/mcpServer"),
            format!(
                r#"{{"role":"Proxy","pluginJar":"","id":"72","name":"mcpServer","enabled":false,"sort":910,"namespaceId":"{ns}"}}"#
            ),
        ),
        (
            format!("{r}/selector/divide/1719059114001"),
            format!(
                r#"{{"pluginId":"5","pluginName":"divide","matchMode":0,"type":1,"logged":false,"continued":true,"handle":"[{{\"weight\":50,\"warmup\":600000,\"protocol\":\"http://\",\"upstreamHost\":\"localhost\",\"upstreamUrl\":\"127.0.0.1:{dead}\",\"status\":true,\"timestamp\":1719059114000,\"namespaceId\":\"{ns}\",\"gray\":false,\"healthCheckEnabled\":true}}]","conditionList":[{{"paramType":"uri","operator":"match","paramName":"/","paramValue":"/http/**"}}],"matchRestful":false,"id":"1719059114001","name":"/http","enabled":true,"sort":1,"namespaceId":"{ns}"}}"#
            ),
        ),
        (
            format!("{r}/rule/divide/1719059114001-1719059114002"),
            format!(
                r#"{{"pluginName":"divide","selectorId":"1719059114001","matchMode":0,"loged":true,"handle":"{{\"loadBalance\":\"random\",\"retryStrategy\":\"current\",\"retry\":3,\"timeout\":3000,\"headerMaxSize\":10240,\"requestMaxSize\":102400}}","conditionDataList":[{{"paramType":"req_method","operator":"\u003d","paramName":"/","paramValue":"GET"}}],"matchRestful":false,"id":"1719059114002","name":"/http/order","enabled":true,"sort":1,"namespaceId":"{ns}"}}"#
            ),
        ),
        (
            format!("{r}/discoveryUpstream/divide/1719059114001"),
            format!(
                r#"{{"selectorId":"1719059114001","pluginName":"divide","selectorName":"/http","upstreamDataList":[{{"id":"1","dateCreated":"2024-06-22 12:00:00","dateUpdated":"2024-06-22 12:00:00","discoveryHandlerId":"9","protocol":"http://","url":"{}","status":0,"weight":50,"props":"{{\"warmupTime\":\"10\"}}","namespaceId":"{ns}"}}],"namespaceId":"{ns}","discoveryHandlerId":"9"}}"#,
                live.addr
            ),
        ),
        (
            format!("{r}/proxySelectorData/divide/1719059114001"),
            format!(
                r#"{{"id":"1719059114001","name":"/http","pluginName":"divide","type":"http","forwardPort":9500,"props":{{}},"namespaceId":"{ns}"}}"#
            ),
        ),
        (
            format!("{r}/metaData/http/order/save"),
            format!(
                r#"{{"id":"3","appName":"http","contextPath":"/http","path":"/http/order/save","rpcType":"http","serviceName":"order","methodName":"save","parameterTypes":"","rpcExt":"","enabled":true,"namespaceId":"{ns}"}}"#
            ),
        ),
        (
            format!("{r}/auth/appKey1"),
            format!(
                r#"{{"appKey":"appKey1","appSecret":"secret","enabled":true,"open":false,"paramDataList":[],"pathDataList":[{{"appName":"app","path":"/http/**","enabled":true}}],"namespaceId":"{ns}"}}"#
            ),
        ),
    ];
    write_nodes(method, &url, &nodes).await;
    let gw = start_gateway(dir.path(), method, &url, &ns, &[]);
    let within = Duration::from_secs(5);
    converge(&[&gw], "/http/order/1", 200, "live", within, "following the ShenYu tree").await;
    let (status, v) = get_json(&format!("http://127.0.0.1:{}/http/order/1", gw.port)).await;
    assert_eq!(status, 200);
    assert_eq!(v["path"], "/http/order/1", "divide forwards the whole path");
    converge(&[&gw], "/other", 404, "", within, "nothing else matches").await;
    let log = gw.proc.log();
    assert!(!log.contains("malformed"), "a ShenYu node was refused:\n{log}");

    // And a later change by the ShenYu admin: deleting the selector removes, in this order, its
    // proxy selector, its discovery upstreams, its rules and itself.
    let gone: Vec<String> = [
        "/proxySelectorData/divide/1719059114001",
        "/discoveryUpstream/divide/1719059114001",
        "/rule/divide/1719059114001-1719059114002",
        "/selector/divide/1719059114001",
    ]
    .iter()
    .map(|p| format!("{r}{p}"))
    .collect();
    match method {
        Method::Zk => {
            let zk = zookeeper_client::Client::connect(&url).await.unwrap();
            for p in &gone {
                zk.delete(p, None).await.unwrap();
            }
        }
        Method::Etcd => {
            let mut e = etcd_client::Client::connect([url.as_str()], None).await.unwrap();
            for p in &gone {
                e.delete(p.as_str(), None).await.unwrap();
            }
        }
    }
    converge(&[&gw], "/http/order/1", 404, "", within, "the ShenYu admin removed the selector").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_gateway_follows_a_shenyu_2_7_tree() {
    follows_a_shenyu_tree(Method::Zk).await
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_gateway_follows_a_shenyu_2_7_tree() {
    follows_a_shenyu_tree(Method::Etcd).await
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_digest_credentials_protect_the_tree() {
    let Some(url) = Method::Zk.url() else { return };
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let a = upstream(UpstreamBehavior::named("a")).await;
    let port = free_port();
    let args: Vec<String> = [
        "admin",
        "--database-url",
        &format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display()),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--sync-publish",
        "zookeeper",
        "--zookeeper",
        &url,
        "--namespace",
        &ns,
        "--sync-username",
        "tigw",
        "--sync-password",
        "s3cret",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let proc = Proc::spawn(&args, dir.path().join("admin.log"));
    wait_port(port, "admin");
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let token = admin_login(&api, "admin", PASSWORD).await;
    let admin = Admin { proc, api, token };
    admin.create("selectors", selector("s", "/s", &a.addr.to_string())).await;
    admin.create("rules", rule("r", "s", "/s")).await;

    let with =
        start_gateway(dir.path(), Method::Zk, &url, &ns, &["--sync-username", "tigw", "--sync-password", "s3cret"]);
    let without = start_gateway(dir.path(), Method::Zk, &url, &ns, &[]);
    let within = Duration::from_secs(5);
    converge(&[&with], "/s/1", 200, "a", within, "gateway with the credentials").await;
    converge(&[&without], "/s/1", 404, "", within, "gateway without credentials").await;
    let c = zookeeper_client::Client::connect(&url).await.unwrap();
    let err = c.get_data(&format!("/{ns}/shenyu/selector/divide/s")).await.unwrap_err();
    assert_eq!(err, zookeeper_client::Error::NoAuth);
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_legacy_2_6_layout() {
    let Some(url) = Method::Zk.url() else { return };
    // 2.6 has no namespace: every 2.6 user of this ZooKeeper shares `/shenyu`, so only this test
    // writes there, and its admin's full publish replaces whatever an earlier run left.
    let dir = tempfile::tempdir().unwrap();
    let a = upstream(UpstreamBehavior::named("a")).await;
    let port = free_port();
    let args: Vec<String> = [
        "admin",
        "--database-url",
        &format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display()),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--sync-publish",
        "zookeeper",
        "--zookeeper",
        &url,
        "--sync-layout",
        "2.6",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let proc = Proc::spawn(&args, dir.path().join("admin.log"));
    wait_port(port, "admin");
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let token = admin_login(&api, "admin", PASSWORD).await;
    let admin = Admin { proc, api, token };
    admin.create("selectors", selector("legacy", "/legacy", &a.addr.to_string())).await;
    admin.create("rules", rule("legacy-r", "legacy", "/legacy")).await;
    admin
        .create(
            "metadata",
            json!({"id": "m", "appName": "x", "path": "/legacy/save", "rpcType": "http", "enabled": true}),
        )
        .await;
    let gw = start_gateway(dir.path(), Method::Zk, &url, "ignored", &["--sync-layout", "2.6"]);
    converge(&[&gw], "/legacy/1", 200, "a", Duration::from_secs(5), "2.6 layout").await;
    let c = zookeeper_client::Client::connect(&url).await.unwrap();
    let (data, _) = c.get_data("/shenyu/selector/divide/legacy").await.unwrap();
    let v: Value = serde_json::from_slice(&data).unwrap();
    assert!(v.get("namespaceId").is_none(), "2.6 objects carry no namespace: {v}");
    c.get_data("/shenyu/metaData/%2Flegacy%2Fsave").await.expect("2.6 metadata node: URL-encoded path");
}

/// Propagation benchmark (bench/RESULTS.md): admin commit → all three gateways serving it.
/// `cargo test -p tigateway --test sync_zk_etcd -- --ignored propagation --nocapture`
async fn propagation(method: Method) {
    let Some(url) = method.url() else { return };
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let ups = [upstream(UpstreamBehavior::named("a")).await, upstream(UpstreamBehavior::named("b")).await];
    let admin = start_admin(dir.path(), method, &url, &ns, true).await;
    let gws: Vec<Gateway> = (0..3).map(|_| start_gateway(dir.path(), method, &url, &ns, &[])).collect();
    let all: Vec<&Gateway> = gws.iter().collect();
    admin.create("selectors", selector("p", "/p", &ups[0].addr.to_string())).await;
    admin.create("rules", rule("p-r", "p", "/p")).await;
    converge(&all, "/p/1", 200, "a", Duration::from_secs(5), "warm-up").await;
    let http = client();
    let mut times = Vec::new();
    for i in 1..=100 {
        let (name, up) = if i % 2 == 1 { ("b", ups[1].addr) } else { ("a", ups[0].addr) };
        let mut v = admin.get("selectors", "p").await;
        let version = v["version"].as_i64().unwrap();
        v["handle"] = json!(format!("[{{\"upstreamUrl\":\"{up}\"}}]"));
        // The clock starts before the write is sent: the commit happens inside the request.
        let start = Instant::now();
        let r = http
            .put(format!("{}/selectors/p", admin.api))
            .bearer_auth(&admin.token)
            .header("if-match", version.to_string())
            .json(&v)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let mut done = [false; 3];
        while !done.iter().all(|d| *d) {
            for (k, g) in gws.iter().enumerate() {
                if !done[k] {
                    done[k] = probe(g.port, "/p/1").await == (200, name.to_string());
                }
            }
            assert!(start.elapsed() < Duration::from_secs(5), "change {i} did not propagate");
        }
        times.push(start.elapsed());
    }
    times.sort();
    let pct = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "{}: commit -> 3 gateways serving, {} changes: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        method.name(),
        times.len(),
        pct(50),
        pct(90),
        pct(99),
        times.last().unwrap().as_secs_f64() * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark"]
async fn propagation_zookeeper() {
    propagation(Method::Zk).await
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark"]
async fn propagation_etcd() {
    propagation(Method::Etcd).await
}

/// One admin revision of a thousand selectors and a thousand rules (three thousand nodes, written in
/// several ZooKeeper multis / etcd transactions) is applied by a gateway as one snapshot.
async fn a_large_revision_is_applied_whole(method: Method) {
    let Some(url) = method.url() else { return };
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let a = upstream(UpstreamBehavior::named("a")).await;
    let admin = start_admin(dir.path(), method, &url, &ns, true).await;
    let gw = start_gateway(dir.path(), method, &url, &ns, &[]);
    let within = Duration::from_secs(10);
    converge(&[&gw], "/storm0/x", 404, "", within, "empty").await;
    let applied_lines =
        |log: &str| log.lines().filter(|l| l.contains(&format!("config from {} applied", method.name()))).count();
    let before = applied_lines(&gw.proc.log());
    let n = 1000;
    let mut changes = Vec::new();
    for i in 0..n {
        let mut s = selector(&format!("storm{i}"), &format!("/storm{i}"), &a.addr.to_string());
        s["sort"] = json!(i);
        changes.push(json!({"op": "create", "item": {"type": "selector", "value": s}}));
        changes.push(json!({"op": "create", "item": {"type": "rule", "value": rule(&format!("storm{i}-r"), &format!("storm{i}"), &format!("/storm{i}"))}}));
    }
    admin.send(reqwest::Method::POST, "/batch", None, Some(Value::Array(changes))).await;
    converge(&[&gw], &format!("/storm{}/x", n - 1), 200, "a", within, "the large revision").await;
    converge(&[&gw], "/storm0/x", 200, "a", within, "the large revision, first selector").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = gw.proc.log();
    assert_eq!(applied_lines(&log) - before, 1, "one revision, one snapshot:\n{log}");
    assert!(!log.contains("refused"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_large_revision_is_applied_whole() {
    a_large_revision_is_applied_whole(Method::Zk).await
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_large_revision_is_applied_whole() {
    a_large_revision_is_applied_whole(Method::Etcd).await
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_user_and_password() {
    // etcd's auth is switched on for a whole cluster, so this test runs its own etcd process
    // (the binary `.ci/run` installs) instead of touching the shared one.
    if Method::Etcd.url().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (client_port, peer_port) = (free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
    let mut etcd = Command::new(std::env::var("TIGATEWAY_TEST_ETCD_BIN").unwrap_or_else(|_| "etcd".into()))
        .args(["--name", "auth-test", "--data-dir"])
        .arg(dir.path().join("etcd-data"))
        .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
        .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("auth-test={peer}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn etcd");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _etcd = Kill(&mut etcd);
    wait_port(client_port, "etcd");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut root = loop {
        if let Ok(mut c) = etcd_client::Client::connect([endpoint.as_str()], None).await {
            if c.status().await.is_ok() {
                break c;
            }
        }
        assert!(Instant::now() < deadline, "the test's etcd did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    root.user_add("root", "root-pw", None).await.unwrap();
    root.user_grant_role("root", "root").await.unwrap();
    root.user_add("tigw", "tigw-pw", None).await.unwrap();
    root.role_add("sync").await.unwrap();
    let perm = etcd_client::Permission::read_write("/").with_prefix();
    root.role_grant_permission("sync", perm).await.unwrap();
    root.user_grant_role("tigw", "sync").await.unwrap();
    root.auth_enable().await.unwrap();

    let ns = namespace();
    let a = upstream(UpstreamBehavior::named("a")).await;
    let port = free_port();
    let args: Vec<String> = [
        "admin",
        "--database-url",
        &format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display()),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--sync-publish",
        "etcd",
        "--etcd",
        &endpoint,
        "--namespace",
        &ns,
        "--sync-username",
        "tigw",
        "--sync-password",
        "tigw-pw",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let proc = Proc::spawn(&args, dir.path().join("admin.log"));
    wait_port(port, "admin");
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let token = admin_login(&api, "admin", PASSWORD).await;
    let admin = Admin { proc, api, token };
    admin.create("selectors", selector("s", "/s", &a.addr.to_string())).await;
    admin.create("rules", rule("r", "s", "/s")).await;

    let with = start_gateway(
        dir.path(),
        Method::Etcd,
        &endpoint,
        &ns,
        &["--sync-username", "tigw", "--sync-password", "tigw-pw"],
    );
    let without = start_gateway(dir.path(), Method::Etcd, &endpoint, &ns, &[]);
    let within = Duration::from_secs(5);
    converge(&[&with], "/s/1", 200, "a", within, "gateway with the etcd user").await;
    converge(&[&without], "/s/1", 404, "", within, "gateway without credentials").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_republishes_after_losing_zookeeper() {
    let Some(url) = Method::Zk.url() else { return };
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    // The admin reaches ZooKeeper through a relay that can be cut; the gateway directly.
    let relay = Relay::start(&url).await;
    let port = free_port();
    let args: Vec<String> = [
        "admin",
        "--database-url",
        &format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display()),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--sync-publish",
        "zookeeper",
        "--zookeeper",
        &relay.addr(Method::Zk),
        "--namespace",
        &ns,
        "--zookeeper-session-timeout-ms",
        "2000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let proc = Proc::spawn(&args, dir.path().join("admin.log"));
    wait_port(port, "admin");
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let token = admin_login(&api, "admin", PASSWORD).await;
    let admin = Admin { proc, api, token };
    let gw = start_gateway(dir.path(), Method::Zk, &url, &ns, &[]);
    admin.create("selectors", selector("s", "/s", &a.addr.to_string())).await;
    admin.create("rules", rule("r", "s", "/s")).await;
    let within = Duration::from_secs(5);
    converge(&[&gw], "/s/1", 200, "a", within, "published").await;

    // Changes committed while the admin cannot reach ZooKeeper (its session expires meanwhile) are
    // published in full once it can.
    relay.partition();
    let up_b = b.addr.to_string();
    admin.edit("selectors", "s", |v| v["handle"] = json!(format!("[{{\"upstreamUrl\":\"{up_b}\"}}]"))).await;
    admin.create("app-auth", json!({"id": "k", "appKey": "k", "appSecret": "x", "enabled": true})).await;
    tokio::time::sleep(Duration::from_millis(4000)).await;
    converge(&[&gw], "/s/1", 200, "a", within, "nothing published while cut off").await;
    relay.heal();
    converge(&[&gw], "/s/1", 200, "b", Duration::from_secs(15), "published after reconnecting").await;
    let nodes = read_nodes(Method::Zk, &url, &ns).await;
    assert!(nodes.contains_key(&format!("/{ns}/shenyu/auth/k")), "{:?}", nodes.keys());
    let log = admin.proc.log();
    assert!(log.contains("reconnecting for a full publish"), "{log}");
}

/// A gateway keeps the last config it applied on disk; restarted while ZooKeeper / etcd cannot be
/// reached, it serves that config (and says so) instead of an empty one.
async fn restart_without_the_tree_serves_the_disk_cache(method: Method) {
    let Some(url) = method.url() else { return };
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let a = upstream(UpstreamBehavior::named("a")).await;
    let mut admin = start_admin(dir.path(), method, &url, &ns, true).await;
    let cache = dir.path().join("kept-cache");
    let cache_arg = cache.display().to_string();
    let mut gw = start_gateway(dir.path(), method, &url, &ns, &["--cache-dir", &cache_arg]);
    admin.create("selectors", selector("orders", "/orders", &a.addr.to_string())).await;
    admin.create("rules", rule("orders-all", "orders", "/orders")).await;
    converge(&[&gw], "/orders/1", 200, "a", Duration::from_secs(5), "selector and rule created").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(cache.join("tigateway-config.json")).is_ok_and(|t| t.contains("orders-all")) {
        assert!(Instant::now() < deadline, "the gateway never wrote its cache:\n{}", gw.proc.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.proc.kill();
    admin.proc.kill();

    // Nothing listens here: the tree cannot be reached.
    let dead = match method {
        Method::Zk => format!("127.0.0.1:{}", free_port()),
        Method::Etcd => format!("http://127.0.0.1:{}", free_port()),
    };
    let again = start_gateway(dir.path(), method, &dead, &ns, &["--cache-dir", &cache_arg]);
    assert_eq!(probe(again.port, "/orders/1").await, (200, "a".to_string()), "{}", again.proc.log());
    let log = again.proc.log();
    assert!(log.contains("serving from the cache"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_restart_without_the_tree_serves_the_disk_cache() {
    restart_without_the_tree_serves_the_disk_cache(Method::Zk).await
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_restart_without_the_tree_serves_the_disk_cache() {
    restart_without_the_tree_serves_the_disk_cache(Method::Etcd).await
}

/// The shared Redis level: a gateway that starts while ZooKeeper / etcd cannot be reached and has
/// no disk cache serves what the admin wrote to Redis (the admin publishes only to the tree: Redis
/// is written whatever `--sync-publish` says), reports it in `/ready` and the metrics, and switches
/// to the tree when it answers.
async fn starts_from_the_redis_cache_without_the_tree(method: Method) {
    let Some(url) = method.url() else { return };
    let redis = match std::env::var("TIGATEWAY_TEST_REDIS_URL") {
        Ok(v) if !v.trim().is_empty() => v,
        _ if std::env::var_os("CI").is_some() => panic!("TIGATEWAY_TEST_REDIS_URL is not set but CI is"),
        _ => return eprintln!("note: TIGATEWAY_TEST_REDIS_URL is not set; skipping this Redis test"),
    };
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    let admin = start_admin_with(dir.path(), method, &url, &ns, true, &["--cache-redis", &redis]).await;
    admin.create("selectors", selector("orders", "/orders", &a.addr.to_string())).await;
    admin.create("rules", rule("orders-all", "orders", "/orders")).await;
    let shared = tigateway_sync::cache::RedisCache::new(&redis, &ns).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !shared.load().await.ok().flatten().is_some_and(|c| c.config.rules.iter().any(|r| r.id == "orders-all")) {
        assert!(Instant::now() < deadline, "the admin never wrote the config to Redis:\n{}", admin.proc.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The gateway reaches the tree only through a relay that refuses every connection for now.
    let relay = Relay::start(&url).await;
    relay.partition();
    let cache = dir.path().join("empty-cache");
    let mport = free_port();
    let (cache_arg, metrics_arg) = (cache.display().to_string(), format!("127.0.0.1:{mport}"));
    let flags =
        ["--cache-dir", &cache_arg, "--cache-redis", &redis, "--metrics", &metrics_arg, "--sync-wait-ms", "3000"];
    let gw = start_gateway(dir.path(), method, &relay.addr(method), &ns, &flags);
    assert_eq!(probe(gw.port, "/orders/1").await, (200, "a".to_string()), "{}", gw.proc.log());
    let log = gw.proc.log();
    assert!(log.contains("serving from the cache") && log.contains(&format!("redis:tigateway:config:{ns}")), "{log}");
    let (status, ready) = get_json(&format!("http://127.0.0.1:{mport}/ready")).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["sources"][0]["name"], method.name(), "{ready}");
    assert_eq!(ready["sources"][0]["servingFromCache"], true, "{ready}");
    assert_eq!(ready["sources"][0]["connected"], false, "{ready}");
    let metrics = client().get(format!("http://127.0.0.1:{mport}/metrics")).send().await.unwrap().text().await.unwrap();
    let name = method.name();
    for line in [
        "tigateway_cache_hits_total{level=\"redis\"} 1".to_string(),
        format!("tigateway_sync_serving_from_cache{{source=\"{name}\"}} 1"),
        format!("tigateway_sync_connected{{source=\"{name}\"}} 0"),
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in:\n{metrics}");
    }
    assert!(!metrics.contains("level=\"disk\""), "Redis answered: the disk level is not asked\n{metrics}");
    assert!(!cache.join("tigateway-config.json").exists(), "a cached config is not written back to disk");

    // A change the tree has and Redis had not when the gateway started; then the tree answers.
    let up_b = b.addr.to_string();
    admin.edit("selectors", "orders", |v| v["handle"] = json!(format!("[{{\"upstreamUrl\":\"{up_b}\"}}]"))).await;
    relay.heal();
    converge(&[&gw], "/orders/1", 200, "b", Duration::from_secs(20), "the tree answered").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, ready) = get_json(&format!("http://127.0.0.1:{mport}/ready")).await;
        let s = &ready["sources"][0];
        if status == 200 && s["connected"] == true && s["servingFromCache"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "/ready after the tree answered: {ready}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(cache.join("tigateway-config.json")).is_ok_and(|t| t.contains(&up_b)) {
        assert!(Instant::now() < deadline, "the tree's config never reached the disk cache:\n{}", gw.proc.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The tree goes away again: not connected, but the last config serves on and the gateway stays
    // ready.
    relay.partition();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, ready) = get_json(&format!("http://127.0.0.1:{mport}/ready")).await;
        let s = &ready["sources"][0];
        if s["connected"] == false {
            assert_eq!(status, 200, "{ready}");
            assert_eq!(s["servingFromCache"], true, "{ready}");
            break;
        }
        assert!(Instant::now() < deadline, "/ready after losing the tree: {ready}\n{}", gw.proc.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(probe(gw.port, "/orders/1").await, (200, "b".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_gateway_starts_from_the_redis_cache() {
    starts_from_the_redis_cache_without_the_tree(Method::Zk).await
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_gateway_starts_from_the_redis_cache() {
    starts_from_the_redis_cache_without_the_tree(Method::Etcd).await
}
