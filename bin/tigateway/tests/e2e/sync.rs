//! Admin → gateway sync through the real binary: one admin process and three gateway processes
//! per sync method; changes made through the admin REST API must be served by every gateway;
//! the admin going away must not stop traffic; a change made while it was away arrives when it is
//! back; a gateway restarted with no admin serves from its disk cache. Plus two admin processes on
//! one PostgreSQL database.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_tigateway");
const PASSWORD: &str = "sync e2e password";

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut s));
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(args: &[String], log: PathBuf, wait_port: u16) -> Proc {
    spawn_with_password(args, log, wait_port, PASSWORD)
}

/// `spawn`, with another first-admin password (an admin the gateways' credentials do not fit).
fn spawn_with_password(args: &[String], log: PathBuf, wait_port: u16, password: &str) -> Proc {
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(BIN)
        .args(args)
        .env("TIGATEWAY_ADMIN_PASSWORD", password)
        .env("RUST_LOG", "info")
        // Several processes at once: none of them may take the default metrics ports.
        .env("TIGATEWAY_METRICS", "off")
        .env("TIGATEWAY_ADMIN_METRICS", "off")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("spawn tigateway");
    let p = Proc { child, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", wait_port)).is_err() {
        assert!(Instant::now() < deadline, "process did not start listening on {wait_port}:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(25));
    }
    p
}

fn start_admin(db_url: &str, port: u16, dir: &Path, name: &str) -> Proc {
    spawn(&admin_args(db_url, port), dir.join(format!("{name}.log")), port)
}

fn admin_args(db_url: &str, port: u16) -> Vec<String> {
    vec![
        "admin".to_string(),
        "--database-url".into(),
        db_url.into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--sync-poll-ms".into(),
        "100".into(),
    ]
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Method {
    Websocket,
    Http,
}

fn start_gateway(method: Method, admins: &[u16], port: u16, dir: &Path, name: &str) -> Proc {
    let mut args = vec![
        "gateway".to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--workers".into(),
        "1".into(),
        "--cache-dir".into(),
        dir.join(format!("{}-cache", name.trim_end_matches("-restarted"))).display().to_string(),
        "--sync-wait-ms".into(),
        "3000".into(),
    ];
    match method {
        Method::Websocket => {
            let urls: Vec<String> = admins.iter().map(|p| format!("ws://127.0.0.1:{p}/websocket")).collect();
            args.extend(["--sync".into(), "websocket".into(), "--admin".into(), urls.join(",")]);
            // Logs in at /platform/login before each connection, as long polling does.
            args.extend(["--sync-username".into(), "admin".into(), "--sync-password".into(), PASSWORD.into()]);
        }
        Method::Http => {
            let urls: Vec<String> = admins.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
            args.extend([
                "--sync".into(),
                "http".into(),
                "--admin".into(),
                urls.join(","),
                "--sync-username".into(),
                "admin".into(),
                "--sync-password".into(),
                PASSWORD.into(),
            ]);
        }
    }
    spawn(&args, dir.join(format!("{name}.log")), port)
}

struct Admin {
    base: String,
    token: String,
}

impl Admin {
    async fn login(port: u16) -> Admin {
        let base = format!("http://127.0.0.1:{port}/api/v1");
        let token = tigateway_testkit::admin_login(&base, "admin", PASSWORD).await;
        Admin { base, token }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = client().request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    async fn create(&self, kind: &str, body: Value) {
        self.call(reqwest::Method::POST, &format!("/{kind}"), Some(body)).await;
    }

    /// GET, edit, PUT back with the version it had.
    async fn update(&self, kind: &str, id: &str, edit: impl FnOnce(&mut Value)) {
        let mut v = self.call(reqwest::Method::GET, &format!("/{kind}/{id}"), None).await;
        edit(&mut v);
        self.call(reqwest::Method::PUT, &format!("/{kind}/{id}"), Some(v)).await;
    }

    async fn delete(&self, kind: &str, id: &str) {
        let v = self.call(reqwest::Method::GET, &format!("/{kind}/{id}"), None).await;
        let version = v["version"].as_i64().unwrap();
        self.call(reqwest::Method::DELETE, &format!("/{kind}/{id}?version={version}"), None).await;
    }
}

/// Status and `x-upstream` of a GET through a gateway.
async fn probe(port: u16, path: &str) -> (u16, String) {
    match client().get(format!("http://127.0.0.1:{port}{path}")).timeout(Duration::from_secs(2)).send().await {
        Ok(r) => {
            (r.status().as_u16(), r.headers().get("x-upstream").and_then(|v| v.to_str().ok()).unwrap_or("").to_string())
        }
        Err(_) => (0, String::new()),
    }
}

/// Waits until every gateway answers `path` with `status` from upstream `from` ("" for none).
async fn until_all(gateways: &[u16], path: &str, status: u16, from: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(25);
    for &g in gateways {
        loop {
            let got = probe(g, path).await;
            if got == (status, from.to_string()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: gateway :{g} answers {got:?} for {path}, want ({status}, {from:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits until every gateway's disk cache (written after each applied config) satisfies `f`.
async fn until_cached(dir: &Path, names: &[&str], what: &str, f: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(25);
    for name in names {
        let path = dir.join(format!("{name}-cache")).join("tigateway-config.json");
        loop {
            let ok = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| f(&v["config"]));
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "{what}: {name}'s cached config never matched");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn has(list: &Value, field: &str, value: &str) -> bool {
    list.as_array().is_some_and(|a| a.iter().any(|v| v[field] == value))
}

fn selector(id: &str, path: &str, upstream: &str) -> Value {
    json!({
        "id": id, "pluginName": "divide", "name": id, "type": 1,
        "conditionList": [{"paramType": "uri", "operator": "match", "paramValue": path}],
        "handle": json!([{"upstreamUrl": upstream.trim_start_matches("http://")}]).to_string()
    })
}

fn rule(id: &str, selector: &str, path: &str) -> Value {
    json!({
        "id": id, "selectorId": selector, "pluginName": "divide", "name": id,
        "conditionDataList": [{"paramType": "uri", "operator": "match", "paramValue": path}],
        "handle": "{\"loadBalance\":\"roundRobin\"}"
    })
}

async fn cluster(method: Method) {
    let one = upstream(UpstreamBehavior::named("one")).await;
    let two = upstream(UpstreamBehavior::named("two")).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display());
    let admin_port = free_port();
    let mut admin = start_admin(&db, admin_port, dir.path(), "admin");
    let names = ["g1", "g2", "g3"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let mut gws: Vec<Proc> =
        names.iter().zip(&ports).map(|(n, p)| start_gateway(method, &[admin_port], *p, dir.path(), n)).collect();
    let api = Admin::login(admin_port).await;

    // Selector + rule: create, update, delete.
    api.create("selectors", selector("svc", "/svc/**", &one.url())).await;
    api.create("rules", rule("svc-r", "svc", "/svc/**")).await;
    until_all(&ports, "/svc/a", 200, "one", "selector and rule created").await;
    api.update("selectors", "svc", |v| {
        v["handle"] = json!([{"upstreamUrl": two.url().trim_start_matches("http://")}]).to_string().into()
    })
    .await;
    until_all(&ports, "/svc/a", 200, "two", "selector updated").await;
    api.update("rules", "svc-r", |v| v["conditionDataList"][0]["paramValue"] = "/svc/only/**".into()).await;
    until_all(&ports, "/svc/a", 404, "", "rule updated (no longer matches)").await;
    until_all(&ports, "/svc/only/1", 200, "two", "rule updated (matches)").await;

    // Spring routes travel too (TiGateway's ROUTE group).
    api.create("routes", json!({"id": "rt", "uri": one.url(), "predicates": ["Path=/rt/**"]})).await;
    until_all(&ports, "/rt/x", 200, "one", "route created").await;
    api.delete("routes", "rt").await;
    until_all(&ports, "/rt/x", 404, "", "route deleted").await;

    // Plugin: update (disable / enable), delete and create.
    api.update("plugins", "divide", |v| v["enabled"] = false.into()).await;
    until_all(&ports, "/svc/only/1", 404, "", "divide disabled").await;
    api.update("plugins", "divide", |v| v["enabled"] = true.into()).await;
    until_all(&ports, "/svc/only/1", 200, "two", "divide enabled").await;
    api.delete("plugins", "sign").await;
    until_cached(dir.path(), &names, "plugin deleted", |c| !has(&c["plugins"], "name", "sign")).await;
    api.create("plugins", json!({"id": "sign", "name": "sign", "enabled": false, "sort": 20})).await;
    until_cached(dir.path(), &names, "plugin created", |c| has(&c["plugins"], "name", "sign")).await;

    // Metadata and app-auth: create, update, delete.
    api.create("metadata", json!({"id": "m1", "appName": "shop", "path": "/shop/save", "rpcType": "http"})).await;
    api.create("app-auth", json!({"id": "k1", "appKey": "KEY-1", "appSecret": "s3cr3t"})).await;
    until_cached(dir.path(), &names, "metadata and app-auth created", |c| {
        has(&c["metadata"], "path", "/shop/save") && has(&c["appAuth"], "appKey", "KEY-1")
    })
    .await;
    api.update("metadata", "m1", |v| v["appName"] = "shop-2".into()).await;
    api.update("app-auth", "k1", |v| v["appSecret"] = "n3w".into()).await;
    until_cached(dir.path(), &names, "metadata and app-auth updated", |c| {
        has(&c["metadata"], "appName", "shop-2") && has(&c["appAuth"], "appSecret", "n3w")
    })
    .await;
    api.delete("metadata", "m1").await;
    api.delete("app-auth", "k1").await;
    until_cached(dir.path(), &names, "metadata and app-auth deleted", |c| {
        c["metadata"].as_array().is_none_or(|a| a.is_empty()) && c["appAuth"].as_array().is_none_or(|a| a.is_empty())
    })
    .await;

    // Selector deletion (its rule first).
    api.create("selectors", selector("tmp", "/tmp/**", &one.url())).await;
    api.create("rules", rule("tmp-r", "tmp", "/tmp/**")).await;
    until_all(&ports, "/tmp/x", 200, "one", "second selector").await;
    api.delete("rules", "tmp-r").await;
    api.delete("selectors", "tmp").await;
    until_all(&ports, "/tmp/x", 404, "", "selector deleted").await;

    // Every session the gateways hold ends now: they must log in again to reconnect below.
    let users = api.call(reqwest::Method::GET, "/users?username=admin", None).await;
    let admin_id = users["items"][0]["id"].as_str().expect("the admin user").to_string();
    api.call(reqwest::Method::POST, &format!("/users/{admin_id}/revoke-sessions"), None).await;

    // The admin goes away: traffic goes on.
    admin.kill();
    for &g in &ports {
        assert_eq!(probe(g, "/svc/only/1").await, (200, "two".to_string()), "gateway :{g} stopped serving");
    }
    // Meanwhile another admin process on the same database makes a change.
    let other_port = free_port();
    let mut other = start_admin(&db, other_port, dir.path(), "admin-meanwhile");
    Admin::login(other_port)
        .await
        .update("selectors", "svc", |v| {
            v["handle"] = json!([{"upstreamUrl": one.url().trim_start_matches("http://")}]).to_string().into()
        })
        .await;
    other.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for &g in &ports {
        assert_eq!(probe(g, "/svc/only/1").await, (200, "two".to_string()));
    }
    // The admin is back: the change made meanwhile arrives everywhere.
    let mut admin = start_admin(&db, admin_port, dir.path(), "admin-again");
    until_all(&ports, "/svc/only/1", 200, "one", "change made while the admin was away").await;

    // A gateway restarted while no admin answers serves the cached config and says so. The cache
    // is written just after the swap: wait until it holds the change before pulling the plug.
    let cache_file = dir.path().join("g3-cache").join("tigateway-config.json");
    let one_addr = one.url().trim_start_matches("http://").to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cached = std::fs::read(&cache_file).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let svc_handle = cached.as_ref().and_then(|v| {
            v["config"]["selectors"].as_array()?.iter().find(|s| s["id"] == "svc")?["handle"]
                .as_str()
                .map(str::to_string)
        });
        if svc_handle.is_some_and(|h| h.contains(&one_addr)) {
            break;
        }
        assert!(Instant::now() < deadline, "g3's cache never took the change: {cached:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.kill();
    gws[2].kill();
    let g3 = start_gateway(method, &[admin_port], ports[2], dir.path(), "g3-restarted");
    assert_eq!(probe(ports[2], "/svc/only/1").await, (200, "one".to_string()));
    let log = g3.log();
    assert!(log.contains("serving from the cache") && log.contains("g3-cache"), "{log}");
    drop(gws);
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_sync_admin_and_three_gateways() {
    cluster(Method::Websocket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_polling_sync_admin_and_three_gateways() {
    cluster(Method::Http).await;
}

/// Two admin processes on one PostgreSQL database; gateways follow admin B (websocket) and admin
/// A (long polling) while changes go through the other admin, and a gateway given both URLs fails
/// over when its first admin dies.
#[tokio::test(flavor = "multi_thread")]
async fn two_admins_on_postgres() {
    let Some(server) = std::env::var("TIGATEWAY_TEST_PG_URL").ok().filter(|v| !v.is_empty()) else {
        assert!(std::env::var_os("CI").is_none(), "TIGATEWAY_TEST_PG_URL is not set but CI is");
        eprintln!("note: TIGATEWAY_TEST_PG_URL is not set; skipping two_admins_on_postgres");
        return;
    };
    let name = format!(
        "tigw_sync_{:x}",
        std::process::id() as u64 * 1_000_003 + Instant::now().elapsed().subsec_nanos() as u64
    );
    let psql = |sql: &str| {
        let out = Command::new("psql").arg(&server).args(["-v", "ON_ERROR_STOP=1", "-c", sql]).output().expect("psql");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    };
    psql(&format!("CREATE DATABASE {name}"));
    struct DropDb<F: Fn(&str)>(F, String);
    impl<F: Fn(&str)> Drop for DropDb<F> {
        fn drop(&mut self) {
            (self.0)(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.1));
        }
    }
    let _drop = DropDb(psql, name.clone());
    let url = {
        let (base, _) = server.split_once('?').unwrap_or((&server, ""));
        let host_end = base.rfind('/').filter(|&i| i > base.find("://").unwrap() + 2).unwrap_or(base.len());
        format!("{}/{name}", &base[..host_end])
    };

    let up = upstream(UpstreamBehavior::named("pg")).await;
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let mut a = start_admin(&url, pa, dir.path(), "admin-a");
    let _b = start_admin(&url, pb, dir.path(), "admin-b");
    let (g1, g2, g3) = (free_port(), free_port(), free_port());
    let _gw1 = start_gateway(Method::Websocket, &[pb], g1, dir.path(), "g1");
    let _gw2 = start_gateway(Method::Http, &[pa], g2, dir.path(), "g2");
    let _gw3 = start_gateway(Method::Websocket, &[pa, pb], g3, dir.path(), "g3");

    let api_a = Admin::login(pa).await;
    api_a.create("selectors", selector("ha", "/ha/**", &up.url())).await;
    api_a.create("rules", rule("ha-r", "ha", "/ha/**")).await;
    until_all(&[g1, g2, g3], "/ha/1", 200, "pg", "a change through admin A").await;
    let api_b = Admin::login(pb).await;
    api_b.delete("rules", "ha-r").await;
    until_all(&[g1, g2, g3], "/ha/1", 404, "", "a change through admin B").await;
    // Admin A dies: g3 fails over to B and still follows changes.
    a.kill();
    api_b.create("rules", rule("ha-r2", "ha", "/ha/**")).await;
    until_all(&[g1, g3], "/ha/1", 200, "pg", "a change after admin A died").await;
}

/// The shared Redis level: the admin writes each published config; a gateway starting with no
/// admin and no disk cache of its own serves what Redis holds.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_starts_from_the_redis_cache() {
    let Some(redis) = std::env::var("TIGATEWAY_TEST_REDIS_URL").ok().filter(|v| !v.is_empty()) else {
        assert!(std::env::var_os("CI").is_none(), "TIGATEWAY_TEST_REDIS_URL is not set but CI is");
        eprintln!("note: TIGATEWAY_TEST_REDIS_URL is not set; skipping gateway_starts_from_the_redis_cache");
        return;
    };
    // A namespace of its own, so parallel runs do not share the Redis key.
    let ns = format!("e2e-{}-{}", std::process::id(), free_port());
    let up = upstream(UpstreamBehavior::named("redis")).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display());
    let port = free_port();
    let args: Vec<String> = [
        "admin",
        "--database-url",
        &db,
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--cache-redis",
        &redis,
        "--sync-namespace",
        &ns,
    ]
    .map(String::from)
    .to_vec();
    let args_admin = args.clone();
    let mut admin = spawn(&args, dir.path().join("admin.log"), port);
    let api = Admin::login(port).await;
    api.create("selectors", selector("rs", "/rs/**", &up.url())).await;
    api.create("rules", rule("rs-r", "rs", "/rs/**")).await;
    // Give the admin a moment to write the publication to Redis, then take it away.
    let gw_port = free_port();
    let extra = |name: &str| -> Vec<String> {
        [
            "gateway",
            "--sync",
            "websocket",
            "--admin",
            &format!("ws://127.0.0.1:{port}/websocket"),
            "--listen",
            &format!("127.0.0.1:{gw_port}"),
            "--workers",
            "1",
            "--namespace",
            &ns,
            "--cache-redis",
            &redis,
            "--sync-wait-ms",
            "3000",
            "--sync-username",
            "admin",
            "--sync-password",
            PASSWORD,
            "--cache-dir",
            &dir.path().join(format!("{name}-cache")).display().to_string(),
        ]
        .map(String::from)
        .to_vec()
    };
    let first = spawn(&extra("first"), dir.path().join("first.log"), gw_port);
    until_all(&[gw_port], "/rs/1", 200, "redis", "the gateway follows the admin").await;
    drop(first);
    admin.kill();
    let mport = free_port();
    let mut args = extra("fresh");
    args.extend(["--metrics".to_string(), format!("127.0.0.1:{mport}")]);
    let fresh = spawn(&args, dir.path().join("fresh.log"), gw_port);
    assert_eq!(probe(gw_port, "/rs/1").await, (200, "redis".to_string()));
    let log = fresh.log();
    assert!(log.contains("serving from the cache") && log.contains(&format!("redis:tigateway:config:{ns}")), "{log}");
    assert!(!dir.path().join("fresh-cache").join("tigateway-config.json").exists());
    // Readiness and metrics say where the config came from, without waiting for a poll.
    let (status, ready) = get_json(&format!("http://127.0.0.1:{mport}/ready")).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["sources"][0]["name"], "websocket", "{ready}");
    assert_eq!(ready["sources"][0]["servingFromCache"], true, "{ready}");
    assert_eq!(ready["sources"][0]["connected"], false, "{ready}");
    let metrics = client().get(format!("http://127.0.0.1:{mport}/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        r#"tigateway_cache_hits_total{level="redis"} 1"#,
        r#"tigateway_sync_serving_from_cache{source="websocket"} 1"#,
        r#"tigateway_sync_connected{source="websocket"} 0"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in:\n{metrics}");
    }
    assert!(!metrics.contains(r#"level="disk""#), "Redis answered: the disk level is not asked\n{metrics}");

    // The admin comes back: the gateway follows it, connected and no longer on the cache.
    let _admin = spawn(&args_admin, dir.path().join("admin-again.log"), port);
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let (status, ready) = get_json(&format!("http://127.0.0.1:{mport}/ready")).await;
        let s = &ready["sources"][0];
        if status == 200 && s["connected"] == true && s["servingFromCache"] == false && s["appliedTotal"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "/ready after the admin came back: {ready}\n{}", fresh.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The admin without `--sync-token` serves its websocket to no anonymous client; a gateway
/// without any credential does not start; a ShenYu-2.7-like client with `?token=<API token>` and a
/// gateway with credentials are served, and a failed login fails over to the next admin.
#[tokio::test(flavor = "multi_thread")]
async fn websocket_sync_needs_a_credential() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Error as WsError, Message};

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display());
    let admin = start_admin(&db, port, dir.path(), "admin");
    let api = Admin::login(port).await;
    let up = upstream(UpstreamBehavior::named("authed")).await;
    api.create("selectors", selector("au", "/au/**", &up.url())).await;
    api.create("rules", rule("au-r", "au", "/au/**")).await;

    // A gateway with no credential refuses to start and names both ways to give one.
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["gateway", "--sync", "websocket", "--admin", &format!("ws://127.0.0.1:{port}/websocket")])
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--workers", "1"])
        .args(["--cache-dir", &dir.path().join("nocred-cache").display().to_string()])
        .env("TIGATEWAY_METRICS", "off")
        .env_remove("TIGATEWAY_SYNC_TOKEN")
        .env_remove("TIGATEWAY_SYNC_USERNAME")
        .env_remove("TIGATEWAY_SYNC_PASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "a gateway without credentials kept running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("--sync-token") && err.contains("--sync-username"), "{err}");

    let connect = |query: String, headers: Vec<(&'static str, String)>| async move {
        let mut req = format!("ws://127.0.0.1:{port}/websocket{query}").into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(k, v.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
    };
    let status_of = |r: Result<_, WsError>| match r {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
        Ok(_) => 101,
    };
    // Anonymous, a wrong token, a sync token the admin does not have: 401.
    assert_eq!(status_of(connect(String::new(), vec![]).await), 401);
    let wrong = "tgw_wrong-token-must-not-be-logged";
    assert_eq!(status_of(connect(format!("?token={wrong}"), vec![]).await), 401);
    assert_eq!(status_of(connect(String::new(), vec![("x-tigateway-sync-token", "guess".into())]).await), 401);
    let log = admin.log();
    assert!(log.contains("websocket sync client refused"), "{log}");
    assert!(!log.contains(wrong), "the refused token is in the admin's log:\n{log}");

    // A ShenYu 2.7-like client: an API token in the URL, no custom header; gets the full sync.
    let token = api.call(reqwest::Method::POST, "/tokens", Some(json!({"name": "shenyu", "owner": "admin"}))).await;
    let token = token["token"].as_str().unwrap().to_string();
    let mut ws = connect(format!("?token={token}"), vec![]).await.expect("API token accepted");
    ws.send(Message::text("MYSELF")).await.unwrap();
    let mut selectors = None;
    while selectors.is_none() {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("no full sync");
        match frame {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["groupType"] == "SELECTOR" {
                    selectors = Some(v["data"].clone());
                }
            }
            Some(Ok(_)) => {}
            other => panic!("the admin ended the connection: {other:?}"),
        }
    }
    assert!(has(&selectors.unwrap(), "id", "au"));

    // Credentials that admin A does not accept: the failed login fails over to admin B.
    let a_port = free_port();
    let a_db = format!("sqlite://{}?mode=rwc", dir.path().join("other.db").display());
    let other =
        spawn_with_password(&admin_args(&a_db, a_port), dir.path().join("other.log"), a_port, "another password");
    let gw = free_port();
    let g = start_gateway(Method::Websocket, &[a_port, port], gw, dir.path(), "failover");
    until_all(&[gw], "/au/1", 200, "authed", "config from the admin whose login worked").await;
    let log = g.log();
    assert!(log.contains("login refused"), "{log}");
    assert!(!log.contains(PASSWORD), "the password is in the gateway's log:\n{log}");
    assert!(other.log().contains("sync login refused"));
}
