//! Metrics, access log, readiness and debug headers: the real binary scraped over HTTP, checked by
//! `promtool` and scraped by a real Prometheus server.
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_tigateway");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tool the test needs, from `env` or PATH; None (skip) unless CI is set, where it must exist.
fn tool(env: &str, name: &str) -> Option<String> {
    let found = std::env::var(env).ok().filter(|p| !p.is_empty()).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()).map(|p| p.display().to_string())
        })
    });
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but {name} was not found (set {env})");
        eprintln!("skipping the {name} part: set {env} or install it");
    }
    found
}

/// `name{labels}` → value, from the OpenMetrics text.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn value(s: &HashMap<String, f64>, key: &str) -> f64 {
    *s.get(key).unwrap_or_else(|| {
        let mut keys: Vec<_> = s.keys().collect();
        keys.sort();
        panic!("no sample {key}; have:\n{keys:#?}")
    })
}

async fn scrape(port: u16) -> String {
    client().get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap().text().await.unwrap()
}

fn config(up: &Upstream, log: &std::path::Path, extra_rule: &str) -> String {
    format!(
        r#"
server:
  accessLog: {{enabled: true, output: "{log}"}}
routes:
  - id: users
    uri: {up}
    predicates: [Path=/api/users/**]
selectors:
  - id: s-orders
    pluginName: divide
    type: 1
    conditionList: [{{paramType: uri, operator: match, paramValue: "/http/**"}}]
    handle: '[{{"upstreamUrl":"{addr}"}}]'
rules:
  - id: r-orders
    selectorId: s-orders
    loged: true
    conditionDataList: [{{paramType: uri, operator: match, paramValue: "/http/**"}}]
    handle: {{loadBalance: roundRobin, retry: 0, timeout: 3000}}
{extra_rule}
"#,
        log = log.display(),
        up = up.url(),
        addr = up.addr,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_access_log_and_readiness_of_a_running_gateway() {
    let up = upstream(UpstreamBehavior::named("up")).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/access.log");
    let cfg = dir.path().join("gw.yaml");
    std::fs::write(&cfg, config(&up, &log, "")).unwrap();
    let (port, mport) = (free_port(), free_port());
    let child = Command::new(BIN)
        .args(["gateway", "-c"])
        .arg(&cfg)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "2"])
        .args(["--metrics", &format!("127.0.0.1:{mport}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p = Proc(child);
    wait_port(port, "gateway");
    let base = format!("http://127.0.0.1:{port}");
    let mbase = format!("http://127.0.0.1:{mport}");

    let (status, body) = get_json(&format!("{mbase}/ready")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sources"][0]["name"], "file");
    assert_eq!(body["sources"][0]["connected"], true);
    assert_eq!(body["sources"][0]["lastAppliedVersion"], 1);
    assert_eq!(get_json(&format!("{mbase}/health")).await.0, 200);

    // Known traffic.
    for i in 0..3 {
        let r = client().get(format!("{base}/http/a")).header("x-request-id", format!("rid-{i}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("x-tigateway-route").is_none(), "debug headers are off by default");
    }
    assert_eq!(client().delete(format!("{base}/http/b")).send().await.unwrap().status(), 200);
    for _ in 0..2 {
        let r = client().post(format!("{base}/api/users/1")).body("hello").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(client().get(format!("{base}/nothing")).send().await.unwrap().status(), 404);

    let text = scrape(mport).await;
    let s = samples(&text);
    let req = |kind: &str, route: &str, method: &str, status: &str| {
        value(
            &s,
            &format!(
                r#"tigateway_requests_total{{kind="{kind}",route="{route}",method="{method}",status="{status}"}}"#
            ),
        )
    };
    assert_eq!(req("selector", "s-orders", "GET", "2xx"), 3.0);
    assert_eq!(req("selector", "s-orders", "DELETE", "2xx"), 1.0);
    assert_eq!(req("route", "users", "POST", "2xx"), 2.0);
    assert_eq!(req("none", "", "GET", "4xx"), 1.0);
    assert_eq!(value(&s, r#"tigateway_request_bytes_total{kind="route",route="users"}"#), 10.0);
    assert_eq!(value(&s, r#"tigateway_request_duration_seconds_count{kind="selector",route="s-orders"}"#), 4.0);
    assert_eq!(value(&s, r#"tigateway_upstream_duration_seconds_count{kind="route",route="users"}"#), 2.0);
    assert_eq!(value(&s, &format!(r#"tigateway_upstream_healthy{{upstream="http://{}"}}"#, up.addr)), 1.0);
    assert_eq!(value(&s, r#"tigateway_config_updates_total{source="file"}"#), 1.0);
    assert_eq!(value(&s, "tigateway_routes_update_time_seconds_count"), 1.0);
    assert_eq!(value(&s, "tigateway_access_log_dropped_total"), 0.0);
    assert!(value(&s, "tigateway_connections_total") >= 1.0);

    // Access log: one JSON line per request with the ids that decided it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let lines: Vec<serde_json::Value> = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if lines.len() >= 7 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(lines.len(), 7, "{lines:#?}");
    let first = &lines[0];
    assert_eq!(first["kind"], "selector");
    assert_eq!(first["plugin"], "divide");
    assert_eq!(first["selector_id"], "s-orders");
    assert_eq!(first["rule_id"], "r-orders");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/http/a");
    assert_eq!(first["status"], 200);
    assert_eq!(first["upstream"], up.addr.to_string());
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(first["request_id"], "rid-0");
    assert!(first["trace_id"].is_null());
    assert!(first["duration_ms"].as_f64().unwrap() >= first["upstream_duration_ms"].as_f64().unwrap());
    let post = lines.iter().find(|l| l["method"] == "POST").unwrap();
    assert_eq!(post["kind"], "route");
    assert_eq!(post["route_id"], "users");
    assert_eq!(post["bytes_in"], 5);
    let miss = lines.iter().find(|l| l["status"] == 404).unwrap();
    assert_eq!(miss["kind"], "none");
    assert!(miss.get("selector_id").is_none() && miss.get("route_id").is_none());

    if let Some(promtool) = tool("TIGATEWAY_TEST_PROMTOOL", "promtool") {
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics failed:\n{}{}\n--- scrape:\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A broken config is rejected and counted; a good one is applied as the next file version.
    std::fs::write(&cfg, "routes: [{id: x}]\n").unwrap();
    wait_metric(mport, r#"tigateway_config_rejected_total{source="file"}"#, 1.0).await;
    // The file disappears: the running config serves on (ready), and /ready says so.
    std::fs::remove_file(&cfg).unwrap();
    wait_metric(mport, r#"tigateway_sync_connected{source="file"}"#, 0.0).await;
    let (status, body) = get_json(&format!("{mbase}/ready")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sources"][0]["servingFromCache"], true, "{body}");
    assert!(body["sources"][0]["detail"].as_str().unwrap().contains("cannot read"), "{body}");
    assert_eq!(client().get(format!("{base}/http/a")).send().await.unwrap().status(), 200);
    std::fs::write(&cfg, config(&up, &log, "")).unwrap();
    std::fs::write(&cfg, config(&up, &log, "").replace("s-orders", "s-orders2")).unwrap();
    wait_metric(mport, r#"tigateway_sync_last_applied_version{source="file"}"#, 2.0).await;
    let s = samples(&scrape(mport).await);
    assert_eq!(value(&s, r#"tigateway_config_updates_total{source="file"}"#), 2.0);
    assert!(
        !s.keys().any(|k| k.contains(r#"route="s-orders""#)),
        "a removed selector's series go away with the old snapshot"
    );
}

async fn wait_metric(port: u16, key: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = samples(&scrape(port).await);
        if s.get(key) == Some(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "{key} never became {want}: {:?}", s.get(key));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_the_gateway() {
    let Some(prometheus) = tool("TIGATEWAY_TEST_PROMETHEUS", "prometheus") else { return };
    let up = upstream(UpstreamBehavior::named("up")).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.yaml");
    std::fs::write(&cfg, config(&up, &dir.path().join("access.log"), "")).unwrap();
    let (port, mport, pport) = (free_port(), free_port(), free_port());
    let _gw = Proc(
        Command::new(BIN)
            .args(["gateway", "-c"])
            .arg(&cfg)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "1"])
            .args(["--metrics", &format!("127.0.0.1:{mport}"), "--access-log", "off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port, "gateway");
    assert_eq!(client().get(format!("http://127.0.0.1:{port}/http/x")).send().await.unwrap().status(), 200);

    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n  - job_name: tigateway\n    static_configs: [{{targets: ['127.0.0.1:{mport}']}}]\n"
        ),
    )
    .unwrap();
    let prom_log = dir.path().join("prometheus.log");
    let prom = Command::new(&prometheus)
        .arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&prom_log).unwrap())
        .spawn()
        .unwrap();
    let _prom = Proc(prom);
    wait_port(pport, "prometheus");
    let api = format!("http://127.0.0.1:{pport}/api/v1/query");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = |query: &'static str| {
            let api = api.clone();
            async move {
                // Until its storage is ready Prometheus answers with a plain-text 503: not JSON yet.
                match client().get(&api).query(&[("query", query)]).send().await {
                    Ok(r) => r.json::<serde_json::Value>().await.unwrap_or(serde_json::Value::Null),
                    Err(_) => serde_json::Value::Null,
                }
            }
        };
        let upv = q("up").await;
        let reqs = q("tigateway_requests_total").await;
        let is_up = upv["data"]["result"]
            .as_array()
            .is_some_and(|r| r.iter().any(|s| s["metric"]["job"] == "tigateway" && s["value"][1] == "1"));
        let has_reqs = reqs["data"]["result"]
            .as_array()
            .is_some_and(|r| r.iter().any(|s| s["metric"]["route"] == "s-orders" && s["value"][1] == "1"));
        if is_up && has_reqs {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&prom_log).unwrap_or_default();
            panic!("prometheus never saw the target up: up={upv} requests={reqs}\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn in_process(cfg: &str, log: &std::path::Path) -> (tigateway_proxy::Gateway, Arc<tigateway_observe::Observe>) {
    let cfg = tigateway_model::Config::from_yaml_str(cfg).unwrap();
    let obs = tigateway_observe::Observe::new();
    let dest = tigateway_observe::Destination::File { path: log.to_path_buf(), max_bytes: 1 << 20, keep: 1 };
    obs.set_access_log(tigateway_observe::AccessLog::start(dest, 64).unwrap());
    let registry = Arc::new(tigateway_upstream::Registry::new(&cfg.server.upstream));
    let mut listeners = tigateway_proxy::listener_specs(&cfg, None).unwrap();
    listeners[0].addr = "127.0.0.1:0".parse().unwrap();
    let store = tigateway_proxy::SnapshotStore::new_observed(cfg, registry, obs.clone()).unwrap();
    (tigateway_proxy::Gateway::start(store, listeners, 1).unwrap(), obs)
}

#[tokio::test(flavor = "multi_thread")]
async fn logged_scope_keeps_only_flagged_rules_and_debug_headers_show_the_route() {
    let up = upstream(UpstreamBehavior::named("up")).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let quiet = r#"  - id: r-quiet
    selectorId: s-orders
    loged: false
    sort: 1
    conditionDataList: [{paramType: uri, operator: match, paramValue: "/http/quiet/**"}]
    handle: {loadBalance: roundRobin, retry: 0, timeout: 3000}
"#;
    let cfg = config(&up, &log, quiet)
        .replace("accessLog: {enabled: true,", "debugHeaders: true\n  accessLog: {enabled: true, scope: logged,");
    let (gw, obs) = in_process(&cfg, &log);
    let base = format!("http://{}", gw.local_addrs[0]);
    let r = client().get(format!("{base}/http/quiet/1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-tigateway-route"], "selector=s-orders; rule=r-quiet");
    assert_eq!(r.headers()["x-tigateway-upstream"], up.addr.to_string().as_str());
    let total: f64 = r.headers()["x-tigateway-time-ms"].to_str().unwrap().parse().unwrap();
    let upstream: f64 = r.headers()["x-tigateway-upstream-time-ms"].to_str().unwrap().parse().unwrap();
    assert!(total >= upstream && upstream > 0.0, "{total} {upstream}");
    let r = client().get(format!("{base}/http/loud")).send().await.unwrap();
    assert_eq!(r.headers()["x-tigateway-route"], "selector=s-orders; rule=r-orders");
    let r = client().get(format!("{base}/api/users/9")).send().await.unwrap();
    assert_eq!(r.headers()["x-tigateway-route"], "route=users");
    let r = client().get(format!("{base}/none")).send().await.unwrap();
    assert_eq!(r.headers()["x-tigateway-route"], "none");

    let deadline = Instant::now() + Duration::from_secs(5);
    while obs.access_log().unwrap().written() < 1 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "only the rule with loged: true is logged in scope `logged`: {text}");
    assert_eq!(lines[0]["rule_id"], "r-orders");
    assert_eq!(lines[0]["path"], "/http/loud");
    tokio::task::spawn_blocking(move || gw.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_headers_are_absent_unless_switched_on() {
    let up = upstream(UpstreamBehavior::named("up")).await;
    let dir = tempfile::tempdir().unwrap();
    let (gw, _obs) = in_process(&config(&up, &dir.path().join("a.log"), ""), &dir.path().join("a.log"));
    let r = client().get(format!("http://{}/http/x", gw.local_addrs[0])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for h in ["x-tigateway-route", "x-tigateway-upstream", "x-tigateway-time-ms", "x-tigateway-upstream-time-ms"] {
        assert!(r.headers().get(h).is_none(), "{h} sent while debugHeaders is off");
    }
    tokio::task::spawn_blocking(move || gw.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_body_without_length_is_counted_and_logged_when_it_ends() {
    let addr = chunked_upstream(&["first part;", "second;", "3rd"], Duration::from_millis(150)).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = format!(
        r#"
server:
  accessLog: {{enabled: true, output: "{log}"}}
routes:
  - id: stream
    uri: http://{addr}
    predicates: [Path=/stream/**]
"#,
        log = log.display()
    );
    let (gw, obs) = in_process(&cfg, &log);
    let started = Instant::now();
    let r = client().get(format!("http://{}/stream/x", gw.local_addrs[0])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-length").is_none());
    let body = r.text().await.unwrap();
    let took = started.elapsed();
    assert_eq!(body, "first part;second;3rd");

    let deadline = Instant::now() + Duration::from_secs(5);
    while obs.access_log().unwrap().written() < 1 {
        assert!(Instant::now() < deadline, "no access-log line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = samples(&obs.encode());
    assert_eq!(
        value(&s, r#"tigateway_response_bytes_total{kind="route",route="stream"}"#),
        body.len() as f64,
        "bytes of a body without Content-Length are counted when it ends"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["bytes_out"], body.len());
    // The line is written at the body's end: its duration covers the three parts (>= 450 ms),
    // while the head arrived after the first wait only.
    let logged = line["duration_ms"].as_f64().unwrap();
    assert!(logged >= 440.0, "duration_ms {logged} ends before the body did");
    assert!(logged <= took.as_secs_f64() * 1000.0 + 1.0, "duration_ms {logged} > client time {took:?}");
    assert!(line["upstream_duration_ms"].as_f64().unwrap() < logged);
    tokio::task::spawn_blocking(move || gw.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_reports_the_admin_store_and_admin_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (admin_port, gw_port, mport) = (free_port(), free_port(), free_port());
    let _p = Proc(
        Command::new(BIN)
            .args(["standalone", "--data-dir"])
            .arg(dir.path())
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .args(["--listen", &format!("127.0.0.1:{gw_port}"), "--workers", "1"])
            .args(["--metrics", &format!("127.0.0.1:{mport}")])
            .env("TIGATEWAY_ADMIN_PASSWORD", "correct horse battery")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(gw_port, "standalone gateway");
    let (status, body) = get_json(&format!("http://127.0.0.1:{mport}/ready")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sources"][0]["name"], "admin-store");
    assert_eq!(body["sources"][0]["connected"], true);

    let login = |password: &'static str| {
        client()
            .post(format!("http://127.0.0.1:{admin_port}/api/v1/login"))
            .json(&serde_json::json!({"username": "admin", "password": password}))
            .send()
    };
    assert_eq!(login("correct horse battery").await.unwrap().status(), 200);
    assert_eq!(login("wrong").await.unwrap().status(), 401);
    let s = samples(&scrape(mport).await);
    let key = |status: &str| {
        format!(r#"tigateway_admin_requests_total{{endpoint="/api/v1/login",method="POST",status="{status}"}}"#)
    };
    assert_eq!(value(&s, &key("2xx")), 1.0);
    assert_eq!(value(&s, &key("4xx")), 1.0);
    assert_eq!(value(&s, r#"tigateway_admin_request_duration_seconds_count{method="POST"}"#), 2.0);
    assert_eq!(value(&s, r#"tigateway_config_updates_total{source="admin-store"}"#), 1.0);
}
