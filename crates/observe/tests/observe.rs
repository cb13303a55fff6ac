//! The metrics listener over real HTTP, the access log writer on real files and a real slow writer.

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tigateway_observe::{AccessLog, AccessRecord, Destination, LogTarget, Observe, RouteKind};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn get(url: &str) -> (u16, String) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn record(i: u64) -> AccessRecord {
    AccessRecord {
        time: SystemTime::now(),
        target: LogTarget::new("selector", Some("divide"), None, Some("s1"), Some("r1")),
        method: http::Method::GET,
        uri: format!("/x/{i}").parse().unwrap(),
        status: 200,
        upstream: Some(Arc::from("127.0.0.1:1")),
        duration: Duration::from_micros(1500),
        upstream_duration: Some(Duration::from_millis(1)),
        bytes_in: 0,
        bytes_out: 10,
        client_ip: IpAddr::from([127, 0, 0, 1]),
        trace_id: None,
        request_id: Some(http::HeaderValue::from_str(&format!("req-{i}")).unwrap()),
    }
}

#[tokio::test]
async fn ready_flips_with_snapshot_and_source_state() {
    let obs = Observe::new();
    obs.sources.register("zookeeper");
    let addr = tigateway_observe::server::start("127.0.0.1:0".parse().unwrap(), obs.clone()).await.unwrap();
    let base = format!("http://{addr}");

    assert_eq!(get(&format!("{base}/health")).await.0, 200);
    let (status, body) = get(&format!("{base}/ready")).await;
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["reason"], "no config snapshot loaded yet");
    assert_eq!(v["sources"][0]["name"], "zookeeper");

    obs.sources.set_connected("zookeeper", true, false);
    obs.sources.applied("zookeeper", 42, 2, Duration::from_millis(5));
    let (status, body) = get(&format!("{base}/ready")).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sources"][0]["connected"], true);
    assert_eq!(v["sources"][0]["lastAppliedVersion"], 42);

    // The source is lost: not ready until a cached config serves.
    obs.sources.set_connected("zookeeper", false, false);
    let (status, body) = get(&format!("{base}/ready")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not connected and no cache: zookeeper"), "{body}");
    obs.sources.set_connected("zookeeper", false, true);
    let (status, body) = get(&format!("{base}/ready")).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sources"][0]["servingFromCache"], true);

    obs.sources.resync("zookeeper");
    obs.sources.rejected("zookeeper", "selector \"x\": bad");
    obs.sources.cache_hit("l1");
    obs.sources.cache_hit("l1");
    obs.sources.cache_hit("l1");
    obs.sources.cache_miss("l1");
    let plain = client().get(format!("{base}/metrics")).send().await.unwrap();
    assert!(plain.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let plain = plain.text().await.unwrap();
    assert!(plain.contains("# TYPE tigateway_config_updates_total counter\n"), "{plain}");
    let r = client()
        .get(format!("{base}/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    for line in [
        "tigateway_config_updates_total{source=\"zookeeper\"} 1",
        "tigateway_config_rejected_total{source=\"zookeeper\"} 1",
        "tigateway_sync_resyncs_total{source=\"zookeeper\"} 1",
        "tigateway_sync_connected{source=\"zookeeper\"} 0",
        "tigateway_sync_serving_from_cache{source=\"zookeeper\"} 1",
        "tigateway_sync_last_applied_version{source=\"zookeeper\"} 42",
        "tigateway_routes_update_time_seconds_count 1",
        "tigateway_cache_hits_total{level=\"l1\"} 3",
        "tigateway_cache_misses_total{level=\"l1\"} 1",
        "tigateway_cache_hit_ratio{level=\"l1\"} 0.75",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(get(&format!("{base}/nope")).await.0, 404);
}

#[tokio::test]
async fn label_values_are_escaped() {
    let obs = Observe::new();
    let s = obs.gateway.route(RouteKind::Selector, "we\"ird\\id");
    s.record(0, 200, Duration::from_millis(1), None, 0, 0, 0);
    let text = obs.encode();
    assert!(
        text.contains(r#"tigateway_requests_total{kind="selector",route="we\"ird\\id",method="GET",status="2xx"} 1"#),
        "{text}"
    );
}

/// A writer that blocks inside `write` until released: a disk that stopped.
struct Stuck {
    state: Arc<(Mutex<(bool, bool)>, Condvar)>,
}

impl Write for Stuck {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let (m, cv) = &*self.state;
        let mut g = m.lock().unwrap();
        g.0 = true; // entered
        cv.notify_all();
        while !g.1 {
            g = cv.wait(g).unwrap();
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let state = Arc::new((Mutex::new((false, false)), Condvar::new()));
    let log = AccessLog::to_writer(Box::new(Stuck { state: state.clone() }), 4);
    assert!(log.log(&record(0)));
    {
        // Wait until the writer holds record 0 inside the stuck write: the queue is empty again.
        let (m, cv) = &*state;
        let mut g = m.lock().unwrap();
        while !g.0 {
            g = cv.wait(g).unwrap();
        }
    }
    let started = Instant::now();
    let accepted = (1..=10).filter(|i| log.log(&record(*i))).count();
    assert!(started.elapsed() < Duration::from_millis(100), "logging blocked: {:?}", started.elapsed());
    assert_eq!(accepted, 4, "the queue holds exactly its capacity");
    assert_eq!(log.dropped(), 6);
    let (m, cv) = &*state;
    m.lock().unwrap().1 = true;
    cv.notify_all();
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.written() < 5 {
        assert!(Instant::now() < deadline, "writer did not drain");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(log.dropped(), 6);
}

#[test]
fn file_log_lines_parse_and_rotate_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = AccessLog::start(Destination::File { path: path.clone(), max_bytes: 2000, keep: 2 }, 1000).unwrap();
    for i in 0..40 {
        assert!(log.log(&record(i)));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.written() < 40 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(log);
    std::thread::sleep(Duration::from_millis(300)); // the writer flushes when the queue runs dry
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["access.log", "access.log.1", "access.log.2"], "keeps two rotated files");
    let mut last_seen = Vec::new();
    for n in &names {
        let text = std::fs::read_to_string(dir.path().join(n)).unwrap();
        assert!(text.len() <= 2000, "{n} is {} bytes", text.len());
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["selector_id"], "s1");
            assert_eq!(v["rule_id"], "r1");
            assert!(v["trace_id"].is_null());
            assert!(v["time"].as_str().unwrap().ends_with('Z'));
            last_seen.push(v["request_id"].as_str().unwrap().to_string());
        }
    }
    assert!(last_seen.contains(&"req-39".to_string()), "the newest line is in the live file");
}
