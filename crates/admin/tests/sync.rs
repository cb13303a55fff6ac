//! The admin's sync endpoints on a real port, driven by a client that behaves exactly like a
//! ShenYu 2.7 gateway (handshake headers, `RUNNING_MODE` + `MYSELF`, `/platform/login`,
//! `X-Access-Token`, `/configs/fetch`, `/configs/listener` with every group), and two admins on
//! one PostgreSQL database seeing each other's commits.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tigateway_admin::api::AppState;
use tigateway_admin::identity::Identity;
use tigateway_admin::store::{Change, EntityKind, Store};
use tigateway_admin::sync::{Publisher, SyncSettings};
use tigateway_auth::LoginLimiter;
use tigateway_model::{AppAuth, Condition, MetaData, RouteDefinition, Rule, Selector};
use tigateway_testkit::admin_login;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const NS: &str = "649330b6-c2d7-4edc-be8e-8a54df9eb385";
const PASSWORD: &str = "sync-admin-password";

/// Serves the admin API plus the sync routes on a loopback port.
async fn serve(store: Store, settings: SyncSettings) -> SocketAddr {
    let identity = Identity::new(&store);
    identity.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let mut state = AppState::new(store.clone(), identity);
    state.limiter = Arc::new(LoginLimiter::new(50, Duration::from_secs(300)));
    state.session_ttl = Duration::from_secs(600);
    let publisher = Publisher::start(store, settings).await.unwrap();
    let app = tigateway_admin::api::router(state.clone()).merge(tigateway_admin::sync::router(publisher, state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    addr
}

async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display());
    (Store::open(&url).await.unwrap(), dir)
}

fn selector(id: &str, path: &str) -> Selector {
    Selector {
        id: id.into(),
        plugin_name: "divide".into(),
        selector_type: 1,
        enabled: true,
        continued: true,
        logged: true,
        handle: Some(r#"[{"upstreamUrl":"127.0.0.1:8189"}]"#.into()),
        condition_list: vec![Condition::new("uri", "match", Some("/"), path)],
        ..Default::default()
    }
}

fn rule(id: &str, selector: &str) -> Rule {
    Rule {
        id: id.into(),
        selector_id: selector.into(),
        plugin_name: "divide".into(),
        enabled: true,
        logged: true,
        handle: Some(r#"{"loadBalance":"random"}"#.into()),
        condition_data_list: vec![Condition::new("query", "=", Some("k"), "a=b")],
        ..Default::default()
    }
}

async fn seed(store: &Store) {
    store.create(selector("s1", "/http/**"), "t").await.unwrap();
    store.create(rule("r1", "s1"), "t").await.unwrap();
    let meta = MetaData {
        path: "/http/save".into(),
        app_name: "shop".into(),
        rpc_type: "http".into(),
        enabled: true,
        ..Default::default()
    };
    store.create(meta, "t").await.unwrap();
    let auth = AppAuth {
        id: Some("a1".into()),
        app_key: "KEY1".into(),
        app_secret: "SECRET".into(),
        enabled: true,
        ..Default::default()
    };
    store.create(auth, "t").await.unwrap();
    let route: RouteDefinition =
        serde_json::from_value(json!({"id": "rt", "uri": "http://127.0.0.1:1", "predicates": ["Path=/rt/**"]}))
            .unwrap();
    store.create(route, "t").await.unwrap();
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects the way ShenYu 2.7's `ShenyuWebsocketClient` does.
async fn shenyu_connect(addr: SocketAddr, extra: &[(&'static str, &str)], query: &str) -> Result<Ws, String> {
    shenyu_connect_raw(addr, extra, query).await.map_err(|e| e.to_string())
}

async fn shenyu_connect_raw(
    addr: SocketAddr,
    extra: &[(&'static str, &str)],
    query: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{addr}/websocket{query}").into_client_request().unwrap();
    req.headers_mut().insert("namespaceId", NS.parse().unwrap());
    req.headers_mut().insert("ClientPort", "9195".parse().unwrap());
    for (k, v) in extra {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

async fn recv_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("admin sent nothing") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

fn kind(m: &Value) -> (String, String) {
    (m["groupType"].as_str().unwrap_or("-").to_string(), m["eventType"].as_str().unwrap().to_string())
}

/// An admin API call that must succeed; its JSON answer.
async fn api(addr: SocketAddr, token: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    let mut req =
        reqwest::Client::new().request(method.clone(), format!("http://{addr}/api/v1{path}")).bearer_auth(token);
    if !body.is_null() {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {v}");
    v
}

/// A new API token owned by `owner`: (token, id).
async fn api_token(addr: SocketAddr, admin: &str, owner: &str) -> (String, String) {
    let t = api(addr, admin, reqwest::Method::POST, "/tokens", json!({"name": "sync", "owner": owner})).await;
    (t["token"].as_str().unwrap().to_string(), t["id"].as_str().unwrap().to_string())
}

/// A websocket handshake the admin must refuse with 401 and a short body that holds no config.
async fn refused(addr: SocketAddr, extra: &[(&'static str, &str)], query: &str, what: &str) -> Value {
    match shenyu_connect_raw(addr, extra, query).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401, "{what}");
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
            assert_eq!(body["code"], 401, "{what}: {body}");
            for leaked in ["groupType", "s1", "KEY1", "SECRET"] {
                assert!(!body.to_string().contains(leaked), "{what}: {leaked} in {body}");
            }
            body
        }
        Err(e) => panic!("{what}: expected a 401 answer, got {e}"),
        Ok(_) => panic!("{what}: the admin accepted the websocket"),
    }
}

#[tokio::test]
async fn a_shenyu27_gateway_follows_the_admin_over_websocket() {
    let (store, _dir) = sqlite_store().await;
    seed(&store).await;
    let addr = serve(store.clone(), SyncSettings::default()).await;
    // A ShenYu 2.7 gateway cannot add headers: its configured admin URL carries an API token.
    let admin = admin_login(&format!("http://{addr}/api/v1"), "admin", PASSWORD).await;
    let (token, _) = api_token(addr, &admin, "admin").await;
    let mut ws = shenyu_connect(addr, &[], &format!("?token={token}")).await.unwrap();
    ws.send(Message::Text("RUNNING_MODE".into())).await.unwrap();
    ws.send(Message::Text("MYSELF".into())).await.unwrap();
    let mode = recv_json(&mut ws).await;
    assert_eq!(mode["eventType"], "RUNNING_MODE");
    assert!(mode.get("groupType").is_none(), "{mode}");
    assert_eq!(mode["runningMode"], "STANDALONE");
    assert!(mode.get("tigateway").is_none(), "extension marker sent to a ShenYu client: {mode}");

    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(recv_json(&mut ws).await);
    }
    let kinds: Vec<(String, String)> = got.iter().map(kind).collect();
    let want = [
        ("APP_AUTH", "REFRESH"),
        ("PLUGIN", "MYSELF"),
        ("SELECTOR", "MYSELF"),
        ("RULE", "MYSELF"),
        ("META_DATA", "REFRESH"),
    ];
    assert_eq!(kinds, want.map(|(g, e)| (g.to_string(), e.to_string())));
    for m in &got {
        assert!(m["data"].is_array());
        // A ShenYu gateway gets the plain protocol: no extension fields, no ROUTE group.
        for ext in ["revision", "since", "hashes"] {
            assert!(m.get(ext).is_none(), "{ext} sent to a ShenYu client: {m}");
        }
    }
    let sel = &got[2]["data"][0];
    assert_eq!(sel["id"], "s1");
    assert_eq!(sel["logged"], true);
    assert_eq!(sel["type"], 1);
    assert!(sel["handle"].is_string(), "handle travels as a JSON string");
    assert!(sel.get("pluginJar").is_none() && sel.get("dateCreated").is_none(), "nulls are omitted: {sel}");
    let rl = &got[3]["data"][0];
    assert_eq!(rl["loged"], true, "ShenYu's rule spells it loged: {rl}");
    assert_eq!(rl["conditionDataList"][0]["paramValue"], "a=b");
    assert!(got[1]["data"].as_array().unwrap().iter().any(|p| p["name"] == "divide" && p["id"] == "divide"));

    // Nothing else (no ROUTE) follows the full sync.
    assert!(tokio::time::timeout(Duration::from_millis(300), ws.next()).await.is_err());

    // An update, then deleting a selector with its rule: RULE DELETE before SELECTOR DELETE.
    let stored = store.get::<MetaData>(got[4]["data"][0]["id"].as_str().unwrap()).await.unwrap();
    let mut m = stored.value.clone();
    m.app_name = "shop2".into();
    store.update(&m.id.clone(), stored.version, m, "t").await.unwrap();
    let ev = recv_json(&mut ws).await;
    assert_eq!(kind(&ev), ("META_DATA".into(), "UPDATE".into()));
    assert_eq!(ev["data"][0]["appName"], "shop2");

    let (sv, rv) = (store.get::<Selector>("s1").await.unwrap().version, store.get::<Rule>("r1").await.unwrap().version);
    store
        .apply_batch(
            vec![
                Change::Delete { kind: EntityKind::Rule, id: "r1".into(), expected_version: rv },
                Change::Delete { kind: EntityKind::Selector, id: "s1".into(), expected_version: sv },
            ],
            "t",
        )
        .await
        .unwrap();
    let a = recv_json(&mut ws).await;
    let b = recv_json(&mut ws).await;
    assert_eq!([kind(&a), kind(&b)], [("RULE".into(), "DELETE".into()), ("SELECTOR".into(), "DELETE".into())]);
    assert_eq!(b["data"][0]["id"], "s1");

    // A route-only change sends a ShenYu gateway nothing.
    let route: RouteDefinition =
        serde_json::from_value(json!({"id": "rt2", "uri": "http://127.0.0.1:1", "predicates": ["Path=/rt2/**"]}))
            .unwrap();
    store.create(route, "t").await.unwrap();
    store.create(selector("s2", "/x/**"), "t").await.unwrap();
    let c = recv_json(&mut ws).await;
    assert_eq!(kind(&c), ("SELECTOR".into(), "CREATE".into()));

    // A namespace this admin does not serve gets nothing, even with a good token.
    let mut req = format!("ws://{addr}/websocket?token={token}").into_client_request().unwrap();
    req.headers_mut().insert("namespaceId", "other-namespace".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!("another namespace was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn the_websocket_sync_token_is_enforced() {
    let (store, _dir) = sqlite_store().await;
    let settings = SyncSettings { token: Some("s3cret".into()), ..Default::default() };
    let addr = serve(store, settings).await;
    refused(addr, &[], "", "no credential").await;
    refused(addr, &[("x-tigateway-sync-token", "wrong")], "", "a wrong sync token").await;
    refused(addr, &[], "?token=wrong", "a wrong ?token=").await;
    let mut ws = shenyu_connect(addr, &[("x-tigateway-sync-token", "s3cret")], "").await.unwrap();
    ws.send(Message::Text("MYSELF".into())).await.unwrap();
    assert_eq!(kind(&recv_json(&mut ws).await), ("PLUGIN".into(), "MYSELF".into()));
    // ShenYu gateways cannot add headers, but their admin URL can carry the token.
    assert!(shenyu_connect(addr, &[], "?token=s3cret").await.is_ok());
    // An admin token that may read the config is accepted too.
    let admin = admin_login(&format!("http://{addr}/api/v1"), "admin", PASSWORD).await;
    assert!(shenyu_connect(addr, &[("X-Access-Token", &admin)], "").await.is_ok());
}

/// No `--sync-token`: still nobody follows the config without an admin token that may read it.
#[tokio::test]
async fn the_websocket_needs_an_admin_token_without_a_sync_token() {
    let (store, _dir) = sqlite_store().await;
    seed(&store).await;
    let addr = serve(store, SyncSettings::default()).await;
    let admin = admin_login(&format!("http://{addr}/api/v1"), "admin", PASSWORD).await;

    // No credential: 401 before any upgrade; a raw client sees only that answer, and no frame.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let handshake = format!(
        "GET /websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nnamespaceId: {NS}\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut tcp, handshake.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_millis(800);
    while let Ok(Ok(n)) = tokio::time::timeout_at(
        tokio::time::Instant::from_std(until),
        tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
    )
    .await
    {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(!text.contains("groupType") && !text.contains("\"s1\""), "config sent to an anonymous client: {text}");
    refused(addr, &[], "", "no credential").await;

    // Wrong tokens, wherever they are put.
    refused(addr, &[("X-Access-Token", "not-a-token")], "", "a garbage X-Access-Token").await;
    refused(addr, &[], "?token=tgw_0000000000000000000000000000000000000000", "an unknown API token").await;
    refused(addr, &[("x-tigateway-sync-token", "guess")], "", "a sync token where none is configured").await;
    let body = refused(addr, &[("Authorization", &format!("Bearer {admin}"))], "", "a bearer header").await;
    assert!(body["message"].as_str().unwrap().contains("no credential"), "{body}");

    // A user whose role cannot read the whole config: refused by session and by API token.
    let role = json!({"name": "selector-reader", "permissions": [["selectors", "read"], ["audit", "read"]]});
    api(addr, &admin, reqwest::Method::POST, "/roles", role).await;
    let user = json!({"username": "auditor", "password": "auditor-password-1", "roles": ["selector-reader"]});
    api(addr, &admin, reqwest::Method::POST, "/users", user).await;
    let auditor = admin_login(&format!("http://{addr}/api/v1"), "auditor", "auditor-password-1").await;
    let body = refused(addr, &[("X-Access-Token", &auditor)], "", "a role without config read").await;
    assert!(body["message"].as_str().unwrap().contains("may not read"), "{body}");
    let (auditor_api, _) = api_token(addr, &admin, "auditor").await;
    refused(addr, &[], &format!("?token={auditor_api}"), "an API token without config read").await;

    // A revoked API token, and a logged-out session.
    let (revoked, id) = api_token(addr, &admin, "admin").await;
    assert!(shenyu_connect(addr, &[], &format!("?token={revoked}")).await.is_ok());
    api(addr, &admin, reqwest::Method::DELETE, &format!("/tokens/{id}"), Value::Null).await;
    refused(addr, &[], &format!("?token={revoked}"), "a revoked API token").await;
    let gone = admin_login(&format!("http://{addr}/api/v1"), "admin", PASSWORD).await;
    api(addr, &gone, reqwest::Method::POST, "/logout", Value::Null).await;
    refused(addr, &[("X-Access-Token", &gone)], "", "a logged-out session").await;

    // Accepted: a viewer's session in X-Access-Token (a TiGateway gateway after its login), and
    // an API token in the URL (a ShenYu 2.7 gateway).
    let viewer = json!({"username": "reader", "password": "reader-password-1", "roles": ["viewer"]});
    api(addr, &admin, reqwest::Method::POST, "/users", viewer).await;
    let reader = admin_login(&format!("http://{addr}/api/v1"), "reader", "reader-password-1").await;
    let mut ws = shenyu_connect(addr, &[("X-Access-Token", &reader)], "").await.unwrap();
    ws.send(Message::Text("MYSELF".into())).await.unwrap();
    assert_eq!(kind(&recv_json(&mut ws).await), ("APP_AUTH".into(), "REFRESH".into()));
    let (api_tok, _) = api_token(addr, &admin, "reader").await;
    let mut ws = shenyu_connect(addr, &[], &format!("?token={api_tok}")).await.unwrap();
    ws.send(Message::Text("MYSELF".into())).await.unwrap();
    assert_eq!(kind(&recv_json(&mut ws).await), ("APP_AUTH".into(), "REFRESH".into()));
}

/// The next frame is a close with code 1008, within `within`; config messages before it are fine.
async fn closed_for_policy(ws: &mut Ws, within: Duration, what: &str) {
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) => panic!("{what}: still open after {within:?}"),
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                assert_eq!(u16::from(f.code), 1008, "{what}: {f:?}");
                return;
            }
            Ok(Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("{what}: ended without a policy close: {other:?}"),
        }
    }
}

/// A credential checked at the upgrade is checked again while the connection lives.
#[tokio::test]
async fn an_open_websocket_is_closed_when_its_credential_is_revoked() {
    let (store, _dir) = sqlite_store().await;
    seed(&store).await;
    let settings = SyncSettings { recheck: Duration::from_millis(200), ..Default::default() };
    let addr = serve(store, settings).await;
    let admin = admin_login(&format!("http://{addr}/api/v1"), "admin", PASSWORD).await;

    let (tok, id) = api_token(addr, &admin, "admin").await;
    let mut by_token = shenyu_connect(addr, &[], &format!("?token={tok}")).await.unwrap();
    let other = admin_login(&format!("http://{addr}/api/v1"), "admin", PASSWORD).await;
    let mut by_session = shenyu_connect(addr, &[("X-Access-Token", &other)], "").await.unwrap();
    let mut kept = shenyu_connect(addr, &[("X-Access-Token", &admin)], "").await.unwrap();
    for ws in [&mut by_token, &mut by_session, &mut kept] {
        ws.send(Message::Text("MYSELF".into())).await.unwrap();
        assert_eq!(kind(&recv_json(ws).await), ("APP_AUTH".into(), "REFRESH".into()));
    }
    // Several checks pass while the credentials hold.
    tokio::time::sleep(Duration::from_millis(700)).await;

    api(addr, &admin, reqwest::Method::DELETE, &format!("/tokens/{id}"), Value::Null).await;
    closed_for_policy(&mut by_token, Duration::from_secs(3), "a revoked API token").await;
    api(addr, &other, reqwest::Method::POST, "/logout", Value::Null).await;
    closed_for_policy(&mut by_session, Duration::from_secs(3), "a logged-out session").await;

    // The untouched session still follows: a change made now reaches it.
    let body = json!({"id": "s9", "pluginName": "divide", "name": "later", "type": 1,
        "conditionList": [{"paramType": "uri", "operator": "match", "paramValue": "/later/**"}]});
    api(addr, &admin, reqwest::Method::POST, "/selectors", body).await;
    // (after the rest of its full sync)
    loop {
        let m = recv_json(&mut kept).await;
        if m["groupType"] == "SELECTOR" && m["data"][0]["id"] == "s9" {
            assert_eq!(m["eventType"], "CREATE", "{m}");
            break;
        }
    }
}

/// The re-check cannot reach the identity store: nobody is disconnected for that.
#[tokio::test]
async fn an_open_websocket_survives_an_unreachable_identity_store() {
    let (store, _dir) = sqlite_store().await;
    seed(&store).await;
    let settings = SyncSettings { recheck: Duration::from_millis(200), ..Default::default() };
    let addr = serve(store.clone(), settings).await;
    let admin = admin_login(&format!("http://{addr}/api/v1"), "admin", PASSWORD).await;
    let mut ws = shenyu_connect(addr, &[("X-Access-Token", &admin)], "").await.unwrap();
    ws.send(Message::Text("MYSELF".into())).await.unwrap();
    assert_eq!(kind(&recv_json(&mut ws).await), ("APP_AUTH".into(), "REFRESH".into()));

    store.close().await;
    // Well past the cached roles' bound, so the re-checks reach the (closed) store.
    let until = tokio::time::Instant::now() + tigateway_admin::identity::RBAC_REFRESH + Duration::from_secs(1);
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("the connection ended while the store was unreachable: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_shenyu27_gateway_follows_the_admin_over_long_polling() {
    let (store, _dir) = sqlite_store().await;
    seed(&store).await;
    let addr = serve(store.clone(), SyncSettings::default()).await;
    let base = format!("http://{addr}");
    let c = reqwest::Client::new();
    let groups = [
        "APP_AUTH",
        "PLUGIN",
        "RULE",
        "SELECTOR",
        "META_DATA",
        "PROXY_SELECTOR",
        "DISCOVER_UPSTREAM",
        "AI_PROXY_API_KEY",
    ];

    // Nothing without a token.
    let r = c.get(format!("{base}/configs/fetch?groupKeys=PLUGIN&namespaceId={NS}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 600);
    let r = c.post(format!("{base}/configs/listener?PLUGIN=x,0&namespaceId={NS}")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Login: GET with query parameters; failure is HTTP 200 with code 500.
    let bad: Value = c
        .get(format!("{base}/platform/login"))
        .query(&[("userName", "admin"), ("password", "wrong")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bad["code"], 500);
    let ok: Value = c
        .get(format!("{base}/platform/login"))
        .query(&[("userName", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["code"], 200, "{ok}");
    let token = ok["data"]["token"].as_str().unwrap().to_string();
    assert!(ok["data"]["expiredTime"].as_u64().unwrap() > 0);

    // Fetch every group (repeated groupKeys).
    let mut q: Vec<(&str, &str)> = groups.iter().map(|g| ("groupKeys", *g)).collect();
    q.push(("namespaceId", NS));
    let f: Value = c
        .get(format!("{base}/configs/fetch"))
        .header("X-Access-Token", &token)
        .query(&q)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f["code"], 200, "{f}");
    let mut held = Vec::new();
    for g in groups {
        let d = &f["data"][g];
        let md5 = tigateway_model::hash::md5_json(&d["data"]);
        assert_eq!(d["md5"], md5, "{g}: md5 is the MD5 of the group's JSON list");
        held.push((g, md5, d["lastModifyTime"].as_i64().unwrap()));
    }
    assert_eq!(f["data"]["PROXY_SELECTOR"]["md5"], "d751713988987e9331980363e24189ce");
    assert_eq!(f["data"]["SELECTOR"]["data"][0]["id"], "s1");
    let unknown: Value = c
        .get(format!("{base}/configs/fetch?groupKeys=NOPE&namespaceId={NS}"))
        .header("X-Access-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unknown["code"], 500);

    let listen = |held: Vec<(&'static str, String, i64)>| {
        let (c, base, token) = (c.clone(), base.clone(), token.clone());
        async move {
            let mut q: Vec<(String, String)> =
                held.iter().map(|(g, m, t)| (g.to_string(), format!("{m},{t}"))).collect();
            q.push(("namespaceId".into(), NS.into()));
            c.post(format!("{base}/configs/listener"))
                .header("X-Access-Token", token)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .query(&q)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // A stale md5 is answered at once.
    let mut stale = held.clone();
    stale[3].1 = "0".into();
    let started = Instant::now();
    let r = listen(stale).await;
    assert_eq!(r, json!({"code": 200, "message": "success", "data": ["SELECTOR"]}));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Up to date: held until a change, then answered with the changed group.
    let pending = tokio::spawn(listen(held.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "the listener was not held");
    store.create(selector("s9", "/nine/**"), "t").await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), pending).await.unwrap().unwrap();
    assert_eq!(r["data"], json!(["SELECTOR"]));
    // A listener without every group is refused as ShenYu does.
    let r = listen(held[..2].to_vec()).await;
    assert_eq!(r["code"], 500);
    // The refetched group is newer.
    let f: Value = c
        .get(format!("{base}/configs/fetch?groupKeys=SELECTOR&namespaceId={NS}"))
        .header("X-Access-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(f["data"]["SELECTOR"]["lastModifyTime"].as_i64().unwrap() > held[3].2);
    assert_eq!(f["data"]["SELECTOR"]["data"].as_array().unwrap().len(), 2);
}

/// Two admins on one PostgreSQL database: a commit through one is published by the other.
#[tokio::test]
async fn two_admins_on_postgres_publish_each_others_commits() {
    common::run(common::Target::Postgres, |store_a, url| async move {
        let store_b = Store::open(&url).await.unwrap();
        let settings = SyncSettings { poll_interval: Duration::from_millis(50), ..Default::default() };
        let addr_b = serve(store_b.clone(), settings).await;
        let token = admin_login(&format!("http://{addr_b}/api/v1"), "admin", PASSWORD).await;
        let mut ws =
            shenyu_connect(addr_b, &[("x-tigateway-sync", "1"), ("X-Access-Token", &token)], "").await.unwrap();
        ws.send(Message::Text("MYSELF".into())).await.unwrap();
        let full = recv_json(&mut ws).await;
        let rev = full["revision"].as_i64().unwrap();
        assert!(full["hashes"].is_object(), "{full}");

        let started = Instant::now();
        store_a.create(selector("from-a", "/a/**"), "admin-a").await.unwrap();
        let ev = recv_json(&mut ws).await;
        assert_eq!(kind(&ev), ("SELECTOR".into(), "CREATE".into()));
        assert_eq!(ev["data"][0]["id"], "from-a");
        assert_eq!(ev["since"], rev, "admin B's revision chain has no hole");
        assert!(started.elapsed() < Duration::from_secs(3));
        // And B's own commits too, with the revision chain intact.
        store_b.create(rule("rule-b", "from-a"), "admin-b").await.unwrap();
        let ev2 = recv_json(&mut ws).await;
        assert_eq!(kind(&ev2), ("RULE".into(), "CREATE".into()));
        assert_eq!(ev2["since"], ev["revision"]);
        store_b.close().await;
    })
    .await;
}
