//! Tracing end to end: the real binary proxies real requests to a real upstream and exports spans
//! to OTLP receivers running in the test (a tonic gRPC TraceService and an HTTP endpoint taking
//! protobuf POSTs on /v1/traces). Checks span names, attributes and parents, the traceparent the
//! upstream sees, and X-Request-Id.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tigateway");
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// What a receiver got: every span with its resource's service.name.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn add(&self, req: ExportTraceServiceRequest) {
        let mut all = self.0.lock().unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(AnyValue::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                all.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.0.lock().unwrap().iter().map(|(_, s)| s.clone()).collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let spans = self.spans();
            if spans.len() >= n {
                return spans;
            }
            assert!(Instant::now() < deadline, "only {} of {n} spans arrived", spans.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

struct Grpc(Received);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

async fn grpc_receiver() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Received::default();
    let svc = TraceServiceServer::new(Grpc(got.clone()));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream_listener(listener))
            .await
            .unwrap();
    });
    (addr, got)
}

/// The listener as a stream of connections, for tonic.
fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

/// OTLP/HTTP: protobuf `ExportTraceServiceRequest` POSTed to /v1/traces.
async fn http_receiver() -> (SocketAddr, Received, Arc<Mutex<Vec<String>>>) {
    use http_body_util::BodyExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Received::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (g, s) = (got.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { break };
            let (g, s) = (g.clone(), s.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (g, s) = (g.clone(), s.clone());
                    async move {
                        let ct =
                            req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                        s.lock().unwrap().push(format!("{} {} {ct}", req.method(), req.uri().path()));
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let status = match ExportTraceServiceRequest::decode(body) {
                            Ok(r) => {
                                g.add(r);
                                200
                            }
                            Err(_) => 400,
                        };
                        let out = ExportTraceServiceResponse { partial_success: None }.encode_to_vec();
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(status)
                                .header("content-type", "application/x-protobuf")
                                .body(http_body_util::Full::new(bytes::Bytes::from(out)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, got, seen)
}

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

fn start(config: &str, extra: &[&str]) -> (Proc, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, config).unwrap();
    let port = free_port();
    let child = Command::new(BIN)
        .args(["gateway", "-c"])
        .arg(&path)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "1"])
        .args(extra)
        .env("RUST_LOG", "info")
        // Several processes at once: none of them may take the default metrics ports.
        .env("TIGATEWAY_METRICS", "off")
        .env("TIGATEWAY_ADMIN_METRICS", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tigateway");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Proc(child), format!("http://127.0.0.1:{port}"), dir)
}

fn config(upstream: &str) -> String {
    format!(
        r#"
routes:
  - id: users
    uri: {upstream}
    predicates: [Path=/api/users/**]
selectors:
  - id: orders
    pluginName: divide
    conditionList: [{{paramType: uri, operator: match, paramValue: "/orders/**"}}]
    handle: '[{{"upstreamUrl": "{upstream}"}}]'
rules:
  - {{id: orders-all, selectorId: orders, conditionDataList: [{{paramType: uri, operator: match, paramValue: "/**"}}]}}
"#
    )
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, http::HeaderMap, Value) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut b = client.get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = b.send().await.unwrap();
    let status = r.status().as_u16();
    let h = r.headers().clone();
    (status, h, r.json().await.unwrap_or(Value::Null))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr(s: &Span, key: &str) -> Option<String> {
    let v = s.attributes.iter().find(|a| a.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match v {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

/// `(trace id, parent span id, flags)` of the traceparent the upstream saw.
fn upstream_traceparent(v: &Value) -> (String, String, String) {
    let tp = v["headers"]["traceparent"].as_str().unwrap_or_else(|| panic!("no traceparent upstream: {v}"));
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00");
    (parts[1].to_string(), parts[2].to_string(), parts[3].to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_export_with_incoming_parent_and_request_ids() {
    let up = tigateway_testkit::upstream(tigateway_testkit::UpstreamBehavior::named("up")).await;
    let (otlp, got) = grpc_receiver().await;
    let endpoint = format!("http://{otlp}");
    let (_p, base, _d) = start(&config(&up.url()), &["--otlp-endpoint", &endpoint, "--otlp-protocol", "grpc"]);

    // 1. A sampled incoming parent and a client request id: both continue.
    let incoming = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let (status, h, v) = get(
        &format!("{base}/api/users/42"),
        &[("traceparent", &incoming), ("tracestate", "vendor=abc"), ("x-request-id", "client-req-1")],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(h["x-request-id"], "client-req-1");
    assert_eq!(v["headers"]["x-request-id"], "client-req-1");
    assert_eq!(v["headers"]["tracestate"], "vendor=abc");
    let (tid, upstream_parent, flags) = upstream_traceparent(&v);
    assert_eq!(tid, TRACE_ID, "the upstream continues the incoming trace");
    assert_ne!(upstream_parent, PARENT_ID, "with the gateway's own span id");
    assert_eq!(flags, "01");

    // 2. No traceparent, no request id: a new trace, a generated id returned and sent upstream.
    let (status, h, v) = get(&format!("{base}/orders/7"), &[]).await;
    assert_eq!(status, 200);
    let rid = h["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(rid.len(), 32);
    assert!(rid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(v["headers"]["x-request-id"], rid.as_str());
    let (new_tid, new_parent, _) = upstream_traceparent(&v);
    assert_ne!(new_tid, TRACE_ID);

    // 3. A malformed traceparent is replaced by a new trace; a 404 still gets a span and an id.
    let (status, h, _) = get(&format!("{base}/nowhere"), &[("traceparent", "00-nothex-zz-01")]).await;
    assert_eq!(status, 404);
    assert!(h.contains_key("x-request-id"));

    let spans = got.wait_for(3).await;
    let users = spans.iter().find(|s| hex(&s.trace_id) == TRACE_ID).expect("span of the continued trace");
    assert_eq!(users.name, "GET users");
    assert_eq!(users.kind, 2, "server span");
    assert_eq!(hex(&users.parent_span_id), PARENT_ID, "parent is the incoming traceparent's span");
    assert_eq!(hex(&users.span_id), upstream_parent, "the upstream's parent is this span");
    assert_eq!(attr(users, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(users, "http.route").as_deref(), Some("users"));
    assert_eq!(attr(users, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(users, "tigateway.upstream"), Some(up.url()));
    assert_eq!(attr(users, "tigateway.request_id").as_deref(), Some("client-req-1"));

    let orders = spans.iter().find(|s| hex(&s.trace_id) == new_tid).expect("span of the new trace");
    assert!(orders.parent_span_id.is_empty(), "a root span");
    assert_eq!(hex(&orders.span_id), new_parent);
    assert_eq!(orders.name, "GET orders");
    assert_eq!(attr(orders, "tigateway.selector").as_deref(), Some("orders"));
    assert_eq!(attr(orders, "tigateway.rule").as_deref(), Some("orders-all"));

    let missing = spans.iter().find(|s| attr(s, "url.path").as_deref() == Some("/nowhere")).expect("404 span");
    assert_eq!(attr(missing, "http.response.status_code").as_deref(), Some("404"));
    assert!(missing.parent_span_id.is_empty());
    assert_eq!(missing.name, "GET");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_protobuf_export_and_parent_based_sampling() {
    let up = tigateway_testkit::upstream(tigateway_testkit::UpstreamBehavior::named("up")).await;
    let (otlp, got, seen) = http_receiver().await;
    let endpoint = format!("http://{otlp}");
    let (_p, base, _d) = start(
        &config(&up.url()),
        &["--otlp-endpoint", &endpoint, "--otlp-protocol", "http", "--trace-sample-ratio", "0"],
    );
    // Ratio 0: a new trace is not recorded, but still propagated (unsampled).
    let (_, _, v) = get(&format!("{base}/orders/1"), &[]).await;
    let (_, _, flags) = upstream_traceparent(&v);
    assert_eq!(flags, "00");
    // A sampled parent is followed regardless of the ratio.
    let incoming = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let (status, _, v) = get(&format!("{base}/api/users/9"), &[("traceparent", &incoming)]).await;
    assert_eq!(status, 200);
    let (tid, upstream_parent, flags) = upstream_traceparent(&v);
    assert_eq!((tid.as_str(), flags.as_str()), (TRACE_ID, "01"));

    let spans = got.wait_for(1).await;
    // Give a wrongly exported unsampled span time to show up.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let spans_later = got.spans();
    assert_eq!(
        spans_later.len(),
        1,
        "only the sampled request is exported: {:?}",
        spans_later.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let s = &spans[0];
    assert_eq!(hex(&s.trace_id), TRACE_ID);
    assert_eq!(hex(&s.parent_span_id), PARENT_ID);
    assert_eq!(hex(&s.span_id), upstream_parent);
    assert_eq!(s.name, "GET users");
    assert_eq!(attr(s, "http.response.status_code").as_deref(), Some("200"));
    let posts = seen.lock().unwrap().clone();
    assert!(posts.iter().all(|p| p == "POST /v1/traces application/x-protobuf"), "{posts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_tracing_request_ids_still_work_and_trace_headers_pass_through() {
    let up = tigateway_testkit::upstream(tigateway_testkit::UpstreamBehavior::named("up")).await;
    let (_p, base, _d) = start(&config(&up.url()), &[]);
    let incoming = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let (status, h, v) =
        get(&format!("{base}/api/users/1"), &[("traceparent", &incoming), ("x-request-id", "bad id with spaces")])
            .await;
    assert_eq!(status, 200);
    assert_eq!(v["headers"]["traceparent"], incoming.as_str(), "untouched when tracing is off");
    let rid = h["x-request-id"].to_str().unwrap();
    assert_ne!(rid, "bad id with spaces", "an insane id is replaced");
    assert_eq!(rid.len(), 32);
    assert_eq!(v["headers"]["x-request-id"], rid);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_span_of_a_streamed_response_ends_with_its_body() {
    let addr = tigateway_testkit::chunked_upstream(&["one;", "two;", "three"], Duration::from_millis(150)).await;
    let (otlp, got) = grpc_receiver().await;
    let endpoint = format!("http://{otlp}");
    let (_p, base, _d) = start(&config(&format!("http://{addr}")), &["--otlp-endpoint", &endpoint]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client.get(format!("{base}/api/users/1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "one;two;three");
    let spans = got.wait_for(1).await;
    let s = &spans[0];
    let took_ms = (s.end_time_unix_nano - s.start_time_unix_nano) as f64 / 1e6;
    assert!(took_ms >= 440.0, "the span ended after {took_ms} ms, before the body's three parts");
    assert_eq!(attr(s, "http.response.body.size").as_deref(), Some("13"));
    assert_eq!(attr(s, "http.response.status_code").as_deref(), Some("200"));
}
