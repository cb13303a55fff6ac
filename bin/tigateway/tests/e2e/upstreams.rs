//! Upstream failure handling: 502 / 503 / 504, retries, passive health, HTTP/2 to upstreams.
use std::time::Duration;

use crate::common::*;

/// `overrides` replaces keys of the default upstream settings, e.g. `"retries: 0"`.
fn route_to(urls: &[String], overrides: &str) -> String {
    let inst: Vec<String> = urls.iter().map(|u| format!("{{url: \"{u}\"}}")).collect();
    let mut settings = vec![
        ("connectTimeoutMs", "500"),
        ("responseTimeoutMs", "300"),
        ("maxFails", "2"),
        ("failTimeoutMs", "60000"),
        ("retries", "1"),
    ];
    for o in overrides.split(',').filter(|o| !o.trim().is_empty()) {
        let (k, v) = o.split_once(':').expect("key: value");
        let (k, v) = (k.trim(), v.trim());
        settings.retain(|(sk, _)| *sk != k);
        settings.push((k, v));
    }
    let upstream: Vec<String> = settings.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let upstream = upstream.join(", ");
    format!(
        r#"
server:
  upstream: {{{upstream}}}
services:
  svc: [{}]
routes:
  - {{id: r, uri: "lb://svc", predicates: ["Path=/**"]}}
"#,
        inst.join(", ")
    )
}

async fn dead_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    format!("http://{a}")
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_upstream_gives_502() {
    let dead = dead_port().await;
    let gw = TestGateway::start(&route_to(&[dead], "maxFails: 0"));
    let (status, v) = get_json(&gw.url("/x")).await;
    assert_eq!(status, 502);
    assert_eq!(v["code"], 502);
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_upstream_gives_504_at_the_timeout() {
    let slow = upstream(UpstreamBehavior { delay: Duration::from_secs(5), ..UpstreamBehavior::named("slow") }).await;
    let gw = TestGateway::start(&route_to(&[slow.url()], "retries: 0"));
    let started = std::time::Instant::now();
    let (status, _) = get_json(&gw.url("/x")).await;
    assert_eq!(status, 504);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "504 took {took:?}, the timeout is 300 ms");
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_failure_is_retried_on_another_upstream_and_ejected() {
    let good = upstream(UpstreamBehavior::named("good")).await;
    let dead = dead_port().await;
    let gw = TestGateway::start(&route_to(&[dead, good.url()], ""));
    for _ in 0..20 {
        let r = client().post(gw.url("/x")).body("payload").send().await.unwrap();
        assert_eq!(r.status(), 200, "a connect failure must be retried elsewhere, even for POST");
    }
    assert_eq!(good.hits(), 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn all_upstreams_ejected_gives_503() {
    let d1 = dead_port().await;
    let d2 = dead_port().await;
    let gw = TestGateway::start(&route_to(&[d1, d2], ""));
    // Each request fails on both (one try + one retry); two failures eject each.
    for _ in 0..3 {
        let _ = client().get(gw.url("/x")).send().await.unwrap();
    }
    let (status, v) = get_json(&gw.url("/x")).await;
    assert_eq!(status, 503, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_upstream_and_streaming_body() {
    let up = upstream(UpstreamBehavior::named("h2")).await;
    // 3 MiB through a debug build on a busy machine can take longer than the suite's 300 ms
    // response timeout; this test is about h2c and streaming, not timeouts.
    let gw = TestGateway::start(&route_to(&[format!("h2c://{}", up.addr)], "responseTimeoutMs: 20000"));
    let big = vec![b'x'; 3 * 1024 * 1024];
    let r = client().post(gw.url("/upload")).body(big).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["version"], "HTTP/2.0");
    assert_eq!(v["bodyLen"], 3 * 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn body_over_server_limit_is_413() {
    let up = upstream(UpstreamBehavior::named("u")).await;
    let cfg = route_to(&[up.url()], "").replace("server:\n", "server:\n  limits: {maxBodyBytes: 1000}\n");
    let gw = TestGateway::start(&cfg);
    let r = client().post(gw.url("/x")).body(vec![b'a'; 2000]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    // Chunked (no Content-Length): caught while streaming.
    let stream =
        futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'b'; 500]))));
    let r = client().post(gw.url("/x")).body(reqwest::Body::wrap_stream(stream)).send().await;
    match r {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => panic!("chunked oversize body should get 413, got {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_filter_retries_on_status() {
    let bad = upstream(UpstreamBehavior { status: 503, ..UpstreamBehavior::named("bad") }).await;
    let good = upstream(UpstreamBehavior::named("good")).await;
    let gw = TestGateway::start(&format!(
        r#"
services:
  svc: [{{url: "{}"}}, {{url: "{}"}}]
routes:
  - {{id: with-retry, uri: "lb://svc", predicates: ["Path=/retry/**"], filters: ["Retry=3"]}}
  - {{id: without, uri: "lb://svc", predicates: ["Path=/plain/**"]}}
"#,
        bad.url(),
        good.url()
    ));
    for _ in 0..10 {
        assert_eq!(client().get(gw.url("/retry/x")).send().await.unwrap().status(), 200);
    }
    assert!(bad.hits() >= 5, "round robin should have sent about half the first tries to the failing upstream");
    let mut statuses = std::collections::HashSet::new();
    for _ in 0..10 {
        statuses.insert(client().get(gw.url("/plain/x")).send().await.unwrap().status().as_u16());
    }
    assert!(statuses.contains(&503), "without Retry the upstream's 503 passes through: {statuses:?}");
    // POST is not in Retry's default methods.
    let mut post = std::collections::HashSet::new();
    for _ in 0..10 {
        post.insert(client().post(gw.url("/retry/x")).body("b").send().await.unwrap().status().as_u16());
    }
    assert!(post.contains(&503), "{post:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn active_health_checks_take_a_failing_upstream_out() {
    let sick = upstream(UpstreamBehavior { status: 500, ..UpstreamBehavior::named("sick") }).await;
    let well = upstream(UpstreamBehavior::named("well")).await;
    let gw = TestGateway::start(&format!(
        r#"
server:
  upstream:
    healthCheck: {{path: /health, intervalMs: 100, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 1}}
services:
  svc: [{{url: "{}"}}, {{url: "{}"}}]
routes:
  - {{id: r, uri: "lb://svc", predicates: ["Path=/**"]}}
"#,
        sick.url(),
        well.url()
    ));
    // Wait for the first check rounds (they hit /health on both).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sick.hits() < 2 {
        assert!(std::time::Instant::now() < deadline, "health checks never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sick_before = sick.hits();
    for _ in 0..20 {
        let r = client().get(gw.url("/x")).send().await.unwrap();
        assert_eq!(r.status(), 200, "traffic went to the upstream its health check failed");
    }
    // Only health-check probes (a few per 100 ms) reached the sick one, no proxied requests.
    assert!(sick.hits() - sick_before < 20);
    assert!(well.hits() >= 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn https_upstream_trusted_through_ca_file() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    let up = upstream_tls(UpstreamBehavior::named("secure"), &cert.pem(), &key.serialize_pem(), true).await;
    let up1 = upstream_tls(UpstreamBehavior::named("secure-h1"), &cert.pem(), &key.serialize_pem(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let url = format!("https://localhost:{}", up.addr.port());

    let gw = TestGateway::start(&format!(
        "server: {{upstream: {{caFile: \"{}\"}}}}\nroutes: [{{id: r, uri: \"{url}\", predicates: [\"Path=/**\"]}}]",
        ca_path.display()
    ));
    let (status, v) = get_json(&gw.url("/secure")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["path"], "/secure");
    assert_eq!(v["version"], "HTTP/2.0", "ALPN should negotiate h2 with the upstream");

    // An upstream that only speaks HTTP/1.1 over TLS goes through the hand-written client, and
    // its keep-alive connection is reused.
    let url1 = format!("https://localhost:{}", up1.addr.port());
    let gw1 = TestGateway::start(&format!(
        "server: {{upstream: {{caFile: \"{}\"}}}}\nroutes: [{{id: r, uri: \"{url1}\", predicates: [\"Path=/**\"]}}]",
        ca_path.display()
    ));
    for i in 0..5 {
        let r = client().post(gw1.url(&format!("/h1/{i}"))).body(vec![b'q'; 100_000]).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["version"], "HTTP/1.1");
        assert_eq!(v["bodyLen"], 100_000);
        assert_eq!(v["path"], format!("/h1/{i}"));
    }

    // Without the CA the upstream's certificate is not trusted: 502, nothing sent.
    let untrusted = TestGateway::start(&format!("routes: [{{id: r, uri: \"{url}\", predicates: [\"Path=/**\"]}}]"));
    let (status, _) = get_json(&untrusted.url("/secure")).await;
    assert_eq!(status, 502);
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_request_and_large_response_stream_through_http1() {
    let up = upstream(UpstreamBehavior::named("h1")).await;
    let gw = TestGateway::start(&route_to(&[up.url()], ""));
    // Chunked request body (no Content-Length): re-chunked to the upstream, every byte arrives.
    let parts: Vec<Result<bytes::Bytes, std::io::Error>> =
        (0..64).map(|i| Ok(bytes::Bytes::from(vec![b'a' + (i % 26) as u8; 4096]))).collect();
    let r = client()
        .post(gw.url("/chunked"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(parts)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["bodyLen"], 64 * 4096);
    assert!(v["headers"].get("content-length").is_none());
    assert_eq!(v["headers"]["transfer-encoding"], "chunked");
    // Many requests over the pooled connections: each answer is complete and belongs to its request.
    let c = client();
    for i in 0..200 {
        let r = c.get(gw.url(&format!("/seq/{i}"))).send().await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["path"], format!("/seq/{i}"));
    }
}
