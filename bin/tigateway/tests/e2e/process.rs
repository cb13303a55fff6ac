//! The real binary as a user runs it: quick start, `validate`, hot reload, graceful shutdown.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
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

/// Starts `tigateway gateway` and waits until it accepts connections.
fn start(config: &std::path::Path, port: u16) -> Proc {
    let child = Command::new(BIN)
        .args(["gateway", "-c"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "2"])
        .env("RUST_LOG", "info")
        .env("TIGATEWAY_METRICS", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tigateway");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Proc(child)
}

async fn wait_for(mut f: impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool>>>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_example_serves_the_seed_route() {
    // The quick start's demo upstream listens on 127.0.0.1:9180; run a copy on a free port instead so
    // tests never collide with a gateway a developer is running.
    let demo = free_port();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart.yaml"))
        .unwrap()
        .replace("127.0.0.1:9180", &format!("127.0.0.1:{demo}"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("quickstart.yaml");
    std::fs::write(&cfg, text).unwrap();
    let port = free_port();
    let _p = start(&cfg, port);
    let base = format!("http://127.0.0.1:{port}");
    let (status, v) = get_json(&format!("{base}/api/users/42")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["path"], "/42");
    let (status, v) = get_json(&format!("{base}/http/order/7")).await;
    assert_eq!(status, 200);
    assert_eq!(v["path"], "/http/order/7");
}

#[test]
fn validate_reports_every_error_with_its_location() {
    let ok = Command::new(BIN)
        .args(["validate", concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/spring/application.yml")])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "routes:\n  - id: a\n    uri: http://127.0.0.1:1\n    predicates: [Pathh=/a/**]\n    filters: [StripPrefixx=1]\nselectors:\n  - {id: s, pluginName: divide, conditionList: [{paramType: uri, operator: regx, paramValue: /a}]}\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg("validate").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Pathh"), "{err}");
    assert!(err.contains("StripPrefixx"), "{err}");
    assert!(err.contains("selectors[0].conditionList[0].operator"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_reload_applies_valid_and_rejects_invalid_changes() {
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.yaml");
    let route = |u: &str| format!("routes:\n  - id: r\n    uri: {u}\n    predicates: [Path=/**]\n");
    std::fs::write(&cfg, route(&a.url())).unwrap();
    let port = free_port();
    let mut p = start(&cfg, port);
    let url = format!("http://127.0.0.1:{port}/x");
    let c = client();
    assert_eq!(c.get(&url).send().await.unwrap().headers()["x-upstream"], "a");

    // A keep-alive connection opened before the change must keep working across it.
    std::fs::write(&cfg, route(&b.url())).unwrap();
    let (c2, u2) = (c.clone(), url.clone());
    wait_for(
        move || {
            let (c, u) = (c2.clone(), u2.clone());
            Box::pin(async move { c.get(&u).send().await.map(|r| r.headers()["x-upstream"] == "b").unwrap_or(false) })
        },
        "valid change to be applied",
    )
    .await;

    // Invalid: rejected, previous config keeps serving.
    std::fs::write(&cfg, "routes:\n  - id: r\n    uri: http://x\n    predicates: [Nope=1]\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..5 {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.headers()["x-upstream"], "b");
    }
    // And a later valid change still applies.
    std::fs::write(&cfg, route(&a.url())).unwrap();
    let (c3, u3) = (c.clone(), url.clone());
    wait_for(
        move || {
            let (c, u) = (c3.clone(), u3.clone());
            Box::pin(async move { c.get(&u).send().await.map(|r| r.headers()["x-upstream"] == "a").unwrap_or(false) })
        },
        "second valid change",
    )
    .await;
    let _ = p.0.kill();
    let stderr = p.0.stderr.take().unwrap();
    let log: Vec<String> = BufReader::new(stderr).lines().map_while(Result::ok).collect();
    assert!(log.iter().any(|l| l.contains("Nope")), "the rejected change's error was not logged:\n{}", log.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests() {
    let slow =
        upstream(UpstreamBehavior { delay: Duration::from_millis(800), ..UpstreamBehavior::named("slow") }).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.yaml");
    std::fs::write(&cfg, format!("routes:\n  - id: r\n    uri: {}\n    predicates: [Path=/**]\n", slow.url())).unwrap();
    let port = free_port();
    let mut p = start(&cfg, port);
    let url = format!("http://127.0.0.1:{port}/slow");
    let inflight: Vec<_> = (0..5).map(|_| tokio::spawn(client().get(url.clone()).send())).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kill = Command::new("kill").args(["-TERM", &p.0.id().to_string()]).status().unwrap();
    assert!(kill.success());
    for t in inflight {
        let r = t.await.unwrap().expect("in-flight request completes during shutdown");
        assert_eq!(r.status(), 200);
    }
    let status = tokio::task::spawn_blocking(move || p.0.wait()).await.unwrap().unwrap();
    assert!(status.success(), "gateway exited with {status}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "still accepting after shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_serves_a_change_made_through_the_admin_api() {
    let up = upstream(UpstreamBehavior::named("from-admin")).await;
    let dir = tempfile::tempdir().unwrap();
    let (admin_port, gw_port) = (free_port(), free_port());
    let child = Command::new(BIN)
        .args(["standalone", "--data-dir"])
        .arg(dir.path())
        .args([
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
            "--listen",
            &format!("127.0.0.1:{gw_port}"),
            "--workers",
            "1",
        ])
        .env("TIGATEWAY_ADMIN_PASSWORD", "correct horse battery")
        .env("TIGATEWAY_METRICS", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn standalone");
    let _p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", gw_port)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_err()
    {
        assert!(Instant::now() < deadline, "standalone did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dir.path().join("tigateway.db").exists(), "the SQLite file lives in --data-dir");
    let admin = format!("http://127.0.0.1:{admin_port}/api/v1");
    let c = client();
    // No default credentials: a wrong password is refused, the configured one works.
    let r = c
        .post(format!("{admin}/login"))
        .json(&serde_json::json!({"username": "admin", "password": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let token = tigateway_testkit::admin_login(&admin, "admin", "correct horse battery").await;

    let gw = format!("http://127.0.0.1:{gw_port}/orders/7");
    assert_eq!(c.get(&gw).send().await.unwrap().status(), 404);
    let selector = serde_json::json!({
        "id": "orders", "pluginName": "divide", "name": "orders", "type": 1, "matchMode": 0,
        "conditionList": [{"paramType": "uri", "operator": "match", "paramValue": "/orders/**"}],
        "handle": format!("[{{\"upstreamUrl\":\"{}\"}}]", up.addr),
    });
    let r = c.post(format!("{admin}/selectors")).bearer_auth(&token).json(&selector).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let rule = serde_json::json!({
        "id": "orders-all", "selectorId": "orders", "pluginName": "divide", "name": "all",
        "conditionDataList": [{"paramType": "uri", "operator": "match", "paramValue": "/orders/**"}],
        "handle": "{\"loadBalance\":\"roundRobin\",\"timeout\":3000}",
    });
    let r = c.post(format!("{admin}/rules")).bearer_auth(&token).json(&rule).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let committed = Instant::now();
    loop {
        let r = c.get(&gw).send().await.unwrap();
        if r.status() == 200 {
            assert_eq!(r.json::<serde_json::Value>().await.unwrap()["server"], "from-admin");
            break;
        }
        assert!(committed.elapsed() < Duration::from_secs(1), "the admin's change was not served within a second");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn admin_export_and_import_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
    let run = |args: &[&str]| Command::new(BIN).args(["admin", "--database-url", &url]).args(args).output().unwrap();
    let routes = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/routes.json");

    let dry = run(&["import", routes, "--dry-run"]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("nothing written"));
    let out = dir.path().join("backup.yaml");
    assert!(run(&["export", out.to_str().unwrap()]).status.success());
    assert!(!std::fs::read_to_string(&out).unwrap().contains("user-service"), "a dry run wrote something");

    let imported = run(&["import", routes]);
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    assert!(String::from_utf8_lossy(&imported.stdout).contains("Create ROUTE user-service"));
    assert!(run(&["export", out.to_str().unwrap()]).status.success());
    let backup = std::fs::read_to_string(&out).unwrap();
    assert!(backup.contains("user-service") && backup.contains("divide"), "{backup}");

    // Restore into a fresh database gives the same export.
    let url2 = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
    let restore =
        Command::new(BIN).args(["admin", "--database-url", &url2, "import", out.to_str().unwrap()]).output().unwrap();
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    let out2 = dir.path().join("again.yaml");
    assert!(Command::new(BIN)
        .args(["admin", "--database-url", &url2, "export", out2.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    assert_eq!(std::fs::read_to_string(&out2).unwrap(), backup);

    // A config the store cannot keep is refused whole.
    let quick = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart.yaml");
    let refused = run(&["import", quick]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nothing written"));
}
