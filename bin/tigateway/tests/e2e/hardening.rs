//! Request hardening, each vector sent as raw bytes over TCP.
use std::time::Duration;

use crate::common::*;

async fn gw() -> (TestGateway, Upstream) {
    let up = upstream(UpstreamBehavior::named("u")).await;
    let gw = TestGateway::start(&format!(
        r#"
server:
  limits: {{maxUriBytes: 200, maxHeaderBytes: 2000, maxBodyBytes: 100, headerReadTimeoutMs: 500}}
routes:
  - {{id: users, uri: "{u}", predicates: ["Path=/api/users/**"]}}
  - {{id: enc, uri: "{u}", predicates: ["Path=/enc/**"]}}
"#,
        u = up.url()
    ));
    (gw, up)
}

const W: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread")]
async fn content_length_and_transfer_encoding_together_is_400_and_close() {
    let (gw, up) = gw().await;
    let out = raw(gw.addr, b"POST /api/users/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/users/2 HTTP/1.1\r\nHost: a\r\n\r\n", W).await;
    assert_eq!(status_of(&out), 400, "{out}");
    assert!(out.to_ascii_lowercase().contains("connection: close"), "{out}");
    assert_eq!(out.matches("HTTP/1.1").count(), 1, "the smuggled request was answered: {out}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_content_length_is_400() {
    let (gw, _up) = gw().await;
    for cl in ["abc", "5, 6", "-1"] {
        let out = raw(
            gw.addr,
            format!("POST /api/users/1 HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\nhello").as_bytes(),
            W,
        )
        .await;
        assert_eq!(status_of(&out), 400, "Content-Length {cl}: {out}");
    }
    let out = raw(
        gw.addr,
        b"POST /api/users/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        W,
    )
    .await;
    assert_eq!(status_of(&out), 400, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn obs_fold_and_bad_header_bytes_are_400() {
    let (gw, _up) = gw().await;
    let out = raw(gw.addr, b"GET /api/users/1 HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n", W).await;
    assert_eq!(status_of(&out), 400, "{out}");
    let out = raw(gw.addr, b"GET /api/users/1 HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", W).await;
    assert_eq!(status_of(&out), 400, "{out}");
    let out = raw(gw.addr, b"GET /api/users/1 HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", W).await;
    assert_eq!(status_of(&out), 400, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn host_rules() {
    let (gw, up) = gw().await;
    let out = raw(gw.addr, b"GET /api/users/1 HTTP/1.1\r\n\r\n", W).await;
    assert_eq!(status_of(&out), 400, "{out}");
    let out = raw(gw.addr, b"GET /api/users/1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", W).await;
    assert_eq!(status_of(&out), 400, "{out}");
    let out = raw(gw.addr, b"GET /api/users/1 HTTP/1.0\r\n\r\n", W).await;
    assert_eq!(status_of(&out), 200, "HTTP/1.0 needs no Host: {out}");
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_414_431_413_408() {
    let (gw, _up) = gw().await;
    let long = format!("GET /api/users/{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(300));
    assert_eq!(status_of(&raw(gw.addr, long.as_bytes(), W).await), 414);
    let big = format!("GET /api/users/1 HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "y".repeat(3000));
    assert_eq!(status_of(&raw(gw.addr, big.as_bytes(), W).await), 431);
    let body = format!("POST /api/users/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 150\r\n\r\n{}", "z".repeat(150));
    assert_eq!(status_of(&raw(gw.addr, body.as_bytes(), W).await), 413);
    // Slow head: part of a request, then nothing.
    let out = raw(gw.addr, b"GET /api/users/1 HTTP/1.1\r\nHost: a\r\n", Duration::from_secs(3)).await;
    assert_eq!(status_of(&out), 408, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn path_normalisation_and_encoded_separators() {
    let (gw, up) = gw().await;
    // Dot segments are resolved before matching: this is /admin, which no route serves.
    let out = raw(gw.addr, b"GET /api/users/../../admin HTTP/1.1\r\nHost: a\r\n\r\n", W).await;
    assert_eq!(status_of(&out), 404, "{out}");
    // ... and the upstream sees the normalised path.
    let out = raw(gw.addr, b"GET /api/users/x/../%34%32 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", W).await;
    assert_eq!(status_of(&out), 200, "{out}");
    assert!(out.contains("\"path\":\"/api/users/42\""), "{out}");
    for p in ["/enc/a%2Fb", "/enc/a%5cb", "/enc/a%00"] {
        let out = raw(gw.addr, format!("GET {p} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(), W).await;
        assert_eq!(status_of(&out), 400, "{p}: {out}");
    }
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_and_forwarded_headers() {
    let (gw, _up) = gw().await;
    let out = raw(
        gw.addr,
        b"GET /api/users/1 HTTP/1.1\r\nHost: gw.example\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        W,
    )
    .await;
    assert_eq!(status_of(&out), 200, "{out}");
    let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    let h = &v["headers"];
    assert!(h.get("x-secret").is_none() && h.get("keep-alive").is_none(), "{h}");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "an untrusted client's X-Forwarded-For must be replaced");
    assert_eq!(h["x-forwarded-host"], "gw.example");
    assert_eq!(h["x-forwarded-proto"], "http");
}
