//! The gateway's websocket and long-polling clients against test servers on loopback that send
//! exactly the recorded ShenYu 2.7 exchanges in `fixtures/shenyu27/`, plus malformed frames,
//! push storms and revision gaps. Every config the client hands over is validated and compiled
//! by the real data plane (`SnapshotStore::prepare`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tigateway_model::Config;
use tigateway_proxy::SnapshotStore;
use tigateway_sync::shenyu::{Applier, SyncStatus};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

const NS: &str = "649330b6-c2d7-4edc-be8e-8a54df9eb385";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/shenyu27/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The configs that passed `prepare` and were swapped in, newest last.
struct Sink {
    applied: Arc<Mutex<Vec<Arc<Config>>>>,
    applier: Applier,
}

impl Sink {
    fn new(window: Duration) -> Sink {
        let registry = Arc::new(tigateway_upstream::Registry::new(&Default::default()));
        let store = SnapshotStore::new(Config::default(), registry).unwrap();
        let applied = Arc::new(Mutex::new(Vec::new()));
        let (p, a, rec) = (store.clone(), store.clone(), applied.clone());
        let applier = Applier::start(
            move |c| p.prepare(c).map_err(|e| e.to_string()),
            move |snap| {
                rec.lock().unwrap().push(snap.config.clone());
                a.swap(snap);
            },
            None,
            Arc::new(SyncStatus::default()),
            window,
        );
        Sink { applied, applier }
    }

    fn last(&self) -> Option<Arc<Config>> {
        self.applied.lock().unwrap().last().cloned()
    }

    fn count(&self) -> usize {
        self.applied.lock().unwrap().len()
    }

    fn status(&self) -> &SyncStatus {
        self.applier.status()
    }

    async fn wait_for(&self, what: &str, f: impl Fn(&Config) -> bool) -> Arc<Config> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = self.last() {
                if f(&c) {
                    return c;
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; last applied: {:?}", self.last());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Group keys of a config in the fixtures' `expect…` shape.
fn keys(c: &Config) -> Value {
    let mut plugins: Vec<&str> = c.plugins.iter().map(|p| p.name.as_str()).collect();
    plugins.sort();
    json!({
        "plugins": plugins,
        "selectors": c.selectors.iter().map(|s| &s.id).collect::<Vec<_>>(),
        "rules": c.rules.iter().map(|r| &r.id).collect::<Vec<_>>(),
        "metadata": c.metadata.iter().map(|m| &m.path).collect::<Vec<_>>(),
        "appAuth": c.app_auth.iter().map(|a| &a.app_key).collect::<Vec<_>>(),
        "discoveryUpstreams": c.discovery_upstreams.iter().map(|d| &d.selector_id).collect::<Vec<_>>(),
    })
}

fn expect_keys(expect: &Value) -> Value {
    let mut e = expect.clone();
    let mut plugins: Vec<String> =
        e["plugins"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    plugins.sort();
    e["plugins"] = json!(plugins);
    e.as_object_mut().unwrap().remove("selectorCondition");
    e
}

fn frame(v: &Value) -> Message {
    match v {
        Value::String(s) => Message::Text(s.clone()),
        other => Message::Text(other.to_string()),
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Accepts one websocket connection, returning it and its handshake headers.
async fn accept(listener: &TcpListener) -> (Ws, http::HeaderMap) {
    let (tcp, _) = listener.accept().await.unwrap();
    let headers = Arc::new(Mutex::new(http::HeaderMap::new()));
    let h = headers.clone();
    let ws = tokio_tungstenite::accept_hdr_async(tcp, move |req: &Request, resp: Response| {
        *h.lock().unwrap() = req.headers().clone();
        Ok(resp)
    })
    .await
    .unwrap();
    let headers = headers.lock().unwrap().clone();
    (ws, headers)
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("client sent nothing") {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn ws_client(sink: &Sink) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut o = tigateway_sync::websocket::WsOptions::new(vec![format!("ws://{addr}/websocket")]);
    o.client_port = 9195;
    o.settle = Duration::from_millis(200);
    o.backoff_min = Duration::from_millis(20);
    tigateway_sync::websocket::spawn(o, sink.applier.clone());
    (listener, addr)
}

#[tokio::test]
async fn websocket_client_follows_a_recorded_shenyu27_admin() {
    let fx = fixture("websocket.json");
    let sink = Sink::new(Duration::from_millis(20));
    let (listener, _) = ws_client(&sink).await;
    let (mut ws, headers) = accept(&listener).await;
    assert_eq!(headers["namespaceId"], NS);
    assert_eq!(headers["ClientPort"], "9195");
    for expected in fx["expectClientSends"].as_array().unwrap() {
        assert_eq!(next_text(&mut ws).await, expected.as_str().unwrap());
    }
    for f in fx["fullSync"].as_array().unwrap() {
        ws.send(frame(f)).await.unwrap();
    }
    let expect = expect_keys(&fx["expectAfterFullSync"]);
    let cfg = sink.wait_for("the full sync", |c| keys(c) == expect).await;
    // Upstreams came from DISCOVER_UPSTREAM, and the rule's flag is ShenYu's `loged`.
    assert_eq!(cfg.discovery_upstreams[0].upstream_data_list[0].url, "127.0.0.1:8189");
    assert!(cfg.rules[0].logged && cfg.selectors[0].logged);
    // `synced` is set by the applier just after the swap the sink saw: give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !sink.status().synced.load(Ordering::Relaxed) {
        assert!(std::time::Instant::now() < deadline, "the full sync never counted as synced");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    for f in fx["events"].as_array().unwrap() {
        ws.send(frame(f)).await.unwrap();
        // Rule 102 arrives with Gson's escapes: `=` and `<gray>` must come out unescaped.
        if f.as_str().unwrap().contains("1810000000000000102") && f.as_str().unwrap().contains("CREATE") {
            let c = sink.wait_for("the new rule", |c| c.rules.iter().any(|r| r.id == "1810000000000000102")).await;
            let r = c.rules.iter().find(|r| r.id == "1810000000000000102").unwrap();
            assert_eq!(r.condition_data_list[0].operator, "=");
            assert_eq!(r.condition_data_list[0].param_value.as_deref(), Some("a=b"));
            assert_eq!(r.condition_data_list[1].param_value.as_deref(), Some("<gray>"));
        }
    }
    let expect = expect_keys(&fx["expectAfterEvents"]);
    sink.wait_for("the events", |c| keys(c) == expect).await;
    assert_eq!(sink.status().malformed.load(Ordering::Relaxed), 0);
    assert_eq!(sink.status().rejected.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn websocket_malformed_messages_are_skipped_and_the_client_resyncs() {
    let fx = fixture("websocket.json");
    let sink = Sink::new(Duration::from_millis(20));
    let (listener, _) = ws_client(&sink).await;
    let full: Vec<Value> = fx["fullSync"].as_array().unwrap().clone();
    let (mut ws, _) = accept(&listener).await;
    next_text(&mut ws).await;
    next_text(&mut ws).await;
    for f in &full {
        ws.send(frame(f)).await.unwrap();
    }
    let before = sink.wait_for("the full sync", |c| c.selectors.len() == 1).await;
    // Not JSON; JSON of the wrong shape; a selector with an impossible matchMode.
    for bad in [
        "{\"groupType\":\"SELECTOR\",\"eventType\":\"UPDATE\",\"data\":[{\"id\":",
        "{\"groupType\":\"SELECTOR\",\"eventType\":\"UPDATE\",\"data\":\"not a list\"}",
        "{\"groupType\":\"SELECTOR\",\"eventType\":\"UPDATE\",\"data\":[{\"id\":\"x\",\"pluginName\":\"divide\",\"matchMode\":\"sometimes\"}]}",
    ] {
        ws.send(Message::Text(bad.into())).await.unwrap();
        // The client drops the connection and comes back for a full resync.
        let (mut again, _) = accept(&listener).await;
        assert_eq!(next_text(&mut again).await, "RUNNING_MODE");
        assert_eq!(next_text(&mut again).await, "MYSELF");
        for f in &full {
            again.send(frame(f)).await.unwrap();
        }
        ws = again;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.status().malformed.load(Ordering::Relaxed) < 3 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Nothing from the bad messages was ever served.
    for c in sink.applied.lock().unwrap().iter() {
        assert!(c.selectors.iter().all(|s| s.id != "x"));
    }
    assert_eq!(keys(&sink.last().unwrap()), keys(&before));
    // A message for a plugin nobody knows, with a selector, is refused by validation: the gateway
    // keeps serving and keeps following.
    let unknown =
        json!({"groupType":"SELECTOR","eventType":"CREATE","data":[{"id":"u","pluginName":"madeUpPlugin","type":0}]});
    ws.send(frame(&unknown)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.status().rejected.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the unknown plugin's selector was not refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let del = json!({"groupType":"SELECTOR","eventType":"DELETE","data":[{"id":"u","pluginName":"madeUpPlugin"}]});
    ws.send(frame(&del)).await.unwrap();
    let ren = json!({"groupType":"META_DATA","eventType":"CREATE","data":[{"path":"/late","appName":"x"}]});
    ws.send(frame(&ren)).await.unwrap();
    sink.wait_for("a later good event", |c| c.metadata.iter().any(|m| m.path == "/late")).await;
}

#[tokio::test]
async fn websocket_push_storm_is_coalesced() {
    let sink = Sink::new(Duration::from_millis(50));
    let (listener, _) = ws_client(&sink).await;
    let (mut ws, _) = accept(&listener).await;
    next_text(&mut ws).await;
    next_text(&mut ws).await;
    let plugin = json!({"groupType":"PLUGIN","eventType":"MYSELF","data":[{"id":"5","name":"divide","enabled":true,"sort":200}]});
    ws.send(frame(&plugin)).await.unwrap();
    sink.wait_for("the full sync", |c| c.plugins.len() == 1).await;
    let started = Instant::now();
    let n = 3000;
    for i in 0..n {
        let m = json!({"groupType":"META_DATA","eventType":"UPDATE","data":[{"path":format!("/m{}", i % 50),"appName":format!("v{i}")}]});
        ws.send(frame(&m)).await.unwrap();
    }
    let last = format!("v{}", n - 1);
    sink.wait_for("the last event", |c| c.metadata.iter().any(|m| m.app_name == last)).await;
    let secs = started.elapsed().as_secs_f64();
    let snapshots = sink.count();
    // At most one snapshot per 50 ms window (plus the full sync and one in flight).
    assert!(snapshots as f64 <= secs / 0.05 + 3.0, "{snapshots} snapshots for {n} events in {secs:.2}s");
    assert!(snapshots < n / 10, "{snapshots} snapshots for {n} events");
    assert_eq!(sink.last().unwrap().metadata.len(), 50);
}

/// A TiGateway admin's extension fields: batches applied whole, a revision gap → resync, a hash
/// mismatch → counted and resync.
#[tokio::test]
async fn websocket_revision_gap_and_hash_mismatch_trigger_a_resync() {
    use tigateway_model::sync_wire::canonical_hashes;
    let sink = Sink::new(Duration::from_millis(10));
    let (listener, _) = ws_client(&sink).await;
    let (mut ws, headers) = accept(&listener).await;
    assert_eq!(headers[tigateway_model::sync_wire::EXTENSIONS_HEADER], "1");
    next_text(&mut ws).await;
    next_text(&mut ws).await;
    let a = Config::from_yaml_str("plugins: [{id: '5', name: divide}]\nmetadata: [{path: /a, appName: x}]").unwrap();
    let full = |rev: i64, cfg: &Config| json!({"groupType":"PLUGIN","eventType":"MYSELF","data":cfg.plugins,"revision":rev,"hashes":canonical_hashes(cfg)});
    // A TiGateway admin announces its end marker: a slow full sync is waited for, never guessed
    // complete from a quiet period (the test client's settle time is 200 ms).
    ws.send(frame(&json!({"eventType":"RUNNING_MODE","runningMode":"STANDALONE","isMaster":true,"tigateway":true})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count(), 0, "an incomplete full sync was applied");
    ws.send(frame(&json!({"groupType":"META_DATA","eventType":"REFRESH","data":a.metadata,"revision":5})))
        .await
        .unwrap();
    ws.send(frame(&full(5, &a))).await.unwrap();
    sink.wait_for("revision 5", |c| c.metadata.len() == 1).await;
    assert_eq!(sink.status().hash_mismatches.load(Ordering::Relaxed), 0);

    // Revision 7 follows 6, which this client never saw.
    let mut b = a.clone();
    b.metadata[0].app_name = "y".into();
    ws.send(frame(&json!({"groupType":"META_DATA","eventType":"UPDATE","data":b.metadata,"revision":7,"since":6,"hashes":canonical_hashes(&b)})))
        .await
        .unwrap();
    let (mut ws2, _) = accept(&listener).await;
    assert_eq!(next_text(&mut ws2).await, "RUNNING_MODE");
    assert!(sink.last().unwrap().metadata[0].app_name == "x", "the event after the gap was applied");
    next_text(&mut ws2).await;
    ws2.send(frame(&json!({"groupType":"META_DATA","eventType":"REFRESH","data":b.metadata,"revision":7})))
        .await
        .unwrap();
    ws2.send(frame(&full(7, &b))).await.unwrap();
    sink.wait_for("revision 7 after the resync", |c| c.metadata[0].app_name == "y").await;
    assert!(sink.status().resyncs.load(Ordering::Relaxed) >= 1);

    // A batch whose hashes do not match what the client computes.
    let mut c = b.clone();
    c.metadata[0].app_name = "z".into();
    ws2.send(frame(&json!({"groupType":"META_DATA","eventType":"UPDATE","data":c.metadata,"revision":8,"since":7,"hashes":canonical_hashes(&a)})))
        .await
        .unwrap();
    let (mut ws3, _) = accept(&listener).await;
    assert_eq!(next_text(&mut ws3).await, "RUNNING_MODE");
    assert_eq!(sink.status().hash_mismatches.load(Ordering::Relaxed), 1);
}

#[derive(Clone)]
struct PollServer {
    fx: Arc<Value>,
    requests: Arc<Mutex<Vec<(String, String, Option<String>)>>>,
    listens: Arc<std::sync::atomic::AtomicUsize>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
}

async fn poll_server(fx: Value) -> (SocketAddr, PollServer) {
    use axum::extract::{RawQuery, State};
    use axum::http::HeaderMap;
    use axum::routing::{get, post};
    let st =
        PollServer { fx: Arc::new(fx), requests: Arc::default(), listens: Arc::default(), fetches: Arc::default() };
    fn record(st: &PollServer, path: &str, q: Option<String>, h: &HeaderMap) {
        let token = h.get("X-Access-Token").map(|v| v.to_str().unwrap().to_string());
        st.requests.lock().unwrap().push((path.to_string(), q.unwrap_or_default(), token));
    }
    let app = axum::Router::new()
        .route(
            "/platform/login",
            get(|State(st): State<PollServer>, RawQuery(q): RawQuery, h: HeaderMap| async move {
                record(&st, "login", q, &h);
                axum::Json(st.fx["login"].clone())
            }),
        )
        .route(
            "/configs/fetch",
            get(|State(st): State<PollServer>, RawQuery(q): RawQuery, h: HeaderMap| async move {
                record(&st, "fetch", q, &h);
                let n = st.fetches.fetch_add(1, Ordering::SeqCst);
                let body = if n == 0 { st.fx["fetchAll"].clone() } else { st.fx["rounds"][n - 1]["fetch"].clone() };
                axum::Json(body)
            }),
        )
        .route(
            "/configs/listener",
            post(|State(st): State<PollServer>, RawQuery(q): RawQuery, h: HeaderMap| async move {
                record(&st, "listener", q, &h);
                let n = st.listens.fetch_add(1, Ordering::SeqCst);
                match st.fx["rounds"].get(n) {
                    Some(r) => axum::Json(r["listener"].clone()),
                    None => {
                        // Held, as the admin does when nothing changed.
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        axum::Json(json!({"code":200,"message":"success","data":[]}))
                    }
                }
            }),
        )
        .with_state(st.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, st)
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

#[tokio::test]
async fn long_poll_client_follows_a_recorded_shenyu27_admin() {
    let fx = fixture("http_long_poll.json");
    let (addr, server) = poll_server(fx.clone()).await;
    let sink = Sink::new(Duration::from_millis(10));
    let o = tigateway_sync::http_poll::HttpOptions::new(
        vec![format!("http://{addr}")],
        fx["username"].as_str().unwrap().into(),
        fx["password"].as_str().unwrap().into(),
    );
    tigateway_sync::http_poll::spawn(o, sink.applier.clone());
    let expect = expect_keys(&fx["expectFinal"]);
    let cfg = sink
        .wait_for("the changed selector", |c| {
            c.selectors.first().is_some_and(|s| s.condition_list[0].param_value.as_deref() == Some("/v2/**"))
        })
        .await;
    assert_eq!(keys(&cfg), expect);
    // The third listener is being held: the RULE round (older lastModifyTime) was not taken.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.listens.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "the client stopped listening");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.last().unwrap().rules.len(), 1, "an older group replaced a newer one");

    let reqs = server.requests.lock().unwrap().clone();
    let token = fx["login"]["data"]["token"].as_str().unwrap();
    let (path, q, _) = &reqs[0];
    assert_eq!(path, "login");
    let q = query_pairs(q);
    assert!(q.contains(&("userName".into(), "admin".into())));
    assert!(
        q.contains(&("password".into(), fx["password"].as_str().unwrap().into())),
        "password not URL-encoded right: {q:?}"
    );
    let (path, q, t) = &reqs[1];
    assert_eq!((path.as_str(), t.as_deref()), ("fetch", Some(token)));
    let q = query_pairs(q);
    let keys: Vec<&str> = q.iter().filter(|(k, _)| k == "groupKeys").map(|(_, v)| v.as_str()).collect();
    assert_eq!(keys, ["APP_AUTH", "PLUGIN", "RULE", "SELECTOR", "META_DATA", "DISCOVER_UPSTREAM"]);
    assert!(q.contains(&("namespaceId".into(), NS.into())));
    // Each listener carries every ShenYu group as md5,lastModifyTime; the fetched ones echo the admin.
    let listeners: Vec<_> = reqs.iter().filter(|r| r.0 == "listener").collect();
    for l in &listeners {
        assert_eq!(l.2.as_deref(), Some(token));
        let q = query_pairs(&l.1);
        for g in tigateway_model::sync_wire::Group::SHENYU {
            let v = q.iter().find(|(k, _)| k == g.as_str()).unwrap_or_else(|| panic!("{g} missing from {q:?}"));
            assert!(v.1.contains(','), "{g}={}", v.1);
        }
    }
    let first = query_pairs(&listeners[0].1);
    let sel = &fx["fetchAll"]["data"]["SELECTOR"];
    let want = format!("{},{}", sel["md5"].as_str().unwrap(), sel["lastModifyTime"]);
    assert!(first.contains(&("SELECTOR".into(), want)), "{first:?}");
    let second = query_pairs(&listeners[1].1);
    let sel = &fx["rounds"][0]["fetch"]["data"]["SELECTOR"];
    let want = format!("{},{}", sel["md5"].as_str().unwrap(), sel["lastModifyTime"]);
    assert!(second.contains(&("SELECTOR".into(), want)), "{second:?}");
}

#[tokio::test]
async fn long_poll_unauthorized_reply_is_an_error_and_the_client_retries() {
    // An admin that refuses every token: the client never applies anything, never panics, and
    // keeps logging in again.
    use axum::routing::{get, post};
    let fx = fixture("http_long_poll.json");
    let logins = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (l2, login, unauth) = (logins.clone(), fx["login"].clone(), fx["unauthorized"].clone());
    let unauth2 = unauth.clone();
    let app = axum::Router::new()
        .route(
            "/platform/login",
            get(move || {
                l2.fetch_add(1, Ordering::SeqCst);
                let b = login.clone();
                async move { axum::Json(b) }
            }),
        )
        .route(
            "/configs/fetch",
            get(move || {
                let b = unauth.clone();
                async move { (axum::http::StatusCode::UNAUTHORIZED, axum::Json(b)) }
            }),
        )
        .route(
            "/configs/listener",
            post(move || {
                let b = unauth2.clone();
                async move { (axum::http::StatusCode::UNAUTHORIZED, axum::Json(b)) }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sink = Sink::new(Duration::from_millis(10));
    let mut o = tigateway_sync::http_poll::HttpOptions::new(vec![format!("http://{addr}")], "u".into(), "p".into());
    o.backoff_min = Duration::from_millis(10);
    o.backoff_max = Duration::from_millis(50);
    tigateway_sync::http_poll::spawn(o, sink.applier.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while logins.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "the client gave up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.count(), 0);
    // The flag is set once the client has handled the refusal the server just counted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sink.status().unreachable.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "the refused admin never counted as unreachable");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What a loopback admin serving `/platform/login` and `/websocket` on one port saw.
#[derive(Clone, Default)]
struct LoginAdmin {
    /// Refuse every login (a wrong password for this admin).
    refuse: bool,
    fx: Arc<Value>,
    /// Tokens issued, in order.
    issued: Arc<Mutex<Vec<String>>>,
    /// For each websocket upgrade: the X-Access-Token it carried and the newest token issued then.
    upgrades: Arc<Mutex<Vec<(Option<String>, Option<String>)>>>,
}

/// Logs in like a TiGateway admin (ShenYu's reply shape), upgrades only with the token issued last,
/// answers `MYSELF` with the recorded ShenYu full sync and then hangs up, so the client has to
/// connect (and log in) again.
async fn login_admin(refuse: bool) -> (SocketAddr, LoginAdmin) {
    use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
    use axum::extract::{RawQuery, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;
    let st = LoginAdmin { refuse, fx: Arc::new(fixture("websocket.json")), ..Default::default() };
    let app = axum::Router::new()
        .route(
            "/platform/login",
            get(|State(st): State<LoginAdmin>, RawQuery(q): RawQuery| async move {
                let q = query_pairs(&q.unwrap_or_default());
                let ok = !st.refuse
                    && q.contains(&("userName".into(), "gw".into()))
                    && q.contains(&("password".into(), "pw".into()));
                if !ok {
                    return axum::Json(json!({"code": 500, "message": "login failed: wrong user name or password"}));
                }
                let mut issued = st.issued.lock().unwrap();
                let token = format!("session-{}", issued.len());
                issued.push(token.clone());
                axum::Json(json!({"code": 200, "data": {"userName": "gw", "token": token, "expiredTime": 600_000}}))
            }),
        )
        .route(
            "/websocket",
            get(|State(st): State<LoginAdmin>, h: HeaderMap, ws: WebSocketUpgrade| async move {
                let given = h.get("X-Access-Token").map(|v| v.to_str().unwrap().to_string());
                let newest = st.issued.lock().unwrap().last().cloned();
                st.upgrades.lock().unwrap().push((given.clone(), newest.clone()));
                if given.is_none() || given != newest {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                ws.on_upgrade(move |mut socket| async move {
                    let mut asked = 0;
                    while asked < 2 {
                        match socket.recv().await {
                            Some(Ok(AxMessage::Text(_))) => asked += 1,
                            Some(Ok(_)) => {}
                            _ => return,
                        }
                    }
                    for f in st.fx["fullSync"].as_array().unwrap() {
                        let text = f.as_str().map(str::to_string).unwrap_or_else(|| f.to_string());
                        if socket.send(AxMessage::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                    // Past the client's 200 ms quiet period, then hang up.
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    let _ = socket.send(AxMessage::Close(None)).await;
                })
                .into_response()
            }),
        )
        .with_state(st.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, st)
}

#[tokio::test]
async fn websocket_client_logs_in_before_every_connection_and_fails_over_on_a_refused_login() {
    let (refusing, refused) = login_admin(true).await;
    let (accepting, accepted) = login_admin(false).await;
    let sink = Sink::new(Duration::from_millis(20));
    let mut o = tigateway_sync::websocket::WsOptions::new(vec![
        format!("ws://{refusing}/websocket"),
        format!("ws://{accepting}/websocket?token=ignored-by-the-login"),
    ]);
    o.login = Some(tigateway_sync::http_poll::Credentials { username: "gw".into(), password: "pw".into() });
    o.settle = Duration::from_millis(200);
    o.backoff_min = Duration::from_millis(20);
    o.backoff_max = Duration::from_millis(100);
    tigateway_sync::websocket::spawn(o, sink.applier.clone());

    let expect = expect_keys(&fixture("websocket.json")["expectAfterFullSync"]);
    sink.wait_for("the full sync from the admin whose login worked", |c| keys(c) == expect).await;
    // The admin hangs up after each full sync: three connections mean three logins.
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.upgrades.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "the client did not reconnect: {:?}", accepted.upgrades.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let upgrades = accepted.upgrades.lock().unwrap().clone();
    let tokens: Vec<&str> = upgrades.iter().map(|(given, _)| given.as_deref().unwrap()).collect();
    for (given, newest) in &upgrades {
        assert_eq!(given, newest, "an upgrade did not carry the token of the login just before it");
    }
    let mut distinct = tokens.clone();
    distinct.dedup();
    assert_eq!(distinct, tokens, "a token was reused instead of logging in again: {tokens:?}");
    // The refusing admin never saw an upgrade: a refused login is that admin failing.
    assert!(refused.upgrades.lock().unwrap().is_empty());
    assert!(refused.issued.lock().unwrap().is_empty());
}
